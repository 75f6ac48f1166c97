"""The cohort manifest: one CSV row per patient (+ optional ``study.yaml``), loaded and validated up front.

Columns (names of case_id/label/split/center can be changed in study.yaml):

* ``case_id`` (unique), ``label`` (0/1, empty = unknown, for prediction), ``split`` (``train`` or a test-set
  name), ``center`` (optional).
* Per region (found from ``<region>_image`` columns, in column order): ``<region>_image``,
  ``<region>_mask``, optional ``<region>_mask_label`` (integer), ``<region>_spacing`` (mm, ``0.08`` or
  ``0.08,0.1`` = row,col), ``<region>_mask_reader2`` / ``<region>_mask_repeat`` (re-segmentations of the
  same image, for the ICC filter). Paths are relative to the CSV's folder.
* Anything else is a candidate clinical-ultrasonic factor. Without a declaration in study.yaml, a column
  whose values are all numbers is continuous, except that one with at most two distinct values is a
  categorical (binary) factor; a column with any text is categorical. Categorical levels are listed
  reference first, then the rest in sorted order (numerically when they are numbers); the reference is
  study.yaml's, else the lowest code for numeric levels (0 of 0/1), else the most frequent text level in
  the training split (ties: the first in sorted order).

A column that is numeric but for a few text cells (at most NUMERIC_TEXT_SHARE of its values, e.g. one
``4.5cm`` among numbers) stays numeric and those cells are errors naming the case; with more text it is
categorical and a warning says why. A column empty in every case is ignored (with a warning).

Missing clinical values (empty, NA, N/A, NaN, null, #N/A, "not available", "unknown", "-", ... see
:data:`NA_TOKENS`; study.yaml ``na_values`` adds more) are errors of their case: the pipeline never
imputes, the case is set aside with the reason and the others go on. A level declared in study.yaml
(``levels: [..., unknown]``) is a level, not a missing value, in its column.

study.yaml (all keys optional)::

    case_id: case_id            # column names
    label: label
    split: split
    center: center
    train_split: train
    test_splits: [internal, external]     # allowed besides train and the default test-set names
    variables:
      age: {type: continuous}
      birads: {type: categorical, levels: ["3", "4", "5"], reference: "3"}
      margin: categorical                 # shorthand for {type: categorical}
    exclude: [notes]
    na_values: ["not done", "?"]          # more texts read as a missing value (case-insensitive)
    settings: {...}                       # free-form pipeline settings
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib.errors import ALNMError, InputError
from ALNMPredictorLib.imaging import image_info, inspect_mask, parse_spacing

__all__ = [
    "Cohort",
    "ClinicalVariable",
    "Problem",
    "RegionInput",
    "DEFAULT_SPLITS",
    "MIN_ROI_PIXELS",
    "VARIANTS",
    "configure_validate",
    "load_manifest",
    "run_validate",
]

#: split names accepted without declaring them in study.yaml (besides ``train_split``)
DEFAULT_SPLITS = ("train", "internal", "external", "prospective", "test", "validation")
#: mask variants: the main segmentation and the re-segmentations used by the ICC filter
VARIANTS = ("main", "reader2", "repeat")
#: an ROI smaller than this (pixels) gives a warning: texture features are unstable on it
MIN_ROI_PIXELS = 64
#: cell texts read as a missing value (compared lower-cased and stripped; "none" is not one: it is a level)
NA_TOKENS = frozenset(
    {
        "",
        "na",
        "n/a",
        "n.a.",
        "nan",
        "null",
        "#n/a",
        "<na>",
        "-",
        "--",
        "?",
        "missing",
        "unknown",
        "not available",
        "not known",
        "not applicable",
        "not recorded",
    }
)
#: a numeric column may hold this share of text cells (errors of their cases) before it is typed categorical
NUMERIC_TEXT_SHARE = 0.10
#: Table 1's own columns: a split may not have these names
TABLE1_COLUMNS = ("characteristic", "level", "p_value", "statistical_test")
#: field separators a spreadsheet may have used instead of a comma
_OTHER_SEPARATORS = {";": "semicolon", "\t": "tab", "|": "vertical bar"}

_REGION_SUFFIXES = ("_image", "_mask", "_mask_label", "_spacing", "_mask_reader2", "_mask_repeat")
_STUDY_KEYS = {
    "case_id",
    "label",
    "split",
    "center",
    "train_split",
    "test_splits",
    "variables",
    "exclude",
    "settings",
    "na_values",
}
_SHOW_IDS = 5
#: :attr:`Problem.code` of "the manifest has no <region>_image column" (fine when features come from a table)
NO_REGIONS = "no_regions"


@dataclass(frozen=True)
class Problem:
    """One finding of :meth:`Cohort.validate`; ``severity`` is ``"error"`` or ``"warning"``.

    ``code`` names the kind of finding where callers need to tell it apart (:data:`NO_REGIONS`).
    """

    severity: str
    case: str | None
    column: str | None
    message: str
    code: str = ""

    def __str__(self) -> str:
        where = []
        if self.case is not None:
            where.append(f"case {self.case}")
        if self.column is not None:
            where.append(f"column {self.column}")
        prefix = ", ".join(where)
        return f"{self.severity}: {prefix}: {self.message}" if prefix else f"{self.severity}: {self.message}"

    @property
    def is_error(self) -> bool:
        """True for an error (the cohort cannot be used as is)."""
        return self.severity == "error"


@dataclass
class ClinicalVariable:
    """A clinical factor: ``kind`` is ``"continuous"`` or ``"categorical"`` (levels: reference first)."""

    name: str
    kind: str
    levels: list[str] = field(default_factory=list)
    reference: str | None = None


@dataclass(frozen=True)
class RegionInput:
    """Everything needed to read one region of one case: image, mask (a variant), label and spacing."""

    case_id: str
    region: str
    variant: str
    image_path: str
    mask_path: str
    mask_label: int | None
    spacing: tuple[float, float] | None


def _is_na(value: Any, tokens: frozenset[str] = NA_TOKENS) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in tokens


def _as_number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _level_text(value: float) -> str:
    """Canonical text of a numeric level: ``1`` for 1.0, ``2.5`` for 2.5."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _sort_levels(levels: Iterable[str]) -> list[str]:
    levels = list(levels)
    numbers = [_as_number(v) for v in levels]
    if all(n is not None for n in numbers):
        return [v for _, v in sorted(zip(numbers, levels, strict=True))]
    return sorted(levels)


def _few(ids: list[str]) -> str:
    shown = ", ".join(ids[:_SHOW_IDS])
    return f"{shown}, ... ({len(ids)} in all)" if len(ids) > _SHOW_IDS else shown


class Cohort:
    """A loaded manifest: the table (index = case_id), its regions, clinical variables and settings.

    Made by :func:`load_manifest`. Loading never fails on a bad cell: :meth:`validate` reports every
    problem (structural ones found at load, and file checks) so that a user can fix them all at once.
    """

    def __init__(
        self,
        *,
        path: Path,
        table: pd.DataFrame,
        regions: list[str],
        clinical: dict[str, ClinicalVariable],
        label_column: str,
        split_column: str,
        case_column: str,
        center_column: str | None,
        train_split: str,
        allowed_splits: list[str],
        settings: dict[str, Any],
        study_path: Path | None,
        variant_columns: dict[str, dict[str, str]],
        spacing: dict[tuple[str, str], tuple[float, float] | None],
        problems: list[Problem],
        display_ids: list[str],
    ) -> None:
        self.path = path
        self.root = path.parent
        self.table = table
        self.regions = regions
        self.clinical = clinical
        self.label_column = label_column
        self.split_column = split_column
        self.case_column = case_column
        self.center_column = center_column
        self.train_split = train_split
        self.allowed_splits = allowed_splits
        self.settings = settings
        self.study_path = study_path
        self._variant_columns = variant_columns
        self._spacing = spacing
        self._load_problems = problems
        self._display_ids = display_ids

    def __repr__(self) -> str:
        return (
            f"Cohort({str(self.path)!r}, {len(self.table)} cases, regions={self.regions}, "
            f"splits={self.splits()}, clinical={list(self.clinical)})"
        )

    def __len__(self) -> int:
        return len(self.table)

    # ------------------------------------------------------------------ queries

    def splits(self) -> list[str]:
        """Split names present: the training split first, then the others in order of appearance."""
        seen = [s for s in pd.unique(self.table[self.split_column].dropna()) if s != ""]
        ordered = [self.train_split] if self.train_split in seen else []
        return ordered + [s for s in seen if s != self.train_split]

    def _split_rows(self, split: str | None) -> pd.Series:
        if split is None:
            return pd.Series(True, index=self.table.index)
        if split not in self.splits():
            raise InputError(
                f"no split named '{split}' (splits: {', '.join(self.splits()) or 'none'})",
                column=self.split_column,
            )
        return self.table[self.split_column] == split

    def case_ids(self, split: str | None = None) -> list[str]:
        """Case ids in manifest order, optionally of one split."""
        return [str(c) for c in self.table.index[self._split_rows(split).to_numpy()]]

    def labels(self, split: str | None = None) -> pd.Series:
        """Labels (nullable Int64: <NA> where unknown) indexed by case_id, optionally of one split."""
        return self.table.loc[self._split_rows(split).to_numpy(), self.label_column].astype("Int64")

    def variants(self, region: str) -> list[str]:
        """Mask variants available for ``region``: ``main`` and the re-segmentation columns present."""
        self._check_region(region)
        return [v for v in VARIANTS if v in self._variant_columns[region]]

    def region_inputs(self, case_id: str, region: str, variant: str = "main") -> RegionInput | None:
        """Image, mask, label and spacing of one case's region; None when that mask is absent for the case.

        Re-segmentations (``reader2``, ``repeat``) reuse the main image, label and spacing.
        """
        self._check_region(region)
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        columns = self._variant_columns[region]
        if variant not in columns:
            return None
        row = self._row(case_id)
        image = row[f"{region}_image"]
        mask = row[columns[variant]]
        if _is_na(image) or _is_na(mask):
            return None
        label_col = f"{region}_mask_label"
        mask_label = row[label_col] if label_col in self.table.columns else None
        mask_label = None if mask_label is None or pd.isna(mask_label) else int(mask_label)
        return RegionInput(
            case_id=str(case_id),
            region=region,
            variant=variant,
            image_path=str(image),
            mask_path=str(mask),
            mask_label=mask_label,
            spacing=self._spacing.get((str(case_id), region)),
        )

    def _row(self, case_id: str) -> pd.Series:
        case_id = str(case_id)
        if case_id not in self.table.index:
            raise InputError("not in the manifest", case=case_id, path=self.path)
        rows = self.table.loc[[case_id]]
        if len(rows) > 1:
            raise InputError("duplicate case_id in the manifest", case=case_id, path=self.path)
        return rows.iloc[0]

    def _check_region(self, region: str) -> None:
        if region not in self.regions:
            raise InputError(
                f"no region '{region}' in the manifest (regions: {', '.join(self.regions) or 'none'})",
                path=self.path,
            )

    # ------------------------------------------------------------------ validation

    def validate(self, check_files: bool = True, *, progress: bool = False) -> list[Problem]:
        """Every problem of the manifest: structure, labels, splits, clinical values and (optionally) files.

        With ``check_files``, every image is decoded (unreadable or truncated files, NaN/inf pixels, blank
        images) and every mask is loaded and checked as extraction will use it (exists, matches the image
        size, holds its label, is a 2D region: not empty, not a single pixel or line), in parallel
        threads. ``progress`` shows a tqdm bar on stderr.
        """
        problems = list(self._load_problems)
        if not check_files:
            return problems
        from concurrent.futures import ThreadPoolExecutor

        rows = self.table.to_dict("records")
        cases = list(range(len(rows)))

        def check(position: int) -> tuple[list[Problem], list[tuple[str, str, str]]]:
            found: list[Problem] = []
            unspaced: list[tuple[str, str, str]] = []
            for region in self.regions:
                found.extend(
                    self._check_region_files(self._display_ids[position], region, rows[position], unspaced)
                )
            return found, unspaced

        no_spacing: dict[str, list[str]] = {}
        formats: dict[str, Counter[str]] = {}
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            results: Iterable[Any] = pool.map(check, cases)
            if progress:
                from tqdm import tqdm

                results = tqdm(
                    results, total=len(cases), desc="validate", unit="case", file=sys.stderr, disable=None
                )
            for found, unspaced in results:
                problems.extend(found)
                for column, case_id, fmt in unspaced:
                    no_spacing.setdefault(column, []).append(case_id)
                    formats.setdefault(column, Counter())[fmt] += 1
        for column, ids in no_spacing.items():
            region = column[: -len("_image")]
            kinds = ", ".join(sorted(formats.get(column, Counter())))
            problems.append(
                Problem(
                    "warning",
                    None,
                    column,
                    f"{len(ids)} image(s) have no pixel spacing ({kinds}): features will be in pixel units; "
                    f"add a {region}_spacing column in mm (cases {_few(ids)})",
                )
            )
        return problems

    def _check_region_files(
        self, case_id: str, region: str, row: dict[str, Any], no_spacing: list[tuple[str, str, str]]
    ) -> list[Problem]:
        """Problems of one region's files; a (column, case, format) is added to ``no_spacing`` when unspaced."""
        from ALNMPredictorLib.handcrafted import roi_mask
        from ALNMPredictorLib.imaging import load_image

        problems: list[Problem] = []
        image_col = f"{region}_image"
        image_path = row[image_col]
        if _is_na(image_path):
            return problems  # reported at load
        shape: tuple[int, int] | None = None
        try:
            info = image_info(image_path)
        except InputError as exc:
            problems.append(_file_problem(case_id, image_col, exc, str(image_path)))
        else:
            shape = info.shape
            if info.n_frames > 1 and info.source_format == "dicom":
                problems.append(
                    Problem("warning", case_id, image_col, f"{info.n_frames} frames; the first is used")
                )
            elif info.n_frames > 1:
                problems.append(
                    Problem(
                        "error",
                        case_id,
                        image_col,
                        f"{info.n_frames} slices/frames; a 2D image is needed ({image_path})",
                    )
                )
            if self._spacing.get((case_id, region)) is None and info.spacing is None:
                no_spacing.append((image_col, case_id, info.source_format))
            if not info.n_frames > 1 or info.source_format == "dicom":
                problems.extend(_decode_problems(case_id, image_col, image_path, load_image))
        label_col = f"{region}_mask_label"
        label = row.get(label_col)
        label = None if label is None or pd.isna(label) else int(label)
        for mask_col in self._variant_columns[region].values():
            mask_path = row[mask_col]
            if _is_na(mask_path):
                continue  # main: reported at load; re-segmentations are optional
            try:
                mask, present = inspect_mask(mask_path, label=label)
            except InputError as exc:
                problems.append(_file_problem(case_id, mask_col, exc, str(mask_path)))
                continue
            if shape is not None and mask.shape != shape:
                problems.append(
                    Problem(
                        "error",
                        case_id,
                        mask_col,
                        f"mask size {mask.shape[0]}x{mask.shape[1]} (rows x cols) differs from image size "
                        f"{shape[0]}x{shape[1]} ({mask_path})",
                    )
                )
            count = int(mask.sum())
            try:  # the checks extraction makes: empty, a single pixel, one pixel thick
                roi_mask(mask, mask.shape)
            except InputError as exc:
                problems.append(Problem("error", case_id, mask_col, f"{exc.reason} ({mask_path})"))
                continue
            if label is None and len(present) > 1:
                problems.append(
                    Problem(
                        "warning",
                        case_id,
                        mask_col,
                        f"mask has several labels ({', '.join(map(str, present))}); all non-zero pixels are "
                        f"used: set {label_col} to choose one",
                    )
                )
            if count < MIN_ROI_PIXELS:
                problems.append(
                    Problem(
                        "warning",
                        case_id,
                        mask_col,
                        f"tiny ROI: {count} pixels (< {MIN_ROI_PIXELS}); texture features are unreliable",
                    )
                )
            if mask[0, :].any() or mask[-1, :].any() or mask[:, 0].any() or mask[:, -1].any():
                problems.append(
                    Problem("warning", case_id, mask_col, "ROI touches the image border (cut-off lesion?)")
                )
        return problems

    def require_valid(self, check_files: bool = True, *, progress: bool = False) -> list[Problem]:
        """Validate; raise InputError listing the errors if any, else return the warnings."""
        problems = self.validate(check_files, progress=progress)
        errors = [p for p in problems if p.is_error]
        if errors:
            shown = "\n  ".join(str(p) for p in errors[:20])
            more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
            raise InputError(
                f"{len(errors)} problem(s) in the manifest (run `alnm validate` to list them all):\n  {shown}{more}",
                path=self.path,
            )
        return problems


def _decode_problems(case_id: str, column: str, path: str, load_image: Any) -> list[Problem]:
    """Decode the image's pixels as extraction will: unreadable, truncated, NaN/inf, blank."""
    try:
        image = load_image(path)
    except InputError as exc:
        return [_file_problem(case_id, column, exc, path)]
    except Exception as exc:  # a decoder's own error (truncated stream, corrupt data)
        return [
            Problem(
                "error", case_id, column, f"cannot decode the image: {type(exc).__name__}: {exc} ({path})"
            )
        ]
    pixels = image.array
    if pixels.size and float(pixels.min()) == float(pixels.max()):
        return [Problem("error", case_id, column, f"blank image: every pixel is {pixels.flat[0]:g} ({path})")]
    return []


def _file_problem(case_id: str, column: str, exc: InputError, path: str) -> Problem:
    if exc.reason == "file not found":
        return Problem("error", case_id, column, f"file not found: {exc.path or path}")
    return Problem("error", case_id, column, f"{exc.reason} ({exc.path or path})")


# ---------------------------------------------------------------------- loading


def _read_study(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot read study file: {exc.strerror or exc}", path=path) from None
    try:
        study = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML: {exc}", path=path) from None
    if study is None:
        return {}
    if not isinstance(study, dict):
        raise InputError("study file must be a mapping of keys (label, split, variables, ...)", path=path)
    for key in ("variables", "settings"):
        if study.get(key) is not None and not isinstance(study[key], dict):
            raise InputError(f"'{key}' must be a mapping", path=path)
    for key in ("exclude", "test_splits", "na_values"):
        value = study.get(key)
        if isinstance(value, str):
            study[key] = [value]
        elif value is not None and not isinstance(value, list):
            raise InputError(f"'{key}' must be a list", path=path)
    for key in ("case_id", "label", "split", "center", "train_split"):
        if study.get(key) is not None and not isinstance(study[key], str):
            raise InputError(f"'{key}' must be a text (a column or split name)", path=path)
    return study


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise InputError("manifest not found", path=path)
    if path.is_dir():
        raise InputError("is a folder: give the manifest CSV file", path=path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the manifest: {exc.strerror or exc}", path=path) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(
            f"not UTF-8 text: byte 0x{raw[exc.start]:02x} at line {line}, character {column} (a file saved in a "
            "local encoding such as Windows-1252 or Latin-1?): save the manifest as UTF-8 (Excel: 'CSV UTF-8')",
            path=path,
        ) from None
    header_line = text.splitlines()[0] if text.strip() else ""
    if "," not in header_line:
        for separator, name in _OTHER_SEPARATORS.items():
            if separator in header_line:
                raise InputError(
                    f"the header row is separated by {name}s, not commas (a spreadsheet's regional CSV export?): "
                    "save the manifest as comma-separated CSV with '.' as the decimal point",
                    path=path,
                )
    try:
        frame = pd.read_csv(
            io.StringIO(text), dtype=str, keep_default_na=False, na_values=[], skipinitialspace=True
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise InputError(_parser_message(str(exc)), path=path) from None
    frame = frame.apply(lambda col: col.str.strip())
    for position, column in enumerate(list(frame.columns)):
        if str(column).startswith("Unnamed:"):
            if frame[column].map(_is_na).all():  # a trailing comma (spreadsheet export): ignore the column
                frame = frame.drop(columns=column)
            else:
                raise InputError(f"column {position + 1} has values but no name in the header row", path=path)
    frame.columns = [str(c).strip() for c in frame.columns]
    header = [c.strip() for c in next(csv.reader(io.StringIO(text)), [])]
    dupes = [c for c, n in Counter(header).items() if n > 1 and c]
    if dupes:
        raise InputError(f"duplicate column name(s): {', '.join(dupes)}", path=path)
    return frame


def _parser_message(text: str) -> str:
    """pandas' CSV parser error in a manifest author's words."""
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
    if fields:
        header, line, seen = fields.groups()
        return (
            f"line {line} has {seen} comma-separated fields but the header row has {header}: is this a CSV "
            "manifest (one row per case, a header row of column names)? Quote any value that contains a comma"
        )
    if "No columns to parse" in text:
        return "the file is empty: a manifest needs a header row of column names and one row per case"
    return f"cannot read the manifest CSV: {_first_line(text)}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def load_manifest(path: str | os.PathLike[str], study: str | os.PathLike[str] | None = None) -> Cohort:
    """Load a manifest CSV (and ``study.yaml`` beside it unless ``study`` names another file).

    Raises InputError only when the CSV or study file cannot be read or has no case_id column; every
    other problem is reported by :meth:`Cohort.validate`.
    """
    path = Path(path).expanduser().absolute()
    if study is None:
        candidate = path.parent / "study.yaml"
        study_path = candidate if candidate.is_file() else None
    else:
        study_path = Path(study).expanduser().absolute()
        if not study_path.is_file():
            raise InputError("study file not found", path=study_path)
    spec = _read_study(study_path) if study_path else {}
    raw = _read_csv(path)
    return _build(path, raw, spec, study_path)


@dataclass
class _Parse:
    """A manifest being read: the raw cells, the typed table being built, and the problems found."""

    raw: pd.DataFrame
    table: pd.DataFrame
    ids: list[str]  # how problems name a case: its id, or its line when the id is empty
    problems: list[Problem]

    def add(self, severity: str, case: str | None, column: str | None, message: str, code: str = "") -> None:
        self.problems.append(Problem(severity, case, column, message, code))


def _build(path: Path, raw: pd.DataFrame, spec: dict[str, Any], study_path: Path | None) -> Cohort:
    problems: list[Problem] = []
    for key in sorted(set(spec) - _STUDY_KEYS):
        problems.append(Problem("warning", None, None, f"unknown key '{key}' in {study_path} (ignored)"))

    case_col = spec.get("case_id") or "case_id"
    label_col = spec.get("label") or "label"
    split_col = spec.get("split") or "split"
    center_col = spec.get("center") or "center"
    train_split = spec.get("train_split") or "train"
    allowed = list(dict.fromkeys([train_split, *DEFAULT_SPLITS, *map(str, spec.get("test_splits") or [])]))

    if case_col not in raw.columns:
        raise InputError(f"no '{case_col}' column (columns: {', '.join(raw.columns) or 'none'})", path=path)
    parse = _case_ids(raw, case_col, problems)

    columns = list(raw.columns)
    regions, region_cols = _region_columns(parse, columns, (case_col, label_col, split_col, center_col))
    variant_columns: dict[str, dict[str, str]] = {}
    spacing: dict[tuple[str, str], tuple[float, float] | None] = {}
    for region in regions:
        variant_columns[region] = _region_fields(parse, region, path.parent, spacing)

    invalid_label = _labels(parse, label_col)
    _splits(parse, split_col, train_split, allowed)
    if center_col in raw.columns:
        parse.table[center_col] = [None if _is_na(s) else s for s in raw[center_col]]
    _check_labels_by_split(parse.table, label_col, split_col, train_split, invalid_label, parse.add)
    reserved = region_cols | {case_col, label_col, split_col, center_col}
    clinical = _clinical(parse, spec, reserved, (parse.table[split_col] == train_split).to_numpy())

    return Cohort(
        path=path,
        table=parse.table,
        regions=regions,
        clinical=clinical,
        label_column=label_col,
        split_column=split_col,
        case_column=case_col,
        center_column=center_col if center_col in raw.columns else None,
        train_split=train_split,
        allowed_splits=allowed,
        settings=dict(spec.get("settings") or {}),
        study_path=study_path,
        variant_columns=variant_columns,
        spacing=spacing,
        problems=problems,
        display_ids=parse.ids,
    )


def _case_ids(raw: pd.DataFrame, case_col: str, problems: list[Problem]) -> _Parse:
    """The table indexed by case id; empty and duplicate ids are problems naming their lines."""
    lines = np.arange(len(raw)) + 2  # header is line 1
    case_ids = raw[case_col].astype(str)
    table = pd.DataFrame(index=pd.Index(case_ids.to_list(), name=case_col, dtype=object))
    ids = [f"(line {lines[i]})" if _is_na(c) else str(c) for i, c in enumerate(case_ids)]
    parse = _Parse(raw, table, ids, problems)
    if raw.empty:
        parse.add("error", None, None, "the manifest has no cases")
    for i in np.flatnonzero(case_ids.map(_is_na).to_numpy()):
        parse.add("error", None, case_col, f"line {lines[i]}: case_id is empty")
    for case_id, n in Counter(case_ids[~case_ids.map(_is_na)]).items():
        if n > 1:
            where = ", ".join(str(x) for x in lines[(case_ids == case_id).to_numpy()])
            parse.add("error", case_id, case_col, f"duplicate case_id (lines {where})")
    return parse


def _region_columns(
    parse: _Parse, columns: list[str], reserved: tuple[str, ...]
) -> tuple[list[str], set[str]]:
    """The regions (one per ``<region>_image`` column) and every column that belongs to a region."""
    regions = [c[: -len("_image")] for c in columns if c.endswith("_image") and len(c) > len("_image")]
    if not regions:
        parse.add("error", None, None, "no <region>_image column (e.g. tumor_image, ln_image)", NO_REGIONS)
    region_cols = {f"{r}{s}" for r in regions for s in _REGION_SUFFIXES}
    for column in columns:
        if column in region_cols or column in reserved:
            continue
        for suffix in _REGION_SUFFIXES[1:]:
            if column.endswith(suffix) and len(column) > len(suffix):
                parse.add(
                    "error", None, column, f"column without a matching {column[: -len(suffix)]}_image column"
                )
                region_cols.add(column)
                break
    return regions, region_cols


def _region_fields(
    parse: _Parse, region: str, root: Path, spacing: dict[tuple[str, str], tuple[float, float] | None]
) -> dict[str, str]:
    """A region's image, mask and re-segmentation paths, mask label and spacing; returns variant → column."""
    raw, table, ids, add = parse.raw, parse.table, parse.ids, parse.add
    image_col, mask_col = f"{region}_image", f"{region}_mask"
    table[image_col] = _resolve_paths(raw[image_col], root)
    for i in np.flatnonzero(table[image_col].isna().to_numpy()):
        add("error", ids[i], image_col, "image path is empty")
    variants: dict[str, str] = {}
    if mask_col not in raw.columns:
        add("error", None, mask_col, f"column is missing: every {region}_image needs a {mask_col}")
    else:
        variants["main"] = mask_col
        table[mask_col] = _resolve_paths(raw[mask_col], root)
        for i in np.flatnonzero(table[mask_col].isna().to_numpy()):
            add("error", ids[i], mask_col, "mask path is empty")
    for variant in VARIANTS[1:]:
        column = f"{region}_mask_{variant}"
        if column in raw.columns:
            variants[variant] = column
            table[column] = _resolve_paths(raw[column], root)
    label_field = f"{region}_mask_label"
    if label_field in raw.columns:
        values: list[Any] = []
        for i, text in enumerate(raw[label_field]):
            number = None if _is_na(text) else _as_number(text)
            if _is_na(text):
                values.append(pd.NA)
            elif number is None or not number.is_integer() or number < 1:
                add("error", ids[i], label_field, f"mask label must be a positive integer, got '{text}'")
                values.append(pd.NA)
            else:
                values.append(int(number))
        table[label_field] = pd.array(values, dtype="Int64")
    spacing_field = f"{region}_spacing"
    if spacing_field in raw.columns:
        table[spacing_field] = raw[spacing_field].to_numpy()
        for i, text in enumerate(raw[spacing_field]):
            try:
                spacing[(ids[i], region)] = parse_spacing(text)
            except ValueError as exc:
                add("error", ids[i], spacing_field, str(exc))
    return variants


def _labels(parse: _Parse, label_col: str) -> np.ndarray:
    """The 0/1 label column (Int64, empty = unknown); returns which rows had an invalid label."""
    raw = parse.raw
    invalid = np.zeros(len(raw), dtype=bool)
    if label_col not in raw.columns:
        parse.table[label_col] = pd.array([pd.NA] * len(raw), dtype="Int64")
        parse.add("warning", None, label_col, "no label column: the cohort can only be used for prediction")
        return invalid
    values: list[Any] = []
    for i, text in enumerate(raw[label_col]):
        number = None if _is_na(text) else _as_number(text)
        if _is_na(text):
            values.append(pd.NA)
        elif number in (0.0, 1.0):
            values.append(int(number))
        else:
            parse.add(
                "error", parse.ids[i], label_col, f"label must be 0 or 1 (or empty if unknown), got '{text}'"
            )
            invalid[i] = True
            values.append(pd.NA)
    parse.table[label_col] = pd.array(values, dtype="Int64")
    return invalid


def _splits(parse: _Parse, split_col: str, train_split: str, allowed: list[str]) -> None:
    """The split column: every value one of ``allowed`` and none a Table 1 column name."""
    raw = parse.raw
    if split_col not in raw.columns:
        parse.table[split_col] = train_split
        parse.add("warning", None, split_col, f"no split column: every case is in '{train_split}'")
        return
    splits = raw[split_col].to_numpy(dtype=object)
    for i, text in enumerate(splits):
        if _is_na(text):
            parse.add("error", parse.ids[i], split_col, "split is empty")
        elif text not in allowed:
            parse.add(
                "error",
                parse.ids[i],
                split_col,
                f"unknown split '{text}' (allowed: {', '.join(allowed)}; "
                "declare others in study.yaml test_splits)",
            )
        elif text in TABLE1_COLUMNS:
            parse.add(
                "error",
                parse.ids[i],
                split_col,
                f"split name '{text}' is one of Table 1's column names "
                f"({', '.join(TABLE1_COLUMNS)}): rename the split",
            )
    parse.table[split_col] = [None if _is_na(s) else s for s in splits]


def _clinical(
    parse: _Parse, spec: dict[str, Any], reserved: set[str], train_rows: np.ndarray
) -> dict[str, ClinicalVariable]:
    """Every other column as a clinical variable (typed as study.yaml declares, or inferred on training rows)."""
    raw, add = parse.raw, parse.add
    columns = list(raw.columns)
    excluded = {str(c) for c in spec.get("exclude") or []}
    for column in sorted(excluded - set(columns)):
        add("warning", None, column, "listed in study.yaml exclude but not in the manifest")
    declared = {str(k): v for k, v in (spec.get("variables") or {}).items()}
    for name in declared:
        if name not in columns:
            add("error", None, name, "declared in study.yaml variables but not in the manifest")
        elif name in reserved or name in excluded:
            add("error", None, name, "declared in study.yaml variables but is not a clinical column")
    tokens = NA_TOKENS | {str(v).strip().lower() for v in spec.get("na_values") or []}
    clinical: dict[str, ClinicalVariable] = {}
    for column in columns:
        if column in reserved or column in excluded:
            continue
        if raw[column].map(lambda v: _is_na(v, tokens)).all() and len(raw):
            if column in declared:
                add("error", None, column, "declared in study.yaml variables but empty in every case")
            else:
                add(
                    "warning",
                    None,
                    column,
                    "empty in every case: ignored (list it in study.yaml exclude to silence this)",
                )
            continue
        variable, cells = _classify(
            column, raw[column], declared.get(column), parse.ids, train_rows, add, tokens
        )
        if variable is not None:
            clinical[column] = variable
            parse.table[column] = cells
    return clinical


def _resolve_paths(column: pd.Series, root: Path) -> np.ndarray:
    """Absolute, normalised paths (relative ones taken from ``root``); None for empty cells."""
    resolved = [
        None if _is_na(text) else os.path.normpath(os.path.join(root, os.path.expanduser(text)))
        for text in column
    ]
    return np.array(resolved, dtype=object)


def _check_labels_by_split(
    table: pd.DataFrame, label_col: str, split_col: str, train_split: str, invalid: np.ndarray, add
) -> None:
    """Empty labels in the training split, unlabelled cases elsewhere, one-class splits."""
    labels = table[label_col]
    if labels.notna().sum() == 0:
        return
    splits = [s for s in pd.unique(table[split_col]) if s is not None and not _is_na(s)]
    if train_split not in splits:
        add("warning", None, split_col, f"no case in the training split '{train_split}'")
    for split in splits:
        rows = (table[split_col] == split).to_numpy()
        y = labels[rows & ~invalid]
        missing = [str(c) for c in y.index[y.isna().to_numpy()]]
        known = y.dropna()
        if split == train_split:
            for case_id in missing:
                add("error", case_id, label_col, f"label is empty in the training split '{train_split}'")
        elif missing:
            add(
                "warning",
                None,
                label_col,
                f"{len(missing)} of {len(y)} cases of split '{split}' have no label: predicted, not evaluated "
                f"(cases {_few(missing)})",
            )
        classes = sorted(set(known.astype(int)))
        if len(known) and len(classes) < 2:
            severity = "error" if split == train_split else "warning"
            add(
                severity,
                None,
                label_col,
                f"split '{split}' has only label {classes[0]}: "
                + (
                    "a model cannot be trained"
                    if split == train_split
                    else "AUC and calibration are undefined"
                ),
            )


def _classify(
    column: str,
    cells: pd.Series,
    declared: Any,
    ids: list[str],
    train_rows: np.ndarray,
    add,
    tokens: frozenset[str] = NA_TOKENS,
) -> tuple[ClinicalVariable | None, Any]:
    """Type a clinical column and return (variable, typed cells); records NA and type problems."""
    if isinstance(declared, str):
        declared = {"type": declared}
    if declared is not None and not isinstance(declared, dict):
        add("error", None, column, "study.yaml variables entry must be a mapping like {type: categorical}")
        declared = None
    declared = declared or {}
    kind = declared.get("type")
    if kind not in (None, "continuous", "categorical"):
        add("error", None, column, f"type must be continuous or categorical, got '{kind}'")
        kind = None
    declared_levels = declared.get("levels")
    if declared_levels is not None:  # a declared level is a value, even if it reads like a missing one
        tokens = tokens - {_declared_level(v).lower() for v in declared_levels}

    texts = cells.to_numpy(dtype=object)
    na = np.array([_is_na(t, tokens) for t in texts], dtype=bool)
    for i in np.flatnonzero(na):
        add("error", ids[i], column, f"missing value ('{texts[i]}'): clinical values are never imputed")
    numbers = np.array(
        [
            np.nan if na[i] else (_as_number(t) if _as_number(t) is not None else np.nan)
            for i, t in enumerate(texts)
        ]
    )
    non_numeric = ~na & np.isnan(numbers)
    for i in np.flatnonzero(~na & ~np.isnan(numbers) & ~np.isfinite(numbers)):
        add("error", ids[i], column, f"value is not a finite number: '{texts[i]}'")
    numeric = not non_numeric.any()
    distinct_numbers = set(numbers[~na & np.isfinite(numbers)].tolist())
    n_values, n_text = int((~na).sum()), int(non_numeric.sum())

    declared_kind = kind
    if kind is None:
        mostly_numbers = 0 < n_text <= NUMERIC_TEXT_SHARE * n_values and len(distinct_numbers) > 2
        if mostly_numbers:
            kind = "continuous"
            shown = ", ".join(f"'{t}'" for t in dict.fromkeys(texts[non_numeric]).keys())
            add(
                "warning",
                None,
                column,
                f"numeric but for {n_text} text cell(s) ({_few_texts(shown)}): typed continuous, "
                "those cases are errors; fix the cells, or declare the column in study.yaml variables",
            )
        elif n_text and len(distinct_numbers) > 2:
            add(
                "warning",
                None,
                column,
                f"typed categorical because {n_text} of {n_values} values are text "
                f"(e.g. '{texts[non_numeric][0]}'); if it is a number, fix those cells or declare it "
                "{type: continuous} in study.yaml; missing-value texts can be added with na_values",
            )
        else:
            kind = "continuous" if numeric and len(distinct_numbers) > 2 else "categorical"
        kind = kind or "categorical"
    if kind == "continuous":
        why = "declared continuous but" if declared_kind else "the column is numeric but"
        for i in np.flatnonzero(non_numeric):
            add("error", ids[i], column, f"{why} value '{texts[i]}' is not a number")
        if not (~na).any():
            add("error", None, column, "column has no values")
        return ClinicalVariable(column, "continuous"), numbers.astype(np.float64)

    # categorical
    if numeric:
        level_cells = [None if na[i] else _level_text(numbers[i]) for i in range(len(texts))]
    else:
        level_cells = [None if na[i] else str(texts[i]) for i in range(len(texts))]
    present = {v for v in level_cells if v is not None}
    if declared_levels is not None:
        levels_list = [_declared_level(v) for v in declared_levels]
        for i, v in enumerate(level_cells):
            if v is not None and v not in levels_list:
                add("error", ids[i], column, f"value '{v}' is not one of the declared levels {levels_list}")
        levels = levels_list
    else:
        levels = _sort_levels(present)
    reference = declared.get("reference")
    if reference is not None:
        reference = _declared_level(reference)
        if reference not in levels:
            add("error", None, column, f"reference level '{reference}' is not a level ({', '.join(levels)})")
            reference = None
    train_counts = Counter(v for v, t in zip(level_cells, train_rows, strict=True) if t and v is not None)
    if reference is None and levels and numeric:
        reference = _sort_levels(levels)[0]  # 0/1 and other coded factors: the lowest code
    if reference is None and levels:
        counts = train_counts or Counter(v for v in level_cells if v is not None)
        top = max(counts.values()) if counts else 0
        reference = next((v for v in levels if counts.get(v, 0) == top), levels[0])
    if reference is not None:
        levels = [reference] + [v for v in levels if v != reference]
    if len(present) == 1:
        add("warning", None, column, f"a single value ('{next(iter(present))}'): it cannot be a predictor")
    elif len(present) > 2 and not numeric and len(present) == (~na).sum() and len(present) > 10:
        add("warning", None, column, "every case has its own value: an identifier? exclude it in study.yaml")
    if train_counts:
        unseen = [v for v in _sort_levels(present) if v not in train_counts]
        if unseen:
            add("warning", None, column, f"level(s) {', '.join(unseen)} absent from the training split")
    return ClinicalVariable(column, "categorical", levels, reference), np.array(level_cells, dtype=object)


def _declared_level(value: Any) -> str:
    """A level as study.yaml gives it (YAML may read ``2`` as a number) in the cells' text form."""
    return (
        _level_text(float(value))
        if isinstance(value, int | float) and not isinstance(value, bool)
        else str(value)
    )


def _few_texts(shown: str, limit: int = 80) -> str:
    return shown if len(shown) <= limit else shown[:limit] + "..."


# ---------------------------------------------------------------------- CLI


def configure_validate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm validate``."""
    parser.add_argument("manifest", help="manifest CSV (paths relative to it)")
    parser.add_argument("--study", help="study.yaml (default: study.yaml beside the manifest, if any)")
    parser.add_argument(
        "--no-files", action="store_true", help="check the table only, without opening images and masks"
    )
    parser.add_argument(
        "--features",
        default=None,
        metavar="TABLE",
        help="the manifest goes with a precomputed feature table (as train --features): image "
        "columns are neither needed nor checked, and TABLE is checked against the manifest",
    )


def run_validate(args: argparse.Namespace) -> int:
    """Print every problem and a summary; 1 if any error, 0 otherwise (warnings do not fail)."""
    cohort = load_manifest(args.manifest, study=args.study)
    if getattr(args, "features", None):
        from ALNMPredictorLib.tablefeatures import check_feature_table

        problems, table_summary = check_feature_table(cohort, args.features)
    else:
        problems, table_summary = cohort.validate(check_files=not args.no_files, progress=True), ""
    for problem in sorted(problems, key=lambda p: not p.is_error):  # errors first, each group in order
        print(problem)
    if table_summary:
        print(table_summary)
    n_errors = sum(p.is_error for p in problems)
    n_warnings = len(problems) - n_errors
    split_counts = Counter(cohort.table[cohort.split_column].dropna())
    splits = ", ".join(f"{s} ({split_counts[s]})" for s in cohort.splits()) or "none"
    clinical = ", ".join(f"{v.name} ({v.kind})" for v in cohort.clinical.values()) or "none"
    print(
        f"{len(cohort)} cases; regions: {', '.join(cohort.regions) or 'none'}; splits: {splits}; "
        f"clinical: {clinical}; {n_errors} error(s), {n_warnings} warning(s)"
        + ("" if not args.no_files else " (files not checked)")
    )
    return 1 if n_errors else 0


def sort_problems(problems: Sequence[Any]) -> tuple[dict[str, str], list[str]]:
    """(cases with an error → reason, warnings); an error that is not about one case stops the run."""
    global_errors = [p for p in problems if p.is_error and p.case is None]
    if global_errors:
        raise ALNMError("the manifest has errors:\n" + "\n".join(str(p) for p in global_errors))
    bad: dict[str, str] = {}
    for p in problems:
        if p.is_error and p.case is not None:
            bad.setdefault(str(p.case), f"column {p.column}: {p.message}" if p.column else p.message)
    warnings = [str(p) for p in problems if not p.is_error]
    return bad, warnings
