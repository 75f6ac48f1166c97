"""Agreement between raters: intraclass correlation (psych ``ICC``) and Cohen's kappa (psych ``cohen.kappa``).

ICC forms are the single-rater rows of psych ``ICC``: ``ICC1`` (one-way random, "Single_raters_absolute"),
``ICC2`` (two-way random, absolute agreement, "Single_random_raters") and ``ICC3`` (two-way mixed,
consistency, "Single_fixed_raters"), with psych's F statistic, p value and F-based confidence bounds.

Mean squares come from one of two estimators (``method``):

* ``"anova"`` (default): the classical Shrout & Fleiss two-way ANOVA, equal to
  ``psych::ICC(x, lmer = FALSE)`` (and to irr/SPSS).
* ``"reml"``: the REML variance components that ``psych::ICC(x)`` gets from ``lme4::lmer`` by default.
  For complete, balanced ratings they are computed here in closed form: the ANOVA mean squares pooled
  wherever a variance component would be negative (an isotonic fit), so they equal the ANOVA ones when
  the subject and rater mean squares both exceed the residual one. They equal lmer's up to its
  optimiser's tolerance (about 1e-4), not to the last digit.

Degenerate features: when every rating of a feature is the same value, its ICC is 0/0, and
:func:`icc_many` reports NaN for every column of that feature (:func:`icc` raises StatsError). A
feature with perfect agreement (zero residual mean square) gets ICC 1, F = inf, p = 0 and bounds taken
at their limit (1 for ICC1/ICC3), where psych reports NaN bounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats as sps

from ALNMPredictorLib.errors import StatsError

__all__ = ["ICCResult", "KappaResult", "ICC_FORMS", "icc", "icc_many", "icc_values", "cohen_kappa"]

ICC_FORMS = ("ICC1", "ICC2", "ICC3")
ICCForm = Literal["ICC1", "ICC2", "ICC3"]
ICCMethod = Literal["anova", "reml"]


@dataclass(frozen=True)
class ICCResult:
    """One single-rater ICC with its F test and confidence bounds (psych ``ICC``)."""

    icc: float
    low: float
    high: float
    F: float
    df1: float
    df2: float
    p: float
    form: str


@dataclass(frozen=True)
class KappaResult:
    """Unweighted Cohen's kappa with its confidence bounds (psych ``cohen.kappa``)."""

    kappa: float
    low: float
    high: float
    se: float
    n: int


def _check_form(form: str, method: str) -> None:
    if form not in ICC_FORMS:
        raise StatsError(f"form: unknown ICC form {form!r}; expected one of {', '.join(ICC_FORMS)}")
    if method not in ("anova", "reml"):
        raise StatsError(f"method: unknown ICC method {method!r}; expected 'anova' or 'reml'")


def _mean_squares(x: np.ndarray, method: str) -> dict[str, np.ndarray]:
    """Mean squares of an (n subjects, k raters, m features) array, one value per feature."""
    n, k, _ = x.shape
    # Centre on a data value so that a constant feature gives exact zeros.
    xc = x - x[:1, :1, :]
    gm = xc.mean(axis=(0, 1))
    rm = xc.mean(axis=1)
    cm = xc.mean(axis=0)
    ssb = k * np.sum((rm - gm) ** 2, axis=0)
    ssj = n * np.sum((cm - gm) ** 2, axis=0)
    resid = xc - rm[:, None, :] - cm[None, :, :] + gm
    sse = np.sum(resid**2, axis=0).sum(axis=0)
    dfb, dfj, dfe = n - 1.0, k - 1.0, (n - 1.0) * (k - 1.0)
    msb, msj, mse = ssb / dfb, ssj / dfj, sse / dfe
    if method == "anova":
        msw = (ssj + sse) / (dfj + dfe)
    else:
        # REML under sigma_subject^2 >= 0 and sigma_rater^2 >= 0: isotonic regression of the mean
        # squares (weights = df) under MSB >= MSE, MSJ >= MSE; leaves pooled in ascending order.
        lo_is_b = msb <= msj
        ss_lo, df_lo, ms_lo = np.where(lo_is_b, ssb, ssj), np.where(lo_is_b, dfb, dfj), np.minimum(msb, msj)
        ss_hi, df_hi, ms_hi = np.where(lo_is_b, ssj, ssb), np.where(lo_is_b, dfj, dfb), np.maximum(msb, msj)
        add_lo = ms_lo < mse
        pool_ss = sse + np.where(add_lo, ss_lo, 0.0)
        pool_df = dfe + np.where(add_lo, df_lo, 0.0)
        add_hi = add_lo & (ms_hi < pool_ss / pool_df)
        pool_ss = pool_ss + np.where(add_hi, ss_hi, 0.0)
        pool_df = pool_df + np.where(add_hi, df_hi, 0.0)
        mse = pool_ss / pool_df
        pooled_b = np.where(lo_is_b, add_lo, add_hi)
        pooled_j = np.where(lo_is_b, add_hi, add_lo)
        msb = np.where(pooled_b, mse, msb)
        msj = np.where(pooled_j, mse, msj)
        msw = mse + (msj - mse) / n
    constant = np.ptp(x.reshape(n * k, -1), axis=0) == 0
    return {"msb": msb, "msj": msj, "mse": mse, "msw": msw, "constant": constant}


def _icc_value(ms: dict[str, np.ndarray], form: str, n: int, k: int) -> np.ndarray:
    """The single-rater ICC of ``form`` from the mean squares (no NaN for constant features yet)."""
    msb, msj, mse, msw = ms["msb"], ms["msj"], ms["mse"], ms["msw"]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if form == "ICC1":
            return (msb - msw) / (msb + (k - 1) * msw)
        if form == "ICC3":
            return (msb - mse) / (msb + (k - 1) * mse)
        return (msb - mse) / (msb + (k - 1) * mse + k * (msj - mse) / n)


def icc_values(ratings: ArrayLike, form: ICCForm = "ICC2", *, method: ICCMethod = "anova") -> np.ndarray:
    """The ``icc`` column of :func:`icc_many` alone (the same numbers), without the F tests and bounds.

    For filters that need only the point estimates: the bounds' F quantiles cost far more than the ICCs.
    Ratings must be finite (checked by :func:`icc_many`, not here); constant features get NaN.
    """
    _check_form(form, method)
    x = _as_ratings(ratings, 3)
    ms = _mean_squares(x, method)
    return np.where(ms["constant"], np.nan, _icc_value(ms, form, x.shape[0], x.shape[1]))


def _icc_arrays(x: np.ndarray, form: str, level: float, method: str) -> dict[str, np.ndarray]:
    n, k, _ = x.shape
    ms = _mean_squares(x, method)
    msb, msj, mse, msw = ms["msb"], ms["msj"], ms["mse"], ms["msw"]
    alpha = 1.0 - level
    value = _icc_value(ms, form, n, k)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if form == "ICC1":
            f = msb / msw
            df1, df2 = n - 1.0, n * (k - 1.0)
        else:
            f = msb / mse
            df1, df2 = n - 1.0, (n - 1.0) * (k - 1.0)
        p = sps.f.sf(f, df1, df2)
        if form in ("ICC1", "ICC3"):
            f_low = f / sps.f.ppf(1 - alpha / 2, df1, df2)
            f_up = f * sps.f.ppf(1 - alpha / 2, df2, df1)
            low = (f_low - 1) / (f_low + k - 1)
            high = (f_up - 1) / (f_up + k - 1)
            perfect = np.isposinf(f)
            low = np.where(perfect, 1.0, low)
            high = np.where(perfect, 1.0, high)
        else:
            fj = msj / mse
            a = n * (1 + (k - 1) * value) - k * value
            vn = (k - 1) * (n - 1) * (k * value * fj + a) ** 2
            vd = (n - 1) * k**2 * value**2 * fj**2 + a**2
            v = np.where(mse == 0, k - 1.0, vn / vd)
            f3u = sps.f.ppf(1 - alpha / 2, n - 1, v)
            f3l = sps.f.ppf(1 - alpha / 2, v, n - 1)
            c = k * msj + (k * n - k - n) * mse
            low = n * (msb - f3u * mse) / (f3u * c + n * msb)
            high = n * (f3l * msb - mse) / (c + n * f3l * msb)
    out = {
        "icc": value,
        "low": low,
        "high": high,
        "F": f,
        "df1": np.full_like(f, df1),
        "df2": np.full_like(f, df2),
        "p": p,
    }
    return {key: np.where(ms["constant"], np.nan, val) for key, val in out.items()}


def _as_ratings(ratings: ArrayLike, ndim: int, name: str = "ratings") -> np.ndarray:
    try:
        arr = np.asarray(ratings, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsError(f"{name}: ratings must be numeric ({exc})") from None
    if arr.ndim != ndim:
        layout = "(subjects, raters)" if ndim == 2 else "(subjects, raters, features)"
        raise StatsError(f"{name}: expected a {ndim}-D array {layout}, got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise StatsError(f"{name}: at least 2 subjects are needed, got {arr.shape[0]}")
    if arr.shape[1] < 2:
        raise StatsError(f"{name}: at least 2 raters are needed, got {arr.shape[1]}")
    return arr


def icc(
    ratings: ArrayLike,
    form: ICCForm = "ICC2",
    *,
    level: float = 0.95,
    method: ICCMethod = "anova",
) -> ICCResult:
    """Single-rater intraclass correlation of ``ratings`` (n subjects x k raters), as psych ``ICC``."""
    _check_form(form, method)
    x = _as_ratings(ratings, 2)
    bad = np.argwhere(~np.isfinite(x))
    if bad.size:
        i, j = bad[0]
        raise StatsError(
            f"ratings: {len(bad)} missing or non-finite value(s) (first: subject {i}, rater {j})"
        )
    if np.ptp(x) == 0:
        raise StatsError("ratings: all ratings are identical, the ICC is undefined")
    res = _icc_arrays(x[:, :, None], form, level, method)
    return ICCResult(**{key: float(val[0]) for key, val in res.items()}, form=form)


def icc_many(
    ratings: ArrayLike,
    form: ICCForm = "ICC2",
    *,
    features: Sequence[str] | None = None,
    level: float = 0.95,
    method: ICCMethod = "anova",
) -> pd.DataFrame:
    """ICC of every feature of a (n subjects, k raters, m features) array in one vectorised pass.

    Returns a DataFrame indexed by feature (``features`` or 0..m-1) with columns
    ``icc low high F df1 df2 p``; a constant feature has NaN in every column.
    """
    _check_form(form, method)
    x = _as_ratings(ratings, 3)
    m = x.shape[2]
    names = list(range(m)) if features is None else list(features)
    if len(names) != m:
        raise StatsError(f"features: {len(names)} names given for {m} features")
    bad = ~np.isfinite(x).all(axis=(0, 1))
    if bad.any():
        which = [str(names[i]) for i in np.flatnonzero(bad)[:5]]
        raise StatsError(
            f"ratings: {int(bad.sum())} feature(s) with missing or non-finite values: {', '.join(which)}"
            + (" ..." if bad.sum() > 5 else "")
        )
    res = _icc_arrays(x, form, level, method)
    index = pd.Index(names, name="feature")
    return pd.DataFrame(res, index=index)[["icc", "low", "high", "F", "df1", "df2", "p"]]


def _labels(values: ArrayLike, name: str) -> pd.Series:
    arr = np.asarray(values, dtype=object)
    if arr.ndim == 2 and 1 in arr.shape:
        arr = arr.reshape(-1)
    if arr.ndim != 1:
        raise StatsError(f"{name}: expected a 1-D array of labels, got shape {arr.shape}")
    series = pd.Series(arr)
    if series.isna().any():
        first = int(np.flatnonzero(series.isna().to_numpy())[0])
        raise StatsError(f"{name}: {int(series.isna().sum())} missing value(s) (first at position {first})")
    return series


def cohen_kappa(a: ArrayLike, b: ArrayLike, *, level: float = 0.95) -> KappaResult:
    """Unweighted Cohen's kappa of two raters' labels with psych ``cohen.kappa``'s confidence bounds."""
    sa, sb = _labels(a, "a"), _labels(b, "b")
    if len(sa) != len(sb):
        raise StatsError(f"b: length {len(sb)} does not match a (length {len(sa)})")
    if len(sa) < 2:
        raise StatsError("a: at least 2 rated subjects are needed")
    codes, levels = pd.factorize(pd.concat([sa, sb], ignore_index=True), sort=True)
    q = len(levels)
    if q < 2:
        raise StatsError(f"a, b: both raters gave the single label {levels[0]!r}; kappa is undefined")
    n = len(sa)
    table = np.zeros((q, q))
    np.add.at(table, (codes[:n], codes[n:]), 1.0)
    x = table / n
    rs, cs = x.sum(axis=1), x.sum(axis=0)
    po = float(np.trace(x))
    pc = float(rs @ cs)
    kappa = (po - pc) / (1 - pc)
    # Fleiss, Cohen & Everitt (1969) large-sample variance, as psych writes it.
    diag = np.diag(x)
    term1 = np.sum(diag * ((1 - pc) - (rs + cs) * (1 - po)) ** 2)
    cross = (cs[:, None] + rs[None, :]) ** 2
    term2 = (1 - po) ** 2 * (np.sum(x * cross) - np.sum(diag * np.diag(cross)))
    term3 = (po * pc - 2 * pc + po) ** 2
    var = (term1 + term2 - term3) / (n * (1 - pc) ** 4)
    if not np.isfinite(var) or var < 0:
        var = 0.0
    se = float(np.sqrt(var))
    z = float(sps.norm.ppf(1 - (1 - level) / 2))
    low = float(np.clip(kappa - z * se, -1.0, 1.0))
    high = float(np.clip(kappa + z * se, -1.0, 1.0))
    return KappaResult(kappa=float(kappa), low=low, high=high, se=se, n=n)
