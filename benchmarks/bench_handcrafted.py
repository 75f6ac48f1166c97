"""Benchmark: handcrafted features per ROI, ALNM Predictor vs bare pyradiomics, on real BUS-BRA ROIs.

Both sides start from the same in-memory arrays (file reading is excluded) and use the same preset.
"Bare" is what a careful user writes by hand: cast the image to float64 (the uint8 trap), build
one-slice SimpleITK volumes with the spacing, call ``RadiomicsFeatureExtractor.execute`` on an
extractor built once, and drop the diagnostics; "bare, no diagnostics" also switches off
pyradiomics' ``additionalInfo`` as HandcraftedExtractor does. Runs are interleaved per ROI and
repeated; the per-ROI time is the minimum over rounds (other load only ever adds time), by wall
clock and by process CPU time (less sensitive to other jobs on a shared machine). The
wrapper's own input preparation (checks, grey conversion, SimpleITK volumes) is also timed alone.

Usage::

    python benchmarks/bench_handcrafted.py [--n 15] [--rounds 3] [--presets paper us2d]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np
import radiomics
import SimpleITK as sitk
from PIL import Image
from radiomics import featureextractor

from ALNMPredictorLib.handcrafted import HandcraftedExtractor, preset_path, roi_mask, to_grey

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "busbra"
SPACING = (0.1, 0.1)  # BUS-BRA PNGs carry no spacing; a typical B-mode pixel size in mm


def load_rois(data: Path, n: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``n`` left-side BUS-BRA images spread evenly over the data set, with their 0/255 masks."""
    images = sorted((data / "Images").glob("bus_*-l.png"))
    if not images:
        raise SystemExit(f"no BUS-BRA images under {data / 'Images'}")
    picks = [images[i] for i in np.linspace(0, len(images) - 1, n).round().astype(int)]
    rois = []
    for path in picks:
        mask_path = data / "Masks" / path.name.replace("bus_", "mask_")
        image = np.asarray(Image.open(path).convert("L"))
        mask = np.asarray(Image.open(mask_path)) != 0
        rois.append((path.stem, image, mask))
    return rois


def bare_extract(extractor: featureextractor.RadiomicsFeatureExtractor, image, mask) -> dict[str, float]:
    sitk_image = sitk.GetImageFromArray(image.astype(np.float64)[np.newaxis])
    sitk_mask = sitk.GetImageFromArray(mask.astype(np.uint8)[np.newaxis])
    for item in (sitk_image, sitk_mask):
        item.SetSpacing((SPACING[1], SPACING[0], 1.0))
    result = extractor.execute(sitk_image, sitk_mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


def prep_times(rois, repeat: int = 50) -> tuple[float, float]:
    """Mean seconds per ROI to prepare pyradiomics input: ALNM Predictor's checks vs the bare cast."""

    def ours(image, mask):
        grey = to_grey(image)
        roi = roi_mask(mask, grey.shape)
        for arr in (grey, roi.astype(np.uint8)):
            sitk.GetImageFromArray(arr[np.newaxis]).SetSpacing((SPACING[1], SPACING[0], 1.0))

    def bare(image, mask):
        for arr in (image.astype(np.float64), mask.astype(np.uint8)):
            sitk.GetImageFromArray(arr[np.newaxis]).SetSpacing((SPACING[1], SPACING[0], 1.0))

    result = []
    for fn in (ours, bare):
        best = [
            min(timeit.repeat(lambda i=i, m=m, f=fn: f(i, m), number=repeat, repeat=3)) / repeat
            for _, i, m in rois
        ]
        result.append(statistics.fmean(best))
    return result[0], result[1]


def bench(preset: str, rois, rounds: int) -> dict[str, dict[str, float] | float | int]:
    """Mean per-ROI seconds (minimum over rounds) of each variant, by clock (wall and process CPU)."""
    ours = HandcraftedExtractor(preset)
    bare = featureextractor.RadiomicsFeatureExtractor(str(preset_path(preset)))
    lean = featureextractor.RadiomicsFeatureExtractor(str(preset_path(preset)))
    lean.settings["additionalInfo"] = False  # what HandcraftedExtractor does internally
    ours.feature_names()  # one-off name discovery, outside the timed loop
    variants = ("ours", "bare", "lean")
    clocks = {"wall": time.perf_counter, "cpu": time.process_time}
    times = {(who, c): [[] for _ in rois] for who in variants for c in clocks}
    max_rel = 0.0
    for r in range(rounds):
        for i, (_, image, mask) in enumerate(rois):
            shift = (r + i) % 3
            for who in variants[shift:] + variants[:shift]:
                start = {c: clock() for c, clock in clocks.items()}
                if who == "ours":
                    got = ours.extract(image, mask, SPACING)
                elif who == "bare":
                    ref = bare_extract(bare, image, mask)
                else:
                    bare_extract(lean, image, mask)
                for c, clock in clocks.items():
                    times[who, c][i].append(clock() - start[c])
            a, b = np.array(list(got.values())), np.array(list(ref.values()))
            ok = np.isfinite(b) & (b != 0)
            max_rel = max(max_rel, float(np.max(np.abs(a[ok] - b[ok]) / np.abs(b[ok]))))
    result: dict[str, dict[str, float] | float | int] = {
        "features": len(got),
        "median_pixels": float(np.median([m.sum() for _, _, m in rois])),
        "max_rel_diff": max_rel,
    }
    for c in clocks:
        mean = {who: statistics.fmean(min(t) for t in times[who, c]) for who in variants}
        mean["overhead_pct"] = 100.0 * (mean["ours"] / mean["bare"] - 1.0)
        mean["overhead_lean_pct"] = 100.0 * (mean["ours"] / mean["lean"] - 1.0)
        result[c] = mean
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--n", type=int, default=15, help="number of ROIs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=["paper", "us2d"])
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"BUS-BRA not found at {args.data}: nothing to benchmark", file=sys.stderr)
        return 1
    rois = load_rois(args.data, args.n)
    print(
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, pyradiomics {radiomics.__version__}, "
        f"SimpleITK {sitk.Version.VersionString()}"
    )
    print(
        f"# {len(rois)} BUS-BRA ROIs ({rois[0][0]} ... {rois[-1][0]}), {args.rounds} rounds, spacing {SPACING}"
    )
    print(
        "| preset | features | median ROI px | clock | bare s/ROI | bare, no diagnostics s/ROI "
        "| ALNM Predictor s/ROI | overhead vs bare | vs bare, no diagnostics | max rel. diff |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for preset in args.presets:
        res = bench(preset, rois, args.rounds)
        for c in ("wall", "cpu"):
            t = res[c]
            print(
                f"| {preset} | {res['features']} | {res['median_pixels']:.0f} | {c} | {t['bare']:.3f} | "
                f"{t['lean']:.3f} | {t['ours']:.3f} | {t['overhead_pct']:+.1f} % | "
                f"{t['overhead_lean_pct']:+.1f} % | {res['max_rel_diff']:.1e} |"
            )
    ours_prep, bare_prep = prep_times(rois)
    print(
        f"\nInput preparation alone: {1e3 * ours_prep:.2f} ms/ROI (ALNM Predictor: checks, grey, volumes) "
        f"vs {1e3 * bare_prep:.2f} ms/ROI (bare float cast + volumes)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
