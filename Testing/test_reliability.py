"""Bad inputs and faults across the commands: each gives its exit status, names what to fix, loses nothing.

Exit statuses: 0 done, 1 done but some cases failed (named, the others processed), 2 a fatal error
(one ``alnm: error:`` line, never a traceback), 130 interrupted. Saved-model faults are in
test_reliability_bundle.py, resource limits and processes in test_reliability_resources.py.
"""

from __future__ import annotations

import copy
import resource
import shutil
import signal
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from casepredict_fixture import shared_model
from PIL import Image

from ALNMPredictorLib import demomodel
from ALNMPredictorLib.cli import main as alnm
from ALNMPredictorLib.errors import ALNMError

PATH_COLUMNS = ("_image", "_mask", "_reader2", "_repeat")


@pytest.fixture(scope="module")
def model():
    shared = shared_model()
    demomodel.demo_case(
        shared.cases_dir, 0
    )  # writes the demo cases (manifest, study.yaml, images) on first use
    return shared


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    """One feature cache for every prediction here (entries are keyed by their inputs, so sharing is safe)."""
    return tmp_path_factory.mktemp("work")


def _manifest(
    model,
    folder: Path,
    mutate: Callable[[pd.DataFrame, Path], pd.DataFrame] | None = None,
    *,
    n: int = 3,
    study: str | None = "copy",
) -> Path:
    """A manifest of ``n`` demo cases with absolute paths in ``folder`` (+ study.yaml unless ``study`` is None)."""
    folder.mkdir(parents=True, exist_ok=True)
    table = pd.read_csv(model.cases_dir / "manifest.csv", dtype=str, keep_default_na=False).head(n)
    for col in [c for c in table.columns if c.endswith(PATH_COLUMNS)]:
        table[col] = [str(model.cases_dir / v) if v else "" for v in table[col]]
    if mutate is not None:
        table = mutate(table, folder)
    path = folder / "manifest.csv"
    table.to_csv(path, index=False)
    if study == "copy":
        shutil.copy(model.cases_dir / "study.yaml", folder / "study.yaml")
    elif study is not None:
        (folder / "study.yaml").write_text(study)
    return path


def _ids(manifest: Path) -> list[str]:
    return list(pd.read_csv(manifest, dtype=str, keep_default_na=False)["case_id"])


def _run(capsys, *args) -> tuple[int, str, str]:
    code = alnm([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def _predict(capsys, model, manifest: Path, out: Path, work: Path, *extra) -> tuple[int, str, str]:
    return _run(
        capsys,
        "predict",
        manifest,
        "--model",
        model.model_dir,
        "--out",
        out,
        "--work-dir",
        work,
        "--workers",
        "1",
        "--no-progress",
        *extra,
    )


def _files(folder: Path) -> list[str]:
    return (
        sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        if folder.exists()
        else []
    )


def _png_header_only(path: Path, width: int, height: int) -> Path:
    """A PNG whose header declares ``width`` x ``height`` pixels, with almost no data."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + chunk(b"IEND", b"")
    )
    path.write_bytes(png)
    return path


# --------------------------------------------------------------------------------------------------
# The manifest file itself: fatal, exit 2, one line naming the file and what to do


def test_unreadable_manifests_are_one_line_naming_the_file(capsys, model, tmp_path) -> None:
    good = _manifest(model, tmp_path / "good")
    code, _, err = _run(capsys, "validate", tmp_path / "nothere.csv")
    assert code == 2 and "manifest not found" in err and "nothere.csv" in err
    code, _, err = _run(capsys, "validate", tmp_path)
    assert code == 2 and "is a folder: give the manifest CSV file" in err
    text = good.read_text()
    latin = tmp_path / "latin1.csv"
    first = _ids(good)[0]
    latin.write_bytes(text.replace(first, first + "é", 1).encode("latin-1"))
    code, _, err = _run(capsys, "validate", latin)
    assert code == 2 and "not UTF-8 text: byte 0xe9 at line 2" in err and "CSV UTF-8" in err
    for separator, name in ((";", "semicolons"), ("\t", "tabs")):
        other = tmp_path / f"sep{ord(separator)}.csv"
        pd.read_csv(good, dtype=str, keep_default_na=False).to_csv(other, sep=separator, index=False)
        code, _, err = _run(capsys, "validate", other)
        assert code == 2 and f"separated by {name}, not commas" in err and other.name in err
    no_id = tmp_path / "noid.csv"
    pd.read_csv(good, dtype=str).drop(columns=["case_id"]).to_csv(no_id, index=False)
    code, _, err = _run(capsys, "validate", no_id)
    assert code == 2 and "no 'case_id' column" in err
    (tmp_path / "bad.yaml").write_text("variables: [unclosed\n")
    code, _, err = _run(capsys, "validate", good, "--study", tmp_path / "bad.yaml")
    assert code == 2 and "not valid YAML" in err and "bad.yaml" in err


# --------------------------------------------------------------------------------------------------
# Cells and files: errors of their case (exit 1), the other cases go on


def _validate(capsys, manifest: Path) -> tuple[int, str]:
    code, out, err = _run(capsys, "validate", manifest)
    return code, out + err


def test_bad_cells_are_errors_of_their_case(capsys, model, tmp_path) -> None:
    def cells(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[0, "label"] = "2"
        t.loc[1, "split"] = "holdout"
        t.loc[2, "tumor_size_cm"] = "4.5cm"
        return t

    manifest = _manifest(model, tmp_path / "cells", cells, n=12, study=None)
    code, text = _validate(capsys, manifest)
    ids = _ids(manifest)
    assert code == 1
    assert f"case {ids[0]}, column label: label must be 0 or 1" in text
    assert f"case {ids[1]}, column split: unknown split 'holdout'" in text
    assert (
        f"case {ids[2]}, column tumor_size_cm: the column is numeric but value '4.5cm' is not a number"
        in text
    )
    assert "tumor_size_cm (continuous)" in text  # one typo does not turn the column into a 3-level category

    def duplicate(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[1, "case_id"] = t.loc[0, "case_id"]
        t.loc[2, "case_id"] = ""
        return t

    code, text = _validate(capsys, _manifest(model, tmp_path / "dup", duplicate))
    ids = _ids(model.cases_dir / "manifest.csv")
    assert code == 1 and f"case {ids[0]}, column case_id: duplicate case_id (lines 2, 3)" in text
    assert "column case_id: line 4: case_id is empty" in text


def test_missing_value_texts_and_empty_columns(capsys, model, tmp_path) -> None:
    def na(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[1, "age"] = "not available"
        t["notes"] = ""
        t.loc[0, "histology"] = "Unknown"
        return t

    manifest = _manifest(model, tmp_path / "na", na, n=12, study=None)
    code, text = _validate(capsys, manifest)
    ids = _ids(manifest)
    assert code == 1 and "age (continuous)" in text
    assert f"case {ids[1]}, column age: missing value ('not available')" in text
    assert f"case {ids[0]}, column histology: missing value ('Unknown')" in text
    assert (
        "column notes: empty in every case: ignored" in text and "notes (" not in text.split("clinical:")[1]
    )
    # a level declared in study.yaml is a level even if it reads like a missing value; na_values adds texts
    study = (
        "variables:\n  histology: {type: categorical, levels: [nst, other, unknown]}\nna_values: ['n.d.']\n"
    )

    def declared(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[:2, "histology"] = ["unknown", "nst", "other"]
        t.loc[1, "age"] = "n.d."
        return t

    code, text = _validate(capsys, _manifest(model, tmp_path / "declared", declared, n=12, study=study))
    assert (
        "histology: missing value" not in text
        and f"case {ids[1]}, column age: missing value ('n.d.')" in text
    )


def test_a_split_may_not_take_a_table1_column_name(capsys, model, tmp_path) -> None:
    def renamed(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[0, "split"] = "p_value"
        return t

    study = (model.cases_dir / "study.yaml").read_text().replace("test_splits:", "test_splits:\n- p_value", 1)
    code, text = _validate(capsys, _manifest(model, tmp_path / "p", renamed, study=study))
    assert code == 1 and "split name 'p_value' is one of Table 1's column names" in text


def _image_fault(kind: str) -> Callable[[pd.DataFrame, Path], pd.DataFrame]:
    def mutate(t: pd.DataFrame, folder: Path) -> pd.DataFrame:
        image = np.asarray(Image.open(t.loc[0, "tumor_image"]))
        mask = np.asarray(Image.open(t.loc[0, "tumor_mask"])) > 0
        if kind == "missing":
            t.loc[0, "tumor_image"] = str(folder / "nowhere.png")
        elif kind == "truncated":
            data = Path(t.loc[0, "tumor_image"]).read_bytes()
            (folder / "cut.png").write_bytes(data[: len(data) // 2])
            t.loc[0, "tumor_image"] = str(folder / "cut.png")
        elif kind == "bomb":
            t.loc[0, "tumor_image"] = str(_png_header_only(folder / "bomb.png", 20000, 20000))
        elif kind == "nan":
            pixels = image.astype(np.float32)
            pixels[5, 5] = np.nan
            sitk.WriteImage(sitk.GetImageFromArray(pixels), str(folder / "nan.nrrd"))
            t.loc[0, "tumor_image"] = str(folder / "nan.nrrd")
        elif kind == "blank":
            Image.fromarray(np.zeros_like(image)).save(folder / "blank.png")
            t.loc[0, "tumor_image"] = str(folder / "blank.png")
        elif kind in ("pixel", "line", "empty", "size"):
            new = np.zeros_like(mask, dtype=np.uint8)
            if kind == "pixel":
                new[50, 60] = 255
            elif kind == "line":
                new[50, 40:90] = 255
            elif kind == "size":
                new = np.pad(mask.astype(np.uint8) * 255, ((0, 3), (0, 0)))
            Image.fromarray(new).save(folder / f"{kind}.png")
            t.loc[0, "tumor_mask"] = str(folder / f"{kind}.png")
        return t

    return mutate


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing", "file not found"),
        ("truncated", "cannot"),
        ("bomb", "image too large"),
        ("nan", "NaN or infinite"),
        ("blank", "blank image: every pixel is 0"),
        ("pixel", "mask has a single pixel"),
        ("line", "mask is one pixel thick"),
        ("empty", "mask is empty"),
        ("size", "differs from image size"),
    ],
)
def test_validate_checks_files_as_extraction_will_use_them(capsys, model, tmp_path, kind, message) -> None:
    manifest = _manifest(model, tmp_path / kind, _image_fault(kind))
    code, text = _validate(capsys, manifest)
    first, *others = _ids(manifest)
    column = "tumor_mask" if kind in ("pixel", "line", "empty", "size") else "tumor_image"
    assert code == 1, text
    lines = [line for line in text.splitlines() if line.startswith(f"error: case {first}, column {column}")]
    assert lines and message in lines[0], text
    assert not any(f"error: case {c}" in text for c in others)  # the other cases were checked, and are fine


# --------------------------------------------------------------------------------------------------
# Settings and output locations: checked before any work (exit 2, nothing written)


@pytest.mark.parametrize(
    "setting, message",
    [
        ("mi_top_k: thirty", "setting mi_top_k: must be a whole number, got 'thirty'"),
        ("normalize: 'no'", "setting normalize: must be true or false (without quotes), got 'no'"),
        ("icc_threshold: 1.5", "setting icc_threshold: must be between 0 and 1, got 1.5"),
        ("lasso_rule: lambda.max", "setting lasso_rule: must be lambda.min or lambda.1se"),
        (
            "deep: /no/such/weights.pth",
            "setting deep: must be imagenet, none, auto, off or a VGG19 weights file",
        ),
        ("handcrafted: 3", "setting handcrafted: must be a text"),
    ],
)
def test_bad_settings_stop_train_before_any_work(capsys, model, tmp_path, setting, message) -> None:
    study = yaml.safe_load((model.cases_dir / "study.yaml").read_text())
    study.setdefault("settings", {}).update(yaml.safe_load(setting))
    manifest = _manifest(model, tmp_path / "m", study=yaml.safe_dump(study))
    code, _, err = _run(capsys, "train", manifest, "--out", tmp_path / "run", "--no-progress")
    assert code == 2 and message in err
    assert _files(tmp_path / "run") == []  # no cache, no half model


def test_bad_counts_and_output_locations_are_refused_up_front(capsys, model, tmp_path) -> None:
    manifest = _manifest(model, tmp_path / "m")
    with pytest.raises(SystemExit) as exited:
        alnm(
            [
                "predict",
                str(manifest),
                "--model",
                str(model.model_dir),
                "--out",
                str(tmp_path / "p.csv"),
                "--workers",
                "0",
            ]
        )
    assert exited.value.code == 2 and "argument --workers: must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        alnm(["extract", str(manifest), "--out", str(tmp_path / "x"), "--workers", "0"])
    assert exited.value.code == 2 and "argument --workers: must be at least 1" in capsys.readouterr().err
    (tmp_path / "afile").write_text("keep me")
    for command in ("train", "extract", "evaluate"):
        extra = ["--model", str(model.model_dir)] if command == "evaluate" else []
        code, _, err = _run(capsys, command, manifest, "--out", tmp_path / "afile", "--no-progress", *extra)
        assert (
            code == 2 and "is a file, not a folder" in err and (tmp_path / "afile").read_text() == "keep me"
        )
    code, _, err = _run(capsys, "run", manifest, "--out", "/proc/alnm-cannot-be-here", "--no-progress")
    assert code == 2 and "/proc/alnm-cannot-be-here" in err and "cannot" in err
    code, _, err = _run(
        capsys, "predict", manifest, "--model", model.model_dir, "--out", tmp_path, "--no-progress"
    )
    assert code == 2 and "is a folder: give a file name" in err
    code, _, err = _run(
        capsys, "predict", manifest, "--model", tmp_path / "nomodel", "--out", tmp_path / "x.csv"
    )
    assert code == 2 and "nomodel" in err and "model not found" in err


# --------------------------------------------------------------------------------------------------
# Prediction: one bad cell fails its case only


def test_a_level_the_combined_model_never_saw_fails_that_case_only(capsys, model, work, tmp_path) -> None:
    def maybe(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[1, "us_reported_alnm"] = "maybe"
        return t

    out = tmp_path / "pred.csv"
    code, _, err = _predict(capsys, model, _manifest(model, tmp_path / "m", maybe, study=None), out, work)
    table = pd.read_csv(out, keep_default_na=False).set_index("case_id")
    second = _ids(tmp_path / "m" / "manifest.csv")[1]
    assert (
        code == 1
        and f"failed: case {second}: column us_reported_alnm: level 'maybe' unknown to the model "
        "(it knows absent, present)"
        in err
    )
    assert table.loc[second, "status"] == "failed" and (table.drop(index=second)["status"] == "ok").all()
    assert table.drop(index=second)["prob_clinical_radiomics"].astype(float).between(0, 1).all()


def test_a_factor_only_the_clinical_model_needs_leaves_its_probability_out_with_a_note(
    capsys, model, work, tmp_path
) -> None:
    from ALNMPredictorLib.modeling import LogisticModel
    from ALNMPredictorLib.pipeline import load_model, save_model

    loaded = load_model(model.model_dir)
    clinical = loaded.model.clinical_model_
    factor = "age"  # a factor of the clinical model that the combined model does not use
    assert factor not in loaded.model.combined_model_.variables and factor not in clinical.variables
    variant = copy.deepcopy(loaded.model)
    variant.clinical_model_ = LogisticModel(
        name=clinical.name,
        variables=[*clinical.variables, factor],
        encoding={**clinical.encoding, factor: {"type": "numeric"}},
        coefficients={**clinical.coefficients, factor: 0.02},
        cutoff=clinical.cutoff,
        ranges={**clinical.ranges, factor: [25.0, 85.0]},
    )
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    model_dir = save_model(tmp_path / "clinical-age", variant, info, loaded.deep_models)

    def drop(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        return t.drop(columns=[factor])

    out = tmp_path / "pred.csv"
    manifest = _manifest(model, tmp_path / "m", drop, study=None)
    code, _, err = _run(
        capsys,
        "predict",
        manifest,
        "--model",
        model_dir,
        "--out",
        out,
        "--work-dir",
        work,
        "--workers",
        "1",
        "--no-progress",
    )
    table = pd.read_csv(out, keep_default_na=False)
    assert code == 0 and (table["status"] == "ok").all()
    assert "prob_clinical" not in table.columns or table["prob_clinical"].eq("").all()
    assert (
        table["note"].str.contains(f"prob_clinical not computed: the manifest has no column {factor}").all()
    )
    assert f"note: case {table['case_id'][0]}: prob_clinical not computed" in err


# --------------------------------------------------------------------------------------------------
# Faults while writing: a full disk is one line, and the cache is kept


def _limit_file_size(limit: int) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.skipif(not hasattr(resource, "RLIMIT_FSIZE"), reason="needs setrlimit(RLIMIT_FSIZE) (POSIX)")
def test_a_write_that_fails_midway_is_one_line_and_keeps_the_cache(model, work, tmp_path) -> None:
    manifest = _manifest(model, tmp_path / "m")
    out = tmp_path / "pred.csv"
    command = [
        sys.executable,
        "-m",
        "ALNMPredictorLib",
        "predict",
        str(manifest),
        "--model",
        str(model.model_dir),
        "--out",
        str(out),
        "--work-dir",
        str(tmp_path / "work"),
        "--workers",
        "1",
        "--no-progress",
    ]
    first = subprocess.run(command, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    size = out.stat().st_size
    out.unlink()
    cache = tmp_path / "work" / "features" / "cache"
    cached = {name: (cache / name).read_bytes() for name in _files(cache)}
    # the predictions file is bigger than the limit; every cache file already exists
    run = subprocess.run(command, capture_output=True, text=True, preexec_fn=_limit_file_size(size // 2))
    assert run.returncode == 2, run.stderr
    assert (
        "Traceback" not in run.stderr
        and "File too large" in run.stderr
        and "the feature cache is kept" in run.stderr
    )
    assert not out.exists() and {name: (cache / name).read_bytes() for name in _files(cache)} == cached
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".pred")]
    assert leftovers == []  # the atomic writer removed its temporary file


# --------------------------------------------------------------------------------------------------
# The report says what its numbers rest on


def test_an_all_train_cohort_is_reported_with_a_warning(model) -> None:
    from ALNMPredictorLib.pipeline import coverage_notes

    cohort = type("C", (), {"train_split": "train"})()
    predictions = pd.DataFrame(
        {
            "status": ["ok", "ok"],
            "label": [0.0, 1.0],
            "split": ["train", "train"],
            "note": ["", "prob_clinical not computed: column x is missing"],
        }
    )
    notes = coverage_notes(predictions, cohort)
    assert notes[0].startswith(
        "no test set: every number in this report comes from the training split 'train'"
    )
    assert notes[1] == "1 case(s): prob_clinical not computed: column x is missing"
    predictions.loc[1, "split"] = "internal"
    assert not any(n.startswith("no test set") for n in coverage_notes(predictions, cohort))


def test_unexpected_errors_are_one_line_and_a_bug_report_hint(capsys, monkeypatch, model, tmp_path) -> None:
    from ALNMPredictorLib import cohort

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(cohort, "load_manifest", broken)
    code, _, err = _run(capsys, "validate", tmp_path / "m.csv")
    assert code == 2 and "unexpected ZeroDivisionError: division by zero (this is a bug" in err
    assert alnm(["--verbose", "validate", str(tmp_path / "m.csv")]) == 2
    assert "Traceback" in capsys.readouterr().err  # with --verbose, the traceback is shown


def test_too_few_training_cases_is_said_before_extraction_with_the_reasons(capsys, model, tmp_path) -> None:
    def no_age(t: pd.DataFrame, _: Path) -> pd.DataFrame:
        t.loc[t["split"] == "train", "age"] = "not available"
        return t

    manifest = _manifest(model, tmp_path / "m", no_age, n=20, study=None)
    code, _, err = _run(
        capsys, "train", manifest, "--out", tmp_path / "run", "--no-progress", "--deep", "off"
    )
    assert code == 2 and "too few to fit a model (at least 20, both outcomes)" in err
    assert "were set aside, most often for:" in err and "column age: missing value ('not available')" in err
    assert not (tmp_path / "run" / "features").exists()  # said before any extraction


def test_a_file_that_is_not_a_csv_manifest_is_named_as_such(capsys, tmp_path) -> None:
    toml = tmp_path / "pyproject.csv"
    toml.write_text("[project]\nname = 'x'\n" + "a, b, c, d\n" * 3)
    code, _, err = _run(capsys, "validate", toml)
    assert (
        code == 2
        and "line 3 has 4 comma-separated fields but the header row has 1: is this a CSV manifest" in err
    )
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, _, err = _run(capsys, "validate", empty)
    assert code == 2 and "the file is empty" in err


def test_library_info_lines_stay_off_the_console(capsys, tmp_path) -> None:
    import logging

    from ALNMPredictorLib.cli import QUIET_LOGGERS

    _run(capsys, "validate", tmp_path / "none.csv")
    assert all(logging.getLogger(name).getEffectiveLevel() >= logging.WARNING for name in QUIET_LOGGERS)
    assert "pykwalify" in QUIET_LOGGERS


def test_without_pytorch_the_handcrafted_path_works_and_deep_asks_say_how_to_install(
    capsys, monkeypatch, model, tmp_path
) -> None:
    """PyTorch is the [deep] extra: without it (sys.modules['torch'] = None makes it unimportable and
    unfindable) --deep imagenet stops before any work naming how to install it, and auto goes on
    handcrafted only."""
    import logging
    import sys

    from ALNMPredictorLib import pipeline

    monkeypatch.setitem(sys.modules, "torch", None)
    assert not pipeline.torch_available()
    manifest = _manifest(model, tmp_path / "m")
    code, _, err = _run(
        capsys, "train", manifest, "--out", tmp_path / "run", "--deep", "imagenet", "--no-progress"
    )
    assert code == 2 and "--deep imagenet: deep features need PyTorch, which is not installed" in err
    assert not (tmp_path / "run" / "features").exists()  # before any work
    with pytest.raises(
        ALNMError, match=r"--deep none: deep features need PyTorch.*alnm-predictor\[deep\].*--deep off"
    ):
        pipeline._check_deep("none")
    pipeline._check_deep("auto")
    pipeline._check_deep("off")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("ALNMPredictorLib.pipeline").addHandler(handler)
    try:
        assert pipeline.resolve_deep("auto") is None
    finally:
        logging.getLogger("ALNMPredictorLib.pipeline").removeHandler(handler)
    assert any("PyTorch is not installed: no deep features" in r.getMessage() for r in records)
    code, _, err = _run(
        capsys, "extract", manifest, "--out", tmp_path / "x", "--deep", "imagenet", "--no-progress"
    )
    assert code == 2 and "deep features need PyTorch" in err
    # a handcrafted-only model predicts without PyTorch
    code, _, err = _predict(capsys, model, manifest, tmp_path / "p.csv", tmp_path / "w")
    assert code == 0, err
