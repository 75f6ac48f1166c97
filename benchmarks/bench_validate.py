"""Benchmark: `load_manifest` + `Cohort.validate` (headers read, every mask loaded) on large cohorts.

Two cohorts: a synthetic two-region one (``--cases`` cases, 8-bit PNG tumour and LN images of about
the BUS-BRA size with 0/255 masks, written to a temporary folder) and, when present, the real BUS-BRA
data set (1,875 tumour images, one region) read in place from ``../shared/data/busbra``. Each is
validated ``--rounds`` times; the first round runs on a cold page cache only if the files were just
written elsewhere, so the median over rounds is reported. Usage::

    python benchmarks/bench_validate.py [--cases 1000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from ALNMPredictorLib.cohort import load_manifest

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"


def write_synthetic(folder: Path, n_cases: int, seed: int = 0) -> Path:
    """A two-region cohort of PNG images and masks; returns the manifest path."""
    rng = np.random.default_rng(seed)
    (folder / "images").mkdir(parents=True)
    (folder / "masks").mkdir()
    rows = []
    for i in range(n_cases):
        case = f"S{i:05d}"
        row = {"case_id": case, "label": int(rng.random() < 0.4), "split": "train" if i % 3 else "external"}
        for region, shape in (("tumor", (360, 300)), ("ln", (300, 260))):
            image = rng.integers(0, 256, size=shape, dtype=np.uint8)
            mask = np.zeros(shape, np.uint8)
            r0, c0 = rng.integers(20, 120, size=2)
            mask[r0 : r0 + 80, c0 : c0 + 90] = 255
            Image.fromarray(image).save(folder / "images" / f"{case}_{region}.png", compress_level=1)
            Image.fromarray(mask).save(folder / "masks" / f"{case}_{region}.png")
            row[f"{region}_image"] = f"images/{case}_{region}.png"
            row[f"{region}_mask"] = f"masks/{case}_{region}.png"
            row[f"{region}_spacing"] = 0.1
        row["age"] = float(rng.normal(50, 10))
        row["margin"] = rng.choice(["smooth", "angular", "spiculated"])
        rows.append(row)
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def write_busbra(folder: Path) -> Path:
    """A manifest of every BUS-BRA image, pointing at the shared files (nothing is copied)."""
    data = pd.read_csv(BUSBRA / "bus_data.csv")
    manifest = pd.DataFrame(
        {
            "case_id": data["ID"],
            "label": (data["Pathology"] == "malignant").astype(int),
            "split": ["train" if i % 4 else "internal" for i in range(len(data))],
            "center": data["Device"],
            "tumor_image": [str(BUSBRA / "Images" / f"{i}.png") for i in data["ID"]],
            "tumor_mask": [str(BUSBRA / "Masks" / f"{i.replace('bus_', 'mask_')}.png") for i in data["ID"]],
            "tumor_spacing": 0.1,
        }
    )
    manifest.to_csv(folder / "busbra.csv", index=False)
    return folder / "busbra.csv"


def time_validate(manifest: Path, rounds: int) -> tuple[float, float, int, int]:
    """(median load s, median validate s, cases, problems)."""
    loads, validations = [], []
    n_problems = n_cases = 0
    for _ in range(rounds):
        start = time.perf_counter()
        cohort = load_manifest(manifest)
        loaded = time.perf_counter()
        problems = cohort.validate()
        done = time.perf_counter()
        loads.append(loaded - start)
        validations.append(done - loaded)
        n_problems, n_cases = len(problems), len(cohort)
    return statistics.median(loads), statistics.median(validations), n_cases, n_problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        synthetic = write_synthetic(Path(tmp) / "synthetic", args.cases)
        targets = [("synthetic, 2 regions", synthetic, 2)]
        if BUSBRA.is_dir():
            targets.append(("BUS-BRA, 1 region", write_busbra(Path(tmp)), 1))
        print("| cohort | cases | images + masks | load (s) | validate (s) | per case (ms) | problems |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, manifest, regions in targets:
            load_s, validate_s, cases, problems = time_validate(manifest, args.rounds)
            print(
                f"| {name} | {cases} | {2 * regions * cases} | {load_s:.3f} | {validate_s:.2f} | "
                f"{1000 * validate_s / cases:.2f} | {problems} |"
            )


if __name__ == "__main__":
    main()
