"""ROC analysis: AUC with DeLong CI, paired DeLong test, Youden cut-off, metrics at a cut-off.

Values equal R pROC 1.18 with ``roc(y, score, direction="<", levels=c(0, 1))``: higher scores mean
events, an AUC below 0.5 is reported as such (never flipped), and tied scores count one half.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import norm, rankdata

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats._checks import (
    as_binary,
    as_vector,
    check_level,
    clopper_pearson,
    require_both_classes,
)

__all__ = [
    "AUCResult",
    "DeLongTest",
    "ClassificationMetrics",
    "auc_ci",
    "delong_test",
    "roc_curve",
    "youden_threshold",
    "youden_thresholds",
    "classification_metrics",
]


@dataclass(frozen=True)
class AUCResult:
    """AUC with its DeLong standard error and confidence interval (clipped to [0, 1])."""

    auc: float
    low: float
    high: float
    se: float
    level: float
    n_events: int
    n_nonevents: int


@dataclass(frozen=True)
class DeLongTest:
    """Paired DeLong test of two AUCs on the same cases: two-sided ``p`` for ``z = (a - b) / se``."""

    auc_a: float
    auc_b: float
    z: float
    p: float


@dataclass(frozen=True)
class ClassificationMetrics:
    """Confusion-matrix metrics at a cut-off, each with an exact (Clopper-Pearson) CI ``(low, high)``."""

    threshold: float
    tp: int
    fp: int
    tn: int
    fn: int
    accuracy: float
    sensitivity: float
    specificity: float
    ppv: float
    npv: float
    accuracy_ci: tuple[float, float]
    sensitivity_ci: tuple[float, float]
    specificity_ci: tuple[float, float]
    ppv_ci: tuple[float, float]
    npv_ci: tuple[float, float]
    level: float


def _placements(events: np.ndarray, score: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """DeLong placements by midranks (Sun & Xu 2014): AUC, V10 (per event), V01 (per non-event)."""
    pos = score[events]
    neg = score[~events]
    m, n = pos.size, neg.size
    z = rankdata(score)  # midranks of all scores
    v10 = (z[events] - rankdata(pos)) / n  # share of non-events below each event (ties 1/2)
    v01 = 1.0 - (z[~events] - rankdata(neg)) / m  # share of events above each non-event (ties 1/2)
    return float(v10.mean()), v10, v01


def _prepare(y: ArrayLike, score: ArrayLike, score_name: str = "score") -> tuple[np.ndarray, np.ndarray]:
    events = as_binary(y, "y")
    values = as_vector(score, score_name, events.size)
    require_both_classes(events)
    return events, values


def auc_ci(y: ArrayLike, score: ArrayLike, level: float = 0.95) -> AUCResult:
    """AUC of ``score`` for outcome ``y`` (0/1) with a DeLong CI, as pROC ``ci.auc(method="delong")``.

    Constant scores give AUC 0.5 with SE 0 and CI (0.5, 0.5), as pROC does. With a single event or a
    single non-event the variance is undefined: ``se``, ``low`` and ``high`` are NaN (pROC: NA).
    Raises StatsError for one class only, NaN/inf input (naming the argument) or unequal lengths.
    """
    level = check_level(level)
    events, values = _prepare(y, score)
    auc, v10, v01 = _placements(events, values)
    m, n = v10.size, v01.size
    if m <= 1 or n <= 1:
        nan = float("nan")
        return AUCResult(auc, nan, nan, nan, level, m, n)
    var = np.sum((v10 - auc) ** 2) / (m - 1) / m + np.sum((v01 - auc) ** 2) / (n - 1) / n
    se = float(np.sqrt(var))
    zq = float(norm.ppf(1.0 - (1.0 - level) / 2.0))
    low = min(max(auc - zq * se, 0.0), 1.0)
    high = min(max(auc + zq * se, 0.0), 1.0)
    return AUCResult(auc, low, high, se, level, m, n)


def delong_test(y: ArrayLike, score_a: ArrayLike, score_b: ArrayLike) -> DeLongTest:
    """Paired DeLong test comparing the AUCs of two scores on the same cases.

    As pROC ``roc.test(roc_a, roc_b, method="delong", paired=TRUE)``: ``p`` is two-sided. Two curves
    with equal AUCs and zero variance of the difference (e.g. identical scores) give z = 0 and p = 1.
    Needs at least two events and two non-events.
    """
    events, a = _prepare(y, score_a, "score_a")
    b = as_vector(score_b, "score_b", events.size)
    m = int(events.sum())
    n = events.size - m
    if m <= 1 or n <= 1:
        raise StatsError(f"delong_test needs at least 2 events and 2 non-events, got {m} and {n}")
    auc_a, xa, ya = _placements(events, a)
    auc_b, xb, yb = _placements(events, b)
    dx_a, dx_b = xa - auc_a, xb - auc_b
    dy_a, dy_b = ya - auc_a, yb - auc_b
    sx = np.array([[dx_a @ dx_a, dx_a @ dx_b], [dx_b @ dx_a, dx_b @ dx_b]]) / (m - 1)
    sy = np.array([[dy_a @ dy_a, dy_a @ dy_b], [dy_b @ dy_a, dy_b @ dy_b]]) / (n - 1)
    s = sx / m + sy / n
    var = s[0, 0] - s[0, 1] - s[1, 0] + s[1, 1]
    d = auc_a - auc_b
    sig = float(np.sqrt(max(var, 0.0)))
    if sig == 0.0:
        z = 0.0 if d == 0.0 else float(np.copysign(np.inf, d))
    else:
        z = d / sig
    p = float(2.0 * norm.sf(abs(z)))
    return DeLongTest(auc_a, auc_b, float(z), p)


def _roc_points(events: np.ndarray, values: np.ndarray) -> pd.DataFrame:
    """pROC's thresholds (ascending) with sensitivity/specificity, positive when score > threshold."""
    uniq = np.unique(values)
    lower = np.concatenate(([-np.inf], uniq))
    upper = np.concatenate((uniq, [np.inf]))
    with np.errstate(invalid="ignore", over="ignore"):
        thr = (lower + upper) / 2.0
        thr_far = lower / 2.0 + upper / 2.0
    thr = np.where(np.abs(thr) > 1e100, thr_far, thr)
    # pROC: a midpoint that rounds onto the lower of two adjacent values is moved onto the upper one.
    inner = np.arange(1, uniq.size)
    moved = thr[inner] == uniq[inner - 1]
    thr[inner[moved]] = uniq[inner[moved]]
    # counts of events / non-events with score > threshold
    pos_sorted = np.sort(values[events])
    neg_sorted = np.sort(values[~events])
    tp = pos_sorted.size - np.searchsorted(pos_sorted, thr, side="right")
    fp = neg_sorted.size - np.searchsorted(neg_sorted, thr, side="right")
    n_pos, n_neg = pos_sorted.size, neg_sorted.size
    return pd.DataFrame(
        {
            "threshold": thr,
            "sensitivity": tp / n_pos,
            "specificity": (n_neg - fp) / n_neg,
            "tp": tp,
            "fp": fp,
        }
    )


def roc_curve(y: ArrayLike, score: ArrayLike) -> pd.DataFrame:
    """ROC curve as pROC builds it: ``threshold sensitivity specificity`` by ascending threshold.

    Thresholds are -inf, the midpoints between sorted unique scores, and +inf; a case is positive when
    its score is above the threshold.
    """
    events, values = _prepare(y, score)
    return _roc_points(events, values)[["threshold", "sensitivity", "specificity"]]


def youden_thresholds(y: ArrayLike, score: ArrayLike) -> np.ndarray:
    """Every threshold that maximises sensitivity + specificity, ascending (all pROC "best" rows)."""
    events, values = _prepare(y, score)
    pts = _roc_points(events, values)
    crit = pts["sensitivity"].to_numpy() + pts["specificity"].to_numpy()
    return pts["threshold"].to_numpy()[crit == crit.max()]


def youden_threshold(y: ArrayLike, score: ArrayLike) -> float:
    """Cut-off maximising Youden's index, as pROC ``coords(r, "best", best.method="youden")``.

    Candidates are pROC's thresholds (midpoints between sorted unique scores, plus -inf and +inf).
    When several thresholds tie for the maximum (pROC then returns all of them), the lowest one is
    returned: pROC's first row, i.e. the tied cut-off with the highest sensitivity. Constant scores
    give -inf (everyone positive). Use with :func:`classification_metrics`, which counts a case
    positive when score >= threshold (the same cases, since a midpoint never equals a score).
    """
    return float(youden_thresholds(y, score)[0])


def _ratio(num: int, den: int) -> float:
    return num / den if den > 0 else float("nan")


def classification_metrics(
    y: ArrayLike, score: ArrayLike, threshold: float, level: float = 0.95
) -> ClassificationMetrics:
    """Accuracy, sensitivity, specificity, PPV and NPV with a case positive when score >= threshold.

    CIs are exact Clopper-Pearson intervals (R ``binom.test``) at ``level``. A metric whose
    denominator is zero (e.g. PPV with no positive calls, sensitivity without events) is NaN with a
    CI of (NaN, NaN); one class only is therefore allowed here.
    """
    level = check_level(level)
    events = as_binary(y, "y")
    values = as_vector(score, "score", events.size)
    threshold = float(threshold)
    if np.isnan(threshold):
        raise StatsError("argument threshold: is NaN")
    called = values >= threshold
    tp = int(np.sum(called & events))
    fp = int(np.sum(called & ~events))
    fn = int(np.sum(~called & events))
    tn = int(np.sum(~called & ~events))
    n = tp + fp + fn + tn
    return ClassificationMetrics(
        threshold=threshold,
        tp=tp,
        fp=fp,
        tn=tn,
        fn=fn,
        accuracy=_ratio(tp + tn, n),
        sensitivity=_ratio(tp, tp + fn),
        specificity=_ratio(tn, tn + fp),
        ppv=_ratio(tp, tp + fp),
        npv=_ratio(tn, tn + fn),
        accuracy_ci=clopper_pearson(tp + tn, n, level),
        sensitivity_ci=clopper_pearson(tp, tp + fn, level),
        specificity_ci=clopper_pearson(tn, tn + fp, level),
        ppv_ci=clopper_pearson(tp, tp + fp, level),
        npv_ci=clopper_pearson(tn, tn + fn, level),
        level=level,
    )
