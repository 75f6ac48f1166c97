"""End to end on a small SYNTHETIC cohort: train → saved model → predict / evaluate / run, leakage, failures.

One cohort and one run are shared by the module (us2d handcrafted features, no deep features, so it
stays fast); later runs reuse its feature cache.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.bundle import MODEL_FILE
from ALNMPredictorLib.cli import main as alnm
from ALNMPredictorLib.errors import BundleError
from ALNMPredictorLib.pipeline import (
    PipelineSettings,
    clinical_frame,
    load_model,
    predict_cases,
    run_pipeline,
    train,
)
from ALNMPredictorLib.stats import auc_ci, classification_metrics

SETTINGS = dict(handcrafted="us2d", deep="off", lasso_folds=5, workers=2, n_boot=50, seed=1, optimism_boot=4)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> dict:
    from ALNMPredictorLib.synth import synth_cohort

    root = tmp_path_factory.mktemp("pipeline")
    cohort = synth_cohort(root / "cohort", n_patients=72, seed=4)
    trained, evaluated = run_pipeline(
        cohort.manifest_path, root / "run", PipelineSettings(**SETTINGS), progress=False
    )
    return {"root": root, "manifest": cohort.manifest_path, "trained": trained, "evaluated": evaluated}


def _copy_cache(src_run: Path, dst_run: Path) -> None:
    shutil.copytree(src_run / "features" / "cache", dst_run / "features" / "cache")


def test_run_writes_model_predictions_and_report(shared: dict) -> None:
    run = shared["root"] / "run"
    trained = shared["trained"]
    assert (run / "model" / MODEL_FILE).is_file() and (run / "predictions.csv").is_file()
    report = run / "report" / "report.html"
    assert report.is_file() and "SYNTHETIC" in report.read_text()
    assert (run / "report" / "tables" / "table3.csv").is_file()
    preds = trained.predictions
    assert set(preds["split"]) == {"train", "internal", "external", "prospective"}
    assert (preds["status"] == "ok").all()
    for col in ("tumor_score", "ln_score", "prob_clinical_radiomics", "risk_group", "total_points"):
        assert preds[col].notna().all(), col
    cut = trained.model.combined_model_.cutoff
    assert ((preds["prob_clinical_radiomics"] >= cut) == (preds["risk_group"] == "high")).all()
    info = json.loads((run / "model" / MODEL_FILE).read_text())
    assert info["synthetic"] is True and info["settings"]["handcrafted"] == "us2d"
    # images are standardised by default, and the saved parameters say so for prediction
    assert info["settings"]["normalize"] is True
    hc_setting = info["extraction"]["handcrafted"]["params"]["setting"]
    assert hc_setting["normalize"] is True and hc_setting["normalizeScale"] == 32
    # training cases are inside the training range of every score feature
    train = preds[preds["split"] == "train"]
    assert train["tumor_out_of_range"].eq(0).all() and train["ln_out_of_range"].eq(0).all()
    assert preds["tumor_out_of_range"].notna().all()
    assert info["training"]["n"] == int((preds["split"] == "train").sum())


def test_internal_validation_is_in_the_model_the_tables_and_the_report(shared: dict) -> None:
    """optimism_boot=4: the whole model refitted on 4 bootstrap resamples, saved, tabulated and reported."""
    run = shared["root"] / "run"
    info = json.loads((run / "model" / MODEL_FILE).read_text())
    validation = info["internal_validation"]
    assert validation["n_boot"] == 4 and validation["seed"] == SETTINGS["seed"]
    for index in ("auc", "intercept", "slope", "brier"):
        row = validation["table"][index]
        if index in ("intercept", "slope") and None in (row["apparent"], row["optimism"]):
            # the model separates its 40-odd training cases (Firth): no finite recalibration slope there
            assert row["corrected"] is None
            continue
        assert 1 <= row["n"] <= 4
        assert row["optimism"] == pytest.approx(row["training"] - row["test"], rel=1e-12)
        assert row["corrected"] == pytest.approx(row["apparent"] - row["optimism"], rel=1e-12)
    # the apparent AUC is the training AUC of the combined model in the report's Table 3
    table3 = pd.read_csv(run / "report" / "tables" / "table3.csv")
    train_auc = table3[(table3["split"] == "train") & (table3["model"] == "clinical_radiomics")]["auc"].iloc[
        0
    ]
    assert validation["table"]["auc"]["apparent"] == pytest.approx(train_auc, rel=1e-9)
    written = pd.read_csv(run / "report" / "tables" / "internal_validation.csv").set_index("index")
    assert written.loc["auc", "corrected"] == pytest.approx(
        validation["table"]["auc"]["corrected"], rel=1e-12
    )
    stability = pd.read_csv(run / "report" / "tables" / "selection_stability.csv")
    final = stability[stability["final"].astype(bool)]
    model = shared["trained"].model
    assert set(final["feature"]) == {f for s in model.region_scores_.values() for f in s.selected_}
    assert stability["bootstrap"].between(0, 1).all() and stability["crossfit"].between(0, 1).all()
    html = (run / "report" / "report.html").read_text()
    assert 'id="optimism"' in html and 'id="optimism-table"' in html and 'id="optimism-auc"' in html
    assert "How much of the training performance is optimism" in html and "cross-fitted" in html
    assert (run / "report" / "figures" / "selection_stability.png").is_file()


def test_report_numbers_equal_the_stats_api_on_the_written_predictions(shared: dict) -> None:
    report_dir = shared["root"] / "run" / "report"
    preds = pd.read_csv(report_dir / "predictions.csv")
    table3 = pd.read_csv(report_dir / "tables" / "table3.csv")
    cutoff = shared["trained"].model.combined_model_.cutoff
    for split in ("internal", "external"):
        part = preds[preds["split"] == split]
        row = table3[(table3["split"] == split) & (table3["model"] == "clinical_radiomics")].iloc[0]
        auc = auc_ci(part["label"], part["prob_clinical_radiomics"])
        assert row["auc"] == pytest.approx(auc.auc, rel=1e-9)
        assert row["auc_low"] == pytest.approx(auc.low, rel=1e-9)
        metrics = classification_metrics(part["label"], part["prob_clinical_radiomics"], cutoff)
        assert row["sensitivity"] == pytest.approx(metrics.sensitivity, rel=1e-9)
        assert row["specificity"] == pytest.approx(metrics.specificity, rel=1e-9)


def test_reloaded_bundle_predicts_like_the_model_in_memory(shared: dict) -> None:
    trained = shared["trained"]
    loaded = load_model(trained.model_dir)
    from ALNMPredictorLib.cohort import load_manifest

    cohort = load_manifest(shared["manifest"])
    data = trained.features.main.join(clinical_frame(cohort), how="outer")
    again = predict_cases(loaded.model, data)
    for col in ("tumor_score", "ln_score", "prob_clinical_radiomics", "prob_clinical", "total_points"):
        np.testing.assert_allclose(
            again[col].astype(float),
            trained.predictions.loc[again.index, col].astype(float),
            rtol=1e-12,
            atol=0,
        )


def test_tampered_bundle_is_refused(shared: dict, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    shutil.copytree(shared["trained"].model_dir, copy)
    body = json.loads((copy / MODEL_FILE).read_text())
    body["model"]["combined_model"]["cutoff"] = 0.01
    (copy / MODEL_FILE).write_text(json.dumps(body))
    with pytest.raises(BundleError, match="does not match its checksum"):
        load_model(copy)


def test_alnm_predict_cli_equals_training_predictions(shared: dict, capsys: pytest.CaptureFixture) -> None:
    run = shared["root"] / "run"
    out = shared["root"] / "predicted.csv"
    status = alnm(
        [
            "predict",
            str(shared["manifest"]),
            "--model",
            str(run / "model"),
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert status == 0, capsys.readouterr().err
    # the training run's feature cache is reused by key: nothing is extracted again, no re-segmentation read
    work = shared["root"] / "predicted-work" / "features"
    info = json.loads((work / "extraction.json").read_text())
    n_rois = len(shared["trained"].predictions) * 2
    assert info["counts"]["handcrafted"] == {"computed": 0, "cached": n_rois, "failed": 0}
    assert set(pd.read_parquet(work / "features.parquet")["variant"]) == {"main"}
    assert not (work / "cache").exists()
    got = pd.read_csv(out).set_index("case_id")
    want = shared["trained"].predictions
    # predictions.csv holds 6 decimals (PREDICTION_DECIMALS): equal to half a unit of the 6th
    np.testing.assert_allclose(
        got.loc[want.index, "prob_clinical_radiomics"], want["prob_clinical_radiomics"], rtol=0, atol=5e-7
    )


def test_no_leakage_shuffling_test_labels_changes_nothing_fitted(shared: dict) -> None:
    root = shared["root"]
    manifest = pd.read_csv(shared["manifest"], dtype=str, keep_default_na=False)
    test = manifest["split"] != "train"
    rng = np.random.default_rng(0)
    manifest.loc[test, "label"] = rng.permutation(manifest.loc[test, "label"].to_numpy())
    assert (manifest["label"] != pd.read_csv(shared["manifest"], dtype=str)["label"]).any()
    shuffled = shared["manifest"].with_name("manifest_shuffled.csv")
    manifest.to_csv(shuffled, index=False)
    _copy_cache(root / "run", root / "shuffled")
    again = train(shuffled, root / "shuffled", PipelineSettings(**SETTINGS), progress=False)
    assert again.model.to_dict() == shared["trained"].model.to_dict()


def test_run_with_a_corrupt_image_finishes_lists_the_case_and_exits_1(
    shared: dict, capsys: pytest.CaptureFixture
) -> None:
    root = shared["root"]
    manifest = pd.read_csv(shared["manifest"], dtype=str, keep_default_na=False)
    victim = manifest.loc[manifest["split"] == "external", "case_id"].iloc[0]
    bad_png = root / "cohort" / "images" / "corrupt.png"
    bad_png.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    manifest.loc[manifest["case_id"] == victim, "ln_image"] = "images/corrupt.png"
    broken = shared["manifest"].with_name("manifest_broken.csv")
    manifest.to_csv(broken, index=False)
    _copy_cache(root / "run", root / "broken")
    status = alnm(
        [
            "run",
            str(broken),
            "--out",
            str(root / "broken"),
            "--preset",
            "us2d",
            "--deep",
            "off",
            "--seed",
            "1",
            "--workers",
            "2",
            "--no-progress",
            "--optimism-boot",
            "0",
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert f"case {victim}" in err
    written = pd.read_csv(root / "broken" / "predictions.csv")
    # the manifest's order with the failed case in its place; the Nomo-score and its rule first
    assert written["case_id"].astype(str).tolist() == manifest["case_id"].tolist()
    assert written.columns[:8].tolist() == [
        "case_id",
        "split",
        "center",
        "label",
        "status",
        "nomo_score",
        "risk_group",
        "youden_cutoff",
    ]
    assert pd.api.types.is_integer_dtype(written["label"])
    ok = written[written["status"] == "ok"]
    assert (ok["nomo_score"] == ok["prob_clinical_radiomics"]).all()
    assert ((ok["nomo_score"] >= ok["youden_cutoff"]) == (ok["risk_group"] == "high")).all()
    assert (ok["nomo_score"].round(6) == ok["nomo_score"]).all() and (
        ok["total_points"].round(2) == ok["total_points"]
    ).all()
    preds = written.set_index("case_id")
    assert preds.loc[victim, "status"] == "failed" and "ln_image" in preds.loc[victim, "error"]
    assert (preds.drop(index=victim)["status"] == "ok").all()
    assert victim in (root / "broken" / "report" / "report.html").read_text()


def test_demo_runs_every_stage_and_labels_simulated_readers(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status = alnm(
        [
            "demo",
            "--out",
            str(tmp_path / "demo"),
            "--patients",
            "60",
            "--seed",
            "2",
            "--preset",
            "us2d",
            "--deep",
            "off",
            "--workers",
            "2",
            "--optimism-boot",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    for stage in ("cohort", "validate", "train", "readers", "evaluate"):
        assert f"== {stage}" in out
    assert "stage times:" in out
    html = (tmp_path / "demo" / "report" / "report.html").read_text()
    assert "SYNTHETIC" in html and "published study" in html
    assert "simulated" in html.lower() and 'id="readers"' in html
    simulated = pd.read_csv(tmp_path / "demo" / "report" / "reads_simulated.csv")
    assert (
        set(simulated.columns) >= {"case_id", "reader", "session", "call"}
        and simulated["reader"].str.contains("simulated").all()
    )
    reads = pd.read_csv(tmp_path / "demo" / "report" / "tables" / "reader_metrics.csv")
    assert set(reads["session"]) == {"unaided", "aided"}
    assert reads["reader"].str.contains("simulated").all()


def test_report_warns_about_cases_outside_the_training_range() -> None:
    from ALNMPredictorLib.pipeline import out_of_range_notes

    preds = pd.DataFrame(
        {
            "split": ["train", "train", "external", "external", "external"],
            "tumor_out_of_range": [0, 0, 2, 0, 5],
            "ln_out_of_range": [0, 0, 0, 0, float("nan")],  # nan: a failed case
        },
        index=pd.Index(["a", "b", "c", "d", "e"], name="case_id"),
    )
    assert out_of_range_notes(preds) == [
        "external: 2 of 3 case(s) have tumor score features outside the training range (at most 5); they were "
        "clipped to it (column tumor_out_of_range of the predictions)"
    ]
    assert out_of_range_notes(preds.drop(columns=["tumor_out_of_range", "ln_out_of_range"])) == []


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_predict_applies_the_models_own_normalisation_not_the_current_default(tmp_path: Path) -> None:
    """A model trained on raw grey levels (handcrafted + random-backbone deep features) predicts, in a
    fresh folder with today's defaults (standardisation on), exactly what it predicted when trained; so
    does the same model saved as a bundle from before the setting existed (no ``normalize`` recorded)."""
    pytest.importorskip(
        "torch", reason="its model has deep features (.ci/run's Slicer-version jobs run without PyTorch)"
    )
    from ALNMPredictorLib.synth import synth_cohort

    cohort = synth_cohort(tmp_path / "cohort", n_patients=48, seed=2)
    settings = PipelineSettings(
        **{
            **SETTINGS,
            "deep": "none",
            "deep_input_size": 32,
            "deep_epochs": 2,
            "optimism_boot": 0,
            "normalize": False,
        }
    )
    trained = train(cohort.manifest_path, tmp_path / "train", settings, progress=False)
    info = json.loads((trained.model_dir / MODEL_FILE).read_text())
    assert info["settings"]["normalize"] is False
    assert "normalize" not in (info["extraction"]["handcrafted"]["params"].get("setting") or {})
    from ALNMPredictorLib.pipeline import predict, save_model

    loaded = load_model(trained.model_dir)
    old_info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    old_info["settings"] = {k: v for k, v in old_info["settings"].items() if k != "normalize"}
    old_dir = save_model(tmp_path / "old_model", loaded.model, old_info, loaded.deep_models)
    assert PipelineSettings().normalize is True  # the default differs from the models' setting
    want = trained.predictions
    for name, model_dir in (("fresh", trained.model_dir), ("fresh_old", old_dir)):
        again, _, _ = predict(cohort.manifest_path, model_dir, tmp_path / name, progress=False)
        for col in ("tumor_score", "ln_score", "prob_clinical_radiomics"):
            np.testing.assert_allclose(
                again.loc[want.index, col].astype(float),
                want[col].astype(float),
                rtol=1e-9,
                atol=1e-12,
                err_msg=f"{name}: {col}",
            )


def test_random_backbone_regions_read_from_the_saved_extraction_info() -> None:
    from ALNMPredictorLib.pipeline import random_backbone_regions

    deep = {
        "weights": "imagenet",
        "regions": {"tumor": {"backbone": {"weights": "none"}}, "ln": {"backbone": {"weights": "imagenet"}}},
    }
    assert random_backbone_regions(deep) == ["tumor"]
    assert random_backbone_regions({"weights": "none", "regions": {"ln": {}}}) == ["ln"]
    assert (
        random_backbone_regions(None) == []
        and random_backbone_regions({"weights": "imagenet", "regions": {"ln": {}}}) == []
    )
