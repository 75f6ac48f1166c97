"""The study's evaluation per split: Tables 1, 2, 3, S3, S4, calibration, decision curves, reader study.

:func:`evaluate` turns the pipeline's predictions (one row per case, one probability column per model)
into the tables and long-format curves of :class:`EvaluationResult`; every number comes from
:mod:`ALNMPredictorLib.stats` called on the evaluated cases of one split, so a table cell can be
recomputed from ``predictions.csv`` with one stats call:

* Table 3 (``table3``): AUC with its DeLong CI (``auc_ci``) and accuracy, sensitivity, specificity,
  PPV, NPV with Clopper-Pearson CIs (``classification_metrics``) at each model's own training Youden
  cut-off (``LogisticModel.cutoff``), a case positive when its probability is >= the cut-off.
* Table S3 (``table_s3``): paired DeLong test of the combined model against every other model.
* Table S4 (``table_s4``): continuous NRI and IDI (Hmisc ``improveProb``) of the combined model over the
  reference (clinical) model, and the categorical NRI at the combined model's cut-off.
* Calibration: Hosmer-Lemeshow (10 groups, with a note where it is unreliable: see
  :func:`hosmer_lemeshow_caveat`), rms ``val.prob`` intercept/slope/Brier, binned and lowess calibration
  curves; for every model and set, seeded outcome-stratified percentile-bootstrap CIs of intercept and
  slope (:func:`~ALNMPredictorLib.stats.calibration_bootstrap_ci`: ``n_boot`` resamples, the same rows for every
  model of a set).
* Decision curves (rmda net benefit) and clinical impact curves on thresholds 0, 0.01, ..., 0.99.
* Table 1: baseline characteristics per split, with a test across splits named in its ``test`` column.
* Table 2: univariate and multivariable odds ratios, read from the fitted models.
* Reader study: :func:`ALNMPredictorLib.reader_study.reader_study` on the reads joined with the labels.

Only cases with status ``ok`` and a known label are evaluated. A split with one outcome class gives a
warning naming it and NaN in the analyses that need both classes, never an exception.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ALNMPredictorLib import stats
from ALNMPredictorLib.errors import InputError, StatsError
from ALNMPredictorLib.fileio import jsonable, write_json, write_table

__all__ = [
    "EvaluationResult",
    "evaluate",
    "baseline_table",
    "odds_ratio_table",
    "model_order",
    "TABLE_KEYS",
    "CURVE_KEYS",
]

TABLE_KEYS = (
    "table1",
    "table2",
    "table3",
    "table_s3",
    "table_s4",
    "hosmer_lemeshow",
    "calibration",
    "risk_groups",
    "reader_metrics",
    "reader_tests",
    "reader_kappa",
)
CURVE_KEYS = ("roc", "calibration_binned", "calibration_smooth", "decision", "clinical_impact", "reader_roc")

#: Hosmer-Lemeshow groups and calibration bins (the study: 10, ResourceSelection's default)
HL_GROUPS = 10
#: Fisher's exact test replaces the chi-square test when more than this share of expected counts is < 5
SMALL_EXPECTED_SHARE = 0.2
#: Monte Carlo resamples for Fisher's test on tables larger than 2 x 2 (R ``simulate.p.value``)
FISHER_RESAMPLES = 10000

_TABLE3_COLUMNS = [
    "split",
    "model",
    "auc",
    "auc_low",
    "auc_high",
    "accuracy",
    "sensitivity",
    "specificity",
    "ppv",
    "npv",
    "cutoff",
    "n",
    "n_events",
    "accuracy_low",
    "accuracy_high",
    "sensitivity_low",
    "sensitivity_high",
    "specificity_low",
    "specificity_high",
    "ppv_low",
    "ppv_high",
    "npv_low",
    "npv_high",
    "tp",
    "fp",
    "tn",
    "fn",
]


# --------------------------------------------------------------------------------------------------
# Result


@dataclass
class EvaluationResult:
    """Tables (``TABLE_KEYS`` present), long-format curves (``CURVE_KEYS``), JSON summary, warnings."""

    tables: dict[str, pd.DataFrame]
    curves: dict[str, pd.DataFrame]
    summary: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def save(self, out_dir: str | Path) -> list[Path]:
        """Write ``<table>.csv`` per table, ``curve_<name>.csv`` per curve and ``evaluation.json``.

        Every file is written atomically. The JSON holds ``summary``, ``warnings`` and every table as
        records (NaN and infinities as null). Returns the paths written.
        """
        out = Path(out_dir)
        written = [write_table(out / f"{key}.csv", table) for key, table in self.tables.items()]
        written += [write_table(out / f"curve_{key}.csv", curve) for key, curve in self.curves.items()]
        payload = {
            "summary": jsonable(self.summary),
            "warnings": list(self.warnings),
            "tables": {key: _records(table) for key, table in self.tables.items()},
        }
        written.append(write_json(out / "evaluation.json", payload))
        return written

    @classmethod
    def load(cls, out_dir: str | Path) -> EvaluationResult:
        """Read back what :meth:`save` wrote (tables and curves from their CSV files)."""
        out = Path(out_dir)
        path = out / "evaluation.json"
        if not path.is_file():
            raise InputError("no evaluation.json here; run `alnm evaluate` first", path=out)
        payload = json.loads(path.read_text(encoding="utf-8"))
        tables = {}
        for key in payload.get("tables", {}):
            tables[key] = _read_csv(out / f"{key}.csv")
        curves = {p.stem[len("curve_") :]: _read_csv(p) for p in sorted(out.glob("curve_*.csv"))}
        return cls(
            tables=tables,
            curves=curves,
            summary=payload.get("summary", {}),
            warnings=payload.get("warnings", []),
        )


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except pd.errors.EmptyDataError:
        return pd.DataFrame()


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return [jsonable(row) for row in table.to_dict(orient="records")]


# --------------------------------------------------------------------------------------------------
# Inputs


def model_order(
    names: Sequence[str], combined: str = "clinical_radiomics", reference_model: str = "clinical"
) -> list[str]:
    """Table order: the reference (clinical) model, the other models as given (region scores), combined last."""
    names = list(names)
    first = [reference_model] if reference_model in names else []
    last = [combined] if combined in names else []
    return first + [n for n in names if n not in (reference_model, combined)] + last


def _prepare(predictions: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Predictions indexed by case_id (str), label as float 0/1/NaN, status filled, probabilities checked."""
    pred = predictions.copy()
    if "case_id" in pred.columns:
        pred = pred.set_index("case_id")
    pred.index = pred.index.astype(str)
    pred.index.name = "case_id"
    if pred.index.has_duplicates:
        dup = pred.index[pred.index.duplicated()][0]
        raise InputError("case listed twice in the predictions", case=dup, column="case_id")
    for col in ("split", "label"):
        if col not in pred.columns:
            raise InputError("predictions have no such column", column=col)
    pred["split"] = pred["split"].astype(str)
    if "status" not in pred.columns:
        pred["status"] = "ok"
    pred["status"] = pred["status"].fillna("failed").astype(str)
    if "error" not in pred.columns:
        pred["error"] = ""
    label = pd.to_numeric(pred["label"].astype(object), errors="coerce").astype(float)
    bad = pred["label"].notna().to_numpy() & (label.isna().to_numpy() | ~label.isin([0.0, 1.0]).to_numpy())
    bad &= ~pred["label"].astype(str).str.strip().isin(["", "nan", "NaN", "<NA>", "None"]).to_numpy()
    if bad.any():
        case = pred.index[bad][0]
        raise InputError(
            f"label must be 0, 1 or empty, got {pred['label'][case]!r}", case=case, column="label"
        )
    pred["label"] = label
    ok = pred["status"] == "ok"
    for name in models:
        col = f"prob_{name}"
        if col not in pred.columns:
            raise InputError(f"predictions have no probability column for the {name} model", column=col)
        values = pd.to_numeric(pred[col].astype(object), errors="coerce").astype(float)
        missing = ok & values.isna()
        if missing.any():
            raise InputError(
                "missing probability in a case whose status is ok", case=pred.index[missing][0], column=col
            )
        out = ok & ((values < 0) | (values > 1))
        if out.any():
            case = pred.index[out][0]
            raise InputError(f"probability outside [0, 1]: {values[case]!r}", case=case, column=col)
        pred[col] = values
    return pred


def _split_order(pred: pd.DataFrame, splits: Sequence[str] | None, train_split: str) -> list[str]:
    present = list(dict.fromkeys(pred["split"]))
    if splits is None:
        return ([train_split] if train_split in present else []) + [s for s in present if s != train_split]
    unknown = [s for s in splits if s not in present]
    if unknown:
        raise InputError(
            f"split '{unknown[0]}' is not in the predictions (splits there: {', '.join(present) or 'none'})",
            column="split",
        )
    return list(dict.fromkeys(splits))


# --------------------------------------------------------------------------------------------------
# Table 1


def _fmt_n_pct(count: int, total: int) -> str:
    return f"{count} ({100.0 * count / total:.1f})" if total else f"{count} (-)"


def _categorical_p(table: np.ndarray, seed: int) -> tuple[float, str]:
    """Pearson chi-square (Yates on 2 x 2, as R ``chisq.test``); Fisher when expected counts are small."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return float("nan"), "not tested (one level or one set)"
    expected = sps.contingency.expected_freq(table)
    small = np.mean(expected < 5) > SMALL_EXPECTED_SHARE or (expected < 1).any()
    if not small:
        corrected = table.shape == (2, 2)
        res = sps.chi2_contingency(table, correction=corrected)
        return float(res.pvalue), "chi-square (Yates)" if corrected else "chi-square"
    if table.shape == (2, 2):
        return float(sps.fisher_exact(table).pvalue), "Fisher exact"
    pvalue = fisher_exact_monte_carlo(table, FISHER_RESAMPLES, np.random.default_rng(seed))
    return pvalue, f"Fisher (Monte Carlo, {FISHER_RESAMPLES} tables)"


def fisher_exact_monte_carlo(table: np.ndarray, n_resamples: int, rng: np.random.Generator) -> float:
    """Fisher's exact test of an r x c table by Monte Carlo (as R ``fisher.test(simulate.p.value=TRUE)``).

    Tables with the same margins are drawn from the hypergeometric null; the p-value is the share of
    them (plus the observed one) no more probable than the observed table. This is what SciPy >= 1.15
    computes for ``fisher_exact(table, method=MonteCarloMethod(rng=rng))``, with the same draws, written
    with the primitives SciPy 1.13 already has (Slicer 5.10 bundles SciPy 1.13.1).
    """
    table = np.asarray(table, dtype=np.int64)
    shape = table.shape
    null = sps.random_table(table.sum(axis=1), table.sum(axis=0), seed=rng)

    def rvs(size: tuple[int, ...]) -> np.ndarray:
        return null.rvs(size=size[0]).reshape(size)

    def statistic(tables: np.ndarray, axis: int) -> np.ndarray:
        batch = (-1, *shape) if tables.size > table.sum() else shape
        return null.pmf(tables.reshape(batch))

    result = sps.monte_carlo_test(table.ravel(), rvs, statistic, alternative="less", n_resamples=n_resamples)
    return float(result.pvalue)


def _continuous_p(groups: list[np.ndarray], test: str) -> tuple[float, str]:
    groups = [g for g in groups if g.size]
    if len(groups) < 2:
        return float("nan"), "not tested (one set)"
    if test == "kruskal":
        if np.ptp(np.concatenate(groups)) == 0:
            return float("nan"), "not tested (constant)"
        return float(sps.kruskal(*groups).pvalue), "Kruskal-Wallis"
    if any(g.size < 2 for g in groups) or all(np.ptp(g) == 0 for g in groups):
        return float("nan"), "not tested (too few values)"
    return float(sps.f_oneway(*groups).pvalue), "ANOVA"


def _levels(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [lv for lv in series.cat.categories if (series == lv).any()]
    values = series.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def baseline_table(
    clinical: pd.DataFrame | None,
    labels: pd.Series,
    split: pd.Series,
    splits: Sequence[str],
    kinds: Mapping[str, str] | None = None,
    *,
    continuous_test: str = "anova",
    seed: int = 0,
) -> pd.DataFrame:
    """Table 1: ``characteristic level <split>... p_value statistical_test`` over ``labels``/``split``'s cases.

    (A split may not be named like those columns: the manifest reader refuses it, cohort.TABLE1_COLUMNS.)

    Continuous characteristics: mean ± SD per split and one-way ANOVA (``continuous_test="kruskal"``:
    Kruskal-Wallis) across splits. Categorical ones, and the ALNM label: n (%) per split (% of the
    split's cases with a known value) and a Pearson chi-square test across splits, with Yates'
    correction on a 2 x 2 table (R ``chisq.test``'s default); when more than 20 % of the expected
    counts are below 5 (or any below 1), Fisher's exact test instead (Monte Carlo for tables larger
    than 2 x 2, seeded). ``kinds`` maps a column to ``"continuous"`` or ``"categorical"``; without it,
    numeric columns with more than 2 distinct values are continuous. Missing values get a
    ``(missing)`` row and are left out of the percentages and tests.
    """
    if continuous_test not in ("anova", "kruskal"):
        raise StatsError(f"continuous_test: must be 'anova' or 'kruskal', got {continuous_test!r}")
    index = labels.index
    split = split.reindex(index).astype(str)
    members = {s: index[(split == s).to_numpy()] for s in splits}
    rows: list[dict[str, Any]] = [
        {
            "characteristic": "Patients",
            "level": "n",
            **{s: str(len(m)) for s, m in members.items()},
            "p_value": np.nan,
            "statistical_test": "",
        }
    ]

    def categorical_rows(name: str, values: pd.Series, level_names: Mapping[Any, str] | None = None) -> None:
        levels = _levels(values)
        counts = np.array(
            [[int((values.loc[members[s]] == lv).sum()) for s in splits] for lv in levels], dtype=int
        )
        known = counts.sum(axis=0) if len(levels) else np.zeros(len(splits), dtype=int)
        p, test = _categorical_p(counts, seed) if len(levels) else (float("nan"), "not tested (no values)")
        for k, lv in enumerate(levels):
            label = (level_names or {}).get(lv, str(lv))
            cells = {s: _fmt_n_pct(int(counts[k, j]), int(known[j])) for j, s in enumerate(splits)}
            rows.append(
                {
                    "characteristic": name,
                    "level": label,
                    **cells,
                    "p_value": p if k == 0 else np.nan,
                    "statistical_test": test if k == 0 else "",
                }
            )
        missing = [int(values.loc[members[s]].isna().sum()) for s in splits]
        if any(missing):
            rows.append(
                {
                    "characteristic": name,
                    "level": "(missing)",
                    **{s: str(m) for s, m in zip(splits, missing, strict=True)},
                    "p_value": np.nan,
                    "statistical_test": "",
                }
            )

    categorical_rows("ALNM", labels, {0.0: "Negative", 1.0: "Positive"})
    if clinical is None or clinical.empty:
        return pd.DataFrame(rows, columns=["characteristic", "level", *splits, "p_value", "statistical_test"])
    table = clinical.copy()
    table.index = table.index.astype(str)
    table = table.reindex(index)
    for col in table.columns:
        if col in ("split", "label", "case_id"):
            continue
        values = table[col]
        kind = (kinds or {}).get(col)
        if kind is None:
            numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            kind = "continuous" if numeric and values.nunique() > 2 else "categorical"
        if kind == "continuous":
            num = pd.to_numeric(values, errors="coerce")
            bad = values.notna() & num.isna()
            if bad.any():
                raise InputError(
                    f"continuous characteristic is not numeric: {values[bad].iloc[0]!r}",
                    case=str(values.index[bad][0]),
                    column=str(col),
                )
            groups = [num.loc[members[s]].dropna().to_numpy(dtype=float) for s in splits]
            p, test = _continuous_p(groups, continuous_test)
            cells = {
                s: (
                    f"{g.mean():.1f} ± {g.std(ddof=1):.1f}"
                    if g.size > 1
                    else (f"{g.mean():.1f}" if g.size else "-")
                )
                for s, g in zip(splits, groups, strict=True)
            }
            rows.append(
                {
                    "characteristic": str(col),
                    "level": "mean ± SD",
                    **cells,
                    "p_value": p,
                    "statistical_test": test,
                }
            )
            missing = [int(num.loc[members[s]].isna().sum()) for s in splits]
            if any(missing):
                rows.append(
                    {
                        "characteristic": str(col),
                        "level": "(missing)",
                        **{s: str(m) for s, m in zip(splits, missing, strict=True)},
                        "p_value": np.nan,
                        "statistical_test": "",
                    }
                )
        elif kind == "categorical":
            categorical_rows(str(col), values)
        else:
            raise InputError(f"kind must be 'continuous' or 'categorical', got {kind!r}", column=str(col))
    return pd.DataFrame(rows, columns=["characteristic", "level", *splits, "p_value", "statistical_test"])


# --------------------------------------------------------------------------------------------------
# Table 2


def odds_ratio_table(
    models: Mapping[str, Any], combined: str = "clinical_radiomics", reference_model: str = "clinical"
) -> pd.DataFrame:
    """Table 2: univariate OR (95% CI, p) of every candidate, and the multivariable ORs in the clinical
    (``clin_*``) and clinical-radiomics (``cr_*``) models; NaN where a term is not in a model.

    Univariate rows come from the combined model's univariate screen (region scores and clinical
    factors), multivariable ones from each model's final fit (training set).
    """
    cols = [
        "variable",
        "level",
        "reference",
        "term",
        "uni_or",
        "uni_low",
        "uni_high",
        "uni_p",
        "uni_p_variable",
        "clin_or",
        "clin_low",
        "clin_high",
        "clin_p",
        "cr_or",
        "cr_low",
        "cr_high",
        "cr_p",
    ]
    if combined not in models:
        return pd.DataFrame(columns=cols)
    uni = pd.DataFrame(models[combined].univariate)
    rows: dict[str, dict[str, Any]] = {}
    for rec in uni.to_dict(orient="records"):
        level = rec.get("level")
        rows[str(rec["term"])] = {
            "variable": rec["variable"],
            "level": None if level is None or (isinstance(level, float) and math.isnan(level)) else level,
            "reference": rec.get("reference"),
            "term": rec["term"],
            "uni_or": rec["odds_ratio"],
            "uni_low": rec["or_low"],
            "uni_high": rec["or_high"],
            "uni_p": rec["p"],
            "uni_p_variable": rec.get("p_variable", np.nan),
        }
    for prefix, name in (("clin", reference_model), ("cr", combined)):
        if name not in models:
            continue
        for rec in models[name].fit_table:
            term = str(rec["term"])
            if term == stats.INTERCEPT:
                continue
            row = rows.setdefault(term, {"variable": term, "level": None, "term": term})
            row[f"{prefix}_or"] = rec["odds_ratio"]
            row[f"{prefix}_low"] = rec["or_low"]
            row[f"{prefix}_high"] = rec["or_high"]
            row[f"{prefix}_p"] = rec["p"]
    return pd.DataFrame(list(rows.values()), columns=cols)


# --------------------------------------------------------------------------------------------------
# Hosmer-Lemeshow caveat


#: below this many cases a Hosmer-Lemeshow test with 10 groups is flagged as unreliable
HL_SMALL_N = 100


def hosmer_lemeshow_caveat(hl: Any, n: int) -> str:
    """Why a Hosmer-Lemeshow result should not be trusted, or "".

    Small sets (n < 100: about 10 cases per group, little power, a poor chi-square approximation; Hosmer,
    Lemeshow and Sturdivant, *Applied Logistic Regression*, 3rd ed., 2013, sec. 5.2.2) and sparse groups
    (Cochran's rule: more than 20 % of the expected counts below 5, or any below 1), where a few cases
    with predictions near 0 or 1 make the statistic explode.
    """
    if hl is None:
        return ""
    reasons = []
    if n < HL_SMALL_N:
        reasons.append(f"small set (n = {n} < {HL_SMALL_N})")
    share, smallest = getattr(hl, "share_expected_below_5", np.nan), getattr(hl, "min_expected", np.nan)
    if np.isfinite(share) and (share > 0.2 or smallest < 1):
        reasons.append(f"sparse groups ({share:.0%} of expected counts below 5, smallest {smallest:.2g})")
    return "unreliable: " + "; ".join(reasons) if reasons else ""


# --------------------------------------------------------------------------------------------------
# Evaluation


def _try(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``fn(*args, **kwargs)`` and None, or None and the StatsError's message."""
    try:
        return fn(*args, **kwargs), None
    except StatsError as exc:
        return None, str(exc)


@dataclass
class _SplitContext:
    """One split's evaluable cases while its rows are computed."""

    split: str
    y: np.ndarray
    two_class: bool
    n: int
    n_events: int
    warnings: list[str]

    def attempt(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
        """``fn`` on both classes; (None, "one class") without them."""
        return _try(fn, *args, **kwargs) if self.two_class else (None, "one class")


def _model_rows(
    ctx: _SplitContext,
    name: str,
    p: np.ndarray,
    cutoff: float,
    combined: str,
    info: dict[str, Any],
    rows: dict[str, list[dict[str, Any]]],
    curves: dict[str, list[pd.DataFrame]],
    n_boot: int,
    seed: int,
) -> None:
    """One model on one split: its Table 3, Hosmer-Lemeshow and calibration rows and its curves."""
    split, y = ctx.split, ctx.y
    row: dict[str, Any] = {
        "split": split,
        "model": name,
        "cutoff": cutoff,
        "n": ctx.n,
        "n_events": ctx.n_events,
    }
    auc, err = ctx.attempt(stats.auc_ci, y, p)
    if err and ctx.two_class:
        ctx.warnings.append(f"split '{split}', model {name}: AUC not computed: {err}")
    row.update(
        auc=auc.auc if auc else np.nan,
        auc_low=auc.low if auc else np.nan,
        auc_high=auc.high if auc else np.nan,
    )
    m = stats.classification_metrics(y, p, cutoff)
    for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        row[key] = getattr(m, key)
        row[f"{key}_low"], row[f"{key}_high"] = getattr(m, f"{key}_ci")
    row.update(tp=m.tp, fp=m.fp, tn=m.tn, fn=m.fn)
    rows["table3"].append(row)
    for key in ("auc", "auc_low", "auc_high"):
        info[key][name] = row[key]

    hl, err = ctx.attempt(stats.hosmer_lemeshow, y, p, groups=HL_GROUPS)
    rows["hosmer_lemeshow"].append(
        {
            "split": split,
            "model": name,
            "statistic": hl.statistic if hl else np.nan,
            "df": hl.df if hl else np.nan,
            "p": hl.p if hl else np.nan,
            "groups": hl.groups if hl else np.nan,
            "note": err or hosmer_lemeshow_caveat(hl, len(y)),
        }
    )
    info["hosmer_lemeshow_p"][name] = hl.p if hl else np.nan
    if err and ctx.two_class and name == combined:
        ctx.warnings.append(f"split '{split}': Hosmer-Lemeshow test of the {name} model not computed: {err}")

    cal, err = ctx.attempt(stats.calibration_stats, y, p)
    boot = stats.calibration_bootstrap_ci(y, p, n_boot, seed) if cal else (np.nan,) * 4
    rows["calibration"].append(
        {
            "split": split,
            "model": name,
            "intercept": cal.intercept if cal else np.nan,
            "slope": cal.slope if cal else np.nan,
            "brier": cal.brier if cal else float(np.mean((p - y) ** 2)),
            "intercept_low": boot[0],
            "intercept_high": boot[1],
            "slope_low": boot[2],
            "slope_high": boot[3],
            "eavg": cal.eavg if cal else np.nan,
            "emax": cal.emax if cal else np.nan,
            "note": err or "",
        }
    )
    info["calibration_slope"][name] = cal.slope if cal else np.nan
    if not ctx.two_class:
        return
    key = {"split": split, "model": name}
    curves["roc"].append(stats.roc_curve(y, p).assign(**key, auc=row["auc"]))
    cc = stats.calibration_curve(y, p, bins=HL_GROUPS, method="quantile")
    curves["calibration_binned"].append(
        cc.rename(
            columns={"low": "bin_low", "high": "bin_high", "observed_low": "low", "observed_high": "high"}
        ).assign(**key)
    )
    curves["calibration_smooth"].append(stats.calibration_smooth(y, p).assign(**key))
    curves["decision"].append(stats.net_benefit(y, p).assign(**key))
    curves["clinical_impact"].append(stats.clinical_impact(y, p).assign(**key, population=1000.0))


def _delong_rows(
    ctx: _SplitContext, probs: Mapping[str, np.ndarray], order: Sequence[str], combined: str
) -> list[dict[str, Any]]:
    """Table S3: DeLong test of the combined model against each other model."""
    out = []
    for other in order:
        if other == combined:
            continue
        res, err = ctx.attempt(stats.delong_test, ctx.y, probs[combined], probs[other])
        if err and ctx.two_class:
            ctx.warnings.append(f"split '{ctx.split}': DeLong test {combined} vs {other} not computed: {err}")
        out.append(
            {
                "split": ctx.split,
                "model_a": combined,
                "model_b": other,
                "auc_a": res.auc_a if res else np.nan,
                "auc_b": res.auc_b if res else np.nan,
                "z": res.z if res else np.nan,
                "p": res.p if res else np.nan,
            }
        )
    return out


def _reclassification_row(
    ctx: _SplitContext, probs: Mapping[str, np.ndarray], combined: str, reference_model: str, cutoff: float
) -> dict[str, Any]:
    """Table S4: continuous NRI, IDI and the categorical NRI at ``cutoff`` of the combined over the reference model."""
    y, old, new = ctx.y, probs[reference_model], probs[combined]
    r_nri, e1 = ctx.attempt(stats.nri, y, old, new)
    r_idi, e2 = ctx.attempt(stats.idi, y, old, new)
    r_cat, e3 = ctx.attempt(stats.nri, y, old, new, cutoffs=[cutoff])
    for err in (e1, e2, e3):
        if err and ctx.two_class:
            ctx.warnings.append(f"split '{ctx.split}': NRI/IDI of {combined} over {reference_model}: {err}")

    def value(res: Any, field_name: str) -> float:
        return getattr(res, field_name) if res else np.nan

    row = {"split": ctx.split, "model_new": combined, "model_old": reference_model}
    row.update(
        nri=value(r_nri, "nri"),
        nri_low=value(r_nri, "low"),
        nri_high=value(r_nri, "high"),
        nri_p=value(r_nri, "p"),
        nri_events=value(r_nri, "nri_events"),
        nri_nonevents=value(r_nri, "nri_nonevents"),
    )
    row.update(
        idi=value(r_idi, "idi"),
        idi_low=value(r_idi, "low"),
        idi_high=value(r_idi, "high"),
        idi_p=value(r_idi, "p"),
    )
    row.update(
        nri_cat=value(r_cat, "nri"),
        nri_cat_low=value(r_cat, "low"),
        nri_cat_high=value(r_cat, "high"),
        nri_cat_p=value(r_cat, "p"),
    )
    row["nri_cat_cutoff"] = cutoff
    return row


def _risk_group_rows(ctx: _SplitContext, high: np.ndarray) -> list[dict[str, Any]]:
    """Observed ALNM rate (exact CI) in the high- and low-risk groups, with Fisher's test between them."""
    y = ctx.y
    counts = np.array(
        [[int(np.sum(high & y)), int(np.sum(high & ~y))], [int(np.sum(~high & y)), int(np.sum(~high & ~y))]]
    )
    p_diff = float("nan")
    if counts.sum(axis=1).all() and counts.sum(axis=0).all():
        p_diff = float(sps.fisher_exact(counts).pvalue)
    out = []
    for group, mask in (("high", high), ("low", ~high)):
        k, ev = int(mask.sum()), int(np.sum(mask & y))
        low_ci, high_ci = stats.clopper_pearson(ev, k, 0.95)
        out.append(
            {
                "split": ctx.split,
                "risk_group": group,
                "n": k,
                "n_events": ev,
                "proportion": ev / k if k else np.nan,
                "low": low_ci,
                "high": high_ci,
                "p_fisher": p_diff,
            }
        )
    return out


def _add_reader_study(
    reads: pd.DataFrame,
    pred: pd.DataFrame,
    tables: dict[str, pd.DataFrame],
    curves: dict[str, pd.DataFrame],
    summary: dict[str, Any],
) -> None:
    """The reader study's tables, ROC points and summary from validated ``reads``."""
    from ALNMPredictorLib.reader_study import reader_study, validate_reads

    reads = validate_reads(reads)
    study = reader_study(reads, pred["label"])
    tables.update({k: study[k] for k in ("reader_metrics", "reader_tests", "reader_kappa")})
    curves["reader_roc"] = study["reader_roc"]
    readers = list(dict.fromkeys(reads["reader"]))
    read_splits = list(dict.fromkeys(pred.loc[reads["case_id"].unique(), "split"]))
    summary["reader_split"] = read_splits[0] if len(read_splits) == 1 else None
    summary["reader_study"] = {
        "readers": readers,
        "simulated": any("simulated" in r for r in readers) or bool(reads.attrs.get("simulated", False)),
        "n_cases": int(reads["case_id"].nunique()),
        "splits": read_splits,
    }


#: columns of the tables built from per-split rows
_ROW_TABLE_COLUMNS: dict[str, list[str]] = {
    "table3": _TABLE3_COLUMNS,
    "table_s3": ["split", "model_a", "model_b", "auc_a", "auc_b", "z", "p"],
    "table_s4": [
        "split",
        "model_new",
        "model_old",
        "nri",
        "nri_low",
        "nri_high",
        "nri_p",
        "nri_events",
        "nri_nonevents",
        "idi",
        "idi_low",
        "idi_high",
        "idi_p",
        "nri_cat",
        "nri_cat_low",
        "nri_cat_high",
        "nri_cat_p",
        "nri_cat_cutoff",
    ],
    "hosmer_lemeshow": ["split", "model", "statistic", "df", "p", "groups", "note"],
    "calibration": [
        "split",
        "model",
        "intercept",
        "slope",
        "brier",
        "intercept_low",
        "intercept_high",
        "slope_low",
        "slope_high",
        "eavg",
        "emax",
        "note",
    ],
    "risk_groups": ["split", "risk_group", "n", "n_events", "proportion", "low", "high", "p_fisher"],
}
_CURVE_COLUMNS: dict[str, list[str]] = {
    "roc": ["split", "model", "threshold", "sensitivity", "specificity", "auc"],
    "calibration_binned": [
        "split",
        "model",
        "bin",
        "n",
        "events",
        "predicted",
        "observed",
        "low",
        "high",
        "bin_low",
        "bin_high",
    ],
    "calibration_smooth": ["split", "model", "predicted", "observed"],
    "decision": [
        "split",
        "model",
        "threshold",
        "net_benefit",
        "net_benefit_all",
        "net_benefit_none",
        "standardized_net_benefit",
    ],
    "clinical_impact": ["split", "model", "threshold", "high_risk", "high_risk_events", "population"],
}


def evaluate(
    predictions: pd.DataFrame,
    models: Mapping[str, Any],
    *,
    clinical: pd.DataFrame | None = None,
    clinical_kinds: Mapping[str, str] | None = None,
    splits: Sequence[str] | None = None,
    train_split: str = "train",
    combined: str = "clinical_radiomics",
    reference_model: str = "clinical",
    reads: pd.DataFrame | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> EvaluationResult:
    """Every table and curve of the study for each split of ``predictions`` (see the module docstring).

    ``models`` maps a model name to its fitted :class:`~ALNMPredictorLib.modeling.LogisticModel`
    (``ALNMModel.models()``); each needs a ``prob_<name>`` column. ``clinical`` (index case_id) and
    ``clinical_kinds`` feed Table 1 (described over the evaluated cases, so its n equal Table 3's); ``reads`` (the reads CSV as a DataFrame) adds the reader study.
    ``splits`` defaults to the training split first, then the others in order of appearance (those
    without any evaluable case are left out with a warning).
    ``n_boot`` resamples give every model's calibration intercept/slope CIs (0 skips them); ``seed`` makes
    them and the Monte Carlo Fisher tests of Table 1 reproducible.
    """
    order = model_order(list(models), combined, reference_model)
    pred = _prepare(predictions, order)
    split_list = _split_order(pred, splits, train_split)
    warnings: list[str] = []
    cutoffs = {name: float(models[name].cutoff) for name in order}

    failed = pred[pred["status"] != "ok"]
    summary: dict[str, Any] = {
        "models": order,
        "combined": combined,
        "reference_model": reference_model,
        "train_split": train_split,
        "splits": {},
        "cutoffs": cutoffs,
        "n_boot": int(n_boot),
        "seed": int(seed),
        "failed_cases": [
            {
                "case_id": str(c),
                "split": str(r["split"]),
                "error": "" if pd.isna(r["error"]) else str(r["error"]),
            }
            for c, r in failed.iterrows()
        ],
    }
    if len(failed):
        warnings.append(
            f"{len(failed)} case(s) failed and are not evaluated: {', '.join(map(str, failed.index[:10]))}"
            + (" ..." if len(failed) > 10 else "")
        )

    evaluable = pred[(pred["status"] == "ok") & pred["label"].notna()]
    if splits is None:
        empty = [s for s in split_list if not (evaluable["split"] == s).any()]
        for s in empty:
            warnings.append(
                f"split '{s}': no case with status ok and a known label; left out of the evaluation"
            )
        split_list = [s for s in split_list if s not in empty]
    rows: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("table3", "table_s3", "table_s4", "hosmer_lemeshow", "calibration", "risk_groups")
    }
    curves: dict[str, list[pd.DataFrame]] = {k: [] for k in CURVE_KEYS if k != "reader_roc"}

    for s_idx, split in enumerate(split_list):
        in_split = pred["split"] == split
        cases = evaluable[evaluable["split"] == split]
        y = cases["label"].to_numpy() == 1.0
        n, n_ev = int(y.size), int(y.sum())
        info: dict[str, Any] = {
            "n": n,
            "n_events": n_ev,
            "n_failed": int((in_split & (pred["status"] != "ok")).sum()),
            "n_unlabelled": int((in_split & (pred["status"] == "ok") & pred["label"].isna()).sum()),
            "auc": {},
            "auc_low": {},
            "auc_high": {},
            "hosmer_lemeshow_p": {},
            "calibration_slope": {},
        }
        summary["splits"][split] = info
        if n == 0:
            warnings.append(f"split '{split}': no evaluable cases (status ok with a known label); skipped")
            continue
        two_class = 0 < n_ev < n
        info["one_class"] = not two_class
        if not two_class:
            only = "events (ALNM)" if n_ev == n else "non-events (no ALNM)"
            warnings.append(
                f"split '{split}': only {only} among its {n} evaluable case(s); AUC, DeLong, NRI/IDI, calibration "
                "and decision analyses need both classes and are NaN/skipped for it"
            )
        probs = {name: cases[f"prob_{name}"].to_numpy(dtype=float) for name in order}

        ctx = _SplitContext(split, y, two_class, n, n_ev, warnings)
        for name in order:
            _model_rows(
                ctx, name, probs[name], cutoffs[name], combined, info, rows, curves, int(n_boot), seed + s_idx
            )
        if combined in probs:
            rows["table_s3"] += _delong_rows(ctx, probs, order, combined)
            rows["risk_groups"] += _risk_group_rows(ctx, probs[combined] >= cutoffs[combined])
            if reference_model in probs:
                rows["table_s4"].append(
                    _reclassification_row(ctx, probs, combined, reference_model, cutoffs[combined])
                )

    tables = {
        "table1": baseline_table(
            clinical, evaluable["label"], evaluable["split"], split_list, clinical_kinds, seed=seed
        ),
        "table2": odds_ratio_table(models, combined, reference_model),
        **{
            key: pd.DataFrame(rows[key]).reindex(columns=columns)
            for key, columns in _ROW_TABLE_COLUMNS.items()
        },
    }
    curve_frames = {
        key: (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()).reindex(
            columns=_CURVE_COLUMNS[key]
        )
        for key, parts in curves.items()
    }

    if reads is not None:
        _add_reader_study(reads, pred, tables, curve_frames, summary)
    summary["n_evaluated"] = int(len(evaluable))
    summary["n_warnings"] = len(warnings)
    return EvaluationResult(tables=tables, curves=curve_frames, summary=jsonable(summary), warnings=warnings)
