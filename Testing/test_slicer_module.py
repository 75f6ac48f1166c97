"""The Slicer module as Slicer runs it: Slicer 5.12.3's own Python, real MRML, Qt/CTK stand-ins (slicer_harness).

The module file is loaded the way ``qSlicerScriptedLoadableModule`` loads it; its panel goes through
``setup``/``enter``/``exit``/scene close/``cleanup``; buttons are clicked, widgets typed into and chosen
from, and what lands in the scene, the parameter node, the table node and the panel's text is checked.
Scenarios that need a fresh Slicer (packages not installed yet) run in a new process
(``slicer_harness/fresh.py``). See ``slicer_harness/environment.py`` for what is real and what stands in.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
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
import qt  # noqa: E402  (the harness's stand-in, installed above)
import qtcore  # noqa: E402
from casepredict_fixture import shared_model  # noqa: E402

from ALNMPredictorLib import casepredict as cp  # noqa: E402
from ALNMPredictorLib import clinicalform, demomodel  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODULE_FILE = REPO / "ALNMPredictor" / "ALNMPredictor.py"
FRESH = Path(__file__).resolve().parent / "slicer_harness" / "fresh.py"
BUSBRA = REPO.parent / "shared" / "data" / "busbra"


@pytest.fixture(scope="module")
def model():
    return shared_model()


@pytest.fixture()
def harness(tmp_path):
    """A fresh Slicer session (GUI, not testing mode) with the module loaded; no Qt errors may be logged."""
    ENV.reset(testing=False, main_window=True, root=tmp_path / "slicer")
    loaded = environment.ModuleHarness(ENV, MODULE_FILE)
    yield loaded
    criticals = [line for line in qtcore.qt_log if line.startswith("qCritical")]
    assert not criticals, criticals
    assert qt.QApplication.overrideCursorDepth() == 0, "a wait cursor was left on"


@pytest.fixture()
def panel(harness):
    return harness.show()


def _load_demo(panel):
    panel.ui.loadDemoCaseButton.click()
    return panel._parameterNode


def _row_names(panel) -> list[str]:
    return list(panel._clinicalWidgets)


def _required_rows(panel) -> set[str]:
    """The form's factors the clinical-radiomics model needs."""
    return {n for n, w in panel._clinicalWidgets.items() if w.toolTip.startswith("Required")}


SHARED_REQUIRED = {"us_reported_alnm", "tumor_size_cm"}


def _set_clinical(panel, values: dict) -> None:
    for name, value in values.items():
        widget = panel._clinicalWidgets[name]
        if isinstance(widget, qt.QComboBox):
            widget.choose(str(value))
        else:
            widget.type_text(str(value))


# --------------------------------------------------------------------------------------------------
# Opening the panel (item 1), its bindings, the Slicer versions (item 2)


def test_panel_opens_and_every_bound_widget_moves_its_parameter(harness) -> None:
    panel = harness.show()
    p, ui = panel._parameterNode, panel.ui
    assert [ui.batchTaskComboBox.itemText(i) for i in range(ui.batchTaskComboBox.count())] == [
        "predict",
        "evaluate",
        "train",
    ]
    assert [ui.batchDeepComboBox.itemText(i) for i in range(ui.batchDeepComboBox.count())] == [
        "off",
        "auto",
        "imagenet",
        "none",
    ]
    ui.batchTaskComboBox.choose("train")
    assert p.batchTask == "train" and ui.batchDeepComboBox.enabled
    p.batchTask = "evaluate"  # parameter -> widget
    assert ui.batchTaskComboBox.currentText == "evaluate" and not ui.batchDeepComboBox.enabled
    ui.caseIdLineEdit.type_text("P-typed")
    assert p.caseId == "P-typed"
    ui.readerModeCheckBox.click()
    assert p.readerMode is True
    ui.demoPatientsSpinBox.value = 5000  # clamped to the field's range
    assert p.demoPatients == 2000
    ui.demoFolderPathLineEdit.browse_to(str(harness.env.app.temporaryPath))
    assert Path(p.demoFolder) == Path(harness.env.app.temporaryPath)
    assert "synthetic demo" in ui.modelInfoLabel.text and not ui.predictButton.enabled
    assert p.readsPath.name == "alnm-reads.csv"


def test_supported_slicer_versions_are_stated_and_checked() -> None:
    """Slicer 5.10 and 5.12 embed Python 3.12; pip users need Python >= 3.10: code must not need more."""
    readme = (REPO / "README.md").read_text()
    assert re.search(r"Slicer 5\.10 and 5\.12", readme) and "5.8 or later" not in readme
    cmake = (REPO / "CMakeLists.txt").read_text()
    assert 'Slicer_VERSION VERSION_LESS "5.10"' in cmake
    vermin = shutil.which("vermin") or str(Path(sys.executable).parent / "vermin")
    if not Path(vermin).exists():
        pytest.fail("vermin (the [test] extra) is needed to check the Python versions the code needs")
    run = subprocess.run(
        [vermin, "--no-tips", "--violations", "--eval-annotations", "-t=3.10-", str(REPO / "ALNMPredictor")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stdout + run.stderr


# --------------------------------------------------------------------------------------------------
# Case review: demo case, model picker (item 5), clinical form (item 6), colour volumes (item 8)


def test_demo_case_predict_fills_table_text_and_figures(panel) -> None:
    p = _load_demo(panel)
    ui = panel.ui
    assert p.tumorVolume is not None and p.lnVolume is not None and p.caseId.startswith("P")
    assert (
        ui.tumorSegmentSelector.currentNode() is not None
        and ui.tumorVolumeSelector.currentNode() is p.tumorVolume
    )
    assert "True label" in ui.resultsText.plainText and ui.predictButton.enabled
    ui.predictButton.click()
    table = p.resultTable
    values = panel.logic.tableValues(table)
    assert values["case_id"] == p.caseId and 0 < values["nomo_score"] < 1
    assert slicer.app.applicationLogic().GetSelectionNode().GetActiveTableID() == table.GetID()
    assert "Nomo-score" in ui.resultsText.plainText
    assert ui.nomogramLabel.pixmap() is not None and not ui.nomogramLabel.pixmap().isNull()
    assert ui.calibrationLabel.pixmap() is not None and ui.recordAidedButton.enabled
    # the library on the same arrays gives the same numbers (same process, same code path)
    reference = cp.predict_case(
        cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE),
        {r: panel.logic.regionArrays(*panel._regionInputs()[r], r) for r in ("tumor", "ln")},
        panel._clinicalValues(),
        p.caseId,
    )
    assert values["nomo_score"] == pytest.approx(reference.probability, rel=1e-12)


def test_model_picker_accepts_the_folder_its_model_json_and_a_zip(panel, model, tmp_path) -> None:
    p, ui = _load_demo(panel), panel.ui
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in model.model_dir.iterdir():
            zipped.write(file, file.name)
    choices = (
        (
            "model.json (file dialog)",
            lambda: ui.modelPathLineEdit.browse_to(str(model.model_dir / "model.json")),
        ),
        ("folder (folder button)", lambda: ui.modelFolderButton.choose(str(model.model_dir))),
        ("zip (file dialog)", lambda: ui.modelPathLineEdit.browse_to(str(archive))),
    )
    probabilities = []
    for label, choose in choices:
        choose()
        assert _required_rows(panel) == SHARED_REQUIRED, label
        assert re.search(r"\bmodel(\.zip)?: regions tumor, ln", ui.modelInfoLabel.text), (
            label,
            ui.modelInfoLabel.text,
        )
        _set_clinical(panel, {"us_reported_alnm": "present", "tumor_size_cm": "2.5"})
        ui.predictButton.click()
        probabilities.append(panel.logic.tableValues(p.resultTable)["nomo_score"])
    assert probabilities[0] == probabilities[1] == probabilities[2]
    with pytest.raises(
        ValueError, match="folder"
    ):  # the file dialog cannot pick a folder: that is the button's job
        ui.modelPathLineEdit.browse_to(str(model.model_dir))
    (tmp_path / "other.json").write_text("{}")
    ui.modelPathLineEdit.browse_to(str(tmp_path / "other.json"))
    assert ui.modelInfoLabel.text.startswith("Cannot use this model") and not _row_names(panel)
    with pytest.raises(ValueError, match="other.json"):
        ui.predictButton.click()


def test_clinical_form_follows_the_parameter_node_whatever_changes_it(panel, model) -> None:
    p = panel._parameterNode
    demo_fields = clinicalform.clinical_fields(cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE))
    demo_required = {f.name for f in demo_fields if f.required}
    assert _required_rows(panel) == demo_required and _row_names(panel) == [f.name for f in demo_fields]
    assert "synthetic demo" in panel.ui.modelInfoLabel.text
    p.modelPath = model.model_dir  # as a loaded scene or another module would set it
    assert _required_rows(panel) == SHARED_REQUIRED
    assert model.model_dir.name in panel.ui.modelInfoLabel.text
    p.modelPath = Path("")
    assert _required_rows(panel) == demo_required and "synthetic demo" in panel.ui.modelInfoLabel.text


def test_colour_ultrasound_volume_is_listed_and_converted_to_grey(panel, model) -> None:
    p, ui = _load_demo(panel), panel.ui
    logic = panel.logic
    grey_volume = p.tumorVolume
    grey, spacing = logic.volumeArrays(grey_volume)
    mask = logic.segmentMask(ui.tumorSegmentSelector.currentNode(), None, grey_volume, "tumor")
    rgb = np.stack([grey, np.clip(grey.astype(int) + 30, 0, 255).astype(np.uint8), grey // 2], axis=-1)
    colour = logic.addVolumeFromArray(rgb, spacing, "colour tumour")
    assert colour.GetClassName() == "vtkMRMLVectorVolumeNode"
    label = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")  # label maps stay out of the list
    assert colour in ui.tumorVolumeSelector.nodes() and label not in ui.tumorVolumeSelector.nodes()
    ui.tumorVolumeSelector.choose(colour)
    assert p.tumorVolume is colour
    segmentation = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "colour ROI")
    segmentation.SetReferenceImageGeometryParameterFromVolumeNode(colour)
    logic.addSegmentFromMask(segmentation, mask, colour, "tumor")
    ui.tumorSegmentSelector.setCurrentNode(segmentation)
    ui.predictButton.click()
    text = ui.resultsText.plainText
    assert "tumor image: colour image converted to grey with ITU-R BT.601 luma weights" in text
    values = logic.tableValues(p.resultTable)
    luma = 0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2]
    regions = {
        "tumor": cp.RegionArrays(luma, mask, spacing),
        "ln": logic.regionArrays(*panel._regionInputs()["ln"], "ln"),
    }
    reference = cp.predict_case(
        cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE), regions, panel._clinicalValues(), p.caseId
    )
    # the same grey image reaches the features by two routes (uint8 RGB -> luma, or luma given as float):
    # equal up to float64 rounding of the luma sum
    assert values["nomo_score"] == pytest.approx(reference.probability, rel=1e-9)


# --------------------------------------------------------------------------------------------------
# Segment Editor lifecycle (item 7)


def test_segment_editor_is_released_on_exit_and_scene_close(harness) -> None:
    panel = harness.show()
    editor = panel.ui.segmentEditorWidget
    assert editor.keyboard_shortcuts_installed()
    p = _load_demo(panel)
    panel.ui.editTumorButton.click()
    assert editor.segmentationNode() is panel.ui.tumorSegmentSelector.currentNode()
    assert (
        editor.sourceVolumeNode() is p.tumorVolume and not panel.ui.segmentEditorCollapsibleButton.collapsed
    )
    editor.setActiveEffectByName("Paint")  # the user picks Paint
    assert editor.captures_view_clicks()
    harness.exit()  # the user opens another module: clicks in its views must not paint
    assert editor.activeEffect() is None and not editor.captures_view_clicks()
    assert not editor.keyboard_shortcuts_installed()
    harness.enter()
    assert editor.keyboard_shortcuts_installed() and editor.mrmlSegmentEditorNode() is not None
    editor.setActiveEffectByName("Draw")
    harness.close_scene()
    assert editor.segmentationNode() is None and not editor.captures_view_clicks()
    assert panel._parameterNode is not None and panel._parameterNode.tumorVolume is None  # a new, empty node
    p = _load_demo(panel)  # the panel works after the scene was closed
    panel.ui.editLnButton.click()
    assert editor.sourceVolumeNode() is p.lnVolume
    harness.unload()
    assert editor.activeEffect() is None and not editor.keyboard_shortcuts_installed()
    assert not panel.Observations


# --------------------------------------------------------------------------------------------------
# Reader study (item 10)


def test_reader_mode_hides_the_label_and_binds_the_aided_read_to_the_case_on_screen(panel, tmp_path) -> None:
    ui, p = panel.ui, panel._parameterNode
    ui.readerModeCheckBox.click()
    ui.readerNameLineEdit.type_text("Dr A")
    ui.readsPathLineEdit.currentPath = str(tmp_path / "reads.csv")  # typed in
    assert p.readsPath == tmp_path / "reads.csv"
    _load_demo(panel)
    first_case = p.caseId
    text = ui.resultsText.plainText
    label = demomodel.demo_case(Path(p.demoFolder) / "cases", 0).label
    assert first_case in text and "label" not in text.lower() and f": {label}" not in text
    ui.callMetastasisRadioButton.click()
    with pytest.raises(ValueError, match="unaided call before seeing the model"):
        ui.predictButton.click()
    ui.recordUnaidedButton.click()
    assert not ui.recordAidedButton.enabled  # no output on screen yet; the handler refuses too
    with pytest.raises(ValueError, match="press Predict"):
        panel.onRecordRead("aided")
    ui.predictButton.click()
    ui.demoCaseSpinBox.value = 1
    ui.loadDemoCaseButton.click()  # another case on screen: the first case's output is gone
    assert p.caseId != first_case and "Nomo-score" not in ui.resultsText.plainText
    assert not ui.recordAidedButton.enabled
    with pytest.raises(ValueError, match=f"press Predict for case {p.caseId}"):
        panel.onRecordRead("aided")
    ui.recordUnaidedButton.click()
    ui.predictButton.click()
    ui.callNoMetastasisRadioButton.click()
    ui.recordAidedButton.click()
    reads = pd.read_csv(p.readsPath)
    assert list(zip(reads["case_id"], reads["session"], strict=True)) == [
        (first_case, "unaided"),
        (p.caseId, "unaided"),
        (p.caseId, "aided"),
    ]
    assert list(reads["call"]) == [1, 1, 0]


# --------------------------------------------------------------------------------------------------
# Cohort panel: run, progress, cancel of the whole process tree (item 9)


def _small_manifest(model, tmp_path: Path, n: int = 2) -> Path:
    ids = [demomodel.demo_case(model.cases_dir, i).case_id for i in range(n)]
    table = pd.read_csv(model.cases_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table = table[table["case_id"].isin(ids)].copy()
    for col in [c for c in table.columns if c.endswith(("_image", "_mask", "_reader2", "_repeat"))]:
        table[col] = [str(model.cases_dir / v) if v else "" for v in table[col]]
    path = tmp_path / "manifest.csv"
    table.to_csv(path, index=False)
    (tmp_path / "study.yaml").write_text((model.cases_dir / "study.yaml").read_text())
    return path


def _wait(harness, panel, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while panel._batchTimer.isActive() and time.monotonic() < deadline:
        harness.env.process_events()
        time.sleep(0.05)
    assert not panel._batchTimer.isActive(), "the cohort run did not finish"


def test_cohort_predict_runs_with_progress_and_fills_table_nodes(harness, model, tmp_path) -> None:
    panel = harness.show()
    ui, p = panel.ui, panel._parameterNode
    panel.batchLogic.pythonExecutable = sys.executable
    p.manifestPath = _small_manifest(model, tmp_path, n=2)
    ui.validateButton.click()
    assert ui.batchLogText.plainText.startswith("0 error(s)")
    ui.batchModelFolderButton.choose(str(model.model_dir))
    ui.batchOutputFolderPathLineEdit.browse_to(str(tmp_path))
    p.batchOutputFolder = tmp_path / "out"
    ui.runBatchButton.click()
    assert not ui.runBatchButton.enabled and ui.cancelBatchButton.enabled
    _wait(harness, panel)
    assert ui.batchProgressBar.value == 100 and "alnm predict: finished" in ui.batchLogText.plainText
    node = ENV.scene.GetFirstNodeByName("ALNM predict predictions")
    assert node is not None and node.GetNumberOfRows() == 2
    assert slicer.app.applicationLogic().GetSelectionNode().GetActiveTableID() == node.GetID()


def _group_members(pgid: int) -> list[int]:
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts processes through Linux's /proc")
def test_cancel_stops_the_launcher_its_python_and_the_workers_and_leaves_no_output(
    harness, model, tmp_path
) -> None:
    launcher = (
        tmp_path / "PythonSlicer"
    )  # like Slicer's launcher: starts the real Python as a child and waits
    launcher.write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        f"sys.exit(subprocess.call([{sys.executable!r}, *sys.argv[1:]]))\n"
    )
    launcher.chmod(0o755)
    panel = harness.show()
    ui, p = panel.ui, panel._parameterNode
    panel.batchLogic.pythonExecutable = str(launcher)
    p.manifestPath = _small_manifest(model, tmp_path, n=6)
    p.batchModelPath = model.model_dir
    p.batchOutputFolder = tmp_path / "out"
    ui.runBatchButton.click()
    process = panel.batchLogic.process
    started = time.monotonic()
    while panel.batchLogic.isRunning() and not panel.batchLogic.stage and time.monotonic() - started < 120:
        harness.env.process_events()  # until a progress bar shows: the real Python is at work
        time.sleep(0.02)
    members = _group_members(process.pid)
    assert len(members) >= 2, f"launcher and its Python expected, got {members}"
    ui.cancelBatchButton.click()
    _wait(harness, panel)
    assert _group_members(process.pid) == [] and all(not Path(f"/proc/{pid}").exists() for pid in members)
    assert "alnm predict: cancelled" in ui.batchLogText.plainText
    out = tmp_path / "out"
    assert not (out / "predictions.csv").exists()
    leftovers = [f.name for f in out.rglob("*") if f.is_file() and re.match(r"^\..+\.[a-z0-9_]{8}", f.name)]
    assert leftovers == []
    assert ENV.scene.GetFirstNodeByName("ALNM predict predictions") is None


# --------------------------------------------------------------------------------------------------
# The module's self-test, the headless script, sample data, a real ultrasound image


def test_self_test_runs_as_slicer_runs_it(harness) -> None:
    harness.run_self_test(msec=0)


def test_headless_script_runs_the_batch_logic_and_exits_once_with_its_status(
    harness, model, tmp_path, capsys
) -> None:
    sys.path.insert(0, str(REPO / "ALNMPredictor" / "Scripts"))
    import alnm_batch

    manifest = _small_manifest(model, tmp_path, n=1)
    status = alnm_batch.main(
        [
            "--",
            "predict",
            str(manifest),
            "--out",
            str(tmp_path / "out"),
            "--model",
            str(model.model_dir),
            "--",
            "--workers",
            "1",
            "--no-progress",
        ],
        python=sys.executable,
    )
    assert status == 0 and (tmp_path / "out" / "predictions.csv").is_file()
    assert "alnm predict: finished" in capsys.readouterr().out
    assert (
        alnm_batch.main(
            ["predict", str(manifest), "--out", str(tmp_path / "o2"), "--model", str(tmp_path / "no")]
        )
        == 2
    )
    assert "Model not found" in capsys.readouterr().err
    assert alnm_batch.main(["fly"]) == 2
    alnm_batch.finish(1)  # inside Slicer: slicer.util.exit, once
    assert slicer.app.exit_status() == 1 and slicer.app.commandOptions().runPythonAndExit is False


def test_committed_sample_data_is_the_demo_case(harness, tmp_path) -> None:
    harness.startup_completed()
    sources = slicer.modules.sampleDataSources["ALNMPredictor"]
    assert [s.sampleName for s in sources] == ["ALNMDemoCase"]
    assert slicer.modules.sampleDataSourceCategories["ALNMPredictor"]["title"] == "ALNM Predictor"
    import SampleData

    nodes = {n.GetName(): n for n in SampleData.SampleDataLogic().downloadFromSource(sources[0])}
    assert sorted(nodes) == [
        "ALNMDemoLN",
        "ALNMDemoLNSegmentation",
        "ALNMDemoTumor",
        "ALNMDemoTumorSegmentation",
    ]
    case = demomodel.demo_case(tmp_path / "cases", 0)
    logic = harness.logic_class()
    for region, stem in (("tumor", "ALNMDemoTumor"), ("ln", "ALNMDemoLN")):
        image, spacing = logic.volumeArrays(nodes[stem])
        np.testing.assert_array_equal(image, case.regions[region].image)
        assert spacing == pytest.approx(case.regions[region].spacing, rel=1e-9)
        mask = logic.segmentMask(nodes[f"{stem}Segmentation"], None, nodes[stem], region)
        np.testing.assert_array_equal(mask, np.asarray(case.regions[region].mask) > 0)


@pytest.mark.skipif(
    not (BUSBRA / "bus_data.csv").is_file(), reason="BUS-BRA is not in ../shared/data (real images)"
)
def test_busbra_image_loaded_as_slicer_loads_it_predicts_like_alnm_predict(panel, tmp_path) -> None:
    import extensions  # the harness's file loader: slicer-core's storage nodes, as Slicer's readers

    info = pd.read_csv(BUSBRA / "bus_data.csv").iloc[0]
    image_path = BUSBRA / "Images" / f"{info['ID']}.png"
    mask_path = BUSBRA / "Masks" / f"mask_{str(info['ID']).removeprefix('bus_')}.png"
    volume = extensions._load(image_path, "BUS-BRA", "VolumeFile")
    p, ui = _load_demo(panel), panel.ui
    logic = panel.logic
    from PIL import Image

    mask = np.asarray(Image.open(mask_path)) > 0
    mask = mask if mask.ndim == 2 else mask[..., 0]
    grey, _ = logic.volumeArrays(volume)
    assert grey.shape[:2] == mask.shape
    segmentation = logic.createSegmentation(volume, "tumor")
    segmentation.GetSegmentation().RemoveAllSegments()
    logic.addSegmentFromMask(segmentation, mask, volume, "tumor")
    ui.tumorVolumeSelector.choose(volume)
    ui.tumorSegmentSelector.setCurrentNode(segmentation)
    ui.predictButton.click()
    values = logic.tableValues(p.resultTable)
    manifest = tmp_path / "manifest.csv"
    ln_image, ln_mask = demomodel.demo_case(Path(p.demoFolder) / "cases", 0).files["ln"]
    row = {
        "case_id": "B1",
        "tumor_image": str(image_path),
        "tumor_mask": str(mask_path),
        "ln_image": str(ln_image),
        "ln_mask": str(ln_mask),
        **{k: v for k, v in panel._clinicalValues().items() if v is not None},
    }
    pd.DataFrame([row]).to_csv(manifest, index=False)
    out = tmp_path / "pred.csv"
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "ALNMPredictorLib",
            "predict",
            str(manifest),
            "--model",
            str(demomodel.DEMO_MODEL_RESOURCE),
            "--out",
            str(out),
            "--no-progress",
            "--workers",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    expected = pd.read_csv(out).iloc[0]
    # another process reads the PNG with another reader (SimpleITK/PIL vs ITK in slicer-core): same pixels, so
    # equal up to float rounding in the features; predictions.csv holds 6 decimals (PREDICTION_DECIMALS), so
    # equal to half a unit of the 6th
    assert math.isclose(
        values["nomo_score"], float(expected["prob_clinical_radiomics"]), rel_tol=0, abs_tol=5e-7
    )
    assert math.isclose(values["tumor_score"], float(expected["tumor_score"]), rel_tol=0, abs_tol=5e-7)


# --------------------------------------------------------------------------------------------------
# A fresh Slicer (items 3, 4, 11): each scenario in a new process


def _fresh(scenario: str, data: dict, tmp_path: Path) -> dict:
    data = {"root": str(tmp_path / "fresh"), **data}
    (tmp_path / "fresh").mkdir(exist_ok=True)
    source, result = tmp_path / f"{scenario}-in.json", tmp_path / f"{scenario}-out.json"
    source.write_text(json.dumps(data))
    env = {**os.environ, "MPLBACKEND": "Agg"}
    run = subprocess.run(
        [sys.executable, str(FRESH), scenario, str(source), str(result)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=tmp_path,
    )
    assert run.returncode == 0 and result.is_file(), run.stdout[-3000:] + run.stderr[-3000:]
    out = json.loads(result.read_text())
    assert out["ok"], out.get("traceback")
    return out


@pytest.fixture(scope="module")
def demo_arrays(model, tmp_path_factory) -> Path:
    case = demomodel.demo_case(model.cases_dir, 0)
    path = tmp_path_factory.mktemp("arrays") / "case.npz"
    arrays = {}
    for region, r in case.regions.items():
        arrays.update(
            {
                f"{region}_image": np.asarray(r.image),
                f"{region}_mask": np.asarray(r.mask),
                f"{region}_spacing": np.asarray(r.spacing),
            }
        )
    np.savez(path, **arrays)
    return path


def _installed(calls: list) -> set[str]:
    return {re.split(r"[<>=]", r)[0] for call in calls for r in call["requirements"]}


LIB_PACKAGES = {
    "pandas",
    "pyarrow",
    "PyYAML",
    "scikit-learn",
    "matplotlib",
    "tqdm",
    "safetensors",
    "pyradiomics-bhklab",
}


@pytest.mark.parametrize(
    "button",
    [
        "loadDemoCaseButton",
        "predictButton",
        "generateDemoButton",
        "validateButton",
        "runBatchButton",
        "recordUnaidedButton",
    ],
)
def test_every_button_on_a_fresh_slicer_asks_once_installs_then_runs(
    button, model, demo_arrays, tmp_path
) -> None:
    manifest = _small_manifest(model, tmp_path, n=1)
    out = _fresh(
        "button",
        {
            "button": button,
            "arrays": str(demo_arrays),
            "manifest": str(manifest),
            "model": str(model.model_dir),
            "clinical": {"us_reported_alnm": "present", "tumor_size_cm": "2.5"},
        },
        tmp_path,
    )
    assert "Python packages are missing" in out["model_info"]
    declined, accepted = out["declined"], out["accepted"]
    assert (
        declined["error"] is None
        and len(declined["dialogs"]) == 1
        and not out["pandas_imported_after_decline"]
    )
    assert "pandas" in declined["dialogs"][0]["text"] and "torch" not in declined["dialogs"][0]["text"]
    assert accepted["error"] is None, accepted
    assert [d["answer"] for d in accepted["dialogs"]] == [qt.QMessageBox.Ok]  # one question, no error dialog
    if button == "predictButton":  # the demo model's form appears with the packages: asked for, no error
        demo_required = {
            f.name
            for f in clinicalform.clinical_fields(cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE))
            if f.required
        }
        assert (
            all(name in out["asked_for_clinical"] for name in demo_required)
            and "Predict again" in out["asked_for_clinical"]
        )
        assert out["after_form"]["error"] is None and not out["after_form"]["dialogs"], out["after_form"]
    assert (
        _installed(out["pip_calls"]) == LIB_PACKAGES
        and len(out["pip_calls"]) == 1
        and not out["torch_imported"]
    )
    done = {
        "loadDemoCaseButton": lambda: (
            out["case_id"].startswith("P") and out["tumor_volume"] and out["form_rows"] is not None
        ),
        "predictButton": lambda: (
            "Nomo-score" in out["results"] and any(t.startswith("ALNM prediction") for t in out["tables"])
        ),
        "generateDemoButton": lambda: (
            out["manifest"].endswith("manifest.csv") and out["batch_text"].startswith("0 error(s)")
        ),
        "validateButton": lambda: out["batch_text"].startswith("0 error(s)"),
        "runBatchButton": lambda: "alnm predict: finished" in out["batch_log"],
        "recordUnaidedButton": lambda: out["reads_exists"] and "Recorded the unaided call" in out["results"],
    }[button]
    assert done(), out


@pytest.fixture(scope="module")
def deep_model(model, tmp_path_factory) -> Path:
    """The test model plus random-backbone deep heads (32 px crops): a bundle that needs PyTorch."""
    import warnings

    pytest.importorskip(
        "torch",
        reason="building a model with deep heads needs PyTorch (.ci/run's Slicer-version "
        "jobs install the handcrafted-only path without it)",
    )

    from ALNMPredictorLib.deep import DeepFeatureExtractor, crop_roi
    from ALNMPredictorLib.pipeline import load_model, save_model

    loaded = load_model(model.model_dir)
    cases = [demomodel.demo_case(model.cases_dir, i) for i in range(4)]
    heads = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for region in ("tumor", "ln"):
            head = DeepFeatureExtractor(
                weights="none", input_size=32, epochs=1, n_views=0, val_fraction=0.0, device="cpu"
            )
            crops = np.stack(
                [crop_roi(c.regions[region].image, c.regions[region].mask, head.margin, 32) for c in cases]
            )
            heads[region] = head.fit(crops, np.array([0, 1, 0, 1]))
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    return Path(save_model(tmp_path_factory.mktemp("deep") / "model", loaded.model, info, heads))


def test_pytorch_is_asked_for_only_when_the_model_has_deep_features(
    demo_arrays, deep_model, tmp_path
) -> None:
    out = _fresh(
        "torch",
        {
            "arrays": str(demo_arrays),
            "deep_model": str(deep_model),
            "clinical": {"us_reported_alnm": "present", "tumor_size_cm": "2.5"},
        },
        tmp_path,
    )
    assert (
        out["demo"]["error"] is None
        and out["demo_again"]["error"] is None
        and "Nomo-score" in out["demo_results"]
    )
    assert _installed(out["demo_pip_calls"]) == LIB_PACKAGES and not out["demo_torch_imported"]
    assert "torch" not in out["demo"]["dialogs"][0]["text"]
    assert "need PyTorch (torch>=2.1, torchvision>=0.16)" in out["deep_model_info"]
    assert SHARED_REQUIRED <= set(out["deep_form_rows"])  # the form is there before PyTorch is
    assert out["deep"]["error"] is None, out["deep"]
    assert (
        "torch>=2.1" in out["deep"]["dialogs"][0]["text"]
        and "pandas" not in out["deep"]["dialogs"][0]["text"]
    )
    assert out["install_torch_calls"] == [
        {
            "askConfirmation": False,
            "torchVersionRequirement": ">=2.1",
            "torchvisionVersionRequirement": ">=0.16",
        }
    ]
    assert "Nomo-score" in out["deep_results"] and len(out["pip_calls"]) == 1


def test_deep_model_without_the_pytorch_extension_says_what_to_install(
    demo_arrays, deep_model, tmp_path
) -> None:
    out = _fresh(
        "torch",
        {
            "arrays": str(demo_arrays),
            "deep_model": str(deep_model),
            "pytorch_extension": False,
            "clinical": {"us_reported_alnm": "present", "tumor_size_cm": "2.5"},
        },
        tmp_path,
    )
    assert out["demo"]["error"] is None
    assert "install the PyTorch extension from the Extensions Manager" in (out["deep"]["error"] or "")


def test_headless_script_on_a_fresh_slicer_says_what_to_run_or_installs_with_consent(model, tmp_path) -> None:
    manifest = _small_manifest(model, tmp_path, n=1)
    out = _fresh("headless", {"manifest": str(manifest), "model": str(model.model_dir)}, tmp_path)
    refused, installed = out["without_consent"], out["with_consent"]
    assert refused["status"] == 2 and not refused["predictions"] and refused["pip_calls"] == []
    assert "lacks packages this run needs: pandas>=2.0" in refused["stderr"]
    assert "--install-dependencies" in refused["stderr"] and "slicer.util.pip_install(" in refused["stderr"]
    assert installed["status"] == 0 and installed["predictions"], installed
    assert [c["show_progress"] for c in installed["pip_calls"]] == [False]  # headless: no dialog


@pytest.mark.parametrize("version", ["5.10", "5.12"])
def test_sample_data_and_installs_on_each_supported_slicer(version, model, demo_arrays, tmp_path) -> None:
    out = _fresh("sample_data", {"slicer": version}, tmp_path)
    assert out["sources"] == {"ALNMPredictor": ["ALNMDemoCase"]} and not out["pandas_imported"]
    assert bool(out["categories"]) == (version == "5.12")  # registerCustomSampleDataCategory is new in 5.12
    assert [n for _, n in out["loaded"]] == [
        "ALNMDemoTumor",
        "ALNMDemoTumorSegmentation",
        "ALNMDemoLN",
        "ALNMDemoLNSegmentation",
    ]
    button = _fresh(
        "button",
        {
            "slicer": version,
            "button": "loadDemoCaseButton",
            "arrays": str(demo_arrays),
            "manifest": "",
            "model": "",
        },
        tmp_path,
    )
    api = "slicer.util.pip_install" if version == "5.10" else "slicer.packaging.pip_install"
    assert [c["api"] for c in button["pip_calls"]] == [api] and button["accepted"]["error"] is None


# --------------------------------------------------------------------------------------------------
# Grad-CAM heatmaps over the case's image; the VGG19 weights downloaded after asking


@pytest.fixture(scope="module")
def gradcam_model() -> Path:
    pytest.importorskip("torch", reason="a model with deep features needs PyTorch")
    from gradcam_fixture import deep_score_model

    return deep_score_model()


def _matrix(node) -> np.ndarray:
    import vtk

    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def _composites() -> list:
    return [
        ENV.scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode")
        for i in range(ENV.scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode"))
    ]


@pytest.mark.filterwarnings("ignore::UserWarning")  # the random backbone's warning (no torch import here)
def test_heatmap_overlay_is_aligned_with_the_image_and_follows_region_target_and_opacity(
    panel, gradcam_model
) -> None:
    p, ui = _load_demo(panel), panel.ui
    p.modelPath = gradcam_model
    _set_clinical(panel, {"us_reported_alnm": "present", "tumor_size_cm": "2.5"})
    assert [ui.heatmapTargetComboBox.itemText(i) for i in range(ui.heatmapTargetComboBox.count())] == [
        "score",
        "head",
    ]
    ui.predictButton.click()
    assert sorted(panel._heatmaps) == [("ln", "head"), ("ln", "score"), ("tumor", "head"), ("tumor", "score")]
    node = panel._heatmaps[("tumor", "score")]
    volume = p.tumorVolume
    # the overlay is a volume on the image's own grid: same size, same IJK-to-RAS, same parent transform
    assert (
        node.GetScene() is ENV.scene
        and node.GetImageData().GetDimensions() == volume.GetImageData().GetDimensions()
    )
    np.testing.assert_array_equal(_matrix(node), _matrix(volume))
    assert node.GetTransformNodeID() == volume.GetTransformNodeID()
    loaded = cp.load_model_cached(gradcam_model)
    arrays = {r: panel.logic.regionArrays(*panel._regionInputs()[r], r) for r in ("tumor", "ln")}
    expected = cp.case_heatmaps(loaded, arrays, p.caseId)["tumor"]["score"].on_image()
    # the same computation in the same process on the same arrays: float32 rounding at most
    np.testing.assert_allclose(slicer.util.arrayFromVolume(node)[0], expected, rtol=1e-6, atol=1e-7)
    display = node.GetDisplayNode()
    assert display.GetColorNode().GetName() == "ALNMPredictor Grad-CAM" and display.GetApplyThreshold()
    assert display.GetLowerThreshold() == pytest.approx(0.01)
    for composite in _composites():
        assert (
            composite.GetBackgroundVolumeID() == volume.GetID()
            and composite.GetForegroundVolumeID() == node.GetID()
        )
        assert composite.GetForegroundOpacity() == pytest.approx(0.5)
    assert "Grad-CAM of the Tumour score" in ui.heatmapInfoLabel.text
    ui.heatmapOpacitySlider.value = 0.8
    assert p.heatmapOpacity == pytest.approx(0.8)
    assert all(c.GetForegroundOpacity() == pytest.approx(0.8) for c in _composites())
    ui.heatmapRegionComboBox.choose("ln")
    ui.heatmapTargetComboBox.choose("head")
    for composite in _composites():
        assert composite.GetBackgroundVolumeID() == p.lnVolume.GetID()
        assert composite.GetForegroundVolumeID() == panel._heatmaps[("ln", "head")].GetID()
    assert "Lymph node deep head" in ui.heatmapInfoLabel.text
    # another case on screen: the heatmaps of the previous prediction leave the scene
    ids = [n.GetID() for n in panel._heatmaps.values()]
    ui.demoCaseSpinBox.value = 1
    ui.loadDemoCaseButton.click()
    assert panel._heatmaps == {} and all(ENV.scene.GetNodeByID(i) is None for i in ids)
    # a model without deep features: nothing to explain, and the panel says so
    p.modelPath = Path("")
    ui.predictButton.click()
    assert panel._heatmaps == {} and "no deep features" in ui.heatmapInfoLabel.text


@pytest.fixture()
def imagenet_model(model, tmp_path, monkeypatch) -> tuple[Path, bytes]:
    """The test model with deep heads on an "imagenet" backbone (a random VGG19 state dict standing in for
    torchvision's file, its checksum prefix patched in), and that file's bytes; the weights are then
    nowhere on this computer (an empty torch hub cache)."""
    import hashlib
    import warnings

    torch = pytest.importorskip("torch", reason="a model with deep features needs PyTorch")

    from ALNMPredictorLib import deep
    from ALNMPredictorLib.deep import DeepFeatureExtractor, crop_roi, random_trunk
    from ALNMPredictorLib.pipeline import load_model, save_model

    weights = tmp_path / "standin.pth"
    torch.save({f"features.{k}": v for k, v in random_trunk(5).state_dict().items()}, weights)
    blob = weights.read_bytes()
    monkeypatch.setattr(deep, "IMAGENET_SHA256_PREFIX", hashlib.sha256(blob).hexdigest()[:8])
    monkeypatch.setenv(deep.WEIGHTS_ENV, str(weights))
    monkeypatch.delenv(deep.ALLOW_DOWNLOAD_ENV, raising=False)
    loaded = load_model(model.model_dir)
    cases = [demomodel.demo_case(model.cases_dir, i) for i in range(4)]
    heads = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for region in ("tumor", "ln"):
            head = DeepFeatureExtractor(
                weights="imagenet", input_size=32, epochs=1, n_views=0, val_fraction=0.0, device="cpu"
            )
            crops = np.stack(
                [crop_roi(c.regions[region].image, c.regions[region].mask, head.margin, 32) for c in cases]
            )
            heads[region] = head.fit(crops, np.array([c.label for c in cases]))
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    model_dir = Path(save_model(tmp_path / "imagenet-model", loaded.model, info, heads))
    monkeypatch.delenv(deep.WEIGHTS_ENV)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    return model_dir, blob


def test_predict_asks_before_downloading_the_vgg19_weights_then_downloads_them(
    panel, imagenet_model, monkeypatch
) -> None:
    from weights_server import serve

    from ALNMPredictorLib import deep

    model_dir, blob = imagenet_model
    cache = deep.imagenet_cache_path()
    p, ui = _load_demo(panel), panel.ui
    p.modelPath = model_dir
    _set_clinical(panel, {"us_reported_alnm": "present", "tumor_size_cm": "2.5"})
    with serve({f"/{deep.VGG19_FILENAME}": blob}) as base:
        monkeypatch.setattr(deep, "VGG19_URL", f"{base}/{deep.VGG19_FILENAME}")
        qt.dialogs.clear()
        qt.dialog_answers[:] = [qt.QMessageBox.Cancel]
        ui.predictButton.click()  # declined: nothing downloaded, nothing predicted, the panel says what to do
        assert len(qt.dialogs) == 1 and "download VGG19 weights" in qt.dialogs[0]["windowTitle"]
        asked = qt.dialogs[0]["text"]
        assert deep.VGG19_FILENAME in asked and deep.VGG19_URL in asked and str(cache.parent) in asked
        assert not cache.parent.exists() and "Not downloaded" in ui.resultsText.plainText
        assert str(cache.parent) in ui.resultsText.plainText and panel._prediction is None
        ui.predictButton.click()  # accepted (Ok is the default answer): downloaded once, then predicted
        assert len(qt.dialogs) == 2
    assert cache.read_bytes() == blob and sorted(f.name for f in cache.parent.iterdir()) == [
        deep.VGG19_FILENAME
    ]
    assert "Nomo-score" in ui.resultsText.plainText and ("tumor", "head") in panel._heatmaps
    ui.predictButton.click()  # the weights are in the cache now: no question
    assert len(qt.dialogs) == 2
    # the cohort panel asks too, before training on ImageNet weights that are not here
    cache.unlink()
    p.batchTask, p.batchDeep = "train", "imagenet"
    p.manifestPath, p.batchOutputFolder = (
        Path("/nonexistent/manifest.csv"),
        Path(ENV.app.temporaryPath) / "out",
    )
    qt.dialog_answers[:] = [qt.QMessageBox.Cancel]
    ui.runBatchButton.click()
    assert (
        len(qt.dialogs) == 3
        and panel.batchLogic.process is None
        and "Not downloaded" in ui.resultsText.plainText
    )
