"""Resources and processes: ROI cropping keeps every feature, image size limits, workers that die with
their parent, Ctrl+C, and output permissions that follow the umask."""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image
from radiomics import featureextractor

from ALNMPredictorLib import cli, fileio, handcrafted, imaging
from ALNMPredictorLib.bundle import write_bundle
from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.extraction import extract_cohort
from ALNMPredictorLib.fileio import make_temp_dir, write_bytes, write_json, write_table, write_text
from ALNMPredictorLib.synth import synth_cohort

pytestmark = [
    pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::ALNMPredictorLib.deep.RandomWeightsWarning"),
]

LINUX_PROC = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()
# Features are compared with rtol 1e-12, atol 0. The crop path runs float64 throughout (never float32:
# the image is cast to float64 and SimpleITK keeps it), and gives pyradiomics the same pixel values computed
# by the same operations in the same order: the whole-image mean and SD by the same ITK filter as
# pyradiomics' own normalisation, the same shift-scale per pixel, and wavelet outputs at interior pixels
# (pywt sums the filter taps in one fixed order). The values are bit-identical on the development machine,
# the paper preset's 372 rounding-noise features included. 1e-12 (about 4,500 units in the last place)
# only leaves room for last-bit differences of vectorised reductions on other CPUs; a real change (a
# margin one pixel too small, a wrapped border, crop-only statistics) moves features by 1e-6 or more.
RTOL = 1e-12
# A small, fast pyradiomics configuration for the cohort runs.
FAST_PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "shape2D": None},
    "setting": {"binWidth": 25, "force2D": True, "force2Ddimension": 0},
}


@pytest.fixture
def one_thread():
    """SimpleITK on one thread, as in the extraction workers.

    ITK's image statistics sum per-thread partial sums in completion order, so with several threads the
    whole-image mean and SD (intensity standardisation) can differ in the last bit between any two runs,
    bare pyradiomics against itself included; on one thread both paths are deterministic.
    """
    previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    yield
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


# ---------------------------------------------------------------------------------------------------
# 1. Handcrafted features of a cropped ROI equal bare pyradiomics on the whole image


def _scene(centre: tuple[float, float], radii: tuple[float, float], shape=(97, 130), seed=0):
    """A speckle image (odd rows: pyradiomics' wavelet pads them by wrapping) with an elliptical ROI."""
    rng = np.random.default_rng(seed)
    image = rng.gamma(2.0, 30.0, size=shape).clip(0, 255).round()
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    roi = ((rows - centre[0]) / radii[0]) ** 2 + ((cols - centre[1]) / radii[1]) ** 2 <= 1.0
    image[roi] = np.clip(image[roi] * 0.6 + 20.0 + 0.4 * (cols[roi] - centre[1]), 0, 255)
    image[0, :] = 255.0  # bright rows and columns at the borders: wrapping around would show
    image[:, -1] = 0.0
    return image, roi


# (centre, radii, which axes the crop keeps whole): box + margin 5 inside the image, crossing the top
# border while 3 rows away from it, and touching the left border (column 0)
POSITIONS = {
    "middle": ((48.0, 66.0), (9.0, 12.0), (False, False)),
    "near_border": ((11.0, 66.0), (8.0, 12.0), (True, False)),
    "touching_border": ((48.0, 10.0), (9.0, 10.5), (False, True)),
}


def _bare(params: dict, image: np.ndarray, roi: np.ndarray, spacing=(0.2, 0.1)) -> dict[str, float]:
    """Bare pyradiomics on the whole image (one-slice float64 volume), as ALNM Predictor did before cropping."""
    extractor = featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(params))
    sitk_image = sitk.GetImageFromArray(image.astype(np.float64)[np.newaxis])
    sitk_mask = sitk.GetImageFromArray(roi.astype(np.uint8)[np.newaxis])
    for volume in (sitk_image, sitk_mask):
        volume.SetSpacing((spacing[1], spacing[0], 1.0))
    result = extractor.execute(sitk_image, sitk_mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def _pyradiomics_sizes(extractor: handcrafted.HandcraftedExtractor, monkeypatch) -> list[tuple[int, ...]]:
    """Record the (rows, cols) of every image the extractor hands to pyradiomics from now on."""
    extractor.feature_names()  # its one-time synthetic extraction, done now
    sizes: list[tuple[int, ...]] = []
    for radiomics_extractor in {id(e): e for e in (extractor._extractor, extractor._crop_extractor)}.values():
        original = radiomics_extractor.execute

        def spy(image, mask, *args, _original=original, **kwargs):
            sizes.append(tuple(reversed(image.GetSize()[:2])))
            return _original(image, mask, *args, **kwargs)

        monkeypatch.setattr(radiomics_extractor, "execute", spy)
    return sizes


# The 3D shape class's mesh surface area and volume (and the features computed from them) come from
# ALNMPredictorLib.shape3d: the same sum as pyradiomics' C code in another order (Testing/test_shape3d.py).
MESH_RTOL = 1e-10
_MESH = (
    "MeshVolume",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "Sphericity",
    "Compactness1",
    "Compactness2",
    "SphericalDisproportion",
)


def _assert_same(ours: dict[str, float], bare: dict[str, float]) -> None:
    assert list(ours) == list(bare)
    mesh = [k for k in ours if k.startswith("original_shape_") and k.split("_")[-1] in _MESH]
    rest = [k for k in ours if k not in mesh]
    np.testing.assert_allclose(
        [ours[k] for k in rest], [bare[k] for k in rest], rtol=RTOL, atol=0, equal_nan=True
    )
    np.testing.assert_allclose([ours[k] for k in mesh], [bare[k] for k in mesh], rtol=MESH_RTOL, atol=0)


def test_crop_margins_cover_the_filters() -> None:
    def margin(params: dict) -> int | None:
        extractor = featureextractor.RadiomicsFeatureExtractor(copy.deepcopy(params))
        return handcrafted.crop_margin(extractor.settings, extractor.enabledImagetypes)

    paper, us2d = handcrafted.load_params("paper"), handcrafted.load_params("us2d")
    assert margin(paper) == margin(us2d) == 5  # coif1: 6 taps, one pass
    assert margin({"imageType": {"Original": {}}}) == 0
    assert margin({"imageType": {"Wavelet": {"wavelet": "coif1", "level": 2}}}) == 10
    assert margin({"imageType": {"Wavelet": {"wavelet": "db2", "start_level": 1}}}) == 6  # 4 taps, 2 passes
    assert margin({"imageType": {"Original": {}, "LoG": {"sigma": [1.0]}}}) is None  # recursive Gaussian
    assert margin({"imageType": {"Square": {}}}) is None  # rescaled by the whole image's maximum
    assert margin({"imageType": {"Original": {}}, "setting": {"resampledPixelSpacing": [1, 1, 1]}}) is None


@pytest.mark.parametrize("position", list(POSITIONS))
@pytest.mark.parametrize("preset", ["paper", "us2d"])
def test_cropped_roi_gives_the_features_of_bare_pyradiomics_on_the_whole_image(
    preset: str, position: str, one_thread, monkeypatch
) -> None:
    centre, radii, whole_axes = POSITIONS[position]
    image, roi = _scene(centre, radii)
    # the project's default standardisation; the full table, so the 372 noise features are checked too
    extractor = handcrafted.HandcraftedExtractor(preset, normalize=True, full_table=True)
    sizes = _pyradiomics_sizes(extractor, monkeypatch)
    ours = extractor.extract(image, roi.astype(np.uint8) * 255, (0.2, 0.1))

    rows = np.flatnonzero(roi.any(axis=1))
    cols = np.flatnonzero(roi.any(axis=0))
    expected = (
        image.shape[0] if whole_axes[0] else rows[-1] - rows[0] + 1 + 2 * 5,
        image.shape[1] if whole_axes[1] else cols[-1] - cols[0] + 1 + 2 * 5,
    )
    assert sizes == [expected]  # pyradiomics saw the crop, not the image
    bare = _bare(extractor.params, image, roi)
    assert extractor.params["setting"]["normalize"] is True
    _assert_same(ours, bare)


@pytest.mark.parametrize("preset", ["paper", "us2d"])
def test_cropped_roi_without_standardisation_and_a_colour_image(preset: str, one_thread) -> None:
    image, roi = _scene((40.0, 80.0), (7.0, 15.0), shape=(90, 151), seed=4)
    extractor = handcrafted.HandcraftedExtractor(
        preset, full_table=True
    )  # normalize off: the presets as written
    _assert_same(extractor.extract(image, roi, (0.2, 0.1)), _bare(extractor.params, image, roi))
    grey8 = image.astype(np.uint8)
    rgb = np.repeat(grey8[..., None], 3, axis=2)  # grey saved as RGB: the grey values
    _assert_same(extractor.extract(rgb, roi, (0.2, 0.1)), _bare(extractor.params, grey8, roi))


def test_standardisation_with_outlier_removal_matches_pyradiomics(one_thread) -> None:
    image, roi = _scene((50.0, 60.0), (10.0, 14.0), seed=5)
    params = handcrafted.load_params("us2d")
    params["setting"].update(normalize=True, normalizeScale=32, removeOutliers=1.5)
    extractor = handcrafted.HandcraftedExtractor(params)
    assert extractor._crop_margin == 5
    _assert_same(extractor.extract(image, roi, (0.2, 0.1)), _bare(params, image, roi))


def test_filters_reaching_further_get_the_whole_image(one_thread, monkeypatch) -> None:
    image, roi = _scene((48.0, 66.0), (9.0, 12.0))
    params = {
        "imageType": {"Original": {}, "LoG": {"sigma": [1.5]}, "Square": {}},
        "featureClass": {"firstorder": None},
        "setting": {"binWidth": 25, "force2D": True, "normalize": True, "normalizeScale": 32},
    }
    extractor = handcrafted.HandcraftedExtractor(params)
    sizes = _pyradiomics_sizes(extractor, monkeypatch)
    ours = extractor.extract(image, roi, (0.2, 0.1))
    assert sizes == [image.shape]
    _assert_same(ours, _bare(params, image, roi))


def test_the_equality_tests_would_see_a_too_small_margin_or_a_wrapped_border(one_thread, monkeypatch) -> None:
    """Sensitivity: cropping closer than the wavelet reads, or clipping at a border instead of keeping the
    axis whole, changes wavelet features far beyond the tolerance.

    One coif1 pass reads 2 pixels before and 3 after each output pixel, so a margin of 3 is exactly enough
    and 2 is not; the extractor uses dec_len - 1 = 5, a bound that holds for any alignment of the taps.
    """
    extractor = handcrafted.HandcraftedExtractor("us2d", normalize=True)
    image, roi = _scene(*POSITIONS["middle"][:2])
    bare = _bare(extractor.params, image, roi)
    extractor._crop_margin = 3
    _assert_same(extractor.extract(image, roi, (0.2, 0.1)), bare)
    extractor._crop_margin = 2
    narrow = extractor.extract(image, roi, (0.2, 0.1))
    changed = [k for k in bare if not np.isclose(narrow[k], bare[k], rtol=1e-6, atol=0)]
    assert any(k.startswith("wavelet") for k in changed)
    assert not any(k.startswith("original") for k in changed)

    extractor._crop_margin = 5
    image, roi = _scene(*POSITIONS["touching_border"][:2])
    bare = _bare(extractor.params, image, roi)

    def clipped_box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        return (
            slice(max(0, rows[0] - margin), rows[-1] + 1 + margin),
            slice(max(0, cols[0] - margin), cols[-1] + 1 + margin),
        )

    monkeypatch.setattr(handcrafted, "_crop_box", clipped_box)
    wrapped = extractor.extract(image, roi, (0.2, 0.1))
    assert any(
        not np.isclose(wrapped[k], bare[k], rtol=1e-6, atol=0) for k in bare if k.startswith("wavelet")
    )


def test_shape_features_do_not_depend_on_the_crop(one_thread) -> None:
    image, roi = _scene((48.0, 66.0), (9.0, 12.0))
    for preset, prefix in (("paper", "original_shape_"), ("us2d", "original_shape2D_")):
        extractor = handcrafted.HandcraftedExtractor(preset)
        ours = extractor.extract(image, roi, (0.2, 0.1))
        shifted = np.zeros((160, 200))  # the same ROI and pixels elsewhere in a bigger image
        shifted_roi = np.zeros((160, 200), dtype=bool)
        shifted[40:137, 50:180], shifted_roi[40:137, 50:180] = image, roi
        moved = extractor.extract(shifted, shifted_roi, (0.2, 0.1))
        shape = [k for k in ours if k.startswith(prefix)]
        assert shape
        np.testing.assert_allclose([moved[k] for k in shape], [ours[k] for k in shape], rtol=RTOL, atol=0)


# ---------------------------------------------------------------------------------------------------
# Image size limits


def _png_header(path: Path, rows: int, cols: int) -> Path:
    """A PNG whose header declares rows x cols 8-bit grey pixels, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_limits_are_ordered_and_documented() -> None:
    assert 0 < imaging.WARN_IMAGE_PIXELS < imaging.MAX_IMAGE_PIXELS
    assert (
        imaging.MAX_IMAGE_PIXELS < 2 * Image.MAX_IMAGE_PIXELS
    )  # below Pillow's bomb error: ours comes first
    assert 8000 * 8000 <= imaging.MAX_IMAGE_PIXELS  # the 64-Mpixel case of the issue is read (with a warning)


def test_decompression_bomb_png_is_an_input_error_naming_the_file(tmp_path: Path) -> None:
    bomb = _png_header(tmp_path / "bomb.png", 20000, 20000)
    for read in (imaging.load_image, imaging.image_info, imaging.load_mask, imaging.inspect_mask):
        with pytest.raises(InputError, match=r"bomb\.png.*image too large.*decompression bomb") as info:
            read(bomb)
        assert info.value.path == str(bomb)


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # Pillow warns above 89.5 Mpixel
def test_image_above_the_limit_is_refused_from_its_header(tmp_path: Path) -> None:
    big = _png_header(tmp_path / "big.png", 12000, 12000)  # 144 Mpixel: Pillow would only warn
    with pytest.raises(InputError, match=r"big\.png: image too large: 12000 x 12000 pixels") as info:
        imaging.load_image(big)
    assert "100 Mpixel" in str(info.value)  # refused before decoding: the file has no pixel data
    with pytest.raises(InputError, match="image too large"):
        imaging.image_info(big)


def test_large_image_warns_once_per_file(tmp_path: Path, caplog, monkeypatch) -> None:
    monkeypatch.setattr(imaging, "_WARNED_LARGE", set())
    path = tmp_path / "large.png"
    Image.fromarray(np.zeros((60, 50), dtype=np.uint8)).save(path)
    monkeypatch.setattr(imaging, "WARN_IMAGE_PIXELS", 2000)
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.imaging"):
        imaging.image_info(path)
        imaging.load_image(path)
        imaging.load_mask(path)
    warned = [r for r in caplog.records if "large image" in r.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0].getMessage() and "60 x 50" in warned[0].getMessage()


def test_limit_applies_to_itk_and_dicom_files(tmp_path: Path, monkeypatch) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    nrrd = tmp_path / "image.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((30, 40), dtype=np.uint8)), str(nrrd))
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dcm = tmp_path / "image.dcm"
    ds = FileDataset(str(dcm), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, generate_uid(), "US"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = 30, 40, 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.zeros((30, 40), dtype=np.uint8).tobytes()
    _save_dicom(ds, dcm)
    assert imaging.load_image(nrrd).shape == imaging.load_image(dcm).shape == (30, 40)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 1000)
    for path in (nrrd, dcm):
        for read in (imaging.load_image, imaging.image_info, imaging.load_mask):
            with pytest.raises(InputError, match=rf"{path.name}: image too large: 30 x 40 pixels"):
                read(path)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "cohort"
    synth_cohort(out, n_patients=20, seed=5)
    return out


def _manifest_of(cohort_dir: Path, folder: Path, n: int) -> Path:
    """The first ``n`` cases of the cohort, in ``folder`` with copies of their files."""
    manifest = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False).head(n)
    folder.mkdir(parents=True, exist_ok=True)
    for column in [c for c in manifest.columns if c.endswith(("_image", "_mask", "_reader2", "_repeat"))]:
        for name in manifest[column]:
            if name:
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(cohort_dir / name, folder / name)
    shutil.copy(cohort_dir / "study.yaml", folder / "study.yaml")
    manifest.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def test_validate_reports_a_bomb_and_goes_on_with_the_other_cases(
    cohort_dir: Path, tmp_path: Path, capsys
) -> None:
    manifest_path = _manifest_of(cohort_dir, tmp_path / "cohort", 3)
    manifest = pd.read_csv(manifest_path, dtype=str, keep_default_na=False)
    first, second = manifest["case_id"][0], manifest["case_id"][1]
    _png_header(tmp_path / "cohort" / manifest["tumor_image"][0], 20000, 20000)
    (tmp_path / "cohort" / manifest["ln_mask"][1]).unlink()
    assert cli.main(["validate", str(manifest_path)]) == 1
    out = capsys.readouterr().out
    bomb_line = next(line for line in out.splitlines() if "image too large" in line)
    assert first in bomb_line and "tumor_image" in bomb_line and manifest["tumor_image"][0] in bomb_line
    assert any(second in line and "ln_mask" in line and "not found" in line for line in out.splitlines())


def test_extraction_fails_only_the_oversized_images_naming_case_column_and_file(
    cohort_dir: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    manifest_path = _manifest_of(cohort_dir, tmp_path / "cohort", 3)
    # synthetic tumour images are 206 x 252 (51,912 pixels), LN images 224 x 288 (64,512 pixels)
    monkeypatch.setattr(imaging, "MAX_IMAGE_PIXELS", 60_000)
    monkeypatch.setattr(imaging, "WARN_IMAGE_PIXELS", 50_000)
    monkeypatch.setattr(imaging, "_WARNED_LARGE", set())
    cohort = load_manifest(manifest_path)
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.imaging"):
        result = extract_cohort(
            cohort, tmp_path / "out", handcrafted=FAST_PARAMS, deep=None, workers=1, progress=False
        )
    failed = {(case, region, variant): error for case, region, variant, error in result.failed}
    main_ln = {key: error for key, error in failed.items() if key[1] == "ln" and key[2] == "main"}
    assert len(main_ln) == 3 and not [key for key in failed if key[1] == "tumor"]
    for (case, _, _), error in main_ln.items():
        image = cohort.table.loc[case, "ln_image"]
        assert error.startswith(f"case {case}, column ln_image (") and Path(image).name in error
        assert "image too large: 224 x 288 pixels" in error
    assert result.table["tumor_original_firstorder_Mean"].notna().all()
    warned = [r.getMessage() for r in caplog.records if "large image" in r.getMessage()]
    assert (
        sum(f"{os.sep}images{os.sep}" in m and "_tumor.png" in m for m in warned) == 3
    )  # each tumour image once (and masks)


# ---------------------------------------------------------------------------------------------------
# 2. Worker processes die with their parent; Ctrl+C


def _proc_state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _gone(pid: int) -> bool:
    """No such process, or a zombie (exited; in a container nobody may reap an orphan)."""
    if LINUX_PROC:
        return _proc_state(pid) in (None, "Z")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _children(pid: int) -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(
                    (int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode())
                )
        except (OSError, IndexError, ValueError):
            continue
    return found


def _wait_until(condition, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return condition()


def _start_extract(manifest: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    """`alnm extract` with two workers in its own session; returns once both workers run."""
    command = [
        sys.executable,
        "-m",
        "ALNMPredictorLib",
        "extract",
        str(manifest),
        "--out",
        str(out),
        "--deep",
        "off",
        "--workers",
        "2",
        "--preset",
        "us2d",
        "--no-progress",
    ]
    # Ctrl+C as in a terminal: a test suite started in the background of a non-interactive shell (`nohup ... &`)
    # passes SIGINT on ignored, and Python then never raises KeyboardInterrupt
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    workers: list[int] = []

    def started() -> bool:
        workers[:] = [pid for pid, cmd in _children(process.pid) if "spawn_main" in cmd]
        return len(workers) == 2 or process.poll() is not None

    assert _wait_until(started, 120), "no worker process started"
    assert process.poll() is None, process.stdout.read().decode()
    return process, workers


def _cleanup(process: subprocess.Popen, pids: list[int]) -> None:
    for pid in [process.pid, *pids]:
        if not _gone(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(10)
    process.stdout.close()


def _cache_entries_are_whole(out: Path) -> int:
    entries = list((out / "cache" / "handcrafted").glob("*.json"))
    for entry in entries:
        assert json.loads(entry.read_text())["format"] == "alnm-handcrafted-cache"
    return len(entries)


@pytest.mark.skipif(not LINUX_PROC, reason="finds the workers in /proc (Linux)")
def test_workers_exit_when_the_main_process_is_killed(cohort_dir: Path, tmp_path: Path) -> None:
    process, workers = _start_extract(cohort_dir / "manifest.csv", tmp_path / "out")
    try:
        time.sleep(1.0)  # let them work
        process.kill()  # SIGKILL: no cleanup code of the main process runs
        process.wait(10)
        assert _wait_until(lambda: all(_gone(pid) for pid in workers), 5), [
            (pid, _proc_state(pid)) for pid in workers
        ]
        _cache_entries_are_whole(tmp_path / "out")  # killed writers leave no partial cache entry
    finally:
        _cleanup(process, workers)


@pytest.mark.skipif(not LINUX_PROC, reason="sends SIGINT to a process group and finds workers in /proc")
def test_ctrl_c_exits_130_with_no_worker_left_and_nothing_half_written(
    cohort_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    process, workers = _start_extract(cohort_dir / "manifest.csv", out)
    try:
        time.sleep(1.5)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl+C in a terminal does: the whole foreground group
        try:
            code = process.wait(60)
        except subprocess.TimeoutExpired:
            pytest.fail("alnm extract did not stop within 60 s of Ctrl+C")
        output = process.stdout.read().decode()
        assert code == 130, output
        assert "interrupted" in output
        assert _wait_until(lambda: all(_gone(pid) for pid in workers), 5)
        assert not (out / "extraction.json").exists()  # the output set is never left half-written
        assert not [p for p in out.rglob(".*") if p.is_file()]  # no temporary file of an atomic writer
        _cache_entries_are_whole(out)
    finally:
        _cleanup(process, workers)


WATCHDOG_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, sys, time

    from ALNMPredictorLib import extraction


    def child(parent_pid, use_sentinel):
        sentinel = multiprocessing.parent_process().sentinel if use_sentinel else None
        extraction._watch_parent(parent_pid, sentinel)  # no prctl here: the portable fallback alone


    if __name__ == "__main__":
        worker = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(), sys.argv[1] == "sentinel"))
        worker.start()
        print(worker.pid, flush=True)
        time.sleep(120)
    """
)


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL of the parent")
@pytest.mark.parametrize("mode", ["sentinel", "poll"])
def test_portable_watchdog_ends_a_worker_whose_parent_died(tmp_path: Path, mode: str) -> None:
    script = tmp_path / "parent.py"
    script.write_text(WATCHDOG_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
    worker = int(parent.stdout.readline())
    try:
        time.sleep(0.5)
        assert not _gone(worker)  # alive while its parent is
        parent.kill()
        parent.wait(10)
        assert _wait_until(lambda: _gone(worker), 5)  # one poll interval (1 s) plus start-up
    finally:
        _cleanup(parent, [worker])


# ---------------------------------------------------------------------------------------------------
# 3. Outputs follow the umask, like open() and mkdir()


@contextlib.contextmanager
def _umask(mask: int):
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_atomic_writers_follow_the_umask(tmp_path: Path, mask: int) -> None:
    with _umask(mask):
        files = [
            write_text(tmp_path / "a.txt", "x"),
            write_bytes(tmp_path / "b.bin", b"x"),
            write_json(tmp_path / "sub" / "c.json", {"a": 1}),
            write_table(tmp_path / "d.csv", pd.DataFrame({"a": [1]})),
            write_table(tmp_path / "e.parquet", pd.DataFrame({"a": [1]})),
        ]
        folder = make_temp_dir(tmp_path, prefix=".x.", suffix=".tmp")
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
    assert [_mode(f) for f in files] == [0o666 & ~mask] * len(files) == [_mode(plain)] * len(files)
    assert _mode(folder) == 0o777 & ~mask == _mode(tmp_path / "sub")
    assert folder.name.startswith(".x.") and folder.name.endswith(".tmp") and len(folder.name) == 3 + 8 + 4


def test_temporaries_of_killed_writers_are_still_found(tmp_path: Path) -> None:
    started = time.time()
    done = write_text(tmp_path / "done.csv", "a\n")
    left = [
        fileio._new_file(tmp_path, ".table.csv.", ".tmp"),
        fileio._new_file(tmp_path, ".features.", ".parquet"),
    ]
    assert sorted(fileio.remove_temporaries(tmp_path, since=started)) == sorted(left)
    assert done.is_file() and not any(p.exists() for p in left)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_saved_model_and_extraction_outputs_follow_the_umask(
    cohort_dir: Path, tmp_path: Path, mask: int
) -> None:
    manifest = _manifest_of(cohort_dir, tmp_path / "cohort", 2)
    with _umask(mask):
        model = write_bundle(tmp_path / "shared" / "model", {"cutoff": 0.5})
        zipped = write_bundle(tmp_path / "shared" / "model.zip", {"cutoff": 0.5})
        out = tmp_path / "features"
        extract_cohort(
            load_manifest(manifest), out, handcrafted=FAST_PARAMS, deep=None, workers=1, progress=False
        )
    assert _mode(model) == 0o777 & ~mask
    written = [*model.iterdir(), zipped, *[p for p in out.rglob("*") if p.is_file()]]
    assert len(written) > 8
    assert {p.name: _mode(p) for p in written} == {p.name: 0o666 & ~mask for p in written}
    assert {_mode(p) for p in out.rglob("*") if p.is_dir()} == {0o777 & ~mask}


def _save_dicom(ds, path) -> None:
    """Write a conformant DICOM file with pydicom 3 (``enforce_file_format``) or 2.4 (``write_like_original``)."""
    import pydicom

    if int(pydicom.__version__.split(".")[0]) >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, write_like_original=False)
