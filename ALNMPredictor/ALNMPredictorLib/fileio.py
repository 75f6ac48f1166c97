"""Atomic file output: a reader never sees a half-written file, a crash leaves the old one intact."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pandas as pd

#: characters of the random part of temporary names (those of tempfile.mkstemp)
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def jsonable(obj: Any) -> Any:
    """``obj`` with numpy scalars as Python numbers, tuples as lists, keys as text, and NaN, inf, pd.NA
    and pd.NaT as None: what ``json.dumps`` writes as strict JSON."""
    import math
    from collections.abc import Mapping

    import numpy as np

    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is pd.NA or obj is pd.NaT:
        return None
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _temporary_name(folder: Path, prefix: str, suffix: str) -> Path:
    return folder / f"{prefix}{''.join(secrets.choice(_NAME_CHARS) for _ in range(8))}{suffix}"


def _new_file(folder: Path, prefix: str, suffix: str) -> Path:
    """Create an empty file with a new random name in ``folder``, with the permissions of a plain ``open()``.

    Unlike ``tempfile.mkstemp`` (always 0600), the file is created with mode 0666 and the kernel applies the
    process umask (and a folder's default ACL), so an output renamed from it is 0644 under umask 022 and
    0664 under 002: colleagues sharing a model or feature folder can read it.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    for _ in range(tempfile.TMP_MAX):
        name = _temporary_name(folder, prefix, suffix)
        try:
            fd = os.open(name, flags, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return name
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(folder))


def make_temp_dir(folder: str | os.PathLike[str], prefix: str, suffix: str = "") -> Path:
    """Create a new folder with a random name in ``folder``, with the permissions of a plain ``mkdir()``.

    ``tempfile.mkdtemp`` makes 0700 folders; this one is 0777 less the umask (0755 under umask 022), so a
    model folder written through it and renamed into place is readable by the team, like one made by hand.
    """
    folder = Path(folder)
    for _ in range(tempfile.TMP_MAX):
        name = _temporary_name(folder, prefix, suffix)
        try:
            name.mkdir(0o777)
        except FileExistsError:
            continue
        return name
    raise FileExistsError(errno.EEXIST, "no unused temporary folder name", str(folder))


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for a writer that wants a filename; renamed on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _new_file(path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


#: names of the temporary files atomic_open / atomic_path create (8 random characters of [a-z0-9_])
_TEMPORARY = re.compile(r"^\..+\.[a-z0-9_]{8}(\.tmp|\.[^.]+)$")


def remove_temporaries(folder: str | os.PathLike[str], since: float) -> list[Path]:
    """Delete the temporary files of atomic writers killed before their rename (under ``folder``, modified
    at or after ``since``, a time.time() value); returns what was removed. Finished outputs are never touched."""
    removed = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for path in root.rglob(".*"):
        try:
            if path.is_file() and _TEMPORARY.match(path.name) and path.stat().st_mtime >= since - 1:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            continue
    return removed


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def content_sha256(obj: Any) -> str:
    """SHA-256 of a JSON-able object's canonical JSON (sorted keys): a cache key of its content."""
    return hashlib.sha256(
        json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str).encode()
    ).hexdigest()


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write UTF-8 text atomically."""
    with atomic_open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write bytes atomically."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write JSON (sorted keys not imposed, NaN refused) atomically."""
    return write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def write_table(path: str | os.PathLike[str], table: pd.DataFrame, index: bool = False) -> Path:
    """Write a DataFrame atomically as CSV or Parquet, chosen by the file suffix."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".parquet":
            table.to_parquet(tmp, index=index)
        elif path.suffix.lower() in {".csv", ".txt"}:
            table.to_csv(tmp, index=index)
        else:
            raise ValueError(f"{path}: unknown table format (use .csv or .parquet)")
    return path


def _json_default(obj: Any) -> Any:
    """Make numpy scalars, arrays and paths JSON-serialisable."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
