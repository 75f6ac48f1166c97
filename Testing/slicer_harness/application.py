"""Stand-ins of Slicer's application objects: ``slicer.app`` (qSlicerApplication), its module manager,
the Python-side module object (``qSlicerScriptedLoadableModule``) and module panel widget
(``qSlicerScriptedLoadableModuleWidget``).

The scene, the application logic (selection and interaction nodes) and the slice composite nodes are
real MRML objects (slicer-core). ``--no-main-window`` runs have no main window and no layout manager;
a GUI run has a main window stand-in (dialogs get a parent) and the three slice views' nodes.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from qt import QApplication, QObject, QSettings, QVBoxLayout, QWidget
from qtcore import Prop, Signal


class qSlicerModuleManager(QObject):
    moduleAboutToBeUnloaded = Signal("moduleAboutToBeUnloaded(QString)")
    moduleLoaded = Signal("moduleLoaded(QString)")

    def __init__(self) -> None:
        super().__init__()
        self._modules: dict[str, Any] = {}

    def module(self, name: str) -> Any:
        return self._modules.get(name)


class _CommandOptions:
    def __init__(self) -> None:
        self.runPythonAndExit = False
        self.noMainWindow = False
        self.testingEnabled = False


class qSlicerMainWindow(QWidget):
    pass


class qSlicerLayoutManager(QObject):
    """The three slice views: a real vtkMRMLSliceLogic per view (its slice and composite nodes in the scene)."""

    def __init__(self, names: tuple[str, ...], app_logic: Any, scene: Any) -> None:
        super().__init__()
        import slicer
        import vtk

        self._names = names
        self._logics = vtk.vtkCollection()
        for name in names:
            logic = slicer.vtkMRMLSliceLogic()
            logic.SetMRMLApplicationLogic(app_logic)
            logic.SetMRMLScene(scene)
            logic.AddSliceNode(name)
            self._logics.AddItem(logic)
        app_logic.SetSliceLogics(self._logics)

    def sliceViewNames(self) -> list[str]:
        return list(self._names)

    def mrmlSliceLogics(self) -> Any:
        return self._logics

    def sliceWidget(self, name: str) -> Any:
        return None


class qSlicerApplication(QApplication):
    """``slicer.app``: paths, testing flag, cursors, the MRML scene and application logic, exit."""

    startupCompleted = Signal("startupCompleted()")
    lastWindowClosed = Signal("lastWindowClosed()")
    temporaryPath = Prop("", convert=str)
    defaultScenePath = Prop("", convert=str)
    applicationName = Prop("Slicer", readonly=True)
    applicationVersion = Prop("5.12.3", readonly=True)
    majorVersion = Prop(5, readonly=True)
    minorVersion = Prop(12, readonly=True)
    slicerHome = Prop("", readonly=True)
    documentationBaseUrl = Prop("https://slicer.readthedocs.io/en/5.12", readonly=True)

    def __init__(self, scene: Any, *, testing: bool, main_window: bool, root: Path | None = None) -> None:
        super().__init__()
        import slicer

        if root is None:  # a throwaway home, removed when the test process ends
            root = Path(tempfile.mkdtemp(prefix="slicer-harness-"))
            atexit.register(shutil.rmtree, root, ignore_errors=True)
        root = Path(root)
        (root / "Temp").mkdir(parents=True, exist_ok=True)
        (root / "Scenes").mkdir(parents=True, exist_ok=True)
        self._props["temporaryPath"] = str(root / "Temp")
        self._props["defaultScenePath"] = str(root / "Scenes")
        self._scene = scene
        self._testing = bool(testing)
        self._logic = slicer.vtkSlicerApplicationLogic()
        self._logic.SetMRMLScene(scene)
        # the loadable modules' logics register their node classes with the scene at startup
        self._module_logics = [
            slicer.vtkSlicerSegmentationsModuleLogic(),
            slicer.vtkSlicerTablesLogic(),
            slicer.vtkSlicerVolumesLogic(),
        ]
        for logic in self._module_logics:
            logic.SetMRMLApplicationLogic(self._logic)
            logic.SetMRMLScene(scene)
        self._module_manager = qSlicerModuleManager()
        self._options = _CommandOptions()
        self._options.noMainWindow = not main_window
        self._options.testingEnabled = self._testing
        self._main_window = qSlicerMainWindow() if main_window else None
        if self._main_window is not None:
            self._main_window.objectName = "qSlicerMainWindow"
        self._layout_manager = (
            qSlicerLayoutManager(("Red", "Yellow", "Green"), self._logic, scene) if main_window else None
        )
        self._exit_status: int | None = None

    # ----- qSlicerApplication API ----------------------------------------------------------------

    def mrmlScene(self) -> Any:
        return self._scene

    def applicationLogic(self) -> Any:
        return self._logic

    def volumesLogic(self) -> Any:
        """The Volumes module's logic (``slicer.modules.volumes.logic()`` in Slicer)."""
        return self._module_logics[2]

    def layoutManager(self) -> Any:
        return self._layout_manager

    def moduleManager(self) -> qSlicerModuleManager:
        return self._module_manager

    def commandOptions(self) -> _CommandOptions:
        return self._options

    def testingEnabled(self) -> bool:
        return self._testing

    def setTestingEnabled(self, enabled: bool) -> None:
        self._testing = bool(enabled)

    def topLevelWidgets(self) -> list[Any]:
        return [self._main_window] if self._main_window is not None else []

    def mainWindow(self) -> Any:
        return self._main_window

    def settings(self) -> QSettings:
        return QSettings()

    def userSettings(self) -> QSettings:
        return QSettings()

    def translate(self, context: str, text: str) -> str:
        return text

    def exit(self, status: int = 0) -> None:
        self._exit_status = int(status)

    def quit(self) -> None:
        self._exit_status = 0

    def exit_status(self) -> int | None:
        """The status passed to ``exit`` (harness helper)."""
        return self._exit_status

    def restart(self) -> None:
        raise RuntimeError("the harness cannot restart Slicer")

    def moduleDocumentationUrl(self, name: str) -> str:
        return f"{self.documentationBaseUrl}/user_guide/modules/{name.lower()}.html"

    def thread(self) -> Any:
        from qt import QThread

        return QThread.currentThread()

    def pythonConsole(self) -> Any:
        return None


class qSlicerScriptedLoadableModule(QObject):
    """The ``parent`` a ScriptedLoadableModule receives: the module's metadata properties and its path."""

    title = Prop("", convert=str)
    categories = Prop(list, convert=list)
    contributors = Prop(list, convert=list)
    dependencies = Prop(list, convert=list)
    helpText = Prop("", convert=str)
    acknowledgementText = Prop("", convert=str)
    icon = Prop(None)
    hidden = Prop(False, convert=bool)
    index = Prop(-1, convert=int)
    associatedNodeTypes = Prop(list, convert=list)
    path = Prop("", readonly=True)
    name = Prop("", readonly=True)  # type: ignore[assignment]
    defaultDocumentationLink = Prop("", readonly=True)

    def __init__(self, path: str, name: str) -> None:
        super().__init__()
        self._props["path"] = str(path)
        self._props["name"] = name
        self._props["defaultDocumentationLink"] = (
            '<p>For more information see the <a href="https://slicer.readthedocs.io">online documentation</a>.</p>'
        )


class qSlicerScriptedLoadableModuleWidget(QWidget):
    """The module panel a ScriptedLoadableModuleWidget is given: a widget with a vertical layout."""

    isEntered = Prop(False, readonly=True)

    def __init__(self) -> None:
        super().__init__()
        self.setLayout(QVBoxLayout())
