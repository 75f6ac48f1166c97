"""Reading 2D ultrasound images and ROI masks from PNG, JPEG, BMP, TIFF, NRRD, NIfTI, MetaImage and DICOM.

Images come back as 2D float64 arrays (rows x cols) with their pixel spacing in mm (row, col) when the
file records one. Conventions:

* Colour (RGB/RGBA, palette, YBR or PALETTE COLOR DICOM) is reduced to luminance with the ITU-R BT.601 weights
  ``0.299 R + 0.587 G + 0.114 B``; alpha is ignored. A colour file whose channels are all equal (a grey
  image saved as RGB, common in ultrasound exports) gives that channel exactly.
* Integer data keep their values: 8-bit stays 0-255, 16-bit stays 0-65535 (no rescaling). DICOM
  RescaleSlope/Intercept are applied when present; MONOCHROME1 is inverted to MONOCHROME2.
* Spacing: NRRD/NIfTI/MetaImage from the header; DICOM from PixelSpacing (or the enhanced
  multi-frame PixelMeasuresSequence), else the ultrasound calibration SequenceOfUltrasoundRegions
  (PhysicalDeltaY/X in cm, converted to mm), else ImagerPixelSpacing; PNG/JPEG/BMP/TIFF have none
  (their DPI is screen resolution, not anatomy). An explicit ``spacing`` argument overrides the file.
* Frames: multi-frame DICOM (cine) uses the first frame unless ``frame`` is given; a NRRD/NIfTI volume or
  multi-page TIFF with more than one slice needs ``frame``.
* Masks: any non-zero pixel by default (any colour channel for colour masks; JPEG masks, being lossy,
  are thresholded at half the range), or exactly the pixels equal to ``label`` (the foreground of a
  1-bit mask matches label 1 or 255). ``mask_labels`` lists the non-zero labels present.
* Size: an image (one frame) of more than :data:`MAX_IMAGE_PIXELS` pixels is refused with an InputError
  naming the file, from its header, before its pixels are decoded (Pillow's decompression-bomb error
  included); above :data:`WARN_IMAGE_PIXELS` a warning is logged once per file.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ALNMPredictorLib.errors import InputError

__all__ = [
    "GREY_CONVERSIONS",
    "ImageData",
    "ImageInfo",
    "MAX_IMAGE_PIXELS",
    "SUPPORTED_FORMATS",
    "WARN_IMAGE_PIXELS",
    "detect_format",
    "image_info",
    "inspect_mask",
    "load_image",
    "load_mask",
    "mask_labels",
    "parse_spacing",
    "to_grey",
]

logger = logging.getLogger(__name__)

#: ITU-R BT.601 luma weights used for colour -> grey.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: grey levels per whole-image SD when intensities are standardised (pyradiomics ``normalizeScale``, deep
#: crops' ``intensity="zscore"``): about the SD of a B-mode image in 8-bit grey levels (30-34 measured on
#: BUS-BRA and the synthetic cohort), so binWidth and crop contrast keep their 8-bit meaning
NORMALIZE_SCALE = 32

#: pixels per image (one frame) above which a file is refused (InputError naming it) before its pixels are
#: decoded: 100 Mpixel, e.g. 10,000 x 10,000, a hundred times a large ultrasound frame. Extraction holds about
#: 17 bytes per image pixel for an ROI's handcrafted features and 26 for its deep-input crop (the float64
#: image, the whole-image statistics of intensity standardisation, masks; measured with
#: benchmarks/bench_big_image.py), i.e. up to about 2.6 GB per worker process at this limit, whatever the
#: ROI size. It lies between Pillow's own decompression-bomb warning (89.5 Mpixel) and error (179 Mpixel),
#: so every format has the same limit, and Pillow's error becomes an InputError too.
MAX_IMAGE_PIXELS = 100_000_000
#: pixels per image above which a warning is logged (once per file): 25 Mpixel, e.g. 5,000 x 5,000, about
#: 0.65 GB per worker process; ultrasound frames are usually 0.3-2 Mpixel, so this is most likely a scan or
#: a stitched export
WARN_IMAGE_PIXELS = 25_000_000
#: bytes of memory per image pixel while an ROI of it is extracted (the larger, deep-crop figure above)
_BYTES_PER_PIXEL = 26
_WARNED_LARGE: set[str] = set()

#: format name -> file name endings (lower case)
SUPPORTED_FORMATS: dict[str, tuple[str, ...]] = {
    "png": (".png",),
    "jpeg": (".jpg", ".jpeg", ".jpe"),
    "bmp": (".bmp",),
    "tiff": (".tif", ".tiff"),
    "nrrd": (".nrrd", ".nhdr"),
    "nifti": (".nii", ".nii.gz"),
    "metaimage": (".mha", ".mhd"),
    "dicom": (".dcm", ".dicom", ".ima"),
}

_PIL_FORMATS = {"png", "jpeg", "bmp", "tiff"}
_SITK_FORMATS = {"nrrd", "nifti", "metaimage"}

# DICOM PhysicalUnits{X,Y}Direction code for centimetres (PS3.3 C.8.5.5.1.15)
_US_UNITS_CM = 3


@dataclass(frozen=True, eq=False)
class ImageData:
    """A 2D image: ``array`` float64 (rows x cols), ``spacing`` (row, col) in mm or None."""

    array: np.ndarray
    spacing: tuple[float, float] | None
    path: str
    source_format: str
    original_dtype: str
    converted_from_rgb: bool

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols)."""
        return (int(self.array.shape[0]), int(self.array.shape[1]))


@dataclass(frozen=True)
class ImageInfo:
    """What a file header says, read without decoding pixels where the format allows."""

    path: str
    source_format: str
    shape: tuple[int, int]
    n_frames: int
    channels: int
    dtype: str
    spacing: tuple[float, float] | None


# --------------------------------------------------------------------------- spacing

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_SPACING_TEXT = re.compile(rf"\s*({_NUMBER})\s*(?:(?:[,;xX×]|\s)\s*({_NUMBER})\s*)?")


def parse_spacing(value: Any) -> tuple[float, float] | None:
    """Parse a spacing cell: ``0.08`` / ``"0.08"`` (isotropic), ``"0.08,0.1"`` or ``"0.08x0.1"`` (row, col).

    Empty, None and NaN give None. Text that is not one or two positive numbers raises ValueError naming it.
    """
    if value is None:
        return None
    if isinstance(value, (tuple, list, np.ndarray)):
        values = [float(v) for v in value]
        if len(values) not in (1, 2):
            raise ValueError(f"spacing must have 1 or 2 values, got {value!r}")
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        if math.isnan(float(value)):
            return None
        values = [float(value)]
    elif isinstance(value, str):
        text = value.strip()
        if text == "" or text.lower() in {"nan", "na", "n/a", "none", "null"}:
            return None
        match = _SPACING_TEXT.fullmatch(text.strip("()[] "))
        if match is None:
            raise ValueError(
                f"spacing must be one or two numbers in mm (e.g. 0.08 or 0.08,0.1), got {value!r}"
            )
        values = [float(v) for v in match.groups() if v is not None]
    else:
        raise ValueError(f"spacing must be a number or text, got {value!r}")
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"spacing must be positive and finite, got {value!r}")
    if len(values) == 1:
        return (values[0], values[0])
    return (values[0], values[1])


# --------------------------------------------------------------------------- format detection


def detect_format(path: str | os.PathLike[str]) -> str:
    """Return the format name of ``path`` from its ending, else from its first bytes; InputError if unknown."""
    name = os.fspath(path).lower()
    for fmt, endings in SUPPORTED_FORMATS.items():
        if name.endswith(endings):
            return fmt
    try:
        with open(path, "rb") as handle:
            head = handle.read(132)
    except OSError as exc:
        raise InputError(f"cannot read file: {exc.strerror or exc}", path=path) from None
    if head[128:132] == b"DICM":
        return "dicom"
    if head.startswith(b"\x89PNG"):
        return "png"
    if head.startswith(b"\xff\xd8"):
        return "jpeg"
    if head.startswith(b"BM"):
        return "bmp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if len(head) >= 348 and head[344:348] in (b"n+1\x00", b"ni1\x00"):
        return "nifti"
    supported = ", ".join(sorted(SUPPORTED_FORMATS))
    raise InputError(f"unsupported image format (supported: {supported})", path=path)


def _check_exists(path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError("file not found", path=path)
    if os.path.isdir(path):
        raise InputError("is a folder, not an image file", path=path)
    return path


# --------------------------------------------------------------------------- size limits


def _check_size(rows: int, cols: int, path: str) -> None:
    """InputError above :data:`MAX_IMAGE_PIXELS`; a warning (once per file) above :data:`WARN_IMAGE_PIXELS`."""
    pixels = int(rows) * int(cols)
    if pixels > MAX_IMAGE_PIXELS:
        raise InputError(
            f"image too large: {rows} x {cols} pixels (rows x cols, {pixels / 1e6:.3g} Mpixel); ALNM Predictor "
            f"reads at most {MAX_IMAGE_PIXELS / 1e6:g} Mpixel per image (about {_BYTES_PER_PIXEL} bytes of "
            "memory per pixel): crop or downsample it",
            path=path,
        )
    if pixels > WARN_IMAGE_PIXELS and path not in _WARNED_LARGE:
        _WARNED_LARGE.add(path)
        logger.warning(
            "%s: large image, %d x %d pixels (rows x cols, %.3g Mpixel, warning above %g): reading it and "
            "extracting an ROI's features take about %.2g GB of memory per worker process",
            path,
            rows,
            cols,
            pixels / 1e6,
            WARN_IMAGE_PIXELS / 1e6,
            pixels * _BYTES_PER_PIXEL / 1e9,
        )


@contextlib.contextmanager
def _open_pil(path: str) -> Iterator[Any]:
    """``PIL.Image.open`` with its decompression-bomb error as an InputError naming the file, and the size
    limits of this module checked from the header. (Pillow's own bomb warning, above 89.5 Mpixel, is left
    alone: silencing it is not thread-safe, and validation reads files in threads.)"""
    from PIL import Image

    try:
        img = Image.open(path)
        with img:
            cols, rows = img.size
            _check_size(rows, cols, path)
            yield img
    except Image.DecompressionBombError as exc:
        raise InputError(
            f"image too large: {exc} ALNM Predictor reads at most {MAX_IMAGE_PIXELS / 1e6:g} Mpixel per image",
            path=path,
        ) from None


# --------------------------------------------------------------------------- raw readers
#
# Each reader returns (stack, spacing, dtype) with stack shaped (frames, rows, cols, channels) and
# channels = 1 for grey; or raises InputError.


@dataclass
class _Raw:
    stack: np.ndarray  # (frames, rows, cols, channels), original dtype (after DICOM rescale: float)
    spacing: tuple[float, float] | None
    fmt: str
    dtype: str


def _read_pil(path: str, fmt: str) -> _Raw:
    from PIL import UnidentifiedImageError

    try:
        with _open_pil(path) as img:
            n_frames = int(getattr(img, "n_frames", 1))
            frames = []
            for index in range(n_frames):
                if n_frames > 1:
                    img.seek(index)
                frames.append(_pil_to_array(img, path))
    except UnidentifiedImageError:
        raise InputError(f"not a readable {fmt.upper()} image", path=path) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"cannot read {fmt.upper()} image: {exc}", path=path) from None
    if len({a.shape for a in frames}) > 1:
        raise InputError("multi-page image whose pages differ in size", path=path)
    stack = np.stack(frames)
    if fmt == "png" and stack.dtype == np.int32:
        # Pillow < 10.1 opens 16-bit grey PNGs as 32-bit "I"; a PNG sample has at most 16 bits
        stack = stack.astype(np.uint16)
    return _Raw(stack, None, fmt, str(stack.dtype))


def _pil_to_array(img: Any, path: str) -> np.ndarray:
    """(rows, cols, channels) array of one PIL frame; colour reduced to 3 channels, alpha dropped."""
    mode = img.mode
    if mode in ("P", "PA"):
        img = img.convert("RGBA" if "transparency" in img.info or mode == "PA" else "RGB")
        mode = img.mode
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        img = img.convert("RGB")
        mode = "RGB"
    elif mode == "I;16" or mode.startswith("I;16"):
        arr = np.asarray(img)
        return arr.astype(arr.dtype.newbyteorder("=")).reshape(arr.shape[0], arr.shape[1], 1)
    arr = np.asarray(img)
    if arr.ndim == 2:
        return arr[:, :, None]
    if mode in ("LA", "La"):
        return arr[:, :, :1]
    if arr.shape[2] >= 3:
        return arr[:, :, :3]
    raise InputError(f"unsupported PIL image mode {mode}", path=path)


def _read_sitk(path: str, fmt: str) -> _Raw:
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(path)
    try:
        reader.ReadImageInformation()
        size = reader.GetSize()
        _check_size(size[1] if len(size) > 1 else 1, size[0], path)
        image = reader.Execute()
    except RuntimeError as exc:
        raise InputError(f"cannot read {fmt.upper()} image: {_first_line(exc)}", path=path) from None
    dim = image.GetDimension()
    components = image.GetNumberOfComponentsPerPixel()
    spacing_xyz = image.GetSpacing()
    arr = sitk.GetArrayFromImage(image)  # (z, y, x[, c]) or (y, x[, c])
    if components == 1:
        arr = arr[..., None]
    if dim == 2:
        arr = arr[None]
    elif dim == 3:
        pass
    elif dim == 4 and arr.shape[0] == 1:
        arr = arr[0]
    else:
        raise InputError(f"{dim}D image; a 2D image (or a 3D volume with a frame) is needed", path=path)
    spacing = (float(spacing_xyz[1]), float(spacing_xyz[0]))
    if components not in (1, 3, 4):
        raise InputError(f"{components} values per pixel; a grey or RGB(A) image is needed", path=path)
    if components == 4:
        arr = arr[..., :3]
    return _Raw(arr, spacing, fmt, str(arr.dtype))


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("/", "itk::", "Description"))]
    return (useful or lines or [type(exc).__name__])[-1][:300]


def _dicom_spacing(ds: Any) -> tuple[float, float] | None:
    """Pixel spacing (row, col) in mm from a DICOM header, or None."""

    def pair(value: Any) -> tuple[float, float] | None:
        try:
            row, col = float(value[0]), float(value[1])
        except (TypeError, ValueError, IndexError):
            return None
        if row > 0 and col > 0 and math.isfinite(row) and math.isfinite(col):
            return (row, col)
        return None

    if "PixelSpacing" in ds and (sp := pair(ds.PixelSpacing)):
        return sp
    for group in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        try:
            sp = pair(ds[group][0].PixelMeasuresSequence[0].PixelSpacing)
        except (KeyError, AttributeError, IndexError, TypeError):
            sp = None
        if sp:
            return sp
    if "SequenceOfUltrasoundRegions" in ds and (
        sp := _ultrasound_region_spacing(ds.SequenceOfUltrasoundRegions)
    ):
        return sp
    if "ImagerPixelSpacing" in ds and (sp := pair(ds.ImagerPixelSpacing)):
        return sp
    return None


def _ultrasound_region_spacing(regions: Any) -> tuple[float, float] | None:
    """Spacing in mm from the calibrated ultrasound regions measured in cm; the largest 2D region wins."""
    best: tuple[float, tuple[float, float]] | None = None
    for region in regions:
        try:
            units_x = int(region.PhysicalUnitsXDirection)
            units_y = int(region.PhysicalUnitsYDirection)
            dx = abs(float(region.PhysicalDeltaX))
            dy = abs(float(region.PhysicalDeltaY))
        except (AttributeError, TypeError, ValueError):
            continue
        if units_x != _US_UNITS_CM or units_y != _US_UNITS_CM or not (dx > 0 and dy > 0):
            continue
        spatial = int(getattr(region, "RegionSpatialFormat", 1) or 1)
        if spatial not in (1,):  # 1 = 2D tissue/flow image; others are M-mode, spectral, waveform
            continue
        try:
            area = float(
                (int(region.RegionLocationMaxX1) - int(region.RegionLocationMinX0) + 1)
                * (int(region.RegionLocationMaxY1) - int(region.RegionLocationMinY0) + 1)
            )
        except (AttributeError, TypeError, ValueError):
            area = 0.0
        candidate = (area, (dy * 10.0, dx * 10.0))
        if best is None or candidate[0] > best[0]:
            best = candidate
    return None if best is None else best[1]


def _check_dicom_size(ds: Any, path: str) -> None:
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except (AttributeError, TypeError, ValueError):
        return  # the decoder reports a header without a size
    _check_size(rows, cols, path)


def _read_dicom(path: str, frame: int | None) -> _Raw:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"not a readable DICOM file: {exc}", path=path) from None
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        raise InputError("DICOM file has no pixel data", path=path)
    _check_dicom_size(ds, path)
    n_frames = int(getattr(ds, "NumberOfFrames", 1) or 1)
    if frame is not None and not 0 <= frame < n_frames:
        raise InputError(f"frame {frame} requested but the file has {n_frames} frame(s)", path=path)
    index = 0 if frame is None else frame
    try:
        try:
            from pydicom.pixels import pixel_array

            arr = pixel_array(ds, index=index) if n_frames > 1 else ds.pixel_array
        except ImportError:  # pydicom < 3
            arr = ds.pixel_array
            if n_frames > 1:
                arr = arr[index]
    except Exception as exc:  # decoders raise many types (RuntimeError, NotImplementedError, ...)
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        name = getattr(syntax, "name", syntax)
        raise InputError(
            f"cannot decode DICOM pixel data (transfer syntax {name}): {exc}; "
            "compressed DICOM may need pylibjpeg or python-gdcm installed",
            path=path,
        ) from None
    samples = int(getattr(ds, "SamplesPerPixel", 1) or 1)
    dtype = str(arr.dtype)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2")).upper()
    if photometric == "PALETTE COLOR" and samples == 1:
        try:
            from pydicom.pixels import apply_color_lut
        except ImportError:  # pydicom < 3
            from pydicom.pixel_data_handlers.util import apply_color_lut
        try:
            arr = apply_color_lut(arr, ds)
        except (ValueError, AttributeError, KeyError) as exc:
            raise InputError(f"cannot apply the DICOM palette: {exc}", path=path) from None
        samples = arr.shape[-1]
    if samples == 1:
        arr = arr[:, :, None]
    if samples == 1:
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
        if photometric == "MONOCHROME1":
            bits = int(getattr(ds, "BitsStored", arr.dtype.itemsize * 8))
            if int(getattr(ds, "PixelRepresentation", 0)) == 0:
                arr = (2**bits - 1) - arr.astype(np.int64)
            else:
                arr = -arr.astype(np.int64) - 1
        if slope != 1 or intercept != 0:
            arr = arr.astype(np.float64) * slope + intercept
    elif samples == 4:
        arr = arr[:, :, :3]
    return _Raw(arr[None], _dicom_spacing(ds), "dicom", dtype)


def _read_raw(path: str | os.PathLike[str], frame: int | None = None) -> _Raw:
    path = _check_exists(path)
    fmt = detect_format(path)
    if fmt == "dicom":
        return _read_dicom(path, frame)
    if fmt in _PIL_FORMATS:
        return _read_pil(path, fmt)
    return _read_sitk(path, fmt)


def _select_frame(raw: _Raw, frame: int | None, path: str) -> np.ndarray:
    """(rows, cols, channels) of the chosen frame."""
    n_frames = raw.stack.shape[0]
    if raw.fmt == "dicom":  # the reader already picked the frame
        return raw.stack[0]
    if frame is None:
        if n_frames == 1:
            return raw.stack[0]
        raise InputError(
            f"{n_frames} slices/frames in this file; choose one with frame= (0 to {n_frames - 1})", path=path
        )
    if not 0 <= frame < n_frames:
        raise InputError(f"frame {frame} requested but the file has {n_frames} frame(s)", path=path)
    return raw.stack[frame]


# --------------------------------------------------------------------------- public API


#: how :func:`to_grey` made one grey channel from colour pixels (None: the image was grey)
GREY_CONVERSIONS = {
    "identical": "colour image with identical R, G and B channels: the first channel is used",
    "luma": "colour image converted to grey with ITU-R BT.601 luma weights (0.299 R + 0.587 G + 0.114 B)",
}


def to_grey(pixels: np.ndarray) -> tuple[np.ndarray, str | None]:
    """float64 (rows, cols) from (rows, cols, channels), and how colour was collapsed (a GREY_CONVERSIONS key).

    Alpha (a 4th channel) is ignored. An RGB image whose channels are equal (grey stored as colour, common
    for ultrasound screenshots and DICOM secondary captures) keeps its exact grey levels.
    """
    if pixels.shape[2] == 1:
        return pixels[:, :, 0].astype(np.float64), None
    channels = pixels[:, :, :3]
    first = channels[:, :, 0]
    if np.array_equal(first, channels[:, :, 1]) and np.array_equal(first, channels[:, :, 2]):
        return first.astype(np.float64), "identical"
    rgb = channels.astype(np.float64)
    grey = LUMA_WEIGHTS[0] * rgb[:, :, 0] + LUMA_WEIGHTS[1] * rgb[:, :, 1] + LUMA_WEIGHTS[2] * rgb[:, :, 2]
    return grey, "luma"


def load_image(
    path: str | os.PathLike[str],
    *,
    frame: int | None = None,
    spacing: tuple[float, float] | None = None,
) -> ImageData:
    """Load a 2D image as float64 with its spacing; ``spacing`` (row, col mm) overrides the file's.

    Raises InputError naming the path for a missing/unreadable file, an unsupported format, or a
    multi-slice volume without ``frame``.
    """
    raw = _read_raw(path, frame)
    path_str = os.fspath(path)
    pixels = _select_frame(raw, frame, path_str)
    array, conversion = to_grey(pixels)
    if array.size == 0:
        raise InputError("image has no pixels", path=path_str)
    if not np.all(np.isfinite(array)):
        raise InputError("image has NaN or infinite pixel values", path=path_str)
    if spacing is not None:
        spacing = parse_spacing(spacing)
    return ImageData(
        array=np.ascontiguousarray(array),
        spacing=spacing if spacing is not None else raw.spacing,
        path=path_str,
        source_format=raw.fmt,
        original_dtype=raw.dtype,
        converted_from_rgb=conversion is not None,
    )


def _mask_values(raw: _Raw, frame: int | None, path: str, *, label_given: bool) -> np.ndarray:
    """2D integer label array of a mask (colour masks: labels only when all channels agree)."""
    pixels = _select_frame(raw, frame, path)
    if pixels.shape[2] > 1:
        first = pixels[:, :, 0]
        if all(np.array_equal(first, pixels[:, :, c]) for c in range(1, pixels.shape[2])):
            values = first
        elif label_given:
            raise InputError(
                "colour mask whose channels differ cannot be read with a label; save it as a grey label map",
                path=path,
            )
        else:
            values = np.any(pixels != 0, axis=2)
    else:
        values = pixels[:, :, 0]
    if values.dtype == bool:  # 1-bit image: kept bool, its foreground matches label 1 or 255
        return values
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)):
            raise InputError("mask has NaN or infinite values", path=path)
        rounded = np.rint(values)
        if not np.array_equal(rounded, values):
            raise InputError("mask has non-integer values; a label map is needed", path=path)
        return rounded.astype(np.int64)
    return values


def _labels_of(values: np.ndarray) -> list[int]:
    if values.dtype == bool:
        return [1] if values.any() else []
    if values.dtype == np.uint8:
        counts = np.bincount(values.ravel(), minlength=256)
        return [int(v) for v in np.flatnonzero(counts) if v != 0]
    return [int(v) for v in np.unique(values) if v != 0]


def load_mask(
    path: str | os.PathLike[str], *, label: int | None = None, frame: int | None = None
) -> np.ndarray:
    """Load an ROI mask as 2D bool: pixels equal to ``label``, or any non-zero pixel when None.

    A ``label`` absent from the mask raises InputError listing the labels present.
    """
    raw = _read_raw(path, frame)
    path_str = os.fspath(path)
    values = _mask_values(raw, frame, path_str, label_given=label is not None)
    return _mask_from_values(values, raw.fmt, path_str, label=label)


def _mask_from_values(values: np.ndarray, fmt: str, path: str, *, label: int | None) -> np.ndarray:
    if label is None:
        if fmt == "jpeg":  # lossy: compression noise is not ROI
            high = 255 if values.dtype == np.uint8 else int(values.max())
            return np.ascontiguousarray(values > high / 2)
        return np.ascontiguousarray(values != 0)
    if values.dtype == bool:
        mask = values if int(label) in (1, 255) else np.zeros_like(values)
    else:
        mask = values == int(label)
    if not mask.any():
        present = _labels_of(values)
        listed = ", ".join(str(v) for v in present) if present else "none (the mask is empty)"
        raise InputError(f"label {label} not in mask; labels present: {listed}", path=path)
    return np.ascontiguousarray(mask)


def mask_labels(path: str | os.PathLike[str], *, frame: int | None = None) -> list[int]:
    """Sorted non-zero labels present in a mask (background 0 excluded)."""
    raw = _read_raw(path, frame)
    return _labels_of(_mask_values(raw, frame, os.fspath(path), label_given=False))


# --------------------------------------------------------------------------- header-only reads


def image_info(path: str | os.PathLike[str]) -> ImageInfo:
    """Size, frames, channels, dtype and spacing from the header (pixels are not decoded where possible)."""
    path = _check_exists(path)
    fmt = detect_format(path)
    if fmt in _PIL_FORMATS:
        from PIL import UnidentifiedImageError

        try:
            with _open_pil(path) as img:
                cols, rows = img.size
                n_frames = int(getattr(img, "n_frames", 1))
                channels = len(img.getbands())
                mode = img.mode
        except UnidentifiedImageError:
            raise InputError(f"not a readable {fmt.upper()} image", path=path) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise InputError(f"cannot read {fmt.upper()} image: {exc}", path=path) from None
        dtype = {"1": "bool", "L": "uint8", "P": "uint8", "I": "int32", "F": "float32"}.get(mode, "uint8")
        if mode.startswith("I;16") or (fmt == "png" and mode == "I"):  # Pillow < 10.1: 16-bit grey PNG as "I"
            dtype = "uint16"
        return ImageInfo(path, fmt, (rows, cols), n_frames, channels, dtype, None)
    if fmt in _SITK_FORMATS:
        import SimpleITK as sitk

        reader = sitk.ImageFileReader()
        reader.SetFileName(path)
        try:
            reader.ReadImageInformation()
        except RuntimeError as exc:
            raise InputError(f"cannot read {fmt.upper()} image: {_first_line(exc)}", path=path) from None
        size = reader.GetSize()
        _check_size(size[1] if len(size) > 1 else 1, size[0], path)
        sp = reader.GetSpacing()
        n_frames = int(np.prod(size[2:])) if len(size) > 2 else 1
        dtype = sitk.GetPixelIDValueAsString(reader.GetPixelID())
        return ImageInfo(
            path,
            fmt,
            (int(size[1]), int(size[0])),
            n_frames,
            reader.GetNumberOfComponents(),
            dtype,
            (float(sp[1]), float(sp[0])),
        )
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
        raise InputError(f"not a readable DICOM file: {exc}", path=path) from None
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
    except AttributeError:
        raise InputError("DICOM file has no image (Rows/Columns missing)", path=path) from None
    _check_size(rows, cols, path)
    bits = int(getattr(ds, "BitsAllocated", 8) or 8)
    signed = int(getattr(ds, "PixelRepresentation", 0) or 0) == 1
    dtype = f"{'int' if signed else 'uint'}{bits}" if bits in (8, 16, 32) else f"{bits}-bit"
    return ImageInfo(
        path,
        "dicom",
        (rows, cols),
        int(getattr(ds, "NumberOfFrames", 1) or 1),
        int(getattr(ds, "SamplesPerPixel", 1) or 1),
        dtype,
        _dicom_spacing(ds),
    )


def inspect_mask(
    path: str | os.PathLike[str], *, label: int | None = None, frame: int | None = None
) -> tuple[np.ndarray, list[int]]:
    """``load_mask`` plus the non-zero labels present, from one read (for validation)."""
    raw = _read_raw(path, frame)
    path_str = os.fspath(path)
    values = _mask_values(raw, frame, path_str, label_given=label is not None)
    mask = _mask_from_values(values, raw.fmt, path_str, label=label)
    labels = [255] if raw.fmt == "jpeg" and label is None and mask.any() else _labels_of(values)
    return mask, labels
