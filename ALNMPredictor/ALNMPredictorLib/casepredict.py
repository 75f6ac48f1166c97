"""One case from in-memory arrays (the Slicer panel's path), with the same numbers as ``alnm predict``.

:func:`predict_case` takes each region's image, mask and pixel spacing as arrays (what a Slicer volume
and segment give), the clinical factors as a mapping, and a loaded model
(:func:`~ALNMPredictorLib.pipeline.load_model`). It computes the features exactly as the cohort
extraction does for files (:mod:`ALNMPredictorLib.extraction`: the same grey conversion, the same
handcrafted extractor with the parameters recorded in the model, the same deep crop, trunk batch and
head) and then runs :func:`~ALNMPredictorLib.pipeline.predict_cases`, the code behind ``alnm predict``.
A bad input (empty mask, mask of another size, missing clinical factor, unknown level) raises
:class:`~ALNMPredictorLib.errors.InputError` (a ``ValueError``) naming the case and the column.

The panel's other jobs live beside it: the clinical form (:mod:`~ALNMPredictorLib.clinicalform`), the
nomogram and calibration figures (:mod:`~ALNMPredictorLib.casefigures`), the SYNTHETIC demo model and
demo case (:mod:`~ALNMPredictorLib.demomodel`) and recording reads (:mod:`~ALNMPredictorLib.reader_study`).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib import SYNTHETIC_LABEL
from ALNMPredictorLib.clinicalform import clinical_fields, is_missing, parse_clinical
from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.modeling import score_column

__all__ = [
    "COMBINED",
    "CasePrediction",
    "RegionArrays",
    "case_heatmaps",
    "colour_conversion",
    "load_model_cached",
    "model_location",
    "predict_case",
    "region_features",
]

log = logging.getLogger(__name__)

COMBINED = "clinical_radiomics"


# --------------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class RegionArrays:
    """One region of one case: ``image`` (rows x cols, or (1, rows, cols), grey or RGB(A)), ``mask``
    (same grid, non-zero = ROI), ``spacing`` (row, col) in mm or None, ``source`` (a name for messages)."""

    image: Any
    mask: Any
    spacing: tuple[float, float] | None = None
    source: str | None = None


# --------------------------------------------------------------------------------------------------
# Features of one region


def _prepare_image(image: Any, case_id: str, column: str) -> tuple[np.ndarray, np.ndarray, str | None]:
    """(grey float64 for handcrafted features, the deep crop's input, the colour conversion or None),
    as ``load_image`` + extraction give them."""
    from ALNMPredictorLib.imaging import to_grey

    arr = np.asarray(image)
    if arr.dtype.kind not in "buif":
        raise InputError(f"image has unsupported pixel type {arr.dtype}", case=case_id, column=column)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 2:
        pixels = arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        pixels = arr if arr.shape[2] == 1 else arr[:, :, :3]
    else:
        raise InputError(
            f"a 2D grey or RGB image is needed, got an array of shape {np.shape(image)} "
            "(a 3D volume must have a single slice)",
            case=case_id,
            column=column,
        )
    if pixels.size == 0:
        raise InputError("image has no pixels", case=case_id, column=column)
    grey, conversion = to_grey(pixels)
    grey = np.ascontiguousarray(grey)
    if not np.isfinite(grey).all():
        raise InputError("image has NaN or infinite pixel values", case=case_id, column=column)
    deep_input = np.clip(np.rint(grey), 0, 255).astype(np.uint8) if arr.dtype == np.uint8 else grey
    return grey, deep_input, conversion


def _prepare_mask(mask: Any, shape: tuple[int, int], case_id: str, column: str) -> np.ndarray:
    arr = np.asarray(mask)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.shape != tuple(shape):
        raise InputError(
            f"mask size {arr.shape} differs from image size {tuple(shape)}", case=case_id, column=column
        )
    roi = np.ascontiguousarray(arr != 0)
    if not roi.any():
        raise InputError("mask is empty (no pixel inside the region)", case=case_id, column=column)
    return roi


def _spacing(spacing: Any, case_id: str, column: str) -> tuple[float, float] | None:
    from ALNMPredictorLib.imaging import parse_spacing

    try:
        return parse_spacing(spacing)
    except ValueError as exc:
        raise InputError(str(exc), case=case_id, column=column) from None


_HC_EXTRACTORS: dict[str, Any] = {}


def _handcrafted_extractor(info: Mapping[str, Any]) -> Any | None:
    """The model's handcrafted extractor (its recorded parameters), or None when it uses none."""
    from ALNMPredictorLib.handcrafted import HandcraftedExtractor

    extraction = info.get("extraction") or {}
    hc = extraction.get("handcrafted")
    if isinstance(hc, Mapping) and hc.get("params"):
        params: Any = hc["params"]
    elif "handcrafted" in extraction and hc is None:
        return None
    else:
        # a model that recorded no preset predates the us2d default: it was trained with "paper"
        params = (
            extraction.get("handcrafted_params") or (info.get("settings") or {}).get("handcrafted") or "paper"
        )
    key = repr(params)
    if key not in _HC_EXTRACTORS:
        _HC_EXTRACTORS[key] = HandcraftedExtractor(params)
    return _HC_EXTRACTORS[key]


def _trunk_one(model: Any, crop: np.ndarray) -> np.ndarray:
    """The trunk output of one crop (computed on its own, as the cohort extraction computes every crop)."""
    return model.trunk_features(crop[None]).astype(np.float32, copy=False)


def region_features(
    loaded: Any, region: str, arrays: RegionArrays, case_id: str = "case"
) -> dict[str, float]:
    """Every feature column of one region (``<region>_...``) from arrays, as the cohort extraction computes it."""
    image_col, mask_col = f"{region}_image", f"{region}_mask"
    grey, deep_input, _ = _prepare_image(arrays.image, case_id, image_col)
    roi = _prepare_mask(arrays.mask, grey.shape, case_id, mask_col)
    spacing = _spacing(arrays.spacing, case_id, f"{region}_spacing")
    out: dict[str, float] = {}
    extractor = _handcrafted_extractor(loaded.info)
    if extractor is not None:
        values = extractor.extract(grey, roi, spacing, case=case_id, column=mask_col)
        for name, value in values.items():
            number = float(value)
            out[f"{region}_{name}"] = number if math.isfinite(number) else math.nan
    deep_model = (loaded.deep_models or {}).get(region)
    if deep_model is not None:
        from ALNMPredictorLib.deep import crop_roi

        crop = crop_roi(
            deep_input,
            roi,
            deep_model.margin,
            deep_model.input_size,
            intensity=deep_model.intensity,
            case=case_id,
            column=mask_col,
        )
        features = deep_model.transform_trunk(_trunk_one(deep_model, crop))[0]
        for name, value in zip(deep_model.feature_names(prefix=region), features, strict=True):
            out[name] = float(value)
    return out


def case_heatmaps(
    loaded: Any, regions: Mapping[str, RegionArrays], case_id: str = "case"
) -> dict[str, dict[str, Any]]:
    """Grad-CAM heatmaps of one case: region → target (``head``, and ``score`` where the region score kept deep
    features) → :class:`~ALNMPredictorLib.gradcam.Heatmap`, on the crop :func:`region_features` scores (same
    grey conversion, crop and trunk). Regions of a model without deep heads are left out; empty for a model
    without deep features."""
    deep_models = loaded.deep_models or {}
    if not deep_models:
        return {}
    from ALNMPredictorLib.gradcam import image_heatmaps

    scores = getattr(loaded.model, "region_scores_", {}) or {}
    out: dict[str, dict[str, Any]] = {}
    for region, extractor in deep_models.items():
        if region not in regions:
            continue
        arrays = regions[region]
        grey, deep_input, _ = _prepare_image(arrays.image, case_id, f"{region}_image")
        roi = _prepare_mask(arrays.mask, grey.shape, case_id, f"{region}_mask")
        out[region] = image_heatmaps(
            extractor, deep_input, roi, region=region, score=scores.get(region), case_id=str(case_id)
        )
    return out


# --------------------------------------------------------------------------------------------------
# Prediction


@dataclass
class CasePrediction:
    """The model's output for one case (``row`` is that case's row of the ``alnm predict`` table)."""

    case_id: str
    row: pd.Series
    features: pd.Series
    clinical: dict[str, Any]
    explain: pd.DataFrame
    regions: list[str]
    variables: list[str]
    cutoff: float
    synthetic: bool = False
    model_path: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def scores(self) -> dict[str, float]:
        """Radiomics score per region (tumour score, LN score)."""
        return {r: float(self.row[score_column(r)]) for r in self.regions}

    @property
    def out_of_range(self) -> dict[str, int]:
        """Per region: how many of its score's features lie outside the training range (clipped when scoring)."""
        out = {}
        for region in self.regions:
            value = self.row.get(f"{region}_out_of_range")
            out[region] = 0 if is_missing(value) else int(value)
        return out

    @property
    def probability(self) -> float:
        """The clinical-radiomics model's probability of ALNM (the Nomo-score)."""
        return float(self.row[f"prob_{COMBINED}"])

    @property
    def risk_group(self) -> str:
        """``high`` when the probability is at or above the training cut-off, else ``low``."""
        return str(self.row["risk_group"])

    @property
    def points(self) -> dict[str, float]:
        """Nomogram points of each predictor of the combined model."""
        return {v: float(self.row[f"points_{v}"]) for v in self.variables}

    @property
    def total_points(self) -> float:
        """Sum of the predictors' points."""
        return float(self.row["total_points"])

    @property
    def probabilities(self) -> dict[str, float]:
        """Every model's probability (``clinical``, ``<region>_score``, ``clinical_radiomics``) that was computed."""
        out = {}
        for col, value in self.row.items():
            if str(col).startswith("prob_") and not is_missing(value):
                out[str(col)[5:]] = float(value)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Rows ``quantity, value, text, description`` for a table (quantities named as ``alnm predict`` columns)."""
        rows: list[dict[str, Any]] = [
            {"quantity": "case_id", "value": math.nan, "text": self.case_id, "description": "case"},
        ]
        for region, value in self.scores.items():
            rows.append(
                {
                    "quantity": score_column(region),
                    "value": value,
                    "text": f"{value:.4f}",
                    "description": f"{region} radiomics score",
                }
            )
        for region, count in self.out_of_range.items():
            rows.append(
                {
                    "quantity": f"{region}_out_of_range",
                    "value": float(count),
                    "text": str(count),
                    "description": f"{region} score features outside the training range (clipped)",
                }
            )
        rows.append(
            {
                "quantity": "nomo_score",
                "value": self.probability,
                "text": f"{self.probability:.4f}",
                "description": "Nomo-score: probability of ALNM (clinical-radiomics model)",
            }
        )
        rows.append(
            {
                "quantity": "cutoff",
                "value": self.cutoff,
                "text": f"{self.cutoff:.4f}",
                "description": "cut-off (Youden index on the training set)",
            }
        )
        rows.append(
            {
                "quantity": "risk_group",
                "value": math.nan,
                "text": self.risk_group,
                "description": "high when Nomo-score >= cut-off",
            }
        )
        for var, pts in self.points.items():
            value = self.row.get(var) if var in self.row.index else self.clinical.get(var)
            shown = _format_value(value if value is not None else self.scores.get(var.removesuffix("_score")))
            rows.append(
                {
                    "quantity": f"points_{var}",
                    "value": pts,
                    "text": f"{pts:.1f}",
                    "description": f"nomogram points of {var} = {shown}",
                }
            )
        rows.append(
            {
                "quantity": "total_points",
                "value": self.total_points,
                "text": f"{self.total_points:.1f}",
                "description": "total nomogram points",
            }
        )
        for name, prob in self.probabilities.items():
            rows.append(
                {
                    "quantity": f"prob_{name}",
                    "value": prob,
                    "text": f"{prob:.4f}",
                    "description": f"probability of ALNM, {name} model",
                }
            )
        for i, note in enumerate(self.notes, start=1):
            rows.append(
                {
                    "quantity": f"note_{i}",
                    "value": math.nan,
                    "text": note,
                    "description": "note on the inputs",
                }
            )
        if self.synthetic:
            rows.append(
                {
                    "quantity": "model",
                    "value": math.nan,
                    "text": "synthetic demo",
                    "description": SYNTHETIC_LABEL,
                }
            )
        return rows

    def summary(self) -> str:
        """A few lines for the panel."""
        lines = [f"Case {self.case_id}"]
        for region, value in self.scores.items():
            lines.append(f"{region} score: {value:.3f}")
        for region, count in self.out_of_range.items():
            if count:
                lines.append(
                    f"Note: {count} {region} score feature(s) outside their training range, clipped to "
                    "it (common for images from another scanner)"
                )
        lines.append(f"Nomo-score (probability of ALNM): {self.probability:.3f}")
        lines.append(f"Risk group: {self.risk_group.upper()} (cut-off {self.cutoff:.3f})")
        lines.append(
            "Points: "
            + ", ".join(f"{v} {p:.0f}" for v, p in self.points.items())
            + f"; total {self.total_points:.0f}"
        )
        lines += [f"Note: {note}" for note in self.notes]
        if self.synthetic:
            lines.append(f"Model: synthetic demo - {SYNTHETIC_LABEL}")
        return "\n".join(lines)


def _format_value(value: Any) -> str:
    if isinstance(value, float | np.floating):
        return f"{float(value):.3g}"
    return str(value)


def predict_case(
    loaded: Any,
    regions: Mapping[str, RegionArrays],
    clinical: Mapping[str, Any],
    case_id: str = "case",
) -> CasePrediction:
    """Scores, Nomo-score, risk group and nomogram points of one case (the ``alnm predict`` numbers).

    ``regions`` maps every region of the model (``tumor``, ``ln``) to its arrays; ``clinical`` holds
    the factors of :func:`clinical_fields`. Raises :class:`InputError` for a bad or missing input.
    """
    from ALNMPredictorLib.pipeline import predict_cases

    case_id = str(case_id)
    if (loaded.info or {}).get("feature_source") == "table":
        raise InputError(
            "this model was trained on features read from a table (alnm ... --features), not extracted from "
            "images, so it cannot score images; use alnm predict --features with the new case's table",
            case=case_id,
        )
    model = loaded.model
    model_regions = list(model.regions)
    missing = [r for r in model_regions if r not in regions]
    if missing:
        raise InputError(
            f"the model needs region(s) {', '.join(missing)}; given: {', '.join(regions) or 'none'}",
            case=case_id,
            column=f"{missing[0]}_image",
        )
    values = parse_clinical(loaded, clinical, case_id)
    features: dict[str, float] = {}
    notes = []
    for region in model_regions:
        features.update(region_features(loaded, region, regions[region], case_id))
        conversion = colour_conversion(regions[region].image)
        if conversion is not None:
            from ALNMPredictorLib.imaging import GREY_CONVERSIONS

            notes.append(f"{region} image: {GREY_CONVERSIONS[conversion]}")
    data = pd.DataFrame([features], index=pd.Index([case_id], name="case_id"), dtype=float)
    for spec in clinical_fields(loaded):
        if spec.kind == "categorical":
            data[spec.name] = pd.Series([values.get(spec.name)], index=data.index, dtype=object)
        else:
            data[spec.name] = pd.Series([values.get(spec.name, math.nan)], index=data.index, dtype=float)
    table = predict_cases(model, data)
    row = table.loc[case_id]
    if row["status"] != "ok":
        raise InputError(str(row["error"]) or "the model could not be applied", case=case_id)
    explain = model.explain(data, case_id)
    combined = model.combined_model_
    return CasePrediction(
        case_id=case_id,
        row=row,
        features=data.loc[case_id, list(features)],
        clinical=values,
        explain=explain,
        regions=model_regions,
        variables=list(combined.variables),
        cutoff=float(combined.cutoff),
        synthetic=bool(loaded.info.get("synthetic", False)),
        notes=notes,
    )


def colour_conversion(image: Any) -> str | None:
    """How a region's image is made grey (an ``imaging.GREY_CONVERSIONS`` key), None for a grey image."""
    from ALNMPredictorLib.imaging import to_grey

    arr = np.asarray(image)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 3 or arr.shape[2] == 1:
        return None
    return to_grey(arr[:, :, :3])[1]


_MODEL_CACHE: dict[tuple[str, int, bool], Any] = {}


def model_location(path: str | os.PathLike[str]) -> Path:
    """A saved model's folder or zip, given the folder, its ``model.json`` or the zip."""
    path = Path(path)
    return path.parent if path.name == "model.json" and path.is_file() else path


def load_model_cached(path: str | os.PathLike[str], *, deep_heads: bool = True) -> Any:
    """:func:`~ALNMPredictorLib.pipeline.load_model` of a folder, its ``model.json`` or a zip, reused while unchanged.

    ``deep_heads=False`` reads the model without its deep-feature heads (no PyTorch needed): enough for the
    clinical form and the model's description, not for a prediction.
    """
    from ALNMPredictorLib.pipeline import load_model

    path = model_location(path)
    if not path.exists():
        raise InputError("model not found", path=path)
    probe = path / "model.json" if path.is_dir() else path
    key = (str(path.resolve()), probe.stat().st_mtime_ns if probe.exists() else 0, deep_heads)
    if key not in _MODEL_CACHE:
        full = (*key[:2], True)
        if not deep_heads and full in _MODEL_CACHE:
            return _MODEL_CACHE[full]
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = load_model(path, deep_heads=deep_heads)
    return _MODEL_CACHE[key]
