"""Benchmark: peak memory and time of one small ROI on a very large image (handcrafted and deep crop).

An 8000 x 8000 8-bit speckle image (64 Mpixel) with an elliptical ROI of about 200 x 250 pixels in
its middle is written as PNG (image and 0/255 mask). Each measurement runs in a fresh Python process
that does what an extraction worker does for one item: read image and mask with ``imaging.load_image``
/ ``load_mask``, then ``HandcraftedExtractor(preset, normalize=True).extract`` (SimpleITK on one
thread, as in the worker pool), or for ``deep`` the deep-input crop of ``extraction._crop_task``
(``deep.crop_roi``, zscore intensities). The child reports its peak resident memory
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``), its resident memory after the imports (the
baseline every worker pays anyway), and the seconds spent reading and extracting.

``--mode whole`` forces pyradiomics onto the whole image (the code path before ROI cropping);
``--mode crop`` (the default) lets the extractor crop to the ROI when its filters allow it. The
parent compares the feature values of the modes it ran (maximum relative difference).

Usage::

    python benchmarks/bench_big_image.py [--size 8000] [--presets paper us2d] [--modes crop whole] [--deep]

Linux/macOS only (``resource``; on Linux the peak is VmHWM). ``whole`` on 8000 x 8000 with ``paper`` needs about 11 GB and minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def _maxrss_mb() -> float:
    """Peak resident memory of this process in MB.

    Linux: VmHWM of /proc/self/status, which starts afresh at exec. (``ru_maxrss`` there keeps the high
    mark of the process image before exec, i.e. of the forking parent.) Elsewhere: ``ru_maxrss``.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 / (1024.0 if sys.platform == "darwin" else 1.0)  # bytes on macOS, KiB on Linux


def make_case(folder: Path, size: int, roi: tuple[int, int]) -> tuple[Path, Path]:
    """An uint8 speckle image of size x size and an elliptical ROI of roi = (rows, cols) in the middle."""
    from PIL import Image

    image_path, mask_path = folder / f"big_{size}.png", folder / f"big_{size}_mask.png"
    if image_path.is_file() and mask_path.is_file():
        return image_path, mask_path
    rng = np.random.default_rng(0)
    image = rng.gamma(2.0, 30.0, size=(size, size)).clip(0, 255).astype(np.uint8)
    mask = np.zeros((size, size), dtype=np.uint8)
    half_r, half_c = roi[0] / 2.0, roi[1] / 2.0
    r0, c0 = size // 2 - int(half_r) - 1, size // 2 - int(half_c) - 1
    rows, cols = np.mgrid[r0 : r0 + roi[0] + 2, c0 : c0 + roi[1] + 2]
    inside = ((rows - size / 2) / half_r) ** 2 + ((cols - size / 2) / half_c) ** 2 <= 1.0
    mask[r0 : r0 + roi[0] + 2, c0 : c0 + roi[1] + 2][inside] = 255
    image[mask > 0] = np.clip(image[mask > 0].astype(int) // 2 + 40, 0, 255).astype(
        np.uint8
    )  # a darker lesion
    Image.fromarray(image).save(image_path, compress_level=1)
    Image.fromarray(mask).save(mask_path, compress_level=1)
    return image_path, mask_path


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints a JSON line."""
    import SimpleITK as sitk

    from ALNMPredictorLib import handcrafted
    from ALNMPredictorLib.imaging import load_image, load_mask

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)  # as in the extraction workers
    extractor = None
    if args.child != "deep":
        extractor = handcrafted.HandcraftedExtractor(args.child, normalize=True)
        if args.mode == "whole":
            extractor._crop_margin = None  # the whole-image path (pyradiomics sees the whole image)
        extractor.feature_names()  # one-time synthetic extraction, outside the measurement
    else:
        from ALNMPredictorLib.deep import crop_roi
    baseline = _maxrss_mb()
    started = time.perf_counter()
    image = load_image(args.image, spacing=(0.1, 0.1))
    mask = load_mask(args.mask)
    read = time.perf_counter() - started
    started = time.perf_counter()
    values: list[float] = []
    if extractor is not None:
        features = extractor.extract(image.array, mask, image.spacing)
        values = list(features.values())
    else:
        array = np.clip(np.rint(image.array), 0, 255).astype(np.uint8)  # as extraction._crop_task for uint8
        crop_roi(array, mask, 0.1, 224, intensity="zscore")
    work = time.perf_counter() - started
    print(
        json.dumps(
            {
                "baseline_mb": baseline,
                "peak_mb": _maxrss_mb(),
                "read_s": read,
                "work_s": work,
                "values": values,
            }
        )
    )


def run_child(what: str, mode: str, image: Path, mask: Path) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        what,
        "--mode",
        mode,
        "--image",
        str(image),
        "--mask",
        str(mask),
    ]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{what} {mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - started
    return result


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--roi", type=int, nargs=2, default=(200, 250), metavar=("ROWS", "COLS"))
    parser.add_argument("--presets", nargs="+", default=["paper", "us2d"])
    parser.add_argument("--modes", nargs="+", default=["crop"], choices=("crop", "whole"))
    parser.add_argument(
        "--deep", action="store_true", help="also measure the deep-input crop (needs PyTorch)"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the PNGs go (default: a temp folder)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="crop", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--mask", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "make":
        image, mask = make_case(args.workdir, args.size, tuple(args.roi))
        from PIL import Image

        with Image.open(mask) as img:
            n_roi = int(np.count_nonzero(np.asarray(img)))
        print(json.dumps([str(image), str(mask), n_roi]))
        return
    if args.child:
        child(args)
        return
    folder = args.workdir or Path(tempfile.gettempdir()) / "alnm-bench-big-image"
    folder.mkdir(parents=True, exist_ok=True)
    # the big arrays are made in a child: a forked child's peak memory must not start at the parent's
    made = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "make",
            "--size",
            str(args.size),
            "--roi",
            *map(str, args.roi),
            "--workdir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    image, mask, n_roi = json.loads(made.stdout.strip().splitlines()[-1])
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores; Python {platform.python_version()}")
    print(
        f"image {args.size} x {args.size} ({args.size * args.size / 1e6:.0f} Mpixel), ROI {n_roi} pixels "
        f"(box about {args.roi[0]} x {args.roi[1]})"
    )
    print("| what | mode | peak RSS (MB) | after imports (MB) | read (s) | extract (s) | process (s) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        results = {}
        for mode in args.modes:
            r = results[mode] = run_child(preset, mode, image, mask)
            print(
                f"| {preset} | {mode} | {r['peak_mb']:.0f} | {r['baseline_mb']:.0f} | {r['read_s']:.2f} | "
                f"{r['work_s']:.2f} | {r['process_s']:.1f} |",
                flush=True,
            )
        if len(results) == 2:
            a, b = (np.array(results[m]["values"], dtype=float) for m in ("crop", "whole"))
            rel = np.abs(a - b) / np.maximum(np.abs(b), np.finfo(float).tiny)
            same = int(np.sum((a == b) | (np.isnan(a) & np.isnan(b))))
            print(
                f"  {preset}: {same}/{len(a)} feature values bit-identical, max relative difference "
                f"{np.nanmax(rel):.1e}"
            )
    if args.deep:
        r = run_child("deep", "crop", image, mask)
        print(
            f"| deep crop (zscore) | - | {r['peak_mb']:.0f} | {r['baseline_mb']:.0f} | {r['read_s']:.2f} | "
            f"{r['work_s']:.2f} | {r['process_s']:.1f} |"
        )


if __name__ == "__main__":
    main()
