"""Benchmark VGG19 deep features on the CPU.

1. Extraction: images/s of ``DeepFeatureExtractor.transform`` on (image, mask) pairs (crop + trunk +
   head) against a bare torchvision ``vgg19`` forward of ready 224×224 tensors at the same batch size,
   in one run, interleaved, best of ``--repeats``.
2. Training: time of ``fit`` (frozen default: trunk cached for the crop and ``n_views`` augmented
   views, then the head trains with early stopping) on a synthetic 421-patient training set.

Synthetic images (the timings do not depend on content). Backbone: ImageNet weights if present,
else random weights (``none``), which cost the same. Run: ``python benchmarks/bench_deep.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings

import numpy as np
import torch


def synthetic_pairs(n: int, rng: np.random.Generator, shape=(360, 480)) -> tuple[list, np.ndarray]:
    """Noisy grey images with an elliptical ROI, brighter for label 1."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    pairs, labels = [], []
    for i in range(n):
        label = int(i % 3 == 0)
        img = rng.normal(90, 25, shape).clip(0, 255)
        cy, cx = rng.uniform(0.3, 0.7) * shape[0], rng.uniform(0.3, 0.7) * shape[1]
        ry, rx = rng.uniform(30, 80), rng.uniform(40, 110)
        mask = (((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1).astype(np.uint8)
        img[mask > 0] -= 40 - 25 * label
        pairs.append((img.clip(0, 255).astype(np.uint8), mask))
        labels.append(label)
    return pairs, np.array(labels)


def pick_weights() -> str:
    from ALNMPredictorLib.deep import find_imagenet_weights

    try:
        find_imagenet_weights()
        return "imagenet"
    except Exception:  # absent here: random weights have the same cost
        return "none"


def bench_extraction(args: argparse.Namespace, weights: str) -> dict:
    import torchvision

    from ALNMPredictorLib.deep import DeepFeatureExtractor

    rng = np.random.default_rng(0)
    pairs, labels = synthetic_pairs(args.n_extract, rng)
    extractor = DeepFeatureExtractor(weights=weights, batch_size=args.batch_size, device="cpu", n_views=0, epochs=5)
    trunk = extractor.trunk_features(pairs)  # also warms up the convolutions
    extractor.fit(pairs, labels, trunk=trunk)

    bare = torchvision.models.vgg19(weights=None).eval()
    tensors = torch.randn(args.n_extract, 3, 224, 224)

    def run_bare() -> None:
        with torch.inference_mode():
            for s in range(0, len(tensors), args.batch_size):
                bare(tensors[s : s + args.batch_size])

    run_bare()  # warm-up
    ours, theirs = [], []
    for _ in range(args.repeats):
        start = time.perf_counter()
        features = extractor.transform(pairs)
        ours.append(time.perf_counter() - start)
        start = time.perf_counter()
        run_bare()
        theirs.append(time.perf_counter() - start)
    assert features.shape == (args.n_extract, 128)
    ours_ips = args.n_extract / min(ours)
    bare_ips = args.n_extract / min(theirs)
    return {
        "images": args.n_extract,
        "batch_size": args.batch_size,
        "deep_features_images_per_s": round(ours_ips, 3),
        "bare_vgg19_images_per_s": round(bare_ips, 3),
        "ratio_ours_over_bare": round(ours_ips / bare_ips, 3),
        "runs_s": {"ours": [round(t, 2) for t in ours], "bare": [round(t, 2) for t in theirs]},
    }


def bench_training(args: argparse.Namespace, weights: str) -> dict:
    from ALNMPredictorLib.deep import DeepFeatureExtractor

    rng = np.random.default_rng(1)
    pairs, labels = synthetic_pairs(args.n_train, rng)
    extractor = DeepFeatureExtractor(weights=weights, device="cpu")  # the frozen default settings
    _ = extractor.backbone_info  # load the backbone outside the timing
    start = time.perf_counter()
    extractor.fit(pairs, labels)
    total = time.perf_counter() - start
    return {
        "patients": args.n_train,
        "fit_total_s": round(total, 1),
        "trunk_caching_s": round(extractor.timings_["trunk_s"], 1),
        "head_training_s": round(extractor.timings_["head_s"], 2),
        "trunk_passes": extractor.training_summary_["n_cases"]
        + extractor.training_summary_["n_train"] * extractor.n_views,
        "summary": extractor.training_summary_,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-extract", type=int, default=64, help="images for the extraction benchmark")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n-train", type=int, default=421, help="training patients (the study's 421)")
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    weights = pick_weights()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, no GPU",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "weights": weights,
        "load_average_start": os.getloadavg(),
        "extraction": bench_extraction(args, weights),
    }
    if not args.skip_training:
        result["training"] = bench_training(args, weights)
    result["load_average_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
