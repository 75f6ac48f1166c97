"""Cohort manifest: loading, column rules, study.yaml, and every validation message (API and `alnm validate`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from PIL import Image

from ALNMPredictorLib.cli import main
from ALNMPredictorLib.cohort import ClinicalVariable, Problem, RegionInput, load_manifest
from ALNMPredictorLib.errors import InputError

N_CASES = 8


def _write_case_images(folder: Path, case: str, seed: int) -> dict[str, str]:
    """Write tumour and LN images and masks of one case; return the manifest cells (relative paths)."""
    rng = np.random.default_rng(seed)
    cells = {}
    for region, size in (("tumor", (40, 48)), ("ln", (36, 30))):
        image = rng.integers(0, 256, size=size).astype(np.uint8)
        mask = np.zeros(size, np.uint8)
        mask[8:24, 6:20] = 255
        Image.fromarray(image).save(folder / "images" / f"{case}_{region}.png")
        Image.fromarray(mask).save(folder / "masks" / f"{case}_{region}.png")
        cells[f"{region}_image"] = f"images/{case}_{region}.png"
        cells[f"{region}_mask"] = f"masks/{case}_{region}.png"
    reader2 = np.zeros((40, 48), np.uint8)
    reader2[9:25, 6:21] = 255
    Image.fromarray(reader2).save(folder / "masks" / f"{case}_tumor_r2.png")
    cells["tumor_mask_reader2"] = f"masks/{case}_tumor_r2.png"
    return cells


@pytest.fixture
def cohort_dir(tmp_path: Path) -> Path:
    """A valid two-region cohort of 8 cases (splits: internal listed first, train, external)."""
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows = []
    splits = ["internal", "train", "train", "train", "train", "train", "internal", "external"]
    labels = [0, 1, 0, 1, 0, 1, 1, 0]
    margins = ["smooth", "spiculated", "smooth", "smooth", "angular", "smooth", "spiculated", "angular"]
    for i in range(N_CASES):
        case = f"P{i + 1:03d}"
        row = {"case_id": case, "label": labels[i], "split": splits[i], "center": "A" if i < 5 else "B"}
        row.update(_write_case_images(tmp_path, case, seed=i))
        row["tumor_spacing"] = "0.08" if i % 2 else "0.08,0.1"
        row["tumor_mask_reader2"] = row["tumor_mask_reader2"] if i < 6 else ""
        row["age"] = 40 + 3 * i
        row["palpable"] = i % 2
        row["margin"] = margins[i]
        rows.append(row)
    _write_manifest(tmp_path, pd.DataFrame(rows))
    return tmp_path


def _write_manifest(folder: Path, table: pd.DataFrame) -> Path:
    table.to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _edit(folder: Path, **changes) -> Path:
    """Rewrite the manifest with cells changed: ``column=(row_index, value)``."""
    table = pd.read_csv(folder / "manifest.csv", dtype=str, keep_default_na=False)
    for column, (row, value) in changes.items():
        table.loc[row, column] = value
    return _write_manifest(folder, table)


def _messages(problems: list[Problem], severity: str = "error") -> list[str]:
    return [str(p) for p in problems if p.severity == severity]


# --------------------------------------------------------------------------- a valid cohort


def test_valid_cohort_loads(cohort_dir):
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.path == cohort_dir / "manifest.csv" and cohort.root == cohort_dir
    assert cohort.regions == ["tumor", "ln"]
    assert list(cohort.table.index) == [f"P{i:03d}" for i in range(1, 9)]
    assert cohort.splits() == ["train", "internal", "external"]
    assert cohort.case_ids("internal") == ["P001", "P007"]
    labels = cohort.labels("train")
    assert list(labels.index) == ["P002", "P003", "P004", "P005", "P006"]
    assert labels.tolist() == [1, 0, 1, 0, 1] and str(labels.dtype) == "Int64"
    assert (cohort.label_column, cohort.split_column, cohort.train_split) == ("label", "split", "train")
    assert cohort.settings == {} and cohort.center_column == "center"
    image = cohort.table.loc["P003", "tumor_image"]
    assert Path(image).is_absolute() and Path(image) == cohort_dir / "images" / "P003_tumor.png"

    assert cohort.clinical == {
        "age": ClinicalVariable("age", "continuous", [], None),
        "palpable": ClinicalVariable("palpable", "categorical", ["0", "1"], "0"),
        # reference = most frequent level in the training split (smooth: 3 of 5)
        "margin": ClinicalVariable("margin", "categorical", ["smooth", "angular", "spiculated"], "smooth"),
    }
    assert cohort.table["age"].dtype == np.float64

    problems = cohort.validate()
    assert _messages(problems) == []
    # the LN images are PNG without a spacing column: one aggregated warning
    assert any(
        "column ln_image: 8 image(s) have no pixel spacing" in w for w in _messages(problems, "warning")
    )
    assert not any("tumor_image" in w for w in _messages(problems, "warning"))


def test_region_inputs_and_variants(cohort_dir):
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.variants("tumor") == ["main", "reader2"]
    assert cohort.variants("ln") == ["main"]
    main_input = cohort.region_inputs("P002", "tumor")
    assert main_input == RegionInput(
        "P002",
        "tumor",
        "main",
        str(cohort_dir / "images/P002_tumor.png"),
        str(cohort_dir / "masks/P002_tumor.png"),
        None,
        (0.08, 0.08),
    )
    reader2 = cohort.region_inputs("P001", "tumor", "reader2")
    assert reader2.image_path == str(cohort_dir / "images/P001_tumor.png")  # the main image is reused
    assert reader2.mask_path == str(cohort_dir / "masks/P001_tumor_r2.png") and reader2.spacing == (0.08, 0.1)
    assert cohort.region_inputs("P008", "tumor", "reader2") is None  # empty cell for this case
    assert cohort.region_inputs("P001", "ln", "repeat") is None  # no such column
    assert cohort.region_inputs("P001", "ln").spacing is None
    with pytest.raises(InputError, match="case P999.*not in the manifest"):
        cohort.region_inputs("P999", "tumor")
    with pytest.raises(InputError, match="no region 'axilla'"):
        cohort.region_inputs("P001", "axilla")
    with pytest.raises(ValueError, match="variant"):
        cohort.region_inputs("P001", "tumor", "reader3")


def test_cli_validate_ok(cohort_dir, capsys):
    assert main(["validate", str(cohort_dir / "manifest.csv")]) == 0
    out = capsys.readouterr().out
    assert "8 cases; regions: tumor, ln; splits: train (5), internal (2), external (1)" in out
    assert "0 error(s)" in out


# --------------------------------------------------------------------------- every bad input


def _make_mask(folder: Path, name: str, array: np.ndarray) -> str:
    Image.fromarray(array).save(folder / "masks" / name)
    return f"masks/{name}"


def test_missing_and_duplicate_case_id(cohort_dir):
    _edit(cohort_dir, case_id=(2, ""))
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[5, "case_id"] = "P002"
    _write_manifest(cohort_dir, table)
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert "error: column case_id: line 4: case_id is empty" in errors
    assert "error: case P002, column case_id: duplicate case_id (lines 3, 7)" in errors


def test_missing_file(cohort_dir):
    _edit(cohort_dir, tumor_mask=(0, "masks/nowhere.png"), ln_image=(3, "/abs/none.png"))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate())
    assert (
        f"error: case P001, column tumor_mask: file not found: {cohort_dir / 'masks/nowhere.png'}" in errors
    )
    assert "error: case P004, column ln_image: file not found: /abs/none.png" in errors


def test_empty_path_cells(cohort_dir):
    _edit(cohort_dir, tumor_image=(1, ""), ln_mask=(2, ""))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate())
    assert "error: case P002, column tumor_image: image path is empty" in errors
    assert "error: case P003, column ln_mask: mask path is empty" in errors


def test_unknown_and_empty_split(cohort_dir):
    _edit(cohort_dir, split=(0, "holdout"))
    _edit(cohort_dir, split=(7, ""))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert any(
        e.startswith("error: case P001, column split: unknown split 'holdout' (allowed: train,")
        for e in errors
    )
    assert "error: case P008, column split: split is empty" in errors
    # a name declared in study.yaml is accepted
    (cohort_dir / "study.yaml").write_text("test_splits: [holdout]\n")
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert not any("holdout" in e for e in errors)


@pytest.mark.parametrize("value", ["2", "yes", "0.5", "-1"])
def test_label_other_than_0_1(cohort_dir, value):
    _edit(cohort_dir, label=(4, value))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert (
        f"error: case P005, column label: label must be 0 or 1 (or empty if unknown), got '{value}'" in errors
    )


def test_empty_labels(cohort_dir):
    _edit(cohort_dir, label=(7, ""))  # external: allowed, predicted only
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.labels().isna().sum() == 1
    problems = cohort.validate(check_files=False)
    assert _messages(problems) == []
    assert any("split 'external' have no label" in w for w in _messages(problems, "warning"))
    _edit(cohort_dir, label=(1, ""))  # train: an error
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert "error: case P002, column label: label is empty in the training split 'train'" in errors


def test_single_class_training_split(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table.loc[table["split"] == "train", "label"] = "1"
    _write_manifest(cohort_dir, table)
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert "error: column label: split 'train' has only label 1: a model cannot be trained" in errors


def test_mask_size_differs_from_image(cohort_dir):
    path = _make_mask(cohort_dir, "small.png", np.full((20, 20), 255, np.uint8))
    _edit(cohort_dir, ln_mask=(2, path))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate())
    assert any(
        e.startswith(
            "error: case P003, column ln_mask: mask size 20x20 (rows x cols) differs from image size 36x30"
        )
        for e in errors
    )


def test_empty_mask(cohort_dir):
    path = _make_mask(cohort_dir, "empty.png", np.zeros((40, 48), np.uint8))
    _edit(cohort_dir, tumor_mask_reader2=(0, path))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate())
    assert errors == [
        f"error: case P001, column tumor_mask_reader2: mask is empty (no non-zero pixel) ({cohort_dir / path})"
    ]


def test_mask_label_not_present_and_label_column(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table["tumor_mask_label"] = "255"
    table.loc[3, "tumor_mask_label"] = "7"
    table.loc[4, "tumor_mask_label"] = "abc"
    _write_manifest(cohort_dir, table)
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.region_inputs("P001", "tumor").mask_label == 255
    errors = _messages(cohort.validate())
    assert any(
        e.startswith("error: case P004, column tumor_mask: label 7 not in mask; labels present: 255")
        for e in errors
    )
    assert (
        "error: case P005, column tumor_mask_label: mask label must be a positive integer, got 'abc'"
        in errors
    )


def test_multilabel_mask_warns_without_label(cohort_dir):
    labels = np.zeros((40, 48), np.uint8)
    labels[5:15, 5:15] = 1
    labels[20:30, 20:30] = 2
    path = _make_mask(cohort_dir, "multi.png", labels)
    _edit(cohort_dir, tumor_mask=(0, path))
    problems = load_manifest(cohort_dir / "manifest.csv").validate()
    assert _messages(problems) == []
    assert any(
        "case P001, column tumor_mask: mask has several labels (1, 2)" in w
        for w in _messages(problems, "warning")
    )


@pytest.mark.parametrize("value", ["", "NA", "nan", "N/A"])
def test_nan_clinical_value(cohort_dir, value):
    _edit(cohort_dir, age=(3, value), margin=(6, value))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert (
        f"error: case P004, column age: missing value ('{value}'): clinical values are never imputed"
        in errors
    )
    assert (
        f"error: case P007, column margin: missing value ('{value}'): clinical values are never imputed"
        in errors
    )


def test_tiny_roi_and_border_are_warnings(cohort_dir, capsys):
    tiny = np.zeros((40, 48), np.uint8)
    tiny[10:15, 10:15] = 255  # 25 pixels
    border = np.zeros((36, 30), np.uint8)
    border[0:10, 0:10] = 255
    _edit(
        cohort_dir,
        tumor_mask=(0, _make_mask(cohort_dir, "tiny.png", tiny)),
        ln_mask=(1, _make_mask(cohort_dir, "border.png", border)),
    )
    problems = load_manifest(cohort_dir / "manifest.csv").validate()
    warnings = _messages(problems, "warning")
    assert _messages(problems) == []
    assert any(
        w.startswith("warning: case P001, column tumor_mask: tiny ROI: 25 pixels (< 64)") for w in warnings
    )
    assert any(
        w.startswith("warning: case P002, column ln_mask: ROI touches the image border") for w in warnings
    )
    assert main(["validate", str(cohort_dir / "manifest.csv")]) == 0  # warnings do not fail
    assert "tiny ROI" in capsys.readouterr().out


def test_bad_spacing_text(cohort_dir):
    _edit(cohort_dir, tumor_spacing=(2, "fine"))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate(check_files=False))
    assert any(
        e.startswith("error: case P003, column tumor_spacing: spacing must be") and "'fine'" in e
        for e in errors
    )


def test_unreadable_image_and_volume(cohort_dir):
    (cohort_dir / "images" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    volume = sitk.GetImageFromArray(np.zeros((3, 36, 30), np.uint8))
    sitk.WriteImage(volume, str(cohort_dir / "images" / "vol.nrrd"))
    _edit(cohort_dir, tumor_image=(0, "images/bad.png"), ln_image=(1, "images/vol.nrrd"))
    errors = _messages(load_manifest(cohort_dir / "manifest.csv").validate())
    assert any(e.startswith("error: case P001, column tumor_image:") and "bad.png" in e for e in errors)
    assert any(
        e.startswith("error: case P002, column ln_image: 3 slices/frames; a 2D image is needed")
        for e in errors
    )


def test_images_with_spacing_in_file_need_no_spacing_column(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    for i, case in enumerate(table["case_id"]):
        image = sitk.GetImageFromArray((np.arange(36 * 30).reshape(36, 30) % 7 + i).astype(np.uint8))
        image.SetSpacing((0.1, 0.1))
        sitk.WriteImage(image, str(cohort_dir / "images" / f"{case}_ln.nrrd"))
        table.loc[i, "ln_image"] = f"images/{case}_ln.nrrd"
    _write_manifest(cohort_dir, table)
    problems = load_manifest(cohort_dir / "manifest.csv").validate()
    assert not any("spacing" in str(p) for p in problems)


def test_structural_column_errors(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table = table.drop(columns=["ln_mask"])
    table["axilla_mask"] = "x.png"
    _write_manifest(cohort_dir, table)
    cohort = load_manifest(cohort_dir / "manifest.csv")
    errors = _messages(cohort.validate(check_files=False))
    assert "error: column ln_mask: column is missing: every ln_image needs a ln_mask" in errors
    assert "error: column axilla_mask: column without a matching axilla_image column" in errors
    assert "axilla_mask" not in cohort.clinical


def test_no_case_id_column_is_an_unreadable_manifest(tmp_path, capsys):
    pd.DataFrame({"id": ["a"], "tumor_image": ["x.png"]}).to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(InputError, match=r"m\.csv.*no 'case_id' column"):
        load_manifest(tmp_path / "m.csv")
    assert main(["validate", str(tmp_path / "m.csv")]) == 2
    assert "no 'case_id' column" in capsys.readouterr().err
    assert main(["validate", str(tmp_path / "absent.csv")]) == 2


def test_cli_lists_every_problem_and_fails(cohort_dir, capsys):
    _edit(cohort_dir, tumor_mask=(0, "masks/nowhere.png"), label=(1, "3"), age=(2, ""))
    assert main(["validate", str(cohort_dir / "manifest.csv")]) == 1
    out = capsys.readouterr().out
    assert f"error: case P001, column tumor_mask: file not found: {cohort_dir / 'masks/nowhere.png'}" in out
    assert "error: case P002, column label: label must be 0 or 1" in out
    assert "error: case P003, column age: missing value" in out
    assert "3 error(s)" in out
    # --no-files skips the file checks
    assert main(["validate", str(cohort_dir / "manifest.csv"), "--no-files"]) == 1
    out = capsys.readouterr().out
    assert "nowhere.png" not in out and "2 error(s)" in out and "(files not checked)" in out


# --------------------------------------------------------------------------- study.yaml


def test_study_yaml(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    table = table.rename(columns={"label": "aln_status", "case_id": "patient"})
    table["notes"] = [f"note {i}" for i in range(N_CASES)]
    table["birads"] = ["3", "4", "5", "4", "4", "5", "3", "4"]
    _write_manifest(cohort_dir, table)
    (cohort_dir / "study.yaml").write_text(
        "case_id: patient\n"
        "label: aln_status\n"
        "exclude: [notes]\n"
        "variables:\n"
        "  birads: {type: categorical, reference: '4'}\n"
        "  palpable: continuous\n"
        "  margin: {type: categorical, levels: [smooth, angular, spiculated], reference: angular}\n"
        "settings:\n"
        "  icc_threshold: 0.8\n"
    )
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.study_path == cohort_dir / "study.yaml"
    assert cohort.label_column == "aln_status" and cohort.labels().tolist()[:2] == [0, 1]
    assert cohort.table.index.name == "patient"
    assert "notes" not in cohort.clinical
    assert cohort.clinical["birads"] == ClinicalVariable("birads", "categorical", ["4", "3", "5"], "4")
    assert cohort.clinical["palpable"].kind == "continuous"
    assert cohort.clinical["margin"].levels == ["angular", "smooth", "spiculated"]
    assert cohort.settings == {"icc_threshold": 0.8}
    assert _messages(cohort.validate(check_files=False)) == []


def test_study_yaml_declaration_errors(cohort_dir):
    study = cohort_dir / "other.yaml"
    study.write_text(
        "variables:\n"
        "  margin: {type: continuous}\n"
        "  tumour_size: continuous\n"
        "  palpable: {type: categorical, levels: [0], reference: 2}\n"
    )
    cohort = load_manifest(cohort_dir / "manifest.csv", study=study)
    errors = _messages(cohort.validate(check_files=False))
    assert "error: case P001, column margin: declared continuous but value 'smooth' is not a number" in errors
    assert "error: column tumour_size: declared in study.yaml variables but not in the manifest" in errors
    assert "error: case P002, column palpable: value '1' is not one of the declared levels ['0']" in errors
    assert "error: column palpable: reference level '2' is not a level (0)" in errors
    with pytest.raises(InputError, match="study file not found"):
        load_manifest(cohort_dir / "manifest.csv", study=cohort_dir / "missing.yaml")
    study.write_text("variables: [a, b]\n")
    with pytest.raises(InputError, match="'variables' must be a mapping"):
        load_manifest(cohort_dir / "manifest.csv", study=study)


def test_level_absent_from_training_warns(cohort_dir):
    _edit(cohort_dir, margin=(7, "lobulated"))  # only in the external split
    problems = load_manifest(cohort_dir / "manifest.csv").validate(check_files=False)
    assert "warning: column margin: level(s) lobulated absent from the training split" in _messages(
        problems, "warning"
    )


def test_prediction_manifest_without_label_or_split(cohort_dir):
    table = pd.read_csv(cohort_dir / "manifest.csv", dtype=str, keep_default_na=False)
    _write_manifest(cohort_dir, table.drop(columns=["label", "split"]))
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert cohort.splits() == ["train"] and cohort.labels().isna().all()
    problems = cohort.validate(check_files=False)
    assert _messages(problems) == []
    assert "warning: column label: no label column: the cohort can only be used for prediction" in _messages(
        problems, "warning"
    )


# --------------------------------------------------------------------------- CSV oddities, require_valid, BUS-BRA


def test_csv_trailing_comma_duplicate_columns_and_empty(tmp_path):
    (tmp_path / "trailing.csv").write_text("case_id,label,age,\nA,1,50,\nB,0,60,\n")
    cohort = load_manifest(tmp_path / "trailing.csv")
    assert list(cohort.clinical) == ["age"]
    (tmp_path / "dupes.csv").write_text("case_id,age,age\nA,1,2\n")
    with pytest.raises(InputError, match="duplicate column name.*age"):
        load_manifest(tmp_path / "dupes.csv")
    (tmp_path / "empty.csv").write_text("case_id,tumor_image,tumor_mask\n")
    errors = _messages(load_manifest(tmp_path / "empty.csv").validate())
    assert "error: the manifest has no cases" in errors
    (tmp_path / "noregion.csv").write_text("case_id,label\nA,1\n")
    errors = _messages(load_manifest(tmp_path / "noregion.csv").validate())
    assert "error: no <region>_image column (e.g. tumor_image, ln_image)" in errors


def test_require_valid(cohort_dir):
    cohort = load_manifest(cohort_dir / "manifest.csv")
    assert all(p.severity == "warning" for p in cohort.require_valid())
    _edit(cohort_dir, tumor_mask=(0, "masks/nowhere.png"))
    with pytest.raises(InputError, match=r"(?s)1 problem\(s\).*case P001, column tumor_mask: file not found"):
        load_manifest(cohort_dir / "manifest.csv").require_valid()


BUSBRA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "busbra"


@pytest.mark.skipif(not BUSBRA.is_dir(), reason=f"BUS-BRA not available at {BUSBRA}")
def test_busbra_manifest_validates(tmp_path):
    data = pd.read_csv(BUSBRA / "bus_data.csv").iloc[:12]
    manifest = pd.DataFrame(
        {
            "case_id": data["ID"],
            "label": (data["Pathology"] == "malignant").astype(int),
            "split": ["train"] * 8 + ["external"] * 4,
            "center": data["Device"],
            "tumor_image": [str(BUSBRA / "Images" / f"{i}.png") for i in data["ID"]],
            "tumor_mask": [str(BUSBRA / "Masks" / f"{i.replace('bus_', 'mask_')}.png") for i in data["ID"]],
            "tumor_spacing": 0.1,
            "birads": data["BIRADS"],
        }
    )
    _write_manifest(tmp_path, manifest)
    cohort = load_manifest(tmp_path / "manifest.csv")
    problems = cohort.validate()
    assert _messages(problems) == []
    assert cohort.region_inputs(cohort.case_ids()[0], "tumor").spacing == (0.1, 0.1)
