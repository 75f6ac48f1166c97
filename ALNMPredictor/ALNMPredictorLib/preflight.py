"""Checks made before hours of work: the output locations can be written, a count option is a count.

A run that would fail at its end (a read-only folder, ``--out`` naming a file where a folder is needed)
fails at its start instead, with an :class:`~ALNMPredictorLib.errors.ALNMError` naming the path.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from pathlib import Path

from ALNMPredictorLib.errors import ALNMError

__all__ = ["output_file", "output_folder", "positive_int"]


def _probe(folder: Path, what: str) -> None:
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".alnm-write-test-")
    except OSError as exc:
        raise ALNMError(f"{what} {folder}: cannot write there ({exc.strerror or exc})") from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)


def output_folder(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create ``path`` (and its parents) if needed and check a file can be written in it; the folder."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise ALNMError(f"{what} {folder} is a file, not a folder: give a folder (it is created if needed)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ALNMError(f"{what} {folder}: cannot create it ({exc.strerror or exc})") from None
    _probe(folder, what)
    return folder


def output_file(path: str | os.PathLike[str], what: str = "output file") -> Path:
    """Check that the file ``path`` can be written (its folder is created if needed); the path."""
    target = Path(path)
    if target.is_dir():
        raise ALNMError(f"{what} {target} is a folder: give a file name such as {target / 'predictions.csv'}")
    output_folder(target.parent if str(target.parent) else Path("."), f"folder of the {what}")
    return target


def positive_int(text: str) -> int:
    """argparse type of a count (``--workers``): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1, got {value} (leave the option out for all cores)"
        )
    return value


def non_negative_int(text: str) -> int:
    """argparse type of a count that may be 0 (``--optimism-boot 0`` skips the step)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value
