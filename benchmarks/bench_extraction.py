"""Benchmark: cohort extraction throughput (handcrafted features) with 1 vs 2 (or more) worker processes.

A SYNTHETIC cohort (``synth_cohort``, 40 patients by default: 80 main ROIs + re-segmentations) is
extracted from scratch (empty cache) with each worker count; runs are interleaved over rounds and the
best round per worker count is kept (other load on the machine only ever adds time). Reported per run:
wall time of ``extract_cohort`` (process start-up, planning, extraction, table writing), ROIs per
second, the steady-state rate between the first and the last ROI finished (excludes the pool's start-up),
and the CPU time of this process and its workers. Since other jobs on a shared 2-core machine take cores
away from the workers, the load average before each run and the machine's idle CPU share during it
(``/proc/stat``) are printed, with the speed-up the CPU times allow on free cores:
``workers x CPU(1 worker) / CPU(n workers)`` (the extra CPU of n workers is their start-up and messaging).

Usage::

    python benchmarks/bench_extraction.py [--patients 40] [--preset us2d] [--workers 1 2] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

from ALNMPredictorLib.cohort import load_manifest
from ALNMPredictorLib.extraction import extract_cohort
from ALNMPredictorLib.synth import existing_cohort, synth_cohort


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _idle_jiffies() -> tuple[int, int]:
    """(idle, total) CPU jiffies of the machine so far (Linux), or (0, 0)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    except (OSError, ValueError, IndexError):
        return 0, 0
    return fields[3] + fields[4], sum(fields[:8])


def run_once(manifest: Path, out: Path, preset: str, workers: int) -> dict[str, float]:
    """Extract the cohort into an empty ``out``; wall, steady-state and CPU figures."""
    shutil.rmtree(out, ignore_errors=True)
    cohort = load_manifest(manifest)
    finished: list[float] = []

    def callback(stage: str, done: int, total: int) -> None:
        if stage == "handcrafted":
            finished.append(time.perf_counter())

    load = os.getloadavg()[0]
    idle0, total0 = _idle_jiffies()
    cpu0, t0 = _cpu_seconds(), time.perf_counter()
    result = extract_cohort(
        cohort, out, handcrafted=preset, deep=None, workers=workers, progress=False, callback=callback
    )
    wall = time.perf_counter() - t0
    cpu = _cpu_seconds() - cpu0
    idle1, total1 = _idle_jiffies()
    idle = (idle1 - idle0) / (total1 - total0) if total1 > total0 else float("nan")
    n = result.counts["handcrafted"]["computed"]
    if result.failed or n != len(result.status):
        raise SystemExit(f"unexpected: {len(result.failed)} failures, {n} computed of {len(result.status)}")
    steady = (len(finished) - 1) / (finished[-1] - finished[0])
    return {
        "workers": workers,
        "rois": n,
        "wall": wall,
        "rate": n / wall,
        "steady": steady,
        "cpu": cpu,
        "load": load,
        "idle": idle,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=40)
    parser.add_argument(
        "--preset", default="us2d", help="handcrafted preset or parameter file (default: us2d)"
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--cohort", type=Path, help="folder for the synthetic cohort (default: a temporary one)"
    )
    args = parser.parse_args()
    warnings.simplefilter("ignore")

    tmp = Path(tempfile.mkdtemp(prefix="bench_extraction_"))
    try:
        cohort_dir = args.cohort or tmp / "cohort"
        manifest = existing_cohort(cohort_dir, args.patients, 0)
        if manifest is None:
            manifest = synth_cohort(cohort_dir, n_patients=args.patients, seed=0).manifest_path
        print(
            f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}; synthetic cohort of {args.patients} patients, preset {args.preset}"
        )
        runs: list[dict[str, float]] = []
        for round_no in range(args.rounds):
            for workers in args.workers:
                run = run_once(manifest, tmp / f"out{workers}", args.preset, workers)
                runs.append(run)
                print(
                    f"round {round_no + 1}, {workers} worker(s): {run['rois']} ROIs in {run['wall']:.1f} s "
                    f"({run['rate']:.2f} ROI/s, steady {run['steady']:.2f} ROI/s), CPU {run['cpu']:.1f} s, "
                    f"load before {run['load']:.1f}, machine idle {run['idle']:.0%}",
                    flush=True,
                )
        best = {w: min((r for r in runs if r["workers"] == w), key=lambda r: r["wall"]) for w in args.workers}
        base = best[args.workers[0]]
        cpu_base = min(r["cpu"] for r in runs if r["workers"] == args.workers[0]) / args.workers[0]
        print(
            "\n| workers | ROIs | wall (s) | ROI/s | speed-up | steady ROI/s | steady speed-up | CPU (s) "
            "| CPU-bound speed-up | load before | machine idle |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for w, r in best.items():
            cpu_w = min(x["cpu"] for x in runs if x["workers"] == w)
            print(
                f"| {w} | {r['rois']} | {r['wall']:.1f} | {r['rate']:.2f} | {r['rate'] / base['rate']:.2f}x | "
                f"{r['steady']:.2f} | {r['steady'] / base['steady']:.2f}x | {cpu_w:.1f} | "
                f"{w * cpu_base / cpu_w:.2f}x | {r['load']:.1f} | {r['idle']:.0%} |"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
