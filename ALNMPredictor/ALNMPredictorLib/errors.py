"""Exceptions whose messages name the case, column and file a user must fix."""

from __future__ import annotations

from os import PathLike


class ALNMError(ValueError):
    """Base class of every user-facing error of the library (a ValueError, as Slicer logic expects)."""


class InputError(ALNMError):
    """A bad input, located by case, column and/or file.

    The message reads e.g. ``case P0012, column tumor_mask (masks/P0012.png): mask is empty``.
    """

    def __init__(
        self,
        reason: str,
        *,
        case: str | None = None,
        column: str | None = None,
        path: str | PathLike[str] | None = None,
    ) -> None:
        self.reason = reason
        self.case = case
        self.column = column
        self.path = None if path is None else str(path)
        super().__init__(format_location(reason, case=case, column=column, path=self.path))


def format_location(
    reason: str, *, case: str | None = None, column: str | None = None, path: str | None = None
) -> str:
    """Prefix ``reason`` with where it happened: ``case X, column Y (path): reason``."""
    parts = []
    if case is not None:
        parts.append(f"case {case}")
    if column is not None:
        parts.append(f"column {column}")
    where = ", ".join(parts)
    if path is not None:
        where = f"{where} ({path})" if where else str(path)
    return f"{where}: {reason}" if where else reason


class StatsError(ALNMError):
    """Input a statistic cannot be computed on (one class only, NaN, constant scores, ...)."""


class SeparationError(StatsError):
    """A logistic model whose data are completely or quasi-completely separated.

    ``terms`` names the model terms along which the outcome is perfectly predicted.
    """

    def __init__(self, message: str, terms: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.terms = tuple(terms)


class BundleError(ALNMError):
    """A saved model that is missing, tampered with, or written by a newer schema."""
