"""Stand-in of PythonQt's ``ctk`` module: the CTK widget classes Slicer's Python code and the module use.

Mirrors CTK's API as PythonQt shows it (see :mod:`qtcore`). The classes Slicer's GUI connectors name
(``ctkCheckBox``, ``ctkSliderWidget``, ...) exist so that the connectors' type checks run as in Slicer;
the ones the module's ``.ui`` uses (``ctkCollapsibleButton``, ``ctkPathLineEdit``) carry their real
properties, signals and slots.
"""

from __future__ import annotations

import re
from typing import Any

from qt import QAbstractButton, QCheckBox, QComboBox, QMessageBox, QPushButton, QWidget
from qtcore import Prop, Signal, qt_log


class ctkCollapsibleButton(QAbstractButton):
    """ctkCollapsibleButton: ``collapsed`` hides the contents; ``contentsCollapsed(bool)``."""

    contentsCollapsed = Signal("contentsCollapsed(bool)")
    collapsedHeight = Prop(14)
    contentsFrameShape = Prop(0)
    contentsFrameShadow = Prop(0)
    contentsLineWidth = Prop(1)
    contentsMidLineWidth = Prop(0)
    buttonTextAlignment = Prop(0)
    indicatorAlignment = Prop(0)
    flat = Prop(False, convert=bool)

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self._props["checkable"] = True
        self._props["checked"] = True  # expanded

    def _get_collapsed(self) -> bool:
        return not self._get_checked()

    def _set_collapsed(self, collapsed: bool) -> None:
        if bool(collapsed) == self._get_collapsed():
            return
        self._props["checked"] = not bool(collapsed)
        self.toggled.emit(not bool(collapsed))
        self.contentsCollapsed.emit(bool(collapsed))

    collapsed = Prop(False, convert=bool)


_NAME_FILTER = re.compile(r"^(.*)\(([a-zA-Z0-9_.*? +;#\-\[\]@\{\}/!<>\$%&=^~:\|]*)\)$")
_WILDCARD = re.compile(r"^[\w\s\.\*\_\~\$\[\]]+$")
_EXTENSION = re.compile(r"\*\.(\w+)")


def name_filters_pattern(name_filters: list[str]) -> str:
    """``ctk::nameFiltersToRegularExpression``: only ``*.ext`` wildcards count; ``.+`` when there are none."""
    parts = []
    for name_filter in name_filters:
        match = _NAME_FILTER.match(name_filter)
        if match:
            extensions = match.group(2).split()
        else:
            extensions = [name_filter] if _WILDCARD.match(name_filter) else []
        for extension in extensions:
            found = _EXTENSION.search(extension)
            if found:
                parts.append(".*\\." + found.group(1) + "?$")
    return "(" + "|".join(parts) + ")" if parts else ".+"


class ctkPathLineEdit(QWidget):
    """ctkPathLineEdit: ``currentPath``, ``filters`` (QDir-like flags), ``nameFilters`` (see ctkPathLineEdit.cpp).

    The text is always stored, but ``currentPathChanged`` is emitted only when it is acceptable to the
    validator built from ``nameFilters`` (only ``*.ext`` wildcards count; any non-empty text when there
    are none): a path the filters do not accept never reaches a connected parameter. The browse button
    opens a file dialog when ``filters`` contains Files, else a directory dialog (one edit cannot
    browse for both); :meth:`browse_to` is a user picking a path in that dialog.
    """

    # ctkPathLineEdit::Filter (same values as QDir::Filter)
    Dirs, Files, Drives, NoSymLinks = 0x001, 0x002, 0x004, 0x008
    AllEntries = Dirs | Files | Drives
    Readable, Writable, Executable = 0x010, 0x020, 0x040
    Modified, Hidden, System = 0x080, 0x100, 0x200
    AllDirs, CaseSensitive, NoDotAndDotDot, NoDot, NoDotDot = 0x400, 0x800, 0x1000, 0x2000, 0x4000

    currentPathChanged = Signal("currentPathChanged(QString)")
    validInputChanged = Signal("validInputChanged(bool)")
    SLOTS = {"setCurrentPath": "setCurrentPath(QString)", "browse": "browse()"}
    label = Prop("", convert=str)
    nameFilters = Prop(list, convert=list)
    filters = Prop(AllEntries | NoDotAndDotDot | Readable | Executable)
    options = Prop(0)
    showBrowseButton = Prop(True, convert=bool)
    showHistoryButton = Prop(True, convert=bool)
    sizeAdjustPolicy = Prop(0)
    minimumContentsLength = Prop(0)
    settingKey = Prop("", convert=str)

    def _get_currentPath(self) -> str:
        return str(self._props.get("currentPath", ""))

    def _set_currentPath(self, path: str) -> None:
        path = str(path)
        if path == self._get_currentPath():
            return
        was_valid = self.hasValidInput()
        self._props["currentPath"] = path
        valid = self.hasValidInput()
        if valid:
            self.currentPathChanged.emit(path)
        if valid != was_valid:
            self.validInputChanged.emit(valid)

    currentPath = Prop("")

    def hasValidInput(self) -> bool:
        """Whether the text is acceptable to the name-filter validator (the whole text must match)."""
        text = self._get_currentPath()
        return bool(text) and re.fullmatch(name_filters_pattern(list(self.nameFilters)), text) is not None

    def setCurrentPath(self, path: str) -> None:
        self.currentPath = path

    def addCurrentPathToHistory(self) -> None:
        pass

    def retrieveHistory(self) -> None:
        pass

    def browse_to(self, path: str) -> None:
        """A user choosing ``path`` in the browse dialog (harness helper): refuses what that dialog can't pick."""
        from pathlib import Path

        target = Path(path)
        wants_files = bool(self.filters & ctkPathLineEdit.Files)
        if wants_files and target.is_dir():
            raise ValueError(f"{self.objectName}: its file dialog cannot pick the folder {path}")
        if not wants_files and not target.is_dir():
            raise ValueError(f"{self.objectName}: its directory dialog cannot pick the file {path}")
        self.currentPath = str(target)


class ctkDirectoryButton(QWidget):
    directoryChanged = Signal("directoryChanged(QString)")
    directorySelected = Signal("directorySelected(QString)")
    directory = Prop("", "directoryChanged", convert=str)
    caption = Prop("", convert=str)
    text = Prop("", convert=str)
    acceptMode = Prop(0)
    options = Prop(0)

    def choose(self, path: str) -> None:
        """A user picking a folder (harness helper)."""
        self.directory = path
        self.directorySelected.emit(str(path))


class ctkCheckBox(QCheckBox):
    pass


class ctkCheckablePushButton(QPushButton):
    checkBoxControlsButtonToggleState = Prop(False, convert=bool)


class ctkComboBox(QComboBox):
    defaultText = Prop("", convert=str)


class ctkSliderWidget(QWidget):
    valueChanged = Signal("valueChanged(double)")
    value = Prop(0.0, "valueChanged", convert=float)
    minimum = Prop(0.0, convert=float)
    maximum = Prop(99.0, convert=float)
    decimals = Prop(2, convert=int)
    singleStep = Prop(1.0, convert=float)


class ctkDoubleSpinBox(ctkSliderWidget):
    pass


class ctkDoubleSlider(ctkSliderWidget):
    pass


class ctkRangeWidget(QWidget):
    valuesChanged = Signal("valuesChanged(double,double)")
    minimumValue = Prop(0.0, convert=float)
    maximumValue = Prop(99.0, convert=float)


class ctkDoubleRangeSlider(ctkRangeWidget):
    pass


class ctkColorPickerButton(QPushButton):
    colorChanged = Signal("colorChanged(QColor)")
    color = Prop(None, "colorChanged")


class ctkMessageBox(QMessageBox):
    dontShowAgain = Prop(False, convert=bool)
    dontShowAgainVisible = Prop(False, convert=bool)
    dontShowAgainSettingsKey = Prop("", convert=str)


class ctkFittedTextBrowser(QWidget):
    collapsibleText = Prop("", convert=str)


__all__ = [name for name in dir() if name.startswith("ctk")] + ["qt_log"]
