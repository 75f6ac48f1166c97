"""Resources: image size limits, and output permissions that follow the umask."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from ALNMPredictorLib import cli, fileio, imaging
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

# A small, fast pyradiomics configuration for the cohort runs.
FAST_PARAMS = {
    "imageType": {"Original": {}},
    "featureClass": {"firstorder": None, "shape2D": None},
    "setting": {"binWidth": 25, "force2D": True, "force2Ddimension": 0},
}


# ---------------------------------------------------------------------------------------------------
# Image size limits


def _png_header(path: Path, rows: int, cols: int) -> Path:
    """A PNG whose header declares rows x cols 8-bit grey pixels, with (almost) no pixel data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body)
    return path


def test_limits_are_ordered_and_documented() -> None:
    assert 0 < imaging.WARN_IMAGE_PIXELS < imaging.MAX_IMAGE_PIXELS
    assert imaging.MAX_IMAGE_PIXELS < 2 * Image.MAX_IMAGE_PIXELS  # below Pillow's bomb error: ours comes first
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
    ds.save_as(dcm, enforce_file_format=True)
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


def test_validate_reports_a_bomb_and_goes_on_with_the_other_cases(cohort_dir: Path, tmp_path: Path, capsys) -> None:
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
        result = extract_cohort(cohort, tmp_path / "out", handcrafted=FAST_PARAMS, deep=None, workers=1, progress=False)
    failed = {(case, region, variant): error for case, region, variant, error in result.failed}
    main_ln = {key: error for key, error in failed.items() if key[1] == "ln" and key[2] == "main"}
    assert len(main_ln) == 3 and not [key for key in failed if key[1] == "tumor"]
    for (case, _, _), error in main_ln.items():
        image = cohort.table.loc[case, "ln_image"]
        assert error.startswith(f"case {case}, column ln_image (") and Path(image).name in error
        assert "image too large: 224 x 288 pixels" in error
    assert result.table["tumor_original_firstorder_Mean"].notna().all()
    warned = [r.getMessage() for r in caplog.records if "large image" in r.getMessage()]
    assert sum(f"{os.sep}images{os.sep}" in m and "_tumor.png" in m for m in warned) == 3  # each tumour image once (and masks)


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
    left = [fileio._new_file(tmp_path, ".table.csv.", ".tmp"), fileio._new_file(tmp_path, ".features.", ".parquet")]
    assert sorted(fileio.remove_temporaries(tmp_path, since=started)) == sorted(left)
    assert done.is_file() and not any(p.exists() for p in left)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("mask", [0o022, 0o002])
def test_saved_model_and_extraction_outputs_follow_the_umask(cohort_dir: Path, tmp_path: Path, mask: int) -> None:
    manifest = _manifest_of(cohort_dir, tmp_path / "cohort", 2)
    with _umask(mask):
        model = write_bundle(tmp_path / "shared" / "model", {"cutoff": 0.5})
        zipped = write_bundle(tmp_path / "shared" / "model.zip", {"cutoff": 0.5})
        out = tmp_path / "features"
        extract_cohort(load_manifest(manifest), out, handcrafted=FAST_PARAMS, deep=None, workers=1, progress=False)
    assert _mode(model) == 0o777 & ~mask
    written = [*model.iterdir(), zipped, *[p for p in out.rglob("*") if p.is_file()]]
    assert len(written) > 8
    assert {p.name: _mode(p) for p in written} == {p.name: 0o666 & ~mask for p in written}
    assert {_mode(p) for p in out.rglob("*") if p.is_dir()} == {0o777 & ~mask}
