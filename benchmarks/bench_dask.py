"""Benchmark: handcrafted extraction on Dask distributed, 1 vs 2 local workers, against the process pool.

Each run extracts the same BUS-BRA ROIs from an empty cache (``extract_cohort``, deep features off,
images standardised) with one of:

- ``pool``: the process pool (``--workers K``);
- ``dask``: a ``LocalCluster`` of K worker processes (one thread each) on 127.0.0.1, reached through its
  scheduler address exactly as a remote cluster is (``--scheduler tcp://...``).

For each run: wall time of the whole ``extract_cohort`` call (for Dask, the cluster is started before,
so the time includes the workers' first imports but not the cluster start), CPU seconds (user + system)
of the worker processes (Dask: ``getrusage`` in each worker; pool: this process's reaped children) and
of this process, each worker's peak resident memory (``ru_maxrss``), and the per-ROI CPU from which the
projection to larger cohorts is made.

Usage::

    python benchmarks/bench_dask.py [--rois 200] [--preset us2d] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"


def manifest(folder: Path, n: int) -> Path:
    data = pd.read_csv(BUSBRA / "bus_data.csv").sort_values("ID")
    picks = data.iloc[np.linspace(0, len(data) - 1, n).round().astype(int)]
    rows = [
        {
            "case_id": r.ID,
            "label": int(r.Pathology == "malignant"),
            "split": "train",
            "tumor_image": str(BUSBRA / "Images" / f"{r.ID}.png"),
            "tumor_mask": str(BUSBRA / "Masks" / f"mask_{r.ID.removeprefix('bus_')}.png"),
        }
        for r in picks.itertuples()
    ]
    path = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def _usage() -> tuple[float, float, float]:
    """(CPU seconds, peak RSS in MB) of this process, CPU seconds of its reaped children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, own.ru_maxrss / 1024, children.ru_utime + children.ru_stime


def _worker_usage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def run(kind: str, workers: int, path: Path, preset: str, out: Path) -> dict:
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.extraction import extract_cohort

    cohort = load_manifest(path)
    own0, _, children0 = _usage()
    cluster = client = None
    scheduler = None
    if kind == "dask":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=":0"
        )
        client = Client(cluster, set_as_default=False)
        scheduler = cluster.scheduler_address
        base = client.run(_worker_usage)  # a bare worker's CPU and memory so far (start-up)
    started = time.perf_counter()
    result = extract_cohort(
        cohort,
        out,
        handcrafted=preset,
        deep=None,
        workers=workers,
        scheduler=scheduler,
        progress=False,
        normalize=True,
    )
    wall = time.perf_counter() - started
    record = {
        "kind": kind,
        "workers": workers,
        "rois": int(result.counts["handcrafted"]["computed"]),
        "failed": len(result.failed),
        "wall_s": wall,
    }
    if kind == "dask":
        after = client.run(_worker_usage)
        record["worker_cpu_s"] = sum(after[w][0] - base[w][0] for w in after)
        record["worker_peak_mb"] = max(v[1] for v in after.values())
        record["worker_start_mb"] = max(v[1] for v in base.values())
        client.close()
        cluster.close()
        own1, _, _ = _usage()
    else:
        own1, _, children1 = _usage()
        # the pool's workers, reaped when it closed; one worker runs in this process
        record["worker_cpu_s"] = children1 - children0 if workers > 1 else own1 - own0
        record["worker_peak_mb"] = None  # see bench_big_image.py / the VmHWM of a pool worker
    record["client_cpu_s"] = own1 - own0 if kind == "dask" or workers > 1 else 0.0
    record["cpu_per_roi_s"] = record["worker_cpu_s"] / max(1, record["rois"])
    record["rois_per_s"] = record["rois"] / wall
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=200)
    parser.add_argument("--preset", default="us2d")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--kinds", nargs="+", default=["dask", "pool"])
    parser.add_argument(
        "--rois-per-patient",
        type=float,
        default=1912 / 856,
        help="for the projection (default: the paper-scale demo's 1,912 ROIs / 856 patients)",
    )
    args = parser.parse_args(argv)
    if not BUSBRA.is_dir():
        print(f"BUS-BRA not found at {BUSBRA}", file=sys.stderr)
        return 2
    import logging

    logging.basicConfig(level=logging.ERROR)
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; load average "
        f"{os.getloadavg()}"
    )
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        path = manifest(Path(tmp), args.rois)
        for workers in args.workers:
            for kind in args.kinds:
                record = run(kind, workers, path, args.preset, Path(tmp) / f"{kind}{workers}")
                record["load_average"] = os.getloadavg()[0]
                records.append(record)
                print(record, flush=True)
    print(f"\n{args.rois} BUS-BRA ROIs, preset {args.preset}\n")
    print(
        "| runner | workers | wall (s) | ROI/s | speed-up | worker CPU (s) | CPU per ROI (s) | client CPU (s) | "
        "peak RSS per worker (MB) | load average |"
    )
    # (pool with 1 worker: extraction runs in this process, so its CPU is the worker CPU)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in records:
        one = next(x for x in records if x["kind"] == r["kind"] and x["workers"] == min(args.workers))
        peak = "" if r["worker_peak_mb"] is None else f"{r['worker_peak_mb']:.0f}"
        print(
            f"| {r['kind']} | {r['workers']} | {r['wall_s']:.1f} | {r['rois_per_s']:.2f} | "
            f"{one['wall_s'] / r['wall_s']:.2f}x | {r['worker_cpu_s']:.1f} | {r['cpu_per_roi_s']:.3f} | "
            f"{r['client_cpu_s']:.1f} | {peak} | {r['load_average']:.1f} |"
        )
    per_roi = np.median(
        [r["cpu_per_roi_s"] for r in records if r["kind"] == "dask"] or [r["cpu_per_roi_s"] for r in records]
    )
    print(f"\nprojection at {per_roi:.3f} CPU-s per ROI, {args.rois_per_patient:.2f} ROIs per patient:")
    for patients in (10_000, 100_000):
        cpu_h = patients * args.rois_per_patient * per_roi / 3600
        print(
            f"- {patients:,} patients: {cpu_h:.1f} CPU-hours; on 32 workers {60 * cpu_h / 32:.0f} min, "
            f"on 256 workers {60 * cpu_h / 256:.1f} min"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
