"""Benchmark: `alnm synth` (synthetic multicentre cohort: images, masks, manifest) wall and CPU time.

Writes ``--patients`` patients to a temporary folder ``--rounds`` times for each worker count and reports
the median wall time, CPU time of this process (workers excluded) and the bytes written. Usage::

    python benchmarks/bench_synth.py [--patients 100] [--rounds 3] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from ALNMPredictorLib import synth


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    for workers in args.workers:
        walls, cpus, size = [], [], 0
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory() as tmp:
                start, cpu = time.perf_counter(), time.process_time()
                result = synth.synth_cohort(Path(tmp) / "cohort", args.patients, seed=0, workers=workers)
                walls.append(time.perf_counter() - start)
                cpus.append(time.process_time() - cpu)
                size = _size(result.out_dir)
        print(
            f"{args.patients} patients, workers {workers}: wall {statistics.median(walls):.2f} s "
            f"(min {min(walls):.2f}), main-process CPU {statistics.median(cpus):.2f} s, {size / 1e6:.1f} MB"
        )


if __name__ == "__main__":
    main()
