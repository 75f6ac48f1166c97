"""Benchmarks of ALNMPredictorLib.stats. Results go in BENCHMARKS.md.

Usage: python benchmarks/bench_stats.py [--only delong] [--quick]

DeLong section: ``auc_ci`` and ``delong_test`` (midrank DeLong, O(n log n), O(n) memory) against a
naive DeLong that builds the events x non-events kernel matrix (O(n^2) time and memory), at matched n
up to the largest n the naive one handles comfortably, and the fast one alone at n = 10^6.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from scipy.stats import norm

from ALNMPredictorLib.stats import auc_ci, delong_test


def best_time(fn: Callable[[], object], repeat: int) -> float:
    """Fastest of ``repeat`` wall-clock runs, in seconds."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def naive_auc_ci(y: np.ndarray, s: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """DeLong from its definition: the full psi(event, non-event) matrix (1, 1/2, 0)."""
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]).astype(float)
    psi += 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    se = np.sqrt(v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size)
    z = norm.ppf(1 - (1 - level) / 2)
    return auc, max(auc - z * se, 0.0), min(auc + z * se, 1.0), se


def naive_delong_test(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Paired DeLong test from two full psi matrices."""
    comps = []
    for s in (a, b):
        pos, neg = s[y], s[~y]
        psi = (pos[:, None] > neg[None, :]).astype(float)
        psi += 0.5 * (pos[:, None] == neg[None, :])
        comps.append((psi.mean(), psi.mean(axis=1), psi.mean(axis=0)))
        del psi
    (ta, xa, ya), (tb, xb, yb) = comps
    m, n = xa.size, ya.size
    sx = np.cov(np.vstack((xa, xb)))
    sy = np.cov(np.vstack((ya, yb)))
    s = sx / m + sy / n
    z = (ta - tb) / np.sqrt(s[0, 0] + s[1, 1] - 2 * s[0, 1])
    return z, 2 * norm.sf(abs(z))


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Balanced outcome; two correlated scores rounded to 3 decimals (so there are ties)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.5
    z = rng.normal(size=n)
    a = np.round(z + 0.8 * y, 3)
    b = np.round(0.6 * z + 0.8 * rng.normal(size=n) + 0.6 * y, 3)
    return y, a, b


def bench_delong(quick: bool) -> None:
    matched = [1_000, 5_000, 10_000] if quick else [1_000, 5_000, 10_000, 20_000]
    large = [100_000] if quick else [100_000, 1_000_000]
    print("### DeLong: fast (midranks) vs naive (kernel matrix)\n")
    print(
        "| n | auc_ci fast (s) | auc_ci naive (s) | ratio | delong_test fast (s) | delong_test naive (s) | ratio |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in matched:
        y, a, b = make_data(n)
        fast_res = auc_ci(y, a)
        naive_res = naive_auc_ci(y, a)
        assert abs(fast_res.auc - naive_res[0]) < 1e-12 and abs(fast_res.se - naive_res[3]) < 1e-10
        fz = delong_test(y, a, b).z
        nz = naive_delong_test(y, a, b)[0]
        assert abs(fz - nz) < 1e-8 * max(1.0, abs(nz))
        repeat = 3 if n <= 10_000 else 1
        t_fast = best_time(partial(auc_ci, y, a), 5)
        t_naive = best_time(partial(naive_auc_ci, y, a), repeat)
        t_fast2 = best_time(partial(delong_test, y, a, b), 5)
        t_naive2 = best_time(partial(naive_delong_test, y, a, b), repeat)
        print(
            f"| {n:,} | {t_fast:.4f} | {t_naive:.3f} | {t_naive / t_fast:.0f}x "
            f"| {t_fast2:.4f} | {t_naive2:.3f} | {t_naive2 / t_fast2:.0f}x |"
        )
    for n in large:
        y, a, b = make_data(n)
        t_fast = best_time(partial(auc_ci, y, a), 3)
        t_fast2 = best_time(partial(delong_test, y, a, b), 3)
        print(f"| {n:,} | {t_fast:.3f} | (not run) | | {t_fast2:.3f} | (not run) | |")
    print()


SECTIONS: dict[str, Callable[[bool], None]] = {"delong": bench_delong}


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SECTIONS), action="append", help="run only these sections")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    args = parser.parse_args()
    print(
        f"Machine: {cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}, load average {os.getloadavg()[0]:.1f}\n"
    )
    for name in args.only or sorted(SECTIONS):
        SECTIONS[name](args.quick)


if __name__ == "__main__":
    main()
