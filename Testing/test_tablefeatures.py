"""Features from a precomputed table: same model as extraction, region mapping, missing values, bad tables, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ALNMPredictorLib import cli
from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.errors import ALNMError, InputError
from ALNMPredictorLib.pipeline import PipelineSettings, load_model, predict, run_pipeline, train
from ALNMPredictorLib.tablefeatures import (
    FeatureMapping,
    FeatureTableSpec,
    internal_name,
    load_feature_tables,
    parse_region_option,
    read_feature_table,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),
]

# A small, fast pyradiomics configuration (the presets take ~0.2-3 s per ROI).
PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "glcm": None, "shape2D": None},
    "setting": {"binWidth": 5, "force2D": True, "force2Ddimension": 0, "label": 1},
}
FAST = {"lasso_folds": 5, "n_boot": 20, "deep": "off", "optimism_boot": 0}


# --------------------------------------------------------------------------------------------------
# helpers


def _write_cohort(
    folder: Path,
    *,
    n_train: int = 60,
    n_test: int = 30,
    n_feat: int = 12,
    seed: int = 1,
    prefixes: tuple[str, str] = ("tumor_", "ln_"),
) -> tuple[Path, Path, pd.DataFrame]:
    """A manifest without image columns and a feature table (two informative features per region)."""
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    ids = [f"C{i:03d}" for i in range(n)]
    y = rng.permutation(np.r_[np.ones(n // 2, int), np.zeros(n - n // 2, int)])
    manifest = pd.DataFrame(
        {
            "case_id": ids,
            "label": y,
            "split": ["train"] * n_train + ["internal"] * n_test,
            "age": np.round(rng.normal(50, 10, n), 1),
            "margin": np.where(rng.random(n) < 0.3 + 0.3 * y, "irregular", "smooth"),
        }
    )
    features: dict[str, object] = {"case_id": ids}
    for prefix, shift in zip(prefixes, (0.7, 0.9), strict=True):
        for j in range(n_feat):
            features[f"{prefix}f{j}"] = (
                rng.normal(0, 1, n) + (shift if j < 2 else 0.0) * y + (10.0 if j % 3 == 0 else 0.0)
            )
    folder.mkdir(parents=True, exist_ok=True)
    manifest.to_csv(folder / "manifest.csv", index=False)
    table = pd.DataFrame(features)
    table.to_csv(folder / "features.csv", index=False)
    return folder / "manifest.csv", folder / "features.csv", table


def _settings(**extra) -> PipelineSettings:
    return PipelineSettings(**{**FAST, **extra})


# --------------------------------------------------------------------------------------------------
# a table written from extraction output gives the same model as extracting in the same run


@pytest.fixture(scope="module")
def extracted(tmp_path_factory: pytest.TempPathFactory):
    """A tumour-only synthetic cohort trained from its images (with re-segmentations for the ICC)."""
    from ALNMPredictorLib.synth import synth_cohort

    root = tmp_path_factory.mktemp("extracted")
    synth_cohort(root / "cohort", n_patients=48, seed=1)
    (root / "cohort" / "study.yaml").unlink()  # a manifest with fewer clinical columns than it declares
    manifest = pd.read_csv(root / "cohort" / "manifest.csv", dtype=str, keep_default_na=False)
    keep = ["case_id", "label", "split", "center"]
    clinical = ["age", "tumor_size_cm", "margin", "us_reported_alnm"]
    images = [c for c in manifest.columns if c.startswith("tumor_") and c != "tumor_size_cm"]
    manifest[keep + images + clinical].to_csv(root / "cohort" / "images.csv", index=False)
    (root / "table").mkdir()
    manifest[keep + clinical].to_csv(root / "table" / "manifest.csv", index=False)
    (root / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    settings = _settings(handcrafted=str(root / "params.yaml"), workers=2)
    result = train(root / "cohort" / "images.csv", root / "from_images", settings, progress=False)
    return root, settings, result


def _assert_same_model(a, b) -> None:
    assert list(a.region_scores_) == list(b.region_scores_)
    for region, sa in a.region_scores_.items():
        sb = b.region_scores_[region]
        assert sa.selected_ == sb.selected_
        np.testing.assert_allclose(sb.coef_.to_numpy(), sa.coef_.to_numpy(), rtol=0, atol=1e-12)
        assert abs(sa.intercept_ - sb.intercept_) <= 1e-12
        pd.testing.assert_frame_equal(sa.log_, sb.log_)
    for name, ma in a.models().items():
        mb = b.models()[name]
        assert ma.variables == mb.variables
        assert ma.coefficients.keys() == mb.coefficients.keys()
        for term, value in ma.coefficients.items():
            assert abs(value - mb.coefficients[term]) <= 1e-12, (name, term)
        assert abs(ma.cutoff - mb.cutoff) <= 1e-12


def test_table_from_extract_output_gives_the_same_model(extracted) -> None:
    root, settings, images = extracted
    variants = pd.read_parquet(root / "from_images" / "features" / "features.parquet")
    assert set(variants["variant"]) == {"main", "reader2", "repeat"}  # the ICC filter is exercised
    one_row = variants[variants["variant"] == "main"].drop(columns="variant")
    one_row.to_csv(root / "main.csv", index=False)
    for variant in ("reader2", "repeat"):
        variants[variants["variant"] == variant].drop(columns="variant").to_parquet(
            root / f"{variant}.parquet"
        )
    spec = FeatureTableSpec(
        root / "main.csv", reader2=root / "reader2.parquet", repeat=root / "repeat.parquet"
    )
    table = train(
        root / "table" / "manifest.csv", root / "from_table", settings, progress=False, feature_table=spec
    )
    _assert_same_model(images.model, table.model)
    cols = ["status", "prob_clinical_radiomics", "tumor_score", "total_points"]
    pd.testing.assert_frame_equal(images.predictions[cols], table.predictions[cols], rtol=0, atol=1e-12)
    assert table.features.degenerate == images.features.degenerate

    # the saved model records where its features came from, with their names
    info = json.loads((root / "from_table" / "model" / "model.json").read_text())
    assert info["feature_source"] == "table" and info["regions"] == ["tumor"]
    recorded = info["extraction"]["feature_table"]["regions"]["tumor"]
    assert recorded["columns"] == [c for c in one_row.columns if c != "case_id"]
    assert recorded["kind"] == "prefix" and recorded["pattern"] == "tumor_"

    # `alnm extract`'s own two-row-kind table (a `variant` column) reads the same
    direct = train(
        root / "table" / "manifest.csv",
        root / "from_variants",
        settings,
        progress=False,
        feature_table=FeatureTableSpec(root / "from_images" / "features" / "features.parquet"),
    )
    _assert_same_model(images.model, direct.model)

    # predict on a table with the same columns gives the training predictions
    predictions, _, _ = predict(
        root / "table" / "manifest.csv",
        root / "from_table" / "model",
        root / "work",
        progress=False,
        feature_table=root / "main.csv",
    )
    pd.testing.assert_frame_equal(predictions[cols], table.predictions[cols], rtol=0, atol=1e-12)
    # and a model trained on images reads such a table too (its extraction's column names)
    predictions, _, _ = predict(
        root / "table" / "manifest.csv",
        root / "from_images" / "model",
        root / "work",
        progress=False,
        feature_table=root / "main.csv",
    )
    pd.testing.assert_frame_equal(predictions[cols], images.predictions[cols], rtol=0, atol=1e-12)


# --------------------------------------------------------------------------------------------------
# region mapping, saved model, prediction


def test_regex_regions_rename_report_unmapped_and_predict_maps_a_new_table(tmp_path: Path) -> None:
    manifest, features, table = _write_cohort(tmp_path, prefixes=("T.", "node_"))
    table["scanner_note"] = "x"  # neither a region feature nor a manifest column
    table["age"] = 0.0  # a manifest column: the manifest's values win
    table.to_csv(features, index=False)
    spec = FeatureTableSpec(
        features, regions=[parse_region_option("tumor=T."), parse_region_option("ln=^node_")]
    )
    result = train(manifest, tmp_path / "out", _settings(), progress=False, feature_table=spec)
    names = [c for s in result.model.region_scores_.values() for c in s.feature_names_in_]
    assert "tumor_T.f0" in names and "ln_node_f0" in names
    assert any("scanner_note" in w and "NOT used" in w for w in result.warnings)
    assert any("age" in w and "manifest" in w for w in result.warnings)
    info = load_model(tmp_path / "out" / "model").info
    assert info["extraction"]["unmapped_columns"] == ["scanner_note"]
    mapping = FeatureMapping.from_dict(info["extraction"]["feature_table"])
    assert mapping.rules["tumor"].kind == "prefix" and mapping.rules["ln"].kind == "regex"
    assert mapping.columns["ln"][0] == "node_f0"

    # same columns, other order, extra column: same predictions
    shuffled = table[["case_id"] + list(table.columns[:0:-1])]
    shuffled.to_csv(tmp_path / "new.csv", index=False)
    predictions, _, _ = predict(
        manifest,
        tmp_path / "out" / "model",
        tmp_path / "w",
        progress=False,
        feature_table=tmp_path / "new.csv",
    )
    np.testing.assert_allclose(
        predictions["prob_clinical_radiomics"],
        result.predictions["prob_clinical_radiomics"],
        rtol=0,
        atol=1e-12,
    )

    used = result.model.region_scores_["ln"].selected_[0]
    original = used[len("ln_") :]
    with pytest.raises(InputError, match=f"column {original}.*lacks") as err:
        predict(
            manifest,
            tmp_path / "out" / "model",
            tmp_path / "w",
            progress=False,
            feature_table=_without(table, original, tmp_path / "lacking.csv"),
        )
    assert "new" not in str(err.value)
    unused = next(
        c
        for c in mapping.columns["tumor"]
        if internal_name("tumor", c) not in result.model.region_scores_["tumor"].selected_
    )
    predictions, _, _ = predict(
        manifest,
        tmp_path / "out" / "model",
        tmp_path / "w",
        progress=False,
        feature_table=_without(table, unused, tmp_path / "unused.csv"),
    )
    assert (predictions["status"] == "ok").all()
    with pytest.raises(ALNMError, match="trained on a feature table.*--features"):
        predict(manifest, tmp_path / "out" / "model", tmp_path / "w", progress=False)


def _without(table: pd.DataFrame, column: str, path: Path) -> Path:
    table.drop(columns=[column]).to_csv(path, index=False)
    return path


def test_region_options_are_checked(tmp_path: Path) -> None:
    assert parse_region_option("ln=^node[._]").kind == "regex"
    assert parse_region_option("tumor=T_").kind == "prefix"
    with pytest.raises(ALNMError, match="NAME=PREFIX_OR_REGEX"):
        parse_region_option("tumor")
    with pytest.raises(ALNMError, match="not a valid regular expression"):
        parse_region_option("tumor=(T_")
    manifest, features, _ = _write_cohort(tmp_path)
    cohort = load_manifest(manifest)
    with pytest.raises(InputError, match=r"column tumor_f0 .*claimed by regions tumor and all"):
        load_feature_tables(features, cohort=cohort, regions={"tumor": "tumor_", "all": "f0$"})
    with pytest.raises(InputError, match="no column for region lesion: columns starting with 'lesion_'"):
        load_feature_tables(features, cohort=cohort, regions={"lesion": "lesion_"})
    with pytest.raises(ALNMError, match="overlap"):
        load_feature_tables(features, cohort=cohort, regions={"ln": "ln_", "ln_b": "tumor_"})


# --------------------------------------------------------------------------------------------------
# missing values


def test_median_imputation_uses_training_cases_only(tmp_path: Path) -> None:
    manifest, features, table = _write_cohort(tmp_path)
    cohort = load_manifest(manifest)
    test_ids = cohort.case_ids("internal")
    train_ids = cohort.case_ids("train")
    table = table.set_index("case_id")
    table.loc[train_ids[0], "tumor_f1"] = np.nan
    table.loc[test_ids[0], "tumor_f1"] = np.nan
    table.loc[test_ids[1], "ln_f3"] = np.nan
    table.reset_index().to_csv(features, index=False)
    loaded = load_feature_tables(features, cohort=cohort)
    medians = loaded.info["feature_table"]["medians"]
    expected = table.loc[train_ids, "tumor_f1"].median()  # skips the NaN
    assert medians["tumor_f1"] == pytest.approx(expected, abs=0)
    assert loaded.main.loc[test_ids[0], "tumor_f1"] == medians["tumor_f1"]
    assert loaded.main.loc[train_ids[0], "tumor_f1"] == medians["tumor_f1"]
    assert loaded.main.loc[test_ids[1], "ln_f3"] == medians["ln_f3"]
    assert not loaded.main.isna().to_numpy().any()
    assert any("3 missing feature value(s)" in w and "training medians" in w for w in loaded.info["warnings"])

    # no leakage: other test-split values leave every median unchanged
    table.loc[test_ids, [c for c in table.columns if c.startswith(("tumor_", "ln_"))]] *= 1000.0
    table.reset_index().to_csv(tmp_path / "shifted.csv", index=False)
    shifted = load_feature_tables(tmp_path / "shifted.csv", cohort=cohort)
    assert shifted.info["feature_table"]["medians"] == medians


def test_refuse_rule_names_case_and_column(tmp_path: Path) -> None:
    manifest, features, table = _write_cohort(tmp_path)
    table.loc[5, "ln_f4"] = np.nan
    table.to_csv(features, index=False)
    with pytest.raises(InputError, match=r"case C005, column ln_f4 .*missing value.*'refuse'"):
        load_feature_tables(features, cohort=load_manifest(manifest), missing="refuse")


def test_case_without_any_value_of_a_region_fails_instead_of_being_imputed(tmp_path: Path) -> None:
    manifest, features, table = _write_cohort(tmp_path)
    table.loc[70, [c for c in table.columns if c.startswith("ln_")]] = np.nan
    table.to_csv(features, index=False)
    result = train(
        manifest, tmp_path / "out", _settings(), progress=False, feature_table=FeatureTableSpec(features)
    )
    row = result.predictions.loc["C070"]
    assert row["status"] == "failed" and "region ln: no feature value" in row["error"]
    assert (result.predictions.drop(index="C070")["status"] == "ok").all()


# --------------------------------------------------------------------------------------------------
# bad tables


@pytest.fixture
def small(tmp_path: Path):
    manifest, features, table = _write_cohort(tmp_path, n_train=12, n_test=4, n_feat=3)
    return load_manifest(manifest), tmp_path, table


def _load(small, table: pd.DataFrame, name: str = "bad.csv", **kwargs):
    cohort, folder, _ = small
    path = folder / name
    if name.endswith(".parquet"):
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return load_feature_tables(path, cohort=cohort, **kwargs)


def test_non_numeric_and_non_finite_values(small) -> None:
    table = small[2].astype({"tumor_f1": object})
    table.loc[3, "tumor_f1"] = "12,5"
    with pytest.raises(
        InputError, match=r"case C003, column tumor_f1 \(.*bad.csv\): not numeric: value '12,5'"
    ):
        _load(small, table)
    table = small[2].copy()
    table.loc[2, "ln_f0"] = np.inf
    with pytest.raises(InputError, match=r"case C002, column ln_f0 .*not finite"):
        _load(small, table, "inf.parquet")


def test_all_nan_column(small) -> None:
    table = small[2].copy()
    table["tumor_f2"] = np.nan
    with pytest.raises(InputError, match=r"column tumor_f2 .*no value: tumor_f2"):
        _load(small, table)
    table = small[2].copy()
    train_rows = table["case_id"].isin(small[0].case_ids("train"))
    table.loc[train_rows, "ln_f1"] = np.nan
    with pytest.raises(InputError, match=r"column ln_f1 .*no value in any training case"):
        _load(small, table)


def test_duplicated_case_ids(small) -> None:
    table = pd.concat([small[2], small[2].iloc[[4]]])
    with pytest.raises(InputError, match=r"duplicate case_id\(s\): C004"):
        _load(small, table)


def test_cases_in_only_one_of_the_two_files(small) -> None:
    table = small[2].drop(index=[1]).copy()
    table.loc[len(table) + 10] = ["X999"] + [1.0] * (table.shape[1] - 1)
    loaded = _load(small, table)
    assert loaded.failed == {"C001": "no row in the feature table bad.csv"}
    assert any("X999" in w and "not in the manifest" in w for w in loaded.info["warnings"])
    renamed = small[2].assign(case_id=[f"case-{i}" for i in range(len(small[2]))])
    with pytest.raises(
        InputError, match="no case of the manifest is in the feature table.*case_id values match"
    ):
        _load(small, renamed)


def test_unreadable_tables(small) -> None:
    cohort, folder, table = small
    with pytest.raises(InputError, match="feature table not found"):
        load_feature_tables(folder / "nowhere.csv", cohort=cohort)
    with pytest.raises(InputError, match=r"no 'case_id' column"):
        _load(small, table.rename(columns={"case_id": "patient"}))
    (folder / "t.xlsx").write_text("x")
    with pytest.raises(InputError, match="unsupported feature table format"):
        load_feature_tables(folder / "t.xlsx", cohort=cohort)
    (folder / "dupes.csv").write_text("case_id,tumor_a,tumor_a\nC000,1,2\n")
    with pytest.raises(InputError, match="duplicate column name.*tumor_a"):
        load_feature_tables(folder / "dupes.csv", cohort=cohort)


def test_parquet_with_case_id_index_and_numeric_text(small) -> None:
    cohort, folder, table = small
    table.set_index("case_id").to_parquet(folder / "indexed.parquet")
    assert list(read_feature_table(folder / "indexed.parquet").index[:2]) == ["C000", "C001"]
    text = table.astype(str)
    text.loc[0, "tumor_f0"] = " NA "
    loaded = _load(small, text, "text.parquet")
    assert loaded.main.loc["C000", "tumor_f0"] == loaded.info["feature_table"]["medians"]["tumor_f0"]
    np.testing.assert_allclose(loaded.main.loc["C001", "tumor_f1"], table.loc[1, "tumor_f1"], rtol=1e-15)


def test_resegmentation_table_must_have_every_column(small) -> None:
    cohort, folder, table = small
    table.drop(columns=["ln_f2"]).head(8).to_csv(folder / "r2.csv", index=False)
    table.to_csv(folder / "main.csv", index=False)
    with pytest.raises(
        InputError, match=r"column ln_f2 .*reader2 re-segmentation table lacks 1 feature column"
    ):
        load_feature_tables(folder / "main.csv", cohort=cohort, reader2=folder / "r2.csv")


# --------------------------------------------------------------------------------------------------
# command line


def test_cli_validate_a_feature_table_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A manifest without image columns (as --features prescribes) validates with --features TABLE."""
    manifest, features, table = _write_cohort(tmp_path)
    assert cli.main(["validate", str(manifest)]) == 1
    assert "no <region>_image column" in capsys.readouterr().out  # without --features: images are expected
    assert cli.main(["validate", str(manifest), "--features", str(features)]) == 0
    out = capsys.readouterr().out
    assert "no <region>_image column" not in out and "0 error(s)" in out
    assert (
        f"feature table {features.name}: {len(table)} case(s); regions: tumor (12 columns), ln (12 columns)"
        in out
    )
    table.drop(index=table.index[:3]).to_csv(tmp_path / "short.csv", index=False)
    assert cli.main(["validate", str(manifest), "--features", str(tmp_path / "short.csv")]) == 1
    assert "feature table" in capsys.readouterr().out


def test_cli_train_evaluate_predict_with_features(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest, features, table = _write_cohort(tmp_path, prefixes=("T_", "N_"))
    (tmp_path / "study.yaml").write_text(
        yaml.safe_dump({"settings": {"lasso_folds": 5, "n_boot": 20, "optimism_boot": 0}})
    )
    out = tmp_path / "run"
    code = cli.main(
        [
            "train",
            str(manifest),
            "--out",
            str(out),
            "--features",
            str(features),
            "--region",
            "tumor=T_",
            "--region",
            "ln=N_",
            "--missing",
            "refuse",
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    assert "tumor score =" in capsys.readouterr().out
    assert load_model(out / "model").info["extraction"]["feature_table"]["missing"] == "refuse"

    code = cli.main(
        [
            "evaluate",
            str(manifest),
            "--model",
            str(out / "model"),
            "--out",
            str(tmp_path / "report"),
            "--features",
            str(features),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    html = next((tmp_path / "report").rglob("*.html")).read_text()
    assert "features read from a table" in html

    used = load_model(out / "model").model.region_scores_["tumor"].selected_[0][len("tumor_") :]
    lacking = _without(table, used, tmp_path / "lacking.csv")
    code = cli.main(
        [
            "predict",
            str(manifest),
            "--model",
            str(out / "model"),
            "--out",
            str(tmp_path / "p.csv"),
            "--features",
            str(lacking),
            "--no-progress",
        ]
    )
    assert code == 2
    assert f"column {used}" in capsys.readouterr().err

    code = cli.main(["train", str(manifest), "--out", str(out), "--region", "tumor=T_", "--no-progress"])
    assert code == 2
    assert "--region need(s) --features TABLE" in capsys.readouterr().err
    code = cli.main(["train", str(manifest), "--out", str(out), "--no-progress"])
    assert code == 2
    assert "no <region>_image column" in capsys.readouterr().err


def test_run_pipeline_report_names_the_table(tmp_path: Path) -> None:
    manifest, features, _ = _write_cohort(tmp_path, seed=2)
    trained, evaluated = run_pipeline(
        manifest, tmp_path / "out", _settings(), progress=False, feature_table=FeatureTableSpec(features)
    )
    assert trained.bundle_info["feature_source"] == "table"
    summary = json.loads((tmp_path / "out" / "report" / "summary.json").read_text())
    assert (
        "features read from a table (features.csv; tumor: 12, ln: 12 columns"
        in summary["meta"]["deep_weights"]
    )
    assert evaluated.report.exists()
    shutil.rmtree(tmp_path / "out")
