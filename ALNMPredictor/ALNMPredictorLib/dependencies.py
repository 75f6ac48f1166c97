"""Which Python packages a task needs, and which of them are missing (standard library only).

Inside 3D Slicer the module checks this before it imports anything else from the library, so that a
fresh Slicer (no pandas, no PyRadiomics, no PyTorch) gets one question listing what to install instead
of a ``ModuleNotFoundError``. PyTorch is needed only for deep features: a model whose bundle has deep
heads, or a training run with ``--deep`` other than ``off``.

The requirements come from the module's ``Resources/requirements.txt`` (the list a Slicer user's
Python gets); ``pyproject.toml`` declares the same packages for ``pip install`` (a test keeps the two
equal). Nothing here imports a third-party package except ``packaging`` (bundled with Slicer), and
only to compare versions.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "PYTORCH",
    "REQUIREMENTS_FILE",
    "Requirement",
    "missing",
    "model_needs_imagenet_weights",
    "model_uses_deep_features",
    "read_requirements",
    "requirements_for",
]

REQUIREMENTS_FILE = Path(__file__).resolve().parent.parent / "Resources" / "requirements.txt"
#: PyTorch for deep features; inside Slicer it comes from the PyTorch extension (SlicerPyTorch)
PYTORCH = ("torch>=2.1", "torchvision>=0.16")
#: import name of a distribution, where it differs from the distribution's name
_IMPORT_NAMES = {
    "pillow": "PIL",
    "pyyaml": "yaml",
    "scikit-learn": "sklearn",
    "pyradiomics-bhklab": "radiomics",
    "pyradiomics": "radiomics",
    "simpleitk": "SimpleITK",
}
#: distributions that provide the same import (PyRadiomics from SlicerRadiomics or from PyPI)
_ALTERNATIVES = {"pyradiomics-bhklab": ("pyradiomics",)}


@dataclass(frozen=True)
class Requirement:
    """One requirement: the text given to pip (``pandas>=2.0``), its name and import name."""

    text: str
    name: str
    import_name: str

    @classmethod
    def parse(cls, text: str) -> Requirement:
        text = text.strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", text)
        if not match:
            raise ValueError(f"not a requirement: {text!r}")
        name = match.group(1)
        canonical = re.sub(r"[-_.]+", "-", name).lower()
        return cls(text, canonical, _IMPORT_NAMES.get(canonical, name.replace("-", "_")))


def read_requirements(path: str | os.PathLike[str] = REQUIREMENTS_FILE) -> list[Requirement]:
    """The requirements of a requirements.txt file (comments, blank lines and pip options skipped)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement.parse(line))
    return out


def model_uses_deep_features(model_path: str | os.PathLike[str] | None) -> bool:
    """Whether a saved model (folder, its ``model.json``, or a zip) applies deep-feature heads (needs PyTorch).

    Reads only ``model.json``; an unreadable model answers False (loading it later says what is wrong).
    """
    if not model_path or str(model_path) in ("", "."):
        return False
    path = Path(model_path)
    try:
        if path.is_dir():
            text = (path / "model.json").read_text(encoding="utf-8")
        elif path.suffix.lower() == ".zip":
            with zipfile.ZipFile(path) as archive:
                text = archive.read("model.json").decode("utf-8")
        else:
            text = path.read_text(encoding="utf-8")
        info = json.loads(text)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return False
    return bool(info.get("deep_heads")) or bool((info.get("extraction") or {}).get("deep"))


def _model_files(model_path: str | os.PathLike[str] | None) -> dict[str, dict] | None:
    """``model.json`` and each deep head's ``<name>.json`` of a saved model (folder, model.json, zip), parsed;
    None when the model cannot be read (loading it later says what is wrong)."""
    if not model_path or str(model_path) in ("", "."):
        return None
    path = Path(model_path)
    if path.name == "model.json":
        path = path.parent
    try:
        if path.suffix.lower() == ".zip" and path.is_file():
            with zipfile.ZipFile(path) as archive:

                def read(name: str) -> str:
                    return archive.read(name).decode("utf-8")

                info = json.loads(read("model.json"))
                heads = {
                    str(r): json.loads(read(f"{n}.json")) for r, n in (info.get("deep_heads") or {}).items()
                }
        else:
            info = json.loads((path / "model.json").read_text(encoding="utf-8"))
            heads = {
                str(r): json.loads((path / f"{n}.json").read_text(encoding="utf-8"))
                for r, n in (info.get("deep_heads") or {}).items()
            }
    except (OSError, KeyError, ValueError, TypeError, AttributeError, zipfile.BadZipFile):
        return None
    return {"model": info, **{f"deep:{r}": h for r, h in heads.items() if isinstance(h, dict)}}


def model_needs_imagenet_weights(model_path: str | os.PathLike[str] | None) -> bool:
    """Whether a saved model's deep heads run on torchvision's ImageNet VGG19 backbone, which is not inside the
    model (a fine-tuned trunk travels with the model and needs no backbone file)."""
    files = _model_files(model_path) or {}
    for key, head in files.items():
        if not key.startswith("deep:"):
            continue
        backbone = head.get("backbone") or {}
        settings = head.get("settings") or {}
        if backbone.get("weights") == "imagenet" and settings.get("finetune") != "full":
            return True
    return False


def requirements_for(*, deep: bool, path: str | os.PathLike[str] = REQUIREMENTS_FILE) -> list[Requirement]:
    """Everything a task needs: the library's requirements, plus PyTorch when ``deep``."""
    reqs = read_requirements(path)
    if deep:
        reqs += [Requirement.parse(text) for text in PYTORCH]
    return reqs


def _installed_version(req: Requirement) -> str | None:
    for name in (req.name, *_ALTERNATIVES.get(req.name, ())):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


def _satisfied(req: Requirement, version: str) -> bool:
    try:
        from packaging.requirements import Requirement as PipRequirement
    except ImportError:  # no packaging: presence is all that can be checked
        return True
    try:
        return PipRequirement(req.text).specifier.contains(version, prereleases=True)
    except Exception:  # an unparsable version string: do not block on it
        return True


def missing(requirements: list[Requirement]) -> list[Requirement]:
    """The requirements that are not installed, or installed at a version that does not satisfy them.

    A package counts as installed when its distribution (or an alternative, e.g. ``pyradiomics`` from the
    SlicerRadiomics extension for ``pyradiomics-bhklab``) is installed and its module can be found.
    """
    out = []
    for req in requirements:
        version = _installed_version(req)
        if (
            version is None
            or importlib.util.find_spec(req.import_name) is None
            or not _satisfied(req, version)
        ):
            out.append(req)
    return out
