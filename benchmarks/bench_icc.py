"""Vectorised ICC over many features (stats.icc_many) vs a per-feature loop calling stats.icc.

The feature-reproducibility filter scores every radiomics feature (~1,000 per region) on the
re-segmented cases (50 in the study) with 2 or 3 readings. Both paths give the same numbers (checked
here); the table reports the best of ``--repeat`` wall times and their ratio.

    python benchmarks/bench_icc.py [--features 1000] [--cases 50] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

from ALNMPredictorLib.stats import icc, icc_many


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def ratings(n: int, k: int, m: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    subject = rng.normal(size=(n, 1, m)) * rng.uniform(0.2, 2.0, size=m)
    rater = rng.normal(size=(1, k, m)) * 0.2
    noise = rng.normal(size=(n, k, m)) * rng.uniform(0.1, 1.0, size=m)
    return np.round(subject + rater + noise, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}"
    )
    print("| raters | form | method | features x cases | vectorised (s) | loop (s) | ratio |")
    print("|---:|---|---|---|---:|---:|---:|")
    for k in (2, 3):
        x = ratings(args.cases, k, args.features, seed=k)
        for form in ("ICC1", "ICC2", "ICC3"):
            for method in ("anova", "reml"):
                t_vec, table = best_of(lambda x=x, f=form, m=method: icc_many(x, f, method=m), args.repeat)

                def loop(x=x, f=form, m=method) -> pd.DataFrame:
                    rows = [icc(x[:, :, j], f, method=m) for j in range(x.shape[2])]
                    return pd.DataFrame([[r.icc, r.low, r.high, r.F, r.p] for r in rows])

                t_loop, looped = best_of(loop, max(1, args.repeat // 2))
                np.testing.assert_allclose(
                    table[["icc", "low", "high", "F", "p"]].to_numpy(), looped.to_numpy(), rtol=1e-10
                )
                print(
                    f"| {k} | {form} | {method} | {args.features} x {args.cases} | {t_vec:.4f} | "
                    f"{t_loop:.3f} | {t_loop / t_vec:.0f}x |"
                )


if __name__ == "__main__":
    main()
