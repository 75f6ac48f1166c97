"""A fresh Slicer: the module's panel driven in a new Python process where its packages are not installed yet.

    python Testing/slicer_harness/fresh.py SCENARIO INPUT.json OUTPUT.json

Before anything is imported, the packages a fresh Slicer 5.10/5.12 lacks are hidden (imports and installed
metadata): pandas, pyarrow, PyYAML, scikit-learn, matplotlib, tqdm, safetensors, PyRadiomics, PyTorch.
Slicer bundles numpy, scipy, pillow, pydicom, SimpleITK and packaging, which stay. The stand-in for pip
(``slicer.packaging.pip_install`` on 5.12, ``slicer.util.pip_install`` on 5.10) and for SlicerPyTorch's
``installTorch`` record their calls and make the named packages importable. Each scenario writes what
happened (dialogs, installs, errors, outcomes) to OUTPUT.json for the test to check.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "ALNMPredictor"))

from environment import FreshPackages  # noqa: E402  (standard library only so far)

from ALNMPredictorLib import dependencies  # noqa: E402  (standard library only)

#: packages every Slicer 5.10/5.12 bundles (distribution names)
BUNDLED = {"numpy", "scipy", "pillow", "pydicom", "simpleitk", "packaging"}


def hidden_requirements() -> list:
    reqs = dependencies.requirements_for(deep=True)
    return [r for r in reqs if r.name not in BUNDLED]


class Recorder:
    """What the stand-ins saw."""

    def __init__(self, fresh: FreshPackages) -> None:
        self.fresh = fresh
        self.pip_calls: list[dict] = []
        self.errors: list[str] = []

    def install(self, requirements) -> None:
        texts = requirements.split() if isinstance(requirements, str) else list(requirements)
        reqs = [dependencies.Requirement.parse(t) for t in texts]
        names = {r.import_name for r in reqs}
        dists = {r.name for r in reqs}
        if "pyradiomics-bhklab" in dists:
            dists.add("pyradiomics")
        self.fresh.install(names, dists)

    def pip_512(
        self,
        requirements,
        constraints=None,
        no_deps_requirements=None,
        skip_packages=None,
        blocking=True,
        show_progress=True,
        requester=None,
        parent=None,
        logCallback=None,
        completedCallback=None,
    ):
        self.pip_calls.append(
            {
                "api": "slicer.packaging.pip_install",
                "requirements": list(requirements),
                "show_progress": show_progress,
            }
        )
        self.install(requirements)

    def pip_510(self, requirements):
        self.pip_calls.append({"api": "slicer.util.pip_install", "requirements": list(requirements)})
        self.install(requirements)


def setup(scenario_input: dict):
    fresh = FreshPackages(
        [r.import_name for r in hidden_requirements()], [r.name for r in hidden_requirements()]
    )
    import extensions
    from environment import ModuleHarness, install

    env = install()
    env.reset(testing=False, main_window=True, root=Path(scenario_input["root"]))
    recorder = Recorder(fresh)
    slicer = env.slicer
    if scenario_input.get("slicer") == "5.10":
        sys.modules["slicer.packaging"] = None  # no slicer.packaging before 5.11
        if hasattr(slicer, "packaging"):
            delattr(slicer, "packaging")
        slicer.util.pip_install = recorder.pip_510
        sys.modules["SampleData"] = extensions.make_sample_data_module(version=(5, 10))
    else:
        slicer.packaging.pip_install = recorder.pip_512
    if scenario_input.get("pytorch_extension", True):
        torch_reqs = [dependencies.Requirement.parse(t) for t in dependencies.PYTORCH]
        sys.modules["PyTorchUtils"] = extensions.make_pytorch_utils_module(
            lambda: fresh.install({r.import_name for r in torch_reqs}, {r.name for r in torch_reqs}),
            decline=bool(scenario_input.get("decline_torch")),
        )
    harness = ModuleHarness(env, REPO / "ALNMPredictor" / "ALNMPredictor.py")
    return env, harness, recorder


def click(env, button, answers=()) -> dict:
    """A user's click, with answers for the dialogs it opens; what it showed and whether it raised."""
    import qt

    shown = len(qt.dialogs)
    qt.dialog_answers[:] = list(answers)
    error = None
    try:
        button.click()
    except Exception as exc:  # in Slicer, PythonQt prints it after the error dialog
        error = f"{type(exc).__name__}: {exc}"
    return {"dialogs": [dict(d) for d in qt.dialogs[shown:]], "error": error}


def _volume_nodes(env, arrays_file: Path, logic) -> dict:
    """The demo case as volume and segmentation nodes, built with numpy and MRML only (no library import)."""
    import numpy as np

    data = np.load(arrays_file)
    nodes = {}
    for region in ("tumor", "ln"):
        image = data[f"{region}_image"]
        volume = logic.addVolumeFromArray(image, tuple(data[f"{region}_spacing"]), f"case {region}")
        segmentation = env.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"case {region} ROI")
        segmentation.CreateDefaultDisplayNodes()
        segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        logic.addSegmentFromMask(segmentation, data[f"{region}_mask"] > 0, volume, region)
        nodes[region] = (volume, segmentation)
    return nodes


def _fill_clinical(widget, values: dict) -> None:
    """Type clinical values into the panel's form, as a user would."""
    for name, value in values.items():
        field = widget._clinicalWidgets.get(name)
        if field is not None:
            field.setCurrentText(value) if hasattr(field, "setCurrentText") else field.setText(value)


def scenario_button(data: dict) -> dict:
    """One button on a fresh Slicer: declined once (nothing imported), then accepted (installed, then run)."""
    import qt

    env, harness, recorder = setup(data)
    widget = harness.show()
    ui, p = widget.ui, widget._parameterNode
    out = {"model_info": ui.modelInfoLabel.text}
    name = data["button"]
    logic = widget.logic
    if name == "predictButton":
        nodes = _volume_nodes(env, Path(data["arrays"]), logic)
        p.tumorVolume, p.lnVolume = nodes["tumor"][0], nodes["ln"][0]
        ui.tumorSegmentSelector.setCurrentNode(nodes["tumor"][1])
        ui.lnSegmentSelector.setCurrentNode(nodes["ln"][1])
        p.caseId = "P-fresh"
    if name in ("validateButton", "runBatchButton"):
        p.manifestPath = Path(data["manifest"])
    if name == "runBatchButton":
        p.batchModelPath = Path(data["model"])
        p.batchOutputFolder = Path(data["root"]) / "batch"
        recorder.batch_python = sys.executable
        widget.batchLogic.pythonExecutable = sys.executable
    if name == "generateDemoButton":
        p.demoPatients = 20
    if name == "recordUnaidedButton":
        p.readerName = "R1"
        p.caseId = "P1"
        p.readsPath = Path(data["root"]) / "reads.csv"
        ui.callMetastasisRadioButton.click()
    button = getattr(ui, name)
    out["declined"] = click(env, button, [qt.QMessageBox.Cancel])
    out["pandas_imported_after_decline"] = "pandas" in sys.modules
    out["results_after_decline"] = ui.resultsText.plainText
    out["accepted"] = click(env, button, [qt.QMessageBox.Ok])
    if (
        name == "predictButton"
    ):  # the form appeared with the packages: the model's factors, then Predict again
        out["asked_for_clinical"] = ui.resultsText.plainText
        _fill_clinical(widget, data.get("clinical", {}))
        out["after_form"] = click(env, button, [])
    out["pip_calls"] = recorder.pip_calls
    out["torch_imported"] = "torch" in sys.modules
    if name == "runBatchButton":
        import time

        deadline = time.monotonic() + 300
        while widget.batchLogic.isRunning() and time.monotonic() < deadline:
            env.process_events()
            time.sleep(0.05)
        env.process_events(2)
        out["batch_log"] = ui.batchLogText.plainText
    out["results"] = ui.resultsText.plainText
    out["batch_text"] = ui.batchLogText.plainText
    out["case_id"] = p.caseId
    out["tumor_volume"] = p.tumorVolume.GetName() if p.tumorVolume is not None else None
    out["manifest"] = str(p.manifestPath)
    tables = env.scene.GetNodesByClass("vtkMRMLTableNode")
    out["tables"] = [tables.GetItemAsObject(i).GetName() for i in range(tables.GetNumberOfItems())]
    out["form_rows"] = list(widget._clinicalWidgets)
    out["reads_exists"] = (Path(data["root"]) / "reads.csv").is_file()
    return out


def scenario_torch(data: dict) -> dict:
    """PyTorch is asked for only when the model uses deep features."""
    import qt

    env, harness, recorder = setup(data)
    widget = harness.show()
    ui, p = widget.ui, widget._parameterNode
    nodes = _volume_nodes(env, Path(data["arrays"]), widget.logic)
    p.tumorVolume, p.lnVolume = nodes["tumor"][0], nodes["ln"][0]
    ui.tumorSegmentSelector.setCurrentNode(nodes["tumor"][1])
    ui.lnSegmentSelector.setCurrentNode(nodes["ln"][1])
    out = {"demo": click(env, ui.predictButton, [qt.QMessageBox.Ok])}
    _fill_clinical(widget, data.get("clinical", {}))  # the demo model's form appeared with the packages
    out["demo_again"] = click(env, ui.predictButton, [])
    out["demo_pip_calls"] = list(recorder.pip_calls)
    out["demo_torch_imported"] = "torch" in sys.modules
    out["demo_results"] = ui.resultsText.plainText
    p.modelPath = Path(data["deep_model"])
    out["deep_model_info"] = ui.modelInfoLabel.text
    out["deep_form_rows"] = list(widget._clinicalWidgets)
    _fill_clinical(widget, data.get("clinical", {}))
    out["deep"] = click(env, ui.predictButton, [qt.QMessageBox.Ok])
    out["deep_results"] = ui.resultsText.plainText
    pytorch = sys.modules.get("PyTorchUtils")
    out["install_torch_calls"] = list(pytorch.calls) if pytorch is not None else None
    out["pip_calls"] = recorder.pip_calls
    out["form_rows"] = list(widget._clinicalWidgets)
    return out


def scenario_headless(data: dict) -> dict:
    """Scripts/alnm_batch.py on a fresh Slicer: say what to install, or install with consent, before any work."""
    import contextlib
    import io

    env, harness, recorder = setup(data)
    sys.path.insert(0, str(REPO / "ALNMPredictor" / "Scripts"))
    import alnm_batch

    out = {}
    for label, extra in (("without_consent", []), ("with_consent", ["--install-dependencies"])):
        stdout, stderr = io.StringIO(), io.StringIO()
        args = [
            "--",
            "predict",
            data["manifest"],
            "--out",
            str(Path(data["root"]) / label),
            "--model",
            data["model"],
            *extra,
            "--",
            "--workers",
            "1",
            "--no-progress",
        ]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = alnm_batch.main(args, python=sys.executable)
        out[label] = {
            "status": status,
            "stdout": stdout.getvalue(),
            "stderr": stderr.getvalue(),
            "predictions": (Path(data["root"]) / label / "predictions.csv").is_file(),
            "pip_calls": list(recorder.pip_calls),
        }
    return out


def scenario_sample_data(data: dict) -> dict:
    """Startup on Slicer 5.10 or 5.12: the demo case is registered with Sample Data and loads."""
    env, harness, recorder = setup(data)
    harness.startup_completed()
    slicer = env.slicer
    import SampleData

    sources = getattr(slicer.modules, "sampleDataSources", {})
    out = {
        "categories": dict(getattr(slicer.modules, "sampleDataSourceCategories", {})),
        "sources": {c: [s.sampleName for s in v] for c, v in sources.items()},
    }
    loaded = SampleData.SampleDataLogic().downloadFromSource(sources["ALNMPredictor"][0])
    out["loaded"] = [[n.GetClassName(), n.GetName()] for n in loaded]
    out["pandas_imported"] = "pandas" in sys.modules
    return out


SCENARIOS = {
    "button": scenario_button,
    "torch": scenario_torch,
    "headless": scenario_headless,
    "sample_data": scenario_sample_data,
}


def main(argv: list[str]) -> int:
    scenario, input_path, output_path = argv
    data = json.loads(Path(input_path).read_text())
    try:
        result = {"ok": True, **SCENARIOS[scenario](data)}
    except Exception:
        result = {"ok": False, "traceback": traceback.format_exc()}
    Path(output_path).write_text(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
