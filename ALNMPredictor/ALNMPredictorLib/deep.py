"""VGG19 deep features: a frozen (or fine-tuned) VGG19 trunk and a 128-unit bottleneck head trained on ALNM.

Design (documented choices):

- **Input** (:func:`crop_roi`): the ROI's bounding box grown by ``margin`` × its height (rows) and
  × its width (columns) on each side, clipped at the image borders, stretched to ``size`` × ``size``
  (bilinear, antialiased; aspect ratio not kept), grey replicated to 3 channels, ImageNet-normalised.
  Intensities go to [0, 1] before normalisation: ``uint8`` images are divided by 255 (fixed scale), any
  other dtype (16-bit, float) by the min–max of the *whole image* (so the crop keeps its contrast to the
  rest of the image). ``intensity="minmax"`` forces whole-image min–max for ``uint8`` too.
  ``intensity="zscore"`` standardises the whole image first (grey = 127.5 + 32 × z, z = (x − mean) / SD
  of the whole image, clipped to 0–255, then / 255): a scanner's gain and dynamic range, which shift
  and scale the displayed grey levels, then no longer move the crop (32 ≈ the SD of a B-mode image in
  8-bit grey levels, so crops keep their usual contrast).
- **Trunk**: VGG19's 16 convolutional layers (``features``), then adaptive average pooling to
  ``pool`` × ``pool`` (default 1: a 512-d vector; 2 gives 2048-d). The 25088-d flattening of
  torchvision's classifier would make the first head layer 12.8 MB, so it is not used.
- **Head**: fixed standardisation (training-fold mean/SD of the trunk output) → Linear(D, 128) → ReLU
  → Dropout → Linear(128, 2). The 128 post-ReLU bottleneck activations are the deep features. With the
  default ``pool=1`` the head is about 0.26 MB.
- **Frozen training** (default): the trunk runs once per image on the un-augmented crop and once per
  augmented view (``n_views`` seeded views per *training-fold* image: horizontal flip, rotation up to
  ±10°, contrast ±10 %, brightness ±0.05); those outputs are cached and only the head is trained.
- **Full fine-tuning** (``finetune="full"``): trunk and head train together (trunk at ``finetune_lr``),
  with fresh seeded augmentation every batch; uses CUDA when available.
- Both: Adam with weight decay, class-weighted cross-entropy, early stopping on a seeded stratified
  validation fold of the training set (best epoch restored), everything seeded.
- **Network and weights from torchvision**: the trunk is ``torchvision.models.vgg19().features``
  (built on the meta device, so the 120 M-parameter classifier is never allocated), and everything about
  the ImageNet weights comes from ``VGG19_Weights.IMAGENET1K_V1``: the URL, the file name, the SHA-256
  prefix in that name (torch hub's ``check_hash`` convention), the normalisation mean/SD of its
  transforms and its metadata (file size).
- **Backbone weights**: ``"imagenet"`` is looked for in ``weights_path``, ``$ALNM_VGG19_WEIGHTS``, then
  torch hub's checkpoint cache (``torch.hub.get_dir()/checkpoints``, where torchvision keeps it); when
  absent it is downloaded there only with consent (``download=True``, or ``$ALNM_ALLOW_DOWNLOAD=1``; the
  CLI's ``--download``, Slicer's confirmation dialog): a progress bar, a temporary file in the cache
  folder, the SHA-256 prefix checked, then one rename, so an interrupted or corrupt download leaves
  nothing behind. Also a path to a state dict (``.pth``/``.pt`` loaded with ``weights_only=True``, or
  ``.safetensors``), or ``"none"`` (random He initialisation regenerated from the recorded seed; the
  checksum of the regenerated tensors is verified on load). A saved frozen model holds only the head and
  refers to the backbone by name and SHA-256; a saved fine-tuned model also holds the trunk (about 80 MB).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import inspect
import json
import logging
import math
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import VGG19_Weights, vgg19

from ALNMPredictorLib.bundle import check_types, integer, is_plain_name, mapping, required, text
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError
from ALNMPredictorLib.fileio import atomic_open, atomic_path, content_sha256, write_bytes, write_json
from ALNMPredictorLib.fileio import sha256_file as file_sha256
from ALNMPredictorLib.imaging import NORMALIZE_SCALE

logger = logging.getLogger(__name__)

#: torchvision's ImageNet VGG19 weights: every fact about the file below is read from this entry
IMAGENET_WEIGHTS = VGG19_Weights.IMAGENET1K_V1
#: its name as recorded in a saved model (``VGG19_Weights.IMAGENET1K_V1``)
IMAGENET_WEIGHTS_NAME = f"{type(IMAGENET_WEIGHTS).__name__}.{IMAGENET_WEIGHTS.name}"
_TRANSFORMS = IMAGENET_WEIGHTS.transforms()
#: the normalisation of the weights' transforms (crops are cut from the ROI here, not centre-cropped)
IMAGENET_MEAN = tuple(float(v) for v in _TRANSFORMS.mean)
IMAGENET_STD = tuple(float(v) for v in _TRANSFORMS.std)
VGG19_URL = IMAGENET_WEIGHTS.url
VGG19_FILENAME = VGG19_URL.rsplit("/", 1)[-1]
#: torch hub's check_hash convention: the SHA-256 of the file starts with the hex digits after the last "-"
IMAGENET_SHA256_PREFIX = torch.hub.HASH_REGEX.search(VGG19_FILENAME).group(1)  # type: ignore[union-attr]
#: the file's size in MB, from the weights' metadata (for messages)
VGG19_SIZE_MB = float(IMAGENET_WEIGHTS.meta.get("_file_size", 548.0))
#: environment variable naming a local copy of the ImageNet weights
WEIGHTS_ENV = "ALNM_VGG19_WEIGHTS"
#: environment variable that allows downloading the ImageNet weights (``1``/``yes``/``true``)
ALLOW_DOWNLOAD_ENV = "ALNM_ALLOW_DOWNLOAD"
N_FEATURES = 128
FORMAT = "alnm-deep-features"
FORMAT_VERSION = 2  # 2: settings.intensity (a version-1 file means "auto")
#: index of the last convolutional block's ReLU in ``vgg19().features`` (Grad-CAM's layer); 36 is the last max-pool
LAST_CONV_RELU = 35
_TRUNK_CHANNELS = 512


#: seeds whose random-backbone warning this process has logged (``None``: every seed, see
#: :func:`random_backbone_explained`)
_RANDOM_LOGGED: set[int | None] = set()


def random_backbone_explained() -> None:
    """Record that the run has already told the user, in its own words, that the backbone is random."""
    _RANDOM_LOGGED.add(None)


class RandomWeightsWarning(UserWarning):
    """The VGG19 backbone has random weights: deep features carry no ImageNet knowledge."""


# --------------------------------------------------------------------------------------------------
# Input crops
# --------------------------------------------------------------------------------------------------


def _squeeze_2d(array: np.ndarray) -> np.ndarray:
    """Drop singleton axes of a (1, H, W) or (H, W, 1) array; other shapes are returned as they are."""
    while array.ndim > 2 and 1 in array.shape:
        array = array.squeeze(axis=array.shape.index(1))
    return array


#: crop intensity modes of :func:`crop_roi`
INTENSITY_MODES = ("auto", "minmax", "zscore")


def standardise_grey(image: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` (pixels of ``image``) as 127.5 + 32 × z-score with the whole image's mean and SD.

    A flat image (SD 0) maps to mid-grey.
    """
    whole = np.asarray(image, dtype=np.float64)
    part = np.asarray(values, dtype=np.float64)
    sd = float(whole.std())
    if not sd > 0:
        return np.full(part.shape, 127.5)
    return 127.5 + NORMALIZE_SCALE * (part - float(whole.mean())) / sd


def _box(roi: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """The ROI's bounding box grown by ``margin`` and clipped at the borders: (row0, row1, col0, col1), ends exclusive."""
    rows = np.flatnonzero(roi.any(axis=1))
    cols = np.flatnonzero(roi.any(axis=0))
    r0, r1, c0, c1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    pad_r = int(round(margin * (r1 - r0)))
    pad_c = int(round(margin * (c1 - c0)))
    return (
        max(0, r0 - pad_r),
        min(roi.shape[0], r1 + pad_r),
        max(0, c0 - pad_c),
        min(roi.shape[1], c1 + pad_c),
    )


def crop_box(mask: np.ndarray, margin: float = 0.1, *, label: int | None = None) -> tuple[int, int, int, int]:
    """Where :func:`crop_roi` cuts its crop from the image: (row0, row1, col0, col1), ends exclusive."""
    msk = _squeeze_2d(np.asarray(mask))
    roi = msk != 0 if label is None else msk == label
    if not roi.any():
        raise InputError("mask is empty" if label is None else f"mask has no pixel with label {label}")
    return _box(roi, margin)


def crop_roi(
    image: np.ndarray,
    mask: np.ndarray,
    margin: float = 0.1,
    size: int = 224,
    *,
    label: int | None = None,
    intensity: str = "auto",
    case: str | None = None,
    column: str | None = None,
) -> np.ndarray:
    """Return the ROI's bounding box plus ``margin`` as a float32 (3, size, size) ImageNet-normalised crop.

    ``margin`` is a fraction of the box's height (added above and below) and width (left and right);
    the grown box is clipped at the image borders. ``label`` selects one mask value (default: any
    non-zero pixel). ``intensity``: ``"auto"`` (uint8 / 255, other dtypes whole-image min–max),
    ``"minmax"`` (whole-image min–max always) or ``"zscore"`` (whole-image standardisation, see the
    module docstring). ``case``/``column`` locate errors.
    """
    img = _squeeze_2d(np.asarray(image))
    msk = _squeeze_2d(np.asarray(mask))
    if img.ndim != 2:
        raise InputError(
            f"image must be 2D greyscale, got shape {tuple(np.shape(image))}", case=case, column=column
        )
    if msk.shape != img.shape:
        raise InputError(
            f"mask shape {tuple(np.shape(mask))} differs from image shape {tuple(np.shape(image))}",
            case=case,
            column=column,
        )
    if not (np.issubdtype(img.dtype, np.number) or img.dtype == bool):
        raise InputError(f"image has non-numeric type {img.dtype}", case=case, column=column)
    if not 0 <= margin < 10 or not math.isfinite(margin):
        raise ALNMError(f"margin must be a fraction in [0, 10), got {margin}")
    if size < 32:
        raise ALNMError(f"crop size must be at least 32 pixels for VGG19 (5 max-pools), got {size}")
    if intensity not in INTENSITY_MODES:
        raise ALNMError(f"intensity must be one of {', '.join(INTENSITY_MODES)}, got {intensity!r}")
    roi = msk != 0 if label is None else msk == label
    if not roi.any():
        what = "mask is empty" if label is None else f"mask has no pixel with label {label}"
        raise InputError(what, case=case, column=column)

    r0, r1, c0, c1 = _box(roi, margin)

    box = img[r0:r1, c0:c1].astype(np.float64)
    if np.issubdtype(img.dtype, np.inexact) and not np.isfinite(img).all():
        raise InputError("image contains NaN or infinite values", case=case, column=column)
    if intensity == "zscore":
        scaled = standardise_grey(img, box) / 255.0
    elif img.dtype == np.uint8 and intensity == "auto":
        scaled = box / 255.0
    else:
        lo, hi = float(img.min()), float(img.max())
        scaled = (box - lo) / (hi - lo) if hi > lo else np.zeros_like(box)
    crop = torch.from_numpy(np.ascontiguousarray(scaled, dtype=np.float32))[None, None]
    if crop.shape[-2:] != (size, size):
        crop = F.interpolate(crop, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    crop = crop.clamp_(0.0, 1.0)[0].expand(3, size, size)
    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(3, 1, 1)
    return ((crop - mean) / std).numpy().astype(np.float32, copy=False)


# --------------------------------------------------------------------------------------------------
# Backbone
# --------------------------------------------------------------------------------------------------


def _vgg19_trunk() -> nn.Sequential:
    """torchvision's VGG19 convolutional part, ``vgg19(weights=None).features``, on the meta device.

    Nothing is allocated or initialised (the classifier's 120 M parameters included); the layer indices
    are torchvision's, so a VGG19 state dict's ``features.N.*`` tensors load as they are.
    """
    with torch.device("meta"):
        return vgg19(weights=None).features


def _trunk_from_state(state: dict[str, torch.Tensor]) -> nn.Sequential:
    """A trunk whose parameters are ``state``'s tensors (shapes checked; no copy, no initialisation)."""
    trunk = _vgg19_trunk()
    trunk.load_state_dict(state, strict=True, assign=True)
    return trunk


def random_trunk(seed: int) -> nn.Sequential:
    """VGG19 trunk with torchvision's He initialisation drawn from a generator seeded with ``seed``."""
    trunk = _vgg19_trunk().to_empty(device="cpu")
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for module in trunk:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu", generator=gen)
                nn.init.zeros_(module.bias)
    return trunk


def tensor_sha256(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, dtypes, shapes and bytes of a state dict's tensors (sorted by name)."""
    digest = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu").contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def imagenet_cache_path() -> Path:
    """Where torchvision keeps (and this library looks for, and downloads to) the ImageNet VGG19 weights."""
    return Path(torch.hub.get_dir()) / "checkpoints" / VGG19_FILENAME


def download_allowed() -> bool:
    """Whether ``$ALNM_ALLOW_DOWNLOAD`` gives consent to download the ImageNet weights (``1``, ``yes``, ``true``)."""
    return os.environ.get(ALLOW_DOWNLOAD_ENV, "").strip().lower() in ("1", "yes", "true", "on")


def _offline_help(folder: Path) -> str:
    """What to do without a download: where the file goes, and the other ``--deep`` choices."""
    return (
        f"copy {VGG19_FILENAME} (from {VGG19_URL}) into {folder} (torch hub's cache; TORCH_HOME moves it), or set "
        f"{WEIGHTS_ENV}=/path/to/{VGG19_FILENAME}; to train on other weights give --deep /path/to/a/VGG19/state_dict; "
        "--deep none trains with a RANDOM backbone (tests only), --deep off leaves deep features out"
    )


def find_imagenet_weights(
    weights_path: str | os.PathLike[str] | None = None,
    *,
    download: bool | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Locate torchvision's ImageNet VGG19 file: ``weights_path``, ``$ALNM_VGG19_WEIGHTS``, torch hub's cache.

    When it is in none of them it is downloaded into the cache, but only with consent: ``download=True``,
    or ``download=None`` and ``$ALNM_ALLOW_DOWNLOAD=1``. ``progress(bytes_done, bytes_total)`` follows the
    download (default: a tqdm bar on stderr). Without consent: ALNMError saying where to put the file.
    """
    if weights_path is not None:
        path = Path(weights_path)
        if not path.is_file():
            raise InputError("ImageNet VGG19 weights file not found", path=path)
        return path
    env = os.environ.get(WEIGHTS_ENV)
    if env:
        path = Path(env)
        if not path.is_file():
            raise InputError(f"file named by ${WEIGHTS_ENV} not found", path=path)
        return path
    cached = imagenet_cache_path()
    if cached.is_file():
        return cached
    if download if download is not None else download_allowed():
        return download_weights(VGG19_URL, cached, IMAGENET_SHA256_PREFIX, progress=progress)
    raise ALNMError(
        f"ImageNet VGG19 weights not found: torchvision's {VGG19_FILENAME} ({VGG19_SIZE_MB:.0f} MB) is not at "
        f"{cached} and ${WEIGHTS_ENV} is not set. To download it once from {VGG19_URL}, add --download to "
        f"the alnm command or set {ALLOW_DOWNLOAD_ENV}=1 (in 3D Slicer, accept the download question). Offline: "
        + _offline_help(cached.parent)
    )


class _Interrupted(OSError):
    """The connection ended before the announced number of bytes arrived."""


def download_weights(
    url: str,
    destination: str | os.PathLike[str],
    sha256_prefix: str | None,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``destination`` and return it; a failed download leaves nothing behind.

    The bytes go to a temporary file in the destination's folder; the byte count must match the
    server's Content-Length and the SHA-256 must start with ``sha256_prefix``; only then is the file
    renamed into place (so a reader never sees a partial file). ``progress(done, total)`` is called after
    every chunk (``total`` None when the server gives no length); default: a tqdm bar on stderr.
    Any failure is an ALNMError naming the URL, the file and the folder to put it in by hand.
    """
    import urllib.error
    import urllib.request
    from http.client import HTTPException

    destination = Path(destination)
    folder = destination.parent
    close: Callable[[], None] | None = None
    if progress is None:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=None, unit="B", unit_scale=True, unit_divisor=1024, desc=destination.name, file=sys.stderr
        )

        def progress(done: int, total: int | None) -> None:
            if total is not None and bar.total != total:
                bar.total = total
            bar.update(done - bar.n)

        close = bar.close
    logger.info("downloading %s to %s", url, destination)
    done, total = 0, None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        request = urllib.request.Request(url, headers={"User-Agent": "alnm-predictor (torch.hub compatible)"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.strip().isdigit() else None
            digest = hashlib.sha256()
            with atomic_open(destination, "wb") as handle:
                progress(0, total)
                while True:
                    chunk = response.read(1 << 20)
                    if not chunk:
                        break
                    handle.write(chunk)
                    digest.update(chunk)
                    done += len(chunk)
                    progress(done, total)
                if total is not None and done != total:
                    raise _Interrupted(f"the connection closed after {done:,} of {total:,} bytes")
                sha = digest.hexdigest()
                if sha256_prefix and not sha.startswith(sha256_prefix):
                    raise ALNMError(
                        f"downloaded {url}, but its SHA-256 starts {sha[:8]}, not {sha256_prefix} as its name "
                        f"promises (a corrupted or substituted file): nothing was kept. Retry, or "
                        + _offline_help(folder)
                    )
    except ALNMError:
        raise
    except (urllib.error.URLError, HTTPException, OSError, ValueError) as exc:
        if isinstance(exc, urllib.error.HTTPError):
            reason = f"HTTP {exc.code} {exc.reason}"
        elif isinstance(exc, urllib.error.URLError):
            reason = f"no connection: {exc.reason}"
        else:
            reason = str(exc) or type(exc).__name__
        if isinstance(exc, _Interrupted | HTTPException | ConnectionError | TimeoutError):
            reason = f"interrupted: {reason}"
        raise ALNMError(
            f"could not download {url} to {destination} ({reason}); nothing was kept. Retry where the network "
            "allows it, or " + _offline_help(folder)
        ) from exc
    finally:
        if close is not None:
            close()
    logger.info("downloaded %s (%d bytes, SHA-256 %s...)", destination, done, sha[:16])
    return destination


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read tensors from a ``.safetensors`` file or a ``torch.save`` file (``weights_only=True``: tensors only, never code)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("VGG19 state dict file not found", path=path)
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path), device="cpu")
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError:  # legacy (non-zip) format cannot be memory-mapped
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file becomes one clear message
        raise InputError(f"cannot read VGG19 state dict ({type(exc).__name__}: {exc})", path=path) from exc
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError("not a state dict (a mapping of names to tensors)", path=path)
    return state


def _trunk_state(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """Pick the trunk's tensors out of a VGG19 state dict (keys ``features.N.*``, optionally prefixed)."""
    expected = set(_vgg19_trunk().state_dict())
    for prefix in ("features.", "module.features.", "model.features.", ""):
        picked = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if expected <= set(picked):
            return {k: picked[k] for k in sorted(expected)}
    sample = ", ".join(sorted(state)[:4]) or "none"
    raise InputError(
        f"not a VGG19 state dict: expected keys features.0.weight ... features.34.bias, found {sample}",
        path=path,
    )


# Backbone tensors already read or generated in this process (never modified: a fine-tuned trunk is a
# deep copy), so that several extractors share one 80 MB trunk and the 548 MB file is read once.
_CACHE: dict[tuple[Any, ...], tuple[dict[str, torch.Tensor], str, str]] = {}


def _remember(key: tuple[Any, ...], make: Callable[[], tuple[dict[str, torch.Tensor], str, str]]):
    if key not in _CACHE:
        value = make()
        while len(_CACHE) >= 2:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = value
    return _CACHE[key]


def _read_trunk_file(path: Path) -> tuple[dict[str, torch.Tensor], str, str]:
    """Trunk tensors, file SHA-256 and tensor checksum of a VGG19 state-dict file."""
    if not path.is_file():
        raise InputError("VGG19 weights file not found", path=path)

    def make() -> tuple[dict[str, torch.Tensor], str, str]:
        sha = file_sha256(path)
        state = {k: v.detach().clone().float() for k, v in _trunk_state(read_state_dict(path), path).items()}
        try:
            _trunk_from_state(state)
        except RuntimeError as exc:
            reason = str(exc).splitlines()[-1].strip()
            raise InputError(f"state dict does not fit VGG19: {reason}", path=path) from exc
        return state, sha, tensor_sha256(state)

    stat = path.stat()
    return _remember(("file", str(path.resolve()), stat.st_size, stat.st_mtime_ns), make)


def _random_state(seed: int) -> tuple[dict[str, torch.Tensor], str, str]:
    """Regenerated random trunk tensors and their checksum (twice, as file and tensor checksum)."""

    def make() -> tuple[dict[str, torch.Tensor], str, str]:
        state = random_trunk(seed).state_dict()
        sha = tensor_sha256(state)
        return state, sha, sha

    return _remember(("none", int(seed), torch.__version__), make)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        vision = version("torchvision")
    except PackageNotFoundError:
        vision = "not installed"
    return {"torch": torch.__version__, "torchvision": vision}


def load_backbone(
    weights: str | os.PathLike[str],
    seed: int = 0,
    weights_path: str | os.PathLike[str] | None = None,
    expected: dict[str, Any] | None = None,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """Build the VGG19 trunk for ``weights`` (``"imagenet"``, ``"none"`` or a state-dict path).

    Returns the trunk (eval mode, frozen) and its description (``backbone_info``). With ``expected``
    (a saved model's backbone info) the checksum must match, else :class:`BundleError`.
    """
    kind = weights if weights in ("imagenet", "none") else "file"
    info: dict[str, Any] = {"architecture": "vgg19", "weights": kind, **_versions()}
    if kind == "none":
        message = (
            f"VGG19 backbone has RANDOM weights (--deep none, or weights='none' in Python; seed {seed}): the deep "
            "features carry no ImageNet knowledge. Use this for tests only; for real deep features use --deep "
            "imagenet (--download fetches the weights once) or --deep FILE with a VGG19 state dict."
        )
        warnings.warn(message, RandomWeightsWarning, stacklevel=3)
        if not _RANDOM_LOGGED & {seed, None}:  # once per process and seed: a run builds the trunk per region
            _RANDOM_LOGGED.add(seed)
            logger.warning(message)
        state, sha, _ = _random_state(seed)
        info.update(seed=int(seed), sha256=sha, tensor_sha256=sha, file=None)
        if expected is not None and expected.get("sha256") != sha:
            raise BundleError(
                f"the random VGG19 backbone regenerated from seed {seed} has checksum {sha[:16]}..., but the "
                f"saved model expects {str(expected.get('sha256'))[:16]}...; it was saved with torch "
                f"{expected.get('torch')} / torchvision {expected.get('torchvision')}, this is torch "
                f"{info['torch']} / torchvision {info['torchvision']}. Its features cannot be reproduced here: "
                "use the torch version it was saved with, or retrain."
            )
        return _freeze(_trunk_from_state(state)), info

    if kind == "imagenet":
        path = find_imagenet_weights(weights_path)
        info.update(url=VGG19_URL, torchvision_weights=IMAGENET_WEIGHTS_NAME)
    else:
        path = Path(weights_path if weights_path is not None else weights)
    state, sha, tensor_sha = _read_trunk_file(path)
    if expected is not None and expected.get("sha256") != sha:
        where = (
            f"put that file at {imagenet_cache_path()} or name it with ${WEIGHTS_ENV}"
            if kind == "imagenet"
            else "give that file"
        )
        raise BundleError(
            f"{path}: this VGG19 weights file has SHA-256 {sha[:16]}..., but the model was trained with "
            f"{expected.get('file')} of SHA-256 {str(expected.get('sha256'))[:16]}...: its deep features would "
            f"differ, so the model refuses it; {where}"
        )
    if kind == "imagenet" and not sha.startswith(IMAGENET_SHA256_PREFIX):
        raise ALNMError(
            f"{path}: not torchvision's ImageNet VGG19 weights (SHA-256 starts {sha[:8]}, {VGG19_FILENAME} "
            f"starts {IMAGENET_SHA256_PREFIX}); delete it and download again (--download), re-copy {VGG19_URL}, "
            "or give it as --deep <path> to train on it as a custom state dict"
        )
    info.update(seed=None, sha256=sha, tensor_sha256=tensor_sha, file=path.name)
    if kind == "file":
        info["path"] = str(path)
    return _freeze(_trunk_from_state(state)), info


def _freeze(trunk: nn.Sequential) -> nn.Sequential:
    trunk.eval()
    for param in trunk.parameters():
        param.requires_grad_(False)
    return trunk


# --------------------------------------------------------------------------------------------------
# Head, pooling, augmentation
# --------------------------------------------------------------------------------------------------


class DeepHead(nn.Module):
    """Standardise → Linear(D, 128) → ReLU (the deep features) → Dropout → Linear(128, 2)."""

    def __init__(self, in_dim: int, n_features: int = N_FEATURES, dropout: float = 0.5) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(in_dim))
        self.register_buffer("scale", torch.ones(in_dim))
        self.bottleneck = nn.Linear(in_dim, n_features)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(n_features, 2)

    def features(self, trunk_out: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bottleneck((trunk_out - self.mean) / self.scale))

    def forward(self, trunk_out: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(trunk_out)))


def pool_trunk(conv: torch.Tensor, pool: int) -> torch.Tensor:
    """Average-pool the trunk's feature maps to pool × pool and flatten."""
    if pool == 1:  # a plain mean: deterministic backward on CUDA, unlike adaptive_avg_pool2d
        return conv.mean(dim=(2, 3))
    return F.adaptive_avg_pool2d(conv, pool).flatten(1)


def augment(
    crops: torch.Tensor,
    generator: torch.Generator,
    max_rotation: float = 10.0,
    contrast: float = 0.1,
    brightness: float = 0.05,
) -> torch.Tensor:
    """Light seeded augmentation of normalised crops: horizontal flip, rotation, contrast, brightness."""
    n = crops.shape[0]
    mean = torch.tensor(IMAGENET_MEAN, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1)
    flip = torch.rand(n, generator=generator) < 0.5
    angle = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * math.radians(max_rotation)
    gain = 1 + (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * contrast
    shift = (torch.rand(n, generator=generator, dtype=torch.float64) * 2 - 1) * brightness
    raw = crops * std + mean
    raw = torch.where(flip.to(crops.device).view(n, 1, 1, 1), raw.flip(-1), raw)
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero = torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(crops.dtype).to(crops.device), list(raw.shape), align_corners=False)
    raw = F.grid_sample(raw, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    level = raw.mean(dim=(1, 2, 3), keepdim=True)
    gain = gain.to(crops.dtype).to(crops.device).view(n, 1, 1, 1)
    shift = shift.to(crops.dtype).to(crops.device).view(n, 1, 1, 1)
    raw = ((raw - level) * gain + level + shift).clamp(0.0, 1.0)
    return (raw - mean) / std


def _stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified (train, validation) indices; no validation fold when a class has < 2 cases."""
    counts = np.bincount(labels, minlength=2)
    if fraction <= 0 or counts.min() < 2:
        return np.arange(len(labels)), np.array([], dtype=np.int64)
    rng = np.random.default_rng(seed)
    val = []
    for cls in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == cls))
        n_val = min(max(1, int(round(fraction * len(members)))), len(members) - 1)
        val.append(members[:n_val])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Mann–Whitney AUC (ties count half); None with one class."""
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return None
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


# --------------------------------------------------------------------------------------------------
# Extractor
# --------------------------------------------------------------------------------------------------

Crops = np.ndarray | Sequence[tuple[np.ndarray, np.ndarray]]


class DeepFeatureExtractor:
    """VGG19 deep features of one region: ``fit`` on training crops and ALNM labels, ``transform`` any crops.

    ``weights``: ``"imagenet"``, ``"none"`` or a state-dict path; ``finetune``: ``"frozen"`` (train the
    head only on cached trunk outputs) or ``"full"`` (train the trunk too). ``device`` None picks CUDA
    when available. ``input_size`` < 224 makes tests cheap. See the module docstring for the design.
    """

    def __init__(
        self,
        weights: str = "imagenet",
        finetune: str = "frozen",
        seed: int = 0,
        epochs: int = 50,
        batch_size: int = 32,
        device: str | None = None,
        *,
        weights_path: str | os.PathLike[str] | None = None,
        input_size: int = 224,
        margin: float = 0.1,
        pool: int = 1,
        n_features: int = N_FEATURES,
        dropout: float = 0.5,
        lr: float = 1e-3,
        finetune_lr: float = 1e-5,
        weight_decay: float = 1e-4,
        patience: int = 10,
        val_fraction: float = 0.2,
        n_views: int = 2,
        num_threads: int | None = None,
        intensity: str = "auto",
    ) -> None:
        self.weights = str(weights) if isinstance(weights, os.PathLike) else weights
        self.finetune = finetune
        self.seed = seed
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.weights_path = weights_path
        self.input_size = input_size
        self.margin = margin
        self.pool = pool
        self.n_features = n_features
        self.dropout = dropout
        self.lr = lr
        self.finetune_lr = finetune_lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.val_fraction = val_fraction
        self.n_views = n_views
        self.num_threads = num_threads
        self.intensity = intensity
        self._check_settings()
        self._base: nn.Sequential | None = None  # the backbone as loaded (frozen)
        self._tuned: nn.Sequential | None = None  # the trunk after fine-tuning (finetune="full")
        self._backbone_info: dict[str, Any] | None = None
        self.head_: DeepHead | None = None
        self.training_summary_: dict[str, Any] | None = None
        self.timings_: dict[str, float] = {}

    # ----- settings and backbone ---------------------------------------------------------------

    def _check_settings(self) -> None:
        if self.finetune not in ("frozen", "full"):
            raise ALNMError(f"finetune must be 'frozen' or 'full', got {self.finetune!r}")
        if not self.weights:
            raise ALNMError("weights must be 'imagenet', 'none' or a path to a VGG19 state dict")
        if self.input_size < 32:
            raise ALNMError(f"input_size must be at least 32 for VGG19, got {self.input_size}")
        if self.intensity not in INTENSITY_MODES:
            raise ALNMError(f"intensity must be one of {', '.join(INTENSITY_MODES)}, got {self.intensity!r}")
        if not 1 <= self.pool <= self.input_size // 32:
            raise ALNMError(
                f"pool must be between 1 and input_size/32 = {self.input_size // 32}, got {self.pool}"
            )
        for name in ("epochs", "batch_size", "n_features"):
            if int(getattr(self, name)) < 1:
                raise ALNMError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.n_views < 0 or self.patience < 1 or not 0 <= self.val_fraction < 1:
            raise ALNMError("n_views must be >= 0, patience >= 1 and val_fraction in [0, 1)")

    @property
    def trunk_dim(self) -> int:
        """Length of the trunk output vector (512 × pool²)."""
        return _TRUNK_CHANNELS * self.pool * self.pool

    def compute_device(self) -> torch.device:
        """The device this extractor runs on: the one given, else CUDA when available, else the CPU."""
        if self.device is not None:
            return torch.device(self.device)
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    def _ensure_backbone(self) -> nn.Sequential:
        """The backbone as loaded (never the fine-tuned copy), loaded on first use."""
        if self._base is None:
            self._base, info = load_backbone(self.weights, self.seed, self.weights_path)
            self._backbone_info = self._backbone_info or info
        return self._base

    def current_trunk(self) -> nn.Sequential:
        """The trunk in use: the fine-tuned copy after a ``finetune="full"`` fit, else the backbone."""
        return self._tuned if self._tuned is not None else self._ensure_backbone()

    def trunk_checksum(self) -> str:
        """SHA-256 of the tensors of the trunk in use: the backbone's, or the fine-tuned trunk's after fit."""
        if self._tuned is None:
            return str(self.backbone_info["tensor_sha256"])
        return tensor_sha256(self._tuned.state_dict())

    def trunk_identity(self) -> str:
        """What a trunk output depends on (the backbone's or fine-tuned trunk's tensors, crop settings), hashed."""
        if self.finetune == "full" and self.head_ is not None:  # the fine-tuned trunk replaces the backbone
            weights = "finetuned:" + tensor_sha256(self.current_trunk().state_dict())
        else:
            weights = str(self.backbone_info["tensor_sha256"])
        # "crop": outputs computed one crop at a time (older caches ran zero-padded batches of 8)
        identity = {
            "trunk": weights,
            "size": self.input_size,
            "margin": self.margin,
            "pool": self.pool,
            "crop": "single",
        }
        if self.intensity != "auto":  # older caches (always "auto") keep their keys
            identity["intensity"] = self.intensity
        return content_sha256(identity)

    @property
    def backbone_info(self) -> dict[str, Any]:
        """Weights used (``imagenet``/``none``/``file``), SHA-256, seed, torch and torchvision versions."""
        if self._backbone_info is None:
            self._ensure_backbone()
        assert self._backbone_info is not None
        return dict(self._backbone_info)

    def feature_names(self, prefix: str = "") -> list[str]:
        """``deep_000`` ... ``deep_127``; a prefix such as ``tumor`` gives ``tumor_deep_000``."""
        if prefix and not prefix.endswith("_"):
            prefix += "_"
        return [f"{prefix}deep_{i:03d}" for i in range(self.n_features)]

    @contextlib.contextmanager
    def session(self, device: torch.device) -> Iterator[None]:
        """Seeded, deterministic torch state for this call; the caller's settings are restored after."""
        threads = torch.get_num_threads()
        det, warn_only = (
            torch.are_deterministic_algorithms_enabled(),
            torch.is_deterministic_algorithms_warn_only_enabled(),
        )
        cudnn = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
        if device.type == "cuda":
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        devices = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            try:
                if self.num_threads:
                    torch.set_num_threads(int(self.num_threads))
                torch.use_deterministic_algorithms(True, warn_only=True)
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
                yield
            finally:
                torch.set_num_threads(threads)
                torch.use_deterministic_algorithms(det, warn_only=warn_only)
                torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = cudnn

    # ----- inputs ------------------------------------------------------------------------------

    def _as_crops(self, crops: Crops) -> np.ndarray:
        """Validate an (N, 3, S, S) array, or crop a list of (image, mask) pairs."""
        if isinstance(crops, np.ndarray | torch.Tensor):
            array = np.asarray(crops, dtype=np.float32)
        else:
            pairs = list(crops)
            if not pairs:
                raise ALNMError("no crops given")
            out = []
            for i, pair in enumerate(pairs):
                if not isinstance(pair, tuple | list) or len(pair) != 2:
                    raise ALNMError(f"item {i}: expected an (image, mask) pair")
                out.append(
                    crop_roi(
                        pair[0], pair[1], self.margin, self.input_size, intensity=self.intensity, case=f"#{i}"
                    )
                )
            array = np.stack(out)
        size = self.input_size
        if array.ndim != 4 or array.shape[1:] != (3, size, size):
            raise ALNMError(f"crops must have shape (N, 3, {size}, {size}), got {array.shape}")
        if len(array) == 0:
            raise ALNMError("no crops given")
        if not np.isfinite(array).all():
            raise ALNMError("crops contain NaN or infinite values")
        return array

    # ----- trunk -------------------------------------------------------------------------------

    def _trunk_batches(
        self,
        trunk: nn.Module,
        crops: np.ndarray | torch.Tensor,
        device: torch.device,
        progress: Callable[[int, int], None] | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Pooled trunk outputs; ``batch_size`` 1 (the default) runs each crop on its own.

        A crop's output must not depend on the crops computed with it: CPU kernels (oneDNN, MKL) pick
        blocking and vectorisation by batch shape, which moves the last float32 digits (seen on Intel,
        not on AMD). Features therefore always go one crop at a time; only training-time augmented views,
        which are never stored, use ``self.batch_size``.
        """
        step = 1 if batch_size is None else int(batch_size)
        outputs = []
        total = len(crops)
        with torch.inference_mode():
            for start in range(0, total, step):
                batch = torch.as_tensor(crops[start : start + step]).to(device)
                outputs.append(pool_trunk(trunk(batch), self.pool).float().cpu())
                if progress is not None:
                    progress(min(start + step, total), total)
        return torch.cat(outputs)

    def trunk_features(self, crops: Crops, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Pooled trunk output (N, 512·pool²) of un-augmented crops, each crop computed on its own."""
        array = self._as_crops(crops)
        trunk = self.current_trunk()
        device = self.compute_device()
        trunk.to(device).eval()
        with self.session(device):
            out = self._trunk_batches(trunk, array, device, progress)
        return out.numpy()

    def _head_rows(self, trunk: np.ndarray, logits: bool = False) -> np.ndarray:
        """The head's bottleneck features (or logits) row by row, so no row depends on the others."""
        head = self.fitted_head()
        values = np.asarray(trunk, dtype=np.float32)
        if values.ndim != 2 or values.shape[1] != self.trunk_dim:
            raise ALNMError(f"trunk features must have shape (N, {self.trunk_dim}), got {values.shape}")
        head.eval()
        apply = head if logits else head.features
        tensor = torch.from_numpy(values)
        with torch.inference_mode():
            rows = [apply(tensor[i : i + 1]) for i in range(len(tensor))]
        width = 2 if logits else self.n_features
        return torch.cat(rows).numpy() if rows else np.zeros((0, width), dtype=np.float32)

    def transform_trunk(self, trunk: np.ndarray) -> np.ndarray:
        """Deep features (N, 128) from :meth:`trunk_features` output."""
        return self._head_rows(trunk)

    def transform(self, crops: Crops) -> np.ndarray:
        """Deep features (N, 128) of crops or (image, mask) pairs."""
        self.fitted_head()
        return self.transform_trunk(self.trunk_features(crops))

    def predict_proba(self, crops: Crops) -> np.ndarray:
        """The head's probability of metastasis for each crop (N,)."""
        self.fitted_head()
        logits = torch.from_numpy(self._head_rows(self.trunk_features(crops), logits=True))
        return torch.softmax(logits, dim=1)[:, 1].numpy()

    def fitted_head(self) -> DeepHead:
        """The trained head; ALNMError when the extractor is not fitted."""
        if self.head_ is None:
            raise ALNMError("the deep feature extractor is not fitted: call fit() or load a saved one")
        return self.head_

    # ----- training ----------------------------------------------------------------------------

    def fit(
        self,
        crops: Crops,
        labels: Sequence[int] | np.ndarray,
        *,
        trunk: np.ndarray | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> DeepFeatureExtractor:
        """Train the head (and the trunk with ``finetune="full"``) on training-split crops and ALNM labels.

        ``trunk``: this extractor's :meth:`trunk_features` of the same crops, to skip recomputing them
        (frozen mode only).
        """
        self._check_settings()
        array = self._as_crops(crops)
        y = np.asarray(labels)
        if y.shape != (len(array),):
            raise ALNMError(f"{len(array)} crops but labels of shape {y.shape}")
        if not np.isin(y, (0, 1)).all():
            raise ALNMError(f"labels must be 0/1 (ALNM), got values {sorted(set(y.tolist()))[:5]}")
        y = y.astype(np.int64)
        if len(np.unique(y)) < 2:
            raise ALNMError(f"labels contain one class only ({int(y[0])}): the deep head needs both")
        base = self._ensure_backbone()
        device = self.compute_device()
        train_idx, val_idx = _stratified_split(y, self.val_fraction, self.seed)
        with self.session(device):
            if self.finetune == "frozen":
                self._fit_frozen(base, array, y, train_idx, val_idx, device, trunk, progress)
            else:
                if trunk is not None:
                    raise ALNMError("precomputed trunk features cannot be used with finetune='full'")
                self._fit_full(base, array, y, train_idx, val_idx, device)
        return self

    def _new_head(self, train_trunk: torch.Tensor) -> DeepHead:
        head = DeepHead(self.trunk_dim, self.n_features, self.dropout)
        with torch.no_grad():
            head.mean.copy_(train_trunk.mean(0))
            sd = train_trunk.std(0) if len(train_trunk) > 1 else torch.ones(self.trunk_dim)
            head.scale.copy_(torch.where(sd > 1e-6, sd, torch.ones_like(sd)))
        return head

    def _loss(self, y_train: np.ndarray) -> nn.CrossEntropyLoss:
        counts = np.bincount(y_train, minlength=2).astype(np.float64)
        weight = torch.tensor(len(y_train) / (2 * np.maximum(counts, 1)), dtype=torch.float32)
        return nn.CrossEntropyLoss(weight=weight)

    def _fit_frozen(
        self,
        base: nn.Sequential,
        crops: np.ndarray,
        y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        device: torch.device,
        trunk: np.ndarray | None,
        progress: Callable[[int, int], None] | None,
    ) -> None:
        started = time.perf_counter()
        base.to(device).eval()
        # one progress count over every trunk pass of the training: the plain crops (unless given), then each view
        total = (len(crops) if trunk is None else 0) + self.n_views * len(train_idx)

        def step(offset: int) -> Callable[[int, int], None] | None:
            return None if progress is None else (lambda done, _n: progress(offset + done, total))

        if trunk is None:
            plain = self._trunk_batches(base, crops, device, step(0))
        else:
            plain = torch.from_numpy(np.asarray(trunk, dtype=np.float32).copy())
            if plain.shape != (len(crops), self.trunk_dim):
                raise ALNMError(
                    f"trunk features must have shape ({len(crops)}, {self.trunk_dim}), got {tuple(plain.shape)}"
                )
        gen = torch.Generator().manual_seed(self.seed)
        train_crops = torch.from_numpy(crops[train_idx])
        views = [plain[train_idx]]
        for view in range(self.n_views):
            augmented = torch.cat(
                [
                    augment(train_crops[s : s + self.batch_size], gen)
                    for s in range(0, len(train_crops), self.batch_size)
                ]
            )
            offset = (len(crops) if trunk is None else 0) + view * len(train_idx)
            views.append(
                self._trunk_batches(base, augmented, device, step(offset), batch_size=self.batch_size)
            )
        self.timings_ = {"trunk_s": time.perf_counter() - started}

        started = time.perf_counter()
        x_train = torch.cat(views)
        y_train = torch.from_numpy(np.tile(y[train_idx], len(views)))
        head = self._new_head(plain[train_idx])
        optimiser = torch.optim.Adam(head.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = self._loss(y[train_idx])
        x_val, y_val = plain[val_idx], torch.from_numpy(y[val_idx])

        def train_epoch() -> float:
            head.train()
            order = torch.randperm(len(x_train), generator=gen)
            total = 0.0
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(head(x_train[idx]), y_train[idx])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            return total / len(order)

        def val_logits() -> torch.Tensor:
            head.eval()
            with torch.no_grad():
                return head(x_val)

        summary = self._train_loop(head, train_epoch, val_logits, y_val, self._loss(y[train_idx]))
        self.timings_["head_s"] = time.perf_counter() - started
        self._finish(head, summary, y, train_idx, val_idx, device, len(views))

    def _fit_full(
        self,
        base: nn.Sequential,
        crops: np.ndarray,
        y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        device: torch.device,
    ) -> None:
        started = time.perf_counter()
        trunk = copy.deepcopy(base).to(device)
        for param in trunk.parameters():
            param.requires_grad_(True)
        trunk.eval()
        x_train = torch.from_numpy(crops[train_idx])
        x_val = torch.from_numpy(crops[val_idx])
        head = self._new_head(self._trunk_batches(trunk, x_train, device, batch_size=self.batch_size)).to(
            device
        )
        optimiser = torch.optim.Adam(
            [
                {"params": trunk.parameters(), "lr": self.finetune_lr},
                {"params": head.parameters(), "lr": self.lr},
            ],
            weight_decay=self.weight_decay,
        )
        loss_fn = self._loss(y[train_idx]).to(device)
        y_train = torch.from_numpy(y[train_idx])
        y_val = torch.from_numpy(y[val_idx])
        gen = torch.Generator().manual_seed(self.seed)

        def train_epoch() -> float:
            trunk.train()
            head.train()
            order = torch.randperm(len(x_train), generator=gen)
            total = 0.0
            for s in range(0, len(order), self.batch_size):
                idx = order[s : s + self.batch_size]
                batch = augment(x_train[idx], gen).to(device)
                optimiser.zero_grad()
                loss = loss_fn(head(pool_trunk(trunk(batch), self.pool)), y_train[idx].to(device))
                loss.backward()
                optimiser.step()
                total += loss.item() * len(idx)
            return total / len(order)

        def val_logits() -> torch.Tensor:
            trunk.eval()
            head.eval()
            with torch.no_grad():
                return head(
                    self._trunk_batches(trunk, x_val, device, batch_size=self.batch_size).to(device)
                ).cpu()

        modules = nn.ModuleDict({"trunk": trunk, "head": head})
        summary = self._train_loop(modules, train_epoch, val_logits, y_val, self._loss(y[train_idx]))
        self.timings_ = {"train_s": time.perf_counter() - started}
        self._tuned = _freeze(trunk)
        self._finish(head, summary, y, train_idx, val_idx, device, 1)

    def _train_loop(
        self,
        model: nn.Module,
        train_epoch: Callable[[], float],
        val_logits: Callable[[], torch.Tensor],
        y_val: torch.Tensor,
        loss_fn: nn.Module,
    ) -> dict[str, Any]:
        """Run epochs with early stopping on validation loss (CPU ``loss_fn``); the best epoch is restored."""
        best_loss, best_epoch, best_state, train_loss = math.inf, 0, None, math.nan
        history: list[float] = []
        stopped_early = False
        for epoch in range(1, self.epochs + 1):
            train_loss = train_epoch()
            if len(y_val) == 0:
                best_epoch, history = epoch, [*history, train_loss]
                continue
            logits = val_logits()
            loss = float(loss_fn(logits.float().cpu(), y_val))
            history.append(loss)
            if loss < best_loss - 1e-7:
                best_loss, best_epoch = loss, epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            elif epoch - best_epoch >= self.patience:
                stopped_early = True
                break
        if best_state is not None:
            model.load_state_dict(best_state)
        summary: dict[str, Any] = {
            "epochs_run": len(history),
            "best_epoch": best_epoch,
            "stopped_early": stopped_early,
            "final_train_loss": round(train_loss, 6),
            "best_val_loss": None if not math.isfinite(best_loss) else round(best_loss, 6),
        }
        if len(y_val):
            probs = torch.softmax(val_logits().float(), 1)[:, 1].numpy()
            summary["val_auc"] = _auc(y_val.numpy(), probs)
        else:
            summary["val_auc"] = None
            summary["note"] = "no validation fold (a class has fewer than 2 cases): trained all epochs"
        return summary

    def _finish(
        self,
        head: DeepHead,
        summary: dict[str, Any],
        y: np.ndarray,
        train_idx: np.ndarray,
        val_idx: np.ndarray,
        device: torch.device,
        n_views_total: int,
    ) -> None:
        self.head_ = head.cpu().eval()
        self.training_summary_ = {
            "n_cases": int(len(y)),
            "n_train": int(len(train_idx)),
            "n_val": int(len(val_idx)),
            "n_positive": int(y.sum()),
            "views_per_train_case": int(n_views_total),
            "device": device.type,
            **summary,
        }
        logger.info("deep head trained: %s", self.training_summary_)

    # ----- persistence -------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """The constructor settings a saved model records (device and threads are not recorded)."""
        keys = (
            "finetune",
            "seed",
            "epochs",
            "batch_size",
            "input_size",
            "margin",
            "pool",
            "n_features",
            "dropout",
            "lr",
            "finetune_lr",
            "weight_decay",
            "patience",
            "val_fraction",
            "n_views",
            "intensity",
        )
        return {k: getattr(self, k) for k in keys}

    def save(self, directory: str | os.PathLike[str], name: str) -> list[Path]:
        """Write ``<name>.safetensors`` (head; trunk too when fine-tuned) and ``<name>.json`` (metadata)."""
        head = self.fitted_head()
        if not name or Path(name).name != name or name.startswith("."):
            raise ALNMError(f"model name must be a plain file name, got {name!r}")
        from safetensors.torch import save as save_tensors

        tensors = {f"head.{k}": v.detach().cpu().contiguous() for k, v in head.state_dict().items()}
        if self.finetune == "full":
            trunk_state = self.current_trunk().state_dict()
            tensors.update({f"trunk.{k}": v.detach().cpu().contiguous() for k, v in trunk_state.items()})
        blob = save_tensors(tensors, metadata={"format": FORMAT, "version": str(FORMAT_VERSION)})
        directory = Path(directory)
        tensor_path = write_bytes(directory / f"{name}.safetensors", blob)
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "settings": self.settings(),
            "backbone": self.backbone_info,
            "trunk_dim": self.trunk_dim,
            "trunk_sha256": self.trunk_checksum(),
            "feature_names": self.feature_names(),
            "training": self.training_summary_,
            "tensors": {"file": tensor_path.name, "sha256": hashlib.sha256(blob).hexdigest()},
        }
        json_path = write_json(directory / f"{name}.json", meta)
        return [tensor_path, json_path]

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str],
        name: str,
        weights_path: str | os.PathLike[str] | None = None,
        device: str | None = None,
        num_threads: int | None = None,
    ) -> DeepFeatureExtractor:
        """Load a saved extractor; the backbone's checksum must equal the recorded one (BundleError if not).

        ``weights_path`` gives the backbone file when the model was trained with ``imagenet`` (optional:
        the usual places are searched) or a state-dict file (default: the recorded path).
        """
        directory = Path(directory)
        if not is_plain_name(name):
            raise BundleError(
                f"{directory}: {name!r} is not the name of a deep feature model inside the folder"
            )
        json_path = directory / f"{name}.json"
        try:
            meta = json.loads(json_path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise BundleError(f"{json_path}: saved deep feature model not found") from exc
        except (OSError, UnicodeDecodeError, RecursionError, json.JSONDecodeError) as exc:
            raise BundleError(f"{json_path}: unreadable deep feature model metadata ({exc})") from exc
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise BundleError(f"{json_path}: not a deep feature model (format {FORMAT})")
        try:
            tensor_path, tensor_sha, settings, info, trunk_dim = cls._read_meta(meta, directory)
        except BundleError as exc:
            raise BundleError(f"{json_path}: {exc}") from exc
        try:
            blob = tensor_path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{tensor_path}: deep head tensors missing or unreadable ({exc})") from exc
        if hashlib.sha256(blob).hexdigest() != tensor_sha:
            raise BundleError(f"{tensor_path}: checksum differs from {json_path.name}: the file was modified")
        from safetensors.torch import load as load_tensors

        try:
            tensors = load_tensors(blob)
        except Exception as exc:  # safetensors raises SafetensorError (and others) on a malformed file
            raise BundleError(f"{tensor_path}: not a readable safetensors file ({exc})") from exc
        for key, tensor in tensors.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise BundleError(f"{tensor_path}: tensor '{key}' holds NaN or infinite values")
        kind = info.get("weights")
        if kind == "none":
            weights: str = "none"
        elif kind == "imagenet":
            weights = "imagenet"
        elif kind == "file":
            weights = str(weights_path if weights_path is not None else info.get("path"))
        else:
            raise BundleError(f"{json_path}: unknown backbone weights {kind!r}")
        if kind == "none":
            settings["seed"] = info["seed"]  # an integer (_read_meta)
        if kind == "file" and settings.get("finetune") != "full" and not Path(weights).is_file():
            raise BundleError(
                f"{json_path}: the VGG19 weights file it was trained with ({info.get('file')}, SHA-256 "
                f"{str(info.get('sha256'))[:16]}...) is not at {weights}; pass weights_path=<its path>"
            )
        try:
            extractor = cls(
                weights=weights, device=device, num_threads=num_threads, weights_path=weights_path, **settings
            )
        except (TypeError, ALNMError) as exc:
            raise BundleError(f"{json_path}: invalid settings ({exc})") from exc
        if extractor.finetune == "full":
            try:
                trunk = _trunk_from_state({k[6:]: v for k, v in tensors.items() if k.startswith("trunk.")})
            except RuntimeError as exc:
                raise BundleError(
                    f"{tensor_path}: fine-tuned trunk tensors do not fit VGG19 ({exc})"
                ) from exc
            extractor._tuned, extractor._backbone_info = _freeze(trunk), info
        else:
            extractor._base, extractor._backbone_info = load_backbone(
                weights,
                int(info.get("seed") or 0),
                weights_path if kind == "imagenet" else None,
                expected=info,
            )
        head = DeepHead(trunk_dim, extractor.n_features, extractor.dropout)
        try:
            head.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("head.")}, strict=True)
        except RuntimeError as exc:
            raise BundleError(
                f"{tensor_path}: head tensors do not fit the recorded settings ({exc})"
            ) from exc
        extractor.head_ = head.eval()
        extractor.training_summary_ = meta.get("training")
        return extractor

    @classmethod
    def _read_meta(
        cls, meta: dict[str, Any], directory: Path
    ) -> tuple[Path, str, dict[str, Any], dict[str, Any], int]:
        """The parts of a saved extractor's metadata that load uses, read strictly (BundleError naming the key).

        Settings must have the types of the constructor's parameters (``margin: "0.1"`` or
        ``finetune: true`` are refused, not converted); the tensors file must be a plain file name in
        ``directory``.
        """
        version = integer(required(meta, "version", ""), "version")
        if version > FORMAT_VERSION:
            raise BundleError(f"written by a newer version (format {version} > {FORMAT_VERSION}); upgrade")
        tensors = mapping(required(meta, "tensors", ""), "tensors")
        file_name = text(required(tensors, "file", "tensors"), "tensors.file")
        if not is_plain_name(file_name):
            raise BundleError(f"tensors.file: {file_name!r} is not the name of a file beside it")
        tensor_sha = text(required(tensors, "sha256", "tensors"), "tensors.sha256")
        annotations = {
            k: p.annotation for k, p in inspect.signature(cls.__init__).parameters.items() if k != "self"
        }
        recorded = set(cls(weights="none").settings())
        settings = check_types(
            required(meta, "settings", ""), {k: annotations[k] for k in recorded}, "settings"
        )
        info = dict(mapping(required(meta, "backbone", ""), "backbone"))
        weights = text(required(info, "weights", "backbone"), "backbone.weights")
        if weights == "none":  # the random backbone is regenerated from its seed
            integer(required(info, "seed", "backbone"), "backbone.seed")
        elif info.get("seed") is not None:
            integer(info["seed"], "backbone.seed")
        trunk_dim = integer(required(meta, "trunk_dim", ""), "trunk_dim")
        return directory / file_name, tensor_sha, settings, info, trunk_dim


class DeepCache:
    """Trunk outputs and trained heads on disk under ``<cache_dir>/deep``, keyed by what they depend on.

    A trunk output (``trunk/<key>.npy``) is keyed by the input's content key and the extractor's
    :meth:`~DeepFeatureExtractor.trunk_identity`; a trained head (``heads/<key>/``) by the backbone, the
    extractor's settings and the training cases with their labels. An unreadable entry is recomputed.
    """

    def __init__(self, cache_dir: str | os.PathLike[str], version: int) -> None:
        self.root = Path(cache_dir) / "deep"
        self.version = version

    def trunk_path(self, input_key: str, identity: str) -> Path:
        """Where the trunk output of an input (its content key) under a trunk identity is kept."""
        return (
            self.root
            / "trunk"
            / f"{content_sha256({'v': self.version, 'input': input_key, 'trunk': identity})}.npy"
        )

    @staticmethod
    def load_trunk(path: Path, dim: int) -> np.ndarray | None:
        """A cached trunk output of length ``dim``; None when absent or unusable (with a warning)."""
        try:
            vector = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            logger.warning("%s: unreadable cache entry (%s); recomputing it", path, exc)
            return None
        if vector.shape != (dim,) or vector.dtype != np.float32:
            logger.warning(
                "%s: cache entry of shape %s, expected (%d,); recomputing it", path, vector.shape, dim
            )
            return None
        return vector

    @staticmethod
    def save_trunk(path: Path, vector: np.ndarray) -> None:
        """Write a trunk output atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as handle:
            np.save(handle, vector, allow_pickle=False)

    def head_dir(self, model: DeepFeatureExtractor, weights: str, train: Sequence[tuple[str, int]]) -> Path:
        """The folder of the head ``model``'s settings would train on ``train`` ((input key, label) pairs)."""
        key = content_sha256(
            {
                "v": self.version,
                "weights": weights,
                "backbone": model.backbone_info["tensor_sha256"],
                "settings": model.settings(),
                "train": [[input_key, int(y)] for input_key, y in train],
            }
        )
        return self.root / "heads" / key

    @staticmethod
    def load_head(head_dir: Path, region: str, options: dict[str, Any]) -> DeepFeatureExtractor | None:
        """The head saved for ``region`` in ``head_dir``; None when absent or unusable (with a warning)."""
        if not (head_dir / f"{region}.json").is_file():
            return None
        try:
            return DeepFeatureExtractor.load(
                head_dir,
                region,
                weights_path=options.get("weights_path"),
                device=options.get("device"),
                num_threads=options.get("num_threads"),
            )
        except ALNMError as exc:
            logger.warning("%s: cached deep head not usable (%s); retraining it", head_dir, exc)
            return None
