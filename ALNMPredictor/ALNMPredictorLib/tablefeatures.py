"""Features from a precomputed table (FAE, a pyradiomics run of one's own, any CNN) instead of images.

``alnm train|run|evaluate|predict --features TABLE`` reads one row per case (``case_id`` joins the
manifest; CSV, TSV or Parquet) and the manifest then needs only ``case_id``, ``label``, ``split`` and
clinical columns. Everything downstream (ICC filter, selection, LASSO scores, nomogram, statistics,
report) is the study's own pipeline.

Columns → regions. By default a column belongs to region ``R`` when its name starts with ``R_``; the
regions are the manifest's ``<region>_image`` regions if it has any, else ``tumor`` and ``ln`` (those
with at least one column). ``--region NAME=VALUE`` replaces the default: ``VALUE`` is a regular
expression (Python syntax, searched anywhere in the column name: anchor it with ``^``) when it holds any
of ``^$*+?()[]{}|\\``, otherwise a literal prefix. Inside the model a column keeps its name when it
already starts with ``NAME_`` and is called ``NAME_<column>`` otherwise, so a formula still shows the
original column. Table columns that are also manifest columns (label, split, clinical factors) are
ignored: the manifest's values are used. Any other column that no region claims is reported (a warning,
recorded in the saved model), never used.

Re-segmentation tables for the ICC filter (``--features-reader2``, ``--features-repeat``) have the same
columns for some training cases. A table with a ``variant`` column (as ``alnm extract`` writes
``features.parquet``) is read as all three: its ``main`` rows, and its ``reader2``/``repeat`` rows
unless those tables are given separately.

Missing values (an empty cell, NA, NaN) follow one documented rule, recorded in the saved model:

* ``median`` (default): each missing value is replaced by that column's median over the usable
  training cases (never the test cases); the medians are stored in the model and applied to new cases.
  A case with no value at all for a region is not imputed: it fails with that reason.
  Missing re-segmentation values are left missing: that feature fails the ICC filter.
* ``refuse``: training stops at the first missing value, naming the case and the column; at
  prediction a case with a missing value the model needs fails with the column named.

Errors (each naming the file, the column and/or the case): a non-numeric or non-finite value, a column
with no value at all, duplicated case ids, a column claimed by two regions, and no case shared with the
manifest. Manifest cases absent from the table fail (the run goes on, exit status 1); table cases absent
from the manifest are reported and ignored.
"""

from __future__ import annotations

import argparse
import csv
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib.cohort import NA_TOKENS
from ALNMPredictorLib.errors import ALNMError, InputError
from ALNMPredictorLib.fileio import sha256_file as file_sha256

__all__ = [
    "MISSING_RULES",
    "DEFAULT_REGIONS",
    "FeatureMapping",
    "FeatureTableSpec",
    "RegionRule",
    "add_feature_table_options",
    "internal_name",
    "load_feature_tables",
    "parse_region_option",
    "prediction_features",
    "read_feature_table",
    "source_text",
    "table_spec_from_args",
    "training_features",
]

log = logging.getLogger(__name__)

#: how missing feature values are handled (see the module docstring)
MISSING_RULES = ("median", "refuse")
#: regions looked for (by prefix) when neither --region nor <region>_image columns name them
DEFAULT_REGIONS = ("tumor", "ln")

_FORMAT = "ALNMPredictor.FeatureMapping"
_VERSION = 1
_REGEX_CHARS = set("^$*+?()[]{}|\\")
_REGION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)*")
_NA_TEXT = NA_TOKENS | {"none"}  # the manifest's missing-value texts; "none" too: feature values are numbers
_SHOW = 5
_REGION_SUFFIXES = ("_image", "_mask", "_mask_label", "_spacing", "_mask_reader2", "_mask_repeat")


def _few(items: Sequence[Any]) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:_SHOW])
    return f"{shown}, ... ({len(items)} in all)" if len(items) > _SHOW else shown


# --------------------------------------------------------------------------------------------------
# Column → region mapping


@dataclass(frozen=True)
class RegionRule:
    """Which table columns belong to a region: a literal ``prefix`` or a ``regex`` (searched)."""

    region: str
    pattern: str
    kind: str  # "prefix" | "regex"

    @classmethod
    def make(cls, region: str, value: str) -> RegionRule:
        """A rule from ``--region NAME=VALUE``: a regex when VALUE holds a regex metacharacter."""
        if not _REGION_NAME.fullmatch(region):
            raise ALNMError(
                f"region name '{region}' must be letters and digits (words joined by '_'), e.g. tumor, ln"
            )
        if not value:
            raise ALNMError(f"--region {region}=: give a column prefix or a regular expression")
        if set(value) & _REGEX_CHARS:
            try:
                re.compile(value)
            except re.error as exc:
                raise ALNMError(
                    f"--region {region}={value}: not a valid regular expression ({exc})"
                ) from None
            return cls(region, value, "regex")
        return cls(region, value, "prefix")

    def matches(self, column: str) -> bool:
        """True when ``column`` belongs to this region."""
        if self.kind == "prefix":
            return column.startswith(self.pattern) and len(column) > len(self.pattern)
        return re.search(self.pattern, column) is not None

    def describe(self) -> str:
        """``tumor: columns starting with 'tumor_'`` or ``... matching /regex/``."""
        how = f"starting with '{self.pattern}'" if self.kind == "prefix" else f"matching /{self.pattern}/"
        return f"{self.region}: columns {how}"


def parse_region_option(text: str) -> RegionRule:
    """Parse ``NAME=PREFIX_OR_REGEX`` (the ``--region`` option)."""
    name, sep, value = str(text).partition("=")
    if not sep:
        raise ALNMError(f"--region {text}: expected NAME=PREFIX_OR_REGEX, e.g. tumor=T_ or ln='^node[._]'")
    return RegionRule.make(name.strip(), value.strip())


def internal_name(region: str, column: str) -> str:
    """The model's name for a region column: unchanged when it starts with ``<region>_``, else prefixed."""
    return column if column.startswith(f"{region}_") else f"{region}_{column}"


@dataclass
class FeatureMapping:
    """How a table's columns become region features, and the missing-value rule; saved in the model.

    ``columns``: region → original column names (table order). ``medians``: internal name → training
    median (``median`` rule only; fitted on training cases).
    """

    rules: dict[str, RegionRule]
    columns: dict[str, list[str]]
    missing: str = "median"
    medians: dict[str, float] = field(default_factory=dict)

    @property
    def regions(self) -> list[str]:
        """Region names in order."""
        return list(self.columns)

    def names(self, region: str | None = None) -> list[str]:
        """Internal feature names, of one region or all."""
        regions = [region] if region is not None else self.regions
        return [internal_name(r, c) for r in regions for c in self.columns[r]]

    def renames(self) -> dict[str, str]:
        """Original column → internal name."""
        return {c: internal_name(r, c) for r in self.regions for c in self.columns[r]}

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (for the saved model)."""
        return {
            "format": _FORMAT,
            "version": _VERSION,
            "missing": self.missing,
            "regions": {
                r: {
                    "pattern": self.rules[r].pattern,
                    "kind": self.rules[r].kind,
                    "columns": list(self.columns[r]),
                    "n_features": len(self.columns[r]),
                }
                for r in self.regions
            },
            "medians": {k: float(v) for k, v in self.medians.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureMapping:
        """Rebuild from :meth:`to_dict` output."""
        if d.get("format") != _FORMAT or int(d.get("version", 0)) > _VERSION:
            raise ALNMError(
                f"not a feature mapping this version can read (format {d.get('format')!r}, "
                f"version {d.get('version')!r})"
            )
        regions = d.get("regions") or {}
        return cls(
            rules={r: RegionRule(r, str(v["pattern"]), str(v["kind"])) for r, v in regions.items()},
            columns={r: [str(c) for c in v["columns"]] for r, v in regions.items()},
            missing=str(d.get("missing", "median")),
            medians={str(k): float(v) for k, v in (d.get("medians") or {}).items()},
        )


def map_columns(
    columns: Sequence[str], rules: Sequence[RegionRule], manifest_columns: Sequence[str], *, path: Any = None
) -> tuple[dict[str, list[str]], list[str], list[str]]:
    """Columns per region, table columns left to the manifest, and columns nobody claims.

    Errors: a column claimed by two regions, a region with no column, two columns with one internal name,
    an internal name that is a manifest column.
    """
    manifest = set(manifest_columns)
    by_region: dict[str, list[str]] = {rule.region: [] for rule in rules}
    left_to_manifest: list[str] = []
    unmapped: list[str] = []
    for column in columns:
        if column in manifest:
            left_to_manifest.append(column)
            continue
        owners = [rule for rule in rules if rule.matches(column)]
        if len(owners) > 1:
            raise InputError(
                f"claimed by regions {' and '.join(r.region for r in owners)} "
                f"({'; '.join(r.describe() for r in owners)}): make the --region patterns "
                "exclusive",
                column=column,
                path=path,
            )
        if owners:
            by_region[owners[0].region].append(column)
        else:
            unmapped.append(column)
    for rule in rules:
        if not by_region[rule.region]:
            sample = _few([c for c in columns if c not in manifest])
            raise InputError(
                f"no column for region {rule.describe()} (columns: {sample or 'none'}); "
                "name the regions with --region NAME=PREFIX_OR_REGEX",
                path=path,
            )
    seen: dict[str, str] = {}
    for region, cols in by_region.items():
        for column in cols:
            name = internal_name(region, column)
            if name in manifest:
                raise InputError(
                    f"region {region} feature would be named {name}, a manifest column: rename one",
                    column=column,
                    path=path,
                )
            if name in seen:
                raise InputError(
                    f"columns {seen[name]} and {column} both become feature {name}: rename one",
                    column=column,
                    path=path,
                )
            seen[name] = column
    return by_region, left_to_manifest, unmapped


def _check_region_names(regions: Sequence[str]) -> None:
    for a in regions:
        for b in regions:
            if a != b and b.startswith(f"{a}_"):
                raise ALNMError(
                    f"region names '{a}' and '{b}' overlap ('{b}' starts with '{a}_'): rename one"
                )


def default_rules(cohort: Any, columns: Sequence[str]) -> list[RegionRule]:
    """``<region>_`` prefixes of the manifest's image regions, else of tumor/ln found in the table."""
    names = list(getattr(cohort, "regions", None) or [])
    if not names:
        names = [r for r in DEFAULT_REGIONS if any(str(c).startswith(f"{r}_") for c in columns)]
    if not names:
        raise InputError(
            f"no column starts with {' or '.join(f'{r}_' for r in DEFAULT_REGIONS)} (columns: "
            f"{_few(list(columns))}); name the regions with --region NAME=PREFIX_OR_REGEX"
        )
    return [RegionRule(r, f"{r}_", "prefix") for r in names]


# --------------------------------------------------------------------------------------------------
# Reading and checking tables


def _csv_header(path: Path, sep: str) -> list[str]:
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8-sig") as handle:
        return [c.strip() for c in next(csv.reader(handle, delimiter=sep), [])]


def read_feature_table(path: str | Path, *, case_column: str = "case_id") -> pd.DataFrame:
    """A feature table (CSV, TSV or Parquet) indexed by ``case_id`` (text); columns as read, nothing dropped.

    ``case_column`` is also accepted as the key (a manifest may rename case_id in study.yaml).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError("feature table not found", path=path)
    name = path.name.lower()
    keys = list(dict.fromkeys(["case_id", case_column]))
    try:
        if name.endswith((".parquet", ".pq")):
            frame = pd.read_parquet(path)
            if not any(k in frame.columns for k in keys) and frame.index.name in keys:
                frame = frame.reset_index()
        elif name.endswith((".csv", ".csv.gz", ".tsv", ".tsv.gz", ".txt")):
            sep = "\t" if ".tsv" in name else ","
            header = _csv_header(path, sep)
            dupes = sorted({c for c in header if header.count(c) > 1 and c})
            if dupes:
                raise InputError(f"duplicate column name(s): {_few(dupes)}", path=path)
            frame = pd.read_csv(
                path,
                sep=sep,
                dtype={k: str for k in keys},
                encoding="utf-8-sig",
                low_memory=False,
                na_values=["#N/A", "N/A", "NA", "NaN", "nan", "null", "NULL", ""],
                keep_default_na=False,
                **_EXACT_FLOATS,
            )
            frame.columns = [str(c).strip() for c in frame.columns]
        else:
            raise InputError("unsupported feature table format: use .csv, .tsv or .parquet", path=path)
    except InputError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for a broken file
        raise InputError(f"cannot read the feature table: {exc}", path=path) from None
    key = next((k for k in keys if k in frame.columns), None)
    if key is None:
        raise InputError(
            f"no '{keys[0]}' column to join the manifest (columns: {_few(list(frame.columns))})", path=path
        )
    frame.columns = [str(c) for c in frame.columns]
    ids = frame[key].map(
        lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
    )
    empty = np.flatnonzero(ids.map(lambda v: v is None or v.lower() in _NA_TEXT).to_numpy())
    if len(empty):
        raise InputError(f"{key} is empty in row {int(empty[0]) + 1} of the table", column=key, path=path)
    frame = frame.drop(columns=[key])
    frame.index = pd.Index(ids.to_numpy(dtype=object), name="case_id")
    return frame


def _split_variants(frame: pd.DataFrame, path: Path) -> dict[str, pd.DataFrame]:
    """main/reader2/repeat parts of a table, each indexed by case_id with unique ids."""
    if "variant" in frame.columns:
        variants = frame["variant"].astype(str).str.strip()
        unknown = sorted(set(variants) - {"main", "reader2", "repeat"})
        if unknown:
            raise InputError(
                f"unknown variant(s) {_few(unknown)} (main, reader2, repeat)", column="variant", path=path
            )
        parts = {
            v: frame.loc[(variants == v).to_numpy()].drop(columns=["variant"])
            for v in ("main", "reader2", "repeat")
        }
        parts = {v: p for v, p in parts.items() if len(p) or v == "main"}
    else:
        parts = {"main": frame}
    for variant, part in parts.items():
        dups = part.index[part.index.duplicated()].unique().tolist()
        if dups:
            where = f" ({variant} rows)" if "variant" in frame.columns else ""
            raise InputError(
                f"duplicate case_id(s){where}: {_few(dups)}; one row per case", column="case_id", path=path
            )
    return parts


#: pandas < 3 parses CSV floats to within an ulp or two unless asked for round-trip parsing (97 % of 1e5
#: written values came back different on 2.0); pandas 3 parses exactly by default and deprecates the option
_EXACT_FLOATS: dict[str, str] = (
    {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
)


def _to_float(text: str) -> float:
    """The number a text holds (NaN when it holds none)."""
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _numeric(frame: pd.DataFrame, columns: Sequence[str], path: Path) -> pd.DataFrame:
    """The columns as float64; a non-numeric or non-finite value is an error naming case and column."""
    columns = list(columns)
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    dtypes = frame.dtypes.reindex(columns).to_list()
    numeric = [pd.api.types.is_bool_dtype(d) or pd.api.types.is_numeric_dtype(d) for d in dtypes]
    where = np.flatnonzero(numeric)
    if len(where):
        out[:, where] = frame[[columns[j] for j in where]].astype("float64").to_numpy()
    for j in np.flatnonzero(~np.asarray(numeric, dtype=bool)):
        column = columns[j]
        text = frame[column].map(
            lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip()
        )
        is_na = text.map(lambda v: v is None or v.lower() in _NA_TEXT).to_numpy()
        # Python's float() is correctly rounded: a value written as text reads back as the same double
        values = np.array(
            [np.nan if na else _to_float(v) for v, na in zip(text, is_na, strict=True)], dtype=np.float64
        )
        bad = np.flatnonzero(np.isnan(values) & ~is_na)
        if len(bad):
            raise InputError(
                f"not numeric: value '{text.iloc[bad[0]]}' ({len(bad)} such value(s) in the column); "
                "feature columns must hold numbers",
                case=str(frame.index[bad[0]]),
                column=column,
                path=path,
            )
        out[:, j] = values
    infinite = np.isinf(out)
    if infinite.any():
        col = int(np.flatnonzero(infinite.any(axis=0))[0])
        row = int(np.flatnonzero(infinite[:, col])[0])
        raise InputError(
            f"value is not finite ({out[row, col]})",
            case=str(frame.index[row]),
            column=columns[col],
            path=path,
        )
    return pd.DataFrame(out, index=frame.index, columns=columns)


def _all_nan(values: pd.DataFrame, path: Path, what: str = "") -> None:
    empty = values.columns[values.isna().all(axis=0).to_numpy()].tolist()
    if empty:
        raise InputError(
            f"{'column has' if len(empty) == 1 else 'columns have'} no value{what}: "
            f"{_few(empty)}; drop {'it' if len(empty) == 1 else 'them'} or fill the values",
            column=empty[0],
            path=path,
        )


def _manifest_columns(cohort: Any) -> list[str]:
    table = cohort.table
    names = [cohort.case_column, cohort.label_column, cohort.split_column, *list(table.columns), "case_id"]
    if cohort.center_column:
        names.append(cohort.center_column)
    return list(dict.fromkeys(str(n) for n in names))


def _empty_region_rows(values: pd.DataFrame, mapping: FeatureMapping) -> dict[str, str]:
    failed: dict[str, str] = {}
    for region in mapping.regions:
        cols = mapping.names(region)
        none = values[cols].isna().all(axis=1)
        for case_id in values.index[none.to_numpy()]:
            failed.setdefault(
                str(case_id), f"region {region}: no feature value in the table (every column is empty)"
            )
    return failed


def _first_missing(values: pd.DataFrame) -> tuple[str, str, int]:
    na = values.isna().to_numpy()
    rows, cols = np.nonzero(na)
    return str(values.index[rows[0]]), str(values.columns[cols[0]]), int(na.sum())


def _constant_on(values: pd.DataFrame) -> list[str]:
    """Columns constant on these rows (at least two known values): flagged degenerate, as extraction does."""
    if len(values) < 2:
        return []
    array = values.to_numpy(dtype=np.float64)
    known = (~np.isnan(array)).sum(axis=0) >= 2
    constant = known & (np.fmax.reduce(array, axis=0) == np.fmin.reduce(array, axis=0))  # NaN-ignoring
    return [str(c) for c in values.columns[constant]]


# --------------------------------------------------------------------------------------------------
# Training and prediction


@dataclass
class FeatureTableSpec:
    """Feature tables given instead of images: main, optional re-segmentations, region rules, missing rule."""

    main: Path
    reader2: Path | None = None
    repeat: Path | None = None
    regions: list[RegionRule] | None = None
    missing: str = "median"

    def __post_init__(self) -> None:
        if self.missing not in MISSING_RULES:
            raise ALNMError(f"missing must be one of {', '.join(MISSING_RULES)}, not {self.missing!r}")
        self.main = Path(self.main)
        self.reader2 = None if self.reader2 is None else Path(self.reader2)
        self.repeat = None if self.repeat is None else Path(self.repeat)


def load_feature_tables(
    main: str | Path,
    *,
    cohort: Any,
    regions: Mapping[str, str] | Sequence[RegionRule] | None = None,
    reader2: str | Path | None = None,
    repeat: str | Path | None = None,
    missing: str = "median",
    exclude: Mapping[str, str] | None = None,
) -> Any:
    """Training features from tables, as :class:`~ALNMPredictorLib.extraction.Features`.

    ``regions``: name → prefix or regex (or RegionRule objects); default: see the module docstring.
    ``exclude``: cases set aside already (manifest errors: case → reason); they are neither training
    cases for the medians nor reported again. The fitted :class:`FeatureMapping` is in
    ``info["feature_table"]``; warnings (unmapped columns, imputed values, ...) in ``info["warnings"]``.
    """
    from ALNMPredictorLib.extraction import Features

    spec = FeatureTableSpec(
        Path(main),
        None if reader2 is None else Path(reader2),
        None if repeat is None else Path(repeat),
        _rules(regions),
        missing,
    )
    exclude = dict(exclude or {})
    warnings: list[str] = []
    tables = _split_variants(read_feature_table(spec.main, case_column=cohort.case_column), spec.main)
    table = tables["main"]
    manifest_cols = _manifest_columns(cohort)
    rules = spec.regions or default_rules(cohort, list(table.columns))
    _check_region_names([r.region for r in rules])
    by_region, to_manifest, unmapped = map_columns(list(table.columns), rules, manifest_cols, path=spec.main)
    if unmapped:
        warnings.append(
            f"{len(unmapped)} column(s) of {spec.main.name} belong to no region and are NOT used: "
            f"{_few(unmapped)} ({'; '.join(r.describe() for r in rules)})"
        )
    if to_manifest:
        warnings.append(
            f"column(s) {_few(to_manifest)} of {spec.main.name} are manifest columns: the manifest's "
            "values are used"
        )
    mapping = FeatureMapping({r.region: r for r in rules}, by_region, spec.missing)

    cases = cohort.case_ids()
    values, failed, extra = _cases_of(table, cases, spec.main, exclude)
    if extra:
        warnings.append(
            f"{len(extra)} case(s) of {spec.main.name} are not in the manifest and are ignored: {_few(extra)}"
        )
    values = _numeric(values, list(mapping.renames()), spec.main)
    _all_nan(values, spec.main)
    values.columns = mapping.names()

    train = (
        [c for c in cohort.case_ids(cohort.train_split) if c not in exclude and c not in failed]
        if cohort.train_split in cohort.splits()
        else []
    )
    if spec.missing == "refuse":
        if values.isna().to_numpy().any():
            case, column, count = _first_missing(
                values.rename(columns={v: k for k, v in mapping.renames().items()})
            )
            raise InputError(
                f"missing value ({count} in all) and the missing-value rule is 'refuse': fill the "
                "table, or use the 'median' rule",
                case=case,
                column=column,
                path=spec.main,
            )
    else:
        empty = _empty_region_rows(values, mapping)
        failed.update({c: r for c, r in empty.items() if c not in failed})
        train = [c for c in train if c not in failed]
        values, imputed = impute_training_medians(values, train, mapping, path=spec.main)
        if imputed["cells"]:
            warnings.append(
                f"{imputed['cells']} missing feature value(s) in {imputed['columns']} column(s) of "
                f"{imputed['cases']} case(s) replaced by training medians (rule 'median')"
            )
    main_values = values.loc[[c for c in values.index if c not in failed]]

    resegs: dict[str, pd.DataFrame | None] = {}
    for variant, given in (("reader2", spec.reader2), ("repeat", spec.repeat)):
        source: pd.DataFrame | None = None
        where = given
        if given is not None:
            parts = _split_variants(read_feature_table(given, case_column=cohort.case_column), given)
            source = parts.get(variant, parts["main"])  # an `alnm extract` table: its rows of this variant
        elif variant in tables:
            source, where = tables[variant], spec.main
        resegs[variant] = (
            None
            if source is None
            else _resegmentation(source, mapping, cohort, Path(where), spec.missing, warnings, variant)
        )

    degenerate = _constant_on(main_values.loc[[c for c in train if c in main_values.index]])
    for message in warnings:
        log.warning(message)
    info = {
        "source": "table",
        "regions": mapping.regions,
        "handcrafted": None,
        "deep": None,
        "feature_table": mapping.to_dict(),
        "tables": {
            name: _file_info(p)
            for name, p in (("main", spec.main), ("reader2", spec.reader2), ("repeat", spec.repeat))
            if p is not None
        },
        "unmapped_columns": unmapped,
        "manifest_columns_in_table": to_manifest,
        "degenerate": [
            {"reason": "constant on the training split: carries no information", "features": degenerate}
        ]
        if degenerate
        else [],
        "counts": {
            "cases": len(main_values),
            "features": len(mapping.names()),
            "features_per_region": {r: len(mapping.columns[r]) for r in mapping.regions},
        },
        "warnings": warnings,
    }
    return Features(
        main=main_values,
        reader2=resegs["reader2"],
        repeat=resegs["repeat"],
        failed=failed,
        degenerate=degenerate,
        info=info,
        deep_models={},
    )


def _rules(regions: Mapping[str, str] | Sequence[RegionRule] | None) -> list[RegionRule] | None:
    if regions is None:
        return None
    if isinstance(regions, Mapping):
        return [RegionRule.make(str(k), str(v)) for k, v in regions.items()] or None
    rules = list(regions)
    names = [r.region for r in rules]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise ALNMError(f"--region {dups[0]} given more than once")
    return rules or None


def _file_info(path: Path) -> dict[str, Any]:
    return {"path": str(Path(path).absolute()), "name": Path(path).name, "sha256": file_sha256(path)}


def _cases_of(
    table: pd.DataFrame, cases: Sequence[str], path: Path, exclude: Mapping[str, str]
) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """Rows of manifest cases; manifest cases without a row (failed) and table cases not in the manifest."""
    wanted = [c for c in cases if c not in exclude]
    present = set(table.index)
    missing = [c for c in wanted if c not in present]
    manifest = set(cases)
    extra = [str(c) for c in table.index if c not in manifest]
    if wanted and len(missing) == len(wanted):
        raise InputError(
            f"no case of the manifest is in the feature table (manifest: {_few(wanted)}; table: "
            f"{_few(list(table.index))}): do the case_id values match?",
            column="case_id",
            path=path,
        )
    failed = {c: f"no row in the feature table {path.name}" for c in missing}
    rows = [c for c in wanted if c in present]
    return table.loc[rows], failed, extra


def impute_training_medians(
    values: pd.DataFrame, train_ids: Sequence[str], mapping: FeatureMapping, *, path: Path | None = None
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Fill missing values with medians over ``train_ids`` rows only; medians stored in ``mapping``."""
    train = values.loc[[c for c in train_ids if c in values.index]]
    if len(train) == 0:
        raise ALNMError(
            "no usable training case in the feature table: the imputation medians cannot be fitted"
        )
    medians = train.median(axis=0, skipna=True)
    renames = {v: k for k, v in mapping.renames().items()}
    no_train = medians.index[medians.isna().to_numpy()].tolist()
    if no_train:
        raise InputError(
            f"no value in any training case ({len(no_train)} column(s): "
            f"{_few([renames.get(c, c) for c in no_train])}): the median cannot be fitted; drop the "
            "column(s) or fill the values",
            column=renames.get(no_train[0], no_train[0]),
            path=path,
        )
    mapping.medians = {str(k): float(v) for k, v in medians.items()}
    return _fill(values, mapping.medians)


def _fill(values: pd.DataFrame, medians: Mapping[str, float]) -> tuple[pd.DataFrame, dict[str, int]]:
    array = values.to_numpy(dtype=np.float64, copy=True)
    na = np.isnan(array)
    stats = {"cells": int(na.sum()), "columns": int(na.any(axis=0).sum()), "cases": int(na.any(axis=1).sum())}
    if stats["cells"]:
        fill = np.array([medians.get(c, np.nan) for c in values.columns], dtype=np.float64)
        array = np.where(na, fill[None, :], array)
        values = pd.DataFrame(array, index=values.index, columns=values.columns)
    return values, stats


def _resegmentation(
    source: pd.DataFrame,
    mapping: FeatureMapping,
    cohort: Any,
    path: Path,
    missing: str,
    warnings: list[str],
    variant: str,
) -> pd.DataFrame | None:
    """A re-segmentation table mapped like the main one (same columns, manifest cases only)."""
    renames = mapping.renames()
    absent = [c for c in renames if c not in source.columns]
    if absent:
        raise InputError(
            f"{variant} re-segmentation table lacks {len(absent)} feature column(s) of the main table: "
            f"{_few(absent)}",
            column=absent[0],
            path=path,
        )
    manifest = set(cohort.case_ids())
    extra = [str(c) for c in source.index if c not in manifest]
    if extra:
        warnings.append(
            f"{len(extra)} case(s) of the {variant} table {path.name} are not in the manifest and are "
            f"ignored: {_few(extra)}"
        )
    rows = source.loc[[c for c in source.index if c in manifest]]
    if rows.empty:
        raise InputError(
            f"no case of the {variant} re-segmentation table is in the manifest", column="case_id", path=path
        )
    values = _numeric(rows, list(renames), path)
    _all_nan(values, path, f" in the {variant} table")
    if missing == "refuse" and values.isna().to_numpy().any():
        case, column, count = _first_missing(values)
        raise InputError(
            f"missing value ({count} in all) in the {variant} table and the missing-value rule is 'refuse'",
            case=case,
            column=column,
            path=path,
        )
    return values.rename(columns=renames)


def training_features(cohort: Any, spec: FeatureTableSpec) -> tuple[Any, dict[str, str], list[str]]:
    """(features, cases set aside by the manifest check, warnings) for ``pipeline.train`` from tables.

    The manifest is checked without opening images: image columns, if any, are not used.
    """
    bad, warnings = usable_cohort(cohort)
    features = load_feature_tables(
        spec.main,
        cohort=cohort,
        regions=spec.regions,
        reader2=spec.reader2,
        repeat=spec.repeat,
        missing=spec.missing,
        exclude=bad,
    )
    return features, bad, warnings + list(features.info.get("warnings") or [])


def usable_cohort(cohort: Any) -> tuple[dict[str, str], list[str]]:
    """Manifest check for a table run: no file checks, image columns neither needed nor checked."""
    from ALNMPredictorLib.cohort import NO_REGIONS, Problem

    region_cols = {f"{r}{s}" for r in cohort.regions for s in _REGION_SUFFIXES}
    problems: list[Problem] = []
    for p in cohort.validate(check_files=False):
        if p.code == NO_REGIONS:
            continue  # features come from the table
        if p.column in region_cols:
            continue
        problems.append(p)
    from ALNMPredictorLib.cohort import sort_problems

    bad, warnings = sort_problems(problems)
    if cohort.regions:
        warnings.append(
            f"features come from a table: the manifest's image columns ({', '.join(cohort.regions)}) "
            "are not used"
        )
    return bad, warnings


def check_feature_table(cohort: Any, table: str | Path) -> tuple[list[Any], str]:
    """``alnm validate --features TABLE``: the manifest's problems without image checks (image columns are
    not needed), the table's as errors or warnings naming it, and a one-line summary of what was found."""
    from ALNMPredictorLib.cohort import NO_REGIONS, Problem

    region_cols = {f"{r}{suffix}" for r in cohort.regions for suffix in _REGION_SUFFIXES}
    problems = [
        p for p in cohort.validate(check_files=False) if p.code != NO_REGIONS and p.column not in region_cols
    ]
    bad = {str(p.case): p.message for p in problems if p.is_error and p.case is not None}
    try:
        features = load_feature_tables(table, cohort=cohort, exclude=bad)
    except ALNMError as exc:
        problems.append(Problem("error", None, None, f"feature table {table}: {exc}"))
        return problems, ""
    for case, reason in (features.failed or {}).items():
        problems.append(Problem("error", str(case), None, f"feature table: {reason}"))
    for warning in features.info.get("warnings") or []:
        problems.append(Problem("warning", None, None, f"feature table: {warning}"))
    mapping = (features.info.get("feature_table") or {}).get("regions") or {}
    regions = ", ".join(f"{r} ({v.get('n_features', 0)} columns)" for r, v in mapping.items()) or "none"
    return problems, f"feature table {Path(table).name}: {len(features.main)} case(s); regions: {regions}"


def prediction_features(
    cohort: Any, table: str | Path | None, info: Mapping[str, Any], model: Any
) -> tuple[Any, dict[str, str]]:
    """(features, cases set aside by the manifest check) of a saved model applied to a feature table.

    A model trained on a table maps the new table as recorded (columns, internal names, training medians);
    a model trained on images reads ``<region>_...`` columns as they are (no imputation). A column the
    model uses that the table lacks is an error naming it.
    """
    from ALNMPredictorLib.extraction import Features

    recorded = ((info.get("extraction") or {}).get("feature_table")) or info.get("feature_table")
    if table is None:
        if recorded:
            raise ALNMError(
                "this model was trained on a feature table: give the new cases' table with --features TABLE"
            )
        raise ALNMError("no feature table given")
    path = Path(table)
    bad, _ = usable_cohort(cohort)
    warnings: list[str] = []
    frame = _split_variants(read_feature_table(path, case_column=cohort.case_column), path)["main"]
    needed = {r: list(cols) for r, cols in model.required_columns().items() if r != "clinical"}
    if recorded:
        mapping = FeatureMapping.from_dict(recorded)
    else:  # a model trained on images: the table must use the extraction's names
        regions = list(model.regions)
        cols = {r: [c for c in frame.columns if c.startswith(f"{r}_")] for r in regions}
        mapping = FeatureMapping({r: RegionRule(r, f"{r}_", "prefix") for r in regions}, cols, "refuse")
    original = {v: k for k, v in mapping.renames().items()}
    for names in needed.values():
        for name in names:
            original.setdefault(name, name)  # a model trained on images: the name is the column
    need_cols = [original[n] for names in needed.values() for n in names]
    lacking = [c for c in need_cols if c not in frame.columns]
    if lacking:
        raise InputError(
            f"the model uses feature column(s) the table lacks: {_few(lacking)}", column=lacking[0], path=path
        )
    recorded_cols = [c for r in mapping.regions for c in mapping.columns[r]]
    other = [c for c in recorded_cols if c not in frame.columns]
    if other:
        warnings.append(
            f"{len(other)} feature column(s) of the training table are absent from {path.name} (not used "
            f"by the model, but were the features computed the same way?): {_few(other)}"
        )
    known = set(recorded_cols) | set(_manifest_columns(cohort))
    unmapped = [c for c in frame.columns if c not in known]
    if unmapped:
        warnings.append(
            f"{len(unmapped)} column(s) of {path.name} are not features of the model and are NOT used: "
            f"{_few(unmapped)}"
        )
    use = [c for c in recorded_cols if c in frame.columns] or need_cols
    use = list(dict.fromkeys(use + need_cols))
    values, failed, extra = _cases_of(frame, cohort.case_ids(), path, bad)
    if extra:
        warnings.append(
            f"{len(extra)} case(s) of {path.name} are not in the manifest and are ignored: {_few(extra)}"
        )
    values = _numeric(values, use, path)
    _all_nan(values[need_cols], path)
    values = values.rename(columns=mapping.renames())
    needed_names = [n for names in needed.values() for n in names]
    for region, names in needed.items():
        none = values[names].isna().all(axis=1)
        for case_id in values.index[none.to_numpy()]:
            failed.setdefault(str(case_id), f"region {region}: no feature value in the table")
    imputed = {"cells": 0}
    if mapping.missing == "median" and mapping.medians:
        filled, imputed = _fill(values[needed_names], mapping.medians)
        values[needed_names] = filled
    if imputed["cells"]:
        warnings.append(
            f"{imputed['cells']} missing value(s) of the model's features in {imputed['cases']} case(s) "
            "replaced by training medians (rule 'median')"
        )
    for message in warnings:
        log.warning(message)
    main_values = values.loc[[c for c in values.index if c not in failed]]
    features = Features(
        main=main_values,
        reader2=None,
        repeat=None,
        failed=failed,
        degenerate=[],
        info={
            "source": "table",
            "regions": list(model.regions),
            "warnings": warnings,
            "tables": {"main": _file_info(path)},
        },
        deep_models={},
    )
    return features, bad


def source_text(info: Mapping[str, Any]) -> str:
    """One line for reports: where the features of a table-trained model came from."""
    extraction = info.get("extraction") or {}
    tables = extraction.get("tables") or {}
    recorded = extraction.get("feature_table") or {}
    regions = recorded.get("regions") or {}
    per_region = ", ".join(
        f"{r}: {v.get('n_features', len(v.get('columns', [])))}" for r, v in regions.items()
    )
    names = ", ".join(t.get("name", "") for t in tables.values())
    return (
        f"features read from a table ({names}; {per_region} columns; missing values: "
        f"{recorded.get('missing', 'median')}), no image extraction"
    )


# --------------------------------------------------------------------------------------------------
# CLI


def add_feature_table_options(parser: argparse.ArgumentParser, *, training: bool) -> None:
    """``--features`` (and, for training, ``--region``, ``--features-reader2/-repeat``, ``--missing``)."""
    parser.add_argument(
        "--features",
        default=None,
        metavar="TABLE",
        help="precomputed feature table (CSV or Parquet, one row per case, case_id column) "
        "instead of extracting from images",
    )
    if not training:
        return
    parser.add_argument(
        "--region",
        action="append",
        default=None,
        metavar="NAME=PREFIX_OR_REGEX",
        help="with --features: the columns of a region, by prefix or regular expression "
        "(repeat per region; default: tumor_..., ln_...)",
    )
    parser.add_argument(
        "--features-reader2",
        default=None,
        metavar="TABLE",
        help="with --features: features of a second reader's segmentations (ICC filter)",
    )
    parser.add_argument(
        "--features-repeat",
        default=None,
        metavar="TABLE",
        help="with --features: features of repeated segmentations (ICC filter)",
    )
    parser.add_argument(
        "--missing",
        choices=MISSING_RULES,
        default=None,
        help="with --features: missing values get the training median (default) or are refused",
    )


def table_spec_from_args(args: argparse.Namespace) -> FeatureTableSpec | None:
    """The feature tables named on the command line, or None when features are extracted from images."""
    main = getattr(args, "features", None)
    others = {
        "--region": getattr(args, "region", None),
        "--features-reader2": getattr(args, "features_reader2", None),
        "--features-repeat": getattr(args, "features_repeat", None),
        "--missing": getattr(args, "missing", None),
    }
    if main is None:
        given = [k for k, v in others.items() if v]
        if given:
            raise ALNMError(f"{', '.join(given)} need(s) --features TABLE")
        return None
    rules = [parse_region_option(t) for t in (getattr(args, "region", None) or [])]
    return FeatureTableSpec(
        main=Path(main),
        reader2=others["--features-reader2"],
        repeat=others["--features-repeat"],
        regions=_rules(rules),
        missing=getattr(args, "missing", None) or "median",
    )
