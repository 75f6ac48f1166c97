"""The Slicer module's logic on a real MRML scene (``slicer-core``, no Slicer application).

ALNMPredictor.py is loaded with Slicer 5.12.3's own Python package (``ScriptedLoadableModule``,
``parameterNodeWrapper``, ``util``) and Qt stand-ins, through the harness of test_slicer_module.py
(``slicer_harness``); everything the logic does with MRML (volumes, segmentations, label maps, tables,
storage nodes) is slicer-core's own.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from slicer_harness import environment

_REASON = environment.available()
if _REASON:
    pytest.skip(_REASON, allow_module_level=True)

ENV = environment.install()
slicer = ENV.slicer
import vtk  # noqa: E402  (after slicer-core, which brings it)
from casepredict_fixture import shared_model  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from ALNMPredictorLib import casepredict as cp  # noqa: E402
from ALNMPredictorLib import demomodel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODULE_FILE = REPO / "ALNMPredictor" / "ALNMPredictor.py"
CANCELLED = (130, -2, -9, -15)


# --------------------------------------------------------------------------------------------------
# Fixtures: the module file as Slicer loads it, a fresh scene per test


@pytest.fixture(scope="module")
def module():
    ENV.reset(testing=True, main_window=False)
    return environment.ModuleHarness(ENV, MODULE_FILE).module


@pytest.fixture()
def scene(tmp_path):
    ENV.reset(testing=True, main_window=False, root=tmp_path / "slicer")
    yield slicer.mrmlScene
    slicer.mrmlScene.Clear(1)


@pytest.fixture(scope="module")
def model():
    return shared_model()


@pytest.fixture(scope="module")
def case(model):
    return demomodel.demo_case(model.cases_dir, 0)


def _labelmap_node(scene, mask: np.ndarray, volume):
    """A label map volume node on the volume's geometry holding ``mask`` (1 inside)."""
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "label")
    image = vtk.vtkImageData()
    image.SetDimensions(mask.shape[1], mask.shape[0], 1)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    node.SetAndObserveImageData(image)
    node.CopyOrientation(volume)
    slicer.util.arrayFromVolume(node)[0] = mask.astype(np.uint8)
    node.Modified()
    return node


def _nodes_from_case(logic, scene, case, regions=("tumor", "ln")) -> dict:
    """Volumes from arrays and segmentations imported from label maps, as a Slicer user would have them."""
    nodes = {}
    for region in regions:
        arrays = case.regions[region]
        volume = logic.addVolumeFromArray(
            np.asarray(arrays.image), arrays.spacing, f"{case.case_id} {region}"
        )
        segmentation = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{region} segmentation")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        label = _labelmap_node(scene, np.asarray(arrays.mask), volume)
        assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(label, segmentation)
        scene.RemoveNode(label)
        nodes[region] = (volume, segmentation, None)
    return nodes


def _write(scene, node, path: Path) -> Path:
    storage = node.CreateDefaultStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(node), f"could not write {path}"
    return path


def _alnm_predict_on_exported_files(scene, nodes, case, model_dir, cases_dir, tmp_path, others=()) -> Path:
    """Write the case's volumes and segments with Slicer's own writers, run ``alnm predict`` on them in a
    subprocess (``others``: further demo cases, from their files, after this one); returns predictions.csv."""
    row = {"case_id": case.case_id}
    for region, (volume, segmentation, _) in nodes.items():
        row[f"{region}_image"] = str(_write(scene, volume, tmp_path / f"{region}.nrrd"))
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentation.GetSegmentation().GetNthSegmentID(0))
        label = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{region} export")
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation, ids, label, volume
        )
        row[f"{region}_mask"] = str(_write(scene, label, tmp_path / f"{region}_mask.nrrd"))
    row.update({k: v for k, v in case.clinical.items() if v is not None})
    rows = [row]
    for other in others:
        extra = {"case_id": other.case_id, **{k: v for k, v in other.clinical.items() if v is not None}}
        for region, (image, mask) in other.files.items():
            extra[f"{region}_image"], extra[f"{region}_mask"] = str(image), str(mask)
        rows.append(extra)
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    (tmp_path / "study.yaml").write_text((cases_dir / "study.yaml").read_text())
    out = tmp_path / "predictions.csv"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ALNMPredictorLib",
            "predict",
            str(manifest),
            "--model",
            str(model_dir),
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    return out


# --------------------------------------------------------------------------------------------------
# MRML <-> arrays


def test_volume_and_segment_become_the_original_arrays(module, scene, case) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    for region, (volume, segmentation, _) in nodes.items():
        image, spacing = logic.volumeArrays(volume)
        np.testing.assert_array_equal(image, case.regions[region].image)
        assert image.dtype == np.uint8 and spacing == pytest.approx(case.regions[region].spacing, rel=1e-12)
        mask = logic.segmentMask(segmentation, None, volume, region)
        np.testing.assert_array_equal(mask, case.regions[region].mask)


def test_logic_prediction_fills_a_table_equal_to_alnm_predict_on_exported_files(
    module, scene, model, case, tmp_path
) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    prediction, table = logic.predictCase(model.model_dir, nodes, case.clinical, case.case_id)
    assert table.GetClassName() == "vtkMRMLTableNode" and table.GetNumberOfRows() == len(prediction.records())
    values = logic.tableValues(table)
    assert values["case_id"] == case.case_id and values["risk_group"] in ("high", "low")

    # the same images and masks exported to files with Slicer's own writers, then `alnm predict`
    out = _alnm_predict_on_exported_files(scene, nodes, case, model.model_dir, model.cases_dir, tmp_path)
    from ALNMPredictorLib.pipeline import POINTS_DECIMALS, PREDICTION_DECIMALS

    expected = pd.read_csv(out).set_index("case_id").loc[case.case_id]
    compared = 0
    for quantity, value in values.items():
        column = {"nomo_score": "prob_clinical_radiomics"}.get(quantity, quantity)
        if column in expected.index and isinstance(value, float):
            # predictions.csv is rounded (pipeline.PREDICTION_DECIMALS, POINTS_DECIMALS): within half its last unit
            points = column == "total_points" or column.startswith("points_")
            half_unit = 0.5 * 10.0 ** -(POINTS_DECIMALS if points else PREDICTION_DECIMALS)
            assert math.isclose(value, float(expected[column]), rel_tol=0, abs_tol=half_unit * (1 + 1e-9)), (
                quantity,
                value,
                expected[column],
            )
            compared += 1
    assert compared >= 10  # scores, probabilities and every predictor's points
    assert values["risk_group"] == expected["risk_group"]


def test_deep_model_panel_equals_alnm_predict_to_1e_6(module, scene, model, case, tmp_path) -> None:
    """A model with deep heads (and deep terms in its region scores): the panel's one case, from nodes, has
    the deep features ``alnm predict`` computes for it in a cohort with other cases, to 1e-6.

    Both run each crop on its own through the same float32 code on this CPU; they run in two processes, so
    the comparison allows 1e-6 (about 8 float32 ulps at 1) instead of asking for identical bits. Scores and
    probabilities: to predictions.csv's rounding (half its last decimal) plus that 1e-6 carried through the score."""
    pytest.importorskip(
        "torch", reason="deep features need PyTorch (.ci/run's Slicer-version jobs run without it)"
    )
    from gradcam_fixture import deep_score_model

    model_dir = deep_score_model()
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    prediction, _ = logic.predictCase(model_dir, nodes, case.clinical, case.case_id)
    others = [demomodel.demo_case(model.cases_dir, i) for i in (1, 2)]
    out = _alnm_predict_on_exported_files(scene, nodes, case, model_dir, model.cases_dir, tmp_path, others)
    features = pd.read_csv(tmp_path / "predictions-work" / "features" / "features.csv")
    features = features[features["variant"] == "main"].set_index("case_id")
    assert {case.case_id, *(o.case_id for o in others)} <= set(features.index)
    deep = [name for name in prediction.features.index if "_deep_" in str(name)]
    assert len(deep) == 2 * 128
    panel = prediction.features[deep].to_numpy(dtype=float)
    np.testing.assert_allclose(
        panel, features.loc[case.case_id, deep].to_numpy(dtype=float), rtol=1e-6, atol=1e-6
    )
    assert np.ptp(panel) > 0
    from ALNMPredictorLib.pipeline import PREDICTION_DECIMALS

    expected = pd.read_csv(out).set_index("case_id").loc[case.case_id]
    tolerance = (
        0.5 * 10.0**-PREDICTION_DECIMALS + 1.5e-6
    )  # the CSV's rounding, and the features' 1e-6 carried
    for region in ("tumor", "ln"):
        assert math.isclose(prediction.scores[region], float(expected[f"{region}_score"]), abs_tol=tolerance)
    assert math.isclose(prediction.probability, float(expected["prob_clinical_radiomics"]), abs_tol=tolerance)


def test_seg_nrrd_round_trip_gives_the_same_mask_and_prediction(module, scene, model, case, tmp_path) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    first, _ = logic.predictCase(model.model_dir, nodes, case.clinical, "rt")
    reloaded = {}
    for region, (volume, segmentation, _) in nodes.items():
        path = _write(scene, segmentation, tmp_path / f"{region}.seg.nrrd")
        copy = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{region} reloaded")
        storage = scene.AddNewNodeByClass("vtkMRMLSegmentationStorageNode")
        storage.SetFileName(str(path))
        assert storage.ReadData(copy)
        np.testing.assert_array_equal(
            logic.segmentMask(copy, None, volume, region), case.regions[region].mask
        )
        reloaded[region] = (volume, copy, None)
    again, _ = logic.predictCase(model.model_dir, reloaded, case.clinical, "rt")
    assert again.probability == first.probability and again.scores == first.scores


def test_result_table_is_saved_with_the_scene(module, scene, model, case, tmp_path) -> None:
    logic = module.ALNMPredictorLogic()
    prediction, table = logic.predictCase(
        model.model_dir, _nodes_from_case(logic, scene, case), case.clinical, "S1"
    )
    path = _write(scene, table, tmp_path / "prediction.tsv")
    table.SetAndObserveStorageNodeID(
        scene.GetNodesByClass("vtkMRMLTableStorageNode").GetItemAsObject(0).GetID()
    )
    scene.SetURL(str(tmp_path / "scene.mrml"))
    assert scene.Commit()
    assert "prediction.tsv" in (tmp_path / "scene.mrml").read_text()
    reread = scene.AddNewNodeByClass("vtkMRMLTableNode", "reread")
    storage = scene.AddNewNodeByClass("vtkMRMLTableStorageNode")
    storage.SetFileName(str(path))
    assert storage.ReadData(reread)
    values = logic.tableValues(reread)
    assert values["case_id"] == "S1" and values["risk_group"] == prediction.risk_group
    assert values["nomo_score"] == pytest.approx(prediction.probability, rel=1e-5)


def test_demo_case_loads_as_nodes_and_predicts_like_the_library(module, scene, model) -> None:
    logic = module.ALNMPredictorLogic()
    loaded = logic.loadDemoCase(model.cases_dir, 1)
    assert set(loaded["volumes"]) == {"tumor", "ln"} and loaded["label"] in (0, 1)
    inputs = {r: (loaded["volumes"][r], loaded["segmentations"][r], None) for r in loaded["volumes"]}
    demo_model = logic.ensureDemoModel(None)
    prediction, table = logic.predictCase(demo_model, inputs, loaded["clinical"], loaded["caseId"])
    reference = cp.predict_case(
        cp.load_model_cached(demo_model),
        demomodel.demo_case(model.cases_dir, 1).regions,
        loaded["clinical"],
        loaded["caseId"],
    )
    assert prediction.probability == reference.probability and prediction.scores == reference.scores
    assert table.GetAttribute("ALNMPredictor.synthetic") == "True"
    assert "synthetic demo" in logic.modelDescription("")
    figures = logic.renderFigures("", prediction, Path(model.root) / "figures")
    assert Path(figures["nomogram"]).is_file() and Path(figures["calibration"]).is_file()


def test_clinical_form_fields(module, scene, model) -> None:
    fields = module.ALNMPredictorLogic().clinicalFields(model.model_dir)
    required = {f.name for f in fields if f.required}
    assert required == {"us_reported_alnm", "tumor_size_cm"}


# --------------------------------------------------------------------------------------------------
# Wrong inputs


def test_empty_segment_is_a_clear_error(module, scene, model, case) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    volume = nodes["tumor"][0]
    empty = logic.createSegmentation(volume, "tumor")
    with pytest.raises(ValueError, match="segment 'tumor' of .* is empty: draw the region first"):
        logic.predictCase(model.model_dir, {**nodes, "tumor": (volume, empty, None)}, case.clinical, "E1")


def test_segment_on_another_geometry_is_a_clear_error(module, scene, model, case) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    volume, segmentation, _ = nodes["tumor"]
    image, spacing = logic.volumeArrays(volume)
    coarser = logic.addVolumeFromArray(image, (2 * spacing[0], 2 * spacing[1]), "coarser")
    with pytest.raises(ValueError, match="different geometry"):
        logic.predictCase(
            model.model_dir, {**nodes, "tumor": (coarser, segmentation, None)}, case.clinical, "G1"
        )
    shifted = logic.addVolumeFromArray(image, spacing, "shifted")
    origin = volume.GetOrigin()
    shifted.SetOrigin(origin[0] + 0.5 * spacing[1], origin[1], origin[2])
    with pytest.raises(ValueError, match="different geometry"):
        logic.segmentMask(segmentation, None, shifted, "tumor")
    cropped = logic.addVolumeFromArray(image[: image.shape[0] // 2], spacing, "cropped")
    with pytest.raises(ValueError, match="reaches outside the image 'cropped'"):
        logic.segmentMask(segmentation, None, cropped, "tumor")
    with pytest.raises(ValueError, match="has no segment 'nope'"):
        logic.segmentMask(segmentation, "nope", volume, "tumor")


def test_missing_clinical_factor_and_bad_volume_are_clear_errors(module, scene, model, case) -> None:
    logic = module.ALNMPredictorLogic()
    nodes = _nodes_from_case(logic, scene, case)
    with pytest.raises(
        ValueError, match="column tumor_size_cm: clinical factor required by the model is missing"
    ):
        logic.predictCase(model.model_dir, nodes, {**case.clinical, "tumor_size_cm": ""}, "C1")
    with pytest.raises(ValueError, match="unknown level"):
        logic.predictCase(model.model_dir, nodes, {**case.clinical, "us_reported_alnm": "yes"}, "C1")
    image = np.asarray(case.regions["tumor"].image)
    thick = logic.addVolumeFromArray(image, (0.1, 0.1), "thick")
    stack = vtk.vtkImageData()
    stack.SetDimensions(image.shape[1], image.shape[0], 3)
    stack.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    numpy_support.vtk_to_numpy(stack.GetPointData().GetScalars())[:] = 0
    thick.SetAndObserveImageData(stack)
    with pytest.raises(ValueError, match="'thick' has 3 slices"):
        logic.volumeArrays(thick)
    with pytest.raises(ValueError, match="No image volume selected"):
        logic.volumeArrays(None)
    with pytest.raises(ValueError, match="needs the Lymph node image"):
        logic.predictCase(model.model_dir, {"tumor": nodes["tumor"]}, case.clinical, "C1")


def test_reader_study_order(module, scene, tmp_path) -> None:
    logic = module.ALNMPredictorLogic()
    reads = tmp_path / "reads.csv"
    with pytest.raises(ValueError, match="record the unaided call before the aided one"):
        logic.recordRead(reads, "P1", "Dr A", "aided", 1)
    logic.recordRead(reads, "P1", "Dr A", "unaided", 0)
    table = logic.recordRead(reads, "P1", "Dr A", "aided", 1)
    assert list(table["session"]) == ["unaided", "aided"]
    assert logic.readerStatus(reads, "P1", "Dr A") == {"unaided": 0, "aided": 1}
    with pytest.raises(ValueError, match="reader's name"):
        logic.readerStatus(reads, "P1", "")


# --------------------------------------------------------------------------------------------------
# Batch logic and the headless script


def _small_manifest(model, tmp_path: Path, n: int = 2, break_one: bool = False) -> Path:
    ids = [demomodel.demo_case(model.cases_dir, i).case_id for i in range(n)]  # writes the cases on first use
    table = pd.read_csv(model.cases_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["case_id"].isin(ids)].copy()
    for col in [c for c in table.columns if c.endswith(("_image", "_mask", "_reader2", "_repeat"))]:
        table[col] = [str(model.cases_dir / v) if v else "" for v in table[col]]
    if break_one:
        table.loc[table.index[0], "ln_mask"] = str(tmp_path / "missing.png")
    path = tmp_path / "manifest.csv"
    table.to_csv(path, index=False)
    (tmp_path / "study.yaml").write_text((model.cases_dir / "study.yaml").read_text())
    return path


def test_batch_predict_runs_in_a_subprocess_with_progress_and_table_nodes(
    module, scene, model, tmp_path
) -> None:
    batch = module.ALNMPredictorBatchLogic(sys.executable)
    manifest = _small_manifest(model, tmp_path, n=2)
    seen = []
    result = batch.run(
        "predict",
        manifest,
        tmp_path / "out",
        model.model_dir,
        extra=["--workers", "1"],
        callback=lambda lines, progress, stage: seen.append((progress, stage)),
    )
    assert result.returnCode == 0, "\n".join(result.log)
    assert batch.progress == 1.0 and any(0 < p for p, _ in seen)
    tables = batch.loadResultTables(result, scene)
    predictions = (
        slicer.util.dataframeFromTable(tables["predictions"])
        if hasattr(slicer.util, "dataframeFromTable")
        else None
    )
    node = tables["predictions"]
    assert node.GetNumberOfRows() == 2
    column = node.GetTable().GetColumnByName("prob_clinical_radiomics")
    assert column is not None and all(0 < column.GetValue(i) < 1 for i in range(2))
    assert predictions is None or len(predictions) == 2
    assert "finished" in result.summary()


def test_batch_reports_failed_cases_and_bad_arguments(module, scene, model, tmp_path) -> None:
    batch = module.ALNMPredictorBatchLogic(sys.executable)
    manifest = _small_manifest(model, tmp_path, n=2, break_one=True)
    result = batch.run(
        "predict", manifest, tmp_path / "out", model.model_dir, extra=["--workers", "1", "--no-progress"]
    )
    assert result.returnCode == 1 and result.failedCases
    frame = pd.read_csv(result.predictionsPath)
    assert (frame["status"] == "failed").sum() == 1 and "ln_mask" in " ".join(frame["error"].fillna(""))
    with pytest.raises(ValueError, match="Model not found"):
        batch.commandLine("predict", manifest, tmp_path / "out", tmp_path / "nomodel")
    with pytest.raises(ValueError, match="Manifest file not found"):
        batch.commandLine("train", tmp_path / "none.csv", tmp_path / "out")
    with pytest.raises(ValueError, match="Unknown task"):
        batch.commandLine("fly", manifest, tmp_path / "out")
    args = batch.commandLine(
        "evaluate", manifest, tmp_path / "ev", model.model_dir, readsPath=tmp_path / "r.csv"
    )
    assert args[1:4] == ["-m", "ALNMPredictorLib", "evaluate"] and "--readers" in args


def test_batch_cancel_stops_the_subprocess(module, scene, model, tmp_path) -> None:
    batch = module.ALNMPredictorBatchLogic(sys.executable)
    manifest = _small_manifest(model, tmp_path, n=4)
    batch.start(
        batch.commandLine("predict", manifest, tmp_path / "out", model.model_dir, extra=["--workers", "1"])
    )
    started = time.monotonic()
    while batch.isRunning() and not batch.stage and time.monotonic() - started < 60:
        batch.poll()  # until the first progress bar shows: the work has started
        time.sleep(0.02)
    assert batch.stage, batch.lines
    batch.cancel(grace=20)
    while batch.isRunning():
        batch.poll()
        time.sleep(0.05)
    result = batch.collect("predict", manifest, tmp_path / "out")
    assert result.returnCode in CANCELLED, result.log
    assert "cancelled" in result.summary() and result.predictionsPath is None
