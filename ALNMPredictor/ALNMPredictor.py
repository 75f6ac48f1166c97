import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Annotated

import numpy as np
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

MODULE_DIR = Path(__file__).resolve().parent
if str(MODULE_DIR) not in sys.path:  # ALNMPredictorLib lives beside this file
    sys.path.insert(0, str(MODULE_DIR))

# Only the standard-library part of the library may be imported before the dependencies are checked.
from ALNMPredictorLib import dependencies  # noqa: E402

#: regions of the study's model, in panel order, with their display names
REGIONS = {"tumor": "Tumour", "ln": "Lymph node"}
#: the SYNTHETIC demo case registered with the Sample Data module (files in Resources/SampleData)
SAMPLE_DATA = {
    "category": "ALNMPredictor",
    "name": "ALNMDemoCase",
    "files": (
        ("ALNMDemoTumor.nrrd", "ALNMDemoTumor", "VolumeFile"),
        ("ALNMDemoTumor.seg.nrrd", "ALNMDemoTumorSegmentation", "SegmentationFile"),
        ("ALNMDemoLN.nrrd", "ALNMDemoLN", "VolumeFile"),
        ("ALNMDemoLN.seg.nrrd", "ALNMDemoLNSegmentation", "SegmentationFile"),
    ),
}

#
# ALNMPredictor
#


class ALNMPredictor(ScriptedLoadableModule):
    """Predict axillary lymph node metastasis from breast and axillary ultrasound (research use)."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("ALNM Predictor")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Quantification")]
        self.parent.dependencies = []
        self.parent.contributors = ["ALNM Predictor developers (ALNM Predictor project)"]
        self.parent.helpText = _(
            "Deep-learning radiomics for axillary lymph node metastasis (ALNM) in breast cancer from 2D "
            "ultrasound of the primary tumour and the most suspicious axillary lymph node: tumour score, "
            "LN score, Nomo-score, risk group and nomogram for one case; training, validation and "
            "prediction for a cohort. Research use only, not for clinical decisions. "
            'See the <a href="https://github.com/alnm-predictor/SlicerALNMPredictor#readme">README</a> '
            "for the tutorial, the cohort manifest format and the command-line tool <code>alnm</code>."
        )
        self.parent.acknowledgementText = _(
            "The method reproduces Zhang D, Zhou W, Lu W-W, et al. Ultrasound-based deep learning radiomics "
            "for enhanced axillary lymph node metastasis assessment: a multicenter study. The Oncologist. "
            "Features are computed with PyRadiomics (van Griethuysen et al., Cancer Research 2017) and "
            "torchvision's VGG19. The demo model and demo cases are SYNTHETIC, not patient data."
        )
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Register sample data sets in Sample Data module
#


def sampleDataSources() -> list:
    """Keyword arguments of ``registerCustomSampleDataSource`` for the SYNTHETIC demo case (local files)."""
    import hashlib
    import urllib.parse
    import urllib.request

    folder = MODULE_DIR / "Resources" / "SampleData"
    uris, names, nodes, types, checksums = [], [], [], [], []
    for fileName, nodeName, fileType in SAMPLE_DATA["files"]:
        path = folder / fileName
        uris.append(urllib.parse.urljoin("file:", urllib.request.pathname2url(str(path))))
        names.append(fileName)
        nodes.append(nodeName)
        types.append(fileType)
        checksums.append("SHA256:" + hashlib.sha256(path.read_bytes()).hexdigest())
    return [
        {
            "category": SAMPLE_DATA["category"],
            "sampleName": SAMPLE_DATA["name"],
            "thumbnailFileName": str(folder / "ALNMDemoCase.png"),
            "uris": uris,
            "fileNames": names,
            "nodeNames": nodes,
            "loadFileTypes": types,
            "checksums": checksums,
        }
    ]


def registerSampleData():
    """Add the SYNTHETIC demo case (tumour and lymph-node images with their segmentations) to Sample Data."""
    import SampleData

    logic = SampleData.SampleDataLogic
    if hasattr(logic, "registerCustomSampleDataCategory"):  # Slicer 5.12+
        logic.registerCustomSampleDataCategory(SAMPLE_DATA["category"], title=_("ALNM Predictor"))
    for source in sampleDataSources():
        logic.registerCustomSampleDataSource(**source)


#
# ALNMPredictorParameterNode
#


@parameterNodeWrapper
class ALNMPredictorParameterNode:
    """Settings of the module panel, stored in the scene.

    tumorVolume, lnVolume - the 2D ultrasound images (one-slice volumes; grey or colour) of the two regions.
    modelPath - saved model (folder, its model.json, or .zip); empty means the synthetic demo model.
    caseId - identifier written to the result table and the reads CSV.
    resultTable - table node receiving the prediction.
    heatmapRegion, heatmapTarget, heatmapOpacity - the Grad-CAM heatmap shown over a region's image after
        Predict (score: the region score's deep part; head: the deep head's output) and its opacity.
    readerMode, readerName, readsPath - reader study: unaided call first, then the model, then aided.
    demoFolder, demoPatients, demoSeed - the synthetic demo cohort (cohort panel).
    manifestPath, batchTask, batchDeep, batchModelPath, batchOutputFolder - cohort panel.
    """

    tumorVolume: slicer.vtkMRMLScalarVolumeNode | slicer.vtkMRMLVectorVolumeNode | None
    lnVolume: slicer.vtkMRMLScalarVolumeNode | slicer.vtkMRMLVectorVolumeNode | None
    modelPath: Path
    caseId: str = "case"
    resultTable: slicer.vtkMRMLTableNode
    heatmapRegion: Annotated[str, Choice(["tumor", "ln"])] = "tumor"
    heatmapTarget: Annotated[str, Choice(["score", "head"])] = "score"
    heatmapOpacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    readerMode: bool = False
    readerName: str = ""
    readsPath: Path
    demoFolder: Path
    demoPatients: Annotated[int, WithinRange(20, 2000)] = 200
    demoSeed: Annotated[int, WithinRange(0, 1000000)] = 0
    manifestPath: Path
    batchTask: Annotated[str, Choice(["predict", "evaluate", "train"])] = "predict"
    batchDeep: Annotated[str, Choice(["off", "auto", "imagenet", "none"])] = "off"
    batchModelPath: Path
    batchOutputFolder: Path


def _isSet(path) -> bool:
    return bool(path) and str(path) not in ("", ".")


#
# ALNMPredictorWidget
#


class ALNMPredictorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: a thin layer that forwards to ALNMPredictorLogic and ALNMPredictorBatchLogic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.batchLogic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._clinicalWidgets = {}
        self._requiredClinical = []  # the factors the clinical-radiomics model needs, in the form's order
        self._formModel = None  # the model path the clinical form was built for
        self._prediction = None
        self._predictionInputs = None  # (case ID, tumour volume ID, LN volume ID) of the prediction on screen
        self._heatmaps = {}  # (region, target) -> heatmap volume node of the prediction on screen
        self._heatmapShown = None  # (region, target, opacity) the slice views show
        self._batchTimer = None
        self._batchResult = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        import qt

        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ALNMPredictor.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = ALNMPredictorLogic()
        self.batchLogic = ALNMPredictorBatchLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # As Slicer's Segment Editor module: the editor's parameter node first, then the scene
        self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        self.ui.segmentEditorWidget.setMRMLScene(slicer.mrmlScene)

        self.ui.loadDemoCaseButton.connect("clicked(bool)", self.onLoadDemoCase)
        self.ui.modelFolderButton.connect("directorySelected(QString)", self.onModelFolderSelected)
        self.ui.batchModelFolderButton.connect("directorySelected(QString)", self.onBatchModelFolderSelected)
        self.ui.editTumorButton.connect("clicked(bool)", lambda: self.onEditRegion("tumor"))
        self.ui.editLnButton.connect("clicked(bool)", lambda: self.onEditRegion("ln"))
        self.ui.predictButton.connect("clicked(bool)", self.onPredict)
        self.ui.recordUnaidedButton.connect("clicked(bool)", lambda: self.onRecordRead("unaided"))
        self.ui.recordAidedButton.connect("clicked(bool)", lambda: self.onRecordRead("aided"))
        self.ui.generateDemoButton.connect("clicked(bool)", self.onGenerateDemo)
        self.ui.validateButton.connect("clicked(bool)", self.onValidate)
        self.ui.runBatchButton.connect("clicked(bool)", self.onRunBatch)
        self.ui.cancelBatchButton.connect("clicked(bool)", self.onCancelBatch)
        self.ui.openReportButton.connect("clicked(bool)", self.onOpenReport)

        self._batchTimer = qt.QTimer()
        self._batchTimer.setInterval(200)
        self._batchTimer.connect("timeout()", self.onBatchPoll)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        if hasattr(self, "ui"):
            self._releaseSegmentEditor()
        if self.batchLogic is not None and self.batchLogic.isRunning():
            self.batchLogic.cancel()
        if self._batchTimer is not None:
            self._batchTimer.stop()

    def enter(self) -> None:
        self.initializeParameterNode()
        editor = self.ui.segmentEditorWidget
        editor.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
        editor.installKeyboardShortcuts()
        editor.updateWidgetFromMRML()

    def exit(self) -> None:
        self._releaseSegmentEditor()
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            )

    def _releaseSegmentEditor(self) -> None:
        """What Slicer's Segment Editor module does on exit: no active effect, no shortcuts, no view observers."""
        editor = self.ui.segmentEditorWidget
        editor.setActiveEffect(None)
        editor.uninstallKeyboardShortcuts()
        editor.removeViewObservations()

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.ui.segmentEditorWidget.setSegmentationNode(None)
        self.ui.segmentEditorWidget.removeViewObservations()
        self._clearPrediction()

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()
            self.ui.segmentEditorWidget.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
            self.ui.segmentEditorWidget.updateWidgetFromMRML()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        if not _isSet(p.demoFolder):
            p.demoFolder = Path(slicer.app.temporaryPath) / "ALNMPredictor-demo"
        if not _isSet(p.readsPath):
            p.readsPath = Path(slicer.app.defaultScenePath) / "alnm-reads.csv"

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            if self.hasObserver(
                self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
            ):
                self.removeObserver(
                    self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified
                )
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """React to the parameter node (however it changed): clinical form, stale results, button states."""
        p = self._parameterNode
        if p is None:
            return
        if str(p.modelPath) != self._formModel:
            self.updateClinicalForm()
        if self._predictionInputs is not None and self._predictionInputs != self._currentInputs():
            self._clearPrediction()
        ready = p.tumorVolume is not None and p.lnVolume is not None
        self.ui.predictButton.enabled = ready
        self.ui.predictButton.toolTip = (
            _("Tumour score, LN score, Nomo-score, risk group at the cut-off and nomogram points.")
            if ready
            else _("Select the tumour and the lymph-node images first.")
        )
        self.ui.recordAidedButton.enabled = self._prediction is not None
        self.ui.batchDeepComboBox.enabled = p.batchTask == "train"
        if self._heatmaps and self._heatmapShown != (p.heatmapRegion, p.heatmapTarget, p.heatmapOpacity):
            self.showHeatmap()

    def _currentInputs(self) -> tuple:
        p = self._parameterNode
        ids = tuple(v.GetID() if v is not None else None for v in (p.tumorVolume, p.lnVolume))
        return (p.caseId, *ids)

    def _clearPrediction(self) -> None:
        """Forget the prediction on screen (another case, other images, or a closed scene)."""
        if self._prediction is None:
            return
        self._prediction = None
        self._predictionInputs = None
        self._removeHeatmaps()
        self.ui.resultsText.plainText = _("The inputs changed: press Predict for this case.")
        self.ui.nomogramLabel.text = _("Nomogram (after Predict)")
        self.ui.calibrationLabel.text = _("Calibration of the model (after Predict)")
        self.ui.recordAidedButton.enabled = False

    # ----- dependencies ----------------------------------------------------------------------------

    def ensureDependencies(self, deep: bool = False) -> bool:
        """Make sure the Python packages a task needs are installed: ask once, then install; False if declined."""
        missing = self.logic.missingDependencies(deep)
        if not missing:
            return True
        text = _(
            "ALNM Predictor needs these Python packages, which are not installed:\n\n{names}\n\n"
            "Install them now? This can take several minutes."
        ).format(names="\n".join(missing))
        if not slicer.util.confirmOkCancelDisplay(
            text, windowTitle=_("ALNM Predictor - install Python packages")
        ):
            self.ui.resultsText.plainText = _("Not installed: {names}").format(names=", ".join(missing))
            return False
        self.logic.installDependencies(deep, showProgress=True)
        self.updateClinicalForm()
        return True

    def ensureBackboneWeights(self, modelPath=None, deep=None) -> bool:
        """Ask before downloading torchvision's ImageNet VGG19 weights when the model (or the training setting
        ``deep``) needs them and they are not on this computer; download with a progress dialog. False if declined."""
        need = self.logic.backboneWeightsNeeded(modelPath=modelPath, deep=deep)
        if need is None:
            return True
        text = _(
            "The deep features use torchvision's ImageNet VGG19 weights ({file}, {size} MB), which are not on "
            "this computer.\n\nDownload them now from {url}?\nThey are saved once in {folder} (checksum "
            "verified) and used from there afterwards."
        ).format(**need)
        if not slicer.util.confirmOkCancelDisplay(
            text, windowTitle=_("ALNM Predictor - download VGG19 weights")
        ):
            self.ui.resultsText.plainText = _(
                "Not downloaded. Without a network: copy {file} (from {url}) into {folder}, or set the "
                "environment variable ALNM_VGG19_WEIGHTS to its path, then try again."
            ).format(**need)
            return deep == "auto"  # auto goes on with a random backbone, as it says
        dialog = slicer.util.createProgressDialog(
            labelText=_("Downloading {file}...").format(**need),
            windowTitle=_("ALNM Predictor - download"),
            maximum=100,
        )
        try:

            def progress(done, total):
                dialog.value = int(100 * done / total) if total else 0
                slicer.app.processEvents()
                if dialog.wasCanceled:
                    raise ValueError(_("Download cancelled: nothing was kept."))

            self.logic.downloadBackboneWeights(progress)
        finally:
            dialog.close()
        return True

    # ----- case review --------------------------------------------------------------------------

    def _regionInputs(self) -> dict:
        p = self._parameterNode
        inputs = {}
        for region, selector in (("tumor", self.ui.tumorSegmentSelector), ("ln", self.ui.lnSegmentSelector)):
            volume = p.tumorVolume if region == "tumor" else p.lnVolume
            inputs[region] = (volume, selector.currentNode(), selector.currentSegmentID() or None)
        return inputs

    def _clinicalValues(self) -> dict:
        values = {}
        for name, widget in self._clinicalWidgets.items():
            if hasattr(widget, "currentText"):
                text = widget.currentText
                values[name] = None if text in ("", "(missing)") else text
            else:
                values[name] = widget.text if widget.text.strip() else None
        return values

    def updateClinicalForm(self) -> None:
        """Rebuild the clinical form and the model line for the parameter node's model."""
        import qt

        p = self._parameterNode
        if p is None:
            return
        modelPath = p.modelPath
        previous = self._clinicalValues()
        layout = self.ui.clinicalFormWidget.layout()
        while layout.rowCount() > 0:
            layout.removeRow(0)
        self._clinicalWidgets = {}
        self._requiredClinical = []
        self._formModel = None
        missing = self.logic.missingDependencies()  # the form needs the library, not PyTorch
        if missing:  # asked for at the first button press, not when the panel opens
            self.ui.modelInfoLabel.text = _(
                "Python packages are missing ({names}): they are installed, after "
                "asking, at the first Predict."
            ).format(names=", ".join(missing))
            return
        try:
            fields = self.logic.clinicalFields(modelPath)
            description = self.logic.modelDescription(modelPath)
        except (ValueError, OSError) as exc:
            self.ui.modelInfoLabel.text = _("Cannot use this model: {error}").format(error=exc)
            self._formModel = str(modelPath)
            return
        for spec in fields:
            if spec.kind == "categorical":
                widget = qt.QComboBox()
                widget.addItems(["(missing)", *spec.levels])
                if previous.get(spec.name):
                    widget.setCurrentText(str(previous[spec.name]))
            else:
                widget = qt.QLineEdit()
                widget.setPlaceholderText(_("number"))
                if previous.get(spec.name):
                    widget.setText(str(previous[spec.name]))
            widget.toolTip = (
                _("Required by the clinical-radiomics model")
                if spec.required
                else _("Used by the clinical model only")
            )
            layout.addRow(spec.name + (" *" if spec.required else ""), widget)
            self._clinicalWidgets[spec.name] = widget
            if spec.required:
                self._requiredClinical.append(spec.name)
        torch = self.logic.missingDependencies(deep=True) if self.logic.modelNeedsPyTorch(modelPath) else []
        if torch:
            description += " " + _(
                "- its deep features need PyTorch ({names}), installed after asking at the first Predict."
            ).format(names=", ".join(torch))
        self.ui.modelInfoLabel.text = description
        self._formModel = str(modelPath)

    def onModelFolderSelected(self, directory) -> None:
        self._parameterNode.modelPath = Path(directory)

    def onBatchModelFolderSelected(self, directory) -> None:
        self._parameterNode.batchModelPath = Path(directory)

    def onLoadDemoCase(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to load the demo case."), waitCursor=True):
            if not self.ensureDependencies():
                return
            p = self._parameterNode
            loaded = self.logic.loadDemoCase(Path(p.demoFolder) / "cases", self.ui.demoCaseSpinBox.value)
            with slicer.util.NodeModify(p):
                p.tumorVolume, p.lnVolume = loaded["volumes"]["tumor"], loaded["volumes"]["ln"]
                p.caseId = loaded["caseId"]
                p.modelPath = Path(self.logic.ensureDemoModel(Path(p.demoFolder) / "model"))
            self.ui.tumorSegmentSelector.setCurrentNode(loaded["segmentations"]["tumor"])
            self.ui.lnSegmentSelector.setCurrentNode(loaded["segmentations"]["ln"])
            for name, value in loaded["clinical"].items():
                widget = self._clinicalWidgets.get(name)
                if widget is None or value is None:
                    continue
                if hasattr(widget, "setCurrentText"):
                    widget.setCurrentText(str(value))
                else:
                    widget.setText(str(value))
            slicer.util.setSliceViewerLayers(background=p.tumorVolume, fit=True)
            text = _("Synthetic demo case {case}.").format(case=loaded["caseId"])
            if not p.readerMode:  # a reader must not see the answer
                text += " " + _("True label: {label}.").format(label=loaded["label"])
            self.ui.resultsText.plainText = text

    def onEditRegion(self, region: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the Segment Editor."), waitCursor=True):
            volume, segmentation, _segmentId = self._regionInputs()[region]
            if volume is None:
                raise ValueError(_("Select the {region} image first.").format(region=REGIONS[region]))
            if segmentation is None:
                segmentation = self.logic.createSegmentation(volume, region)
                selector = self.ui.tumorSegmentSelector if region == "tumor" else self.ui.lnSegmentSelector
                selector.setCurrentNode(segmentation)
            editor = self.ui.segmentEditorWidget
            editor.setMRMLSegmentEditorNode(self.logic.segmentEditorNode())
            editor.setSegmentationNode(segmentation)
            editor.setSourceVolumeNode(volume)
            slicer.util.setSliceViewerLayers(background=volume, fit=True)
            self.ui.segmentEditorCollapsibleButton.collapsed = False

    def onPredict(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Prediction failed."), waitCursor=True):
            p = self._parameterNode
            if p.readerMode:
                done = self.logic.readerStatus(p.readsPath, p.caseId, p.readerName)
                if "unaided" not in done:
                    raise ValueError(
                        _("Reader study: record the unaided call before seeing the model's output.")
                    )
            formShown = self._formModel == str(p.modelPath)  # the user could fill in the model's form
            if not self.ensureDependencies(self.logic.modelNeedsPyTorch(p.modelPath)):
                return
            if not self.ensureBackboneWeights(modelPath=p.modelPath):
                return
            if self._formModel != str(p.modelPath):
                self.updateClinicalForm()
            if not formShown:  # first use: the form appeared only now, with the packages it needs
                values = self._clinicalValues()
                empty = [n for n in self._requiredClinical if values.get(n) is None]
                if empty:
                    self.ui.resultsText.plainText = _(
                        "The model needs these clinical factors (marked * in Clinical factors): {names}. "
                        "Enter them, then press Predict again."
                    ).format(names=", ".join(empty))
                    return
            prediction, table = self.logic.predictCase(
                p.modelPath, self._regionInputs(), self._clinicalValues(), p.caseId, p.resultTable
            )
            p.resultTable = table
            self._removeHeatmaps()
            self._prediction = prediction
            self._predictionInputs = self._currentInputs()
            self.ui.recordAidedButton.enabled = True
            self.ui.resultsText.plainText = prediction.summary()
            figures = self.logic.renderFigures(
                p.modelPath, prediction, Path(slicer.app.temporaryPath) / "ALNMPredictor"
            )
            self._showImage(self.ui.nomogramLabel, figures.get("nomogram"))
            self._showImage(self.ui.calibrationLabel, figures.get("calibration"))
            selection = slicer.app.applicationLogic().GetSelectionNode()
            selection.SetActiveTableID(table.GetID())
            slicer.app.applicationLogic().PropagateTableSelection()
            self._heatmaps = self.logic.heatmapVolumes(p.modelPath, self._regionInputs(), p.caseId)
            self.showHeatmap()

    def _removeHeatmaps(self) -> None:
        """Take the heatmaps of the prediction on screen out of the scene (they belong to that prediction)."""
        for node in self._heatmaps.values():
            if node.GetScene() is not None:
                node.GetScene().RemoveNode(node)
        self._heatmaps = {}
        self._heatmapShown = None
        self.ui.heatmapInfoLabel.text = _("Grad-CAM heatmap (after Predict, for a model with deep features)")

    def showHeatmap(self) -> None:
        """Show the chosen region's heatmap over its image in the slice views, at the chosen opacity."""
        p = self._parameterNode
        if p is None:
            return
        if not self._heatmaps:
            self.ui.heatmapInfoLabel.text = _(
                "No heatmap: this model has no deep features (Grad-CAM explains those)."
            )
            self._heatmapShown = None
            return
        region, target = p.heatmapRegion, p.heatmapTarget
        node = self._heatmaps.get((region, target))
        note = ""
        if node is None and target == "score":
            node = self._heatmaps.get((region, "head"))
            note = " " + _("(the {region} score kept no deep feature: the deep head's map is shown)").format(
                region=REGIONS.get(region, region)
            )
        if node is None:
            self.ui.heatmapInfoLabel.text = _(
                "No heatmap for the {region}: the model has no deep head for it."
            ).format(region=REGIONS.get(region, region))
            self._heatmapShown = (region, target, p.heatmapOpacity)
            return
        volume = self._regionInputs()[region][0]
        slicer.util.setSliceViewerLayers(
            background=volume, foreground=node, foregroundOpacity=p.heatmapOpacity
        )
        self.ui.heatmapInfoLabel.text = node.GetAttribute("ALNMPredictor.heatmap") + note
        self._heatmapShown = (region, target, p.heatmapOpacity)

    def _showImage(self, label, path) -> None:
        import qt

        if path is None:
            label.text = _("(no data)")
            return
        pixmap = qt.QPixmap(str(path))
        label.setPixmap(pixmap.scaledToWidth(max(label.width, 320), qt.Qt.SmoothTransformation))

    def onRecordRead(self, session: str) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to record the read."), waitCursor=True):
            p = self._parameterNode
            if not (self.ui.callMetastasisRadioButton.checked or self.ui.callNoMetastasisRadioButton.checked):
                raise ValueError(_("Choose the call: metastasis or no metastasis."))
            call = 1 if self.ui.callMetastasisRadioButton.checked else 0
            if session == "aided":
                if self._prediction is None or self._predictionInputs != self._currentInputs():
                    raise ValueError(
                        _(
                            "Aided call: press Predict for case {case} first, so that its output is on "
                            "screen."
                        ).format(case=p.caseId)
                    )
            confidence = self.ui.confidenceSpinBox.value if self.ui.confidenceSpinBox.value > 0 else None
            if not self.ensureDependencies():
                return
            table = self.logic.recordRead(p.readsPath, p.caseId, p.readerName, session, call, confidence)
            self.ui.resultsText.appendPlainText(
                _(
                    "Recorded the {session} call of reader {reader} for case {case} ({n} reads in {path})."
                ).format(session=session, reader=p.readerName, case=p.caseId, n=len(table), path=p.readsPath)
            )

    # ----- cohort panel ------------------------------------------------------------------------

    def onGenerateDemo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the demo cohort."), waitCursor=True):
            if not self.ensureDependencies():
                return
            p = self._parameterNode
            manifest = self.logic.generateDemoCohort(
                Path(p.demoFolder) / "cohort", p.demoPatients, p.demoSeed
            )
            p.manifestPath = manifest
            self.ui.batchLogText.plainText = self.logic.formatProblems(self.logic.validateManifest(manifest))

    def onValidate(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to validate the manifest."), waitCursor=True):
            if not self.ensureDependencies():
                return
            problems = self.logic.validateManifest(self._parameterNode.manifestPath)
            self.ui.batchLogText.plainText = self.logic.formatProblems(problems)

    def onRunBatch(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to start the cohort run."), waitCursor=True):
            p = self._parameterNode
            deep = (
                (p.batchDeep != "off")
                if p.batchTask == "train"
                else self.logic.modelNeedsPyTorch(p.batchModelPath)
            )
            if not self.ensureDependencies(deep):
                return
            if p.batchTask == "train":
                if not self.ensureBackboneWeights(deep=p.batchDeep):
                    return
            elif not self.ensureBackboneWeights(modelPath=p.batchModelPath):
                return
            extra = ["--deep", p.batchDeep] if p.batchTask == "train" else []
            args = self.batchLogic.commandLine(
                p.batchTask,
                p.manifestPath,
                p.batchOutputFolder,
                p.batchModelPath,
                p.readsPath if _isSet(p.readsPath) and Path(p.readsPath).is_file() else None,
                extra,
            )
            self.ui.batchLogText.plainText = " ".join(args)
            self.batchLogic.start(args)
            self.ui.batchProgressBar.value = 0
            self.ui.runBatchButton.enabled = False
            self.ui.cancelBatchButton.enabled = True
            self._batchTimer.start()

    def onBatchPoll(self) -> None:
        for line in self.batchLogic.poll():
            self.ui.batchLogText.appendPlainText(line)
        self.ui.batchProgressBar.value = int(100 * self.batchLogic.progress)
        self.ui.batchStageLabel.text = self.batchLogic.stage
        if self.batchLogic.isRunning():
            return
        self._batchTimer.stop()
        self.ui.runBatchButton.enabled = True
        self.ui.cancelBatchButton.enabled = False
        with slicer.util.tryWithErrorDisplay(_("The cohort run failed."), waitCursor=True):
            p = self._parameterNode
            result = self.batchLogic.collect(p.batchTask, p.manifestPath, p.batchOutputFolder)
            self._batchResult = result
            self.ui.batchLogText.appendPlainText(result.summary())
            self.ui.openReportButton.enabled = result.reportPath is not None
            if result.returnCode in (130, -2, -9, -15):
                return
            tables = self.batchLogic.loadResultTables(result)
            if result.modelPath and p.batchTask == "train":
                p.batchModelPath = Path(result.modelPath)
            if tables:
                first = next(iter(tables.values()))
                slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(first.GetID())
                slicer.app.applicationLogic().PropagateTableSelection()
            if result.returnCode not in (0, 1):
                raise RuntimeError(result.summary())

    def onCancelBatch(self) -> None:
        self.ui.cancelBatchButton.enabled = False
        self.ui.batchStageLabel.text = _("Cancelling...")
        self.batchLogic.cancel()

    def onOpenReport(self) -> None:
        import qt

        if self._batchResult is not None and self._batchResult.reportPath:
            qt.QDesktopServices.openUrl(qt.QUrl.fromLocalFile(str(self._batchResult.reportPath)))


#
# ALNMPredictorLogic
#


def _nodeName(node) -> str:
    return node.GetName() if node is not None else "(none)"


class ALNMPredictorLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes into ALNMPredictorLib calls and results into table nodes; no GUI, usable headless.

    Every method raises ValueError with a message naming the node, segment or factor on bad input.
    """

    SEGMENT_EDITOR_NODE_TAG = "ALNMPredictorSegmentEditor"

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return ALNMPredictorParameterNode(super().getParameterNode())

    # ----- dependencies ---------------------------------------------------------------------------

    @staticmethod
    def modelNeedsPyTorch(modelPath) -> bool:
        """True when the saved model applies deep-feature heads (the synthetic demo model does not)."""
        return dependencies.model_uses_deep_features(modelPath)

    @staticmethod
    def missingDependencies(deep: bool = False) -> list:
        """Requirements not installed (``'pandas>=2.0'``, ...); PyTorch only when ``deep``."""
        return [r.text for r in dependencies.missing(dependencies.requirements_for(deep=deep))]

    @staticmethod
    def backboneWeightsNeeded(modelPath=None, deep=None):
        """None when nothing needs torchvision's ImageNet VGG19 weights or they are on this computer; else what a
        download fetches: {file, url, size, folder}. ``modelPath``: a saved model to apply; ``deep``: the
        training setting (imagenet and auto use them)."""
        needed = deep in ("imagenet", "auto") or (
            deep is None
            and dependencies.model_needs_imagenet_weights(ALNMPredictorLogic._modelFile(modelPath))
        )
        if not needed:
            return None
        from ALNMPredictorLib import deep as deepLib

        try:
            deepLib.find_imagenet_weights(download=False)
            return None
        except ValueError:
            return {
                "file": deepLib.VGG19_FILENAME,
                "url": deepLib.VGG19_URL,
                "size": f"{deepLib.VGG19_SIZE_MB:.0f}",
                "folder": str(deepLib.imagenet_cache_path().parent),
            }

    @staticmethod
    def _modelFile(modelPath):
        return Path(modelPath) if _isSet(modelPath) else None

    @staticmethod
    def downloadBackboneWeights(progress=None) -> Path:
        """Download torchvision's ImageNet VGG19 weights into torch hub's cache (the caller asked first);
        ``progress(bytesDone, bytesTotal)``. ValueError naming the URL and the folder when it fails."""
        from ALNMPredictorLib.deep import find_imagenet_weights

        return Path(find_imagenet_weights(download=True, progress=progress or (lambda done, total: None)))

    def installDependencies(self, deep: bool = False, showProgress: bool = False) -> None:
        """Install what :meth:`missingDependencies` lists: PyTorch via SlicerPyTorch, the rest with pip.

        Asks nothing (the widget asks first; a headless run passes its own consent); ``showProgress`` shows
        Slicer 5.12's pip progress dialog. Raises ValueError naming what could not be installed.
        """
        import importlib

        missing = dependencies.missing(dependencies.requirements_for(deep=deep))
        torch = [r for r in missing if r.name in ("torch", "torchvision")]
        others = [r.text for r in missing if r not in torch]
        if others:
            try:
                import slicer.packaging as packaging  # Slicer 5.12+
            except ImportError:
                packaging = None
            try:
                if packaging is not None:
                    packaging.pip_install(others, show_progress=showProgress)
                else:  # Slicer 5.10
                    slicer.util.pip_install(others)
            except subprocess.CalledProcessError as exc:
                hint = ""
                if any(r.name == "pyradiomics-bhklab" for r in missing):
                    hint = _(
                        " PyRadiomics is compiled from source: macOS needs the Xcode command-line tools "
                        "(xcode-select --install), Windows the Microsoft C++ Build Tools; or install the "
                        "SlicerRadiomics extension where it is available, whose PyRadiomics is used as is."
                    )
                raise ValueError(
                    _("pip could not install {names} (see the Python console).{hint}").format(
                        names=", ".join(others), hint=hint
                    )
                ) from exc
        if torch:
            try:
                import PyTorchUtils
            except ImportError as exc:
                raise ValueError(
                    _(
                        "This model uses deep features, which need PyTorch: install the PyTorch extension "
                        "from the Extensions Manager, restart Slicer and try again."
                    )
                ) from exc
            installed = PyTorchUtils.PyTorchUtilsLogic().installTorch(
                askConfirmation=False, torchVersionRequirement=">=2.1", torchvisionVersionRequirement=">=0.16"
            )
            if installed is None:
                raise ValueError(_("PyTorch was not installed (declined)."))
        importlib.invalidate_caches()
        still = self.missingDependencies(deep)
        if still:
            raise ValueError(
                _(
                    "These Python packages could not be installed: {names} (see the Python console for "
                    "pip's messages)."
                ).format(names=", ".join(still))
            )

    # ----- MRML -> arrays ---------------------------------------------------------------------------

    @staticmethod
    def volumeArrays(volumeNode) -> tuple:
        """(pixels (rows, cols) or (rows, cols, components) for colour, spacing (row, col) mm) of a one-slice volume."""
        if volumeNode is None:
            raise ValueError(_("No image volume selected."))
        if volumeNode.GetImageData() is None:
            raise ValueError(_("Volume '{name}' has no image data.").format(name=_nodeName(volumeNode)))
        array = slicer.util.arrayFromVolume(volumeNode)
        if array.shape[0] != 1:
            raise ValueError(
                _("Volume '{name}' has {n} slices: a 2D ultrasound image (one slice) is needed.").format(
                    name=_nodeName(volumeNode), n=array.shape[0]
                )
            )
        spacing = volumeNode.GetSpacing()
        return np.array(array[0], copy=True), (float(spacing[1]), float(spacing[0]))

    @staticmethod
    def _segmentId(segmentationNode, segmentId, region: str) -> str:
        segmentation = segmentationNode.GetSegmentation()
        ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
        names = [segmentation.GetSegment(i).GetName() for i in ids]
        if segmentId:
            if segmentId not in ids:
                raise ValueError(
                    _("Segmentation '{seg}' has no segment '{id}' (segments: {names}).").format(
                        seg=_nodeName(segmentationNode), id=segmentId, names=", ".join(names) or "none"
                    )
                )
            return segmentId
        if len(ids) == 1:
            return ids[0]
        for i, name in zip(ids, names, strict=True):
            if name.lower() in (region, REGIONS.get(region, region).lower()):
                return i
        raise ValueError(
            _("Segmentation '{seg}': choose the {region} segment (segments: {names}).").format(
                seg=_nodeName(segmentationNode),
                region=REGIONS.get(region, region),
                names=", ".join(names) or "none",
            )
        )

    def segmentMask(self, segmentationNode, segmentId, volumeNode, region: str = "tumor") -> np.ndarray:
        """The segment as a bool array (rows, cols) on the volume's pixel grid.

        The segment must be drawn on the volume's grid (same spacing and axes, origin on a voxel):
        otherwise, or when it is empty or reaches outside the image, ValueError says so.
        """
        from vtk.util import numpy_support

        if segmentationNode is None:
            raise ValueError(
                _("No segmentation selected for the {region}.").format(region=REGIONS.get(region, region))
            )
        if volumeNode is None:
            raise ValueError(
                _("No image volume selected for the {region}.").format(region=REGIONS.get(region, region))
            )
        segmentId = self._segmentId(segmentationNode, segmentId, region)
        segmentName = segmentationNode.GetSegmentation().GetSegment(segmentId).GetName()
        where = f"segment '{segmentName}' of '{_nodeName(segmentationNode)}'"
        if segmentationNode.GetParentTransformNode() is not volumeNode.GetParentTransformNode():
            raise ValueError(
                _("{where} and volume '{vol}' are under different transforms: harden them first.").format(
                    where=where, vol=_nodeName(volumeNode)
                )
            )
        segmentationNode.CreateBinaryLabelmapRepresentation()
        labelmap = slicer.vtkOrientedImageData()
        segmentationNode.GetBinaryLabelmapRepresentation(segmentId, labelmap)
        extent = labelmap.GetExtent()
        scalars = labelmap.GetPointData().GetScalars() if labelmap.GetPointData() else None
        if extent[0] > extent[1] or extent[2] > extent[3] or extent[4] > extent[5] or scalars is None:
            raise ValueError(_("{where} is empty: draw the region first.").format(where=where))
        dims = (extent[5] - extent[4] + 1, extent[3] - extent[2] + 1, extent[1] - extent[0] + 1)
        values = numpy_support.vtk_to_numpy(scalars).reshape(dims)
        nz = np.nonzero(values)
        if nz[0].size == 0:
            raise ValueError(_("{where} is empty: draw the region first.").format(where=where))
        segMatrix, volMatrix = vtk.vtkMatrix4x4(), vtk.vtkMatrix4x4()
        labelmap.GetImageToWorldMatrix(segMatrix)
        volumeNode.GetIJKToRASMatrix(volMatrix)
        seg = np.array([[segMatrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        vol = np.array([[volMatrix.GetElement(r, c) for c in range(4)] for r in range(4)])
        scale = float(np.abs(vol[:3, :3]).max())
        shift = (np.linalg.inv(vol) @ seg)[:3, 3]
        if not np.allclose(seg[:3, :3], vol[:3, :3], rtol=1e-4, atol=1e-6 * scale) or not np.allclose(
            shift, np.round(shift), atol=1e-3
        ):
            segSpacing = labelmap.GetSpacing()
            raise ValueError(
                _(
                    "{where} is defined on a different geometry (spacing {segsp}) than volume '{vol}' (spacing {volsp}): "
                    "segment it on this image (Segment Editor: select this volume as source) or resample it."
                ).format(
                    where=where,
                    segsp=tuple(round(s, 6) for s in segSpacing),
                    vol=_nodeName(volumeNode),
                    volsp=tuple(round(s, 6) for s in volumeNode.GetSpacing()),
                )
            )
        offset = np.round(shift).astype(int)
        k = nz[0] + extent[4] + offset[2]
        j = nz[1] + extent[2] + offset[1]
        i = nz[2] + extent[0] + offset[0]
        size = volumeNode.GetImageData().GetDimensions()
        outside = (i < 0) | (i >= size[0]) | (j < 0) | (j >= size[1]) | (k < 0) | (k >= size[2])
        if outside.any():
            raise ValueError(
                _("{where} reaches outside the image '{vol}' ({n} voxels): crop it to the image.").format(
                    where=where, vol=_nodeName(volumeNode), n=int(outside.sum())
                )
            )
        mask = np.zeros((size[2], size[1], size[0]), dtype=bool)
        mask[k, j, i] = True
        if mask.shape[0] != 1:
            raise ValueError(
                _("Volume '{name}' has {n} slices: a 2D ultrasound image (one slice) is needed.").format(
                    name=_nodeName(volumeNode), n=mask.shape[0]
                )
            )
        return mask[0]

    def regionArrays(self, volumeNode, segmentationNode, segmentId, region: str):
        """A RegionArrays (image, mask, spacing) of one region from its nodes."""
        from ALNMPredictorLib.casepredict import RegionArrays

        image, spacing = self.volumeArrays(volumeNode)
        mask = self.segmentMask(segmentationNode, segmentId, volumeNode, region)
        return RegionArrays(image, mask, spacing, source=_nodeName(volumeNode))

    # ----- arrays -> MRML -----------------------------------------------------------------------------

    @staticmethod
    def addVolumeFromArray(array: np.ndarray, spacing, name: str, scene=None):
        """A volume node (one slice, LPS-like axes as Slicer gives 2D images) from a 2D grey or (rows, cols, 3) colour array."""
        from vtk.util import numpy_support

        scene = scene or slicer.mrmlScene
        colour = array.ndim == 3
        node = scene.AddNewNodeByClass(
            "vtkMRMLVectorVolumeNode" if colour else "vtkMRMLScalarVolumeNode", name
        )
        image = vtk.vtkImageData()
        image.SetDimensions(array.shape[1], array.shape[0], 1)
        image.AllocateScalars(numpy_support.get_vtk_array_type(array.dtype), array.shape[2] if colour else 1)
        node.SetAndObserveImageData(image)
        slicer.util.arrayFromVolume(node)[0] = array
        row, col = spacing or (1.0, 1.0)
        node.SetSpacing(float(col), float(row), 1.0)
        node.SetIJKToRASDirections(-1, 0, 0, 0, -1, 0, 0, 0, 1)
        node.Modified()
        node.CreateDefaultDisplayNodes()
        return node

    @staticmethod
    def addSegmentFromMask(
        segmentationNode, mask: np.ndarray, volumeNode, name: str, color=(0.9, 0.3, 0.2)
    ) -> str:
        """Add a segment from a bool array on the volume's grid; returns its ID."""
        from vtk.util import numpy_support

        labelmap = slicer.vtkOrientedImageData()
        labelmap.SetDimensions(mask.shape[1], mask.shape[0], 1)
        labelmap.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
        numpy_support.vtk_to_numpy(labelmap.GetPointData().GetScalars())[:] = np.asarray(
            mask, dtype=np.uint8
        ).ravel()
        matrix = vtk.vtkMatrix4x4()
        volumeNode.GetIJKToRASMatrix(matrix)
        labelmap.SetImageToWorldMatrix(matrix)
        return segmentationNode.AddSegmentFromBinaryLabelmapRepresentation(labelmap, name, list(color))

    def createSegmentation(self, volumeNode, region: str):
        """An empty segmentation for a region, on the volume's geometry, with one segment named after it."""
        scene = volumeNode.GetScene() or slicer.mrmlScene
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{_nodeName(volumeNode)} {region}")
        node.CreateDefaultDisplayNodes()
        node.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
        dims = volumeNode.GetImageData().GetDimensions()
        self.addSegmentFromMask(node, np.zeros((dims[1], dims[0]), dtype=bool), volumeNode, region)
        return node

    def segmentEditorNode(self):
        """The module's Segment Editor parameter node (a scene singleton, created on first use)."""
        scene = slicer.mrmlScene
        node = scene.GetSingletonNode(self.SEGMENT_EDITOR_NODE_TAG, "vtkMRMLSegmentEditorNode")
        if node is None:
            node = scene.CreateNodeByClass("vtkMRMLSegmentEditorNode")
            node.UnRegister(None)
            node.SetSingletonTag(self.SEGMENT_EDITOR_NODE_TAG)
            node.SetName(self.SEGMENT_EDITOR_NODE_TAG)
            node = scene.AddNode(node)
        return node

    # ----- models -----------------------------------------------------------------------------------

    def modelPathOrDemo(self, modelPath, demoWorkFolder=None) -> Path:
        """The model to use: ``modelPath`` (folder, its model.json or a zip), or the synthetic demo model when empty."""
        if _isSet(modelPath):
            return Path(modelPath)
        return self.ensureDemoModel(demoWorkFolder)

    def ensureDemoModel(self, workFolder=None) -> Path:
        """The SYNTHETIC demo model: the committed one, else trained in ``workFolder`` (minutes) on first use."""
        from ALNMPredictorLib.demomodel import ensure_demo_model

        if workFolder is None and hasattr(slicer, "app"):
            workFolder = Path(slicer.app.temporaryPath) / "ALNMPredictor-demo" / "model"
        return Path(ensure_demo_model(workFolder))

    def loadModel(self, modelPath, deepHeads: bool = True):
        """The loaded model (cached while the file is unchanged); ValueError naming the path when it cannot be used.

        ``deepHeads=False`` leaves out the deep-feature heads (no PyTorch needed): enough to describe the model.
        """
        from ALNMPredictorLib.casepredict import load_model_cached

        return load_model_cached(self.modelPathOrDemo(modelPath), deep_heads=deepHeads)

    def clinicalFields(self, modelPath) -> list:
        """The clinical factors the model asks for (form rows)."""
        from ALNMPredictorLib.clinicalform import clinical_fields

        return clinical_fields(self.loadModel(modelPath, deepHeads=False))

    def modelDescription(self, modelPath) -> str:
        """One line about the model (synthetic demo or not, regions, deep features, cut-off)."""
        from ALNMPredictorLib.casepredict import model_location

        path = model_location(self.modelPathOrDemo(modelPath))
        loaded = self.loadModel(path, deepHeads=False)
        combined = loaded.model.combined_model_
        deep = _(", deep features") if self.modelNeedsPyTorch(path) else ""
        text = f"{path.name}: regions {', '.join(loaded.model.regions)}{deep}, cut-off {combined.cutoff:.3f}"
        if loaded.info.get("synthetic"):
            text = _("synthetic demo - not for clinical use. ") + text
        return text

    # ----- prediction -------------------------------------------------------------------------------

    def predictCase(
        self, modelPath, regionInputs: dict, clinical: dict, caseId: str = "case", tableNode=None
    ):
        """Predict one case from nodes; returns (CasePrediction, table node filled with every value).

        ``regionInputs``: region -> (volume node, segmentation node, segment ID or None). Colour volumes are
        converted to grey as the library converts colour files (the prediction's notes say how).
        """
        from ALNMPredictorLib.casepredict import predict_case

        path = self.modelPathOrDemo(modelPath)
        loaded = self.loadModel(path)
        missing = [r for r in loaded.model.regions if r not in regionInputs]
        if missing:
            raise ValueError(
                _("The model needs the {regions} image and segment.").format(
                    regions=", ".join(REGIONS.get(r, r) for r in missing)
                )
            )
        arrays = {region: self.regionArrays(*regionInputs[region], region) for region in loaded.model.regions}
        prediction = predict_case(loaded, arrays, clinical, caseId or "case")
        prediction.model_path = str(path)
        table = self.predictionToTable(prediction, tableNode)
        return prediction, table

    def heatmapVolumes(self, modelPath, regionInputs: dict, caseId: str = "case") -> dict:
        """Grad-CAM heatmaps of a case as volumes aligned with each region's image (same grid and IJK-to-RAS),
        values 0-1 (share of the map's maximum, 0 outside the ROI crop): {(region, target): volume node}, for
        targets ``head`` and, where the region score kept deep features, ``score``. Empty for a model without
        deep features."""
        from ALNMPredictorLib.casepredict import case_heatmaps

        loaded = self.loadModel(self.modelPathOrDemo(modelPath))
        if not loaded.deep_models:
            return {}
        regions = [r for r in loaded.deep_models if r in regionInputs]
        arrays = {region: self.regionArrays(*regionInputs[region], region) for region in regions}
        out = {}
        for region, maps in case_heatmaps(loaded, arrays, caseId or "case").items():
            for target, heatmap in maps.items():
                what = (
                    _("{region} score (its deep features)") if target == "score" else _("{region} deep head")
                )
                name = f"{caseId} {region} Grad-CAM ({target})"
                node = self.addHeatmapVolume(heatmap.on_image(), regionInputs[region][0], name)
                node.SetAttribute(
                    "ALNMPredictor.heatmap",
                    _("Grad-CAM of the {what}: red raises it most ({value}).").format(
                        what=what.format(region=REGIONS.get(region, region)),
                        value=heatmap.title().split(": ", 1)[1],
                    ),
                )
                out[(region, target)] = node
        return out

    def addHeatmapVolume(self, array: np.ndarray, referenceVolume, name: str):
        """A scalar volume of ``array`` (rows, cols) on ``referenceVolume``'s grid: same dimensions, IJK-to-RAS and
        parent transform, shown with the heatmap colours (jet) and zero transparent."""
        from vtk.util import numpy_support

        scene = referenceVolume.GetScene() or slicer.mrmlScene
        dims = referenceVolume.GetImageData().GetDimensions()
        if tuple(array.shape) != (dims[1], dims[0]):
            raise ValueError(
                _("Heatmap of size {got} does not fit volume '{vol}' ({want}).").format(
                    got=tuple(array.shape), vol=_nodeName(referenceVolume), want=(dims[1], dims[0])
                )
            )
        node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
        image = vtk.vtkImageData()
        image.SetDimensions(dims[0], dims[1], 1)
        image.AllocateScalars(vtk.VTK_FLOAT, 1)
        numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())[:] = np.asarray(
            array, dtype=np.float32
        ).ravel()
        node.SetAndObserveImageData(image)
        matrix = vtk.vtkMatrix4x4()
        referenceVolume.GetIJKToRASMatrix(matrix)
        node.SetIJKToRASMatrix(matrix)
        node.SetAndObserveTransformNodeID(referenceVolume.GetTransformNodeID())
        node.CreateDefaultDisplayNodes()
        display = node.GetDisplayNode()
        display.SetAndObserveColorNodeID(self.heatmapColorNode(scene).GetID())
        display.SetAutoWindowLevel(0)
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.SetApplyThreshold(1)
        display.SetLowerThreshold(0.01)  # outside the crop (0) and the map's faintest values stay transparent
        display.SetUpperThreshold(1.0)
        node.SetAttribute("ALNMPredictor.heatmapOf", referenceVolume.GetID())
        return node

    @staticmethod
    def heatmapColorNode(scene=None):
        """The heatmap colour table (matplotlib's jet, as in the PNG files), one per scene."""
        scene = scene or slicer.mrmlScene
        name = "ALNMPredictor Grad-CAM"
        node = scene.GetFirstNodeByName(name)
        if node is not None and node.IsA("vtkMRMLColorTableNode"):
            return node
        from matplotlib import colormaps

        colours = colormaps["jet"](np.linspace(0.0, 1.0, 256))
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
        node.SetTypeToUser()
        node.SetNumberOfColors(256)
        node.SetNamesInitialised(True)
        for i, (r, g, b, _a) in enumerate(colours):
            node.SetColor(i, f"{i / 255:.3f}", float(r), float(g), float(b), 1.0)
        node.SetHideFromEditors(True)
        return node

    @staticmethod
    def predictionToTable(prediction, tableNode=None):
        """Fill (or create) a table node: quantity, value, text, description; one row per value."""
        rows = prediction.records()
        if tableNode is None:
            tableNode = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLTableNode", f"ALNM prediction {prediction.case_id}"
            )
        wasModifying = tableNode.StartModify()
        tableNode.RemoveAllColumns()
        quantity, value, text, description = (
            vtk.vtkStringArray(),
            vtk.vtkDoubleArray(),
            vtk.vtkStringArray(),
            vtk.vtkStringArray(),
        )
        for array, name in (
            (quantity, "quantity"),
            (value, "value"),
            (text, "text"),
            (description, "description"),
        ):
            array.SetName(name)
        for row in rows:
            quantity.InsertNextValue(str(row["quantity"]))
            value.InsertNextValue(float(row["value"]))
            text.InsertNextValue(str(row["text"]))
            description.InsertNextValue(str(row["description"]))
        for array in (quantity, value, text, description):
            tableNode.AddColumn(array)
        tableNode.SetColumnDescription("value", "numeric value (NaN for text)")
        tableNode.SetAttribute("ALNMPredictor.caseId", prediction.case_id)
        tableNode.SetAttribute("ALNMPredictor.model", prediction.model_path)
        tableNode.SetAttribute("ALNMPredictor.synthetic", str(bool(prediction.synthetic)))
        tableNode.SetUseColumnTitleAsColumnHeader(True)
        tableNode.EndModify(wasModifying)
        return tableNode

    @staticmethod
    def tableValues(tableNode) -> dict:
        """{quantity: value or text} of a prediction table (the inverse of predictionToTable)."""
        table = tableNode.GetTable()
        quantity, value, text = (table.GetColumnByName(n) for n in ("quantity", "value", "text"))
        out = {}
        for r in range(table.GetNumberOfRows()):
            v = value.GetValue(r)
            out[quantity.GetValue(r)] = text.GetValue(r) if np.isnan(v) else v
        return out

    def renderFigures(self, modelPath, prediction, folder) -> dict:
        """PNG files of the nomogram (this case marked) and the model's calibration curve; {name: path or None}."""
        from ALNMPredictorLib.casefigures import calibration_figure, figure_png, nomogram_figure

        path = self.modelPathOrDemo(modelPath)
        loaded = self.loadModel(path)
        folder = Path(folder)
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", str(prediction.case_id)) if prediction is not None else "model"
        out = {"nomogram": figure_png(nomogram_figure(loaded, prediction), folder / f"nomogram-{safe}.png")}
        calibration = calibration_figure(path, loaded)
        out["calibration"] = (
            None if calibration is None else figure_png(calibration, folder / "calibration.png")
        )
        return out

    # ----- demo case ----------------------------------------------------------------------------------

    def loadDemoCase(self, folder, index: int = 0) -> dict:
        """Load a SYNTHETIC patient: a volume and a segmentation per region, plus its clinical factors."""
        from ALNMPredictorLib.demomodel import demo_case

        case = demo_case(folder, index)
        volumes, segmentations = {}, {}
        for region, arrays in case.regions.items():
            volume = self.addVolumeFromArray(
                np.asarray(arrays.image), arrays.spacing, f"{case.case_id} {region}"
            )
            segmentation = slicer.mrmlScene.AddNewNodeByClass(
                "vtkMRMLSegmentationNode", f"{case.case_id} {region} ROI"
            )
            segmentation.CreateDefaultDisplayNodes()
            segmentation.SetReferenceImageGeometryParameterFromVolumeNode(volume)
            self.addSegmentFromMask(segmentation, arrays.mask, volume, region)
            volumes[region], segmentations[region] = volume, segmentation
        return {
            "caseId": case.case_id,
            "label": case.label,
            "volumes": volumes,
            "segmentations": segmentations,
            "clinical": case.clinical,
        }

    # ----- reader study -------------------------------------------------------------------------------

    def readerStatus(self, readsPath, caseId: str, reader: str) -> dict:
        """{session: call} already recorded by this reader for this case."""
        from ALNMPredictorLib.reader_study import read_status

        if not reader or not str(reader).strip():
            raise ValueError(_("Enter the reader's name or code."))
        return read_status(readsPath, caseId, reader)

    def recordRead(self, readsPath, caseId: str, reader: str, session: str, call: int, confidence=None):
        """Append a read (unaided first, then aided) to the reads CSV; returns the whole reads table."""
        from ALNMPredictorLib.reader_study import record_read

        if not _isSet(readsPath):
            raise ValueError(_("Choose a reads CSV file."))
        return record_read(readsPath, caseId, reader, session, call, confidence)

    # ----- cohort helpers -----------------------------------------------------------------------------

    def generateDemoCohort(self, folder, patients: int = 200, seed: int = 0) -> Path:
        """Write (or reuse) the synthetic demo cohort in ``folder``; returns its manifest path."""
        from ALNMPredictorLib import synth

        if not _isSet(folder):
            raise ValueError(_("Choose a folder for the demo cohort."))
        existing = synth.existing_cohort(Path(folder), int(patients), int(seed))
        if existing is not None:
            return Path(existing)
        return Path(synth.synth_cohort(Path(folder), n_patients=int(patients), seed=int(seed)).manifest_path)

    def validateManifest(self, manifestPath) -> list:
        """Check a cohort manifest and every file it names; returns the list of problems."""
        from ALNMPredictorLib.cohort import load_manifest

        if not _isSet(manifestPath) or not os.path.isfile(str(manifestPath)):
            raise ValueError(_("Manifest file not found: {path}").format(path=manifestPath))
        return load_manifest(Path(manifestPath)).validate()

    @staticmethod
    def formatProblems(problems) -> str:
        """One line per problem, errors first, with a summary line."""
        errors = [p for p in problems if p.severity == "error"]
        warnings = [p for p in problems if p.severity != "error"]
        lines = [f"{len(errors)} error(s), {len(warnings)} warning(s)"]
        lines += [str(p) for p in errors + warnings]
        return "\n".join(lines)


#
# ALNMPredictorBatchLogic
#


class BatchResult:
    """What a cohort run left behind: exit status, outputs and the tables worth showing."""

    def __init__(
        self,
        task: str,
        returnCode,
        outputFolder: Path,
        predictionsPath=None,
        modelPath=None,
        reportPath=None,
        tables=None,
        log=(),
    ):
        self.task = task
        self.returnCode = returnCode
        self.outputFolder = Path(outputFolder)
        self.predictionsPath = predictionsPath
        self.modelPath = modelPath
        self.reportPath = reportPath
        self.tables = dict(tables or {})
        self.log = list(log)

    @property
    def failedCases(self) -> bool:
        """True when the run finished but some cases could not be processed (exit status 1)."""
        return self.returnCode == 1

    def summary(self) -> str:
        status = {
            0: "finished",
            1: "finished; some cases failed (see the error column)",
            None: "still running",
            130: "cancelled",
            -2: "cancelled",
            -9: "cancelled",
            -15: "cancelled",
        }.get(self.returnCode, f"failed (exit status {self.returnCode})")
        lines = [f"alnm {self.task}: {status}"]
        if self.returnCode not in (0, 1, None):
            errors = [line for line in self.log if line.startswith("alnm: error") or "Error" in line]
            lines += errors[-3:]
        if self.modelPath:
            lines.append(f"model: {self.modelPath}")
        if self.predictionsPath:
            lines.append(f"predictions: {self.predictionsPath}")
        if self.reportPath:
            lines.append(f"report: {self.reportPath}")
        return "\n".join(lines)


class ALNMPredictorBatchLogic:
    """Cohort work (train, evaluate, predict) run by the ``alnm`` CLI in a subprocess, with progress and cancel.

    ``start`` launches ``PythonSlicer -m ALNMPredictorLib TASK ...`` (the current Python outside Slicer) in
    a process group of its own: PythonSlicer is a launcher that starts the real Python as a child, which
    starts extraction workers, so cancelling signals the whole group. A reader thread collects the output;
    ``poll`` (from a GUI timer) returns new lines and updates ``progress`` and ``stage`` from the progress
    bars; ``wait`` blocks (headless use); ``cancel`` interrupts the group (Ctrl+C: finished work stays
    cached, a rerun resumes), then kills what is left and removes the temporary files a killed writer left.
    ``collect`` lists the outputs and ``loadResultTables`` turns them into table nodes.
    """

    TASKS = ("predict", "evaluate", "train")
    _PROGRESS = re.compile(r"^\s*([^:|]{1,40}):\s+(\d+)%\|.*?(\d+)/(\d+)")

    def __init__(self, pythonExecutable=None) -> None:
        self.pythonExecutable = pythonExecutable or shutil.which("PythonSlicer") or sys.executable
        self.process = None
        self.progress = 0.0
        self.stage = ""
        self.lines = []
        self._queue = queue.Queue()
        self._thread = None
        self._cancelled = False
        self._outputFolder = None
        self._started = 0.0

    def commandLine(
        self, task: str, manifest, outputFolder, modelPath=None, readsPath=None, extra=()
    ) -> list:
        """The ``alnm`` command for a task; ValueError naming what is missing."""
        if task not in self.TASKS:
            raise ValueError(
                _("Unknown task '{task}' (one of: {tasks}).").format(task=task, tasks=", ".join(self.TASKS))
            )
        if not _isSet(manifest) or not Path(manifest).is_file():
            raise ValueError(_("Manifest file not found: {path}").format(path=manifest))
        if not _isSet(outputFolder):
            raise ValueError(_("Choose an output folder."))
        out = Path(outputFolder)
        args = [self.pythonExecutable, "-m", "ALNMPredictorLib", task, str(manifest)]
        if task in ("predict", "evaluate"):
            if not _isSet(modelPath) or not Path(modelPath).exists():
                raise ValueError(_("Model not found: {path}").format(path=modelPath))
            args += ["--model", str(modelPath)]
        if task == "predict":
            args += ["--out", str(out / "predictions.csv"), "--work-dir", str(out / "work")]
        else:
            args += ["--out", str(out)]
        if task == "evaluate" and readsPath:
            args += ["--readers", str(readsPath)]
        return args + [str(a) for a in extra]

    def start(self, args: list, env=None) -> None:
        """Launch the command in a new process group; its output is read by a background thread."""
        if self.isRunning():
            raise ValueError(_("A cohort run is already in progress."))
        if env is None:
            app = getattr(slicer, "app", None)
            useStartup = app is not None and hasattr(app, "startupEnvironment")
            env = slicer.util.startupEnvironment() if useStartup else os.environ
        environment = dict(env)
        environment["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(MODULE_DIR), environment.get("PYTHONPATH", "")) if p
        )
        environment["PYTHONUNBUFFERED"] = "1"
        self.progress, self.stage, self.lines, self._cancelled = 0.0, "", [], False
        self._queue = queue.Queue()
        self._outputFolder = self._outputOf(args)
        self._started = time.time()
        kwargs = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP
        else:
            kwargs["start_new_session"] = True  # its own process group: the launcher, Python and workers
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=environment,
            text=True,
            errors="replace",
            **kwargs,
        )  # \r of progress bars ends a line too
        self._thread = threading.Thread(target=self._read, args=(self.process, self._queue), daemon=True)
        self._thread.start()

    @staticmethod
    def _outputOf(args: list):
        if "--out" not in args:
            return None
        out = Path(args[args.index("--out") + 1])
        return out.parent if out.suffix else out

    @staticmethod
    def _read(process, lines) -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        process.wait()

    def isRunning(self) -> bool:
        """True while the process runs or its output is still being read."""
        if self.process is None:
            return False
        return (
            self.process.poll() is None
            or (self._thread is not None and self._thread.is_alive())
            or not self._queue.empty()
        )

    @property
    def returnCode(self):
        return None if self.process is None else self.process.poll()

    def poll(self) -> list:
        """New output lines since the last call (progress bar lines update ``progress``/``stage`` instead)."""
        new = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            match = self._PROGRESS.match(line)
            if match:
                stage, done, total = match.group(1).strip(), int(match.group(3)), int(match.group(4))
                self.stage = f"{stage} {done}/{total}"
                self.progress = done / total if total else 0.0
                continue
            if line.strip():
                new.append(line)
                self.lines.append(line)
        return new

    def wait(self, callback=None, interval: float = 0.2, timeout=None) -> int:
        """Block until the process ends (``callback(lines, progress, stage)`` after each poll); its exit status."""
        started = time.monotonic()
        while self.isRunning():
            lines = self.poll()
            if callback is not None:
                callback(lines, self.progress, self.stage)
            if timeout is not None and time.monotonic() - started > timeout:
                self.cancel()
                raise TimeoutError(f"the cohort run took longer than {timeout} s and was cancelled")
            time.sleep(interval)
        lines = self.poll()
        if callback is not None:
            callback(lines, self.progress, self.stage)
        return self.process.returncode

    def _signalGroup(self, kill: bool) -> None:
        pid = self.process.pid
        if os.name == "nt":
            if kill:
                subprocess.run(["taskkill", "/F", "/T", "/PID", str(pid)], capture_output=True, check=False)
            else:
                self.process.send_signal(signal.CTRL_BREAK_EVENT)  # reaches the whole new process group
            return
        try:
            os.killpg(pid, signal.SIGKILL if kill else signal.SIGINT)
        except ProcessLookupError:
            pass

    def _groupAlive(self) -> bool:
        if os.name == "nt":
            return self.process.poll() is None
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def cancel(self, grace: float = 10.0) -> None:
        """Interrupt the run and every process it started (Ctrl+C: cached work is kept); kill what is left after
        ``grace`` s, then remove temporary files a stopped writer left in the output folder."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self._cancelled = True
        if not self._groupAlive():
            return
        self._signalGroup(kill=False)
        deadline = time.monotonic() + grace
        while self._groupAlive() and time.monotonic() < deadline:
            time.sleep(0.05)
            self.process.poll()
        killed = self._groupAlive()
        if killed:
            self._signalGroup(kill=True)
            deadline = time.monotonic() + 10
            while self._groupAlive() and time.monotonic() < deadline:
                time.sleep(0.05)
                self.process.poll()
        self.process.wait()
        # a worker ended by SIGTERM or SIGKILL in an atomic write leaves its temporary file behind
        if self._outputFolder is not None:
            from ALNMPredictorLib.fileio import remove_temporaries

            remove_temporaries(self._outputFolder, since=self._started)

    def run(
        self, task: str, manifest, outputFolder, modelPath=None, readsPath=None, extra=(), callback=None
    ) -> BatchResult:
        """Run a task to the end (headless, tests); returns its BatchResult."""
        self.start(self.commandLine(task, manifest, outputFolder, modelPath, readsPath, extra))
        self.wait(callback)
        return self.collect(task, manifest, outputFolder)

    def collect(self, task: str, manifest, outputFolder) -> BatchResult:
        """The outputs of a finished run in ``outputFolder``."""
        out = Path(outputFolder)
        predictions = out / "predictions.csv"
        model = out / "model" if task == "train" and (out / "model" / "model.json").is_file() else None
        reports = sorted(out.glob("**/report.html"))
        tables = {}
        if predictions.is_file():
            tables["predictions"] = predictions
        if task == "evaluate":
            for csv in sorted(out.glob("**/*.csv")):
                if "work" in csv.relative_to(out).parts or "features" in csv.relative_to(out).parts:
                    continue
                tables.setdefault(csv.stem, csv)
        code = self.returnCode
        if self._cancelled and code not in (0, None):
            code = 130
        return BatchResult(
            task,
            code,
            out,
            predictions if predictions.is_file() else None,
            model,
            reports[0] if reports else None,
            tables,
            self.lines,
        )

    @staticmethod
    def loadResultTables(result: BatchResult, scene=None, limit: int = 20) -> dict:
        """A table node per result CSV (named ``ALNM <task> <name>``); {name: node}."""
        import pandas as pd

        scene = scene or slicer.mrmlScene
        nodes = {}
        for name, path in list(result.tables.items())[:limit]:
            frame = pd.read_csv(path)
            node = scene.AddNewNodeByClass("vtkMRMLTableNode", f"ALNM {result.task} {name}")
            dataframeToTable(frame, node)
            node.SetAttribute("ALNMPredictor.source", str(path))
            nodes[name] = node
        return nodes


def dataframeToTable(frame, tableNode):
    """Fill a table node from a DataFrame: numeric columns as double, others as text."""
    import pandas as pd

    wasModifying = tableNode.StartModify()
    tableNode.RemoveAllColumns()
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
            array = vtk.vtkDoubleArray()
            for value in series.astype(float):
                array.InsertNextValue(value)
        else:
            array = vtk.vtkStringArray()
            for value in series:
                array.InsertNextValue(
                    "" if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)
                )
        array.SetName(str(column))
        tableNode.AddColumn(array)
    tableNode.SetUseColumnTitleAsColumnHeader(True)
    tableNode.EndModify(wasModifying)
    return tableNode


#
# ALNMPredictorTest
#


class ALNMPredictorTest(ScriptedLoadableModuleTest):
    """Runs the logic on the synthetic demo case inside Slicer (no GUI needed)."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoCasePrediction()
        self.setUp()
        self.test_WrongInputs()
        self.setUp()
        self.test_ReaderStudy()

    def _folder(self) -> Path:
        return Path(slicer.app.temporaryPath) / "ALNMPredictorSelfTest"

    def test_DemoCasePrediction(self):
        logic = ALNMPredictorLogic()
        missing = logic.missingDependencies()
        self.assertEqual(missing, [], f"install the module's Python packages first: {missing}")
        from ALNMPredictorLib.casepredict import load_model_cached, predict_case
        from ALNMPredictorLib.demomodel import demo_case

        self.delayDisplay("Predicting the synthetic demo case")
        folder = self._folder()
        model = logic.ensureDemoModel(folder / "model")
        loaded = logic.loadDemoCase(folder / "cases", 0)
        inputs = {r: (loaded["volumes"][r], loaded["segmentations"][r], None) for r in loaded["volumes"]}
        prediction, table = logic.predictCase(model, inputs, loaded["clinical"], loaded["caseId"])
        values = logic.tableValues(table)
        self.assertTrue(0.0 < values["nomo_score"] < 1.0)
        self.assertIn(values["risk_group"], ("high", "low"))
        # the same numbers as the library on the generator's own arrays
        reference = predict_case(
            load_model_cached(model),
            demo_case(folder / "cases", 0).regions,
            loaded["clinical"],
            loaded["caseId"],
        )
        self.assertAlmostEqual(prediction.probability, reference.probability, places=12)
        for region, score in reference.scores.items():
            self.assertAlmostEqual(values[f"{region}_score"], score, places=12)
        figures = logic.renderFigures(model, prediction, folder / "figures")
        self.assertTrue(Path(figures["nomogram"]).is_file())
        self.delayDisplay("Test passed")

    def test_WrongInputs(self):
        logic = ALNMPredictorLogic()
        folder = self._folder()
        model = logic.ensureDemoModel(folder / "model")
        loaded = logic.loadDemoCase(folder / "cases", 1)
        volume, segmentation = loaded["volumes"]["tumor"], loaded["segmentations"]["tumor"]
        empty = logic.createSegmentation(volume, "tumor")
        inputs = {r: (loaded["volumes"][r], loaded["segmentations"][r], None) for r in loaded["volumes"]}
        with self.assertRaisesRegex(ValueError, "empty"):
            logic.predictCase(model, {**inputs, "tumor": (volume, empty, None)}, loaded["clinical"], "x")
        image, spacing = logic.volumeArrays(volume)
        coarser = logic.addVolumeFromArray(image, (2 * spacing[0], 2 * spacing[1]), "coarser")
        with self.assertRaisesRegex(ValueError, "geometry"):
            logic.predictCase(
                model, {**inputs, "tumor": (coarser, segmentation, None)}, loaded["clinical"], "x"
            )
        clinical = dict(loaded["clinical"])
        required = [f.name for f in logic.clinicalFields(model) if f.required]
        if required:
            clinical[required[0]] = None
            with self.assertRaisesRegex(ValueError, required[0]):
                logic.predictCase(model, inputs, clinical, "x")
        self.delayDisplay("Test passed")

    def test_ReaderStudy(self):
        import tempfile

        logic = ALNMPredictorLogic()
        reads = Path(tempfile.mkdtemp()) / "reads.csv"
        with self.assertRaisesRegex(ValueError, "unaided"):
            logic.recordRead(reads, "P1", "R1", "aided", 1)
        logic.recordRead(reads, "P1", "R1", "unaided", 0)
        table = logic.recordRead(reads, "P1", "R1", "aided", 1)
        self.assertEqual(list(table["session"]), ["unaided", "aided"])
        self.assertEqual(
            json.loads(json.dumps(logic.readerStatus(reads, "P1", "R1"))), {"unaided": 0, "aided": 1}
        )
        self.delayDisplay("Test passed")
