"""Stand-in of PythonQt's ``qt`` module: the Qt classes a scripted module and Slicer's Python code use.

Each class mirrors the Qt 5 API as PythonQt exposes it (properties as attributes, signals with their
real signatures, ``setX`` setters); see :mod:`qtcore` for the rules. Behaviour is Qt's where a module
depends on it: setters emit their notify signals, a combo box emits ``currentIndexChanged`` when items
are cleared, radio buttons are auto-exclusive within their parent, a spin box clamps to its range.
``QUiLoader`` builds a widget tree from a ``.ui`` file with these classes (and the CTK/qMRML stand-ins),
refusing a class or property Qt Designer's loader would not know. Dialogs never block: message boxes
answer from :data:`dialog_answers` and are recorded in :data:`dialogs`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from qtcore import Prop, QObjectBase, Signal, normalise_signature, qt_log

# ----- namespace constants -------------------------------------------------------------------------


class Qt:
    """The ``Qt`` namespace (enum values as in qnamespace.h)."""

    AlignLeft, AlignRight, AlignHCenter, AlignJustify = 0x1, 0x2, 0x4, 0x8
    AlignTop, AlignBottom, AlignVCenter = 0x20, 0x40, 0x80
    AlignCenter = AlignHCenter | AlignVCenter
    Horizontal, Vertical = 0x1, 0x2
    ArrowCursor, WaitCursor, BusyCursor = 0, 3, 16
    FastTransformation, SmoothTransformation = 0, 1
    KeepAspectRatio, IgnoreAspectRatio = 1, 0
    NoModifier, ShiftModifier, ControlModifier = 0, 0x02000000, 0x04000000
    Checked, Unchecked, PartiallyChecked = 2, 0, 1
    ScrollBarAlwaysOff, ScrollBarAsNeeded = 1, 0
    RichText, PlainText, AutoText = 1, 0, 2
    TextSelectableByMouse = 1


#: message boxes and dialogs shown (class, text, window title), in order
dialogs: list[dict[str, Any]] = []
#: scripted answers of the next message boxes (QMessageBox.Ok, .Cancel, ...); Ok when empty
dialog_answers: list[int] = []
#: URLs handed to QDesktopServices.openUrl
opened_urls: list[str] = []


class _Cursor:
    depth = 0


def _as_list(value: Any) -> list:
    return list(value) if value is not None else []


# ----- non-widget classes ------------------------------------------------------------------------------


class QObject(QObjectBase):
    """QObject."""


class QSize:
    def __init__(self, width: int = -1, height: int = -1) -> None:
        self._w, self._h = int(width), int(height)

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h


class QRect:
    def __init__(self, x: int = 0, y: int = 0, width: int = 0, height: int = 0) -> None:
        self._r = (int(x), int(y), int(width), int(height))

    def width(self) -> int:
        return self._r[2]

    def height(self) -> int:
        return self._r[3]


class QColor:
    def __init__(self, *args: Any) -> None:
        self.args = args


class QIcon:
    def __init__(self, path: str = "") -> None:
        self.path = str(path)

    def isNull(self) -> bool:
        return not self.path or not Path(self.path).is_file()


class QPixmap:
    """A pixmap; ``QPixmap(path)`` reads the image's size (null when the file cannot be read)."""

    def __init__(self, path: Any = None) -> None:
        self._size = (0, 0)
        self.path = None
        if isinstance(path, str | Path) and str(path):
            try:
                from PIL import Image

                with Image.open(str(path)) as img:
                    self._size = img.size
                self.path = str(path)
            except OSError:
                self._size = (0, 0)

    def isNull(self) -> bool:
        return self._size == (0, 0)

    def width(self) -> int:
        return self._size[0]

    def height(self) -> int:
        return self._size[1]

    def scaledToWidth(self, width: int, mode: int = Qt.FastTransformation) -> QPixmap:
        out = QPixmap()
        out.path = self.path
        if not self.isNull():
            w = int(width)
            out._size = (w, max(1, round(self._size[1] * w / self._size[0])))
        return out


class QUrl:
    TolerantMode, StrictMode = 0, 1

    def __init__(self, url: str = "", mode: int = 0) -> None:
        self._url = str(url)

    @staticmethod
    def fromLocalFile(path: str) -> QUrl:
        return QUrl(Path(path).resolve().as_uri())

    def toString(self) -> str:
        return self._url

    def toLocalFile(self) -> str:
        return self._url.removeprefix("file://")


class QDesktopServices:
    @staticmethod
    def openUrl(url: QUrl) -> bool:
        opened_urls.append(url.toString())
        return True


class QSettings:
    """In-memory application settings (one store per process, as QSettings' file would be)."""

    _store: dict[str, Any] = {}
    IniFormat, NativeFormat = 1, 0

    def __init__(self, *args: Any) -> None:
        pass

    def value(self, key: str, default: Any = None) -> Any:
        return self._store.get(key, default)

    def setValue(self, key: str, value: Any) -> None:
        self._store[key] = value

    def contains(self, key: str) -> bool:
        return key in self._store

    def remove(self, key: str) -> None:
        self._store.pop(key, None)


class QFile:
    ReadOnly, WriteOnly, Text = 0x1, 0x2, 0x10

    def __init__(self, path: str) -> None:
        self._path = str(path)
        self._open = False

    def exists(self) -> bool:
        return Path(self._path).is_file()

    def open(self, mode: int) -> bool:
        self._open = self.exists()
        return self._open

    def fileName(self) -> str:
        return self._path

    def close(self) -> None:
        self._open = False


class QFileInfo:
    def __init__(self, *args: Any) -> None:
        self._path = Path(*[str(a) for a in args])

    def absoluteFilePath(self) -> str:
        return str(self._path.resolve())


class QTimer(QObject):
    """A timer that fires only when the harness processes events (:meth:`fire_active_timers`)."""

    timeout = Signal("timeout()")
    interval = Prop(0, convert=int)
    singleShot_ = Prop(False)
    active_timers: list[QTimer] = []
    _single_shots: list[Any] = []

    def start(self, msec: int | None = None) -> None:
        if msec is not None:
            self.interval = msec
        if self not in QTimer.active_timers:
            QTimer.active_timers.append(self)

    def stop(self) -> None:
        if self in QTimer.active_timers:
            QTimer.active_timers.remove(self)

    def isActive(self) -> bool:
        return self in QTimer.active_timers

    def _get_active(self) -> bool:
        return self.isActive()

    @staticmethod
    def singleShot(msec: int, callback: Any) -> None:
        QTimer._single_shots.append(callback)

    @staticmethod
    def fire_active_timers() -> int:
        """Emit ``timeout`` of every running timer and run pending single shots (harness helper)."""
        shots, QTimer._single_shots = QTimer._single_shots, []
        for shot in shots:
            shot()
        fired = 0
        for timer in list(QTimer.active_timers):
            if timer.isActive():
                timer.timeout.emit()
                fired += 1
        return fired


class QThread(QObject):
    _main = None

    @staticmethod
    def currentThread() -> Any:
        if QThread._main is None:
            QThread._main = QThread()
        return QThread._main


class QApplication(QObject):
    @staticmethod
    def setOverrideCursor(cursor: int) -> None:
        _Cursor.depth += 1

    @staticmethod
    def restoreOverrideCursor() -> None:
        if _Cursor.depth == 0:
            qt_log.append("qWarning: restoreOverrideCursor without setOverrideCursor")
        _Cursor.depth = max(0, _Cursor.depth - 1)

    @staticmethod
    def overrideCursorDepth() -> int:  # harness helper
        return _Cursor.depth

    @staticmethod
    def processEvents() -> None:
        pass


# ----- layouts ---------------------------------------------------------------------------------------


class QLayout(QObject):
    def __init__(self, parent: Any = None) -> None:
        super().__init__(None)
        self._items: list[Any] = []
        self._owner: QWidget | None = None
        if isinstance(parent, QWidget):
            parent.setLayout(self)

    def _adopt(self, item: Any) -> None:
        if isinstance(item, QWidget) and self._owner is not None:
            item.setParent(self._owner)
        elif isinstance(item, QLayout):
            item._owner = self._owner
            item.setParent(self)
            for sub in item._items:
                item._adopt(sub)

    def _set_owner(self, widget: QWidget) -> None:
        self._owner = widget
        for item in self._items:
            self._adopt(item)

    def addWidget(self, widget: QWidget, *args: Any) -> None:
        self._items.append(widget)
        self._adopt(widget)

    def addLayout(self, layout: QLayout, *args: Any) -> None:
        self._items.append(layout)
        self._adopt(layout)

    def addStretch(self, stretch: int = 0) -> None:
        self._items.append(None)

    def addItem(self, item: Any) -> None:
        self._items.append(item)

    def count(self) -> int:
        return len(self._items)

    def setContentsMargins(self, *args: int) -> None:
        pass

    def setSpacing(self, spacing: int) -> None:
        pass

    def _remove_widget(self, widget: Any) -> None:
        if isinstance(widget, QWidget):
            widget.deleteLater()
        elif isinstance(widget, QLayout):
            for item in widget._items:
                widget._remove_widget(item)


class QBoxLayout(QLayout):
    pass


class QVBoxLayout(QBoxLayout):
    pass


class QHBoxLayout(QBoxLayout):
    pass


class QGridLayout(QLayout):
    def addWidget(self, widget: QWidget, *args: Any) -> None:
        super().addWidget(widget)


class QFormLayout(QLayout):
    """Rows of (label, field); ``removeRow`` deletes the row's widgets (Qt >= 5.8)."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._rows: list[list[Any]] = []

    def addRow(self, *args: Any) -> None:
        if len(args) == 2:
            label, field = args
            if isinstance(label, str):
                label = QLabel(label)
            row = [label, field]
        else:
            row = [args[0]]
        self._rows.append(row)
        for item in row:
            self._items.append(item)
            self._adopt(item)

    def setWidget(self, row: int, role: int, widget: Any) -> None:
        while len(self._rows) <= row:
            self._rows.append([])
        self._rows[row].append(widget)
        self._items.append(widget)
        self._adopt(widget)

    def setLayout(self, row: int, role: int, layout: Any) -> None:
        self.setWidget(row, role, layout)

    def rowCount(self) -> int:
        return len(self._rows)

    def removeRow(self, row: int) -> None:
        if not 0 <= row < len(self._rows):
            qt_log.append(f"qWarning: QFormLayout::removeRow: Invalid row {row}")
            return
        for item in self._rows.pop(row):
            if item in self._items:
                self._items.remove(item)
            self._remove_widget(item)

    def itemAt(self, row: int, role: int) -> Any:
        return self._rows[row][min(role, len(self._rows[row]) - 1)] if row < len(self._rows) else None

    LabelRole, FieldRole, SpanningRole = 0, 1, 2


class QSpacerItem:
    def __init__(self, *args: Any) -> None:
        pass


class QSizePolicy:
    Preferred, Expanding, Fixed, Minimum, Maximum = 5, 7, 0, 1, 4

    def __init__(self, *args: Any) -> None:
        pass


# ----- widgets ---------------------------------------------------------------------------------------


class QWidget(QObject):
    """QWidget: enabled/visible/toolTip, layout, geometry properties (read-only width/height)."""

    customContextMenuRequested = Signal("customContextMenuRequested(QPoint)")
    windowTitleChanged = Signal("windowTitleChanged(QString)")

    enabled = Prop(True, convert=bool)
    visible = Prop(False, convert=bool)
    toolTip = Prop("", convert=str)
    statusTip = Prop("", convert=str)
    whatsThis = Prop("", convert=str)
    windowTitle = Prop("", "windowTitleChanged", convert=str)
    styleSheet = Prop("", convert=str)
    geometry = Prop(None)
    minimumSize = Prop(None)
    maximumSize = Prop(None)
    sizePolicy = Prop(None)
    minimumWidth = Prop(0, convert=int)
    minimumHeight = Prop(0, convert=int)
    maximumWidth = Prop(16777215, convert=int)
    maximumHeight = Prop(16777215, convert=int)
    width = Prop(400, readonly=True)
    height = Prop(30, readonly=True)
    font = Prop(None)
    focusPolicy = Prop(None)
    contextMenuPolicy = Prop(None)
    accessibleName = Prop("", convert=str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._layout: QLayout | None = None
        self._props["visible"] = False
        self._hidden_explicitly = False

    def isWidgetType(self) -> bool:
        return True

    def layout(self) -> QLayout | None:
        return self._layout

    def setLayout(self, layout: QLayout) -> None:
        if self._layout is not None:
            qt_log.append(f"qWarning: QWidget::setLayout: {self} already has a layout")
            return
        self._layout = layout
        layout.setParent(self)
        layout._set_owner(self)

    def show(self) -> None:
        self._hidden_explicitly = False
        self._props["visible"] = True

    def hide(self) -> None:
        self._hidden_explicitly = True
        self._props["visible"] = False

    def setVisible(self, visible: bool) -> None:
        self.show() if visible else self.hide()

    def isVisible(self) -> bool:
        return bool(self._props.get("visible"))

    def isEnabled(self) -> bool:
        return bool(self.enabled)

    def setFixedWidth(self, width: int) -> None:
        self.minimumWidth = self.maximumWidth = width

    def setFixedHeight(self, height: int) -> None:
        self.minimumHeight = self.maximumHeight = height

    def setMinimumWidth(self, width: int) -> None:
        self.minimumWidth = width

    def setFocus(self) -> None:
        pass

    def update(self) -> None:
        pass

    def repaint(self) -> None:
        pass

    def adjustSize(self) -> None:
        pass

    def resize(self, *args: Any) -> None:
        pass

    def window(self) -> Any:
        top = self
        while top.parent() is not None:
            top = top.parent()
        return top


class QFrame(QWidget):
    frameShape = Prop(0)
    frameShadow = Prop(0)
    lineWidth = Prop(1)
    midLineWidth = Prop(0)
    NoFrame, Box, Panel, StyledPanel, HLine, VLine = 0, 1, 2, 6, 4, 5
    Plain, Raised, Sunken = 0x10, 0x20, 0x30


class QLabel(QFrame):
    """QLabel: text, pixmap, wordWrap, alignment (no signals a module would connect besides links)."""

    linkActivated = Signal("linkActivated(QString)")
    linkHovered = Signal("linkHovered(QString)")
    text = Prop("", convert=str)
    wordWrap = Prop(False, convert=bool)
    alignment = Prop(Qt.AlignLeft | Qt.AlignVCenter)
    textFormat = Prop(Qt.AutoText)
    openExternalLinks = Prop(False, convert=bool)
    textInteractionFlags = Prop(0)
    scaledContents = Prop(False, convert=bool)
    margin = Prop(0)
    indent = Prop(-1)

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        if isinstance(text, QWidget) and parent is None:
            text, parent = "", text
        super().__init__(parent)
        self.text = text
        self._pixmap: QPixmap | None = None

    def setPixmap(self, pixmap: QPixmap) -> None:
        self._pixmap = pixmap
        self._props["text"] = ""

    def pixmap(self) -> QPixmap | None:
        return self._pixmap

    def clear(self) -> None:
        self._pixmap = None
        self._props["text"] = ""


class QAbstractButton(QWidget):
    """QAbstractButton: text, checkable, checked; ``click()`` as a user's click."""

    clicked = Signal("clicked()", "clicked(bool)")
    pressed = Signal("pressed()")
    released = Signal("released()")
    toggled = Signal("toggled(bool)")
    text = Prop("", convert=str)
    checkable = Prop(False, convert=bool)
    icon = Prop(None)
    iconSize = Prop(None)
    shortcut = Prop(None)
    autoExclusive = Prop(False, convert=bool)

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        if isinstance(text, QWidget) and parent is None:
            text, parent = "", text
        super().__init__(parent)
        self.text = text

    def _get_checked(self) -> bool:
        return bool(self._props.get("checked", False))

    def _set_checked(self, value: bool) -> None:
        value = bool(value)
        if value and not self.checkable:
            return  # Qt ignores setChecked(true) on a non-checkable button
        old = self._get_checked()
        if old == value:
            return
        if not value and self.autoExclusive and self._exclusive_siblings() and old:
            return  # an auto-exclusive button cannot be unchecked directly
        self._props["checked"] = value
        if value and self.autoExclusive:
            for sibling in self._exclusive_siblings():
                if sibling._get_checked():
                    sibling._props["checked"] = False
                    sibling._checked_changed(False)
        self._checked_changed(value)

    checked = Prop(False, convert=bool)

    def _checked_changed(self, value: bool) -> None:
        self.toggled.emit(value)

    def _exclusive_siblings(self) -> list[Any]:
        parent = self.parent()
        if parent is None:
            return []
        return [c for c in parent.children() if c is not self and type(c) is type(self) and c.autoExclusive]

    def isChecked(self) -> bool:
        return self._get_checked()

    def click(self) -> None:
        """A user's click: ignored when disabled; toggles a checkable button; emits ``clicked``."""
        if not self.enabled or not self._ancestors_enabled():
            return
        self.pressed.emit()
        self.released.emit()
        if self.checkable:
            if not (self.autoExclusive and self._get_checked()):
                self._set_checked(not self._get_checked())
        self.clicked.emit(self._get_checked())

    def _ancestors_enabled(self) -> bool:
        parent = self.parent()
        while parent is not None:
            if isinstance(parent, QWidget) and not parent.enabled:
                return False
            parent = parent.parent()
        return True

    def animateClick(self, msec: int = 100) -> None:
        self.click()


class QPushButton(QAbstractButton):
    default = Prop(False, convert=bool)
    autoDefault = Prop(False, convert=bool)
    flat = Prop(False, convert=bool)

    def setMenu(self, menu: Any) -> None:
        self._menu = menu


class QToolButton(QAbstractButton):
    def setMenu(self, menu: Any) -> None:
        self._menu = menu

    def setDefaultAction(self, action: Any) -> None:
        self._default_action = action


class QCheckBox(QAbstractButton):
    stateChanged = Signal("stateChanged(int)")
    tristate = Prop(False, convert=bool)

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self._props["checkable"] = True

    def _checked_changed(self, value: bool) -> None:
        self.stateChanged.emit(Qt.Checked if value else Qt.Unchecked)
        self.toggled.emit(value)

    def checkState(self) -> int:
        return Qt.Checked if self._get_checked() else Qt.Unchecked


class QRadioButton(QAbstractButton):
    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(text, parent)
        self._props["checkable"] = True
        self._props["autoExclusive"] = True


class QLineEdit(QWidget):
    """QLineEdit: ``text`` (textChanged also for programmatic changes, textEdited only for typing)."""

    textChanged = Signal("textChanged(QString)")
    textEdited = Signal("textEdited(QString)")
    editingFinished = Signal("editingFinished()")
    returnPressed = Signal("returnPressed()")
    text = Prop("", "textChanged", convert=str)
    placeholderText = Prop("", convert=str)
    readOnly = Prop(False, convert=bool)
    maxLength = Prop(32767, convert=int)
    echoMode = Prop(0)
    clearButtonEnabled = Prop(False, convert=bool)
    inputMask = Prop("", convert=str)

    def type_text(self, text: str) -> None:
        """A user typing ``text`` (harness helper): textEdited, textChanged, editingFinished."""
        self.text = text
        self.textEdited.emit(text)
        self.editingFinished.emit()

    def clear(self) -> None:
        self.text = ""


class QAbstractSpinBox(QWidget):
    editingFinished = Signal("editingFinished()")
    readOnly = Prop(False, convert=bool)
    specialValueText = Prop("", convert=str)
    wrapping = Prop(False, convert=bool)
    keyboardTracking = Prop(True, convert=bool)
    buttonSymbols = Prop(0)
    alignment = Prop(0)


class QSpinBox(QAbstractSpinBox):
    """QSpinBox: ``value`` clamped to [minimum, maximum]; valueChanged(int) and textChanged(QString)."""

    valueChanged = Signal("valueChanged(int)")
    textChanged = Signal("textChanged(QString)")
    prefix = Prop("", convert=str)
    suffix = Prop("", convert=str)
    singleStep = Prop(1, convert=int)
    displayIntegerBase = Prop(10, convert=int)

    def _get_minimum(self) -> int:
        return int(self._props.get("minimum", 0))

    def _set_minimum(self, value: int) -> None:
        self.setRange(int(value), max(int(value), self._get_maximum()))

    def _get_maximum(self) -> int:
        return int(self._props.get("maximum", 99))

    def _set_maximum(self, value: int) -> None:
        self.setRange(min(int(value), self._get_minimum()), int(value))

    minimum = Prop(0)
    maximum = Prop(99)

    def setRange(self, minimum: int, maximum: int) -> None:
        self._props["minimum"], self._props["maximum"] = int(minimum), int(maximum)
        self._set_value(self._get_value())

    def _get_value(self) -> int:
        return int(self._props.get("value", self._get_minimum()))

    def _set_value(self, value: Any) -> None:
        value = min(max(int(value), self._get_minimum()), self._get_maximum())
        old = int(self._props.get("value", self._get_minimum()))
        self._props["value"] = value
        if value != old:
            self.valueChanged.emit(value)
            self.textChanged.emit(f"{self.prefix}{value}{self.suffix}")

    value = Prop(0)


class QDoubleSpinBox(QAbstractSpinBox):
    valueChanged = Signal("valueChanged(double)")
    textChanged = Signal("textChanged(QString)")
    decimals = Prop(2, convert=int)
    singleStep = Prop(1.0, convert=float)
    prefix = Prop("", convert=str)
    suffix = Prop("", convert=str)
    minimum = Prop(0.0, convert=float)
    maximum = Prop(99.99, convert=float)

    def _get_value(self) -> float:
        return float(self._props.get("value", self.minimum))

    def _set_value(self, value: Any) -> None:
        value = min(max(round(float(value), self.decimals), self.minimum), self.maximum)
        old = self._get_value()
        self._props["value"] = value
        if value != old:
            self.valueChanged.emit(value)

    value = Prop(0.0)

    def setRange(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum
        self._set_value(self._get_value())


class QSlider(QWidget):
    valueChanged = Signal("valueChanged(int)")
    value = Prop(0, "valueChanged", convert=int)
    minimum = Prop(0, convert=int)
    maximum = Prop(99, convert=int)
    orientation = Prop(Qt.Horizontal)
    singleStep = Prop(1, convert=int)
    pageStep = Prop(10, convert=int)

    def setRange(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum


class QComboBox(QWidget):
    """QComboBox: items, ``currentIndex`` (-1 when empty), ``currentText``; clear() emits the index change."""

    currentIndexChanged = Signal("currentIndexChanged(int)", "currentIndexChanged(QString)")
    currentTextChanged = Signal("currentTextChanged(QString)")
    activated = Signal("activated(int)", "activated(QString)")
    editTextChanged = Signal("editTextChanged(QString)")
    editable = Prop(False, convert=bool)
    maxVisibleItems = Prop(10, convert=int)
    sizeAdjustPolicy = Prop(0)
    insertPolicy = Prop(0)
    placeholderText = Prop("", convert=str)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self._items: list[tuple[str, Any]] = []

    def _emit_index(self, old_index: int, old_text: str) -> None:
        index = self._get_currentIndex()
        if index != old_index:
            self.currentIndexChanged.emit(index)
        if self._get_currentText() != old_text:
            self.currentTextChanged.emit(self._get_currentText())

    def _get_currentIndex(self) -> int:
        return int(self._props.get("currentIndex", -1))

    def _set_currentIndex(self, index: int) -> None:
        index = int(index)
        if not -1 <= index < len(self._items):
            index = -1
        old_index, old_text = self._get_currentIndex(), self._get_currentText()
        self._props["currentIndex"] = index
        self._emit_index(old_index, old_text)

    currentIndex = Prop(-1)

    def _get_currentText(self) -> str:
        i = self._get_currentIndex()
        return self._items[i][0] if 0 <= i < len(self._items) else ""

    def _set_currentText(self, text: str) -> None:
        index = self.findText(str(text))
        if index >= 0:
            self._set_currentIndex(index)

    currentText = Prop("")

    def count(self) -> int:
        return len(self._items)

    def addItem(self, text: str, userData: Any = None) -> None:
        old_index, old_text = self._get_currentIndex(), self._get_currentText()
        self._items.append((str(text), userData))
        if old_index == -1:
            self._props["currentIndex"] = 0
            self._emit_index(old_index, old_text)

    def addItems(self, texts: Any) -> None:
        for text in texts:
            self.addItem(text)

    def insertItem(self, index: int, text: str, userData: Any = None) -> None:
        old_index, old_text = self._get_currentIndex(), self._get_currentText()
        self._items.insert(int(index), (str(text), userData))
        if old_index == -1:
            self._props["currentIndex"] = 0
        elif int(index) <= old_index:
            self._props["currentIndex"] = old_index + 1
        self._emit_index(old_index, old_text)

    def clear(self) -> None:
        old_index, old_text = self._get_currentIndex(), self._get_currentText()
        self._items.clear()
        self._props["currentIndex"] = -1
        self._emit_index(old_index, old_text)

    def itemText(self, index: int) -> str:
        return self._items[index][0] if 0 <= index < len(self._items) else ""

    def itemData(self, index: int) -> Any:
        return self._items[index][1] if 0 <= index < len(self._items) else None

    def currentData(self) -> Any:
        return self.itemData(self._get_currentIndex())

    def findText(self, text: str) -> int:
        for i, (item, _) in enumerate(self._items):
            if item == text:
                return i
        return -1

    def findData(self, data: Any) -> int:
        for i, (_, item) in enumerate(self._items):
            if item == data:
                return i
        return -1

    def choose(self, text: str) -> None:
        """A user picking ``text`` from the list (harness helper): currentIndex changes, ``activated``."""
        index = self.findText(text)
        if index < 0:
            raise ValueError(f"{self}: no item {text!r} among {[t for t, _ in self._items]}")
        self._set_currentIndex(index)
        self.activated.emit(index)


class QPlainTextEdit(QFrame):
    textChanged = Signal("textChanged()")
    readOnly = Prop(False, convert=bool)
    maximumBlockCount = Prop(0, convert=int)
    placeholderText = Prop("", convert=str)
    lineWrapMode = Prop(1)

    def _get_plainText(self) -> str:
        return str(self._props.get("plainText", ""))

    def _set_plainText(self, text: str) -> None:
        self._props["plainText"] = str(text)
        self._trim()
        self.textChanged.emit()

    plainText = Prop("")

    def _trim(self) -> None:
        limit = int(self._props.get("maximumBlockCount", 0))
        if limit > 0:
            lines = self._props["plainText"].split("\n")
            if len(lines) > limit:
                self._props["plainText"] = "\n".join(lines[-limit:])

    def toPlainText(self) -> str:
        return self._get_plainText()

    def appendPlainText(self, text: str) -> None:
        current = self._get_plainText()
        self._set_plainText(f"{current}\n{text}" if current else str(text))

    def clear(self) -> None:
        self._set_plainText("")


class QTextEdit(QPlainTextEdit):
    html = Prop("", convert=str)

    def setHtml(self, html: str) -> None:
        self.html = html


class QTextBrowser(QTextEdit):
    openExternalLinks = Prop(False, convert=bool)


class QProgressBar(QWidget):
    valueChanged = Signal("valueChanged(int)")
    minimum = Prop(0, convert=int)
    maximum = Prop(100, convert=int)
    textVisible = Prop(True, convert=bool)
    format = Prop("%p%", convert=str)

    def _get_value(self) -> int:
        return int(self._props.get("value", -1))

    def _set_value(self, value: int) -> None:
        value = int(value)
        if not self.minimum <= value <= self.maximum:
            return  # Qt ignores out-of-range values
        if value != self._get_value():
            self._props["value"] = value
            self.valueChanged.emit(value)

    value = Prop(0)

    def reset(self) -> None:
        self._props["value"] = self.minimum - 1

    def setRange(self, minimum: int, maximum: int) -> None:
        self.minimum, self.maximum = minimum, maximum


class QGroupBox(QWidget):
    toggled = Signal("toggled(bool)")
    clicked = Signal("clicked(bool)")
    title = Prop("", convert=str)
    checkable = Prop(False, convert=bool)
    checked = Prop(True, "toggled", convert=bool)
    flat = Prop(False, convert=bool)


class QSplitter(QFrame):
    pass


class QScrollArea(QFrame):
    widgetResizable = Prop(False, convert=bool)

    def setWidget(self, widget: QWidget) -> None:
        widget.setParent(self)


class QStackedWidget(QFrame):
    currentChanged = Signal("currentChanged(int)")
    currentIndex = Prop(-1, "currentChanged", convert=int)


class QTabWidget(QWidget):
    currentChanged = Signal("currentChanged(int)")
    currentIndex = Prop(-1, "currentChanged", convert=int)


class QMenu(QWidget):
    def addAction(self, action: Any) -> None:
        pass


class QAction(QObject):
    triggered = Signal("triggered()", "triggered(bool)")
    text = Prop("", convert=str)

    def __init__(self, text: Any = "", parent: Any = None) -> None:
        super().__init__(parent if isinstance(parent, QObjectBase) else None)
        self.text = text

    def setStatusTip(self, tip: str) -> None:
        pass

    def setObjectName(self, name: str) -> None:
        self.objectName = name


class QDialog(QWidget):
    accepted = Signal("accepted()")
    rejected = Signal("rejected()")
    finished = Signal("finished(int)")
    modal = Prop(False, convert=bool)
    Accepted, Rejected = 1, 0

    def exec_(self) -> int:
        dialogs.append({"class": type(self).__name__, "text": "", "windowTitle": self.windowTitle})
        return QDialog.Accepted

    exec = exec_

    def close(self) -> bool:
        return True

    def accept(self) -> None:
        self.accepted.emit()

    def reject(self) -> None:
        self.rejected.emit()


class QMessageBox(QDialog):
    """A message box: ``exec_`` records it and answers from :data:`dialog_answers` (Ok when none is queued)."""

    NoButton, Ok, Save, Open, Yes, No, Abort, Retry, Ignore, Close, Cancel = (
        0x0,
        0x400,
        0x800,
        0x2000,
        0x4000,
        0x10000,
        0x40000,
        0x80000,
        0x100000,
        0x200000,
        0x400000,
    )
    NoIcon, Information, Warning, Critical, Question = 0, 1, 2, 3, 4
    text = Prop("", convert=str)
    informativeText = Prop("", convert=str)
    detailedText = Prop("", convert=str)
    icon = Prop(0)
    standardButtons = Prop(0)
    textFormat = Prop(Qt.AutoText)

    def setText(self, text: str) -> None:
        self.text = text

    def setStandardButtons(self, buttons: int) -> None:
        self.standardButtons = buttons

    def exec_(self) -> int:
        answer = dialog_answers.pop(0) if dialog_answers else QMessageBox.Ok
        dialogs.append(
            {
                "class": type(self).__name__,
                "text": self.text,
                "windowTitle": self.windowTitle,
                "detailedText": self.detailedText,
                "answer": answer,
            }
        )
        return answer

    exec = exec_


class QProgressDialog(QDialog):
    canceled = Signal("canceled()")
    value = Prop(0, convert=int)
    maximum = Prop(100, convert=int)
    minimum = Prop(0, convert=int)
    labelText = Prop("", convert=str)
    minimumDuration = Prop(4000, convert=int)
    autoClose = Prop(True, convert=bool)
    wasCanceled = Prop(False, readonly=True)


# ----- .ui loading -------------------------------------------------------------------------------------

#: modules searched for a .ui class name (set by the environment: qt, ctk, slicer's qMRML stand-ins)
WIDGET_NAMESPACES: list[Any] = []


def _widget_class(name: str) -> type:
    import sys

    for namespace in [sys.modules[__name__], *WIDGET_NAMESPACES]:
        cls = getattr(namespace, name, None)
        if isinstance(cls, type) and issubclass(cls, QObjectBase):
            return cls
    raise RuntimeError(
        f"QUiLoader: class {name!r} is not available in Slicer's designer plugins (no stand-in)"
    )


def _enum_value(text: str, owner: type) -> int:
    """``Qt::AlignCenter`` / ``ctkPathLineEdit::Dirs`` -> its integer value."""
    scope, _, name = text.rpartition("::")
    import sys

    candidates = [owner, Qt]
    if scope:
        for namespace in [sys.modules[__name__], *WIDGET_NAMESPACES]:
            found = getattr(namespace, scope, None)
            if found is not None:
                candidates.insert(0, found)
    for candidate in candidates:
        if hasattr(candidate, name):
            return int(getattr(candidate, name))
    raise RuntimeError(f"QUiLoader: unknown enum value {text!r}")


def _property_value(node: ET.Element, owner: type) -> Any:
    child = next(iter(node))
    tag = child.tag
    if tag == "string":
        return child.text or ""
    if tag == "bool":
        return (child.text or "").strip() == "true"
    if tag == "number":
        return int(child.text or 0)
    if tag == "double":
        return float(child.text or 0)
    if tag == "stringlist":
        return [s.text or "" for s in child.findall("string")]
    if tag in ("set", "enum"):
        value = 0
        for part in (child.text or "").split("|"):
            value |= _enum_value(part.strip(), owner)
        return value
    if tag == "rect":
        return QRect(*(int(child.findtext(k) or 0) for k in ("x", "y", "width", "height")))
    if tag == "size":
        return QSize(int(child.findtext("width") or 0), int(child.findtext("height") or 0))
    if tag == "iconset":
        return QIcon("")
    raise RuntimeError(f"QUiLoader: property type <{tag}> not handled by the stand-in")


class QUiLoader(QObject):
    """Builds the widget tree of a ``.ui`` file from the stand-in classes (see the module docstring)."""

    def load(self, qfile: QFile, parent: Any = None) -> QWidget | None:
        if not qfile.exists():
            return None
        root = ET.parse(qfile.fileName()).getroot()
        top = root.find("widget")
        if top is None:
            return None
        self._named: dict[str, QObjectBase] = {}
        widget = self._widget(top, parent)
        for connection in root.iter("connection"):
            self._connect(connection)
        return widget

    def _widget(self, node: ET.Element, parent: Any) -> QWidget:
        cls = _widget_class(node.get("class", ""))
        widget = cls(parent) if parent is not None else cls()
        widget.objectName = node.get("name", "")
        self._named[widget.objectName] = widget
        self._properties(widget, node)
        for child in node:
            if child.tag == "layout":
                widget.setLayout(self._layout(child))
            elif child.tag == "widget":
                self._widget(child, widget)
        return widget

    def _properties(self, obj: QObjectBase, node: ET.Element) -> None:
        for prop in node.findall("property"):
            name = prop.get("name", "")
            value = _property_value(prop, type(obj))
            if prop.get("stdset") == "0":
                obj.setProperty(name, value)
                continue
            if name == "orientation" and isinstance(obj, QSpacerItem):
                continue
            if not obj.setProperty(name, value):
                raise RuntimeError(
                    f"QUiLoader: {type(obj).__name__} {obj.objectName!r} has no property {name!r} "
                    "(Qt would ignore it with a warning; fix the .ui)"
                )

    def _layout(self, node: ET.Element) -> QLayout:
        layout = _widget_class(node.get("class", ""))()
        layout.objectName = node.get("name", "")
        for item in node.findall("item"):
            child = next(iter(item))
            if child.tag == "widget":  # parented to the layout's widget when the layout is set on it
                self._add(layout, self._widget(child, None), item)
            elif child.tag == "layout":
                self._add(layout, self._layout(child), item)
            elif child.tag == "spacer":
                layout.addStretch()
        return layout

    @staticmethod
    def _add(layout: QLayout, obj: Any, item: ET.Element) -> None:
        if isinstance(layout, QFormLayout):
            row = int(item.get("row", layout.rowCount()))
            role = QFormLayout.SpanningRole if item.get("colspan") else int(item.get("column", 0))
            layout.setWidget(row, role, obj)
        elif isinstance(obj, QLayout):
            layout.addLayout(obj)
        else:
            layout.addWidget(obj)

    def _connect(self, node: ET.Element) -> None:
        sender = self._named.get(node.findtext("sender") or "")
        receiver = self._named.get(node.findtext("receiver") or "")
        signal, slot = node.findtext("signal") or "", normalise_signature(node.findtext("slot") or "")
        if sender is None or receiver is None:
            raise RuntimeError(
                f"QUiLoader: connection between unknown objects {node.findtext('sender')} -> "
                f"{node.findtext('receiver')}"
            )
        slots = {}
        for klass in type(receiver).__mro__:
            slots.update(getattr(klass, "SLOTS", {}))
        if slot not in slots.values():
            raise RuntimeError(f"QUiLoader: {type(receiver).__name__} has no slot {slot}")
        method = getattr(receiver, slot.split("(")[0])
        sender.connect(signal, method)


__all__ = [
    name
    for name in dir()
    if name.startswith("Q") or name in ("Qt", "dialogs", "dialog_answers", "opened_urls")
]
