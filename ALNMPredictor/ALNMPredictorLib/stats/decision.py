"""Decision curve analysis (net benefit) and clinical impact curves, with R rmda's conventions.

A case is called high risk when its predicted probability is above the threshold (strictly), as
rmda ``decision_curve`` does for a fitted-risk predictor in a cohort (opt-in policy).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats._checks import as_binary, as_probability, as_vector, require_both_classes

__all__ = ["net_benefit", "clinical_impact", "DEFAULT_THRESHOLDS"]

#: rmda's default grid without its last point (a threshold of 1 has no net benefit): 0, 0.01, ..., 0.99
DEFAULT_THRESHOLDS = np.round(np.arange(0, 100) / 100.0, 2)


def _thresholds(thresholds: ArrayLike | None) -> np.ndarray:
    if thresholds is None:
        return DEFAULT_THRESHOLDS.copy()
    t = as_vector(np.atleast_1d(np.asarray(thresholds, dtype=float)), "thresholds")
    bad = (t < 0.0) | (t >= 1.0)
    if bad.any():
        raise StatsError(
            f"argument thresholds: must lie in [0, 1), found {float(t[bad][0]):g} "
            "(net benefit is undefined at a threshold of 1)"
        )
    return t


def _rates(
    y: ArrayLike, prob: ArrayLike, thresholds: ArrayLike | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, np.ndarray]:
    events = as_binary(y, "y")
    p = as_probability(prob, "prob", events.size)
    n_pos, n_neg = require_both_classes(events)
    t = _thresholds(thresholds)
    pos = np.sort(p[events])
    neg = np.sort(p[~events])
    tpf = (n_pos - np.searchsorted(pos, t, side="right")) / n_pos  # Pr(prob > t | event)
    fpf = (n_neg - np.searchsorted(neg, t, side="right")) / n_neg  # Pr(prob > t | non-event)
    rho = n_pos / events.size
    every = np.sort(p)
    high = (every.size - np.searchsorted(every, t, side="right")) / every.size  # Pr(prob > t)
    return t, tpf, fpf, rho, high


def net_benefit(y: ArrayLike, prob: ArrayLike, thresholds: ArrayLike | None = None) -> pd.DataFrame:
    """Net benefit of treating cases with ``prob > threshold``, as rmda ``decision_curve``.

    ``NB = TPF * rho - FPF * (1 - rho) * t / (1 - t)`` (i.e. TP/n - FP/n * t/(1-t)), rho the event rate.
    Columns: ``threshold net_benefit net_benefit_all net_benefit_none standardized_net_benefit
    tpr fpr``; "all" treats everyone (rmda's "All" curve), "none" is 0, and the standardized net
    benefit is NB / rho (rmda's sNB). ``thresholds`` must lie in [0, 1); default 0, 0.01, ..., 0.99.
    Raises StatsError for one class only.
    """
    t, tpf, fpf, rho, _ = _rates(y, prob, thresholds)
    odds = t / (1.0 - t)
    nb = tpf * rho - odds * (1.0 - rho) * fpf
    nb_all = rho - odds * (1.0 - rho)
    return pd.DataFrame(
        {
            "threshold": t,
            "net_benefit": nb,
            "net_benefit_all": nb_all,
            "net_benefit_none": np.zeros_like(t),
            "standardized_net_benefit": nb / rho,
            "tpr": tpf,
            "fpr": fpf,
        }
    )


def clinical_impact(
    y: ArrayLike, prob: ArrayLike, thresholds: ArrayLike | None = None, population: float = 1000
) -> pd.DataFrame:
    """Clinical impact curve, as rmda ``plot_clinical_impact``: per ``population`` people, how many
    are called high risk (``prob > threshold``) and how many of those have the event.

    Columns: ``threshold high_risk high_risk_events``. Raises StatsError for one class only.
    """
    population = float(population)
    if not np.isfinite(population) or population <= 0:
        raise StatsError(f"argument population: must be a positive number, got {population!r}")
    t, tpf, _, rho, high = _rates(y, prob, thresholds)
    return pd.DataFrame(
        {
            "threshold": t,
            "high_risk": population * high,
            "high_risk_events": population * tpf * rho,
        }
    )
