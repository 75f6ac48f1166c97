"""A Slicer-like Python environment in this interpreter: Slicer's own ``slicer`` package, real MRML, Qt stand-ins.

:func:`install` makes ``import slicer`` load Slicer 5.12.3's pure-Python package from
``../shared/slicer/v5.12.3`` (``parameterNodeWrapper``, ``ScriptedLoadableModule``, ``util``,
``packaging``, ``i18n``), with the MRML classes of slicer-core loaded into its namespace the way
Slicer's ``__init__`` loads its "kits", ``qt``/``ctk`` stand-ins (:mod:`qt`, :mod:`ctk`) and the
qMRML widget stand-ins (:mod:`mrml_widgets`) where Slicer's PythonQt kits would put them; ``slicer.app``
and ``slicer.mrmlScene`` as in the application (:mod:`application`).

:class:`ModuleHarness` loads a scripted module file the way ``qSlicerScriptedLoadableModule`` does and
drives its lifecycle: ``setup`` (first show), ``enter``/``exit`` (module switches), scene close,
``cleanup`` (module unloaded), and Slicer's self-test runner.

``fresh_python_packages`` hides Python packages (imports and installed metadata) the way a fresh Slicer
lacks them; the stand-in for ``pip`` "installs" them by lifting the block. Used in a separate process
(tests start it with ``python -m slicer_harness.fresh``), since modules already imported cannot be unimported.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
#: Slicer's own Python code (read-only); override with $ALNM_SLICER_SOURCE
SLICER_SOURCE = Path(os.environ.get("ALNM_SLICER_SOURCE") or REPO.parent / "shared" / "slicer" / "v5.12.3")
SLICER_PACKAGE = SLICER_SOURCE / "Base" / "Python" / "slicer"
SEGMENT_EDITOR_MODULE = SLICER_SOURCE / "Modules" / "Scripted" / "SegmentEditor" / "SegmentEditor.py"


def available() -> str | None:
    """None when the environment can be built here, else why not."""
    if not (SLICER_PACKAGE / "__init__.py").is_file():
        return f"Slicer's Python source is not at {SLICER_SOURCE} (set ALNM_SLICER_SOURCE)"
    if importlib.util.find_spec("slicer_core") is None:
        return "slicer-core (the [test] extra) is not installed"
    return None


class Environment:
    """The installed environment: ``slicer`` (Slicer's package), ``qt``, ``ctk``, the app and scene."""

    def __init__(self, slicer: types.ModuleType, qt: types.ModuleType, ctk: types.ModuleType) -> None:
        self.slicer = slicer
        self.qt = qt
        self.ctk = ctk

    @property
    def app(self) -> Any:
        return self.slicer.app

    @property
    def scene(self) -> Any:
        return self.slicer.mrmlScene

    def reset(self, *, testing: bool = False, main_window: bool = True, root: Path | None = None) -> None:
        """A new application and scene (as a fresh Slicer start), empty dialog and log records."""
        import qt
        import qtcore
        from application import qSlicerApplication

        scene = self.slicer.vtkMRMLScene()
        self.slicer.mrmlScene = scene
        self.slicer.app = qSlicerApplication(scene, testing=testing, main_window=main_window, root=root)
        for name in list(vars(self.slicer.modules)):
            if not name.startswith("__"):
                delattr(self.slicer.modules, name)
        self.slicer.selfTests = {}
        qt.dialogs.clear()
        qt.dialog_answers.clear()
        qt.opened_urls.clear()
        qt.QTimer.active_timers.clear()
        qt.QSettings._store.clear()
        qtcore.qt_log.clear()

    def process_events(self, rounds: int = 1) -> int:
        """Fire running timers ``rounds`` times (what Qt's event loop would do); how many fired in total."""
        import qt

        return sum(qt.QTimer.fire_active_timers() for _ in range(rounds))


_ENV: Environment | None = None


def install() -> Environment:
    """Build the environment once per process (see the module docstring); the installed one after that."""
    global _ENV
    if _ENV is not None:
        return _ENV
    reason = available()
    if reason:
        raise RuntimeError(reason)
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import ctk
    import mrml_widgets
    import qt

    sys.modules["qt"], sys.modules["ctk"] = qt, ctk
    for name in [n for n in sys.modules if n == "slicer" or n.startswith("slicer.")]:
        del sys.modules[name]  # slicer-core's meta package, if anything imported it
    kits = types.ModuleType("slicer.kits")
    kits.available_kits = ["slicer_core"]  # Slicer's __init__ runs "from <kit> import *" for each
    sys.modules["slicer.kits"] = kits
    spec = importlib.util.spec_from_file_location(
        "slicer", SLICER_PACKAGE / "__init__.py", submodule_search_locations=[str(SLICER_PACKAGE)]
    )
    slicer = importlib.util.module_from_spec(spec)
    sys.modules["slicer"] = slicer
    spec.loader.exec_module(slicer)
    slicer.kits = kits
    # what the PythonQt kits (qMRMLWidgetsPythonQt, qSlicerSegmentationsModuleWidgetsPythonQt, ...) add
    for name in mrml_widgets.__all__:
        setattr(slicer, name, getattr(mrml_widgets, name))
    for name in ("qMRMLSliderWidget", "qMRMLSpinBox", "qMRMLRangeWidget"):
        setattr(slicer, name, type(name, (ctk.ctkSliderWidget,), {}))
    qt.WIDGET_NAMESPACES[:] = [ctk, mrml_widgets]
    import extensions

    sys.modules["SampleData"] = extensions.make_sample_data_module()  # a core module of every Slicer
    import slicer.packaging  # noqa: F401
    import slicer.parameterNodeWrapper  # noqa: F401
    import slicer.ScriptedLoadableModule  # noqa: F401
    import slicer.util  # noqa: F401  (Slicer's own util, parameterNodeWrapper, ScriptedLoadableModule)

    _ENV = Environment(slicer, qt, ctk)
    _ENV.reset()
    return _ENV


class ModuleHarness:
    """One scripted module loaded as Slicer loads it, with its panel's lifecycle (see the module docstring)."""

    def __init__(self, env: Environment, module_file: Path) -> None:
        from application import qSlicerScriptedLoadableModule

        self.env = env
        self.path = Path(module_file).resolve()
        self.name = self.path.stem
        # ctkFactoryScriptedItem::load appends the folder of a non-embedded module to sys.path, then
        # qSlicerScriptedLoadableModule::setPythonSource loads the file as a module named after it
        if str(self.path.parent) not in sys.path:
            sys.path.append(str(self.path.parent))
        spec = importlib.util.spec_from_file_location(self.name, self.path)
        self.module = importlib.util.module_from_spec(spec)
        sys.modules[self.name] = self.module
        spec.loader.exec_module(self.module)
        self.parent = qSlicerScriptedLoadableModule(str(self.path), self.name)
        self.instance = getattr(self.module, self.name)(self.parent)
        slicer = env.slicer
        setattr(slicer.modules, self.name.lower(), self.parent)
        setattr(slicer.modules, f"{self.name}Instance", self.instance)
        setattr(slicer.moduleNames, self.name, self.name)
        env.app.moduleManager()._modules[self.name] = self.parent
        self.panel = None
        self.widget = None

    @property
    def logic_class(self) -> type:
        return getattr(self.module, f"{self.name}Logic")

    def startup_completed(self) -> None:
        """Slicer emits startupCompleted() once every module is loaded."""
        self.env.app.startupCompleted.emit()

    def show(self) -> Any:
        """The first time the module is selected: the panel is created and ``setup()`` runs, then ``enter()``."""
        from application import qSlicerScriptedLoadableModuleWidget

        if self.widget is None:
            self.panel = qSlicerScriptedLoadableModuleWidget()
            self.widget = getattr(self.module, f"{self.name}Widget")(self.panel)
            self.widget.setup()
            setattr(self.env.slicer.modules, f"{self.name}Widget", self.widget)
        self.enter()
        return self.widget

    def enter(self) -> None:
        self.panel._props["isEntered"] = True
        self.panel.show()
        self.widget.enter()

    def exit(self) -> None:
        self.panel._props["isEntered"] = False  # C++ updates isEntered before calling the Python exit()
        self.widget.exit()
        self.panel.hide()

    def close_scene(self) -> None:
        """File / Close scene: StartCloseEvent, nodes removed, EndCloseEvent (real vtkMRMLScene::Clear)."""
        self.env.scene.Clear(0)  # singleton nodes (slice views, selection) stay, as in Slicer

    def unload(self) -> None:
        """The application closes: ``moduleAboutToBeUnloaded`` → the widget's ``cleanup()``."""
        self.env.app.moduleManager().moduleAboutToBeUnloaded.emit(self.name)

    def run_self_test(self, msec: int = 0) -> None:
        """Slicer's self-test runner: ``slicer.selfTests[name](msec=...)`` with testing enabled."""
        app = self.env.app
        was = app.testingEnabled()
        app.setTestingEnabled(True)
        try:
            self.env.slicer.selfTests[self.name](msec=msec)
        finally:
            app.setTestingEnabled(was)


# ----- a fresh Slicer's missing packages --------------------------------------------------------------


class _Hiding:
    """Wraps a meta-path finder so that hidden top-level packages are not found, exactly as when they are not
    installed: ``import x`` raises ModuleNotFoundError and ``importlib.util.find_spec("x")`` is None."""

    def __init__(self, inner: Any, names: set[str]) -> None:
        self.inner = inner
        self.names = names

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name.split(".")[0] in self.names:
            return None
        return self.inner.find_spec(name, path, target)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self.inner, attr)


class FreshPackages:
    """Hides packages by import name and distribution name until :meth:`install` lifts them."""

    def __init__(self, imports: Iterable[str], distributions: Iterable[str]) -> None:
        self.names = set(imports)
        self.hidden = {d.lower().replace("_", "-") for d in distributions}
        self.installed: list[str] = []
        self._version = importlib.metadata.version
        self._distribution = importlib.metadata.distribution
        self._requires = importlib.metadata.requires
        self._files = importlib.metadata.files
        for name in list(sys.modules):
            if name.split(".")[0] in self.names:
                del sys.modules[name]
        sys.meta_path[:] = [
            f
            if getattr(f, "__module__", "").startswith("_frozen_importlib")
            and f.__name__ in ("BuiltinImporter", "FrozenImporter")
            else _Hiding(f, self.names)
            for f in sys.meta_path
        ]
        importlib.metadata.version = self._wrap(self._version)
        importlib.metadata.distribution = self._wrap(self._distribution)
        importlib.metadata.requires = self._wrap(self._requires)
        importlib.metadata.files = self._wrap(self._files)

    def _wrap(self, func: Any) -> Any:
        def wrapped(name: str, *args: Any, **kwargs: Any) -> Any:
            if name.lower().replace("_", "-") in self.hidden:
                raise importlib.metadata.PackageNotFoundError(name)
            return func(name, *args, **kwargs)

        return wrapped

    def install(self, imports: Iterable[str], distributions: Iterable[str]) -> None:
        self.names -= set(imports)
        self.hidden -= {d.lower().replace("_", "-") for d in distributions}
        self.installed.extend(distributions)
