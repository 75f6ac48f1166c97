"""Benchmark: the optimism bootstrap (``optimism.bootstrap_validation``) of a two-region model.

The internal validation refits the whole ``ALNMModel`` (per region: ICC filter, z-scores,
redundancy, mutual information, LASSO CV; 5-fold cross-fitting of the scores, so 6 region-score
fits per region; the stepwise second stage) on each of ``--n-boot`` resamples. Issue 14 asks for
200 resamples of a 400-case cohort with precomputed features in under 5 minutes on 2 cores.

Data: two regions of ``bench_selection.make_data(400, 474, 50)`` (seeds 1 and 2: correlated
feature families, re-segmentations of 50 cases by a second reader and by the first again), a
continuous and a categorical clinical factor; the model is ``ALNMModel`` with its defaults. Each
measurement runs in a fresh process (``--child``) with the library of one code version on its
``PYTHONPATH`` (inherited by the worker processes): the model is fitted, then one
``bootstrap_validation(..., workers=--workers)`` call is timed. CPU seconds are the process's and
its worker processes' (``getrusage``), the number that load from other jobs changes least; the
wall time and the load average before and after are printed with it. With ``--baseline REV`` the
same runs first on that git revision's library (``git archive`` into a temporary folder), so the
ratio comes from one run; the two optimism tables are compared. Usage::

    python benchmarks/bench_internal_validation.py [--n-boot 200] [--workers 2] [--baseline 90ef84a] [--baseline-n-boot 200] [--code DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cohort(n: int = 400, p: int = 474, n_icc: int = 50):
    """The table (two regions + clinical), labels, and the two re-segmentation tables."""
    import numpy as np
    import pandas as pd

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_selection import make_data

    tumor, y, r2_tumor, rp_tumor = make_data(n, p, n_icc, 1)
    ln, _, r2_ln, rp_ln = make_data(n, p, n_icc, 2)
    rename = {c: c.replace("tumor_", "ln_") for c in ln.columns}
    ln, r2_ln, rp_ln = ln.rename(columns=rename), r2_ln.rename(columns=rename), rp_ln.rename(columns=rename)
    table = pd.concat([tumor, ln], axis=1)
    rng = np.random.default_rng(0)
    table["age"] = rng.normal(54, 10, n) + 3 * y
    table["us"] = np.where(rng.random(n) < 0.3 + 0.4 * y, "present", "absent")
    return table, y, pd.concat([r2_tumor, r2_ln], axis=1), pd.concat([rp_tumor, rp_ln], axis=1)


def child(n_boot: int, workers: int) -> dict:
    """One timed ``bootstrap_validation`` with the library on this process's path."""
    import ALNMPredictorLib
    from ALNMPredictorLib.modeling import ALNMModel
    from ALNMPredictorLib.optimism import bootstrap_validation

    warnings.simplefilter("ignore")
    table, y, reader2, repeat = cohort()
    model = ALNMModel(clinical=["age", "us"], categorical=["us"], reference={"us": "absent"})
    start = time.process_time()
    model.fit(table, y, reader2=reader2, repeat=repeat)
    fit_cpu = time.process_time() - start
    load_before = os.getloadavg()
    self0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    wall0 = time.perf_counter()
    result = bootstrap_validation(
        model, table, y, reader2=reader2, repeat=repeat, n_boot=n_boot, seed=0, workers=workers
    )
    wall = time.perf_counter() - wall0
    self1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self = (self1.ru_utime + self1.ru_stime) - (self0.ru_utime + self0.ru_stime)
    cpu_children = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return {
        "library": str(Path(ALNMPredictorLib.__file__).parent),
        "n_boot": n_boot,
        "workers": workers,
        "n_used": result.n_used,
        "fit_cpu": fit_cpu,
        "wall": wall,
        "cpu": cpu_self + cpu_children,
        "cpu_self": cpu_self,
        "cpu_children": cpu_children,
        "load_before": load_before[0],
        "load_after": os.getloadavg()[0],
        "table": result.table.to_dict(),
        "selection": result.selection.to_dict(orient="records"),
    }


def measure(code: Path, n_boot: int, workers: int) -> dict:
    env = dict(
        os.environ, PYTHONPATH=str(code), OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1"
    )
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--n-boot", str(n_boot), "--workers", str(workers)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def row(name: str, r: dict) -> str:
    per = r["cpu"] / r["n_boot"]
    return (
        f"| {name} | {r['n_boot']} ({r['n_used']} used) | {r['workers']} | {r['wall']:.0f} | {r['cpu']:.0f} | "
        f"{per:.2f} | {per * 200 / 2 / 60:.1f} | {r['load_before']:.1f} / {r['load_after']:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline", default=None, help="git revision to compare with (e.g. 90ef84a)")
    parser.add_argument(
        "--baseline-n-boot", type=int, default=None, help="resamples for the baseline (default: --n-boot)"
    )
    parser.add_argument(
        "--code",
        type=Path,
        default=ROOT / "ALNMPredictor",
        help="the library folder to time as 'current' (default: this checkout's)",
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.n_boot, args.workers)))
        return

    import numpy as np

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.baseline:
            archive = subprocess.run(
                ["git", "-C", str(ROOT), "archive", args.baseline, "ALNMPredictor"],
                check=True,
                capture_output=True,
            ).stdout
            subprocess.run(["tar", "-x", "-C", tmp], input=archive, check=True)
            runs[args.baseline] = measure(
                Path(tmp) / "ALNMPredictor", args.baseline_n_boot or args.n_boot, args.workers
            )
            print(f"baseline {args.baseline}: done", flush=True)
        runs["current"] = measure(args.code, args.n_boot, args.workers)
    print(
        "\n| code | resamples | workers | wall s | CPU s (all processes) | CPU s per resample | "
        "projected min for 200 on 2 cores (CPU/2) | load avg before / after |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, r in runs.items():
        print(row(name, r))
    print("\nlibraries: " + "; ".join(f"{name}: {r['library']}" for name, r in runs.items()))
    current = runs["current"]
    print(f"\nfit of the model once (main process): {current['fit_cpu']:.2f} CPU s")
    if args.baseline:
        base = runs[args.baseline]
        ratio = (base["cpu"] / base["n_boot"]) / (current["cpu"] / current["n_boot"])
        print(f"CPU per resample, {args.baseline} / current: {ratio:.2f}")
        if base["n_boot"] == current["n_boot"]:
            a = np.array([[v for v in col.values()] for col in base["table"].values()], dtype=float)
            b = np.array([[v for v in col.values()] for col in current["table"].values()], dtype=float)
            same_selection = base["selection"] == current["selection"]
            print(
                f"optimism tables: largest difference {np.nanmax(np.abs(a - b)):.1e}; "
                f"selection frequencies the same: {same_selection}"
            )


if __name__ == "__main__":
    main()
