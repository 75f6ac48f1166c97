"""Benchmark: fitting a per-region radiomics score (selection.RegionScore) at the study's size.

Synthetic training data shaped like the reference study: 421 training cases, 979 features per
region (851 handcrafted-like in correlated families + 128 deep-like), 50 cases re-segmented by a
second reader and by the first reader again; a planted signal in a few features. Times the whole
fit and each step (median over rounds), and the LASSO step against scikit-learn's
``LogisticRegressionCV(penalty="l1")`` on the same 30 features (a different estimator: liblinear
penalises the intercept and uses its own C grid; shown only for scale). Usage::

    python benchmarks/bench_selection.py [--cases 421] [--features 979] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import warnings

import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold

from ALNMPredictorLib.selection import RegionScore, cv_lasso_logistic

STEPS = [
    "_step_degenerate",
    "_step_near_constant",
    "_step_icc",
    "_step_redundancy",
    "_step_mutual_information",
    "_step_lasso",
]


def make_data(
    n: int, p: int, n_icc: int, seed: int
) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    n_families = p // 8
    base = rng.standard_normal((n, n_families))
    x = np.empty((n, p))
    for j in range(p):  # families of correlated features, as wavelet/filter variants of one feature are
        x[:, j] = base[:, j % n_families] * rng.uniform(0.3, 1.0) + rng.standard_normal(n) * rng.uniform(
            0.1, 1.0
        )
    eta = 1.0 * base[:, 0] - 0.8 * base[:, 1] + 0.6 * base[:, 2] + 0.5 * x[:, -1]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    x = x * rng.uniform(0.1, 100, p) + rng.uniform(-50, 500, p)
    x[:, :5] = np.round(x[:, :5] / 1e3)  # a few near-constant features
    cols = [f"tumor_f{j:04d}" for j in range(p)]
    ids = [f"P{i:04d}" for i in range(n)]
    frame = pd.DataFrame(x, index=ids, columns=cols)
    noise_sd = frame.std().to_numpy() * rng.choice([0.1, 0.3, 1.5], p, p=[0.7, 0.2, 0.1])
    reader2 = frame.iloc[:n_icc] + rng.standard_normal((n_icc, p)) * noise_sd
    repeat = frame.iloc[:n_icc] + rng.standard_normal((n_icc, p)) * noise_sd * 0.7
    return frame, y, reader2, repeat


def timed_fit(frame, y, reader2, repeat) -> tuple[float, dict[str, float], RegionScore]:
    times: dict[str, float] = {}
    originals = {name: getattr(RegionScore, name) for name in STEPS}

    def wrap(name):
        def run(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return originals[name](self, *args, **kwargs)
            finally:
                times[name] = time.perf_counter() - start

        return run

    for name in STEPS:
        setattr(RegionScore, name, wrap(name))
    try:
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = RegionScore("tumor", random_state=0).fit(
                frame, y, reader2, repeat, degenerate=["tumor_f0005"]
            )
        total = time.perf_counter() - start
    finally:
        for name, fn in originals.items():
            setattr(RegionScore, name, fn)
    return total, times, model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=421)
    parser.add_argument("--features", type=int, default=979)
    parser.add_argument("--icc-cases", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
        f"python {platform.python_version()}, numpy {np.__version__}, pandas {pd.__version__}, "
        f"scikit-learn {sklearn.__version__}"
    )
    frame, y, reader2, repeat = make_data(args.cases, args.features, args.icc_cases, seed=1)
    totals, per_step = [], {name: [] for name in STEPS}
    model = None
    for _ in range(args.rounds):
        total, times, model = timed_fit(frame, y, reader2, repeat)
        totals.append(total)
        for name in STEPS:
            per_step[name].append(times[name])
    assert model is not None
    print(
        f"\n{args.cases} cases x {args.features} features, {args.icc_cases} re-segmented; median of {args.rounds}"
    )
    print(model.log_[["step", "n_in", "n_out"]].to_string(index=False))
    print("\n| step | seconds |\n|---|---:|")
    for name in STEPS:
        print(f"| {name.removeprefix('_step_')} | {statistics.median(per_step[name]):.2f} |")
    print(f"| **whole fit** | **{statistics.median(totals):.2f}** |")
    print(f"\nselected {len(model.selected_)} features; lambda.min {model.lambda_min_:.4g}")

    # LASSO alone: ours (100 lambdas, 10 folds, glmnet conventions) vs scikit-learn's CV for scale
    top = list(model.mi_.index[:30])
    z = ((frame[top] - model.means_[top]) / model.sds_[top]).to_numpy()
    ours, theirs = [], []
    for _ in range(args.rounds):
        start = time.perf_counter()
        cv_lasso_logistic(z, y, n_folds=10, n_lambdas=100, random_state=0)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        LogisticRegressionCV(
            Cs=100,
            cv=StratifiedKFold(10, shuffle=True, random_state=0),
            l1_ratios=(1.0,),
            solver="liblinear",
            scoring="neg_log_loss",
            use_legacy_attributes=False,
        ).fit(z, y)
        theirs.append(time.perf_counter() - start)
    print(
        f"\nLASSO CV on {z.shape[0]} x {z.shape[1]}: selection.cv_lasso_logistic {statistics.median(ours):.2f} s; "
        f"sklearn LogisticRegressionCV(l1, liblinear, 100 Cs, 10 folds) {statistics.median(theirs):.2f} s"
    )


if __name__ == "__main__":
    main()
