"""Benchmark: one ``RegionScore.fit`` as the internal validation repeats it, before and after.

The optimism bootstrap refits every region score 6 times (5-fold cross-fitting) in each of 200
resamples, so one fit must take a few tenths of a second. This times the fit of the current
``selection.py`` against the one of a git revision (default ``9dfae5f``: scikit-learn's
``mutual_info_classif`` and pure-Python coordinate descent in the LASSO), loaded from ``git show``
into its own module, in the same process, rounds interleaved (so both see the same machine load).
CPU seconds (``time.process_time``) and wall seconds are reported; the ratios are old / new
within the run. Data:

* ``150x300``: 150 cases, one clinical-like driver of the label, 300 noise features of which the
  first 3 are shifted by +-0.15 with the class; and a bootstrap resample of it (duplicated rows);
  and a bootstrap resample of the same with shifts of +-0.5, where the LASSO path reaches near
  separation (largest coefficient about 130; fitted probabilities at the 1e-9 clip);
* ``400x474``: ``bench_selection.make_data`` (correlated families, re-segmentations of 50 cases),
  the size of a real us2d table; and a bootstrap resample of it (re-segmentations of the drawn
  cases kept, once each);
* the two costly steps alone on those inputs: mutual information (all features surviving the
  redundancy step) and the LASSO CV (the 30 MI-selected features), plus a near-separated LASSO
  (a bootstrap resample where fitted probabilities reach the 1e-9 clip).

Every pair of fits is checked for equal output (selected features, lambdas, coefficients) and the
largest differences are printed. Usage::

    python benchmarks/bench_selection_refit.py [--rounds 3] [--baseline 9dfae5f]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import sklearn
from scipy.special import expit
from sklearn.feature_selection import mutual_info_classif

import ALNMPredictorLib.selection as new
from ALNMPredictorLib.selection import RegionScore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_selection import make_data  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def load_baseline(revision: str) -> ModuleType:
    """``ALNMPredictorLib/selection.py`` as it was at ``revision``, imported as its own module."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{revision}:ALNMPredictor/ALNMPredictorLib/selection.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "selection_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("selection_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["selection_baseline"] = module
    spec.loader.exec_module(module)
    return module


def small_table(
    n: int = 150, p: int = 300, seed: int = 0, shift: float = 0.15
) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    clinical = rng.standard_normal(n)
    y = (rng.random(n) < expit(1.6 * clinical - 0.3)).astype(int)
    f = rng.standard_normal((n, p))
    f[:, :3] += np.where(y[:, None] == 1, shift, -shift)
    x = pd.DataFrame(f, index=[f"P{i:04d}" for i in range(n)], columns=[f"tumor_f{j:03d}" for j in range(p)])
    return x, pd.Series(y, index=x.index)


def resample(x: pd.DataFrame, y: pd.Series, seed: int, *extra: pd.DataFrame | None) -> tuple:
    """A bootstrap resample: rows drawn with replacement, fresh unique case ids."""
    rows = np.random.default_rng(seed).integers(0, len(x), len(x))
    xb = x.iloc[rows].copy()
    xb.index = [f"B{i:04d}" for i in range(len(x))]
    out: list = [xb, pd.Series(y.to_numpy()[rows], index=xb.index)]
    for frame in extra:  # re-segmentations: each drawn case once, under its first new id
        if frame is None:
            out.append(None)
            continue
        first: dict[str, str] = {}
        for new_id, old_id in zip(xb.index, x.index[rows], strict=True):
            first.setdefault(old_id, new_id)
        kept = frame.loc[[c for c in frame.index if c in first]].copy()
        kept.index = [first[c] for c in kept.index]
        out.append(kept)
    return tuple(out)


def timed(fn: Callable[[], object]) -> tuple[float, float, object]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return time.process_time() - cpu, time.perf_counter() - wall, result


def compare(
    name: str, old_fn: Callable[[], object], new_fn: Callable[[], object], rounds: int, check: Callable
) -> None:
    times: dict[str, list[tuple[float, float]]] = {"old": [], "new": []}
    results = {}
    for _ in range(rounds):
        for tag, fn in (("old", old_fn), ("new", new_fn)):
            cpu, wall, results[tag] = timed(fn)
            times[tag].append((cpu, wall))
    o_cpu = statistics.median(t[0] for t in times["old"])
    n_cpu = statistics.median(t[0] for t in times["new"])
    o_wall = statistics.median(t[1] for t in times["old"])
    n_wall = statistics.median(t[1] for t in times["new"])
    print(
        f"| {name} | {o_cpu:.2f} | {n_cpu:.3f} | **{o_cpu / n_cpu:.1f}** | {o_wall:.2f} | {n_wall:.3f} | {o_wall / n_wall:.1f} | "
        f"{check(results['old'], results['new'])} |",
        flush=True,
    )


def same_fit(a: RegionScore, b: RegionScore) -> str:
    same = a.selected_ == b.selected_ and a.lambda_ == b.lambda_ and list(a.mi_.index) == list(b.mi_.index)
    coef = float(np.max(np.abs(a.coef_.to_numpy() - b.coef_.to_numpy()))) if same else float("nan")
    cvm = float(np.max(np.abs(a.lasso_cv_["mean_deviance"] - b.lasso_cv_["mean_deviance"])))
    mi = float(np.max(np.abs(a.mi_.to_numpy() - b.mi_.to_numpy())))
    return (
        f"{'same' if same else 'DIFFERENT'} selection ({len(a.selected_)} features); "
        f"max diff: coef {coef:.0e}, intercept {abs(a.intercept_ - b.intercept_):.0e}, CV deviance {cvm:.0e}, MI {mi:.0e}"
    )


def same_mi(a: np.ndarray, b: np.ndarray) -> str:
    return f"max diff {np.max(np.abs(a - b)):.0e}; same ranking: {np.array_equal(np.argsort(-a, kind='stable'), np.argsort(-b, kind='stable'))}"


def same_cv(a: dict, b: dict) -> str:
    if len(a["lambdas"]) != len(b["lambdas"]):
        return "DIFFERENT path lengths"
    return (
        f"same lambda.min/1se: {(a['i_min'], a['i_1se']) == (b['i_min'], b['i_1se'])}; max diff: coef "
        f"{np.max(np.abs(a['coefs'] - b['coefs'])):.0e}, CV deviance {np.max(np.abs(a['cvm'] - b['cvm'])):.0e}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", default="9dfae5f", help="git revision of the 'before' selection.py")
    args = parser.parse_args()
    old = load_baseline(args.baseline)
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    print(
        f"machine: {cpu}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}, scikit-learn {sklearn.__version__}; baseline {args.baseline}; "
        f"median of {args.rounds} interleaved rounds\n"
    )

    x, y = small_table()
    xb, yb = resample(x, y, 1)
    xs, ys = resample(*small_table(shift=0.5), 3)
    big, big_y, reader2, repeat = make_data(400, 474, 50, seed=1)
    big_y = pd.Series(big_y, index=big.index)
    bigb, bigb_y, reader2b, repeatb = resample(big, big_y, 1, reader2, repeat)
    fits = {
        "fit 150x300": (x, y, None, None),
        "fit 150x300, bootstrap resample": (xb, yb, None, None),
        "fit 150x300 (shifts 0.5), near-separated bootstrap resample": (xs, ys, None, None),
        "fit 400x474, 50 re-segmented": (big, big_y, reader2, repeat),
        "fit 400x474, bootstrap resample": (bigb, bigb_y, reader2b, repeatb),
    }
    print(
        "| what | old CPU s | new CPU s | ratio | old wall s | new wall s | ratio | output |\n|---|---:|---:|---:|---:|---:|---:|---|"
    )
    fitted = {}
    for name, (a, b, r2, rp) in fits.items():

        def fit(module: ModuleType, a=a, b=b, r2=r2, rp=rp) -> RegionScore:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return module.RegionScore("tumor", random_state=0).fit(a, b, r2, rp)

        compare(name, lambda fit=fit: fit(old), lambda fit=fit: fit(new), args.rounds, same_fit)
        fitted[name] = (fit(new), a, b)

    for name, (model, a, b) in fitted.items():
        short = name.removeprefix("fit ")
        yv = b.to_numpy()
        # mutual information on the features entering that step, as the fit computes it
        inputs = [
            f
            for f in model.means_.index
            if f not in set(model.dropped_.loc[model.dropped_["step"] == "redundancy", "feature"])
        ]
        z = ((a[inputs] - model.means_[inputs]) / model.sds_[inputs]).to_numpy()
        compare(
            f"MI, {short} ({z.shape[1]} features)",
            lambda z=z, yv=yv: mutual_info_classif(z, yv, discrete_features=False, random_state=0),
            lambda z=z, yv=yv: new._mutual_info_classif(z, yv, random_state=0),
            args.rounds,
            same_mi,
        )
        top = list(model.lasso_path_.columns[1:])
        zt = ((a[top] - model.means_[top]) / model.sds_[top]).to_numpy()
        compare(
            f"LASSO CV, {short} ({zt.shape[1]} features)",
            lambda zt=zt, yv=yv: old.cv_lasso_logistic(zt, yv, n_folds=10, random_state=0),
            lambda zt=zt, yv=yv: new.cv_lasso_logistic(zt, yv, n_folds=10, random_state=0),
            args.rounds,
            same_cv,
        )

    # near separation: strong effects in a bootstrap resample drive fitted probabilities to the clip
    rng = np.random.default_rng(1)
    z = rng.standard_normal((150, 30))
    ys = (rng.random(150) < expit(0.9 * z[:, 0] - 0.6 * z[:, 1] + 0.4 * z[:, 2] - 0.3)).astype(float)
    rows = rng.integers(0, 150, 150)
    z, ys = z[rows], ys[rows]
    compare(
        "LASSO CV, near-separated bootstrap resample (150x30, largest coefficient about 275)",
        lambda: old.cv_lasso_logistic(z, ys, n_folds=10, random_state=0),
        lambda: new.cv_lasso_logistic(z, ys, n_folds=10, random_state=0),
        max(1, args.rounds // 2),
        same_cv,
    )


if __name__ == "__main__":
    main()
