"""One case from in-memory arrays (the Slicer panel's path), with the same numbers as ``alnm predict``.

:func:`predict_case` takes each region's image, mask and pixel spacing as arrays (what a Slicer volume
and segment give), the clinical factors as a mapping, and a loaded model
(:func:`~ALNMPredictorLib.pipeline.load_model`). It computes the features exactly as the cohort
extraction does for files (:mod:`ALNMPredictorLib.extraction`: the same grey conversion, the same
handcrafted extractor with the parameters recorded in the model, the same deep crop, trunk batch and
head) and then runs :func:`~ALNMPredictorLib.pipeline.predict_cases`, the code behind ``alnm predict``.
A bad input (empty mask, mask of another size, missing clinical factor, unknown level) raises
:class:`~ALNMPredictorLib.errors.InputError` (a ``ValueError``) naming the case and the column.

Also here: the clinical form a model needs (:func:`clinical_fields`), the panel's nomogram and
calibration images, the SYNTHETIC demo model and demo case, and reader-study reads
(:func:`record_read`, appended to a reads CSV that ``alnm evaluate --readers`` reads).
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
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError
from ALNMPredictorLib.modeling import score_column

__all__ = [
    "COMBINED",
    "DEMO_MODEL_RESOURCE",
    "CasePrediction",
    "ClinicalField",
    "DemoCase",
    "RegionArrays",
    "build_demo_model",
    "calibration_figure",
    "case_heatmaps",
    "clinical_fields",
    "colour_conversion",
    "demo_case",
    "ensure_demo_model",
    "load_model_cached",
    "model_location",
    "nomogram_figure",
    "parse_clinical",
    "predict_case",
    "read_status",
    "record_read",
    "region_features",
]

log = logging.getLogger(__name__)

COMBINED = "clinical_radiomics"
RESOURCES = Path(__file__).resolve().parent.parent / "Resources"
#: the committed SYNTHETIC demo model (a zipped bundle) and its training predictions (for calibration)
DEMO_MODEL_RESOURCE = RESOURCES / "Models" / "DemoModel.zip"
DEMO_PREDICTIONS_RESOURCE = RESOURCES / "Models" / "DemoModel.predictions.csv"
#: how the demo model is trained: synthetic cohort size and seed, pipeline settings
DEMO_PATIENTS = 200
DEMO_SEED = 0
DEMO_SETTINGS: dict[str, Any] = {"handcrafted": "us2d", "deep": "off", "seed": 0}
#: the demo cases come from another synthetic cohort than the demo model's training cohort
DEMO_CASE_PATIENTS = 20
DEMO_CASE_SEED = 1


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


@dataclass(frozen=True)
class ClinicalField:
    """A clinical factor of a model: ``required`` when the combined (clinical-radiomics) model uses it."""

    name: str
    kind: str  # "continuous" | "categorical"
    levels: tuple[str, ...]
    reference: str | None
    required: bool
    models: tuple[str, ...]


def _is_missing(value: Any, levels: tuple[str, ...] = ()) -> bool:
    """A missing value as the manifest reader reads one (cohort.NA_TOKENS), unless it is one of ``levels``."""
    from ALNMPredictorLib.cohort import NA_TOKENS

    if value is None:
        return True
    if isinstance(value, float | np.floating) and math.isnan(float(value)):
        return True
    return isinstance(value, str) and value.strip().lower() in NA_TOKENS and value.strip() not in levels


def _level_text(value: Any) -> str:
    """A level as the manifest reader writes it (``2.0`` → ``"2"``)."""
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def clinical_fields(loaded: Any) -> list[ClinicalField]:
    """Clinical factors used by any of the model's logistic models, in the model's order."""
    model = loaded.model
    declared = loaded.info.get("clinical_variables") or {}
    used: dict[str, list[str]] = {}
    for name, lm in model.models().items():
        for var in lm.variables:
            if var in model.clinical:
                used.setdefault(var, []).append(name)
    required = set(model.required_columns().get("clinical", []))
    out = []
    for var in model.clinical:
        if var not in used:
            continue
        spec = dict(declared.get(var) or {})
        kind = spec.get("kind") or ("categorical" if var in model.categorical else "continuous")
        levels = tuple(str(v) for v in spec.get("levels") or ())
        if kind == "categorical" and not levels:
            for lm in model.models().values():
                enc = lm.encoding.get(var)
                if enc and enc.get("levels"):
                    levels = tuple(str(v) for v in enc["levels"])
                    break
        reference = spec.get("reference")
        out.append(ClinicalField(var, kind, levels, None if reference is None else str(reference), var in required,
                                 tuple(used[var])))  # fmt: skip
    return out


def parse_clinical(loaded: Any, values: Mapping[str, Any], case_id: str = "case") -> dict[str, Any]:
    """Typed clinical values for the model (categorical as level text, continuous as float).

    A factor the combined model needs that is missing, a level the model does not know, or a value
    that is not a finite number raises :class:`InputError` naming the case and the factor. Factors
    only the clinical model uses may be missing (its probability is then not computed).
    """
    out: dict[str, Any] = {}
    for spec in clinical_fields(loaded):
        value = values.get(spec.name)
        if _is_missing(value, spec.levels):
            if spec.required:
                raise InputError("clinical factor required by the model is missing", case=case_id, column=spec.name)
            continue
        if spec.kind == "categorical":
            text = _level_text(value)
            if spec.levels and text not in spec.levels:
                raise InputError(f"unknown level {text!r}; the model knows {', '.join(spec.levels)}",
                                 case=case_id, column=spec.name)  # fmt: skip
            out[spec.name] = text
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"not a number: {value!r}", case=case_id, column=spec.name) from None
            if not math.isfinite(number):
                raise InputError(f"not a finite number: {value!r}", case=case_id, column=spec.name)
            out[spec.name] = number
    return out


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
        raise InputError(f"a 2D grey or RGB image is needed, got an array of shape {np.shape(image)} "
                         "(a 3D volume must have a single slice)", case=case_id, column=column)  # fmt: skip
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
        raise InputError(f"mask size {arr.shape} differs from image size {tuple(shape)}", case=case_id, column=column)
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
        params = extraction.get("handcrafted_params") or (info.get("settings") or {}).get("handcrafted") or "paper"
    key = repr(params)
    if key not in _HC_EXTRACTORS:
        _HC_EXTRACTORS[key] = HandcraftedExtractor(params)
    return _HC_EXTRACTORS[key]


def _trunk_one(model: Any, crop: np.ndarray) -> np.ndarray:
    """The trunk output of one crop (computed on its own, as the cohort extraction computes every crop)."""
    return model.trunk_features(crop[None]).astype(np.float32, copy=False)


def region_features(loaded: Any, region: str, arrays: RegionArrays, case_id: str = "case") -> dict[str, float]:
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


def case_heatmaps(loaded: Any, regions: Mapping[str, RegionArrays], case_id: str = "case") -> dict[str, dict[str, Any]]:
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
        out[region] = image_heatmaps(extractor, deep_input, roi, region=region, score=scores.get(region),
                                     case_id=str(case_id))  # fmt: skip
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
            out[region] = 0 if _is_missing(value) else int(value)
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
            if str(col).startswith("prob_") and not _is_missing(value):
                out[str(col)[5:]] = float(value)
        return out

    def records(self) -> list[dict[str, Any]]:
        """Rows ``quantity, value, text, description`` for a table (quantities named as ``alnm predict`` columns)."""
        rows: list[dict[str, Any]] = [
            {"quantity": "case_id", "value": math.nan, "text": self.case_id, "description": "case"},
        ]
        for region, value in self.scores.items():
            rows.append({"quantity": score_column(region), "value": value, "text": f"{value:.4f}",
                         "description": f"{region} radiomics score"})  # fmt: skip
        for region, count in self.out_of_range.items():
            rows.append({"quantity": f"{region}_out_of_range", "value": float(count), "text": str(count),
                         "description": f"{region} score features outside the training range (clipped)"})  # fmt: skip
        rows.append({"quantity": "nomo_score", "value": self.probability, "text": f"{self.probability:.4f}",
                     "description": "Nomo-score: probability of ALNM (clinical-radiomics model)"})  # fmt: skip
        rows.append({"quantity": "cutoff", "value": self.cutoff, "text": f"{self.cutoff:.4f}",
                     "description": "cut-off (Youden index on the training set)"})  # fmt: skip
        rows.append({"quantity": "risk_group", "value": math.nan, "text": self.risk_group,
                     "description": "high when Nomo-score >= cut-off"})  # fmt: skip
        for var, pts in self.points.items():
            value = self.row.get(var) if var in self.row.index else self.clinical.get(var)
            shown = _format_value(value if value is not None else self.scores.get(var.removesuffix("_score")))
            rows.append({"quantity": f"points_{var}", "value": pts, "text": f"{pts:.1f}",
                         "description": f"nomogram points of {var} = {shown}"})  # fmt: skip
        rows.append({"quantity": "total_points", "value": self.total_points, "text": f"{self.total_points:.1f}",
                     "description": "total nomogram points"})  # fmt: skip
        for name, prob in self.probabilities.items():
            rows.append({"quantity": f"prob_{name}", "value": prob, "text": f"{prob:.4f}",
                         "description": f"probability of ALNM, {name} model"})  # fmt: skip
        for i, note in enumerate(self.notes, start=1):
            rows.append({"quantity": f"note_{i}", "value": math.nan, "text": note, "description": "note on the inputs"})
        if self.synthetic:
            rows.append({"quantity": "model", "value": math.nan, "text": "synthetic demo", "description": SYNTHETIC_LABEL})
        return rows

    def summary(self) -> str:
        """A few lines for the panel."""
        lines = [f"Case {self.case_id}"]
        for region, value in self.scores.items():
            lines.append(f"{region} score: {value:.3f}")
        for region, count in self.out_of_range.items():
            if count:
                lines.append(f"Note: {count} {region} score feature(s) outside their training range, clipped to "
                             "it (common for images from another scanner)")  # fmt: skip
        lines.append(f"Nomo-score (probability of ALNM): {self.probability:.3f}")
        lines.append(f"Risk group: {self.risk_group.upper()} (cut-off {self.cutoff:.3f})")
        lines.append("Points: " + ", ".join(f"{v} {p:.0f}" for v, p in self.points.items())
                     + f"; total {self.total_points:.0f}")  # fmt: skip
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
        raise InputError(f"the model needs region(s) {', '.join(missing)}; given: {', '.join(regions) or 'none'}",
                         case=case_id, column=f"{missing[0]}_image")  # fmt: skip
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


# --------------------------------------------------------------------------------------------------
# Figures


def nomogram_figure(loaded: Any, prediction: CasePrediction | None = None) -> Any:
    """The combined model's nomogram (matplotlib Figure), with this case's points marked when given."""
    from ALNMPredictorLib.plots import plot_nomogram

    patient = None
    if prediction is not None:
        patient = {**prediction.points, "total_points": prediction.total_points}
    return plot_nomogram(loaded.model.combined_model_.nomogram_scale(), patient,
                         synthetic=bool(loaded.info.get("synthetic", False)))  # fmt: skip


def calibration_source(model_path: str | os.PathLike[str]) -> Path | None:
    """The predictions table written with a model (``<run>/predictions.csv`` beside ``<run>/model``), if any."""
    path = model_location(model_path)
    candidates = [path.parent / "predictions.csv", path.with_name(path.name.removesuffix(".zip") + ".predictions.csv")]
    if path.resolve() == DEMO_MODEL_RESOURCE.resolve():
        candidates.insert(0, DEMO_PREDICTIONS_RESOURCE)
    return next((c for c in candidates if c.is_file()), None)


def calibration_figure(model_path: str | os.PathLike[str], loaded: Any | None = None) -> Any | None:
    """Calibration of the combined model per split from the model's predictions table; None without one."""
    from ALNMPredictorLib.plots import plot_calibration
    from ALNMPredictorLib.stats.calibration import calibration_curve, calibration_smooth

    source = calibration_source(model_path)
    if source is None:
        return None
    pred = pd.read_csv(source)
    column = f"prob_{COMBINED}"
    if not {"label", column}.issubset(pred.columns):
        return None
    if "split" not in pred.columns:
        pred["split"] = "all"
    pred = pred[pd.to_numeric(pred["label"], errors="coerce").notna() & pred[column].notna()]
    binned, smooth = [], []
    for split, part in pred.groupby("split", sort=False):
        y, p = part["label"].astype(int).to_numpy(), part[column].astype(float).to_numpy()
        if len(part) < 10 or len(set(y)) < 2:
            continue
        curve = calibration_curve(y, p, bins=10).assign(split=str(split), model=COMBINED)
        binned.append(curve.rename(columns={"low": "bin_low", "high": "bin_high", "observed_low": "low",
                                            "observed_high": "high"}))  # fmt: skip
        smooth.append(calibration_smooth(y, p).assign(split=str(split), model=COMBINED))
    if not binned:
        return None
    synthetic = bool(loaded.info.get("synthetic", False)) if loaded is not None else False
    return plot_calibration(pd.concat(binned, ignore_index=True), smooth=pd.concat(smooth, ignore_index=True),
                            synthetic=synthetic)  # fmt: skip


def figure_png(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG (atomically)."""
    from ALNMPredictorLib.fileio import write_bytes
    from ALNMPredictorLib.plots import figure_bytes

    return Path(write_bytes(Path(path), figure_bytes(fig, "png", dpi=dpi)))


# --------------------------------------------------------------------------------------------------
# Demo model and demo case (SYNTHETIC)


def build_demo_model(work_dir: str | os.PathLike[str], *, zip_to: str | os.PathLike[str] | None = None,
                     workers: int | None = None, progress: bool = False) -> Path:  # fmt: skip
    """Train the SYNTHETIC demo model in ``work_dir`` (cohort, features, model); optionally zip it.

    Returns the model folder (or the zip). ``zip_to`` also writes ``<zip stem>.predictions.csv`` (split,
    label, probability: enough for the calibration plot).
    """
    from ALNMPredictorLib import synth
    from ALNMPredictorLib.fileio import atomic_path, write_table
    from ALNMPredictorLib.pipeline import PipelineSettings, train

    work = Path(work_dir)
    cohort_dir = work / "cohort"
    manifest = synth.existing_cohort(cohort_dir, DEMO_PATIENTS, DEMO_SEED)
    if manifest is None:
        manifest = synth.synth_cohort(cohort_dir, DEMO_PATIENTS, DEMO_SEED, workers=workers or 1,
                                      progress=progress).manifest_path  # fmt: skip
    settings = PipelineSettings.from_sources(DEMO_SETTINGS, {"workers": workers})
    result = train(manifest, work / "run", settings, progress=progress)
    if zip_to is None:
        return result.model_dir
    import zipfile

    target = Path(zip_to)
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(result.model_dir.iterdir()):
            archive.write(file, file.name)
    keep = [c for c in ("split", "label", f"prob_{COMBINED}") if c in result.predictions.columns]
    write_table(target.with_name(target.name.removesuffix(".zip") + ".predictions.csv"),
                result.predictions[keep].reset_index().round(10))  # fmt: skip
    return target


def ensure_demo_model(work_dir: str | os.PathLike[str] | None = None, *, progress: bool = False) -> Path:
    """A usable SYNTHETIC demo model: the committed one, else one trained in ``work_dir`` on first use."""
    from ALNMPredictorLib.pipeline import load_model

    try:
        load_model(DEMO_MODEL_RESOURCE)
        return DEMO_MODEL_RESOURCE
    except (BundleError, OSError, KeyError, TypeError, ALNMError) as exc:
        if work_dir is None:
            raise ALNMError(f"the committed demo model cannot be used ({exc}); give a folder to train one in") from exc
        log.warning("committed demo model not usable (%s); training one in %s", exc, work_dir)
    built = Path(work_dir) / "run" / "model"
    if (built / "model.json").is_file():
        try:
            load_model(built)
            return built
        except ALNMError as exc:
            log.warning("the demo model trained earlier in %s is not usable (%s); training it again", built, exc)
    return build_demo_model(work_dir, progress=progress)


@dataclass
class DemoCase:
    """One SYNTHETIC patient: arrays per region, clinical factors, true label and where its files are."""

    case_id: str
    label: int | None
    split: str
    regions: dict[str, RegionArrays]
    clinical: dict[str, Any]
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def demo_case(folder: str | os.PathLike[str], index: int = 0) -> DemoCase:
    """The ``index``-th test-set patient of a small SYNTHETIC cohort (written to ``folder`` on first use)."""
    from ALNMPredictorLib import synth
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.imaging import load_image, load_mask

    folder = Path(folder)
    manifest = synth.existing_cohort(folder, DEMO_CASE_PATIENTS, DEMO_CASE_SEED)
    if manifest is None:
        manifest = synth.synth_cohort(folder, DEMO_CASE_PATIENTS, DEMO_CASE_SEED).manifest_path
    cohort = load_manifest(manifest)
    tests = [c for c in cohort.case_ids() if c not in set(cohort.case_ids(cohort.train_split))]
    ids = tests or cohort.case_ids()
    case_id = ids[int(index) % len(ids)]
    row = cohort.table.loc[case_id]
    regions, files = {}, {}
    for region in cohort.regions:
        inputs = cohort.region_inputs(case_id, region)
        if inputs is None:
            raise InputError("no image or mask in the demo cohort", case=case_id, column=f"{region}_image")
        image = load_image(inputs.image_path, spacing=inputs.spacing)
        array = image.array.astype(np.uint8) if image.original_dtype == "uint8" else image.array
        mask = load_mask(inputs.mask_path, label=inputs.mask_label)
        regions[region] = RegionArrays(array, mask, image.spacing, source=Path(inputs.image_path).name)
        files[region] = (Path(inputs.image_path), Path(inputs.mask_path))
    clinical = {name: (None if _is_missing(row[name]) else row[name]) for name in cohort.clinical}
    labels = cohort.labels()
    label = labels.get(case_id)
    return DemoCase(str(case_id), None if label is None or pd.isna(label) else int(label),
                    str(row.get(cohort.split_column, "")), regions, clinical, files)  # fmt: skip


# --------------------------------------------------------------------------------------------------
# Reader study


def _reads_table(path: Path) -> pd.DataFrame:
    from ALNMPredictorLib.readers import READS_COLUMNS, load_reads

    if not path.is_file():
        return pd.DataFrame(columns=list(READS_COLUMNS))
    return load_reads(path)


def read_status(path: str | os.PathLike[str], case_id: str, reader: str) -> dict[str, int]:
    """The calls a reader already recorded for a case: ``{session: call}``."""
    table = _reads_table(Path(path))
    part = table[(table["case_id"].astype(str) == str(case_id)) & (table["reader"].astype(str) == str(reader))]
    return {str(s): int(c) for s, c in zip(part["session"], part["call"], strict=True)}


def record_read(
    path: str | os.PathLike[str],
    case_id: str,
    reader: str,
    session: str,
    call: int,
    confidence: float | None = None,
) -> pd.DataFrame:
    """Append one read to a reads CSV (written atomically) and return the whole table.

    The protocol of the study's reader study is enforced: a reader records the ``unaided`` call of a
    case before seeing the model's output and the ``aided`` call after; each once.
    """
    from ALNMPredictorLib.fileio import write_table
    from ALNMPredictorLib.readers import READS_COLUMNS, SESSIONS, validate_reads

    path = Path(path)
    case_id, reader, session = str(case_id).strip(), str(reader).strip(), str(session).strip().lower()
    if not reader:
        raise InputError("enter the reader's name or code", case=case_id, column="reader")
    if session not in SESSIONS:
        raise InputError(f"session must be 'unaided' or 'aided', got {session!r}", case=case_id, column="session")
    done = read_status(path, case_id, reader)
    if session in done:
        raise InputError(f"reader {reader} already recorded the {session} call of this case", case=case_id,
                         column="session", path=path)  # fmt: skip
    if session == "aided" and "unaided" not in done:
        raise InputError(f"reader {reader}: record the unaided call before the aided one", case=case_id,
                         column="session", path=path)  # fmt: skip
    table = _reads_table(path)
    row = {"case_id": case_id, "reader": reader, "session": session, "call": call,
           "confidence": math.nan if confidence is None else confidence}  # fmt: skip
    frame = pd.DataFrame([row], columns=list(READS_COLUMNS))
    combined = frame if table.empty else pd.concat([table, frame], ignore_index=True)
    checked = validate_reads(combined, path=None)
    if checked["confidence"].isna().all():
        checked = checked.drop(columns=["confidence"])
    write_table(path, checked)
    return checked
