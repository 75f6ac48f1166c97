"""Calibration of predicted probabilities: Hosmer-Lemeshow test, rms ``val.prob`` statistics, curves.

Values equal R: ResourceSelection ``hoslem.test`` (0.3-6), rms ``val.prob`` (6.x) and ``lowess``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy.stats import chi2

from ALNMPredictorLib.errors import SeparationError, StatsError
from ALNMPredictorLib.stats._checks import (
    as_binary,
    as_probability,
    as_vector,
    check_level,
    clopper_pearson,
    require_both_classes,
)

__all__ = [
    "HosmerLemeshow",
    "CalibrationStats",
    "hosmer_lemeshow",
    "calibration_stats",
    "calibration_bootstrap_ci",
    "recalibration_fits",
    "calibration_curve",
    "calibration_smooth",
    "lowess",
]


@dataclass(frozen=True)
class HosmerLemeshow:
    """Hosmer-Lemeshow chi-square ``statistic`` on ``df`` = groups - 2 degrees of freedom."""

    statistic: float
    df: int
    p: float
    groups: int
    #: the smallest expected count (events or non-events) of any group, and the share of the 2 x groups
    #: expected counts below 5 (Cochran's rule for a chi-square approximation: at most 20 %, none below 1)
    min_expected: float = float("nan")
    share_expected_below_5: float = float("nan")


@dataclass(frozen=True)
class CalibrationStats:
    """rms ``val.prob`` calibration: logistic recalibration ``intercept``/``slope``, ``brier`` score,
    and the mean, maximum and 90th percentile of |prob - lowess-smoothed observed| (Eavg, Emax, E90).
    ``n_excluded`` counts probabilities of exactly 0 or 1 left out of the intercept/slope fit."""

    intercept: float
    slope: float
    brier: float
    eavg: float
    emax: float
    e90: float
    n_excluded: int


def _prepare(y: ArrayLike, prob: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    events = as_binary(y, "y")
    p = as_probability(prob, "prob", events.size)
    return events, p


def _quantile7(x_sorted: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R ``quantile(type = 7)`` of sorted data, with R's own interpolation formula."""
    n = x_sorted.size
    index = 1.0 + max(n - 1, 0) * probs
    lo = np.floor(index).astype(int)
    hi = np.ceil(index).astype(int)
    qs = x_sorted[lo - 1].copy()
    xhi = x_sorted[hi - 1]
    i = (index > lo) & (xhi != qs)
    h = (index - lo)[i]
    qs[i] = (1.0 - h) * qs[i] + h * xhi[i]
    return qs


def _r_seq_probs(groups: int) -> np.ndarray:
    """R ``seq(0, 1, 1/g)``."""
    by = 1.0 / groups
    count = int(1.0 / by + 1e-10)
    return np.minimum(np.arange(count + 1) * by, 1.0)


def _quantile_groups(p: np.ndarray, groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Breaks ``unique(quantile(p, seq(0, 1, 1/g)))`` and each case's 0-based interval of
    ``cut(p, breaks, include.lowest = TRUE)`` (right-closed)."""
    breaks = np.unique(_quantile7(np.sort(p), _r_seq_probs(groups)))
    if breaks.size < 2:
        raise StatsError(
            f"argument prob: all {p.size} predicted probabilities are equal ({float(p[0]):g}); "
            "cannot form risk groups"
        )
    code = np.maximum(np.searchsorted(breaks, p, side="left"), 1) - 1
    return breaks, code


def _check_groups(groups: int) -> int:
    if int(groups) != groups or groups < 3:
        raise StatsError(f"argument groups: must be an integer >= 3, got {groups!r}")
    return int(groups)


def hosmer_lemeshow(y: ArrayLike, prob: ArrayLike, groups: int = 10) -> HosmerLemeshow:
    """Hosmer-Lemeshow goodness-of-fit test, as ResourceSelection ``hoslem.test(y, prob, g = groups)``.

    Groups are cut at ``unique(quantile(prob, seq(0, 1, 1/groups)))`` (type 7), right-closed with the
    lowest value included; tied quantiles collapse groups and df = (groups left) - 2. The statistic
    sums (observed - expected)^2 / expected over events and non-events of every group.
    Where R would give NaN (an empty group, which needs more groups than distinct probabilities, or
    a group whose expected count is 0) or df < 1 (fewer than 3 groups left), a StatsError says so.
    ``p`` is the upper chi-square tail (R computes ``1 - pchisq``, which is 0 below about 1e-16).
    """
    groups = _check_groups(groups)
    events, p = _prepare(y, prob)
    breaks, code = _quantile_groups(p, groups)
    n_int = breaks.size - 1
    count = np.bincount(code, minlength=n_int)
    if (count == 0).any():
        k = int(np.flatnonzero(count == 0)[0])
        raise StatsError(
            f"Hosmer-Lemeshow: risk group ({breaks[k]:.6g}, {breaks[k + 1]:.6g}] is empty with "
            f"groups={groups} for {p.size} cases; use fewer groups"
        )
    obs1 = np.bincount(code, weights=events.astype(float), minlength=n_int)
    exp1 = np.bincount(code, weights=p, minlength=n_int)
    obs0 = count - obs1
    exp0 = np.bincount(code, weights=1.0 - p, minlength=n_int)
    if (exp1 == 0).any() or (exp0 == 0).any():
        raise StatsError(
            "Hosmer-Lemeshow: a risk group has an expected count of 0 (all its probabilities are "
            "exactly 0 or 1); the statistic is undefined"
        )
    g_used = int(np.unique(code).size)
    df = g_used - 2
    if df < 1:
        raise StatsError(
            f"Hosmer-Lemeshow: only {g_used} risk group(s) left after collapsing tied quantiles "
            f"of prob; at least 3 are needed"
        )
    stat = float(np.sum((obs0 - exp0) ** 2 / exp0) + np.sum((obs1 - exp1) ** 2 / exp1))
    expected = np.concatenate([exp0, exp1])
    return HosmerLemeshow(
        stat, df, float(chi2.sf(stat, df)), g_used, float(expected.min()), float(np.mean(expected < 5))
    )


def _logistic_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood intercept and slope of ``logit P(y = 1) = a + b x`` (the one-row case of
    :func:`recalibration_fits`)."""
    a, b = recalibration_fits(x, y.astype(bool), np.ones((1, x.size)))
    if not (np.isfinite(a[0]) and np.isfinite(b[0])):
        raise StatsError("calibration: the logistic recalibration did not converge")
    return float(a[0]), float(b[0])


def recalibration_fits(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray, max_iter: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """ML intercept and slope of ``logit P(y) = a + b x`` for each row of case ``weights`` (a bootstrap
    resample's case counts, or one row of ones): Newton from rms ``val.prob``'s start (0, 1) with step
    halving on each row's likelihood, all rows at once. Rows that separate the classes or do not converge
    give NaN."""
    nb = weights.shape[0]
    a, b = np.zeros(nb), np.ones(nb)
    done = np.zeros(nb, dtype=bool)
    yf = y.astype(float)

    def loglik(a_: np.ndarray, b_: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", over="ignore"):
            eta = a_[:, None] + b_[:, None] * x[None, :]
            return np.sum(weights * (yf[None, :] * eta - np.logaddexp(0.0, eta)), axis=1)

    ll = loglik(a, b)
    for _ in range(max_iter):
        with np.errstate(invalid="ignore", over="ignore"):  # diverging (separated) rows end as NaN
            eta = a[:, None] + b[:, None] * x[None, :]
            mu = 1.0 / (1.0 + np.exp(-eta))
        r = weights * (yf[None, :] - mu)
        g0, g1 = r.sum(axis=1), (r * x).sum(axis=1)
        v = weights * mu * (1.0 - mu)
        h00, h01, h11 = v.sum(axis=1), (v * x).sum(axis=1), (v * x * x).sum(axis=1)
        det = h00 * h11 - h01**2
        with np.errstate(divide="ignore", invalid="ignore"):
            da = (h11 * g0 - h01 * g1) / det
            db = (h00 * g1 - h01 * g0) / det
        da, db = np.where(done, 0.0, da), np.where(done, 0.0, db)
        new_ll = loglik(a + da, b + db)
        for _ in range(30):  # halve the steps of rows whose likelihood fell
            worse = new_ll < ll - 1e-12 * np.abs(ll)
            if not worse.any():
                break
            da, db = np.where(worse, da / 2.0, da), np.where(worse, db / 2.0, db)
            new_ll = np.where(worse, loglik(a + da, b + db), new_ll)
        a, b, ll = a + da, b + db, np.where(np.isfinite(new_ll), new_ll, ll)
        done |= (np.abs(da) < 1e-11 * (1 + np.abs(a))) & (np.abs(db) < 1e-11 * (1 + np.abs(b)))
        if done.all():
            break
    present = weights > 0
    ev, ne = present & y[None, :], present & ~y[None, :]
    xs = np.broadcast_to(x, weights.shape)
    ev_min = np.where(ev, xs, np.inf).min(axis=1)
    ev_max = np.where(ev, xs, -np.inf).max(axis=1)
    ne_min = np.where(ne, xs, np.inf).min(axis=1)
    ne_max = np.where(ne, xs, -np.inf).max(axis=1)
    separated = (ev_min >= ne_max) | (ev_max <= ne_min)
    bad = separated | ~done | ~np.isfinite(a) | ~np.isfinite(b)
    return np.where(bad, np.nan, a), np.where(bad, np.nan, b)


def calibration_bootstrap_ci(
    y: ArrayLike, prob: ArrayLike, n_boot: int, seed: int, level: float = 0.95
) -> tuple[float, float, float, float]:
    """Percentile CIs (R type 7) of the ``val.prob`` intercept and slope from ``n_boot`` outcome-stratified
    resamples (:func:`~ALNMPredictorLib.stats.bootstrap_indices`, as :func:`~ALNMPredictorLib.stats.bootstrap_ci`
    over :func:`calibration_stats`): ``(intercept_low, intercept_high, slope_low, slope_high)``, NaN where too
    few resamples give a fit."""
    from ALNMPredictorLib.stats.bootstrap import bootstrap_indices

    nan4 = (float("nan"),) * 4
    events, p = as_binary(y, "y"), as_probability(prob, "prob", np.size(y))
    keep = (p > 0) & (p < 1)
    if n_boot < 2 or keep.sum() < 4 or np.unique(p[keep]).size < 2:
        return nan4
    x, yk = np.log(p[keep] / (1.0 - p[keep])), events[keep]
    if yk.all() or not yk.any():
        return nan4
    idx = bootstrap_indices(x.size, n_boot, seed, stratify=yk)
    weights = np.zeros((n_boot, x.size))
    np.add.at(weights, (np.repeat(np.arange(n_boot), x.size), idx.ravel()), 1.0)
    a, b = recalibration_fits(x, yk, weights)
    ok = np.isfinite(a)
    if ok.sum() < max(2, n_boot / 2):
        return nan4
    tail = (1.0 - check_level(level)) / 2.0
    qa = np.quantile(a[ok], [tail, 1.0 - tail], method="linear")
    qb = np.quantile(b[ok], [tail, 1.0 - tail], method="linear")
    return float(qa[0]), float(qa[1]), float(qb[0]), float(qb[1])


def calibration_stats(y: ArrayLike, prob: ArrayLike) -> CalibrationStats:
    """Calibration intercept, slope and Brier score, as rms ``val.prob(prob, y)``.

    Intercept and slope are those of the logistic model ``y ~ logit(prob)`` (ideal: 0 and 1; this is
    val.prob's "Intercept", not calibration-in-the-large). As in rms, probabilities of exactly 0 or 1
    are left out of that fit (counted in ``n_excluded``) but kept in the Brier score and the smooth.
    All probabilities equal gives val.prob's values: intercept = logit(mean(y)), slope = 0.
    Raises StatsError for one class only, and SeparationError when logit(prob) separates the
    classes (the recalibration model then has no finite fit).
    """
    events, p = _prepare(y, prob)
    require_both_classes(events)
    yf = events.astype(float)
    brier = float(np.mean((p - yf) ** 2))
    smooth = _lowess_fit(p, yf)
    err = np.abs(p - smooth)
    eavg, emax = float(np.mean(err)), float(np.max(err))
    e90 = float(_quantile7(np.sort(err), np.array([0.9]))[0])
    if np.unique(p).size == 1:
        rate = float(yf.mean())
        return CalibrationStats(float(np.log(rate / (1.0 - rate))), 0.0, brier, eavg, emax, e90, 0)
    keep = (p > 0.0) & (p < 1.0)
    x = np.log(p[keep] / (1.0 - p[keep]))
    yk = events[keep]
    if yk.all() or not yk.any():
        raise StatsError(
            "calibration: after leaving out probabilities of exactly 0 or 1, only one outcome class is left"
        )
    if np.unique(x).size < 2:
        raise StatsError(
            "calibration: after leaving out probabilities of exactly 0 or 1, all remaining are equal"
        )
    if x[yk].min() >= x[~yk].max() or x[yk].max() <= x[~yk].min():
        raise SeparationError(
            "calibration: logit(prob) separates events from non-events; the calibration slope is infinite"
        )
    intercept, slope = _logistic_fit(x, yk.astype(float))
    return CalibrationStats(intercept, slope, brier, eavg, emax, e90, int((~keep).sum()))


def calibration_curve(
    y: ArrayLike, prob: ArrayLike, bins: int = 10, method: str = "quantile", level: float = 0.95
) -> pd.DataFrame:
    """Observed event rate against mean predicted probability in bins of ``prob``.

    ``method="quantile"`` uses the Hosmer-Lemeshow groups (``unique(quantile(prob, seq(0, 1,
    1/bins)))``, right-closed, lowest included), so bins may collapse on ties; ``"uniform"`` cuts
    [0, 1] into ``bins`` equal right-closed intervals (0 included in the first). Empty bins are
    dropped. Columns: ``bin low high n events predicted observed observed_low observed_high``, with
    an exact (Clopper-Pearson) CI of the observed rate at ``level``.
    """
    level = check_level(level)
    if int(bins) != bins or bins < 1:
        raise StatsError(f"argument bins: must be a positive integer, got {bins!r}")
    bins = int(bins)
    events, p = _prepare(y, prob)
    if method == "quantile":
        breaks, code = (
            _quantile_groups(p, bins)
            if np.unique(p).size > 1
            else (
                np.array([p[0], p[0]]),
                np.zeros(p.size, dtype=int),
            )
        )
    elif method == "uniform":
        breaks = np.linspace(0.0, 1.0, bins + 1)
        code = np.maximum(np.searchsorted(breaks, p, side="left"), 1) - 1
    else:
        raise StatsError(f"argument method: must be 'quantile' or 'uniform', got {method!r}")
    n_int = breaks.size - 1
    count = np.bincount(code, minlength=n_int)
    ev = np.bincount(code, weights=events.astype(float), minlength=n_int)
    mean_p = np.bincount(code, weights=p, minlength=n_int)
    rows = []
    for k in np.flatnonzero(count > 0):
        n_k, e_k = int(count[k]), int(round(ev[k]))
        low, high = clopper_pearson(e_k, n_k, level)
        rows.append(
            {
                "bin": int(k) + 1,
                "low": float(breaks[k]),
                "high": float(breaks[k + 1]),
                "n": n_k,
                "events": e_k,
                "predicted": float(mean_p[k] / n_k),
                "observed": e_k / n_k,
                "observed_low": low,
                "observed_high": high,
            }
        )
    return pd.DataFrame(rows)


def _lowest(x: np.ndarray, y: np.ndarray, xs: float, nleft: int, nright: int, span: float) -> float | None:
    """One local linear fit at ``xs`` (R ``clowess``'s ``lowest``, no robustness weights)."""
    n = x.size
    h = max(xs - x[nleft], x[nright] - xs)
    h9, h1 = 0.999 * h, 0.001 * h
    # Points from nleft on up to the first one right of xs farther than h9 (ties on the right
    # are picked up). Beyond xs + h every point is farther than h9.
    stop = min(n, int(np.searchsorted(x, xs + h, side="right")) + 1)
    xw = x[nleft:stop]
    r = np.abs(xw - xs)
    beyond = np.flatnonzero((r > h9) & (xw > xs))
    end = int(beyond[0]) if beyond.size else xw.size
    xw, r, yw = xw[:end], r[:end], y[nleft : nleft + end]
    w = np.zeros(r.size)
    near = r <= h9
    w[near] = 1.0
    mid = near & (r > h1)  # empty when h == 0
    w[mid] = (1.0 - (r[mid] / h) ** 3) ** 3
    a = w.sum()
    if a <= 0.0:
        return None
    w = w / a
    if h > 0.0:
        center = np.sum(w * xw)
        b = xs - center
        c = np.sum(w * (xw - center) ** 2)
        if np.sqrt(c) > 0.001 * span:
            w = w * (b / c * (xw - center) + 1.0)
    return float(np.sum(w * yw))


def _clowess(x: np.ndarray, y: np.ndarray, f: float, delta: float) -> np.ndarray:
    """R's ``clowess`` without robustness iterations on x sorted ascending."""
    n = x.size
    ys = np.empty(n)
    if n < 2:
        ys[:] = y
        return ys
    ns = max(2, min(n, int(f * n + 1e-7)))
    span = x[-1] - x[0]
    nleft, nright, last, i = 0, ns - 1, -1, 0
    while True:
        if nright < n - 1:
            if x[i] - x[nleft] > x[nright + 1] - x[i]:
                nleft += 1
                nright += 1
                continue
        fit = _lowest(x, y, x[i], nleft, nright, span)
        ys[i] = y[i] if fit is None else fit
        if last < i - 1:
            denom = x[i] - x[last]
            j = np.arange(last + 1, i)
            alpha = (x[j] - x[last]) / denom
            ys[j] = alpha * ys[i] + (1.0 - alpha) * ys[last]
        last = i
        cut = x[last] + delta
        i = last + 1
        while i < n:
            if x[i] > cut:
                break
            if x[i] == x[last]:
                ys[i] = ys[last]
                last = i
            i += 1
        i = max(last + 1, i - 1)
        if last >= n - 1:
            break
    return ys


def lowess(x: ArrayLike, y: ArrayLike, frac: float = 2.0 / 3.0) -> pd.DataFrame:
    """R ``lowess(x, y, f = frac, iter = 0)``: columns ``x`` (sorted) and ``y`` (smoothed).

    Only the non-robust fit (``iter = 0``, as rms ``val.prob`` uses) is provided;
    ``delta = 0.01 * diff(range(x))`` as in R.
    """
    xv = as_vector(x, "x")
    yv = as_vector(y, "y", xv.size)
    if not 0.0 < frac <= 1.0:
        raise StatsError(f"argument frac: must be in (0, 1], got {frac!r}")
    order = np.argsort(xv, kind="stable")
    xs, ysorted = xv[order], yv[order]
    return pd.DataFrame({"x": xs, "y": _clowess(xs, ysorted, frac, 0.01 * (xs[-1] - xs[0]))})


def _lowess_fit(p: np.ndarray, y: np.ndarray, frac: float = 2.0 / 3.0) -> np.ndarray:
    """Smoothed observed rate at each ``p`` (in input order), as val.prob's ``approx(Sm, xout = p)``."""
    order = np.argsort(p, kind="stable")
    xs = p[order]
    fitted = _clowess(xs, y[order], frac, 0.01 * (xs[-1] - xs[0]))
    out = np.empty_like(fitted)
    out[order] = fitted
    return out


def calibration_smooth(y: ArrayLike, prob: ArrayLike, frac: float = 2.0 / 3.0) -> pd.DataFrame:
    """Smooth calibration curve of rms ``val.prob``: ``lowess(prob, y, iter = 0)``.

    Columns ``predicted`` (sorted probabilities) and ``observed`` (smoothed event rate).
    """
    events, p = _prepare(y, prob)
    curve = lowess(p, events.astype(float), frac)
    return curve.rename(columns={"x": "predicted", "y": "observed"})
