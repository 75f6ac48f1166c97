import logging
import os
from pathlib import Path
from typing import Annotated

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

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
        self.parent.contributors = ["ALNM Predictor developers"]
        self.parent.helpText = _(
            "Deep-learning radiomics for axillary lymph node metastasis (ALNM) in breast cancer from 2D "
            "ultrasound of the primary tumour and the most suspicious axillary lymph node. "
            "Research use only, not for clinical decisions. "
            'See the <a href="https://github.com/alnm-predictor/SlicerALNMPredictor#readme">README</a> '
            "for the tutorial, the cohort manifest format and the command-line tool <code>alnm</code>."
        )
        self.parent.acknowledgementText = _(
            "The method reproduces Zhang D, Zhou W, Lu W-W, et al. Ultrasound-based deep learning radiomics "
            "for enhanced axillary lymph node metastasis assessment: a multicenter study. The Oncologist. "
            "Features are computed with PyRadiomics (van Griethuysen et al., Cancer Research 2017) and "
            "torchvision's VGG19."
        )


#
# ALNMPredictorParameterNode
#


@parameterNodeWrapper
class ALNMPredictorParameterNode:
    """Settings of the module panel, stored in the scene.

    demoFolder - where the synthetic demo cohort is written.
    demoPatients - size of the synthetic demo cohort.
    demoSeed - random seed of the synthetic demo cohort.
    manifestPath - cohort manifest (CSV) to validate.
    """

    demoFolder: Path
    demoPatients: Annotated[int, WithinRange(20, 2000)] = 200
    demoSeed: Annotated[int, WithinRange(0, 1000000)] = 0
    manifestPath: Path


#
# ALNMPredictorWidget
#


class ALNMPredictorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: a thin layer that forwards to ALNMPredictorLogic."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/ALNMPredictor.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)

        self.logic = ALNMPredictorLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.generateDemoButton.connect("clicked(bool)", self.onGenerateDemo)
        self.ui.validateButton.connect("clicked(bool)", self.onValidate)

        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.demoFolder or str(self._parameterNode.demoFolder) == ".":
            self._parameterNode.demoFolder = Path(slicer.app.temporaryPath) / "ALNMPredictor-demo"

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def onGenerateDemo(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to generate the demo cohort."), waitCursor=True):
            p = self._parameterNode
            manifest = self.logic.generateDemoCohort(p.demoFolder, p.demoPatients, p.demoSeed)
            p.manifestPath = manifest
            self.ui.resultsText.plainText = self.logic.formatProblems(self.logic.validateManifest(manifest))

    def onValidate(self) -> None:
        with slicer.util.tryWithErrorDisplay(_("Failed to validate the manifest."), waitCursor=True):
            problems = self.logic.validateManifest(self._parameterNode.manifestPath)
            self.ui.resultsText.plainText = self.logic.formatProblems(problems)


#
# ALNMPredictorLogic
#


class ALNMPredictorLogic(ScriptedLoadableModuleLogic):
    """Turns MRML nodes and panel settings into ALNMPredictorLib calls; no GUI, usable headless."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return ALNMPredictorParameterNode(super().getParameterNode())

    def generateDemoCohort(self, folder, patients: int = 200, seed: int = 0) -> Path:
        """Write (or reuse) the synthetic demo cohort in ``folder``; returns its manifest path."""
        from ALNMPredictorLib import synth

        if not folder or str(folder) in ("", "."):
            raise ValueError(_("Choose a folder for the demo cohort."))
        return Path(synth.write_cohort(Path(folder), n_patients=int(patients), seed=int(seed)))

    def validateManifest(self, manifestPath) -> list:
        """Check a cohort manifest and every file it names; returns the list of problems."""
        from ALNMPredictorLib.cohort import load_manifest

        if not manifestPath or not os.path.isfile(str(manifestPath)):
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
# ALNMPredictorTest
#


class ALNMPredictorTest(ScriptedLoadableModuleTest):
    """Runs the logic on a small synthetic cohort inside Slicer."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_DemoCohortValidates()

    def test_DemoCohortValidates(self):
        self.delayDisplay("Generating a small synthetic cohort")
        logic = ALNMPredictorLogic()
        folder = Path(slicer.app.temporaryPath) / "ALNMPredictorSelfTest"
        manifest = logic.generateDemoCohort(folder, patients=40, seed=1)
        self.assertTrue(manifest.is_file())
        problems = logic.validateManifest(manifest)
        self.assertEqual([p for p in problems if p.severity == "error"], [])
        with self.assertRaises(ValueError):
            logic.validateManifest(folder / "does-not-exist.csv")
        logging.info("ALNMPredictor self-test passed (%d warnings)", len(problems))
        self.delayDisplay("Test passed")

