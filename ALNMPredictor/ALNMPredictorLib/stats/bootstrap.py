"""Seeded percentile-bootstrap confidence intervals for statistics without a closed-form CI."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats._checks import check_level

__all__ = ["BootstrapResult", "bootstrap_ci", "bootstrap_indices"]


@dataclass(frozen=True)
class BootstrapResult:
    """Statistic on the full data (``estimate``) with a percentile CI ``(low, high)``.

    ``se`` is the standard deviation of the replicates; ``n_failed`` counts resamples on which the
    statistic raised StatsError or gave NaN (left out of the percentiles).
    """

    estimate: float
    low: float
    high: float
    se: float
    level: float
    n_boot: int
    n_failed: int


def bootstrap_indices(n: int, n_boot: int, seed: int = 0, stratify: ArrayLike | None = None) -> np.ndarray:
    """``n_boot`` x ``n`` resampling indices (with replacement), reproducible for a ``seed``.

    With ``stratify``, each stratum (e.g. the outcome) is resampled within itself, so every
    replicate keeps the original stratum sizes; the indices of a stratum keep their positions.
    """
    rng = np.random.default_rng(seed)
    if stratify is None:
        return rng.integers(0, n, size=(n_boot, n))
    strata = np.asarray(stratify)
    if strata.ndim != 1 or strata.size != n:
        raise StatsError(f"argument stratify: must be 1-D with {n} values, got shape {strata.shape}")
    if strata.dtype.kind == "f" and np.isnan(strata).any():
        raise StatsError("argument stratify: contains missing values (NaN)")
    idx = np.empty((n_boot, n), dtype=np.int64)
    for level in np.unique(strata):
        members = np.flatnonzero(strata == level)
        draw = rng.integers(0, members.size, size=(n_boot, members.size))
        idx[:, members] = members[draw]
    return idx


def bootstrap_ci(
    fn: Callable[..., float],
    *arrays: ArrayLike,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    stratify: ArrayLike | None = None,
) -> BootstrapResult:
    """Percentile bootstrap CI of ``fn(*arrays)``, resampling cases (rows) of all arrays together.

    ``fn`` returns a float from arrays of the same length (e.g. ``lambda y, p: calibration_stats(y,
    p).slope``). Percentiles use R's default (type 7) quantile. The result is identical bit for bit
    for the same inputs and ``seed``. Pass ``stratify=y`` to keep the numbers of events and
    non-events in every replicate. Resamples on which ``fn`` raises StatsError or returns NaN are
    skipped and counted; if more than half fail, StatsError is raised.
    """
    level = check_level(level)
    if int(n_boot) != n_boot or n_boot < 2:
        raise StatsError(f"argument n_boot: must be an integer >= 2, got {n_boot!r}")
    if not arrays:
        raise StatsError("bootstrap_ci: no data arrays given")
    data = [np.asarray(a) for a in arrays]
    n = data[0].shape[0] if data[0].ndim else 0
    for k, a in enumerate(data):
        if a.ndim == 0 or a.shape[0] != n:
            raise StatsError(f"bootstrap_ci: array {k + 1} has {a.shape[:1] or 'no'} rows, array 1 has {n}")
    if n < 2:
        raise StatsError(f"bootstrap_ci: needs at least 2 cases, got {n}")
    estimate = float(fn(*data))
    idx = bootstrap_indices(n, int(n_boot), seed, stratify)
    reps = np.full(int(n_boot), np.nan)
    for b in range(int(n_boot)):
        try:
            reps[b] = float(fn(*[a[idx[b]] for a in data]))
        except StatsError:
            continue
    ok = reps[~np.isnan(reps)]
    n_failed = int(n_boot) - ok.size
    if ok.size < 2 or n_failed > n_boot / 2:
        raise StatsError(
            f"bootstrap_ci: the statistic failed on {n_failed} of {n_boot} resamples; "
            "try stratify=y or a larger sample"
        )
    alpha = 1.0 - level
    low, high = np.quantile(ok, [alpha / 2.0, 1.0 - alpha / 2.0], method="linear")
    return BootstrapResult(
        estimate=estimate,
        low=float(low),
        high=float(high),
        se=float(np.std(ok, ddof=1)),
        level=level,
        n_boot=int(n_boot),
        n_failed=n_failed,
    )
