"""A bad saved model is refused with a BundleError naming the file and what is wrong, never accepted.

Each test starts from the committed SYNTHETIC demo model (or a bundle written by the project's own code),
changes one thing and re-signs ``checksums.sha256``, so that the checksum check passes and the one
check under test is what refuses the model.
"""

from __future__ import annotations

import io
import json
import math
import os
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from ALNMPredictorLib import bundle as bundle_module
from ALNMPredictorLib.bundle import (
    CHECKSUM_FILE,
    MAX_TENSOR_BYTES,
    MODEL_FILE,
    SCHEMA_VERSION,
    check_types,
    load_bundle,
    open_bundle,
    sha256_file,
)
from ALNMPredictorLib.cli import main as alnm
from ALNMPredictorLib.errors import ALNMError, BundleError
from ALNMPredictorLib.pipeline import PipelineSettings, load_model

DEMO = Path(__file__).resolve().parents[1] / "ALNMPredictor" / "Resources" / "Models" / "DemoModel.zip"


# --------------------------------------------------------------------------------------------------
# helpers


def _demo_folder(tmp_path: Path, name: str = "model") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    with zipfile.ZipFile(DEMO) as zf:
        zf.extractall(folder)
    return folder


def _resign(folder: Path) -> None:
    """Rewrite checksums.sha256 over every file, as the writer does."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != CHECKSUM_FILE)
    (folder / CHECKSUM_FILE).write_text("".join(f"{sha256_file(p)}  {p.name}\n" for p in files))


def _edit(folder: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    """Apply ``change`` to model.json (NaN/Infinity written as Python's json writes them) and re-sign."""
    body = json.loads((folder / MODEL_FILE).read_text())
    change(body)
    (folder / MODEL_FILE).write_text(json.dumps(body, allow_nan=True))
    _resign(folder)
    return folder


def _zip(folder: Path, target: Path) -> Path:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.iterdir()):
            zf.write(path, arcname=path.name)
    return target


def _refused(model: Path, match: str, **kwargs: Any) -> BundleError:
    """load_model refuses ``model`` with a BundleError whose message names the model and matches."""
    with pytest.raises(BundleError, match=match) as info:
        load_model(model, **kwargs)
    assert str(model) in str(info.value), f"the message does not name the model: {info.value}"
    return info.value


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def test_demo_model_still_loads_from_zip_folder_and_model_json(tmp_path: Path) -> None:
    declared = json.loads(zipfile.ZipFile(DEMO).read(MODEL_FILE))["model"]["combined_model"]["variables"]
    assert load_model(DEMO).model.combined_model_.variables == declared and "ln_score" in declared
    folder = _demo_folder(tmp_path)
    _resign(folder)  # the helpers re-sign exactly as the writer signs
    loaded = load_model(folder / MODEL_FILE)
    assert math.isclose(loaded.model.combined_model_.cutoff, load_model(DEMO).model.combined_model_.cutoff)
    assert load_model(_zip(folder, tmp_path / "again.zip")).model.regions == ["tumor", "ln"]


# --------------------------------------------------------------------------------------------------
# 1. zip: sizes and names checked before anything is unpacked


def test_zip_bomb_is_refused_before_anything_is_unpacked(tmp_path: Path) -> None:
    """300 MB of zeros compressed to about 1.4 MB (350 KB at level 9): refused from its header alone."""
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        with zf.open("deep_tumor.safetensors", "w") as member:
            zeros = bytes(4 * 2**20)
            for _ in range(75):
                member.write(zeros)
    assert bomb.stat().st_size < 2_000_000
    assert 300 * 2**20 > MAX_TENSOR_BYTES
    with pytest.raises(
        BundleError, match=r"bomb\.zip: 'deep_tumor\.safetensors' would unpack to 314,572,800 bytes"
    ):
        load_model(bomb)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError, match="refusing to unpack"):
        bundle_module._safe_unzip(bomb, dest)
    assert _tree_bytes(dest) == 0 and not list(dest.iterdir())


def test_zip_total_and_member_count_limits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _zip(_demo_folder(tmp_path), tmp_path / "model.zip")
    monkeypatch.setattr(bundle_module, "MAX_TOTAL_BYTES", 100_000)  # the demo model unpacks to about 240 KB
    with pytest.raises(
        BundleError, match=r"model\.zip: the model zip would unpack to [\d,]+ bytes, more than the 100,000"
    ):
        load_model(archive)
    monkeypatch.undo()
    monkeypatch.setattr(bundle_module, "MAX_MEMBERS", 2)
    with pytest.raises(BundleError, match="has 3 entries; a model has at most 2"):
        load_model(archive)


def _patch_declared_size(archive: Path, name: str, declared: int) -> None:
    """Make ``name``'s local and central headers declare ``declared`` unpacked bytes (a lying header)."""
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(name)
    assert not info.flag_bits & 0x08, "sizes must be in the local header"
    struct.pack_into("<I", data, info.header_offset + 22, declared)  # local header: uncompressed size
    central = data.index(b"PK\x01\x02")
    assert data[central + 46 : central + 46 + len(name)] == name.encode()
    struct.pack_into("<I", data, central + 24, declared)  # central directory: uncompressed size
    archive.write_bytes(bytes(data))


def test_zip_member_larger_than_its_header_declares_is_stopped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.json", bytes(8 * 2**20))  # 8 MB of zeros, a few KB compressed
    _patch_declared_size(archive, "model.json", 1000)
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError, match=r"liar\.zip: cannot unpack 'model\.json'"):
        bundle_module._safe_unzip(archive, dest)
    assert _tree_bytes(dest) <= 1000
    with pytest.raises(BundleError, match="liar.zip"):
        load_model(archive)

    # whatever zipfile does with such a member, the copy itself stops after the declared size
    real_open = zipfile.ZipFile.open

    def generous_open(self: zipfile.ZipFile, name: Any, *args: Any, **kwargs: Any) -> Any:
        real_open(self, name, *args, **kwargs).close()
        return io.BytesIO(bytes(5 * 2**20))

    monkeypatch.setattr(zipfile.ZipFile, "open", generous_open)
    with pytest.raises(BundleError, match=r"unpacks to more than the 1,000 bytes its header declares"):
        bundle_module._safe_unzip(archive, dest)
    assert _tree_bytes(dest) == 0


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("/tmp/abs.json", "unexpected entry '/tmp/abs.json'"),
        ("../escape.json", "unexpected entry '../escape.json'"),
        ("sub/model.json", "unexpected entry 'sub/model.json'"),
        ("..\\escape.json", "unexpected entry"),
        ("C:escape.json", "unexpected entry"),
        ("evil.pkl", "unexpected entry 'evil.pkl'.*only JSON"),
        ("link.json", "link or special file"),
    ],
)
def test_zip_entries_that_are_not_plain_files_are_refused(tmp_path: Path, name: str, why: str) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        if name == "link.json":
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(name, "{}")
    dest = tmp_path / "dest"
    dest.mkdir()
    with pytest.raises(BundleError, match=why):
        bundle_module._safe_unzip(archive, dest)
    assert not list(dest.iterdir())
    assert not (tmp_path / "escape.json").exists()
    with pytest.raises(BundleError, match=r"evil\.zip: "):
        load_model(archive)


def test_zip_with_a_member_twice_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "twice.zip"
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("model.json", "{}")
        zf.writestr("model.json", "{}")
    with pytest.raises(BundleError, match="'model.json' occurs twice"):
        load_model(archive)


# --------------------------------------------------------------------------------------------------
# 2. NaN, infinite numbers and texts where numbers belong


@pytest.mark.parametrize(
    ("change", "path"),
    [
        (
            lambda m: m["model"]["combined_model"]["coefficients"].update(ln_score=math.nan),
            r"model\.combined_model\.coefficients\.ln_score is nan",
        ),
        (
            lambda m: m["model"]["combined_model"]["coefficients"].update({"(Intercept)": math.inf}),
            r"model\.combined_model\.coefficients\['\(Intercept\)'\] is inf",
        ),
        (
            lambda m: m["model"]["region_scores"]["ln"]["means"].__setitem__(3, -math.inf),
            r"model\.region_scores\.ln\.means\[3\] is -inf",
        ),
        (
            lambda m: m["model"]["region_scores"]["tumor"]["sds"].__setitem__(0, math.nan),
            r"model\.region_scores\.tumor\.sds\[0\] is nan",
        ),
        (
            lambda m: m["model"]["region_scores"]["tumor"].update(intercept=math.nan),
            r"model\.region_scores\.tumor\.intercept is nan",
        ),
        (
            lambda m: m["model"]["combined_model"].update(cutoff=math.nan),
            r"model\.combined_model\.cutoff is nan",
        ),
        (
            lambda m: m["model"]["score_models"]["ln"]["ranges"]["ln_score"].__setitem__(1, math.inf),
            r"model\.score_models\.ln\.ranges\.ln_score\[1\] is inf",
        ),
        (
            lambda m: m["model"]["region_scores"]["ln"]["maxs"].__setitem__(0, math.nan),
            r"model\.region_scores\.ln\.maxs\[0\] is nan",
        ),
        (lambda m: m["settings"].update(icc_threshold=math.nan), r"settings\.icc_threshold is nan"),
    ],
)
def test_non_finite_numbers_are_refused_with_their_json_path(
    tmp_path: Path, change: Callable, path: str
) -> None:
    folder = _edit(_demo_folder(tmp_path), change)
    assert "NaN" in (folder / MODEL_FILE).read_text() or "Infinity" in (folder / MODEL_FILE).read_text()
    message = str(_refused(folder, path + ", not a finite number"))
    assert f"{MODEL_FILE}:" in message
    _refused(_zip(folder, tmp_path / "model.zip"), path, deep_heads=False)


def test_a_number_too_large_for_a_float_is_refused(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path)
    text = (folder / MODEL_FILE).read_text()
    body = json.loads(text)
    old = json.dumps(body["model"]["combined_model"]["cutoff"])
    (folder / MODEL_FILE).write_text(text.replace(f'"cutoff": {old}', '"cutoff": 1e999', 1))
    _resign(folder)
    _refused(folder, r"model\.combined_model\.cutoff is inf")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["model"]["combined_model"]["coefficients"].update(ln_score="1.7"),
            r"model\.combined_model\.coefficients\.ln_score: expected a number, found the text \"1\.7\"",
        ),
        (
            lambda m: m["model"]["region_scores"]["tumor"]["coefficients"].__setitem__(0, "0.3"),
            r"model\.region_scores\.tumor\.coefficients\[0\]: expected a number, found the text \"0\.3\"",
        ),
        (
            lambda m: m["model"]["combined_model"].update(cutoff=True),
            r"model\.combined_model\.cutoff: expected a number, found true",
        ),
        (lambda m: m["model"]["combined_model"].update(cutoff=1.5), r"cut-off must lie in \[0, 1\]"),
        (
            lambda m: m["model"]["region_scores"]["ln"]["sds"].__setitem__(2, 0.0),
            r"model\.region_scores\.ln\.sds\[2\]: a scaler SD must be positive",
        ),
        (
            lambda m: m["model"]["region_scores"]["ln"]["means"].append(1.0),
            r"model\.region_scores\.ln: 11 selected features but .*12 means",
        ),
        (
            lambda m: m["model"]["clinical_model"]["ranges"].update(tumor_size_cm=[6.8, 0.5]),
            r"tumor_size_cm: expected a training range \[low, high\]",
        ),
    ],
)
def test_texts_and_impossible_values_where_numbers_belong_are_refused(
    tmp_path: Path, change: Callable, message: str
) -> None:
    _refused(_edit(_demo_folder(tmp_path), change), message, deep_heads=False)


# --------------------------------------------------------------------------------------------------
# 3. every file the model refers to is a plain file inside it and covered by the checksums


def test_deep_head_name_outside_the_bundle_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.json").write_text('{"format": "alnm-deep-features"}')
    (outside / "x.safetensors").write_bytes(b"not loaded")
    for name in ("../outside/x", "..", "/abs/x", "sub\\x", ".hidden"):
        folder = _edit(
            _demo_folder(tmp_path, f"model{abs(hash(name))}"),
            lambda m, n=name: m.update(deep_heads={"tumor": n}),
        )
        _refused(folder, r"model\.json: deep_heads\.tumor: .* is not the name of a file inside the model")
        _refused(folder, "is not the name of a file inside the model", deep_heads=False)
    folder = _edit(_demo_folder(tmp_path, "typed"), lambda m: m.update(deep_heads={"tumor": ["deep_tumor"]}))
    _refused(folder, r"deep_heads\.tumor: expected a text, found a list")
    folder = _edit(_demo_folder(tmp_path, "region"), lambda m: m.update(deep_heads={"axilla": "deep_axilla"}))
    _refused(folder, r"deep_heads\.axilla: a deep head for 'axilla', which is not a region of the model")


def test_deep_head_files_must_be_covered_by_the_checksums(tmp_path: Path) -> None:
    folder = _edit(_demo_folder(tmp_path), lambda m: m.update(deep_heads={"tumor": "deep_tumor"}))
    # checked without PyTorch too (deep_heads=False), so that such a model is refused everywhere
    _refused(folder, r"has no file 'deep_tumor\.json' \(not listed in checksums\.sha256\)", deep_heads=False)
    (folder / "deep_tumor.json").write_text("{}")
    (folder / "deep_tumor.safetensors").write_bytes(b"")
    checksums = (folder / CHECKSUM_FILE).read_text()
    with pytest.raises(BundleError, match="not covered by the checksums.*deep_tumor"):
        load_model(folder)
    (folder / "deep_tumor.safetensors").unlink()
    (folder / CHECKSUM_FILE).write_text(
        checksums + f"{sha256_file(folder / 'deep_tumor.json')}  deep_tumor.json\n"
    )
    _refused(folder, r"has no file 'deep_tumor\.safetensors'", deep_heads=False)


@pytest.mark.parametrize(
    "name", ["../outside.json", "/etc/hostname", "sub/x.json", ".hidden.json", CHECKSUM_FILE]
)
def test_checksum_lines_naming_files_outside_the_bundle_are_refused(tmp_path: Path, name: str) -> None:
    folder = _demo_folder(tmp_path)
    (tmp_path / "outside.json").write_text("{}")
    digest = "0" * 64
    with open(folder / CHECKSUM_FILE, "a") as fh:
        fh.write(f"{digest}  {name}\n")
    with pytest.raises(
        BundleError, match=f"{CHECKSUM_FILE} lists '.*', which is not a file inside the model"
    ):
        load_bundle(folder)


def test_malformed_checksum_digest_is_refused(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path)
    text = (folder / CHECKSUM_FILE).read_text()
    digest = text.split()[0]
    (folder / CHECKSUM_FILE).write_text(text.replace(digest, digest[:8].upper() + "zz" + digest[8:], 1))
    with pytest.raises(BundleError, match="is not a SHA-256 digest"):
        load_model(folder)


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symbolic links here")
def test_symlinked_file_in_a_model_folder_is_refused(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path)
    real = tmp_path / "formulas_elsewhere.txt"
    (folder / "formulas.txt").rename(real)
    (folder / "formulas.txt").symlink_to(real)
    with pytest.raises(BundleError, match="formulas.txt: a model's files must be plain files, not links"):
        load_model(folder)


def test_bundle_file_only_serves_checksummed_files(tmp_path: Path) -> None:
    folder = _demo_folder(tmp_path)
    with open_bundle(folder) as bundle:
        assert bundle.file("formulas.txt").is_file()
        (folder / "stray.json").write_text("{}")  # appeared after verification: not served
        with pytest.raises(BundleError, match="no file 'stray.json'"):
            bundle.file("stray.json")
        with pytest.raises(BundleError, match="no file"):
            bundle.file("../model/formulas.txt")


# --------------------------------------------------------------------------------------------------
# 4. schema version


@pytest.mark.parametrize(
    ("version", "message"),
    [
        ("2", r'the schema version must be an integer, found the text "2"'),
        (2.0, "the schema version must be an integer, found the number 2.0"),
        (True, "the schema version must be an integer, found true"),
        (None, "the schema version must be an integer, found null"),
        (0, "schema version 0 is not a version ALNM Predictor ever wrote"),
        (
            SCHEMA_VERSION + 1,
            f"schema version {SCHEMA_VERSION + 1} is newer than this software reads .*update ALNM Predictor",
        ),
    ],
)
def test_schema_version_must_be_a_known_integer(tmp_path: Path, version: Any, message: str) -> None:
    folder = _edit(_demo_folder(tmp_path), lambda m: m.update(schema_version=version))
    error = _refused(folder, message)
    assert "newer" not in str(error) or isinstance(version, int)


def test_missing_schema_version_is_refused(tmp_path: Path) -> None:
    folder = _edit(_demo_folder(tmp_path), lambda m: m.pop("schema_version"))
    _refused(folder, "no schema_version")


# --------------------------------------------------------------------------------------------------
# 5. missing keys and wrong shapes: a BundleError naming the key, never a KeyError or TypeError


def _drop(*keys: Any) -> Callable[[dict[str, Any]], None]:
    def change(body: dict[str, Any]) -> None:
        node = body
        for key in keys[:-1]:
            node = node[key]
        del node[keys[-1]]

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_drop("model"), r"model\.json: required key 'model' is missing"),
        (_drop("model", "combined_model"), r"model\.json: model: required key 'combined_model' is missing"),
        (_drop("model", "clinical_model"), r"model: required key 'clinical_model' is missing"),
        (
            _drop("model", "region_scores", "ln", "coefficients"),
            r"model\.region_scores\.ln: required key 'coefficients' is missing",
        ),
        (
            _drop("model", "region_scores", "ln"),
            r"model\.region_scores: region scores for tumor, but the model's regions are tumor, ln",
        ),
        (
            _drop("model", "region_scores", "tumor", "params", "region"),
            r"model\.region_scores\.tumor\.params: required key 'region'",
        ),
        (
            _drop("model", "combined_model", "coefficients", "ln_score"),
            r"model\.combined_model\.coefficients: required key 'ln_score' is missing",
        ),
        (
            _drop("model", "clinical_model", "coefficients", "us_reported_alnm[present]"),
            r"model\.clinical_model\.coefficients: required key 'us_reported_alnm\[present\]' is missing",
        ),
        (
            _drop(
                "model", "combined_model", "ranges", "ln_score"
            ),  # a predictor of the demo's combined model
            r"model\.combined_model\.ranges: required key 'ln_score' is missing",
        ),
        (
            _drop("model", "score_models", "ln", "encoding", "ln_score"),
            r"model\.score_models\.ln\.encoding: required key 'ln_score' is missing",
        ),
        (
            _drop("model", "clinical_model", "encoding", "us_reported_alnm", "reference"),
            r"model\.clinical_model\.encoding\.us_reported_alnm: required key 'reference' is missing",
        ),
        (_drop("model", "params", "regions"), r"model\.params: required key 'regions' is missing"),
        (
            lambda m: m["model"].update(region_scores=[]),
            r"model\.region_scores: expected an object, found a list",
        ),
        (
            lambda m: m["model"].update(combined_model="x"),
            r"model\.combined_model: expected an object, found the text \"x\"",
        ),
        (lambda m: m["model"]["params"].update(colour="blue"), r"model\.params: unknown setting\(s\) colour"),
        (
            lambda m: m["model"]["region_scores"]["ln"].update(version="2"),
            r"model\.region_scores\.ln\.version: expected an integer",
        ),
        (
            lambda m: m["model"]["region_scores"]["ln"].update(kind="other"),
            r"model\.region_scores\.ln: not a saved region score",
        ),
        (
            lambda m: m["model"]["region_scores"]["ln"]["params"].update(region="tumor"),
            r"params\.region: the text \"tumor\" is not the region it is saved under \('ln'\)",
        ),
        (
            lambda m: m["model"]["combined_model"]["encoding"]["ln_score"].update(type="ordinal"),
            r"encoding\.ln_score\.type: expected \"numeric\" or \"categorical\"",
        ),
        (lambda m: m.update(settings=["seed", 0]), r"settings: expected an object, found a list"),
    ],
)
def test_missing_keys_and_wrong_shapes_name_the_key_and_the_file(
    tmp_path: Path, change: Callable, message: str
) -> None:
    folder = _edit(_demo_folder(tmp_path), change)
    _refused(folder, message, deep_heads=False)
    _refused(_zip(folder, tmp_path / "model.zip"), message)


def test_cli_reports_a_bad_model_as_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _edit(_demo_folder(tmp_path), _drop("model", "combined_model"))
    code = alnm(
        [
            "predict",
            str(tmp_path / "absent.csv"),
            "--model",
            str(folder),
            "--out",
            str(tmp_path / "p.csv"),
            "--no-progress",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "alnm: error:" in err and "required key 'combined_model' is missing" in err and str(folder) in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------------------
# 6. settings of the wrong type are refused, never converted ("no" is not True)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["settings"].update(normalize="no"),
            r'settings\.normalize: expected true or false, found the text "no"',
        ),
        (
            lambda m: m["settings"].update(normalize=0),
            r"settings\.normalize: expected true or false, found the number 0",
        ),
        (
            lambda m: m["settings"].update(seed="0"),
            r'settings\.seed: expected an integer, found the text "0"',
        ),
        (
            lambda m: m["settings"].update(deep_epochs=True),
            r"settings\.deep_epochs: expected an integer, found true",
        ),
        (
            lambda m: m["settings"].update(workers="all"),
            r'settings\.workers: expected an integer or null, found the text "all"',
        ),
        (
            lambda m: m["settings"].update(lasso_rule=1),
            r"settings\.lasso_rule: expected a text, found the number 1",
        ),
        (lambda m: m["settings"].update(colour="blue"), r"settings: unknown setting\(s\) colour"),
        (
            lambda m: m["model"]["region_scores"]["ln"]["params"].update(clip="no"),
            r'model\.region_scores\.ln\.params\.clip: expected true or false, found the text "no"',
        ),
        (
            lambda m: m["model"]["params"].update(screen_p="0.05"),
            r'model\.params\.screen_p: expected a number, found the text "0.05"',
        ),
    ],
)
def test_settings_of_the_wrong_type_are_refused(tmp_path: Path, change: Callable, message: str) -> None:
    _refused(_edit(_demo_folder(tmp_path), change), message, deep_heads=False)


def test_settings_of_the_right_type_still_load(tmp_path: Path) -> None:
    def change(m: dict[str, Any]) -> None:
        m["settings"].update(
            normalize=False, workers=None, icc_threshold=1
        )  # an int where a float is expected
        m["model"]["region_scores"]["ln"]["params"].update(clip=False)

    loaded = load_model(_edit(_demo_folder(tmp_path), change))
    assert loaded.info["settings"]["normalize"] is False
    assert loaded.model.region_scores_["ln"].clip is False


def test_every_pipeline_setting_type_is_checked() -> None:
    """A new PipelineSettings field whose annotation check_types does not understand would go unchecked."""
    known = {"bool", "int", "float", "str", "None"}
    for f in fields(PipelineSettings):
        assert {part.strip() for part in str(f.type).split("|")} <= known, f"{f.name}: {f.type}"
    with pytest.raises(BundleError, match=r"x\.normalize: expected true or false"):
        check_types({"normalize": "no"}, {f.name: f.type for f in fields(PipelineSettings)}, "x")


# --------------------------------------------------------------------------------------------------
# deep heads (need PyTorch)


@pytest.fixture(scope="module")
def deep_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model with a tumor deep head (random VGG19 backbone, untrained head) written by DeepFeatureExtractor.save."""
    pytest.importorskip("torch", reason="deep heads need PyTorch")
    pytest.importorskip("safetensors")
    from ALNMPredictorLib.deep import DeepFeatureExtractor, DeepHead, RandomWeightsWarning

    root = tmp_path_factory.mktemp("deep")
    folder = _demo_folder(root)
    extractor = DeepFeatureExtractor(weights="none", input_size=32, device="cpu")
    extractor.head_ = DeepHead(extractor.trunk_dim, extractor.n_features, extractor.dropout).eval()
    extractor.training_summary_ = {}
    with pytest.warns(RandomWeightsWarning):
        extractor.save(folder, "deep_tumor")
    return _edit(folder, lambda m: m.update(deep_heads={"tumor": "deep_tumor"}))


def _deep_copy(deep_bundle: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for path in deep_bundle.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    return folder


def _edit_head(folder: Path, change: Callable[[dict[str, Any]], Any]) -> Path:
    meta = json.loads((folder / "deep_tumor.json").read_text())
    change(meta)
    (folder / "deep_tumor.json").write_text(json.dumps(meta, allow_nan=True))
    _resign(folder)
    return folder


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_deep_bundle_loads(deep_bundle: Path, tmp_path: Path) -> None:
    loaded = load_model(_zip(deep_bundle, tmp_path / "deep.zip"))
    assert set(loaded.deep_models) == {"tumor"} and loaded.deep_models["tumor"].input_size == 32


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda m: m["settings"].update(margin="0.1"),
            r'deep_tumor\.json: settings\.margin: expected a number, found the text "0\.1"',
        ),
        (
            lambda m: m["settings"].update(input_size=32.0),
            r"settings\.input_size: expected an integer, found the number 32\.0",
        ),
        (lambda m: m["settings"].update(intensity=None), r"settings\.intensity: expected a text, found null"),
        (
            lambda m: m["settings"].update(dropout=math.nan),
            r"deep_tumor\.json: settings\.dropout: not a finite number",
        ),
        (lambda m: m["settings"].update(device="cuda"), r"settings: unknown setting\(s\) device"),
        (lambda m: m.pop("settings"), r"deep_tumor\.json: required key 'settings' is missing"),
        (lambda m: m.pop("trunk_dim"), r"required key 'trunk_dim' is missing"),
        (lambda m: m.update(version="2"), r'version: expected an integer, found the text "2"'),
        (lambda m: m.update(version=99), r"newer version \(format 99 > 2\)"),
        (lambda m: m["backbone"].pop("seed"), r"backbone: required key 'seed' is missing"),
        (lambda m: m["backbone"].update(seed=None), r"backbone\.seed: expected an integer, found null"),
        (
            lambda m: m["tensors"].update(file="../deep_tumor.safetensors"),
            r"tensors\.file: '\.\./deep_tumor\.safetensors' is not the name of a file",
        ),
    ],
)
def test_deep_head_metadata_is_read_strictly(
    deep_bundle: Path, tmp_path: Path, change: Callable, message: str
) -> None:
    pytest.importorskip("torch")
    folder = _edit_head(_deep_copy(deep_bundle, tmp_path), change)
    with pytest.raises(BundleError, match=message):
        load_model(folder)
    archive = _zip(folder, tmp_path / "deep.zip")
    with pytest.raises(BundleError, match=message) as info:
        load_model(archive)
    assert f"{archive}/deep_tumor." in str(info.value), "a zipped model's file is named inside the zip"


def test_nan_in_deep_head_tensors_is_refused(deep_bundle: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import load, save

    folder = _deep_copy(deep_bundle, tmp_path)
    tensors = load((folder / "deep_tumor.safetensors").read_bytes())
    tensors["head.bottleneck.weight"][0, 0] = torch.nan
    blob = save(tensors)
    (folder / "deep_tumor.safetensors").write_bytes(blob)
    import hashlib

    _edit_head(folder, lambda m: m["tensors"].update(sha256=hashlib.sha256(blob).hexdigest()))
    with pytest.raises(
        BundleError, match=r"deep_tumor\.safetensors: tensor 'head\.bottleneck\.weight' holds NaN or infinite"
    ):
        load_model(folder)


def test_deep_load_refuses_a_name_outside_its_folder(deep_bundle: Path) -> None:
    pytest.importorskip("torch")
    from ALNMPredictorLib.deep import DeepFeatureExtractor

    with pytest.raises(BundleError, match="is not the name of a deep feature model inside the folder"):
        DeepFeatureExtractor.load(deep_bundle, "../deep/model/deep_tumor")


def test_bundle_errors_are_alnm_errors() -> None:
    assert issubclass(BundleError, ALNMError)
