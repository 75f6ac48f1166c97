"""casepredict: one case from arrays gives the numbers of ``alnm predict`` on files; input checks; reads; figures."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from casepredict_fixture import shared_model

from ALNMPredictorLib import casefigures, clinicalform, demomodel, reader_study
from ALNMPredictorLib import casepredict as cp
from ALNMPredictorLib.errors import InputError


@pytest.fixture(scope="module")
def model():
    return shared_model()


@pytest.fixture(scope="module")
def loaded(model):
    return cp.load_model_cached(model.model_dir)


@pytest.fixture(scope="module")
def case(model):
    return demomodel.demo_case(model.cases_dir, 0)


def _close(a: float, b: float, rel: float = 1e-9) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def test_clinical_fields_come_from_the_model(loaded) -> None:
    fields = {f.name: f for f in clinicalform.clinical_fields(loaded)}
    assert fields["us_reported_alnm"].kind == "categorical" and fields["us_reported_alnm"].required
    assert fields["us_reported_alnm"].levels == ("absent", "present")
    assert fields["tumor_size_cm"].kind == "continuous" and fields["tumor_size_cm"].required
    # used only by the clinical model: asked for, but optional
    optional = [f for f in fields.values() if not f.required]
    assert all("clinical" in f.models for f in optional)


def test_predict_case_equals_alnm_predict_on_files(model, loaded, tmp_path) -> None:
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.pipeline import predict

    cases = [demomodel.demo_case(model.cases_dir, i) for i in range(2)]
    manifest = load_manifest(model.cases_dir / "manifest.csv")
    ids = [c.case_id for c in cases]
    subset = tmp_path / "manifest.csv"
    table = pd.read_csv(model.cases_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["case_id"].isin(ids)]
    for col in [c for c in table.columns if c.endswith(("_image", "_mask", "_reader2", "_repeat"))]:
        table[col] = [str(model.cases_dir / v) if v else "" for v in table[col]]
    table.to_csv(subset, index=False)
    (tmp_path / "study.yaml").write_text((model.cases_dir / "study.yaml").read_text())
    assert manifest.regions == ["tumor", "ln"]
    expected, _, _ = predict(subset, model.model_dir, tmp_path / "work", progress=False)
    for c in cases:
        got = cp.predict_case(loaded, c.regions, c.clinical, c.case_id)
        row = expected.loc[c.case_id]
        assert row["status"] == "ok"
        for col, value in got.row.items():
            if isinstance(value, float) and not math.isnan(value):
                assert _close(value, float(row[col])), (c.case_id, col, value, row[col])
            elif col not in ("error",):
                assert str(value) == str(row[col]) or (pd.isna(value) and pd.isna(row[col])), col
        assert got.risk_group in ("high", "low")
        assert _close(got.probability, float(row["prob_clinical_radiomics"]))
        assert set(got.points) == {"tumor_score", "ln_score", "us_reported_alnm", "tumor_size_cm"}
        assert _close(sum(got.points.values()), got.total_points)
        explain = got.explain.set_index("predictor")
        assert _close(float(explain.loc["total", "value"]), got.probability)


def test_records_name_every_value(loaded, case) -> None:
    got = cp.predict_case(loaded, case.regions, case.clinical, case.case_id)
    records = {r["quantity"]: r for r in got.records()}
    for key in (
        "tumor_score",
        "ln_score",
        "nomo_score",
        "cutoff",
        "risk_group",
        "total_points",
        "points_us_reported_alnm",
        "prob_clinical_radiomics",
    ):
        assert key in records
    assert records["nomo_score"]["value"] == got.probability
    assert records["risk_group"]["text"] == got.risk_group
    assert records["model"]["text"] == "synthetic demo"  # the demo model is synthetic
    assert "synthetic demo" in got.summary().lower()


@pytest.mark.parametrize("intensity", ["auto", "zscore"])
def test_deep_features_equal_the_cohort_extraction(model, tmp_path, intensity) -> None:
    pytest.importorskip(
        "torch", reason="deep features need PyTorch (.ci/run's Slicer-version jobs run without it)"
    )
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.deep import DeepFeatureExtractor, crop_roi
    from ALNMPredictorLib.extraction import extract_cohort
    from ALNMPredictorLib.pipeline import LoadedModel

    cases = [demomodel.demo_case(model.cases_dir, i) for i in range(4)]
    heads = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random backbone warning
        for region in ("tumor", "ln"):
            head = DeepFeatureExtractor(
                weights="none",
                input_size=32,
                epochs=1,
                seed=0,
                n_views=0,
                val_fraction=0.0,
                device="cpu",
                intensity=intensity,
            )
            crops = np.stack(
                [
                    crop_roi(
                        c.regions[region].image, c.regions[region].mask, head.margin, 32, intensity=intensity
                    )
                    for c in cases
                ]
            )
            heads[region] = head.fit(crops, np.array([0, 1, 0, 1])) or head
        result = extract_cohort(
            load_manifest(model.cases_dir / "manifest.csv"),
            tmp_path / "features",
            handcrafted=None,
            deep=None,
            fitted_deep=heads,
            workers=1,
            progress=False,
        )
    table = result.table[result.table["variant"] == "main"].set_index("case_id")
    fake = LoadedModel(model=None, info={"extraction": {"handcrafted": None}}, deep_models=heads)
    for c in cases[:2]:
        for region in ("tumor", "ln"):
            got = cp.region_features(fake, region, c.regions[region], c.case_id)
            assert len(got) == 128 and all(k.startswith(f"{region}_deep_") for k in got)
            expected = table.loc[c.case_id, list(got)].to_numpy(dtype=float)
            np.testing.assert_allclose(np.array(list(got.values())), expected, rtol=1e-5, atol=1e-6)


def test_missing_and_wrong_clinical_values(loaded, case) -> None:
    with pytest.raises(InputError, match="column us_reported_alnm: clinical factor required"):
        cp.predict_case(loaded, case.regions, {**case.clinical, "us_reported_alnm": None}, "X1")
    with pytest.raises(ValueError, match="case X1, column us_reported_alnm: unknown level 'maybe'"):
        cp.predict_case(loaded, case.regions, {**case.clinical, "us_reported_alnm": "maybe"}, "X1")
    with pytest.raises(ValueError, match="column tumor_size_cm: not a number"):
        clinicalform.parse_clinical(loaded, {**case.clinical, "tumor_size_cm": "big"}, "X1")
    with pytest.raises(ValueError, match="tumor_size_cm: not a finite number"):
        clinicalform.parse_clinical(loaded, {**case.clinical, "tumor_size_cm": float("inf")}, "X1")
    optional = [f.name for f in clinicalform.clinical_fields(loaded) if not f.required]
    values = clinicalform.parse_clinical(
        loaded, {k: v for k, v in case.clinical.items() if k not in optional}, "X1"
    )
    assert set(values) == {"us_reported_alnm", "tumor_size_cm"}
    assert isinstance(values["tumor_size_cm"], float) and values["us_reported_alnm"] in ("absent", "present")


def test_wrong_images_and_masks(loaded, case) -> None:
    tumor = case.regions["tumor"]
    empty = cp.RegionArrays(tumor.image, np.zeros_like(tumor.mask), tumor.spacing)
    with pytest.raises(ValueError, match="case X2, column tumor_mask: mask is empty"):
        cp.predict_case(loaded, {**case.regions, "tumor": empty}, case.clinical, "X2")
    shifted = cp.RegionArrays(tumor.image, tumor.mask[:-3], tumor.spacing)
    with pytest.raises(ValueError, match="column tumor_mask: mask size .* differs from image size"):
        cp.predict_case(loaded, {**case.regions, "tumor": shifted}, case.clinical, "X2")
    volume = cp.RegionArrays(np.stack([tumor.image] * 3), tumor.mask, tumor.spacing)
    with pytest.raises(ValueError, match="column tumor_image: a 2D grey or RGB image is needed"):
        cp.predict_case(loaded, {**case.regions, "tumor": volume}, case.clinical, "X2")
    nan = cp.RegionArrays(np.where(tumor.mask, np.nan, 1.0), tumor.mask, tumor.spacing)
    with pytest.raises(ValueError, match="NaN"):
        cp.predict_case(loaded, {**case.regions, "tumor": nan}, case.clinical, "X2")
    with pytest.raises(ValueError, match="the model needs region.s. ln"):
        cp.predict_case(loaded, {"tumor": tumor}, case.clinical, "X2")
    bad_spacing = cp.RegionArrays(tumor.image, tumor.mask, (0.0, 0.1))
    with pytest.raises(ValueError, match="tumor_spacing"):
        cp.predict_case(loaded, {**case.regions, "tumor": bad_spacing}, case.clinical, "X2")


def test_leading_slice_axis_and_rgb_give_the_same_numbers(loaded, case) -> None:
    base = cp.predict_case(loaded, case.regions, case.clinical, "c")
    tumor = case.regions["tumor"]
    as_volume = cp.RegionArrays(tumor.image[None], tumor.mask[None].astype(np.uint8), tumor.spacing)
    rgb = cp.RegionArrays(np.repeat(tumor.image[..., None], 3, axis=2), tumor.mask, tumor.spacing)
    for arrays in (as_volume, rgb):
        other = cp.predict_case(loaded, {**case.regions, "tumor": arrays}, case.clinical, "c")
        assert other.probability == base.probability and other.scores == base.scores


def test_record_read_enforces_the_protocol_and_writes_a_valid_reads_csv(tmp_path) -> None:
    from ALNMPredictorLib.reader_study import load_reads

    reads = tmp_path / "reads.csv"
    with pytest.raises(ValueError, match="record the unaided call before the aided one"):
        reader_study.record_read(reads, "P1", "R1", "aided", 1)
    reader_study.record_read(reads, "P1", "R1", "unaided", 0, confidence=2)
    with pytest.raises(ValueError, match="already recorded the unaided call"):
        reader_study.record_read(reads, "P1", "R1", "unaided", 1, confidence=2)
    reader_study.record_read(reads, "P1", "R1", "aided", 1, confidence=4)
    reader_study.record_read(reads, "P2", "R1", "unaided", 1, confidence=5)
    with pytest.raises(ValueError, match="session must be"):
        reader_study.record_read(reads, "P2", "R1", "later", 1)
    with pytest.raises(ValueError, match="reader"):
        reader_study.record_read(reads, "P2", " ", "unaided", 1)
    with pytest.raises(ValueError, match="call must be 0 or 1"):
        reader_study.record_read(reads, "P3", "R1", "unaided", 2, confidence=1)
    table = load_reads(reads)
    assert list(table["session"]) == ["unaided", "aided", "unaided"]
    assert list(table["call"]) == [0, 1, 1] and list(table["confidence"]) == [2.0, 4.0, 5.0]
    assert reader_study.read_status(reads, "P1", "R1") == {"unaided": 0, "aided": 1}
    assert reader_study.read_status(reads, "P1", "R2") == {}


def test_figures_and_demo_model(loaded, case, tmp_path) -> None:
    demo = demomodel.ensure_demo_model(None)
    assert demo == demomodel.DEMO_MODEL_RESOURCE and demo.stat().st_size < 2_000_000
    demo_loaded = cp.load_model_cached(demo)
    assert demo_loaded.info["synthetic"] is True
    got = cp.predict_case(loaded, case.regions, case.clinical, case.case_id)
    nomogram = casefigures.figure_png(casefigures.nomogram_figure(loaded, got), tmp_path / "nomogram.png")
    assert nomogram.read_bytes()[:4] == b"\x89PNG"
    calibration = casefigures.calibration_figure(demo, demo_loaded)
    assert calibration is not None
    assert casefigures.figure_png(calibration, tmp_path / "calibration.png").stat().st_size > 1000
    assert casefigures.calibration_figure(tmp_path / "nowhere" / "model") is None


def test_load_model_cached_reports_a_missing_model(tmp_path) -> None:
    with pytest.raises(ValueError, match="model not found"):
        cp.load_model_cached(tmp_path / "absent")
    assert isinstance(
        cp.load_model_cached(Path(demomodel.DEMO_MODEL_RESOURCE)),
        type(cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE)),
    )


def test_a_table_trained_model_refuses_images_clearly(loaded, case) -> None:
    import dataclasses

    table_model = dataclasses.replace(loaded, info={**loaded.info, "feature_source": "table"})
    with pytest.raises(InputError, match="trained on features read from a table"):
        cp.predict_case(table_model, case.regions, case.clinical, "X1")


def test_a_case_unlike_the_training_images_is_flagged(loaded, case) -> None:
    import dataclasses

    normal = cp.predict_case(loaded, case.regions, case.clinical, case.case_id)
    assert (normal.out_of_range == {"tumor": 0, "ln": 0}) != (
        "outside their training range" in normal.summary()
    )
    tumor = case.regions["tumor"]
    image = np.array(tumor.image, dtype=np.float64, copy=True)
    roi = np.asarray(tumor.mask) != 0
    rows, cols = np.indices(image.shape)
    image[roi] = np.where(
        (rows[roi] + cols[roi]) % 2 == 0, 0.0, 255.0
    )  # a checkerboard lesion: no real tissue
    odd = dataclasses.replace(tumor, image=image.astype(np.asarray(tumor.image).dtype))
    got = cp.predict_case(loaded, {**case.regions, "tumor": odd}, case.clinical, case.case_id)
    assert got.out_of_range["tumor"] > 0
    assert (
        f"Note: {got.out_of_range['tumor']} tumor score feature(s) outside their training range"
        in got.summary()
    )
    records = {r["quantity"]: r for r in got.records()}
    assert records["tumor_out_of_range"]["value"] == got.out_of_range["tumor"]
    assert got.row["tumor_out_of_range"] == got.out_of_range["tumor"]
