"""Make the README's Grad-CAM figure from SYNTHETIC data: ``docs/heatmap.png``.

A SYNTHETIC cohort (``ALNMPredictorLib.synth``) is written to a temporary folder; a tumour deep head is
trained on its training split's 224 px crops (zscore intensities, as ``alnm train`` does by default) on
the VGG19 backbone available here: torchvision's ImageNet weights when they are on this computer
(``--weights imagenet``), else a random backbone (``--weights none``, the default, which the figure says).
Two test cases the head calls right with the most confidence, one with metastasis and one without, are
shown with their Grad-CAM of the head's ALNM logit. No patient image is used.

    python docs/make_heatmap_figure.py [--out docs/heatmap.png] [--weights none|imagenet]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "docs" / "heatmap.png"))
    parser.add_argument("--weights", choices=("none", "imagenet"), default="none")
    parser.add_argument("--patients", type=int, default=60)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "ALNMPredictor"))
    warnings.simplefilter("ignore")
    import matplotlib
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from ALNMPredictorLib import SYNTHETIC_LABEL
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.deep import DeepFeatureExtractor, crop_roi
    from ALNMPredictorLib.extraction import deep_input
    from ALNMPredictorLib.fileio import write_bytes
    from ALNMPredictorLib.gradcam import image_heatmaps, overlay_rgb
    from ALNMPredictorLib.plots import FIGURE_STYLE, figure_bytes
    from ALNMPredictorLib.synth import synth_cohort

    with tempfile.TemporaryDirectory() as tmp:
        cohort = load_manifest(
            synth_cohort(Path(tmp) / "cohort", n_patients=args.patients, seed=0).manifest_path
        )
        head = DeepFeatureExtractor(
            weights=args.weights, intensity="zscore", epochs=30, n_views=0, device="cpu", seed=0
        )
        labels = cohort.labels()
        arrays = {c: deep_input(cohort.region_inputs(c, "tumor")) for c in cohort.case_ids()}
        train = [c for c in cohort.case_ids(cohort.train_split) if not np.isnan(labels[c])]
        crops = np.stack(
            [crop_roi(*arrays[c], head.margin, head.input_size, intensity="zscore") for c in train]
        )
        head.fit(crops, np.array([int(labels[c]) for c in train]))
        tests = [c for c in cohort.case_ids() if c not in set(train) and not np.isnan(labels[c])]
        probs = head.predict_proba([arrays[c] for c in tests])
        positive = max((p, c) for p, c in zip(probs, tests, strict=True) if labels[c] == 1)[1]
        negative = min((p, c) for p, c in zip(probs, tests, strict=True) if labels[c] == 0)[1]
        maps = {
            c: image_heatmaps(head, *arrays[c], region="tumor", case_id=c)["head"]
            for c in (positive, negative)
        }
    backbone = (
        "ImageNet VGG19" if args.weights == "imagenet" else "RANDOM VGG19 backbone (no ImageNet weights here)"
    )
    with matplotlib.rc_context(FIGURE_STYLE):
        fig = Figure(figsize=(7.6, 4.0))
        for i, (case, heatmap) in enumerate(maps.items()):
            ax = fig.add_axes((0.01 + 0.45 * i, 0.1, 0.43, 0.7))
            ax.imshow(overlay_rgb(heatmap), interpolation="nearest")
            ax.contour(heatmap.roi.astype(float), levels=[0.5], colors="white", linewidths=0.9)
            ax.set_axis_off()
            truth = "metastasis" if labels[case] == 1 else "no metastasis"
            ax.set_title(
                f"test case {case} ({truth}): head p = {1 / (1 + np.exp(-heatmap.value)):.2f}", fontsize=9
            )
        bar = fig.colorbar(
            ScalarMappable(Normalize(0.0, 1.0), "jet"), cax=fig.add_axes((0.92, 0.14, 0.02, 0.62))
        )
        bar.set_label("Grad-CAM, share of the map's maximum", fontsize=8)
        bar.ax.tick_params(labelsize=7)
        fig.text(
            0.01,
            0.97,
            "Grad-CAM of the tumour deep head's ALNM logit on the ROI crop (white: the ROI)",
            fontsize=10,
            va="top",
        )
        fig.text(
            0.01,
            0.905,
            f"{backbone}; head trained on the training split of a {args.patients}-patient cohort",
            fontsize=8,
            va="top",
            color="#444444",
        )
        fig.text(0.01, 0.02, SYNTHETIC_LABEL, fontsize=8, color="#B00000")
    out = write_bytes(Path(args.out), figure_bytes(fig, "png", dpi=100))
    print(f"{out} ({out.stat().st_size // 1024} KB): {', '.join(maps)}")


if __name__ == "__main__":
    main()
