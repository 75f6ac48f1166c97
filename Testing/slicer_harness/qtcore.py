"""The object model shared by the Qt, CTK and qMRML stand-ins: signals, properties, parents, as PythonQt shows them.

A stand-in mirrors how a widget looks from Python inside Slicer (PythonQt), so that code which would fail
there fails here:

- a Qt property is a Python attribute (``widget.text``, ``widget.checked``); assigning it calls the
  setter, which emits the property's notify signal when the value changes, as Qt's setters do;
  ``setText(...)``-style setters exist for every writable property;
- a signal is an attribute with ``connect``/``disconnect``/``emit``; ``obj.connect("clicked(bool)", f)``
  needs a signature the class really declares (PythonQt prints a warning and connects nothing
  otherwise; here it raises), and a slot receives as many of the signal's arguments as it accepts;
- reading or setting an attribute the real class does not have raises ``AttributeError`` (PythonQt
  would silently keep a Python attribute that no widget ever reads);
- ``property(name)`` / ``setProperty(name, value)`` hold Qt dynamic properties (``SlicerParameterName``).

Nothing here decides what Slicer's own Python code decides: connectors, parameter nodes and the module
code run unchanged on top of these objects.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

__all__ = ["QObjectBase", "Prop", "Signal", "Slot", "normalise_signature", "qt_log"]

#: qWarning/qCritical lines the stand-ins emit (tests assert there are none)
qt_log: list[str] = []


def normalise_signature(signature: str) -> str:
    """``"clicked( bool )"`` -> ``"clicked(bool)"`` (Qt's normalised form, enough for the types used here)."""
    return re.sub(r"\s+", "", signature)


def _accepted_arguments(slot: Any, available: int) -> int:
    """How many signal arguments a Python callable takes (PythonQt passes at most that many)."""
    try:
        params = inspect.signature(slot).parameters.values()
    except (TypeError, ValueError):
        return available
    count = 0
    for p in params:
        if p.kind == p.VAR_POSITIONAL:
            return available
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            count += 1
    return min(count, available)


class Signal:
    """Class-level declaration of a signal with one or more overloads (``Signal("clicked()", "clicked(bool)")``)."""

    def __init__(self, *signatures: str) -> None:
        self.signatures = tuple(normalise_signature(s) for s in signatures)
        self.name = self.signatures[0].split("(")[0]

    def __set_name__(self, owner: type, name: str) -> None:
        if name != self.name:
            raise TypeError(f"signal {self.signatures[0]} declared as attribute {name}")

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj._bound_signal(self.name)

    @staticmethod
    def arity(signature: str) -> int:
        inner = signature[signature.index("(") + 1 : -1]
        return 0 if not inner else inner.count(",") + 1


class BoundSignal:
    """A signal of one object: ``connect``, ``disconnect``, ``emit`` (PythonQt's signal attribute)."""

    def __init__(self, owner: Any, name: str, arity: int) -> None:
        self.owner = owner
        self.name = name
        self.arity = arity
        self.connections: list[tuple[Any, int]] = []

    def connect(self, slot: Any, _arity: int | None = None) -> bool:
        arity = self.arity if _arity is None else _arity
        self.connections.append((slot, _accepted_arguments(slot, arity)))
        return True

    def disconnect(self, slot: Any = None) -> bool:
        if slot is None:
            self.connections.clear()
            return True
        for i, (connected, _) in enumerate(self.connections):
            if connected == slot:
                del self.connections[i]
                return True
        qt_log.append(f"qWarning: disconnect of a slot that is not connected to {self.name}")
        return False

    def emit(self, *args: Any) -> None:
        if self.owner._props.get("_signalsBlocked"):
            return
        for slot, count in list(self.connections):
            slot(*args[:count])


class Prop:
    """A Qt property: attribute access, ``setX`` setter, notify signal emitted when the value changes."""

    def __init__(
        self,
        default: Any = None,
        notify: str | None = None,
        *,
        readonly: bool = False,
        convert: Any = None,
        notify_value: Any = None,
    ) -> None:
        self.default = default
        self.notify = notify
        self.readonly = readonly
        self.convert = convert
        self.notify_value = notify_value  # value -> the notify signal's argument(s), default (value,)
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        getter = getattr(type(obj), f"_get_{self.name}", None)
        if getter is not None:
            return getter(obj)
        return obj._props.get(self.name, self.default() if callable(self.default) else self.default)

    def __set__(self, obj: Any, value: Any) -> None:
        if self.readonly:
            raise AttributeError(f"{type(obj).__name__}.{self.name} is a read-only property")
        self.assign(obj, value)

    def assign(self, obj: Any, value: Any) -> None:
        if self.convert is not None:
            value = self.convert(value)
        hook = getattr(type(obj), f"_set_{self.name}", None)
        if hook is not None:
            hook(obj, value)
            return
        old = self.__get__(obj)
        obj._props[self.name] = value
        if self.notify and old != value:
            args = self.notify_value(value) if self.notify_value else (value,)
            getattr(obj, self.notify).emit(*args)


class Slot:
    """Marks a method as a Qt slot (the .ui loader connects only to declared slots)."""

    def __init__(self, signature: str) -> None:
        self.signature = normalise_signature(signature)


def _signals_of(cls: type) -> dict[str, Signal]:
    out: dict[str, Signal] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Signal):
                out[value.name] = value
    return out


def _props_of(cls: type) -> dict[str, Prop]:
    out: dict[str, Prop] = {}
    for klass in reversed(cls.__mro__):
        for value in vars(klass).values():
            if isinstance(value, Prop):
                out[value.name] = value
    return out


class QObjectBase:
    """QObject as PythonQt shows it (see the module docstring)."""

    _STANDIN = True
    #: class-level: slots connectable from a .ui ``<connection>`` (name -> normalised signature)
    SLOTS: dict[str, str] = {}

    destroyed = Signal("destroyed()", "destroyed(QObject*)")
    objectNameChanged = Signal("objectNameChanged(QString)")
    objectName = Prop("", "objectNameChanged", convert=str)

    def __init__(self, parent: Any = None) -> None:
        object.__setattr__(self, "_props", {})
        object.__setattr__(self, "_dynamic", {})
        object.__setattr__(self, "_signals", {})
        object.__setattr__(self, "_children", [])
        object.__setattr__(self, "_parent", None)
        object.__setattr__(self, "_deleted", False)
        object.__setattr__(self, "_pyattrs", {})
        if parent is not None:
            self.setParent(parent)

    # ----- attributes: only what the real class has ----------------------------------------------

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        pyattrs = object.__getattribute__(self, "_pyattrs")
        if name in pyattrs:
            return pyattrs[name]
        props = _props_of(type(self))
        if name.startswith("set") and len(name) > 3:
            prop_name = name[3].lower() + name[4:]
            if prop_name in props and not props[prop_name].readonly:
                return lambda value: props[prop_name].assign(self, value)
        raise AttributeError(f"{type(self).__name__} (stand-in of the Qt class) has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        cls = type(self)
        for klass in cls.__mro__:
            if name in vars(klass):
                attr = vars(klass)[name]
                if isinstance(attr, Prop | property):
                    attr.__set__(self, value)
                    return
                break
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        raise AttributeError(
            f"{cls.__name__} has no property {name!r}: in Slicer, PythonQt would keep it as a plain Python "
            "attribute that no widget reads"
        )

    # ----- identity ---------------------------------------------------------------------------------

    @property
    def name(self) -> str:  # PythonQt exposes objectName as .name too
        return self.objectName

    @name.setter
    def name(self, value: str) -> None:
        self.objectName = value

    def className(self) -> str:
        return type(self).__name__

    def inherits(self, class_name: str) -> bool:
        return any(k.__name__ == class_name for k in type(self).__mro__)

    def isWidgetType(self) -> bool:
        return False

    # ----- dynamic properties ---------------------------------------------------------------------

    def property(self, name: str) -> Any:
        props = _props_of(type(self))
        if name in props:
            return getattr(self, name)
        return self._dynamic.get(name)

    def setProperty(self, name: str, value: Any) -> bool:
        props = _props_of(type(self))
        if name in props:
            setattr(self, name, value)
            return True
        self._dynamic[name] = value
        return False

    def dynamicPropertyNames(self) -> list[str]:
        return list(self._dynamic)

    # ----- signals ----------------------------------------------------------------------------------

    def _bound_signal(self, name: str) -> BoundSignal:
        signals = self._signals
        if name not in signals:
            declared = _signals_of(type(self))[name]
            signals[name] = BoundSignal(self, name, max(Signal.arity(s) for s in declared.signatures))
        return signals[name]

    def _find_signal(self, signature: str) -> tuple[BoundSignal, int]:
        signature = normalise_signature(signature)
        for sig in _signals_of(type(self)).values():
            if signature in sig.signatures:
                return self._bound_signal(sig.name), Signal.arity(signature)
        raise TypeError(
            f"{type(self).__name__} has no signal {signature} (PythonQt: 'signal not found', nothing connected); "
            f"its signals: {sorted(s for v in _signals_of(type(self)).values() for s in v.signatures)}"
        )

    def connect(self, signature: str, slot: Any) -> bool:
        """PythonQt's ``obj.connect("signal(args)", callable)``."""
        bound, arity = self._find_signal(signature)
        return bound.connect(slot, arity)

    def disconnect(self, signature: str, slot: Any = None) -> bool:
        bound, _ = self._find_signal(signature)
        return bound.disconnect(slot)

    def signal_connections(self, name: str) -> int:
        """How many slots are connected to a signal (harness helper, not Qt API)."""
        return len(self._bound_signal(name).connections)

    # ----- tree -----------------------------------------------------------------------------------

    def parent(self) -> Any:
        return self._parent

    def setParent(self, parent: Any) -> None:
        if self._parent is parent:
            return
        if self._parent is not None and self in self._parent._children:
            self._parent._children.remove(self)
        object.__setattr__(self, "_parent", parent)
        if parent is not None:
            parent._children.append(self)

    def children(self) -> list[Any]:
        return list(self._children)

    def findChildren(self, cls: type | None = None, name: str | None = None) -> list[Any]:
        out = []
        stack = list(self._children)
        while stack:
            child = stack.pop(0)
            if (cls is None or isinstance(child, cls)) and (not name or child.objectName == name):
                out.append(child)
            stack[0:0] = child._children
        return out

    def findChild(self, cls: type | None = None, name: str = "") -> Any:
        found = self.findChildren(cls, name)
        return found[0] if found else None

    def deleteLater(self) -> None:
        object.__setattr__(self, "_deleted", True)
        if self._parent is not None:
            self.setParent(None)
        self.destroyed.emit()

    def blockSignals(self, block: bool) -> bool:
        previous = bool(self._props.get("_signalsBlocked"))
        self._props["_signalsBlocked"] = bool(block)
        return previous

    def signalsBlocked(self) -> bool:
        return bool(self._props.get("_signalsBlocked"))

    def __repr__(self) -> str:
        return f"{type(self).__name__} ({self.objectName or 'unnamed'})"
