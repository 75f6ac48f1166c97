"""Input checks shared by the ROC, calibration, decision and bootstrap statistics.

Every failure is a :class:`~ALNMPredictorLib.errors.StatsError` whose message names the argument.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from ALNMPredictorLib.errors import StatsError

__all__: list[str] = []


def as_vector(values: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as a 1-D float array with no NaN/inf, of length ``n`` when given."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StatsError(f"argument {name}: not numeric ({exc})") from None
    if arr.ndim != 1:
        arr = arr.reshape(-1) if arr.ndim == 2 and 1 in arr.shape else arr
    if arr.ndim != 1:
        raise StatsError(f"argument {name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size == 0:
        raise StatsError(f"argument {name}: is empty")
    if n is not None and arr.size != n:
        raise StatsError(f"argument {name}: has {arr.size} values but y has {n}")
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        kind = "missing (NaN)" if np.isnan(arr[first]) else "infinite"
        raise StatsError(
            f"argument {name}: {int(bad.sum())} missing or infinite value(s), first at position {first} ({kind})"
        )
    return arr


def as_binary(values: ArrayLike, name: str = "y") -> np.ndarray:
    """``values`` as a boolean array (1/True = event); only 0/1 (or booleans) are accepted."""
    arr = as_vector(values, name)
    other = (arr != 0) & (arr != 1)
    if other.any():
        first = int(np.flatnonzero(other)[0])
        raise StatsError(
            f"argument {name}: outcome must be 0/1, found {float(arr[first]):g} at position {first}"
        )
    return arr == 1


def require_both_classes(y: np.ndarray, name: str = "y") -> tuple[int, int]:
    """Numbers of events and non-events; a StatsError when either is zero."""
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    if n_pos == 0 or n_neg == 0:
        only = "events (1)" if n_neg == 0 else "non-events (0)"
        raise StatsError(f"argument {name}: only {only} present ({y.size} cases); both classes are needed")
    return n_pos, n_neg


def as_probability(values: ArrayLike, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as finite floats within [0, 1]."""
    arr = as_vector(values, name, n)
    out = (arr < 0) | (arr > 1)
    if out.any():
        first = int(np.flatnonzero(out)[0])
        raise StatsError(
            f"argument {name}: probabilities must lie in [0, 1], found {float(arr[first]):g} at position {first}"
        )
    return arr


def check_level(level: float) -> float:
    """A confidence level strictly between 0 and 1."""
    level = float(level)
    if not 0.0 < level < 1.0:
        raise StatsError(f"argument level: must be between 0 and 1 (exclusive), got {level!r}")
    return level


def clopper_pearson(x: int, n: int, level: float) -> tuple[float, float]:
    """Exact binomial CI for ``x`` successes out of ``n``, as R ``binom.test(x, n)$conf.int``.

    ``(nan, nan)`` when ``n == 0``.
    """
    from scipy.stats import beta

    if n == 0:
        return (float("nan"), float("nan"))
    alpha = 1.0 - level
    low = 0.0 if x == 0 else float(beta.ppf(alpha / 2, x, n - x + 1))
    high = 1.0 if x == n else float(beta.ppf(1 - alpha / 2, x + 1, n - x))
    return (low, high)
