"""Benchmark: training from a precomputed feature table (``alnm train --features``), wide and tall.

A synthetic cohort of ``--cases`` patients (60 % training, 20 % internal, 20 % external) with two
clinical factors and a feature table of ``--features`` columns per region (tumour + LN; correlated
families at very different scales, a few informative, 0.5 % of the cells missing), plus reader2 and
repeat tables for 50 training cases (the ICC filter). Times reading + mapping + imputing the tables
(:func:`load_feature_tables`) for CSV and Parquet, and the whole ``pipeline.train`` from each (median
over rounds; the model is fitted and saved each time). Usage::

    python benchmarks/bench_tablefeatures.py [--cases 300] [--features 1300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.pipeline import PipelineSettings, train
from ALNMPredictorLib.tablefeatures import FeatureTableSpec, load_feature_tables


def make_cohort(folder: Path, n: int, p: int, n_icc: int, seed: int) -> dict[str, Path]:
    """Manifest + main/reader2/repeat tables in CSV and Parquet."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in range(n)]
    n_train, n_internal = int(0.6 * n), int(0.2 * n)
    split = ["train"] * n_train + ["internal"] * n_internal + ["external"] * (n - n_train - n_internal)
    latent = rng.standard_normal((n, 2))
    y = (rng.random(n) < 1 / (1 + np.exp(-(1.0 * latent[:, 0] + 0.8 * latent[:, 1])))).astype(int)
    manifest = pd.DataFrame(
        {
            "case_id": ids,
            "label": y,
            "split": split,
            "age": np.round(rng.normal(50, 10, n), 1),
            "margin": np.where(rng.random(n) < 0.3 + 0.3 * y, "irregular", "circumscribed"),
        }
    )
    columns: dict[str, np.ndarray] = {}
    for r, region in enumerate(("tumor", "ln")):
        families = rng.standard_normal((n, p // 10))
        families[:, 0] += 0.8 * latent[:, r]
        for j in range(p):
            x = families[:, j % families.shape[1]] * rng.uniform(0.3, 1.0) + rng.standard_normal(
                n
            ) * rng.uniform(0.2, 1.0)
            columns[f"{region}_f{j:04d}"] = x * rng.uniform(0.1, 100) + rng.uniform(-50, 500)
    main = pd.DataFrame(columns, index=pd.Index(ids, name="case_id"))
    values = main.to_numpy().copy()
    values[rng.random(values.shape) < 0.005] = np.nan
    main = pd.DataFrame(values, index=main.index, columns=main.columns)
    noise = main.std().to_numpy() * rng.choice([0.1, 0.3, 1.5], main.shape[1], p=[0.7, 0.2, 0.1])
    train_ids = ids[:n_icc]
    reader2 = main.loc[train_ids] + rng.standard_normal((n_icc, main.shape[1])) * noise
    repeat = main.loc[train_ids] + rng.standard_normal((n_icc, main.shape[1])) * noise * 0.7
    paths = {"manifest": folder / "manifest.csv"}
    manifest.to_csv(paths["manifest"], index=False)
    for name, frame in (("main", main), ("reader2", reader2), ("repeat", repeat)):
        for ext in ("csv", "parquet"):
            path = folder / f"{name}.{ext}"
            frame.reset_index().to_csv(path, index=False) if ext == "csv" else frame.reset_index().to_parquet(
                path
            )
            paths[f"{name}.{ext}"] = path
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--features", type=int, default=1300, help="columns per region (two regions)")
    parser.add_argument("--icc-cases", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.WARNING)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__}; load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_cohort(folder, args.cases, args.features, args.icc_cases, seed=0)
        print(
            f"{args.cases} cases x {2 * args.features} feature columns (+ reader2/repeat for {args.icc_cases} cases); "
            f"main.csv {paths['main.csv'].stat().st_size / 1e6:.1f} MB, main.parquet "
            f"{paths['main.parquet'].stat().st_size / 1e6:.1f} MB"
        )
        cohort = load_manifest(paths["manifest"])
        settings = PipelineSettings(deep="off", seed=0)
        rows = []
        for ext in ("csv", "parquet"):
            load_times, train_times, cpu_times = [], [], []
            for _ in range(args.rounds):
                start = time.perf_counter()
                load_feature_tables(
                    paths[f"main.{ext}"],
                    cohort=cohort,
                    reader2=paths[f"reader2.{ext}"],
                    repeat=paths[f"repeat.{ext}"],
                )
                load_times.append(time.perf_counter() - start)
                spec = FeatureTableSpec(
                    paths[f"main.{ext}"], reader2=paths[f"reader2.{ext}"], repeat=paths[f"repeat.{ext}"]
                )
                start, cpu = time.perf_counter(), time.process_time()
                result = train(
                    paths["manifest"], folder / f"out-{ext}", settings, progress=False, feature_table=spec
                )
                train_times.append(time.perf_counter() - start)
                cpu_times.append(time.process_time() - cpu)
            counts = {r: len(s.selected_) for r, s in result.model.region_scores_.items()}
            rows.append(
                (
                    ext,
                    statistics.median(load_times),
                    statistics.median(train_times),
                    statistics.median(cpu_times),
                    counts,
                )
            )
        print(
            "| table | read + map + impute (s) | whole `train` wall (s) | whole `train` CPU (s) | LASSO features |"
        )
        print("|---|---:|---:|---:|---|")
        for ext, load_s, train_s, cpu_s, counts in rows:
            shown = ", ".join(f"{r} {k}" for r, k in counts.items())
            print(f"| {ext} | {load_s:.2f} | {train_s:.2f} | {cpu_s:.2f} | {shown} |")


if __name__ == "__main__":
    main()
