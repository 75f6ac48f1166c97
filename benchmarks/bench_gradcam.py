"""Benchmark Grad-CAM (``gradcam.py``) on the CPU, and compare it with pytorch-grad-cam and captum.

1. One case, two regions, as the Slicer panel and ``alnm predict --heatmaps`` compute it
   (:func:`ALNMPredictorLib.casepredict.case_heatmaps`: grey conversion, crop, one trunk pass per region,
   the ``head`` and ``score`` targets from one pass through the layers after ``features.35``). Interleaved
   in the same run with a bare torchvision VGG19 ``features`` forward of one 224x224 crop (batch 1), so
   the cost is also given in bare forward passes, which load slows down alike. Median of ``--repeats``
   after a warm-up call, wall and CPU time; then writing the four PNGs (matplotlib) apart.
2. ``--libraries`` (needs ``captum`` and ``pytorch_grad_cam`` importable, e.g. installed with
   ``pip install --target DIR captum grad-cam`` and ``PYTHONPATH=DIR``; neither is a dependency): the same
   two targets of one crop through ``pytorch_grad_cam.GradCAM`` and ``captum.attr.LayerGradCam`` at
   ``features.35``: time per crop and agreement with our maps (Spearman rank correlation over the
   14x14 positions of ReLU(map), and the largest difference of the maps scaled to their maximum).

Synthetic 8-bit images (content does not change the cost). Backbone: random weights (``none``), the same
19.6 GFLOPs per 224x224 image as ImageNet weights. Run: ``python benchmarks/bench_gradcam.py``
(``--threads 2`` pins torch to two threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_deep import machine, synthetic_pairs  # noqa: E402


def _extractor(seed: int):
    from ALNMPredictorLib.deep import DeepFeatureExtractor

    pairs, labels = synthetic_pairs(8, np.random.default_rng(seed))
    extractor = DeepFeatureExtractor(weights="none", device="cpu", n_views=0, epochs=3, val_fraction=0.0)
    crops = extractor._as_crops(pairs)
    extractor.fit(crops, labels)
    return extractor, crops


def _score(region: str, extractor, crops) -> object:
    """A RegionScore keeping three deep features (the ``score`` target's cost does not depend on which)."""
    from ALNMPredictorLib.selection import RegionScore

    feats = extractor.transform(crops)
    picks = [int(j) for j in np.flatnonzero(feats.std(axis=0) > 0)[:3]]
    names = [f"{region}_deep_{j:03d}" for j in picks]
    return RegionScore.from_dict(
        {
            "kind": "ALNMPredictor.RegionScore",
            "version": 2,
            "params": {"region": region},
            "selected": names,
            "intercept": 0.0,
            "coefficients": [0.5, -0.3, 0.2][: len(picks)],
            "means": [float(feats[:, j].mean()) for j in picks],
            "sds": [float(feats[:, j].std()) for j in picks],
            "mins": [float(feats[:, j].min()) for j in picks],
            "maxs": [float(feats[:, j].max()) for j in picks],
            "lambda": 0.01,
        }
    )


def _timed(run) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def bench_case(args: argparse.Namespace) -> tuple[dict, object, dict]:
    import torchvision

    from ALNMPredictorLib.casepredict import RegionArrays, case_heatmaps
    from ALNMPredictorLib.gradcam import save_heatmap

    models, scores = {}, {}
    for seed, region in enumerate(("tumor", "ln")):
        models[region], crops = _extractor(seed + 1)
        scores[region] = _score(region, models[region], crops)
    loaded = SimpleNamespace(deep_models=models, model=SimpleNamespace(region_scores_=scores))
    case = {
        r: RegionArrays(*synthetic_pairs(1, np.random.default_rng(10 + i))[0][0])
        for i, r in enumerate(models)
    }
    features = torchvision.models.vgg19(weights=None).features.eval()
    crop = torch.from_numpy(crops[:1])

    def bare() -> None:
        with torch.inference_mode():
            features(crop).mean(dim=(2, 3))

    first = _timed(lambda: case_heatmaps(loaded, case, "P1"))[0]
    _timed(bare)
    maps = case_heatmaps(loaded, case, "P1")
    assert sorted((r, t) for r, m in maps.items() for t in m) == [
        ("ln", "head"),
        ("ln", "score"),
        ("tumor", "head"),
        ("tumor", "score"),
    ]
    runs: dict[str, dict[str, list[float]]] = {
        "case": {"wall": [], "cpu": []},
        "bare": {"wall": [], "cpu": []},
    }
    for _ in range(args.repeats):
        for name, run in (("case", lambda: case_heatmaps(loaded, case, "P1")), ("bare", bare)):
            wall, cpu = _timed(run)
            runs[name]["wall"].append(wall)
            runs[name]["cpu"].append(cpu)
    png = []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeats):
            start = time.perf_counter()
            for region, targets in maps.items():
                for target, heatmap in targets.items():
                    save_heatmap(heatmap, Path(folder) / f"{region}_{target}.png")
            png.append(time.perf_counter() - start)
    case_wall, bare_wall = _median(runs["case"]["wall"]), _median(runs["bare"]["wall"])
    result = {
        "regions": 2,
        "targets_per_region": 2,
        "first_call_s": round(first, 3),
        "case_median_wall_s": case_wall,
        "case_median_cpu_s": _median(runs["case"]["cpu"]),
        "bare_forward_median_wall_s": bare_wall,
        "bare_forward_median_cpu_s": _median(runs["bare"]["cpu"]),
        "case_in_bare_forwards": round(case_wall / bare_wall, 2),
        "runs": {k: {t: [round(x, 3) for x in v] for t, v in d.items()} for k, d in runs.items()},
        "png_4_files_median_s": _median(png),
    }
    return result, models["tumor"], {"score": scores["tumor"], "crop": crops[0]}


class _Targets(torch.nn.Module):
    """Trunk → pooling → head, giving (N, 2): the head's ALNM logit and the region score's deep part."""

    def __init__(self, extractor, terms) -> None:
        super().__init__()
        self.trunk, self.head, self.pool, self.terms = (
            extractor.current_trunk(),
            extractor.head_,
            extractor.pool,
            terms,
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from ALNMPredictorLib.deep import pool_trunk

        features = self.head.features(pool_trunk(self.trunk(x), self.pool))
        logits = self.head.classifier(features)
        score = torch.stack([self.terms.value(row) for row in features])
        return torch.stack([logits[:, 1] - logits[:, 0], score], dim=1)


def compare_libraries(args: argparse.Namespace, extractor, extra: dict) -> dict:
    from captum.attr import LayerAttribution, LayerGradCam
    from pytorch_grad_cam import GradCAM

    from ALNMPredictorLib.deep import LAST_CONV_RELU
    from ALNMPredictorLib.gradcam import _spearman, crop_heatmaps, score_terms

    terms = score_terms(extra["score"], "tumor", extractor)
    model = _Targets(extractor, terms).eval()
    layer = model.trunk[LAST_CONV_RELU]
    crop = extra["crop"]
    x = torch.from_numpy(crop[None])

    def ours() -> dict[str, np.ndarray]:
        maps = crop_heatmaps(extractor, crop, region="tumor", score=extra["score"])
        return {t: m.signed for t, m in maps.items()}

    def with_pytorch_grad_cam() -> dict[str, np.ndarray]:
        out = {}
        with GradCAM(model=model, target_layers=[layer]) as cam:
            for i, target in enumerate(("head", "score")):
                out[target] = cam(input_tensor=x.clone().requires_grad_(True), targets=[lambda o, i=i: o[i]])[
                    0
                ]
        return out

    def with_captum() -> dict[str, np.ndarray]:
        gradcam = LayerGradCam(model, layer)
        out = {}
        for i, target in enumerate(("head", "score")):
            attr = gradcam.attribute(x.clone().requires_grad_(True), target=i, relu_attributions=False)
            out[target] = attr[0, 0].detach().numpy()
        return out

    runs = {"ours": ours, "pytorch_grad_cam": with_pytorch_grad_cam, "captum": with_captum}
    results = {name: run() for name, run in runs.items()}  # warm-up, and the maps compared
    times: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            wall, c = _timed(run)
            times[name].append(wall)
            cpu[name].append(c)

    agreement = {}
    for target, signed in results["ours"].items():
        theirs = results["captum"][target]
        relu = torch.from_numpy(np.maximum(signed, 0))[None, None]
        up = LayerAttribution.interpolate(relu, (224, 224), "bilinear")[0, 0].numpy()
        agreement[target] = {  # captum: the signed map; pytorch-grad-cam gives only ReLU, min-max scaled
            "captum_signed_spearman_14x14": round(_spearman(signed, theirs), 4),
            "captum_signed_max_abs_diff_over_max_abs": float(
                np.abs(signed - theirs).max() / np.abs(signed).max()
            ),
            "pytorch_grad_cam_relu_spearman_224": round(
                _spearman(up, results["pytorch_grad_cam"][target]), 4
            ),
            "relu_map_all_zero": bool(up.max() == 0),
        }
    return {
        "targets": ["head", "score"],
        "median_wall_s": {k: _median(v) for k, v in times.items()},
        "median_cpu_s": {k: _median(v) for k, v in cpu.items()},
        "agreement_with_ours": agreement,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--libraries", action="store_true", help="compare with pytorch-grad-cam and captum")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict = {"machine_start": machine()}
    result["case"], extractor, extra = bench_case(args)
    if args.libraries:
        result["libraries"] = compare_libraries(args, extractor, extra)
    result["machine_end"] = machine()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
