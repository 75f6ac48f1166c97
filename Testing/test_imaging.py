"""Image and mask I/O: every format written here, colour/16-bit handling, spacing, masks, errors, BUS-BRA."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from PIL import Image
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.imaging import (
    LUMA_WEIGHTS,
    detect_format,
    image_info,
    inspect_mask,
    load_image,
    load_mask,
    mask_labels,
    parse_spacing,
)

BUSBRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra"

US_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


def _grey(rows: int = 24, cols: int = 32, dtype=np.uint8, high: int = 255, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, high + 1, size=(rows, cols)).astype(dtype)


def write_dicom(
    path: Path,
    pixels: np.ndarray,
    *,
    rgb: bool = False,
    pixel_spacing: tuple[float, float] | None = None,
    us_regions: list[dict] | None = None,
    photometric: str | None = None,
    rescale: tuple[float, float] | None = None,
) -> Path:
    """Write an uncompressed DICOM: pixels (rows, cols), (frames, rows, cols) or RGB (..., 3)."""
    multi = pixels.ndim == (4 if rgb else 3)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = US_MULTIFRAME_STORAGE if multi else US_IMAGE_STORAGE
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "US"
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if rgb else pixels.shape[-2:]
    ds.SamplesPerPixel = 3 if rgb else 1
    ds.PhotometricInterpretation = photometric or ("RGB" if rgb else "MONOCHROME2")
    if rgb:
        ds.PlanarConfiguration = 0
    bits = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if multi:
        ds.NumberOfFrames = pixels.shape[0]
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if us_regions is not None:
        items = []
        for spec in us_regions:
            region = Dataset()
            region.RegionSpatialFormat = spec.get("format", 1)
            region.RegionDataType = 1
            region.RegionFlags = 0
            region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
            region.RegionLocationMaxX1 = spec.get("max_x", int(ds.Columns) - 1)
            region.RegionLocationMaxY1 = spec.get("max_y", int(ds.Rows) - 1)
            region.PhysicalUnitsXDirection = spec.get("units", 3)
            region.PhysicalUnitsYDirection = spec.get("units", 3)
            region.PhysicalDeltaX = spec["dx_cm"]
            region.PhysicalDeltaY = spec["dy_cm"]
            items.append(region)
        ds.SequenceOfUltrasoundRegions = Sequence(items)
    ds.PixelData = np.ascontiguousarray(pixels).tobytes()
    _save_dicom(ds, path)
    return path


# --------------------------------------------------------------------------- parse_spacing


@pytest.mark.parametrize(
    "value, expected",
    [
        ("0.08", (0.08, 0.08)),
        ("0.08,0.1", (0.08, 0.1)),
        ("0.08x0.1", (0.08, 0.1)),
        (" 0.08 , 0.1 ", (0.08, 0.1)),
        (0.2, (0.2, 0.2)),
        (1, (1.0, 1.0)),
        ((0.1, 0.2), (0.1, 0.2)),
        ("", None),
        (None, None),
        (float("nan"), None),
        ("NaN", None),
    ],
)
def test_parse_spacing(value, expected):
    assert parse_spacing(value) == expected


@pytest.mark.parametrize("text", ["abc", "0.1,0.2,0.3", "-0.1", "0", "0.1,x"])
def test_parse_spacing_rejects_bad_text_naming_it(text):
    with pytest.raises(ValueError, match="spacing") as info:
        parse_spacing(text)
    assert repr(text) in str(info.value)


# --------------------------------------------------------------------------- raster formats


def test_png_grey_uint8(tmp_path):
    pixels = _grey()
    Image.fromarray(pixels).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.array.dtype == np.float64 and img.array.shape == (24, 32)
    np.testing.assert_array_equal(img.array, pixels)
    assert img.spacing is None
    assert (img.source_format, img.original_dtype, img.converted_from_rgb) == ("png", "uint8", False)
    assert img.path == str(tmp_path / "a.png")


def test_png_16bit_kept_in_range(tmp_path):
    pixels = _grey(dtype=np.uint16, high=65535, seed=1)
    pixels[0, 0] = 65535
    Image.fromarray(pixels).save(tmp_path / "a16.png")
    img = load_image(tmp_path / "a16.png")
    np.testing.assert_array_equal(img.array, pixels.astype(np.float64))
    assert img.array.max() == 65535
    assert img.original_dtype == "uint16"


def test_rgb_png_to_luminance(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, size=(20, 30, 3)).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    img = load_image(tmp_path / "rgb.png")
    expected = rgb.astype(float) @ np.array(LUMA_WEIGHTS)
    np.testing.assert_allclose(img.array, expected, rtol=0, atol=1e-9)
    assert img.converted_from_rgb and img.original_dtype == "uint8"
    assert img.array.shape == (20, 30)


def test_rgba_png_ignores_alpha_and_grey_rgb_is_exact(tmp_path):
    grey = _grey(seed=3)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 7)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    img = load_image(tmp_path / "rgba.png")
    np.testing.assert_array_equal(img.array, grey)  # equal channels give the channel itself, bit for bit
    assert img.converted_from_rgb


def test_palette_png(tmp_path):
    grey = _grey(seed=4)
    Image.fromarray(grey).convert("P").save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    np.testing.assert_array_equal(img.array, grey)


def test_jpeg_bmp_tiff(tmp_path):
    pixels = np.tile(np.linspace(0, 250, 32).astype(np.uint8), (24, 1))
    Image.fromarray(pixels).save(tmp_path / "a.jpg", quality=95)
    Image.fromarray(pixels).save(tmp_path / "a.bmp")
    Image.fromarray(pixels).save(tmp_path / "a.tif")
    jpg = load_image(tmp_path / "a.jpg")
    assert jpg.source_format == "jpeg" and np.abs(jpg.array - pixels).max() < 8  # lossy
    for name, fmt in [("a.bmp", "bmp"), ("a.tif", "tiff")]:
        img = load_image(tmp_path / name)
        assert img.source_format == fmt
        np.testing.assert_array_equal(img.array, pixels)


def test_tiff_16bit_and_float(tmp_path):
    pixels16 = _grey(dtype=np.uint16, high=40000, seed=5)
    Image.fromarray(pixels16).save(tmp_path / "a16.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "a16.tif").array, pixels16)
    pixelsf = np.random.default_rng(6).normal(size=(10, 12)).astype(np.float32)
    Image.fromarray(pixelsf).save(tmp_path / "af.tif")
    img = load_image(tmp_path / "af.tif")
    np.testing.assert_array_equal(img.array, pixelsf.astype(np.float64))
    assert img.original_dtype == "float32"


def test_multipage_tiff_needs_frame(tmp_path):
    pages = [Image.fromarray(_grey(seed=s)) for s in (7, 8)]
    pages[0].save(tmp_path / "m.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(InputError, match="2 slices/frames.*frame="):
        load_image(tmp_path / "m.tif")
    np.testing.assert_array_equal(load_image(tmp_path / "m.tif", frame=1).array, _grey(seed=8))
    assert image_info(tmp_path / "m.tif").n_frames == 2


# --------------------------------------------------------------------------- ITK formats


@pytest.mark.parametrize(
    "name, fmt", [("a.nrrd", "nrrd"), ("a.nii.gz", "nifti"), ("a.nii", "nifti"), ("a.mha", "metaimage")]
)
def test_itk_formats_with_spacing(tmp_path, name, fmt):
    pixels = _grey(dtype=np.int16, high=3000, seed=9)
    image = sitk.GetImageFromArray(pixels)
    image.SetSpacing((0.1, 0.25))  # (x = col, y = row)
    sitk.WriteImage(image, str(tmp_path / name))
    img = load_image(tmp_path / name)
    np.testing.assert_array_equal(img.array, pixels)
    assert img.spacing == pytest.approx((0.25, 0.1))
    assert img.source_format == fmt and img.original_dtype == "int16"
    info = image_info(tmp_path / name)
    assert info.shape == (24, 32) and info.spacing == pytest.approx((0.25, 0.1))


def test_volume_needs_frame_and_spacing_override(tmp_path):
    volume = np.stack([_grey(seed=s) for s in (10, 11, 12)])
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((0.2, 0.3, 1.0))
    sitk.WriteImage(image, str(tmp_path / "v.nrrd"))
    with pytest.raises(InputError, match=r"v\.nrrd.*3 slices/frames"):
        load_image(tmp_path / "v.nrrd")
    img = load_image(tmp_path / "v.nrrd", frame=2)
    np.testing.assert_array_equal(img.array, _grey(seed=12))
    assert img.spacing == pytest.approx((0.3, 0.2))
    assert load_image(tmp_path / "v.nrrd", frame=0, spacing=(0.5, 0.6)).spacing == (0.5, 0.6)
    with pytest.raises(InputError, match="frame 5 requested"):
        load_image(tmp_path / "v.nrrd", frame=5)
    # a single-slice volume is a 2D image
    sitk.WriteImage(sitk.GetImageFromArray(volume[:1]), str(tmp_path / "one.nii.gz"))
    assert load_image(tmp_path / "one.nii.gz").array.shape == (24, 32)


def test_rgb_nrrd(tmp_path):
    rgb = np.random.default_rng(13).integers(0, 256, size=(8, 9, 3)).astype(np.uint8)
    sitk.WriteImage(sitk.GetImageFromArray(rgb, isVector=True), str(tmp_path / "rgb.nrrd"))
    img = load_image(tmp_path / "rgb.nrrd")
    np.testing.assert_allclose(img.array, rgb.astype(float) @ np.array(LUMA_WEIGHTS), atol=1e-9)
    assert img.converted_from_rgb


# --------------------------------------------------------------------------- DICOM


def test_dicom_pixel_spacing_16bit(tmp_path):
    pixels = _grey(dtype=np.uint16, high=60000, seed=14)
    write_dicom(tmp_path / "a.dcm", pixels, pixel_spacing=(0.07, 0.09))
    img = load_image(tmp_path / "a.dcm")
    np.testing.assert_array_equal(img.array, pixels)
    assert img.spacing == pytest.approx((0.07, 0.09))
    assert (img.source_format, img.original_dtype) == ("dicom", "uint16")


def test_dicom_ultrasound_region_spacing_cm_to_mm(tmp_path):
    pixels = _grey(seed=15)
    regions = [
        {"dx_cm": 0.002, "dy_cm": 0.003, "format": 3, "max_x": 31, "max_y": 23},  # spectral Doppler: ignored
        {"dx_cm": 0.01, "dy_cm": 0.012, "max_x": 5, "max_y": 5},  # small 2D region
        {"dx_cm": 0.008, "dy_cm": 0.009},  # the whole image: the largest 2D region wins
        {"dx_cm": 0.5, "dy_cm": 0.5, "units": 4},  # seconds, not cm: ignored
    ]
    write_dicom(tmp_path / "us.dcm", pixels, us_regions=regions)
    img = load_image(tmp_path / "us.dcm")
    assert img.spacing == pytest.approx((0.09, 0.08))  # (row = dY, col = dX), cm -> mm
    np.testing.assert_array_equal(img.array, pixels)
    assert image_info(tmp_path / "us.dcm").spacing == pytest.approx((0.09, 0.08))
    # without any usable region there is no spacing
    write_dicom(tmp_path / "none.dcm", pixels, us_regions=[{"dx_cm": 0.5, "dy_cm": 0.5, "units": 0}])
    assert load_image(tmp_path / "none.dcm").spacing is None


def test_dicom_multiframe_first_or_selected_frame(tmp_path):
    frames = np.stack([_grey(seed=s) for s in (16, 17, 18)])
    write_dicom(tmp_path / "cine.dcm", frames, us_regions=[{"dx_cm": 0.01, "dy_cm": 0.01}])
    np.testing.assert_array_equal(load_image(tmp_path / "cine.dcm").array, frames[0])
    second = load_image(tmp_path / "cine.dcm", frame=2)
    np.testing.assert_array_equal(second.array, frames[2])
    assert second.spacing == pytest.approx((0.1, 0.1))
    assert image_info(tmp_path / "cine.dcm").n_frames == 3
    with pytest.raises(InputError, match="frame 3 requested but the file has 3"):
        load_image(tmp_path / "cine.dcm", frame=3)


def test_dicom_rgb_monochrome1_and_rescale(tmp_path):
    rgb = np.random.default_rng(19).integers(0, 256, size=(12, 14, 3)).astype(np.uint8)
    write_dicom(tmp_path / "rgb.dcm", rgb, rgb=True)
    img = load_image(tmp_path / "rgb.dcm")
    np.testing.assert_allclose(img.array, rgb.astype(float) @ np.array(LUMA_WEIGHTS), atol=1e-9)
    assert img.converted_from_rgb and img.spacing is None
    pixels = _grey(seed=20)
    write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1")
    np.testing.assert_array_equal(load_image(tmp_path / "m1.dcm").array, 255.0 - pixels)
    write_dicom(tmp_path / "r.dcm", pixels, rescale=(2.0, -10.0))
    np.testing.assert_array_equal(load_image(tmp_path / "r.dcm").array, pixels * 2.0 - 10.0)


def test_dicom_palette_colour(tmp_path):
    indices = _grey(rows=6, cols=7, seed=22)
    write_dicom(tmp_path / "pal.dcm", indices, photometric="PALETTE COLOR")
    ds = pydicom.dcmread(tmp_path / "pal.dcm")
    ramp = np.arange(256, dtype=np.uint16)
    tables = {"Red": ramp * 256, "Green": (255 - ramp) * 256, "Blue": np.full(256, 100 * 256, np.uint16)}
    for offset, table in enumerate(tables.values()):
        ds.add_new(
            0x00281101 + offset, "US", [256, 0, 16]
        )  # {Red,Green,Blue}PaletteColorLookupTableDescriptor
        ds.add_new(0x00281201 + offset, "OW", table.tobytes())  # ...PaletteColorLookupTableData
    ds.save_as(tmp_path / "pal.dcm")
    img = load_image(tmp_path / "pal.dcm")
    rgb = np.dstack([tables[c][indices].astype(float) for c in ("Red", "Green", "Blue")])
    np.testing.assert_allclose(img.array, rgb @ np.array(LUMA_WEIGHTS), atol=1e-6)
    assert img.converted_from_rgb


def test_dicom_found_by_content_without_extension(tmp_path):
    write_dicom(tmp_path / "IM0001", _grey(seed=21), pixel_spacing=(0.1, 0.1))
    assert detect_format(tmp_path / "IM0001") == "dicom"
    assert load_image(tmp_path / "IM0001").source_format == "dicom"


# --------------------------------------------------------------------------- errors


def test_errors_name_the_path(tmp_path):
    with pytest.raises(InputError, match="file not found") as info:
        load_image(tmp_path / "missing.png")
    assert str(tmp_path / "missing.png") in str(info.value)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt.*unsupported image format"):
        load_image(tmp_path / "notes.txt")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match=r"broken\.png"):
        load_image(tmp_path / "broken.png")
    (tmp_path / "broken.dcm").write_bytes(b"not dicom at all")
    with pytest.raises(InputError, match=r"broken\.dcm.*DICOM"):
        load_image(tmp_path / "broken.dcm")
    with pytest.raises(InputError, match="folder"):
        load_image(tmp_path)


# --------------------------------------------------------------------------- masks


def test_mask_0_255_and_0_1(tmp_path):
    roi = np.zeros((20, 20), bool)
    roi[5:12, 6:15] = True
    Image.fromarray(roi.astype(np.uint8) * 255).save(tmp_path / "m255.png")
    Image.fromarray(roi.astype(np.uint8)).save(tmp_path / "m1.png")
    Image.fromarray(roi).save(tmp_path / "bits.png")  # 1-bit PNG, like BUS-BRA
    for name in ("m255.png", "m1.png", "bits.png"):
        mask = load_mask(tmp_path / name)
        assert mask.dtype == bool and mask.shape == (20, 20)
        np.testing.assert_array_equal(mask, roi)
    np.testing.assert_array_equal(load_mask(tmp_path / "m255.png", label=255), roi)
    np.testing.assert_array_equal(load_mask(tmp_path / "bits.png", label=255), roi)
    np.testing.assert_array_equal(load_mask(tmp_path / "bits.png", label=1), roi)
    assert mask_labels(tmp_path / "m255.png") == [255]
    assert mask_labels(tmp_path / "m1.png") == [1]


def test_multilabel_mask_and_absent_label(tmp_path):
    labels = np.zeros((16, 16), np.uint16)
    labels[1:5, 1:5] = 1
    labels[8:14, 8:14] = 3
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "seg.nrrd"))
    assert mask_labels(tmp_path / "seg.nrrd") == [1, 3]
    np.testing.assert_array_equal(load_mask(tmp_path / "seg.nrrd", label=3), labels == 3)
    np.testing.assert_array_equal(load_mask(tmp_path / "seg.nrrd"), labels > 0)
    with pytest.raises(InputError, match=r"seg\.nrrd.*label 2 not in mask; labels present: 1, 3"):
        load_mask(tmp_path / "seg.nrrd", label=2)
    mask, present = inspect_mask(tmp_path / "seg.nrrd", label=1)
    assert present == [1, 3] and mask.sum() == 16


def test_rgb_mask_any_channel(tmp_path):
    rgb = np.zeros((10, 10, 3), np.uint8)
    rgb[2:4, 2:4, 0] = 200  # red outline
    rgb[6:8, 6:8, 2] = 10  # faint blue
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png")
    mask = load_mask(tmp_path / "rgb.png")
    assert mask.sum() == 8 and mask[2, 2] and mask[7, 7]
    with pytest.raises(InputError, match="colour mask"):
        load_mask(tmp_path / "rgb.png", label=200)


def test_jpeg_mask_thresholded(tmp_path):
    roi = np.zeros((32, 32), np.uint8)
    roi[8:24, 8:24] = 255
    Image.fromarray(roi).save(tmp_path / "m.jpg", quality=75)
    mask = load_mask(tmp_path / "m.jpg")
    assert abs(int(mask.sum()) - 256) <= 16  # compression noise is not ROI


def test_float_mask_needs_integer_values(tmp_path):
    values = np.zeros((6, 6), np.float32)
    values[1:3, 1:3] = 1.0
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "ok.nii.gz"))
    assert load_mask(tmp_path / "ok.nii.gz").sum() == 4
    values[0, 0] = 0.5
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / "soft.nii.gz"))
    with pytest.raises(InputError, match="non-integer"):
        load_mask(tmp_path / "soft.nii.gz")


# --------------------------------------------------------------------------- BUS-BRA (real images)


@pytest.mark.skipif(not BUSBRA.is_dir(), reason=f"BUS-BRA not available at {BUSBRA}")
def test_busbra_images_and_masks_load():
    images = sorted((BUSBRA / "Images").glob("bus_*.png"))
    assert len(images) > 100
    for image_path in images[:: len(images) // 6][:6]:
        mask_path = BUSBRA / "Masks" / image_path.name.replace("bus_", "mask_")
        img = load_image(image_path)
        mask = load_mask(mask_path)
        assert img.array.ndim == 2 and img.array.dtype == np.float64
        assert 0 <= img.array.min() and img.array.max() <= 255 and img.array.std() > 1
        assert mask.shape == img.array.shape and mask.dtype == bool
        assert 0 < mask.sum() < mask.size
        assert mask_labels(mask_path) == [1]
        assert image_info(image_path).shape == img.shape


def _save_dicom(ds, path) -> None:
    """Write a conformant DICOM file with pydicom 3 (``enforce_file_format``) or 2.4 (``write_like_original``)."""
    import pydicom

    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, write_like_original=False)
