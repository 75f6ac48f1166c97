"""Net reclassification improvement (NRI) and integrated discrimination improvement (IDI).

Continuous NRI and IDI equal Hmisc ``improveProb(x1=p_old, x2=p_new, y)``: estimates, standard errors,
two-sided p from the normal z and ``estimate ± qnorm(0.975) * se`` intervals, as ``print.improveProb``
shows them. Categorical NRI (``cutoffs`` given) equals PredictABEL ``reclassification``: risks are cut
into ``[a, b)`` categories (the last one closed), ``improveProb`` runs on the category numbers, and the
interval uses 1.96, as PredictABEL prints it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats._checks import as_binary, as_probability, require_both_classes

__all__ = ["NRIResult", "IDIResult", "nri", "idi"]

_Z975 = float(sps.norm.ppf(0.975))


@dataclass(frozen=True)
class NRIResult:
    """Net reclassification improvement of ``p_new`` over ``p_old`` (events + non-events)."""

    nri: float
    nri_events: float
    nri_nonevents: float
    se: float
    p: float
    low: float
    high: float
    se_events: float
    se_nonevents: float
    categorical: bool


@dataclass(frozen=True)
class IDIResult:
    """Integrated discrimination improvement of ``p_new`` over ``p_old``."""

    idi: float
    se: float
    p: float
    low: float
    high: float


def _paired_probs(
    y: ArrayLike, p_old: ArrayLike, p_new: ArrayLike
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yy = as_binary(y, "y")
    require_both_classes(yy, "y")
    return yy, as_probability(p_old, "p_old", yy.size), as_probability(p_new, "p_new", yy.size)


def _two_sided_p(est: float, se: float) -> float:
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.float64(est) / np.float64(se)
    return float(2.0 * sps.norm.sf(abs(z)))


def _categories(p: np.ndarray, breaks: np.ndarray) -> np.ndarray:
    # R cut(breaks, include.lowest=TRUE, right=FALSE): [b0,b1), ..., [b_{m-1}, b_m]
    cat = np.searchsorted(breaks, p, side="right")
    return np.minimum(cat, breaks.size - 1)


def nri(
    y: ArrayLike,
    p_old: ArrayLike,
    p_new: ArrayLike,
    cutoffs: Sequence[float] | None = None,
) -> NRIResult:
    """NRI of ``p_new`` over ``p_old``: continuous (Hmisc ``improveProb``) or at risk ``cutoffs``.

    ``cutoffs`` are the category boundaries inside [0, 1] (0 and 1 may be included, as PredictABEL
    expects). ``p`` is NaN when no subject changes (a zero standard error with a zero NRI).
    """
    yy, old, new = _paired_probs(y, p_old, p_new)
    categorical = cutoffs is not None
    if categorical:
        cuts = np.asarray(cutoffs, dtype=float).reshape(-1)
        if cuts.size == 0 or not np.all(np.isfinite(cuts)) or cuts.min() < 0 or cuts.max() > 1:
            raise StatsError(f"cutoffs: must be finite risks in [0, 1], got {cuts.tolist()}")
        if np.any(np.diff(cuts) <= 0):
            raise StatsError(f"cutoffs: must be strictly increasing, got {cuts.tolist()}")
        breaks = np.unique(np.concatenate([[0.0], cuts, [1.0]]))
        # PredictABEL scores category k (1-based) of m as k/m; only the sign of the change matters.
        old = _categories(old, breaks) / (breaks.size - 1)
        new = _categories(new, breaks) / (breaks.size - 1)
    d = new - old
    ev, ne = d[yy], d[~yy]
    na, nb = float(ev.size), float(ne.size)
    up_ev, down_ev = float(np.sum(ev > 0)), float(np.sum(ev < 0))
    up_ne, down_ne = float(np.sum(ne > 0)), float(np.sum(ne < 0))
    nri_ev = (up_ev - down_ev) / na
    nri_ne = (down_ne - up_ne) / nb
    v_ev = (up_ev + down_ev) / na**2 - (up_ev - down_ev) ** 2 / na**3
    v_ne = (down_ne + up_ne) / nb**2 - (down_ne - up_ne) ** 2 / nb**3
    total = nri_ev + nri_ne
    se = float(np.sqrt(v_ev + v_ne))
    z = 1.96 if categorical else _Z975
    return NRIResult(
        nri=float(total),
        nri_events=float(nri_ev),
        nri_nonevents=float(nri_ne),
        se=se,
        p=_two_sided_p(total, se),
        low=float(total - z * se),
        high=float(total + z * se),
        se_events=float(np.sqrt(v_ev)),
        se_nonevents=float(np.sqrt(v_ne)),
        categorical=categorical,
    )


def idi(y: ArrayLike, p_old: ArrayLike, p_new: ArrayLike) -> IDIResult:
    """IDI of ``p_new`` over ``p_old`` with its standard error, p and 95% CI (Hmisc ``improveProb``)."""
    yy, old, new = _paired_probs(y, p_old, p_new)
    if yy.sum() < 2 or (~yy).sum() < 2:
        raise StatsError("y: the IDI standard error needs at least 2 events and 2 non-events")
    d = new - old
    ev, ne = d[yy], d[~yy]
    value = float(ev.mean() - ne.mean())
    se = float(np.sqrt(ev.var(ddof=1) / ev.size + ne.var(ddof=1) / ne.size))
    return IDIResult(
        idi=value,
        se=se,
        p=_two_sided_p(value, se),
        low=value - _Z975 * se,
        high=value + _Z975 * se,
    )
