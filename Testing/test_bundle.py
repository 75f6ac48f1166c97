"""The saved-model bundle: checksums, tamper detection, schema versions, atomic replacement, zip."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from ALNMPredictorLib.bundle import (
    CHECKSUM_FILE,
    MODEL_FILE,
    SCHEMA_VERSION,
    load_bundle,
    open_bundle,
    write_bundle,
)
from ALNMPredictorLib.errors import BundleError


def _tensors(tmp: Path) -> None:
    save_file({"w": np.arange(6, dtype=np.float32).reshape(2, 3)}, str(tmp / "head_tumor.safetensors"))


def _write(path: Path, **extra) -> Path:
    return write_bundle(path, {"cutoff": 0.701, "coef": [1.0, -2.5], **extra}, _tensors)


def test_round_trip(tmp_path: Path) -> None:
    folder = _write(tmp_path / "model")
    bundle = load_bundle(folder)
    assert bundle.model["cutoff"] == 0.701 and bundle.model["schema_version"] == SCHEMA_VERSION
    arr = load_file(str(bundle.file("head_tumor.safetensors")))["w"]
    np.testing.assert_array_equal(arr, np.arange(6, dtype=np.float32).reshape(2, 3))
    with pytest.raises(BundleError, match="no file 'other.bin'"):
        bundle.file("other.bin")
    with pytest.raises(BundleError, match="no file"):
        bundle.file("../outside.json")


def test_edited_json_is_refused(tmp_path: Path) -> None:
    folder = _write(tmp_path / "model")
    body = json.loads((folder / MODEL_FILE).read_text())
    body["cutoff"] = 0.1
    (folder / MODEL_FILE).write_text(json.dumps(body))
    with pytest.raises(BundleError, match="model.json' does not match its checksum"):
        load_bundle(folder)


def test_swapped_tensor_is_refused(tmp_path: Path) -> None:
    folder = _write(tmp_path / "model")
    save_file({"w": np.zeros((2, 3), dtype=np.float32)}, str(folder / "head_tumor.safetensors"))
    with pytest.raises(BundleError, match="head_tumor.safetensors' does not match"):
        load_bundle(folder)


def test_added_or_missing_files_are_refused(tmp_path: Path) -> None:
    folder = _write(tmp_path / "model")
    (folder / "evil.pkl").write_bytes(b"\x80\x04")
    with pytest.raises(BundleError, match="not covered by the checksums.*evil.pkl"):
        load_bundle(folder)
    (folder / "evil.pkl").unlink()
    (folder / "head_tumor.safetensors").unlink()
    with pytest.raises(BundleError, match="is missing"):
        load_bundle(folder)
    (folder / CHECKSUM_FILE).unlink()
    with pytest.raises(BundleError, match="no checksums"):
        load_bundle(folder)


def test_newer_schema_is_refused_with_clear_message(tmp_path: Path) -> None:
    def newer(tmp: Path) -> None:
        pass

    folder = write_bundle(tmp_path / "model", {"x": 1}, newer)
    body = json.loads((folder / MODEL_FILE).read_text())
    body["schema_version"] = SCHEMA_VERSION + 1
    (folder / MODEL_FILE).write_text(json.dumps(body))
    # re-sign so that only the version check can refuse it
    from ALNMPredictorLib.bundle import sha256_file

    (folder / CHECKSUM_FILE).write_text(f"{sha256_file(folder / MODEL_FILE)}  {MODEL_FILE}\n")
    with pytest.raises(
        BundleError, match=f"schema version {SCHEMA_VERSION + 1} is newer.*update ALNM Predictor"
    ):
        load_bundle(folder)


def test_pickle_files_cannot_be_written(tmp_path: Path) -> None:
    def bad(tmp: Path) -> None:
        (tmp / "head.pt").write_bytes(b"pickle")

    with pytest.raises(BundleError, match="refusing to store 'head.pt'"):
        write_bundle(tmp_path / "model", {"x": 1}, bad)
    assert not (tmp_path / "model").exists()
    assert not list(tmp_path.iterdir()), "temporary folder left behind"


def test_failed_rewrite_keeps_the_old_model(tmp_path: Path) -> None:
    folder = _write(tmp_path / "model")

    def crash(tmp: Path) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_bundle(folder, {"cutoff": 0.2}, crash)
    assert load_bundle(folder).model["cutoff"] == 0.701
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    _write(folder, cutoff=0.5)
    assert load_bundle(folder).model["cutoff"] == 0.5


def test_zip_round_trip_and_traversal(tmp_path: Path) -> None:
    archive = _write(tmp_path / "model.zip")
    assert zipfile.is_zipfile(archive)
    with open_bundle(archive) as bundle:
        assert bundle.model["coef"] == [1.0, -2.5]
        assert load_file(str(bundle.file("head_tumor.safetensors")))["w"].shape == (2, 3)
    with pytest.raises(BundleError, match="zipped model"):
        load_bundle(archive)
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../escape.json", "{}")
    with pytest.raises(BundleError, match="unexpected entry"):
        with open_bundle(evil):
            pass
    assert not (tmp_path.parent / "escape.json").exists()
