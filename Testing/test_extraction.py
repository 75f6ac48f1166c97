"""Cohort extraction: table layout, parallel == serial, cache reuse, resume, per-case failures, deep phases, CLI."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from ALNMPredictorLib import cli
from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.extraction import extract_cohort, plan_items
from ALNMPredictorLib.synth import synth_cohort

pytestmark = [
    pytest.mark.filterwarnings("ignore::ALNMPredictorLib.deep.RandomWeightsWarning"),
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),
]

# A small, fast pyradiomics configuration (the presets take ~0.2-3 s per ROI).
PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "glcm": None, "shape2D": None},
    "setting": {"binWidth": 25, "force2D": True, "force2Ddimension": 0},
}
DEEP_OPTIONS = {"input_size": 32, "epochs": 2, "n_views": 1, "batch_size": 8, "seed": 0, "device": "cpu"}
OUTPUTS = ("features.parquet", "features.csv", "status.csv", "failures.csv", "extraction.json")


def _small_manifest(cohort_dir: Path, name: str = "small.csv") -> Path:
    """8 cases of a synthetic cohort (4 training cases of both classes, with re-segmentations, + 4 others).

    The third training case has no LN repeat mask, so its ``repeat`` row has tumour values only.
    """
    manifest = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    train = manifest[manifest["split"] == "train"]
    picked = pd.concat(
        [train[train["label"] == "1"].head(2), train[train["label"] == "0"].head(2)]
    ).sort_index()
    others = manifest[manifest["split"] != "train"].head(4)
    small = pd.concat([picked, others])
    small.loc[picked.index[2], "ln_mask_repeat"] = ""
    path = cohort_dir / name
    small.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synth_cohort(out, n_patients=20, seed=3)
    _small_manifest(out)
    return out


@pytest.fixture(scope="module")
def serial(cohort_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    cohort = load_manifest(cohort_dir / "small.csv")
    out = tmp_path_factory.mktemp("serial")
    result = extract_cohort(cohort, out, handcrafted=PARAMS, deep=None, workers=1, progress=False)
    return cohort, out, result


def _no_temp_files(directory: Path) -> bool:
    return not [
        p
        for p in directory.rglob("*")
        if p.name.startswith(".") and p.name.endswith((".tmp", ".csv", ".parquet", ".json", ".npy"))
    ]


def test_table_has_one_row_per_case_and_variant_with_region_prefixed_features(serial):
    cohort, out, result = serial
    table = result.table
    assert list(table.columns[:2]) == ["case_id", "variant"]
    cases = cohort.case_ids()
    train = cohort.case_ids("train")
    expected_rows = [(c, "main") for c in cases] + [(c, v) for c in train for v in ("reader2", "repeat")]
    assert sorted(zip(table["case_id"], table["variant"], strict=True)) == sorted(expected_rows)
    # rows follow manifest order, main first
    assert table["case_id"].drop_duplicates().tolist() == cases
    features = result.feature_columns()
    assert features[0].startswith("tumor_original_") and features[-1].startswith("ln_original_")
    n = len(features) // 2
    assert [c.removeprefix("tumor_") for c in features[:n]] == [c.removeprefix("ln_") for c in features[n:]]
    assert "tumor_original_firstorder_Entropy" in features and "ln_original_glcm_Contrast" in features
    values = table[features]
    assert values.dtypes.eq(np.float64).all()
    # the case without an LN repeat mask: its repeat row has tumour values, LN NaN
    no_ln_repeat = train[2]
    row = table[(table["case_id"] == no_ln_repeat) & (table["variant"] == "repeat")]
    assert row[features[:n]].notna().all(axis=None) and row[features[n:]].isna().all(axis=None)
    others = table.drop(row.index)
    assert others[features].notna().all(axis=None)
    # re-segmentations differ from the main mask (shape features)
    main = table[(table["case_id"] == train[0]) & (table["variant"] == "main")]
    reader2 = table[(table["case_id"] == train[0]) & (table["variant"] == "reader2")]
    assert (
        main["tumor_original_shape2D_Perimeter"].item() != reader2["tumor_original_shape2D_Perimeter"].item()
    )

    assert result.failed == [] and (result.status["status"] == "ok").all()
    assert len(result.status) == len(cases) * 2 + len(train) * 4 - 1
    assert result.counts["handcrafted"] == {"computed": len(result.status), "cached": 0, "failed": 0}
    assert result.cached == 0 and result.computed == len(result.status)
    # outputs: every file written, atomically, the parquet and CSV equal to the table
    for name in OUTPUTS:
        assert (out / name).is_file()
    assert _no_temp_files(out)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "features.parquet"), table, check_dtype=False)
    csv = pd.read_csv(out / "features.csv")
    np.testing.assert_array_equal(csv[features].to_numpy(), values.to_numpy())
    info = json.loads((out / "extraction.json").read_text())
    assert info["counts"]["rows"] == len(table) and info["counts"]["failed"] == 0
    assert info["handcrafted"]["settings_hash"] and info["versions"]["numpy"] == np.__version__
    assert info["regions"] == ["tumor", "ln"] and info["deep"] is None
    # one cache entry per distinct (image, mask, label, spacing) input
    items, _ = plan_items(cohort)
    assert len(list((out / "cache" / "handcrafted").glob("*.json"))) == len({it.input_key for it in items})


class _Interrupt(Exception):
    pass


def _interrupt_after(n: int):
    def callback(stage: str, done: int, total: int) -> None:
        if stage == "handcrafted" and done == n:
            raise _Interrupt

    return callback


def test_two_workers_give_the_serial_table_and_resume_an_interrupted_run(serial, tmp_path):
    cohort, _, first = serial
    total = len(first.status)
    with pytest.raises(_Interrupt):
        extract_cohort(
            cohort,
            tmp_path,
            handcrafted=PARAMS,
            deep=None,
            workers=2,
            progress=False,
            callback=_interrupt_after(5),
        )
    assert not (tmp_path / "features.parquet").exists() and _no_temp_files(tmp_path)
    finished = len(list((tmp_path / "cache" / "handcrafted").glob("*.json")))
    assert 5 <= finished < total  # running tasks finish (and are cached), queued ones are cancelled

    result = extract_cohort(cohort, tmp_path, handcrafted=PARAMS, deep=None, workers=2, progress=False)
    assert result.counts["handcrafted"] == {"computed": total - finished, "cached": finished, "failed": 0}
    pd.testing.assert_frame_equal(result.table, first.table)
    pd.testing.assert_frame_equal(
        result.status.drop(columns=["seconds", "cached"]), first.status.drop(columns=["seconds", "cached"])
    )


def test_rerun_loads_everything_from_the_cache(serial):
    cohort, out, first = serial
    result = extract_cohort(cohort, out, handcrafted=PARAMS, deep=None, workers=2, progress=False)
    assert result.computed == 0
    assert result.counts["handcrafted"] == {"computed": 0, "cached": len(first.status), "failed": 0}
    assert result.status["cached"].all()
    pd.testing.assert_frame_equal(result.table, first.table)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "features.parquet"), first.table, check_dtype=False)


def test_other_settings_do_not_reuse_the_cache(serial):
    cohort, out, first = serial
    params = {**PARAMS, "setting": {**PARAMS["setting"], "binWidth": 10}}
    result = extract_cohort(
        cohort, out / "binwidth10", handcrafted=params, deep=None, workers=1, progress=False
    )
    assert result.counts["handcrafted"]["cached"] == 0
    assert not np.array_equal(
        result.table["tumor_original_firstorder_Entropy"], first.table["tumor_original_firstorder_Entropy"]
    )


def test_interrupted_run_resumes_without_recomputing(serial, tmp_path):
    cohort, _, first = serial
    total = len(first.status)
    with pytest.raises(_Interrupt):
        extract_cohort(
            cohort,
            tmp_path,
            handcrafted=PARAMS,
            deep=None,
            workers=1,
            progress=False,
            callback=_interrupt_after(7),
        )
    for name in OUTPUTS:
        assert not (tmp_path / name).exists()
    assert _no_temp_files(tmp_path)
    assert len(list((tmp_path / "cache" / "handcrafted").glob("*.json"))) == 7

    result = extract_cohort(cohort, tmp_path, handcrafted=PARAMS, deep=None, workers=1, progress=False)
    assert result.counts["handcrafted"] == {"computed": total - 7, "cached": 7, "failed": 0}
    assert result.status["cached"].sum() == 7
    pd.testing.assert_frame_equal(result.table, first.table)


def test_corrupt_image_fails_only_its_case(cohort_dir, serial, tmp_path, capsys):
    _, _, first = serial
    copy = tmp_path / "cohort"
    shutil.copytree(cohort_dir, copy)
    cohort = load_manifest(copy / "small.csv")
    bad_case, other_case = cohort.case_ids("train")[0], cohort.case_ids("train")[1]
    image = Path(cohort.region_inputs(bad_case, "tumor").image_path)
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    missing_mask = Path(cohort.region_inputs(other_case, "ln", "reader2").mask_path)
    missing_mask.unlink()
    preset = tmp_path / "params.yaml"
    preset.write_text(yaml.safe_dump(PARAMS))
    out = tmp_path / "out"

    code = cli.main(
        [
            "extract",
            str(copy / "small.csv"),
            "--out",
            str(out),
            "--preset",
            str(preset),
            "--deep",
            "off",
            "--workers",
            "2",
            "--no-progress",
            "--no-normalize",
        ]
    )
    assert code == 1
    captured = capsys.readouterr()
    assert bad_case in captured.err and "1 failure" not in captured.out and "4 failure(s)" in captured.out

    status = pd.read_csv(out / "status.csv", keep_default_na=False)
    failed = status[status["status"] == "failed"]
    assert sorted(zip(failed["case_id"], failed["region"], failed["variant"], strict=True)) == sorted(
        [(bad_case, "tumor", v) for v in ("main", "reader2", "repeat")] + [(other_case, "ln", "reader2")]
    )
    assert failed["error"].str.len().gt(0).all()
    bad_errors = failed[failed["case_id"] == bad_case]["error"]
    assert bad_errors.str.contains(str(image)).all() and bad_errors.str.contains(f"case {bad_case}").all()
    missing_error = failed[failed["case_id"] == other_case]["error"].item()
    assert "file not found" in missing_error and "ln_mask_reader2" in missing_error
    assert pd.read_csv(out / "failures.csv")["case_id"].tolist() == failed["case_id"].tolist()

    table = pd.read_parquet(out / "features.parquet")
    assert table.shape == first.table.shape
    tumor = [c for c in table.columns if c.startswith("tumor_")]
    ln = [c for c in table.columns if c.startswith("ln_")]
    bad_rows = table["case_id"] == bad_case
    assert table.loc[bad_rows, tumor].isna().all(axis=None)
    pd.testing.assert_frame_equal(table.loc[bad_rows, ln], first.table.loc[bad_rows, ln], check_dtype=False)
    lost = bad_rows | ((table["case_id"] == other_case) & (table["variant"] == "reader2"))
    pd.testing.assert_frame_equal(table[~lost], first.table[~lost], check_dtype=False)
    info = json.loads((out / "extraction.json").read_text())
    assert info["counts"]["failed"] == 4 and len(info["failures"]) == 4


def test_deep_features_train_on_training_cases_then_apply_saved_heads(cohort_dir, tmp_path):
    cohort = load_manifest(cohort_dir / "small.csv")
    out = tmp_path / "train"
    result = extract_cohort(
        cohort, out, handcrafted=None, deep="none", deep_options=DEEP_OPTIONS, workers=1, progress=False
    )
    deep_cols = [f"{r}_deep_{i:03d}" for r in ("tumor", "ln") for i in range(128)]
    assert result.feature_columns() == deep_cols
    assert set(result.deep_models) == {"tumor", "ln"}
    for model in result.deep_models.values():
        assert model.training_summary_["n_cases"] == len(cohort.case_ids("train"))
        assert model.backbone_info["weights"] == "none"
    items = len(result.status)
    assert result.counts["deep_trunk"] == {"computed": items, "cached": 0, "failed": 0}
    assert result.counts["deep_heads"] == {"computed": 2, "cached": 0}
    values = result.table[deep_cols]
    assert values.notna().sum().sum() == values.size - 128  # the missing LN repeat mask
    assert (values.fillna(0) >= 0).all(axis=None) and np.nanstd(values.to_numpy()) > 0  # ReLU bottleneck
    info = result.info["deep"]
    assert (
        info["regions"]["tumor"]["head"] == "trained"
        and info["regions"]["ln"]["backbone"]["weights"] == "none"
    )

    rerun = extract_cohort(
        cohort, out, handcrafted=None, deep="none", deep_options=DEEP_OPTIONS, workers=1, progress=False
    )
    assert rerun.computed == 0 and rerun.counts["deep_heads"]["cached"] == 2
    pd.testing.assert_frame_equal(rerun.table, result.table)

    applied = extract_cohort(
        cohort,
        tmp_path / "apply",
        handcrafted=None,
        deep=None,
        workers=1,
        progress=False,
        fitted_deep=result.deep_models,
    )
    assert applied.counts["deep_heads"] == {"computed": 0, "cached": 0}
    assert applied.info["deep"]["regions"]["ln"]["head"] == "given"
    # float32 features of the same single-crop computation: 1e-6 relative allows rounding, and is 10x
    # tighter than the batch-mate effect this guards against (1.4e-5 relative on an Intel Xeon)
    pd.testing.assert_frame_equal(applied.table, result.table, check_exact=False, rtol=1e-6, atol=1e-7)

    # new cases without a training split: saved heads apply, training a head is refused
    manifest = pd.read_csv(cohort_dir / "small.csv", dtype=str, keep_default_na=False)
    manifest[manifest["split"] != "train"].to_csv(cohort_dir / "new_cases.csv", index=False)
    new = load_manifest(cohort_dir / "new_cases.csv")
    with pytest.raises(ValueError, match="deep features need a head trained on the 'train' split"):
        extract_cohort(
            new,
            tmp_path / "refused",
            handcrafted=None,
            deep="none",
            deep_options=DEEP_OPTIONS,
            workers=1,
            progress=False,
        )
    predicted = extract_cohort(
        new,
        tmp_path / "new",
        handcrafted=None,
        deep=None,
        workers=1,
        progress=False,
        fitted_deep=result.deep_models,
    )
    expected = result.table[result.table["case_id"].isin(new.case_ids())].reset_index(drop=True)
    # other cases in the run (the training cases are gone): a case's features must not move (see above)
    pd.testing.assert_frame_equal(predicted.table, expected, check_exact=False, rtol=1e-6, atol=1e-7)


def test_missing_imagenet_weights_stop_the_run_with_the_place_to_put_them(
    cohort_dir, tmp_path, monkeypatch, capsys
):
    monkeypatch.delenv("ALNM_VGG19_WEIGHTS", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "out"
    code = cli.main(
        [
            "extract",
            str(cohort_dir / "small.csv"),
            "--out",
            str(out),
            "--deep",
            "imagenet",
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "vgg19-dcbb9e9d.pth" in err and str(tmp_path / "torch") in err
    assert not (out / "cache").exists() and not (out / "features.parquet").exists()


def test_nothing_to_extract_is_refused(serial, tmp_path):
    cohort, _, _ = serial
    with pytest.raises(ValueError, match="nothing to extract"):
        extract_cohort(cohort, tmp_path, handcrafted=None, deep=None, progress=False)


def test_extract_resolves_its_settings_as_train_does(cohort_dir, serial, tmp_path, caplog):
    """One settings source: study.yaml's ``settings:`` applies to ``alnm extract`` as to ``alnm train``; an
    option overrides it with a warning; a parameter file's own ``normalize`` yields to the run's, warned."""
    _, _, first = serial
    copy = tmp_path / "cohort"
    shutil.copytree(cohort_dir, copy)
    preset = copy / "params.yaml"
    preset.write_text(yaml.safe_dump(PARAMS))
    study = yaml.safe_load((copy / "study.yaml").read_text())
    study["settings"] = {
        **(study.get("settings") or {}),
        "handcrafted": str(preset),
        "deep": "off",
        "normalize": False,
    }
    (copy / "study.yaml").write_text(yaml.safe_dump(study))

    out = tmp_path / "from_study"
    assert (
        cli.main(["extract", str(copy / "small.csv"), "--out", str(out), "--workers", "1", "--no-progress"])
        == 0
    )
    info = json.loads((out / "extraction.json").read_text())
    assert info["settings"]["handcrafted"] == str(preset) and info["settings"]["normalize"] is False
    assert info["deep"] is None and "normalize" not in info["handcrafted"]["params"]["setting"]
    # the same features as the library call with those parameters (same process, same inputs: equal)
    pd.testing.assert_frame_equal(pd.read_parquet(out / "features.parquet"), first.table, check_dtype=False)

    caplog.clear()
    out = tmp_path / "cli_wins"
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.pipeline"):
        cli.main(
            [
                "extract",
                str(copy / "small.csv"),
                "--out",
                str(out),
                "--workers",
                "1",
                "--no-progress",
                "--normalize",
            ]
        )
    assert "setting normalize: the command line gives True, study.yaml False; True is used" in caplog.text
    info = json.loads((out / "extraction.json").read_text())
    assert (
        info["settings"]["normalize"] is True
        and info["handcrafted"]["params"]["setting"]["normalize"] is True
    )

    caplog.clear()
    preset.write_text(yaml.safe_dump({**PARAMS, "setting": {**PARAMS["setting"], "normalize": True}}))
    out = tmp_path / "file_yields"
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.pipeline"):
        cli.main(["extract", str(copy / "small.csv"), "--out", str(out), "--workers", "1", "--no-progress"])
    assert f"{preset} sets normalize: true, but the run's setting normalize is false" in caplog.text
    info = json.loads((out / "extraction.json").read_text())
    assert "normalize" not in info["handcrafted"]["params"]["setting"]
    pd.testing.assert_frame_equal(pd.read_parquet(out / "features.parquet"), first.table, check_dtype=False)
