"""The saved model ("bundle"): a folder (optionally zipped) of JSON, tensors and a checksum list.

Layout::

    MODEL_DIR/
      model.json          schema version, software versions, settings, scores, nomogram, cut-off, ...
      <name>.safetensors  tensors (deep-feature heads), with a JSON sidecar each
      checksums.sha256    "<sha256>  <file>" for every other file, verified on load

Nothing in a bundle is executable: JSON and safetensors only, so a model file from elsewhere cannot
run code. A bundle written by a newer schema is refused with a message saying which version is needed.

A bad bundle is refused with a :class:`BundleError` naming the file and what is wrong, never accepted
silently and never with a traceback:

* a zip is checked before anything is unpacked: plain file names only (no folders, absolute paths,
  ``..``, links), at most :data:`MAX_MEMBERS` members, each no larger than its kind allows
  (:data:`MAX_JSON_BYTES`, :data:`MAX_TENSOR_BYTES`) and all together at most :data:`MAX_TOTAL_BYTES`
  unpacked; while unpacking, a member that yields more bytes than its header declares stops the unpacking;
* every file must be a plain name inside the bundle and listed in ``checksums.sha256`` (a file the model
  refers to, such as a deep head, too: :meth:`Bundle.file`);
* ``schema_version`` must be an integer (the text ``"2"`` is refused as text, not as "newer");
* no number anywhere in ``model.json`` may be NaN or infinite (the writer never writes one: its JSON
  refuses them), reported with the JSON path of the value;
* the model itself (``ALNMModel.from_dict``) and the recorded settings are read strictly with the
  helpers below: a missing key names the key and where it was expected; a value of the wrong type is
  refused, never converted. In particular a setting recorded as ``normalize: "no"`` or a region score's
  ``clip: "no"`` is an error, not ``True`` (Python's truth value of a non-empty text): a model whose
  settings cannot be read exactly as they were written cannot be applied as it was trained.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ALNMPredictorLib.errors import BundleError
from ALNMPredictorLib.fileio import make_temp_dir, sha256_file, write_json, write_text

SCHEMA_NAME = "alnm-predictor-model"
#: 2: settings.normalize, region scores with training ranges, deep heads with an intensity mode
#: (older software would misread these, so it refuses them); version 1 bundles still load
SCHEMA_VERSION = 2
MODEL_FILE = "model.json"
CHECKSUM_FILE = "checksums.sha256"
ALLOWED_SUFFIXES = {".json", ".safetensors", ".csv", ".txt", ".md"}

# Limits on a zipped model, checked against the zip's own headers before anything is unpacked, and
# again while unpacking, so that a small crafted zip cannot fill the disk. Real sizes (deep.py): a
# frozen model with deep heads is < 1 MB (model.json about 0.25 MB, a head 0.26 MB at pool=1, 12.8 MB at
# the largest pool); a fine-tuned head also holds its VGG19 trunk, about 80 MB, one per region. The
# limits leave about 3x room above the largest real file and room for several fine-tuned regions.
#: most members a model zip may have (model.json, checksums, formulas.txt, two files per deep head)
MAX_MEMBERS = 64
#: largest unpacked JSON/text member (model.json of a real model: well under 1 MB)
MAX_JSON_BYTES = 64 * 2**20
#: largest unpacked .safetensors member (a fine-tuned trunk + head: about 80-93 MB)
MAX_TENSOR_BYTES = 256 * 2**20
#: largest unpacked model in all (two fine-tuned regions: about 190 MB)
MAX_TOTAL_BYTES = 1024 * 2**20
_CHUNK = 2**20
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Bundle:
    """A verified bundle: its folder, the parsed ``model.json`` and the files its checksums cover."""

    path: Path
    model: dict[str, Any]
    files: frozenset[str] = field(default_factory=frozenset)
    shown: Path | None = None  # the path the user gave (the zip, for a zipped model)

    def file(self, name: str) -> Path:
        """Path of a file inside the bundle; BundleError if it is not listed in the checksums."""
        where = self.shown or self.path
        if not is_plain_name(name) or name not in self.files:
            raise BundleError(f"{where}: the model has no file '{name}' (not listed in {CHECKSUM_FILE})")
        target = self.path / name
        if not target.is_file():
            raise BundleError(f"{where}: the model has no file '{name}'")
        return target


def is_plain_name(name: Any) -> bool:
    """True for a plain file name inside a bundle: no folder, drive, ``..``, leading dot or control character."""
    return (
        isinstance(name, str)
        and bool(name)
        and not name.startswith(".")
        and not any(c in name for c in "/\\:")
        and all(ord(c) >= 32 for c in name)
    )


# --------------------------------------------------------------------------------------------------
# Strict reading of model.json: helpers used by ALNMModel.from_dict, load_model and the deep heads


def json_path(parent: str, key: str | int) -> str:
    """``parent.key`` for a key that is a name, ``parent['odd key']`` otherwise, ``parent[3]`` for an index."""
    if isinstance(key, int):
        return f"{parent}[{key}]"
    if key.isidentifier() and parent:
        return f"{parent}.{key}"
    if key.isidentifier():
        return key
    return f"{parent}[{key!r}]"


def describe(value: Any) -> str:
    """A JSON value as a message names it: ``the text "2"``, ``null``, ``the number 3``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return f"the text {json.dumps(text)}"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """``value`` if it is a JSON object, else BundleError."""
    if not isinstance(value, Mapping):
        raise BundleError(_at(where, f"expected an object, found {describe(value)}"))
    return value


def required(obj: Any, key: str, where: str) -> Any:
    """``obj[key]``; BundleError naming the key and where it was expected when it is missing."""
    if not isinstance(obj, Mapping):
        raise BundleError(_at(where, f"expected an object with '{key}', found {describe(obj)}"))
    if key not in obj:
        raise BundleError(_at(where, f"required key '{key}' is missing"))
    return obj[key]


def _at(where: str, reason: str) -> str:
    return f"{where}: {reason}" if where else reason


def number(value: Any, where: str) -> float:
    """A finite JSON number as a float (not a bool, not a text); BundleError naming ``where`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BundleError(f"{where}: expected a number, found {describe(value)}")
    try:
        out = float(value)
    except OverflowError:
        out = math.inf
    if not math.isfinite(out):
        raise BundleError(f"{where}: not a finite number ({value})")
    return out


def integer(value: Any, where: str) -> int:
    """A JSON integer (not a bool, not 2.0, not "2")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise BundleError(f"{where}: expected an integer, found {describe(value)}")
    return value


def boolean(value: Any, where: str) -> bool:
    """A JSON ``true``/``false``: a text such as "no" is refused, never read as True."""
    if not isinstance(value, bool):
        raise BundleError(f"{where}: expected true or false, found {describe(value)}")
    return value


def text(value: Any, where: str) -> str:
    """A JSON string."""
    if not isinstance(value, str):
        raise BundleError(f"{where}: expected a text, found {describe(value)}")
    return value


def sequence(value: Any, where: str) -> list[Any]:
    """A JSON list."""
    if not isinstance(value, list):
        raise BundleError(f"{where}: expected a list, found {describe(value)}")
    return value


def numbers(value: Any, where: str) -> list[float]:
    """A list of finite numbers."""
    return [number(v, json_path(where, i)) for i, v in enumerate(sequence(value, where))]


def texts(value: Any, where: str) -> list[str]:
    """A list of strings."""
    return [text(v, json_path(where, i)) for i, v in enumerate(sequence(value, where))]


_KINDS: dict[str, Callable[[Any, str], Any]] = {"bool": boolean, "int": integer, "float": number, "str": text}


def check_types(
    values: Any, annotations: Mapping[str, Any], where: str, *, unknown: str = "refuse"
) -> dict[str, Any]:
    """Check recorded settings against the annotations of the function or dataclass that takes them.

    ``annotations`` maps a name to its annotation text (``"bool"``, ``"int | None"``, ...; modules use
    ``from __future__ import annotations``). ``bool``, ``int``, ``float`` and ``str`` are checked strictly
    (no conversion: ``"no"`` is not a bool, ``true`` is not an int, a float must be finite), ``None`` is
    accepted where the annotation allows it; other annotations are not checked here. Names not in
    ``annotations`` are refused (``unknown="refuse"``) or left alone (``"keep"``). Returns the values.
    """
    values = mapping(values, where)
    out = dict(values)
    extra = sorted(k for k in values if k not in annotations)
    if extra and unknown == "refuse":
        raise BundleError(
            f"{where}: unknown setting(s) {', '.join(map(str, extra))} "
            f"(known: {', '.join(sorted(annotations))})"
        )
    for key, value in values.items():
        if key not in annotations:
            continue
        spec = annotations[key]
        options = [part.strip() for part in str(getattr(spec, "__name__", spec)).split("|")]
        if any(part not in _KINDS and part != "None" for part in options):
            continue  # a type this check does not know (a path, a list, ...): left to the code that uses it
        if value is None and "None" in options:
            continue
        where_key = json_path(where, key)
        checks = [_KINDS[part] for part in options if part in _KINDS]
        errors = []
        for check in checks:
            try:
                check(value, where_key)
                break
            except BundleError as exc:
                errors.append(exc)
        else:
            if len(checks) == 1 and "None" not in options:
                raise errors[0]
            allowed = " or ".join(
                {
                    "bool": "true/false",
                    "int": "an integer",
                    "float": "a finite number",
                    "str": "a text",
                    "None": "null",
                }[p]
                for p in options
            )
            raise BundleError(f"{where_key}: expected {allowed}, found {describe(value)}")
    return out


def non_finite_paths(value: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """JSON path and value of every NaN or infinite number inside ``value`` (depth first)."""
    stack: list[tuple[str, Any]] = [(where, value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, float):
            if not math.isfinite(item):
                yield path, item
        elif isinstance(item, Mapping):
            stack.extend((json_path(path, str(k)), v) for k, v in reversed(list(item.items())))
        elif isinstance(item, list):
            stack.extend((json_path(path, i), v) for i, v in reversed(list(enumerate(item))))


# --------------------------------------------------------------------------------------------------
# Writing


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
    tmp = make_temp_dir(
        target.parent, prefix=f".{target.name}.", suffix=".tmp"
    )  # 0777 less the umask, as mkdir
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
                raise BundleError(
                    f"refusing to store '{path.name}' in a model: only JSON, CSV, text and safetensors"
                )
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


# --------------------------------------------------------------------------------------------------
# Reading


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


def _member_limit(name: str) -> int:
    return MAX_TENSOR_BYTES if name.lower().endswith(".safetensors") else MAX_JSON_BYTES


def _check_members(archive: Path, infos: Iterable[zipfile.ZipInfo]) -> None:
    """Refuse a model zip from its headers alone: names, kinds of entry, declared sizes."""
    infos = list(infos)
    if len(infos) > MAX_MEMBERS:
        raise BundleError(
            f"{archive}: the model zip has {len(infos)} entries; a model has at most {MAX_MEMBERS}"
        )
    seen: set[str] = set()
    total = 0
    for info in infos:
        name = info.filename
        mode = info.external_attr >> 16
        if info.is_dir() or not is_plain_name(name):
            raise BundleError(
                f"{archive}: unexpected entry '{name}' in the model zip "
                "(a model zip holds plain files only: no folders, absolute paths or '..')"
            )
        if stat.S_ISLNK(mode) or (stat.S_IFMT(mode) and not stat.S_ISREG(mode)):
            raise BundleError(
                f"{archive}: '{name}' in the model zip is a link or special file, not a plain file"
            )
        if info.flag_bits & 0x1:
            raise BundleError(f"{archive}: '{name}' in the model zip is encrypted")
        if name != CHECKSUM_FILE and Path(name).suffix.lower() not in ALLOWED_SUFFIXES:
            raise BundleError(
                f"{archive}: unexpected entry '{name}' in the model zip "
                "(only JSON, CSV, text and safetensors files)"
            )
        if name in seen:
            raise BundleError(f"{archive}: '{name}' occurs twice in the model zip")
        seen.add(name)
        limit = _member_limit(name)
        if info.file_size > limit:
            raise BundleError(
                f"{archive}: '{name}' would unpack to {info.file_size:,} bytes, more than the "
                f"{limit:,} a model file may have; refusing to unpack it"
            )
        total += info.file_size
    if total > MAX_TOTAL_BYTES:
        raise BundleError(
            f"{archive}: the model zip would unpack to {total:,} bytes, more than the "
            f"{MAX_TOTAL_BYTES:,} a model may have; refusing to unpack it"
        )


def _safe_unzip(archive: Path, dest: Path) -> None:
    """Unpack a model zip into ``dest`` after :func:`_check_members`, never writing more than declared."""
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BundleError(f"{archive}: not a readable zip ({exc})") from exc
    with zf:
        infos = zf.infolist()
        _check_members(archive, infos)
        for info in infos:
            _extract(zf, info, dest / info.filename, archive)


def _extract(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, archive: Path) -> None:
    """Copy one member in chunks, stopping as soon as it yields more than its declared size."""
    written = 0
    try:
        with zf.open(info) as src, open(target, "xb") as out:
            while True:
                chunk = src.read(_CHUNK)
                if not chunk:
                    break
                written += len(chunk)
                if written > info.file_size:
                    raise BundleError(
                        f"{archive}: '{info.filename}' unpacks to more than the {info.file_size:,} bytes its "
                        "header declares; the zip is damaged or crafted, refusing it"
                    )
                out.write(chunk)
    except BundleError:
        target.unlink(missing_ok=True)
        raise
    except (
        zipfile.BadZipFile,
        zlib.error,
        EOFError,
        OSError,
        NotImplementedError,
        RuntimeError,
        ValueError,
    ) as exc:
        target.unlink(missing_ok=True)
        raise BundleError(f"{archive}: cannot unpack '{info.filename}' ({exc})") from exc


def _read_checksums(folder: Path, shown: Path) -> dict[str, str]:
    try:
        lines = (folder / CHECKSUM_FILE).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BundleError(f"{shown}: {CHECKSUM_FILE} is unreadable ({exc})") from exc
    expected: dict[str, str] = {}
    for line in lines:
        digest, _, name = line.partition("  ")
        if not digest or not name:
            raise BundleError(f"{shown}: malformed line in {CHECKSUM_FILE}: {line!r}")
        if not _DIGEST.fullmatch(digest):
            raise BundleError(f"{shown}: {CHECKSUM_FILE}: {digest!r} is not a SHA-256 digest (line {line!r})")
        if not is_plain_name(name) or name == CHECKSUM_FILE:
            raise BundleError(
                f"{shown}: {CHECKSUM_FILE} lists '{name}', which is not a file inside the model"
            )
        if name in expected:
            raise BundleError(f"{shown}: {CHECKSUM_FILE} lists '{name}' twice")
        expected[name] = digest
    return expected


def _verify(folder: Path, shown: Path) -> Bundle:
    checksum_path = folder / CHECKSUM_FILE
    if not checksum_path.is_file():
        raise BundleError(f"{shown}: no {CHECKSUM_FILE}; not a model written by ALNM Predictor")
    expected = _read_checksums(folder, shown)
    links = sorted(p.name for p in folder.iterdir() if p.is_symlink())
    if links:
        raise BundleError(f"{shown}: {', '.join(links)}: a model's files must be plain files, not links")
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
        model = json.loads((folder / MODEL_FILE).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{shown}: {MODEL_FILE} is not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise BundleError(f"{shown}: {MODEL_FILE} is nested too deeply to be a model") from exc
    if not isinstance(model, dict) or model.get("schema") != SCHEMA_NAME:
        raise BundleError(f"{shown}: {MODEL_FILE} is not an ALNM Predictor model")
    _check_schema_version(
        model.get("schema_version", None), "schema_version" in model, f"{shown}: {MODEL_FILE}"
    )
    for path, value in non_finite_paths(model):
        raise BundleError(
            f"{shown}: {MODEL_FILE}: {path} is {value}, not a finite number; "
            "ALNM Predictor never writes one, so the model was edited or damaged"
        )
    return Bundle(path=folder, model=model, files=frozenset(expected), shown=shown)


def _check_schema_version(version: Any, present: bool, where: str) -> None:
    if not present:
        raise BundleError(f"{where}: no schema_version; not a model written by ALNM Predictor")
    if isinstance(version, str):
        raise BundleError(
            f"{where}: the schema version must be an integer, found the text {json.dumps(version)}"
        )
    if isinstance(version, bool) or not isinstance(version, int):
        raise BundleError(f"{where}: the schema version must be an integer, found {describe(version)}")
    if version < 1:
        raise BundleError(f"{where}: schema version {version} is not a version ALNM Predictor ever wrote")
    if version > SCHEMA_VERSION:
        raise BundleError(
            f"{where}: model schema version {version} is newer than this software reads "
            f"({SCHEMA_VERSION}); update ALNM Predictor to use it"
        )
