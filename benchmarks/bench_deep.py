"""Benchmark VGG19 deep features on the CPU.

1. Extraction overhead: ``DeepFeatureExtractor.transform`` against a bare torchvision forward of the
   same 224x224 crops at the batch size the library uses for features (1: every crop on its own, so a
   case's features never depend on the other cases). Pipelines, interleaved in one run, best of
   ``--repeats`` (wall and CPU time):
   - ``ours_crops``: ``transform`` of the ready crops (trunk + pooling + 128-unit head, row by row);
   - ``ours_pairs``: ``transform`` of the (image, mask) pairs (crop + resize + the above);
   - ``bare_features``: ``torchvision.models.vgg19(weights=None).features`` with the same weights, plus
     the mean pooling (the network the features need);
   - ``bare_vgg19``: the whole ``vgg19`` (its 120 M-parameter classifier included), for reference.
   The criterion is ``ours_crops / bare_features``.
2. Training: time of ``fit`` (frozen default: trunk cached for the crop and ``n_views`` augmented
   views, then the head trains with early stopping) on a synthetic 421-patient training set.

Synthetic images (the timings do not depend on content). Backbone: ImageNet weights if present,
else random weights (``none``), which cost the same. Run: ``python benchmarks/bench_deep.py``
(``--skip-training`` for the extraction part alone; ``--threads 2`` pins torch to two threads).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

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


def cpu_model() -> str:
    """The CPU's model name as lscpu shows it (``/proc/cpuinfo``), else ``platform``'s guess."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """What the timings ran on and under: CPU, cores, torch threads, load average (1, 5, 15 min)."""
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def pick_weights() -> str:
    from ALNMPredictorLib.deep import find_imagenet_weights

    try:
        find_imagenet_weights()
        return "imagenet"
    except Exception:  # absent here: random weights have the same cost
        return "none"


def _timed(run) -> tuple[float, float]:
    """(wall, CPU) seconds of one call; CPU time counts every thread of this process."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_extraction(args: argparse.Namespace, weights: str) -> dict:
    import torchvision

    from ALNMPredictorLib.deep import DeepFeatureExtractor

    rng = np.random.default_rng(0)
    pairs, labels = synthetic_pairs(args.n_extract, rng)
    extractor = DeepFeatureExtractor(weights=weights, device="cpu", n_views=0, epochs=5)
    trunk = extractor.trunk_features(pairs)  # also warms up the convolutions
    extractor.fit(pairs, labels, trunk=trunk)
    crops = extractor._as_crops(pairs)
    tensors = torch.from_numpy(crops)
    features = torchvision.models.vgg19(weights=None).features.eval()
    features.load_state_dict(extractor.current_trunk().state_dict())
    full = torchvision.models.vgg19(weights=None).eval()

    def bare(network: torch.nn.Module, pool: bool) -> None:
        with torch.inference_mode():
            for i in range(len(tensors)):
                out = network(tensors[i : i + 1])
                if pool:
                    out.mean(dim=(2, 3))

    runs = {
        "ours_crops": lambda: extractor.transform(crops),
        "ours_pairs": lambda: extractor.transform(pairs),
        "bare_features": lambda: bare(features, True),
        "bare_vgg19": lambda: bare(full, False),
    }
    first = {name: _timed(run) for name, run in runs.items()}  # warm-up, kept for the record
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            w, c = _timed(run)
            wall[name].append(w)
            cpu[name].append(c)
    assert np.array_equal(extractor.transform(crops), extractor.transform(pairs))
    best = {name: min(t) for name, t in wall.items()}
    best_cpu = {name: min(t) for name, t in cpu.items()}
    return {
        "crops": len(crops),
        "batch_size": 1,
        "best_wall_s": {k: round(v, 2) for k, v in best.items()},
        "best_cpu_s": {k: round(v, 2) for k, v in best_cpu.items()},
        "per_crop_ms": {k: round(1000 * v / len(crops), 1) for k, v in best.items()},
        "ratio_wall": {k: round(best[k] / best["bare_features"], 3) for k in runs},
        "ratio_cpu": {k: round(best_cpu[k] / best_cpu["bare_features"], 3) for k in runs},
        "warm_up_wall_s": {k: round(v[0], 2) for k, v in first.items()},
        "runs_wall_s": {k: [round(x, 2) for x in v] for k, v in wall.items()},
        "runs_cpu_s": {k: [round(x, 2) for x in v] for k, v in cpu.items()},
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
    parser.add_argument("--n-extract", type=int, default=32, help="images for the extraction benchmark")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n-train", type=int, default=421, help="training patients (the study's 421)")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    weights = pick_weights()
    result = {"machine_start": machine(), "weights": weights, "extraction": bench_extraction(args, weights)}
    if not args.skip_training:
        result["training"] = bench_training(args, weights)
    result["machine_end"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
