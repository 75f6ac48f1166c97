"""The Slicer panel's figures of a saved model: the nomogram (with a case's points) and its calibration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ALNMPredictorLib.casepredict import COMBINED, model_location
from ALNMPredictorLib.demomodel import DEMO_MODEL_RESOURCE, DEMO_PREDICTIONS_RESOURCE

if TYPE_CHECKING:
    from ALNMPredictorLib.casepredict import CasePrediction

__all__ = ["calibration_figure", "calibration_source", "figure_png", "nomogram_figure"]


def nomogram_figure(loaded: Any, prediction: CasePrediction | None = None) -> Any:
    """The combined model's nomogram (matplotlib Figure), with this case's points marked when given."""
    from ALNMPredictorLib.plots import plot_nomogram

    patient = None
    if prediction is not None:
        patient = {**prediction.points, "total_points": prediction.total_points}
    return plot_nomogram(
        loaded.model.combined_model_.nomogram_scale(),
        patient,
        synthetic=bool(loaded.info.get("synthetic", False)),
    )


def calibration_source(model_path: str | os.PathLike[str]) -> Path | None:
    """The predictions table written with a model (``<run>/predictions.csv`` beside ``<run>/model``), if any."""
    path = model_location(model_path)
    candidates = [
        path.parent / "predictions.csv",
        path.with_name(path.name.removesuffix(".zip") + ".predictions.csv"),
    ]
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
        binned.append(
            curve.rename(
                columns={"low": "bin_low", "high": "bin_high", "observed_low": "low", "observed_high": "high"}
            )
        )
        smooth.append(calibration_smooth(y, p).assign(split=str(split), model=COMBINED))
    if not binned:
        return None
    synthetic = bool(loaded.info.get("synthetic", False)) if loaded is not None else False
    return plot_calibration(
        pd.concat(binned, ignore_index=True), smooth=pd.concat(smooth, ignore_index=True), synthetic=synthetic
    )


def figure_png(fig: Any, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    """Write a matplotlib figure as PNG (atomically)."""
    from ALNMPredictorLib.fileio import write_bytes
    from ALNMPredictorLib.plots import figure_bytes

    return Path(write_bytes(Path(path), figure_bytes(fig, "png", dpi=dpi)))
