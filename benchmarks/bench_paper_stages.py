"""Benchmark: where the ``paper`` preset's time goes per ROI, before and after issue 18, in one run.

Three extractors run on the same in-memory ROIs, interleaved per ROI (so other load on the machine
hits them alike), with the project's default standardisation (``normalize``):

- ``before``: the code before issue 18: ``HandcraftedExtractor("paper", normalize=True, full_table=True)``
  with pyradiomics' own 3D shape class (C code) put back: 851 features, ROI cropped.
- ``after, full table``: ``HandcraftedExtractor("paper", normalize=True, full_table=True)``: 851
  features, the one-slice 3D shape of ``shape3d``.
- ``after``: ``HandcraftedExtractor("paper", normalize=True)`` (the default table): 479 features, the
  372 z-high-pass wavelet features not computed.

Each stage is timed in process CPU seconds (``time.process_time``, one thread: SimpleITK is set to one
thread as in the extraction workers): the 3D shape class, pyradiomics' wavelet transform, the feature
classes on the original image, on the 4 z-low-pass wavelet images and on the 4 z-high-pass ones, and
the rest (checks, cropping, casting, standardisation). The values of the features both give are checked
equal (1e-10 relative for the mesh area/volume shape features, 1e-12 for the others).

Usage::

    python benchmarks/bench_paper_stages.py [--busbra 30] [--synthetic 30]
"""

from __future__ import annotations

import argparse
import collections
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import radiomics
import SimpleITK as sitk
from PIL import Image
from radiomics import featureextractor, imageoperations

from ALNMPredictorLib.handcrafted import HandcraftedExtractor

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"
STAGES = [
    "3D shape",
    "wavelet transform",
    "features: original",
    "features: 4 z-low wavelets",
    "features: 4 z-high wavelets",
    "rest",
]
MESH = (
    "MeshVolume",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "Sphericity",
    "Compactness1",
    "Compactness2",
    "SphericalDisproportion",
)


def busbra_rois(n: int) -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, float]]]:
    """``n`` BUS-BRA images spread evenly over the data set (all scanners), spacing 0.1 mm (none in the PNGs)."""
    images = sorted((BUSBRA / "Images").glob("bus_*.png"))
    picks = [images[i] for i in np.linspace(0, len(images) - 1, n).round().astype(int)]
    out = []
    for path in picks:
        image = np.asarray(Image.open(path).convert("L"))
        mask = np.asarray(Image.open(BUSBRA / "Masks" / path.name.replace("bus_", "mask_"))) != 0
        out.append((path.stem, image, mask, (0.1, 0.1)))
    return out


def synthetic_rois(n: int) -> list[tuple[str, np.ndarray, np.ndarray, tuple[float, float]]]:
    """The main tumour and LN ROIs of the first patients of ``alnm demo``'s synthetic cohort (seed 0)."""
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.imaging import load_image, load_mask
    from ALNMPredictorLib.synth import synth_cohort

    out = []
    with tempfile.TemporaryDirectory() as tmp:
        synth_cohort(tmp, n_patients=max(20, (n + 1) // 2), seed=0)
        cohort = load_manifest(Path(tmp) / "manifest.csv")
        for case_id in cohort.case_ids():
            for region in cohort.regions:
                inputs = cohort.region_inputs(case_id, region, "main")
                image = load_image(inputs.image_path, spacing=inputs.spacing)
                mask = load_mask(inputs.mask_path, label=inputs.mask_label)
                spacing = image.spacing or (1.0, 1.0)
                out.append((f"{case_id}/{region}", image.array, mask, tuple(spacing)))
                if len(out) == n:
                    return out
    return out


@contextmanager
def timed(extractors: list[Any], clock: collections.Counter) -> Iterator[None]:
    """Add each stage's CPU seconds to ``clock`` while inside (instance and module attributes restored)."""
    saved: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, stage: Callable[..., str]) -> None:
        original = getattr(owner, name)

        def timed_call(*args: Any, **kwargs: Any) -> Any:
            started = time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                clock[stage(*args, **kwargs)] += time.process_time() - started

        saved.append((owner, name, original))
        setattr(owner, name, timed_call)

    def feature_stage(image: Any, mask: Any, name: str, **kwargs: Any) -> str:
        if name == "original":
            return "features: original"
        return "features: 4 z-high wavelets" if name.endswith("H") else "features: 4 z-low wavelets"

    for extractor in extractors:
        wrap(extractor, "computeShape", lambda *a, **k: "3D shape")
        wrap(extractor, "computeFeatures", feature_stage)
    wrap(imageoperations, "_swt3", lambda *a, **k: "wavelet transform")
    try:
        yield
    finally:
        for owner, name, original in reversed(saved):
            setattr(owner, name, original)


def before_extractor() -> HandcraftedExtractor:
    """The extractor as it was before issue 18: every feature, pyradiomics' own 3D shape class."""
    extractor = HandcraftedExtractor("paper", normalize=True, full_table=True)
    for inner in {id(e): e for e in (extractor._extractor, extractor._crop_extractor)}.values():
        inner.computeShape = featureextractor.RadiomicsFeatureExtractor.computeShape.__get__(inner)
    return extractor


def check_equal(ours: dict[str, float], reference: dict[str, float], label: str) -> float:
    worst = 0.0
    for name, value in ours.items():
        expected = reference[name]
        if np.isnan(expected) and np.isnan(value):
            continue
        rel = abs(value - expected) / max(abs(expected), 1e-300)
        limit = 1e-10 if name.startswith("original_shape_") and name.split("_")[-1] in MESH else 1e-12
        if rel > limit and abs(value - expected) > 0:
            raise SystemExit(f"{label}: {name} differs: {value!r} vs {expected!r}")
        worst = max(worst, rel)
    return worst


def run(rois: list, label: str) -> dict[str, Any]:
    variants = {
        "before": before_extractor(),
        "after, full table": HandcraftedExtractor("paper", normalize=True, full_table=True),
        "after": HandcraftedExtractor("paper", normalize=True),
    }
    for extractor in variants.values():
        extractor.feature_names()  # the one-time synthetic extraction, outside the timing
    clocks = {name: collections.Counter() for name in variants}
    worst = 0.0
    pixels = []
    order = list(variants)
    for k, (name_roi, image, mask, spacing) in enumerate(rois):
        pixels.append(int(mask.sum()))
        values = {}
        for name in order[k % 3 :] + order[: k % 3]:  # each variant goes first as often
            extractor = variants[name]
            inner = list({id(e): e for e in (extractor._extractor, extractor._crop_extractor)}.values())
            clock = clocks[name]
            with timed(inner, clock):
                started = time.process_time()
                values[name] = extractor.extract(image, mask, spacing)
                clock["total"] += time.process_time() - started
        worst = max(worst, check_equal(values["after, full table"], values["before"], name_roi))
        worst = max(worst, check_equal(values["after"], values["before"], name_roi))
        assert (
            len(values["before"]) == len(values["after, full table"]) == 851 and len(values["after"]) == 479
        )
    n = len(rois)
    print(
        f"\n{label}: {n} ROIs, median {int(np.median(pixels))} ROI pixels (range {min(pixels)}-{max(pixels)}); "
        f"largest relative difference from before: {worst:.1e}"
    )
    header = "| stage | " + " | ".join(f"{v} (CPU s/ROI)" for v in variants) + " | after / before |"
    print(header)
    print("|---|" + "---:|" * (len(variants) + 1))
    for stage in STAGES + ["total"]:
        per = {}
        for name, clock in clocks.items():
            if stage == "rest":
                per[name] = (clock["total"] - sum(clock[s] for s in STAGES[:-1])) / n
            else:
                per[name] = clock[stage] / n
        ratio = per["after"] / per["before"] if per["before"] > 0 else float("nan")
        cells = " | ".join(f"{per[v]:.4f}" for v in variants)
        bold = "**" if stage == "total" else ""
        print(f"| {bold}{stage}{bold} | {cells} | {bold}{ratio:.3f}{bold} |")
    totals = {name: clock["total"] / n for name, clock in clocks.items()}
    print(
        f"speed-up (CPU): full table {totals['before'] / totals['after, full table']:.2f}x, "
        f"default table {totals['before'] / totals['after']:.2f}x"
    )
    return totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busbra", type=int, default=30, help="BUS-BRA ROIs (0: none)")
    parser.add_argument("--synthetic", type=int, default=30, help="synthetic demo ROIs (0: none)")
    args = parser.parse_args(argv)
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    logging.getLogger("ALNMPredictorLib.handcrafted").setLevel(logging.ERROR)  # the one-time notes
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, pyradiomics {radiomics.__version__}, "
        f"SimpleITK {sitk.Version_VersionString()}, {os.cpu_count()} CPUs; load average {os.getloadavg()}"
    )
    started = time.perf_counter()
    if args.busbra:
        if not BUSBRA.is_dir():
            print(f"BUS-BRA not found at {BUSBRA}", file=sys.stderr)
            return 2
        run(busbra_rois(args.busbra), "BUS-BRA tumours")
    if args.synthetic:
        run(synthetic_rois(args.synthetic), "synthetic demo ROIs (tumour and LN)")
    print(f"\nwall {time.perf_counter() - started:.0f} s; load average after {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
