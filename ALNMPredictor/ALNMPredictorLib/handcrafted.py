"""Handcrafted radiomics features of a 2D ultrasound ROI, computed with pyradiomics.

Two presets ship in ``Resources/Parameters``; ``us2d`` is the default (:data:`DEFAULT_PRESET`):

- ``paper``: the reference study's 851 features per ROI (the 2D image as a one-slice volume, default
  feature classes on Original + coif1 level-1 Wavelet, binWidth 25, force2D off). Its four z-high-pass
  wavelet images are rounding noise on a single slice: their 372 features are not computed unless
  ``full_table=True`` asks for the study's whole 851-column table, and then they are flagged by
  :meth:`HandcraftedExtractor.degenerate_features` so that selection drops them. The 3D shape's
  LeastAxisLength and Flatness are 0 on one slice: they are computed, and always flagged.
- ``us2d``: a true 2D configuration (force2D, shape2D, in-plane wavelets, binWidth 5 for 8-bit images),
  474 features.

Any pyradiomics parameter file (YAML/JSON) or dict can be used instead. Images are always cast to
float64 before pyradiomics sees them: with numpy 2, an 8-bit image and an integer binWidth overflow
silently inside pyradiomics' binning (``maximum + 2 * binWidth`` wraps around at 256) and corrupt
every first-order and texture feature of the original image.

Memory and time follow the ROI, not the image: pyradiomics filters whole images (nine one-slice
wavelet volumes of 2 x rows x cols float64 for ``paper``: about 11-17 GB and minutes for an
8000 x 8000 image), so each ROI is cut out with a margin before pyradiomics sees it, with the same
feature values (see :func:`crop_margin` and ``Testing/test_reliability_resources.py``):

- The margin covers the filters' support: none for ``Original``; for ``Wavelet``, pyradiomics runs
  ``start_level + level`` undilated stationary wavelet passes, each reading ``dec_len - 1`` neighbours
  (5 for coif1), so the margin is ``(dec_len - 1) * (start_level + level)`` pixels.
- The wavelet is periodic: at an image border it reads the opposite border. Along an axis where the
  ROI's box plus the margin would leave the image, the image's full extent is kept.
- Intensity standardisation (``normalize``) uses whole-image statistics: they are computed on the
  whole image by the same ITK filter as pyradiomics' ``normalizeImage`` and applied to the crop
  with the same arithmetic (shift, scale, outlier clipping, ``normalizeScale``).
- Other filters (LoG, gradient, LBP, square, ...) and resampling read further or use whole-image
  values: with those, pyradiomics gets the whole image as before.

pyradiomics' 3D shape class (``paper``) searches every pair of mesh vertices for its diameters, which
on a one-slice volume costs the square of the ROI's pixel count; :mod:`ALNMPredictorLib.shape3d`
gives the same diameters (bit for bit) and mesh area and volume (to 1e-11 relative) without it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import hashlib
import json
import logging
import re
import warnings
from collections.abc import Iterator, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pywt
import radiomics
import SimpleITK as sitk
import yaml
from radiomics import featureextractor, imageoperations

from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.imaging import NORMALIZE_SCALE
from ALNMPredictorLib.shape3d import OneSliceShape

__all__ = [
    "PARAMETERS_DIR",
    "DEFAULT_PRESET",
    "PRESETS",
    "HandcraftedExtractor",
    "crop_margin",
    "extract_handcrafted",
    "load_params",
    "preset_path",
    "roi_mask",
    "to_grey",
]

PRESETS = ("paper", "us2d")
#: the preset of ``alnm extract/train/run`` and of this module's functions: on real 2D ultrasound (BUS-BRA,
#: tested on other scanners) it gave a pooled test AUC of 0.932 against 0.864 for ``paper``, which loses it
#: through its 3D shape class on a one-slice volume (BENCHMARKS.md); ``paper`` stays for replication
DEFAULT_PRESET = "us2d"
PARAMETERS_DIR = Path(__file__).resolve().parent.parent / "Resources" / "Parameters"

# Bumped whenever this module changes how it turns arrays into pyradiomics input (part of settings_hash).
_PIPELINE_VERSION = 1
# The 3D shape class's coefficients (shape3d), part of settings_hash of parameters that use that class.
_SHAPE3D_VERSION = 1
#: 3D shape features that are 0 on a one-slice volume (its smallest principal axis has no extent)
ZERO_ON_ONE_SLICE = ("LeastAxisLength", "Flatness")
# ITU-R BT.601 luma weights (those of Pillow's "L" conversion), for colour images.
_LUMA = np.array([0.299, 0.587, 0.114])

logger = logging.getLogger(__name__)


def _quiet_radiomics() -> None:
    """Keep pyradiomics' per-image INFO chatter and repeated warnings off the console.

    pyradiomics logs a warning per GLCM computation ("GLCM is symmetrical ...") and INFO lines per
    image; errors still raise. A user who wants its log can lower the level again after import.
    """
    rad_logger = logging.getLogger("radiomics")
    if rad_logger.getEffectiveLevel() < logging.ERROR:
        rad_logger.setLevel(logging.ERROR)


_quiet_radiomics()


# ---------------------------------------------------------------------------------------------------
# Parameters


def preset_path(name: str) -> Path:
    """Path of the YAML file of preset ``name`` (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise InputError(f"unknown handcrafted preset {name!r}; presets are {', '.join(PRESETS)}")
    return PARAMETERS_DIR / f"{name}.yaml"


def load_params(preset_or_path: str | PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Load and validate pyradiomics parameters: a preset name, a YAML/JSON file, or a dict.

    Validation uses pyradiomics' own schema, plus the checks this 2D pipeline needs (shape2D needs
    force2D; force2D must use dimension 0, the axis of the single slice). Errors are
    :class:`InputError` naming the file.
    """
    source: str | None = None
    if isinstance(preset_or_path, Mapping):
        params = copy.deepcopy(dict(preset_or_path))
    else:
        if isinstance(preset_or_path, str) and preset_or_path in PRESETS:
            path = preset_path(preset_or_path)
            if not path.is_file():
                raise InputError(
                    f"parameter file of preset {preset_or_path!r} is missing (broken installation?)",
                    path=path,
                )
        else:
            path = Path(preset_or_path)
            if not path.is_file():
                raise InputError(
                    f"pyradiomics parameter file not found (or give a preset: {', '.join(PRESETS)})",
                    path=path,
                )
        source = str(path)
        try:
            params = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise InputError(f"cannot read pyradiomics parameter file: {exc}", path=path) from exc
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise InputError("pyradiomics parameter file must hold a mapping at the top level", path=path)
    _validate_params(params, source)
    return params


def _validate_params(params: dict[str, Any], source: str | None) -> None:
    """Raise InputError if pyradiomics' schema or this 2D pipeline rejects ``params``."""
    import pykwalify.core

    schema_file, schema_funcs = radiomics.getParameterValidationFiles()
    # pykwalify logs every schema error at ERROR level before raising: the InputError says it once.
    loggers = [logging.getLogger(name) for name in ("pykwalify", "pykwalify.core", "pykwalify.rule")]
    was_disabled = [lg.disabled for lg in loggers]
    for lg in loggers:
        lg.disabled = True
    try:
        with _quiet_extension_loading():
            core = pykwalify.core.Core(
                source_data=copy.deepcopy(params), schema_files=[schema_file], extensions=[schema_funcs]
            )
            core.validate(raise_exception=True)
    except Exception as exc:  # pykwalify raises SchemaError, schema functions ValueError/TypeError
        reason = " ".join(str(getattr(exc, "msg", exc)).split())
        raise InputError(f"invalid pyradiomics parameters: {reason}", path=source) from exc
    finally:
        for lg, disabled in zip(loggers, was_disabled, strict=True):
            lg.disabled = disabled

    settings = params.get("setting") or {}
    image_types = params.get("imageType") or {"Original": {}}
    classes = params.get("featureClass") or {}
    for type_name, custom in image_types.items():
        merged = {**settings, **(custom or {})}
        if merged.get("force2D", False) and merged.get("force2Ddimension", 0) != 0:
            raise InputError(
                f"imageType {type_name}: force2Ddimension must be 0 (the single slice of a 2D image)",
                path=source,
            )
    if "shape2D" in classes and not settings.get("force2D", False):
        raise InputError("featureClass shape2D needs setting force2D: true", path=source)
    if params.get("voxelSetting"):
        raise InputError("voxel-based extraction (voxelSetting) is not supported", path=source)


@contextlib.contextmanager
def _quiet_extension_loading() -> Iterator[None]:
    """Hide the DeprecationWarning pykwalify's schema-extension loader raises (``load_module``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*load_module", category=DeprecationWarning)
        yield


def _canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


# ---------------------------------------------------------------------------------------------------
# Array preparation


def to_grey(
    image: Any, *, case: str | None = None, column: str | None = None, copy: bool = True
) -> np.ndarray:
    """A 2D float64 grey-level copy of ``image`` (2D, RGB or RGBA; colour → BT.601 luma).

    RGB images whose three channels are equal (the usual grey ultrasound saved as RGB) keep their
    values; truly coloured images (Doppler, annotations) are converted with a warning. With
    ``copy=False`` a 2D float64 ``image`` is returned as it is (no copy of a large image).
    """
    arr = np.asarray(image)
    if arr.dtype.kind not in "buif":
        raise InputError(f"image has unsupported pixel type {arr.dtype}", case=case, column=column)
    arr = _drop_singleton_axis(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., :3]
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            grey = rgb[..., 0].astype(np.float64, copy=copy)
        else:
            warnings.warn(
                "colour image converted to grey (BT.601 luma); colour overlays alter texture features",
                UserWarning,
                stacklevel=2,
            )
            grey = rgb.astype(np.float64) @ _LUMA
    elif arr.ndim == 2:
        grey = arr.astype(np.float64, copy=copy)
    else:
        raise InputError(
            f"image must be 2D grey or RGB(A), got an array of shape {arr.shape}", case=case, column=column
        )
    if not np.isfinite(grey).all():
        raise InputError("image contains NaN or infinite values", case=case, column=column)
    return grey


def roi_mask(
    mask: Any, shape: tuple[int, ...], *, case: str | None = None, column: str | None = None
) -> np.ndarray:
    """The ROI as a 2D bool array (any non-zero value is inside), checked against image ``shape``."""
    arr = np.asarray(mask)
    if arr.dtype.kind not in "buif":
        raise InputError(f"mask has unsupported pixel type {arr.dtype}", case=case, column=column)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise InputError("mask contains NaN or infinite values", case=case, column=column)
    arr = _drop_singleton_axis(arr)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):  # a mask saved as RGB(A): any colour is inside
        arr = (arr[..., :3] != 0).any(axis=-1)
    if arr.shape != tuple(shape):
        raise InputError(
            f"mask size {arr.shape} differs from image size {tuple(shape)}", case=case, column=column
        )
    roi = arr != 0
    n = int(roi.sum())
    if n == 0:
        raise InputError("mask is empty (no non-zero pixel)", case=case, column=column)
    if n == 1:
        raise InputError("mask has a single pixel; radiomics needs a 2D region", case=case, column=column)
    rows = np.flatnonzero(roi.any(axis=1))
    cols = np.flatnonzero(roi.any(axis=0))
    if rows[-1] == rows[0] or cols[-1] == cols[0]:
        raise InputError(
            f"mask is one pixel thick ({n} pixels on a line); radiomics needs a 2D region",
            case=case,
            column=column,
        )
    return roi


def _spacing(spacing: Any, *, case: str | None, column: str | None) -> tuple[float, float]:
    """(row, col) spacing in mm from a pair or a single number."""
    values = np.atleast_1d(np.asarray(spacing, dtype=float)).ravel()
    if values.size == 1:
        values = np.repeat(values, 2)
    if values.size != 2 or not np.isfinite(values).all() or (values <= 0).any():
        raise InputError(
            f"pixel spacing must be one or two positive numbers (row, col) in mm, got {spacing!r}",
            case=case,
            column=column,
        )
    return float(values[0]), float(values[1])


def _drop_singleton_axis(arr: np.ndarray) -> np.ndarray:
    """(1, H, W) or (H, W, 1) → (H, W); anything else unchanged."""
    if arr.ndim == 3 and arr.shape[0] == 1:
        return arr[0]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        return arr[..., 0]
    return arr


def _to_float(value: Any) -> float:
    return float(np.asarray(value, dtype=np.float64).reshape(()))


# ---------------------------------------------------------------------------------------------------
# Cropping to the ROI

#: image types whose value at a pixel depends only on pixels within a known distance
_LOCAL_IMAGE_TYPES = ("Original", "Wavelet")


def crop_margin(settings: Mapping[str, Any], image_types: Mapping[str, Any]) -> int | None:
    """Pixels around the ROI's box that pyradiomics' filters read, or None if the whole image is needed.

    ``settings``: pyradiomics' effective settings; ``image_types``: enabled image type → custom settings.
    ``Original`` needs none. ``Wavelet`` (pyradiomics' ``_swt3``) applies ``start_level + level``
    stationary-wavelet passes with the undilated filter pair; an output pixel of one pass reads the
    ``dec_len`` input pixels from ``dec_len // 2 - 1`` before it to ``dec_len // 2`` after it (coif1:
    2 before, 3 after), so ``(dec_len - 1)`` per pass bounds the reach on either side. Resampling, and
    every other filter (LoG's recursive Gaussian, gradient, LBP, and square / square root / logarithm /
    exponential, which rescale by the whole image's maximum), give None.
    """
    if settings.get("resampledPixelSpacing") is not None:
        return None
    margin = 0
    for name, custom in image_types.items():
        if name not in _LOCAL_IMAGE_TYPES:
            return None
        if name == "Wavelet":
            merged = {**settings, **(custom or {})}
            wavelet = merged.get("wavelet", "coif1")
            if not isinstance(wavelet, pywt.Wavelet):
                wavelet = pywt.Wavelet(wavelet)
            passes = int(merged.get("start_level", 0)) + int(merged.get("level", 1))
            margin = max(margin, (wavelet.dec_len - 1) * passes)
    return margin


def _crop_box(roi: np.ndarray, margin: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the ROI's box grown by ``margin``; an axis where that leaves the image is
    kept whole (the periodic wavelet would read the opposite border there)."""
    box = []
    for axis in (0, 1):
        inside = np.flatnonzero(roi.any(axis=1 - axis))
        size = roi.shape[axis]
        start, stop = int(inside[0]) - margin, int(inside[-1]) + 1 + margin
        box.append(slice(start, stop) if start >= 0 and stop <= size else slice(0, size))
    return box[0], box[1]


def _whole_image_statistics(grey: np.ndarray) -> tuple[float, float]:
    """Mean and SD of the whole image by ITK's StatisticsImageFilter, the filter inside pyradiomics'
    ``normalizeImage`` (``sitk.Normalize``), on the same one-slice volume: the same numbers."""
    stats = sitk.StatisticsImageFilter()
    stats.Execute(sitk.GetImageFromArray(grey[np.newaxis]))
    return stats.GetMean(), stats.GetSigma()


def _standardise(image: sitk.Image, mean: float, sigma: float, settings: Mapping[str, Any]) -> sitk.Image:
    """pyradiomics' ``normalizeImage`` with given whole-image statistics: ``sitk.Normalize`` is ITK's
    shift-scale ``(x - mean) * (1 / sigma)``, then outliers are clipped and ``normalizeScale`` applied."""
    image = sitk.ShiftScale(image, -mean, 1.0 / sigma)
    outliers = settings.get("removeOutliers")
    if outliers is not None:
        array = sitk.GetArrayFromImage(image)
        array[array > outliers] = outliers
        array[array < -outliers] = -outliers
        clipped = sitk.GetImageFromArray(array)
        clipped.CopyInformation(image)
        image = clipped
    image *= settings.get("normalizeScale", 1)
    return image


# ---------------------------------------------------------------------------------------------------
# Extraction

_WAVELET_NAME = re.compile(r"^wavelet\d*-([LH]+)$")


def _z_position(params: Mapping[str, Any]) -> int | None:
    """Position of the z axis in pyradiomics' wavelet image names (``wavelet-LLH``: the last letter for a
    3D wavelet), or None when the wavelet does not filter along z (force2D on axis 0) or is not used."""
    image_types = params.get("imageType") or {}
    if "Wavelet" not in image_types:
        return None
    merged = {**(params.get("setting") or {}), **(image_types["Wavelet"] or {})}
    axes = [2, 1, 0]  # pyradiomics' wavelet axes (x, y, z) for a 3D volume
    if merged.get("force2D", False):
        axes.remove(merged.get("force2Ddimension", 0))
    return axes.index(0) if 0 in axes else None


def _is_z_high_pass(image_type: str, z_position: int | None) -> bool:
    match = _WAVELET_NAME.match(image_type)
    return z_position is not None and match is not None and match.group(1)[z_position] == "H"


class _Extractor(featureextractor.RadiomicsFeatureExtractor):
    """pyradiomics' extractor with two shortcuts that leave every value it returns as pyradiomics gives it.

    - ``skip_z_position``: wavelet images high-pass along z (whose name has an ``H`` at that position) are
      filtered as before but their features are not computed (they are rounding noise on one slice).
    - The 3D ``shape`` class is :class:`~ALNMPredictorLib.shape3d.OneSliceShape`: pyradiomics' class with
      the one-slice coefficients of :mod:`ALNMPredictorLib.shape3d`.
    """

    skip_z_position: int | None = None

    def computeFeatures(self, image: Any, mask: Any, imageTypeName: str, **kwargs: Any) -> Any:  # noqa: N802, N803
        if _is_z_high_pass(imageTypeName, self.skip_z_position):
            return collections.OrderedDict()
        return super().computeFeatures(image, mask, imageTypeName, **kwargs)

    def computeShape(self, image: Any, mask: Any, boundingBox: Any, **kwargs: Any) -> Any:  # noqa: N802, N803
        enabled = self.enabledFeatures
        if "shape" not in enabled or mask.GetDimension() != 3:
            return super().computeShape(image, mask, boundingBox, **kwargs)
        features: collections.OrderedDict[str, Any] = collections.OrderedDict()
        cropped_image, cropped_mask = imageoperations.cropToTumorMask(image, mask, boundingBox)
        shape = OneSliceShape(cropped_image, cropped_mask, **kwargs)
        for name in enabled["shape"] or ():
            shape.enableFeatureByName(name)
        for name, value in shape.execute().items():
            features[f"original_shape_{name}"] = value
        if len(enabled) > 1:  # shape2D too: pyradiomics' own code, without the 3D class
            self.enabledFeatures = {k: v for k, v in enabled.items() if k != "shape"}
            try:
                features.update(super().computeShape(image, mask, boundingBox, **kwargs))
            finally:
                self.enabledFeatures = enabled
        return features


class HandcraftedExtractor:
    """pyradiomics feature extraction for 2D ROIs with a fixed parameter set.

    ``params`` is a preset name (:data:`PRESETS`), a pyradiomics YAML/JSON file, or a parameter dict.
    ``normalize`` adds pyradiomics' whole-image standardisation (``normalize: true``,
    ``normalizeScale: 32``, so one SD of the image is 32 grey levels and ``binWidth`` keeps its
    8-bit meaning) unless the parameters already set ``normalize``. ``full_table`` also computes the
    features that are rounding noise on a single slice (the ``paper`` preset's 372 z-high-pass wavelet
    features, for the study's whole 851-column table); without it they are left out and listed by
    :meth:`not_computed_features`. The pyradiomics extractor is built once here and reused for every ROI.
    """

    def __init__(
        self,
        params: str | PathLike[str] | Mapping[str, Any] = DEFAULT_PRESET,
        *,
        normalize: bool = False,
        full_table: bool = False,
    ) -> None:
        self.preset: str | None = params if isinstance(params, str) and params in PRESETS else None
        self.params: dict[str, Any] = load_params(params)
        self.full_table = bool(full_table)
        setting = dict(self.params.get("setting") or {})
        if normalize and "normalize" not in setting:
            setting.update(normalize=True, normalizeScale=NORMALIZE_SCALE)
            self.params["setting"] = setting
        with _quiet_extension_loading():
            self._extractor = _Extractor(copy.deepcopy(self.params))
        # Diagnostics are dropped anyway: do not spend time computing them.
        self._extractor.settings["additionalInfo"] = False
        self._z_position = _z_position(self.params)
        if not self.full_table:
            self._extractor.skip_z_position = self._z_position
        # Each ROI is cropped with this margin before pyradiomics (None: the whole image is needed).
        self._crop_margin: int | None = crop_margin(
            self._extractor.settings, self._extractor.enabledImagetypes
        )
        # Crops get their whole-image standardisation here, so this extractor does not standardise again.
        self._normalize = bool(self._extractor.settings.get("normalize", False))
        self._crop_extractor = self._extractor
        if self._normalize:
            self._crop_extractor = copy.deepcopy(self._extractor)
            self._crop_extractor.settings["normalize"] = False
        self._label = int((self.params.get("setting") or {}).get("label", 1))
        self._names: list[str] | None = None
        self._all_names: list[str] | None = None
        self._warned_spacing = False
        self._noted_degenerate = False

    @property
    def settings_hash(self) -> str:
        """sha256 of the canonical parameters, the pyradiomics version and this module's input pipeline
        (with the 3D shape code's version and the features left out, where these apply)."""
        payload: dict[str, Any] = {
            "params": self.params,
            "pyradiomics": radiomics.__version__,
            "pipeline": _PIPELINE_VERSION,
        }
        if "shape" in (self.params.get("featureClass") or {}):
            payload["shape3d"] = _SHAPE3D_VERSION
        if self.not_computed_image_types():
            payload["not_computed"] = self.not_computed_image_types()
        return hashlib.sha256(_canonical_json(payload).encode("utf-8")).hexdigest()

    def extract(
        self,
        image: np.ndarray,
        mask: np.ndarray,
        spacing: tuple[float, float] | float | None,
        *,
        prefix: str = "",
        case: str | None = None,
        column: str | None = None,
    ) -> dict[str, float]:
        """Features of one ROI: ordered ``{prefix + pyradiomics name: value}``, without diagnostics.

        ``image``: 2D grey or RGB(A) array (cast to float64). ``mask``: same size, non-zero = ROI.
        ``spacing``: (row, col) pixel size in mm; None means 1.0 mm (warned once). ``case`` and
        ``column`` only locate error messages (:class:`InputError`).
        """
        if spacing is None:
            if not self._warned_spacing:
                logger.warning(
                    "no pixel spacing given: using 1.0 mm; shape and texture features then depend on "
                    "the image resolution (set <region>_spacing in the manifest)"
                )
                self._warned_spacing = True
            spacing = (1.0, 1.0)
        features = self._extract(image, mask, spacing, case=case, column=column)
        if not self._noted_degenerate:
            self._noted_degenerate = True
            note = self.degenerate_reason()
            if note:
                logger.warning(note)
        return {prefix + name: value for name, value in features.items()}

    def _extract(
        self, image: Any, mask: Any, spacing: Any, *, case: str | None, column: str | None, full: bool = False
    ) -> dict[str, float]:
        grey = to_grey(image, case=case, column=column, copy=False)  # never modified: no copy needed
        roi = roi_mask(mask, grey.shape, case=case, column=column)
        row, col = _spacing(spacing, case=case, column=column)
        extractor = self._extractor
        origin = (0.0, 0.0, 0.0)
        statistics = None
        if self._crop_margin is not None:
            rows, cols = _crop_box(roi, self._crop_margin)
            if (rows.stop - rows.start, cols.stop - cols.start) != grey.shape:
                if self._normalize:
                    statistics = _whole_image_statistics(grey)
                extractor = self._crop_extractor
                grey, roi = grey[rows, cols], roi[rows, cols]
                origin = (cols.start * col, rows.start * row, 0.0)
        if full and extractor.skip_z_position is not None:
            extractor = copy.copy(extractor)  # shallow: the same settings, every feature computed
            extractor.skip_z_position = None

        sitk_image = sitk.GetImageFromArray(grey[np.newaxis])
        label_type = np.uint8 if self._label <= 255 else np.uint32
        sitk_mask = sitk.GetImageFromArray(roi[np.newaxis].astype(label_type) * label_type(self._label))
        for volume in (sitk_image, sitk_mask):
            volume.SetSpacing((col, row, 1.0))
            volume.SetOrigin(origin)
        if statistics is not None:
            sitk_image = _standardise(sitk_image, *statistics, self._extractor.settings)
        try:
            result = extractor.execute(sitk_image, sitk_mask)
        except (ValueError, RuntimeError) as exc:  # pyradiomics' ROI checks, SimpleITK errors
            raise InputError(f"pyradiomics failed on this ROI: {exc}", case=case, column=column) from exc
        return {
            name: _to_float(value) for name, value in result.items() if not name.startswith("diagnostics_")
        }

    def all_feature_names(self, prefix: str = "") -> list[str]:
        """Names of every feature of the parameter set, those not computed included (the full table), in
        pyradiomics' order (from one synthetic ROI, computed once)."""
        if self._all_names is None:
            rng = np.random.default_rng(0)
            rows, cols = np.mgrid[:48, :56]
            image = rng.uniform(0.0, 255.0, size=rows.shape)
            mask = ((rows - 24) / 15.0) ** 2 + ((cols - 28) / 19.0) ** 2 <= 1.0
            self._all_names = list(self._extract(image, mask, (1.0, 1.0), case=None, column=None, full=True))
        return [prefix + name for name in self._all_names]

    def feature_names(self, prefix: str = "") -> list[str]:
        """Names of the features this extractor gives, in output order."""
        if self._names is None:
            skip = set(self.not_computed_image_types())
            self._names = [n for n in self.all_feature_names() if n.split("_", 1)[0] not in skip]
        return [prefix + name for name in self._names]

    def noise_image_types(self) -> list[str]:
        """Filtered images of this parameter set that carry only numerical noise on a single slice.

        With force2D off, pyradiomics' wavelet also filters along z. A 2D image is a one-slice
        volume, padded to two identical slices, so every decomposition that is high-pass along z
        (an ``H`` in the z position of the name: ``wavelet-LLH``, ``-LHH``, ``-HLH``, ``-HHH`` for
        one level) is about ±1e-13: its first-order and texture features encode rounding error.
        Low-pass along z (``...L``) is the 2D decomposition scaled by √2 and is sound.
        """
        found: list[str] = []
        for name in self.all_feature_names():
            image_type = name.split("_", 1)[0]
            if _is_z_high_pass(image_type, self._z_position) and image_type not in found:
                found.append(image_type)
        return found

    def noise_features(self, prefix: str = "") -> list[str]:
        """Features of :meth:`noise_image_types` (``paper``: 4 x 93 = 372), computed or not."""
        bad = set(self.noise_image_types())
        return [prefix + name for name in self.all_feature_names() if name.split("_", 1)[0] in bad]

    def not_computed_image_types(self) -> list[str]:
        """The noise images whose features this extractor leaves out (none with ``full_table``)."""
        return [] if self.full_table else self.noise_image_types()

    def not_computed_features(self, prefix: str = "") -> list[str]:
        """Features of the parameter set left out of the table (``paper``: the 372 noise features)."""
        return [] if self.full_table else self.noise_features(prefix)

    def zero_shape_features(self, prefix: str = "") -> list[str]:
        """3D shape features that are 0 on a one-slice volume (:data:`ZERO_ON_ONE_SLICE`) and computed."""
        names = [f"original_shape_{name}" for name in ZERO_ON_ONE_SLICE]
        return [prefix + name for name in self.feature_names() if name in names]

    def degenerate_image_types(self) -> list[str]:
        """The noise images whose features are in the table (flagged): :meth:`noise_image_types` with
        ``full_table``, else none."""
        return self.noise_image_types() if self.full_table else []

    def degenerate_features(self, prefix: str = "") -> list[str]:
        """Features in the table that selection must drop: the 3D shape features that are 0 on one slice
        (``paper``: 2), and with ``full_table`` the noise features too (``paper``: 372 + 2 = 374).
        The ``us2d`` preset (shape2D, in-plane wavelets only) has none."""
        zero = set(self.zero_shape_features())
        noise = set(self.degenerate_image_types())
        return [prefix + n for n in self.feature_names() if n in zero or n.split("_", 1)[0] in noise]

    def degenerate_reason(self) -> str | None:
        """A one-paragraph note for logs and reports, or None when no feature is flagged or left out."""
        parts = []
        zero = self.zero_shape_features()
        noise = self.noise_image_types()
        if noise and not self.full_table:
            parts.append(
                f"{len(self.noise_features())} handcrafted features of the z-high-pass wavelet images "
                f"({', '.join(noise)}) are not computed: they are rounding noise on a single 2D slice (force2D off, "
                "as in the reference study); full_table / --full-table computes them for the study's whole table"
            )
        elif noise:
            parts.append(
                f"{len(self.noise_features())} handcrafted features of the z-high-pass wavelet images "
                f"({', '.join(noise)}) are rounding noise on a single 2D slice (force2D off, as in the reference "
                "study); they are kept in the feature table but flagged as degenerate and dropped by feature selection"
            )
        if zero:
            parts.append(
                f"{len(zero)} 3D shape features ({', '.join(n.split('_')[-1] for n in zero)}) are 0 on a one-slice "
                "volume and are flagged as degenerate"
            )
        if not parts:
            return None
        return "; ".join(parts) + ". Use the 'us2d' preset for sound 2D features."


_PRESET_EXTRACTORS: dict[str, HandcraftedExtractor] = {}


def extract_handcrafted(
    image: np.ndarray,
    mask: np.ndarray,
    spacing: tuple[float, float] | float | None,
    params: str | PathLike[str] | Mapping[str, Any] = DEFAULT_PRESET,
    prefix: str = "",
) -> dict[str, float]:
    """One-call :meth:`HandcraftedExtractor.extract` (preset extractors are built once and reused)."""
    if isinstance(params, str) and params in PRESETS:
        extractor = _PRESET_EXTRACTORS.get(params)
        if extractor is None:
            extractor = _PRESET_EXTRACTORS[params] = HandcraftedExtractor(params)
    else:
        extractor = HandcraftedExtractor(params)
    return extractor.extract(image, mask, spacing, prefix=prefix)
