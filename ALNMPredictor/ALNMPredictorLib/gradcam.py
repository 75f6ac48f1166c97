"""Grad-CAM heatmaps of the deep features on each region's ROI crop (Selvaraju et al., ICCV 2017).

Two targets per case and region:

- ``head``: the region's deep head's ALNM logit, log(p / (1 − p)) = logit₁ − logit₀ of its two outputs
  (p is :meth:`~ALNMPredictorLib.deep.DeepFeatureExtractor.predict_proba`).
- ``score``: the deep part of the region score, Σⱼ βⱼ (clip(xⱼ) − meanⱼ) / sdⱼ over the deep features
  the LASSO kept (the score is linear in the standardised features, so its gradient is well defined;
  a feature clipped to its training range does not move the score and adds no gradient). Only when
  the score kept deep features; handcrafted terms do not depend on the crop's pixels through the CNN.

How: the trunk is split after its last convolutional block (``features.35``: 512 maps of 14 × 14 for a
224 crop). The first part runs without gradients; its output A becomes a leaf, and only the rest (last
max-pool, pooling, head, score) is differentiated, once per target. Channel weights αₖ are the mean of
∂target/∂Aₖ over positions; the map is ReLU(Σₖ αₖ Aₖ), upsampled bilinearly to the crop. One crop per
call, like the features: a case's map does not depend on the other cases.

Why no library (measured in BENCHMARKS.md, "Grad-CAM"): ``pytorch-grad-cam`` (PyPI ``grad-cam``, an
sdist) pulls in OpenCV (a 64 MB wheel) and ttach and returns only ReLU'd, min–max-scaled maps; ``captum``
(a 0.46 MB wheel, torch ≥ 2.3) gives exactly these signed maps but needs a forward function per target.
With the frozen trunk both run the whole network forward and backward per target (1.8x and 3.3x this
module's CPU time for the two targets of one crop). The split here is about 100 lines, computes both
targets from one forward pass, and keeps the signed map that the sanity check needs.

Sanity check (Adebayo et al., "Sanity checks for saliency maps", NeurIPS 2018): :func:`sanity_check`
re-draws the head's weights at random and reports the Spearman rank correlation between the maps of the
trained and of the randomised head. A map that explains what the head learned must change.
"""

from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ALNMPredictorLib.deep import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    LAST_CONV_RELU,
    DeepFeatureExtractor,
    DeepHead,
    crop_box,
    crop_roi,
    pool_trunk,
)
from ALNMPredictorLib.errors import ALNMError, InputError

#: target name → what the heatmap explains
TARGETS = {
    "head": "deep head's ALNM logit",
    "score": "deep part of the region score",
}
#: heatmap categories of the report's gallery, in display order
CATEGORIES = ("true positive", "false negative", "false positive", "true negative")


# --------------------------------------------------------------------------------------------------
# Targets


@dataclass(frozen=True)
class ScoreTerms:
    """The deep features a region score kept: positions in the head's 128 outputs, LASSO coefficients,
    training means and SDs, and the training range they are clipped to (None when the score does not clip)."""

    names: tuple[str, ...]
    index: tuple[int, ...]
    coef: tuple[float, ...]
    mean: tuple[float, ...]
    sd: tuple[float, ...]
    lower: tuple[float, ...] | None
    upper: tuple[float, ...] | None

    def value(self, features: torch.Tensor) -> torch.Tensor:
        """Σ βⱼ (clip(xⱼ) − meanⱼ) / sdⱼ of one case's deep features (a 1-D tensor of the head's outputs)."""
        x = features[list(self.index)]
        tensor = lambda v: torch.tensor(v, dtype=x.dtype, device=x.device)  # noqa: E731
        if self.lower is not None and self.upper is not None:
            x = torch.clamp(x, tensor(self.lower), tensor(self.upper))
        return ((x - tensor(self.mean)) / tensor(self.sd) * tensor(self.coef)).sum()


def score_terms(score: Any, region: str, extractor: DeepFeatureExtractor) -> ScoreTerms | None:
    """The deep terms of a fitted :class:`~ALNMPredictorLib.selection.RegionScore`; None if it kept none."""
    if score is None or not hasattr(score, "selected_"):
        return None
    position = {name: i for i, name in enumerate(extractor.feature_names(prefix=region))}
    names = [str(f) for f in score.selected_ if str(f) in position]
    if not names:
        return None
    clips = bool(getattr(score, "clip", False)) and getattr(score, "lower_", None) is not None
    return ScoreTerms(
        names=tuple(names),
        index=tuple(position[n] for n in names),
        coef=tuple(float(score.coef_[n]) for n in names),
        mean=tuple(float(score.means_[n]) for n in names),
        sd=tuple(float(score.sds_[n]) for n in names),
        lower=tuple(float(score.lower_[n]) for n in names) if clips else None,
        upper=tuple(float(score.upper_[n]) for n in names) if clips else None,
    )


# --------------------------------------------------------------------------------------------------
# Maps


@dataclass(frozen=True)
class Heatmap:
    """One Grad-CAM map: ``signed`` is Σₖ αₖ Aₖ at the last convolutional layer's resolution (before ReLU),
    ``value`` the target's value, ``crop`` the (3, S, S) network input, ``box`` where the crop was cut from
    an image of ``image_shape`` (row0, row1, col0, col1), ``roi`` the ROI on the crop's grid."""

    case_id: str
    region: str
    target: str
    value: float
    signed: np.ndarray
    crop: np.ndarray
    box: tuple[int, int, int, int] | None = None
    image_shape: tuple[int, int] | None = None
    roi: np.ndarray | None = field(default=None, repr=False)

    @property
    def cam(self) -> np.ndarray:
        """ReLU(signed) upsampled bilinearly to the crop (S, S): Grad-CAM in the target's units."""
        size = self.crop.shape[-2:]
        positive = torch.from_numpy(np.maximum(self.signed, 0.0).astype(np.float32))[None, None]
        return F.interpolate(positive, size=size, mode="bilinear", align_corners=False)[0, 0].numpy()

    def relative(self) -> np.ndarray:
        """:attr:`cam` as a share of its maximum (0–1); all zeros when no position raises the target."""
        cam = self.cam
        top = float(cam.max())
        return cam / top if top > 0 else np.zeros_like(cam)

    def on_image(self) -> np.ndarray:
        """:meth:`relative` put back on the whole image's grid (rows, cols): resampled into the crop's box,
        0 elsewhere. Needs ``box`` and ``image_shape``."""
        if self.box is None or self.image_shape is None:
            raise ALNMError("this heatmap was computed on a bare crop: no image geometry to map it back to")
        r0, r1, c0, c1 = self.box
        out = np.zeros(self.image_shape, dtype=np.float32)
        rel = torch.from_numpy(self.relative())[None, None]
        out[r0:r1, c0:c1] = F.interpolate(rel, size=(r1 - r0, c1 - c0), mode="bilinear", align_corners=False)[
            0, 0
        ]
        return np.clip(out, 0.0, 1.0)

    def title(self) -> str:
        """What the map shows and the target's value (the probability too for the head's logit)."""
        if self.target == "head":
            value = (
                f"{self.value:+.3f} (p = {1.0 / (1.0 + math.exp(-min(max(self.value, -700.0), 700.0))):.3f})"
            )
        else:
            value = f"{self.value:+.3f}"
        return f"case {self.case_id}, {self.region}: {TARGETS.get(self.target, self.target)} {value}"


def _activations(extractor: DeepFeatureExtractor, crop: np.ndarray, device: torch.device) -> torch.Tensor:
    """The last convolutional block's output A (1, 512, h, w) of one crop, without gradients."""
    trunk = extractor.current_trunk().to(device).eval()
    x = torch.as_tensor(np.asarray(crop, dtype=np.float32)[None]).to(device)
    with torch.no_grad():
        return trunk[: LAST_CONV_RELU + 1](x)


def _signed_maps(
    extractor: DeepFeatureExtractor, head: DeepHead, acts: torch.Tensor, terms: ScoreTerms | None
) -> dict[str, tuple[np.ndarray, float]]:
    """target → (Σₖ αₖ Aₖ, target value), every target from one pass through the layers after A."""
    leaf = acts.detach().clone().requires_grad_(True)
    tail = extractor.current_trunk()[LAST_CONV_RELU + 1 :]
    head = head.to(leaf.device).eval()
    out: dict[str, tuple[np.ndarray, float]] = {}
    with torch.enable_grad():
        features = head.features(pool_trunk(tail(leaf), extractor.pool))
        logits = head.classifier(head.dropout(features))
        targets = {"head": logits[0, 1] - logits[0, 0]}
        if terms is not None:
            targets["score"] = terms.value(features[0])
        for name, target in targets.items():
            (grad,) = torch.autograd.grad(target, leaf, retain_graph=True)
            alpha = grad.mean(dim=(2, 3), keepdim=True)
            signed = (alpha * leaf).sum(dim=1)[0]
            out[name] = (signed.detach().cpu().numpy().astype(np.float32), float(target.detach()))
    return out


def crop_heatmaps(
    extractor: DeepFeatureExtractor,
    crop: np.ndarray,
    *,
    region: str,
    score: Any = None,
    case_id: str = "case",
    box: tuple[int, int, int, int] | None = None,
    image_shape: tuple[int, int] | None = None,
    roi: np.ndarray | None = None,
) -> dict[str, Heatmap]:
    """Grad-CAM of one (3, S, S) crop: ``head`` always, ``score`` when ``score`` (the region's fitted
    RegionScore) kept deep features of ``region``."""
    extractor.fitted_head()
    crop = np.asarray(crop, dtype=np.float32)
    size = extractor.input_size
    if crop.shape != (3, size, size):
        raise ALNMError(f"crop must have shape (3, {size}, {size}), got {crop.shape}")
    device = extractor.compute_device()
    terms = score_terms(score, region, extractor)
    with extractor.session(device):
        acts = _activations(extractor, crop, device)
        maps = _signed_maps(extractor, extractor.fitted_head(), acts, terms)
    return {
        name: Heatmap(case_id, region, name, value, signed, crop, box, image_shape, roi)
        for name, (signed, value) in maps.items()
    }


def image_heatmaps(
    extractor: DeepFeatureExtractor,
    image: np.ndarray,
    mask: np.ndarray,
    *,
    region: str,
    score: Any = None,
    case_id: str = "case",
) -> dict[str, Heatmap]:
    """Grad-CAM of a region's image and ROI mask, on the crop the model's features come from
    (:func:`~ALNMPredictorLib.deep.crop_roi` with the model's margin, size and intensity mode)."""
    column = f"{region}_mask"
    crop = crop_roi(
        image,
        mask,
        extractor.margin,
        extractor.input_size,
        intensity=extractor.intensity,
        case=case_id,
        column=column,
    )
    roi_full = np.asarray(mask) != 0
    while roi_full.ndim > 2 and 1 in roi_full.shape:
        roi_full = roi_full.squeeze(axis=roi_full.shape.index(1))
    box = crop_box(roi_full, extractor.margin)
    r0, r1, c0, c1 = box
    part = torch.from_numpy(roi_full[r0:r1, c0:c1].astype(np.float32))[None, None]
    roi = F.interpolate(part, size=crop.shape[-2:], mode="nearest")[0, 0].numpy() > 0.5
    return crop_heatmaps(
        extractor,
        crop,
        region=region,
        score=score,
        case_id=case_id,
        box=box,
        image_shape=tuple(roi_full.shape),
        roi=roi,
    )  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Sanity check


def randomised_head(extractor: DeepFeatureExtractor, seed: int = 1) -> DeepHead:
    """A copy of the fitted head with its two layers re-drawn as PyTorch initialises them (seeded); the
    standardisation (training means and SDs of the trunk output) is kept, since it is not learned."""
    head = copy.deepcopy(extractor.fitted_head())
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        head.bottleneck.reset_parameters()
        head.classifier.reset_parameters()
    return head.eval()


@dataclass(frozen=True)
class SanityCheck:
    """Spearman rank correlation between the signed maps (before ReLU, at the layer's resolution) of the
    trained head and of randomised heads: ``spearman[i]`` is crop i's mean over the ``seeds`` (one
    randomised head each), ``mean`` the mean over the crops where both maps vary."""

    spearman: tuple[float, ...]
    mean: float
    seeds: tuple[int, ...]


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    a, b = np.ravel(a).astype(np.float64), np.ravel(b).astype(np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


#: randomisation seeds of the sanity check: one random head is a noisy draw, five average it out
SANITY_SEEDS = (1, 2, 3, 4, 5)


def sanity_check(
    extractor: DeepFeatureExtractor,
    crops: np.ndarray | Sequence[np.ndarray],
    seeds: Sequence[int] = SANITY_SEEDS,
) -> SanityCheck:
    """Adebayo et al.'s model-randomisation test of the ``head`` map on ``crops`` (see :class:`SanityCheck`)."""
    heads = [randomised_head(extractor, seed) for seed in seeds]
    device = extractor.compute_device()
    rhos = []
    with extractor.session(device):
        for crop in crops:
            acts = _activations(extractor, np.asarray(crop, dtype=np.float32), device)
            trained = _signed_maps(extractor, extractor.fitted_head(), acts, None)["head"][0]
            values = [
                _spearman(trained, _signed_maps(extractor, head, acts, None)["head"][0]) for head in heads
            ]
            finite = [v for v in values if math.isfinite(v)]
            rhos.append(float(np.mean(finite)) if finite else math.nan)
    finite = [r for r in rhos if math.isfinite(r)]
    return SanityCheck(
        tuple(rhos), float(np.mean(finite)) if finite else math.nan, tuple(int(s) for s in seeds)
    )


# --------------------------------------------------------------------------------------------------
# Figures and files


def overlay_rgb(heatmap: Heatmap, alpha: float = 0.45) -> np.ndarray:
    """The crop in grey with the relative map in jet blended over it: (S, S, 3) floats in 0–1."""
    from matplotlib import colormaps

    grey = np.clip(heatmap.crop[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0], 0.0, 1.0)
    colour = colormaps["jet"](heatmap.relative())[..., :3]
    return np.clip((1.0 - alpha) * grey[..., None] + alpha * colour, 0.0, 1.0)


def heatmap_figure(heatmap: Heatmap, *, synthetic: bool = False) -> Any:
    """The crop in grey with the heatmap over it (jet, 45 % opaque), the ROI outline and a colour bar."""
    import matplotlib
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    from ALNMPredictorLib.plots import FIGURE_STYLE, watermark

    with matplotlib.rc_context(FIGURE_STYLE):
        fig = Figure(figsize=(4.0, 3.75))
        ax = fig.add_axes((0.02, 0.05, 0.72, 0.77))
        ax.imshow(overlay_rgb(heatmap), interpolation="nearest")
        if heatmap.roi is not None and heatmap.roi.any() and not heatmap.roi.all():
            ax.contour(heatmap.roi.astype(float), levels=[0.5], colors="white", linewidths=0.9)
        ax.set_axis_off()
        fig.text(0.02, 0.985, heatmap.title(), fontsize=8.5, ha="left", va="top", wrap=True)
        bar_ax = fig.add_axes((0.78, 0.09, 0.04, 0.69))
        bar = fig.colorbar(ScalarMappable(Normalize(0.0, 1.0), "jet"), cax=bar_ax)
        bar.set_label("Grad-CAM, share of this map's maximum", fontsize=8.5)
        bar.ax.tick_params(labelsize=8)
        watermark(fig, synthetic)
    return fig


def save_heatmap(
    heatmap: Heatmap, path: str | os.PathLike[str], *, synthetic: bool = False, dpi: int = 90
) -> Path:
    """Write :func:`heatmap_figure` as a PNG (atomically)."""
    from ALNMPredictorLib.fileio import write_bytes
    from ALNMPredictorLib.plots import figure_bytes

    return Path(
        write_bytes(Path(path), figure_bytes(heatmap_figure(heatmap, synthetic=synthetic), "png", dpi=dpi))
    )


def file_name(case_id: str, region: str, target: str) -> str:
    """``<case>_<region>_<target>.png`` with characters unsafe in file names replaced."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{case_id}_{region}_{target}") + ".png"


# --------------------------------------------------------------------------------------------------
# Cohorts: alnm predict --heatmaps, the report's gallery


def _region_maps(
    cohort: Any, deep_models: Mapping[str, Any], scores: Mapping[str, Any], case_id: str, region: str
) -> dict[str, Any]:
    """The heatmaps of one case's region, cut from the crop the deep stage reads (InputError without one)."""
    from ALNMPredictorLib.extraction import deep_input

    inputs = cohort.region_inputs(case_id, region)
    if inputs is None:
        raise InputError("no image or mask for this region", case=case_id, column=f"{region}_image")
    image, mask = deep_input(inputs)
    return image_heatmaps(
        deep_models[region], image, mask, region=region, score=scores.get(region), case_id=case_id
    )


def cohort_heatmaps(
    cohort: Any,
    deep_models: Mapping[str, DeepFeatureExtractor],
    model: Any,
    case_ids: Sequence[str],
    out_dir: str | os.PathLike[str],
    *,
    synthetic: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Heatmap PNGs of every case and region (``head``, and ``score`` where it kept deep features) in
    ``out_dir``; returns one row per map: ``case_id region target value file error`` (a case whose image
    cannot be read gets one row per region with its error and no file; the others go on)."""

    out = Path(out_dir)
    scores = getattr(model, "region_scores_", {}) or {}
    rows: list[dict[str, Any]] = []
    jobs = [(c, r) for c in case_ids for r in deep_models if r in cohort.regions]
    for done, (case_id, region) in enumerate(jobs, start=1):
        try:
            maps = _region_maps(cohort, deep_models, scores, str(case_id), region)
            for name, heatmap in maps.items():
                path = save_heatmap(heatmap, out / file_name(str(case_id), region, name), synthetic=synthetic)
                rows.append(
                    {
                        "case_id": str(case_id),
                        "region": region,
                        "target": name,
                        "value": heatmap.value,
                        "file": path.name,
                        "error": "",
                    }
                )
        except ALNMError as exc:
            rows.append(
                {
                    "case_id": str(case_id),
                    "region": region,
                    "target": "",
                    "value": math.nan,
                    "file": "",
                    "error": str(exc),
                }
            )
        if progress is not None:
            progress(done, len(jobs))
    return pd.DataFrame(rows, columns=["case_id", "region", "target", "value", "file", "error"])


def gallery_cases(
    predictions: pd.DataFrame, train_split: str, per_category: int = 2, model: str = "clinical_radiomics"
) -> list[tuple[str, str, str]]:
    """(split, category, case_id) of a few true/false positives/negatives per test set: the combined model's
    risk group against the label; the most confident of each (highest probability for positive calls,
    lowest for negative ones), ties by case ID."""
    column = f"prob_{model}"
    need = {"split", "label", "status", "risk_group", column}
    if not need <= set(predictions.columns):
        return []
    rows = predictions[(predictions["status"] == "ok") & predictions["label"].notna()]
    out: list[tuple[str, str, str]] = []
    for split in dict.fromkeys(rows["split"].astype(str)):
        if split == train_split:
            continue
        part = rows[rows["split"].astype(str) == split]
        label = part["label"].astype(int)
        high = part["risk_group"].astype(str) == "high"
        groups = {
            "true positive": high & (label == 1),
            "false negative": ~high & (label == 1),
            "false positive": high & (label == 0),
            "true negative": ~high & (label == 0),
        }
        for category in CATEGORIES:
            chosen = part[groups[category]].assign(_id=lambda f: f.index.astype(str))
            descending = category in ("true positive", "false positive")
            chosen = chosen.sort_values([column, "_id"], ascending=[not descending, True])
            out += [(split, category, str(c)) for c in chosen["_id"].head(per_category)]
    return out


def report_gallery(
    cohort: Any,
    deep_models: Mapping[str, DeepFeatureExtractor],
    model: Any,
    predictions: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    synthetic: bool = False,
    per_category: int = 2,
    seeds: Sequence[int] = SANITY_SEEDS,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """The report's heatmap gallery: PNGs in ``out_dir`` for :func:`gallery_cases`, and the sanity check on
    the same crops. Returns ``{"items": [...], "sanity": {...}, "failed": [...]}`` for
    :func:`ALNMPredictorLib.report.write_report` (``meta["heatmaps"]``)."""

    chosen = gallery_cases(predictions, cohort.train_split, per_category)
    scores = getattr(model, "region_scores_", {}) or {}
    prob = predictions.get("prob_clinical_radiomics")
    items: list[dict[str, Any]] = []
    failed: list[str] = []
    crops: dict[str, list[np.ndarray]] = {r: [] for r in deep_models}
    jobs = [(s, c, case, r) for s, c, case in chosen for r in deep_models if r in cohort.regions]
    for done, (split, category, case_id, region) in enumerate(jobs, start=1):
        try:
            maps = _region_maps(cohort, deep_models, scores, case_id, region)
        except ALNMError as exc:
            failed.append(str(exc))
            continue
        crops[region].append(maps["head"].crop)
        for name, heatmap in maps.items():
            path = save_heatmap(
                heatmap, Path(out_dir) / file_name(case_id, region, name), synthetic=synthetic
            )
            items.append(
                {
                    "split": split,
                    "category": category,
                    "case_id": case_id,
                    "region": region,
                    "target": name,
                    "label": int(predictions.loc[case_id, "label"]),
                    "probability": None if prob is None else float(prob.loc[case_id]),
                    "value": heatmap.value,
                    "file": str(path),
                }
            )
        if progress is not None:
            progress(done, len(jobs))
    sanity: dict[str, Any] = {"seeds": list(seeds), "regions": {}}
    for region, region_crops in crops.items():
        if region_crops:
            check = sanity_check(deep_models[region], region_crops, seeds)
            sanity["regions"][region] = {
                "mean_spearman": check.mean,
                "n": len(region_crops),
                "spearman": list(check.spearman),
            }
    return {"items": items, "sanity": sanity, "failed": failed}
