"""The saved model ("bundle"): a folder (optionally zipped) of JSON, tensors and a checksum list.

Layout::

    MODEL_DIR/
      model.json          schema version, software versions, settings, scores, nomogram, cut-off, ...
      <name>.safetensors  tensors (deep-feature heads), with a JSON sidecar each
      checksums.sha256    "<sha256>  <file>" for every other file, verified on load

Nothing in a bundle is executable: JSON and safetensors only, so a model file from elsewhere cannot
run code. A bundle written by a newer schema is refused with a message saying which version is needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ALNMPredictorLib.errors import BundleError
from ALNMPredictorLib.fileio import sha256_file, write_json, write_text

SCHEMA_NAME = "alnm-predictor-model"
#: 2: settings.normalize, region scores with training ranges, deep heads with an intensity mode
#: (older software would misread these, so it refuses them); version 1 bundles still load
SCHEMA_VERSION = 2
MODEL_FILE = "model.json"
CHECKSUM_FILE = "checksums.sha256"
ALLOWED_SUFFIXES = {".json", ".safetensors", ".csv", ".txt", ".md"}


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder and the parsed ``model.json``."""

    path: Path
    model: dict[str, Any]

    def file(self, name: str) -> Path:
        """Path of a file inside the bundle; BundleError if it is not listed in the checksums."""
        target = (self.path / name).resolve()
        if target.parent != self.path.resolve() or not target.is_file():
            raise BundleError(f"{self.path}: the model has no file '{name}'")
        return target



def write_bundle(
    directory: str | os.PathLike[str],
    model: dict[str, Any],
    write_files: Callable[[Path], None] | None = None,
    *,
    zip_output: bool = False,
) -> Path:
    """Write a bundle atomically; ``write_files(tmpdir)`` adds tensor files. Returns the bundle path.

    The new bundle replaces an existing one only once it is complete, so a crash leaves the old model.
    With ``zip_output`` (or a ``.zip`` target) the folder is stored as one zip file.
    """
    target = Path(directory)
    zip_output = zip_output or target.suffix.lower() == ".zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        if write_files is not None:
            write_files(tmp)
        body = dict(model)
        body["schema"] = SCHEMA_NAME
        body["schema_version"] = SCHEMA_VERSION
        write_json(tmp / MODEL_FILE, body)
        files = sorted(p for p in tmp.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
        for path in files:
            if path.suffix.lower() not in ALLOWED_SUFFIXES:
                raise BundleError(f"refusing to store '{path.name}' in a model: only JSON, CSV, text and safetensors")
        write_text(tmp / CHECKSUM_FILE, "".join(f"{sha256_file(p)}  {p.name}\n" for p in files))
        if zip_output:
            archive = tmp.with_suffix(".zip")
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for path in sorted(tmp.iterdir()):
                    zf.write(path, arcname=path.name)
            os.replace(archive, target)
            shutil.rmtree(tmp)
        else:
            _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_in(tmp: Path, target: Path) -> None:
    """Replace ``target`` (a folder or absent) by ``tmp`` with renames only."""
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target}: exists and is not a model folder")
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def open_bundle(path: str | os.PathLike[str]) -> Iterator[Bundle]:
    """Open and verify a bundle: its folder, the folder's ``model.json``, or a zip (unpacked while open)."""
    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: model not found")
    if path.is_file() and path.name == MODEL_FILE:
        path = path.parent
    if path.is_file():
        if not zipfile.is_zipfile(path):
            raise BundleError(f"{path}: not a model folder or zip")
        with tempfile.TemporaryDirectory(prefix="alnm-model-") as tmp:
            _safe_unzip(path, Path(tmp))
            yield _verify(Path(tmp), shown=path)
    else:
        yield _verify(path, shown=path)


def load_bundle(path: str | os.PathLike[str]) -> Bundle:
    """Verify a bundle folder and return it (for a zip, use :func:`open_bundle`)."""
    path = Path(path)
    if path.is_file():
        raise BundleError(f"{path}: a zipped model must be opened with open_bundle()")
    if not path.exists():
        raise BundleError(f"{path}: model not found")
    return _verify(path, shown=path)


def _safe_unzip(archive: Path, dest: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            name = info.filename
            if "/" in name or "\\" in name or name.startswith(".") or info.is_dir():
                raise BundleError(f"{archive}: unexpected entry '{name}' in the model zip")
            zf.extract(info, dest)


def _verify(folder: Path, shown: Path) -> Bundle:
    checksum_path = folder / CHECKSUM_FILE
    if not checksum_path.is_file():
        raise BundleError(f"{shown}: no {CHECKSUM_FILE}; not a model written by ALNM Predictor")
    expected: dict[str, str] = {}
    for line in checksum_path.read_text().splitlines():
        digest, _, name = line.partition("  ")
        if not digest or not name:
            raise BundleError(f"{shown}: malformed line in {CHECKSUM_FILE}: {line!r}")
        expected[name] = digest
    present = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUM_FILE}
    unlisted = sorted(present - set(expected))
    if unlisted:
        raise BundleError(f"{shown}: files not covered by the checksums (tampered?): {', '.join(unlisted)}")
    for name, digest in expected.items():
        file = folder / name
        if not file.is_file():
            raise BundleError(f"{shown}: '{name}' is missing")
        if sha256_file(file) != digest:
            raise BundleError(f"{shown}: '{name}' does not match its checksum; the model was modified")
    if MODEL_FILE not in expected:
        raise BundleError(f"{shown}: no {MODEL_FILE}")
    try:
        model = json.loads((folder / MODEL_FILE).read_text())
    except json.JSONDecodeError as exc:
        raise BundleError(f"{shown}: {MODEL_FILE} is not valid JSON ({exc})") from exc
    if model.get("schema") != SCHEMA_NAME:
        raise BundleError(f"{shown}: {MODEL_FILE} is not an ALNM Predictor model")
    version = model.get("schema_version")
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise BundleError(
            f"{shown}: model schema version {version} is newer than this software reads "
            f"({SCHEMA_VERSION}); update ALNM Predictor to use it"
        )
    return Bundle(path=folder, model=model)
