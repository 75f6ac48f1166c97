"""The study's figures as matplotlib Figures: ROC, calibration, decision and clinical impact curves,
risk groups, nomogram, LASSO path and CV curve, feature-selection funnel and reader study.

Every function takes the long-format tables of :mod:`ALNMPredictorLib.evaluation` (or the fitted
selection/nomogram data) and returns a new :class:`matplotlib.figure.Figure`. Pyplot is never used,
so no global figure state is created or leaked; the style is applied through a temporary
``rc_context``. :func:`save_figure` writes a figure as PNG and SVG atomically. Models keep one colour
in every figure (:data:`MODEL_COLORS`). ``synthetic=True`` watermarks a figure as SYNTHETIC.
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import matplotlib
import matplotlib.ticker
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ALNMPredictorLib import SYNTHETIC_LABEL
from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.fileio import atomic_path

__all__ = [
    "FIGURE_STYLE",
    "MODEL_COLORS",
    "COMBINED_MODEL",
    "model_label",
    "watermark",
    "split_label",
    "variable_label",
    "plot_roc",
    "plot_calibration",
    "plot_decision",
    "plot_clinical_impact",
    "plot_risk_groups",
    "plot_nomogram",
    "plot_lasso_path",
    "plot_lasso_cv",
    "plot_selection_funnel",
    "plot_readers",
    "save_figure",
    "figure_bytes",
    "draw_all",
    "save_all",
]

COMBINED_MODEL = "clinical_radiomics"

#: One colour per model, the same in every figure (Okabe-Ito, colour-blind safe).
MODEL_COLORS: dict[str, str] = {
    "clinical": "#0072B2",
    "tumor_score": "#E69F00",
    "ln_score": "#009E73",
    "clinical_radiomics": "#D55E00",
}
_EXTRA_COLORS = ["#CC79A7", "#56B4E9", "#F0E442", "#000000", "#999999", "#8C564B"]
_TREAT_ALL = "#555555"
_TREAT_NONE = "#000000"
_EVENT = "#D55E00"
_NON_EVENT = "#BBBBBB"

_MODEL_LABELS = {
    "clinical": "Clinical model",
    "clinical_radiomics": "Clinical-radiomics model",
    "tumor_score": "Tumor score",
    "ln_score": "LN score",
}
_SPLIT_LABELS = {
    "train": "Training set",
    "training": "Training set",
    "internal": "Internal test set",
    "external": "External test set",
    "prospective": "Prospective test set",
    "test": "Test set",
}
# The study's wording (Tables 1 and 2) for the synthetic cohort's and the manifest template's columns
_VARIABLE_LABELS = {
    "us_reported_alnm": "US-reported ALNM",
    "tumor_size": "Tumor size",
    "tumor_size_cm": "Tumor size (cm)",
    "age": "Age (years)",
    "tumor_score": "Tumor score",
    "ln_score": "LN score",
    "er": "ER status",
    "pr": "PR status",
    "her2": "HER2 status",
    "ki67": "Ki-67 status",
    "molecular_type": "Molecular type",
    "histology": "Histologic type",
    "adler_grade": "Adler grade",
}
_LEVEL_LABELS = {
    "ge20": "≥ 20%",
    "lt20": "< 20%",
    "luminal_a": "Luminal A",
    "luminal_b": "Luminal B",
    "her2_positive": "HER2 positive",
    "triple_negative": "Triple negative",
    "nst": "NST",
    "oval_round": "Oval or round",
}
_STEP_LABELS = {
    "input": "Extracted",
    "degenerate": "Degenerate removed",
    "near_constant": "Near-constant removed",
    "icc": "ICC ≥ threshold",
    "redundancy": "Redundancy (|r|)",
    "mutual_information": "Mutual information",
    "lasso": "LASSO",
}

#: matplotlib rc settings of every figure of the report and the panel
FIGURE_STYLE = {
    "font.size": 11,
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "xtick.labelsize": 10,
    "ytick.labelsize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "svg.hashsalt": "alnm-predictor",
    "svg.fonttype": "path",
}

_F = TypeVar("_F", bound=Callable[..., Figure])


def _styled(func: _F) -> _F:
    """Draw inside a temporary rc_context with the package style (no global rcParams change)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Figure:
        with matplotlib.rc_context(FIGURE_STYLE):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# Labels, colours, layout


def model_label(name: str) -> str:
    """Display name of a model: ``clinical_radiomics`` → ``Clinical-radiomics model``."""
    if name in _MODEL_LABELS:
        return _MODEL_LABELS[name]
    if name.endswith("_score"):
        region = name[: -len("_score")]
        return f"{region.upper() if len(region) <= 3 else region.capitalize()} score"
    return name.replace("_", " ").capitalize()


def split_label(name: str) -> str:
    """Display name of a split: ``internal`` → ``Internal test set``."""
    return _SPLIT_LABELS.get(str(name), f"{str(name).replace('_', ' ').capitalize()} set")


def variable_label(name: str) -> str:
    """Display name of a predictor for the nomogram and tables."""
    if name in _VARIABLE_LABELS:
        return _VARIABLE_LABELS[name]
    if name.endswith("_score"):
        return model_label(name)
    text = str(name).replace("_", " ")
    return text[:1].upper() + text[1:]


def level_label(level: Any) -> str:
    """Display name of a categorical level: ``ge20`` → ``≥ 20%``, ``luminal_a`` → ``Luminal A``,
    ``non-circumscribed`` → ``Non-circumscribed``."""
    text = str(level)
    if text in _LEVEL_LABELS:
        return _LEVEL_LABELS[text]
    text = text.replace("_", " ")
    return text[:1].upper() + text[1:]


def _model_color(name: str, order: Sequence[str] = ()) -> str:
    if name in MODEL_COLORS:
        return MODEL_COLORS[name]
    others = sorted(m for m in order if m not in MODEL_COLORS) or [name]
    index = others.index(name) if name in others else abs(hash(name))
    return _EXTRA_COLORS[index % len(_EXTRA_COLORS)]


def _ordered(values: Iterable[Any], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(str(v) for v in values))
    first = [p for p in preferred if p in seen]
    return first + [v for v in seen if v not in first]


def split_order(values: Iterable[Any]) -> list[str]:
    return _ordered(values, ["train", "training", "internal", "external", "prospective", "test"])


def model_order(values: Iterable[Any]) -> list[str]:
    seen = list(dict.fromkeys(str(v) for v in values))
    scores = sorted(m for m in seen if m.endswith("_score") and m not in ("tumor_score", "ln_score"))
    return _ordered(seen, ["clinical", "tumor_score", "ln_score", *scores, COMBINED_MODEL])


def _require(frame: Any, columns: Sequence[str], what: str) -> pd.DataFrame:
    if not isinstance(frame, pd.DataFrame):
        try:
            frame = pd.DataFrame(frame)
        except (TypeError, ValueError) as exc:
            raise ALNMError(f"{what}: expected a table, not {type(frame).__name__}") from exc
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ALNMError(f"{what}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise ALNMError(f"{what}: the table is empty; nothing to draw")
    return frame


def _pick_splits(frame: pd.DataFrame, splits: Sequence[str] | None, what: str) -> list[str]:
    available = split_order(frame["split"])
    if splits is None:
        return available
    unknown = [s for s in splits if s not in available]
    if unknown:
        raise ALNMError(f"{what}: no rows for split(s) {', '.join(unknown)} (have {', '.join(available)})")
    return [str(s) for s in splits]


def _grid(n: int) -> tuple[int, int]:
    if n <= 3:
        return 1, n
    if n == 4:
        return 2, 2
    return math.ceil(n / 3), 3


def _panels(n: int, panel_size: tuple[float, float] = (4.6, 4.2)) -> tuple[Figure, list[Any]]:
    rows, cols = _grid(max(n, 1))
    fig = Figure(figsize=(panel_size[0] * cols, panel_size[1] * rows + 0.3), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def watermark(fig: Figure, synthetic: bool) -> None:
    """Diagonal SYNTHETIC watermark and a footer with the full label, in space kept free for it."""
    if not synthetic:
        return
    fig.text(
        0.5,
        0.5,
        "SYNTHETIC",
        fontsize=64,
        color="#D00000",
        alpha=0.10,
        rotation=28,
        ha="center",
        va="center",
        weight="bold",
        zorder=100,
    )
    footer = 0.24 / fig.get_figheight()
    engine = fig.get_layout_engine()
    if engine is not None and hasattr(engine, "set"):
        engine.set(rect=(0, footer, 1, 1 - footer))
    fig.text(0.995, 0.004, SYNTHETIC_LABEL, fontsize=8, color="#B00000", ha="right", va="bottom")


def _shared_legend(fig: Figure, axes: Sequence[Any], title: str | None = None) -> None:
    """One legend for all panels (same entries in each), above them (with the figure's title, if any)."""
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(
            handles,
            labels,
            loc="outside upper center",
            ncols=min(len(labels), 3),
            frameon=False,
            title=title,
            title_fontsize=12,
        )


def _percent_axis(ax: Any, which: str = "y") -> None:
    fmt = matplotlib.ticker.PercentFormatter(xmax=1.0, decimals=0)
    (ax.yaxis if which == "y" else ax.xaxis).set_major_formatter(fmt)


# --------------------------------------------------------------------------------------------
# Discrimination, calibration and utility


def _auc_text(row: pd.Series | None, auc: float) -> str:
    if row is not None and all(k in row for k in ("auc_low", "auc_high")) and np.isfinite(row["auc_low"]):
        return f"AUC {row['auc']:.2f} ({row['auc_low']:.2f}–{row['auc_high']:.2f})"
    return f"AUC {auc:.2f}"


@_styled
def plot_roc(
    roc: pd.DataFrame,
    *,
    table3: pd.DataFrame | None = None,
    splits: Sequence[str] | None = None,
    models: Sequence[str] | None = None,
    synthetic: bool = False,
) -> Figure:
    """ROC curves, one panel per split, one curve per model with its AUC (and CI from ``table3``) in the legend.

    ``roc``: long format ``split model threshold sensitivity specificity auc``.
    """
    roc = _require(roc, ["split", "model", "sensitivity", "specificity", "auc"], "ROC curves")
    chosen = _pick_splits(roc, splits, "ROC curves")
    fig, axes = _panels(len(chosen))
    for ax, split in zip(axes, chosen, strict=True):
        part = roc[roc["split"].astype(str) == split]
        names = (
            model_order(part["model"]) if models is None else [m for m in models if m in set(part["model"])]
        )
        for name in names:
            curve = part[part["model"].astype(str) == name]
            fpr = 1.0 - curve["specificity"].to_numpy(dtype=float)
            tpr = curve["sensitivity"].to_numpy(dtype=float)
            order = np.lexsort((tpr, fpr))
            fpr = np.concatenate([[0.0], fpr[order], [1.0]])
            tpr = np.concatenate([[0.0], tpr[order], [1.0]])
            row = None
            if table3 is not None and not table3.empty:
                hit = table3[(table3["split"].astype(str) == split) & (table3["model"].astype(str) == name)]
                row = hit.iloc[0] if len(hit) else None
            auc = float(curve["auc"].iloc[0])
            width = 2.4 if name == COMBINED_MODEL else 1.6
            ax.plot(
                fpr,
                tpr,
                color=_model_color(name, names),
                lw=width,
                label=f"{model_label(name)}: {_auc_text(row, auc)}",
            )
        ax.plot([0, 1], [0, 1], ls=":", color="#888888", lw=1)
        ax.set(xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=split_label(split))
        ax.set_xlabel("1 − Specificity")
        ax.set_ylabel("Sensitivity")
        ax.legend(loc="lower right", frameon=True, framealpha=0.9)
    watermark(fig, synthetic)
    return fig


@_styled
def plot_calibration(
    binned: pd.DataFrame,
    *,
    smooth: pd.DataFrame | None = None,
    hosmer_lemeshow: pd.DataFrame | None = None,
    model: str = COMBINED_MODEL,
    splits: Sequence[str] | None = None,
    synthetic: bool = False,
) -> Figure:
    """Calibration of one model per split: binned observed vs predicted with CIs, smooth curve, diagonal.

    ``binned``: ``split model bin n predicted observed low high``; ``smooth``: ``split model predicted
    observed``; ``hosmer_lemeshow``: ``split model statistic df p`` (the p goes in each panel title).
    """
    binned = _require(binned, ["split", "model", "predicted", "observed"], "calibration curves")
    binned = binned[binned["model"].astype(str) == model]
    if binned.empty:
        raise ALNMError(f"calibration curves: no rows for model {model!r}")
    chosen = _pick_splits(binned, splits, "calibration curves")
    fig, axes = _panels(len(chosen))
    color = _model_color(model)
    for ax, split in zip(axes, chosen, strict=True):
        part = binned[binned["split"].astype(str) == split].sort_values("predicted")
        ax.plot([0, 1], [0, 1], ls="--", color="#888888", lw=1, label="Ideal")
        if smooth is not None and not smooth.empty:
            sm = smooth[(smooth["split"].astype(str) == split) & (smooth["model"].astype(str) == model)]
            sm = sm.sort_values("predicted")
            if len(sm):
                ax.plot(sm["predicted"], sm["observed"], color=color, lw=1.8, label="Smoothed (lowess)")
        x = part["predicted"].to_numpy(dtype=float)
        y = part["observed"].to_numpy(dtype=float)
        if {"low", "high"} <= set(part.columns):
            lo = np.clip(y - part["low"].to_numpy(dtype=float), 0, None)
            hi = np.clip(part["high"].to_numpy(dtype=float) - y, 0, None)
            ax.errorbar(
                x, y, yerr=[lo, hi], fmt="o", color=color, ms=5, capsize=3, lw=1, label="Grouped (95% CI)"
            )
        else:
            ax.plot(x, y, "o", color=color, ms=5, label="Grouped")
        title = split_label(split)
        if hosmer_lemeshow is not None and not hosmer_lemeshow.empty:
            hl = hosmer_lemeshow[
                (hosmer_lemeshow["split"].astype(str) == split)
                & (hosmer_lemeshow["model"].astype(str) == model)
            ]
            if len(hl) and np.isfinite(float(hl["p"].iloc[0])):
                title += f"\nHosmer-Lemeshow p = {format_p(float(hl['p'].iloc[0]))}"
        ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), aspect="equal", title=title)
        ax.set_xlabel("Predicted probability")
        ax.set_ylabel("Observed proportion")
        ax.legend(loc="upper left", framealpha=0.9)
    fig.suptitle(f"Calibration: {model_label(model)}")
    watermark(fig, synthetic)
    return fig


def format_p(p: float) -> str:
    """A p-value as in the study's tables: ``<.001``, ``.043``, ``>.999``."""
    if p is None or not np.isfinite(p):
        return "—"
    if p < 0.001:
        return "<.001"
    if p > 0.999:
        return ">.999"
    return f"{p:.3f}".lstrip("0")


@_styled
def plot_decision(
    decision: pd.DataFrame,
    *,
    models: Sequence[str] | None = None,
    splits: Sequence[str] | None = None,
    synthetic: bool = False,
) -> Figure:
    """Decision curves per split: net benefit of each model, treat all and treat none, against threshold.

    ``decision``: ``split model threshold net_benefit net_benefit_all [net_benefit_none]``.
    """
    decision = _require(
        decision, ["split", "model", "threshold", "net_benefit", "net_benefit_all"], "decision curves"
    )
    chosen = _pick_splits(decision, splits, "decision curves")
    fig, axes = _panels(len(chosen))
    for ax, split in zip(axes, chosen, strict=True):
        part = decision[decision["split"].astype(str) == split]
        names = (
            model_order(part["model"]) if models is None else [m for m in models if m in set(part["model"])]
        )
        top = 0.0
        for name in names:
            curve = part[part["model"].astype(str) == name].sort_values("threshold")
            ax.plot(
                curve["threshold"],
                curve["net_benefit"],
                color=_model_color(name, names),
                lw=2.4 if name == COMBINED_MODEL else 1.6,
                label=model_label(name),
            )
            top = max(top, float(np.nanmax(curve["net_benefit"].to_numpy(dtype=float))))
        first = part[part["model"].astype(str) == names[0]].sort_values("threshold") if names else part
        all_nb = first["net_benefit_all"].to_numpy(dtype=float)
        ax.plot(first["threshold"], all_nb, color=_TREAT_ALL, lw=1.2, ls="--", label="Treat all")
        none = first["net_benefit_none"] if "net_benefit_none" in first else np.zeros(len(first))
        ax.plot(first["threshold"], none, color=_TREAT_NONE, lw=1.2, label="Treat none")
        top = max(top, float(np.nanmax(all_nb)) if len(all_nb) else 0.0, 0.05)
        ax.set_ylim(-0.1 * top - 0.02, top * 1.1)
        ax.set_xlim(0, 1)
        ax.set_title(split_label(split))
        ax.set_xlabel("Threshold probability")
        ax.set_ylabel("Net benefit")
    _shared_legend(fig, axes)
    watermark(fig, synthetic)
    return fig


def _cost_benefit_axis(ax: Any) -> None:
    top = ax.secondary_xaxis("top")
    ticks = [0.1, 0.25, 0.5, 0.75, 0.9]
    top.set_xticks(ticks)
    labels = []
    for t in ticks:
        odds = t / (1 - t)
        labels.append(f"1:{1 / odds:.0f}" if odds < 1 else f"{odds:.0f}:1")
    top.set_xticklabels(labels)
    top.set_xlabel("Cost:Benefit ratio")


@_styled
def plot_clinical_impact(
    impact: pd.DataFrame,
    *,
    model: str = COMBINED_MODEL,
    splits: Sequence[str] | None = None,
    synthetic: bool = False,
) -> Figure:
    """Clinical impact curves per split: number called high risk and true positives per population.

    ``impact``: ``split model threshold high_risk high_risk_events [population]``.
    """
    impact = _require(
        impact, ["split", "model", "threshold", "high_risk", "high_risk_events"], "clinical impact curves"
    )
    impact = impact[impact["model"].astype(str) == model]
    if impact.empty:
        raise ALNMError(f"clinical impact curves: no rows for model {model!r}")
    chosen = _pick_splits(impact, splits, "clinical impact curves")
    fig, axes = _panels(len(chosen), (4.6, 4.4))
    for ax, split in zip(axes, chosen, strict=True):
        curve = impact[impact["split"].astype(str) == split].sort_values("threshold")
        population = int(curve["population"].iloc[0]) if "population" in curve else 1000
        ax.plot(curve["threshold"], curve["high_risk"], color=_EVENT, lw=2, label="Number high risk")
        ax.plot(
            curve["threshold"],
            curve["high_risk_events"],
            color=MODEL_COLORS["clinical"],
            lw=2,
            ls="--",
            label="Number high risk with ALNM",
        )
        ax.set(xlim=(0, 1), ylim=(0, population * 1.02), title=split_label(split))
        ax.set_xlabel("Threshold probability")
        ax.set_ylabel(f"Number high risk (of {population:,})")
        _cost_benefit_axis(ax)
    _shared_legend(
        fig, axes, title=f"Clinical impact of the {model_label(model)[:1].lower()}{model_label(model)[1:]}"
    )
    watermark(fig, synthetic)
    return fig


@_styled
def plot_risk_groups(
    risk_groups: pd.DataFrame, *, splits: Sequence[str] | None = None, synthetic: bool = False
) -> Figure:
    """Proportion of ALNM in the high- and low-risk groups per split (as the study's Figure 1B–D).

    ``risk_groups``: ``split risk_group n n_events [proportion]``.
    """
    groups = _require(risk_groups, ["split", "risk_group", "n", "n_events"], "risk groups")
    chosen = _pick_splits(groups, splits, "risk groups")
    fig, axes = _panels(len(chosen), (3.4, 3.3))
    for ax, split in zip(axes, chosen, strict=True):
        part = groups[groups["split"].astype(str) == split]
        order = _ordered(
            part["risk_group"], ["high", "High risk", "high risk", "low", "Low risk", "low risk"]
        )
        part = part.set_index(part["risk_group"].astype(str)).loc[order]
        n = part["n"].to_numpy(dtype=float)
        events = part["n_events"].to_numpy(dtype=float)
        prop = np.divide(events, n, out=np.zeros_like(n), where=n > 0)
        x = np.arange(len(order))
        ax.bar(x, prop, color=_EVENT, width=0.6, label="ALNM")
        ax.bar(x, 1 - prop, bottom=prop, color=_NON_EVENT, width=0.6, label="No ALNM")
        for xi, p, ni, ei in zip(x, prop, n, events, strict=True):
            ax.text(
                xi,
                p / 2 if p > 0.12 else p + 0.02,
                f"{100 * p:.1f}%\n({ei:.0f}/{ni:.0f})",
                ha="center",
                va="center" if p > 0.12 else "bottom",
                fontsize=9,
                color="white" if p > 0.12 else "black",
            )
        labels = [_risk_label(g) for g in order]
        ax.set_xticks(x, labels)
        ax.set(ylim=(0, 1), title=split_label(split))
        ax.set_ylabel("Proportion of patients")
        _percent_axis(ax)
        ax.grid(axis="x", visible=False)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", frameon=False)
    fig.suptitle("Risk groups at the training cut-off")
    watermark(fig, synthetic)
    return fig


def _risk_label(group: str) -> str:
    text = str(group).replace("_", " ").strip()
    if text.lower() in ("high", "low"):
        text = f"{text} risk"
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------------------------
# Nomogram


def _nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``raw``."""
    if raw <= 0 or not np.isfinite(raw):
        return 10.0
    mag = 10 ** math.floor(math.log10(raw))
    return next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw - 1e-12)


def _tick_text(value: Any) -> str:
    if isinstance(value, str):
        return level_label(value)
    v = float(value)
    return f"{v:g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2g}"


@_styled
def plot_nomogram(
    scale: Mapping[str, Any],
    patient_points: Mapping[str, float] | None = None,
    *,
    title: str | None = "Nomogram for the risk of ALNM",
    synthetic: bool = False,
) -> Figure:
    """An rms-style nomogram from ``LogisticModel.nomogram_scale()``.

    Rows: Points (0–100), one axis per predictor, Total Points, Risk of ALNM (with the training
    cut-off marked). ``patient_points`` (``{variable: points, ..., "total_points": t}``, as
    ``LogisticModel.points``) marks one patient on every axis; a missing total is the sum.
    """
    try:
        axes_spec = list(scale["axes"])
        ppu = float(scale["points_per_unit_lp"])
        offset = float(scale["lp_offset"])
        max_total = float(scale["max_total_points"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ALNMError(
            f"nomogram: the scale is incomplete ({exc!r}); expected LogisticModel.nomogram_scale()"
        ) from exc
    if not axes_spec:
        raise ALNMError("nomogram: the scale has no predictor axes")
    total_step = _nice_step(max_total / 7)
    total_axis = max(math.ceil(max_total / total_step - 1e-9), 1) * total_step
    n_rows = len(axes_spec) + 3
    fig = Figure(figsize=(9.0, 0.52 * n_rows + 1.0), layout="constrained")
    ax = fig.subplots()
    ax.set_axis_off()
    ax.set_xlim(-38, 104)
    ax.set_ylim(-(n_rows - 1) - 1.15, 0.5)

    def axis_row(
        y: float, label: str, positions: Sequence[float], texts: Sequence[str], *, bold: bool = False
    ) -> None:
        ax.text(-36, y, label, ha="left", va="center", fontsize=10.5, weight="bold" if bold else "normal")
        if len(positions):
            ax.plot([min(positions), max(positions)], [y, y], color="black", lw=1.1, solid_capstyle="butt")
        # Labels go below the axis; one that would touch its neighbour goes above, and one that fits
        # on neither side is left out (its tick stays).
        last = {"below": (-1e9, ""), "above": (-1e9, "")}
        for pos, txt in sorted(zip(positions, texts, strict=True)):
            ax.plot([pos, pos], [y, y + 0.12], color="black", lw=1)
            for side in ("below", "above"):
                prev_pos, prev_txt = last[side]
                if pos - prev_pos >= 0.62 * (len(prev_txt) + len(txt)) + 1.0:  # half-widths in axis units
                    last[side] = (pos, txt)
                    ax.text(
                        pos,
                        y - 0.07 if side == "below" else y + 0.17,
                        txt,
                        ha="center",
                        va="top" if side == "below" else "bottom",
                        fontsize=9,
                    )
                    break

    # Points axis
    ticks = list(range(0, 101, 10))
    axis_row(0, "Points", ticks, [str(t) for t in ticks], bold=True)
    for t in range(0, 101, 10):
        ax.plot([t, t], [0, -(len(axes_spec) + 0.3)], color="#DDDDDD", lw=0.6, zorder=0)
    for i, spec in enumerate(axes_spec, start=1):
        pts = [float(p) for _, p in spec["ticks"]]
        labels = [_tick_text(v) for v, _ in spec["ticks"]]
        axis_row(-i, variable_label(str(spec["variable"])), pts, labels)
    # Total points
    y_total = -(len(axes_spec) + 1)
    total_ticks = np.arange(0, total_axis + 1e-9, total_step)
    axis_row(
        y_total,
        "Total Points",
        [100 * t / total_axis for t in total_ticks],
        [f"{t:g}" for t in total_ticks],
        bold=True,
    )
    # Risk axis
    y_risk = y_total - 1
    prob = [(float(p), float(t)) for p, t in scale.get("probability_ticks", [])]
    axis_row(
        y_risk,
        "Risk of ALNM",
        [100 * t / total_axis for _, t in prob],
        [f"{p:g}" for p, _ in prob],
        bold=True,
    )
    cutoff = scale.get("cutoff")
    cutoff_points = scale.get("cutoff_points")
    if cutoff is not None and cutoff_points is not None and np.isfinite(float(cutoff_points)):
        xc = 100 * float(cutoff_points) / total_axis
        if 0 <= xc <= 100:
            ax.plot([xc], [y_risk], marker="v", color=MODEL_COLORS[COMBINED_MODEL], ms=9, zorder=4)
            ax.text(
                xc,
                y_risk - 0.42,
                f"▲ cut-off {float(cutoff):.3f}",
                ha="left" if xc < 70 else "right",
                va="top",
                fontsize=8.5,
                color=MODEL_COLORS[COMBINED_MODEL],
            )

    if patient_points:
        mark = MODEL_COLORS["clinical"]
        total = float(patient_points.get("total_points", np.nan))
        if not np.isfinite(total):
            total = sum(
                float(patient_points[str(s["variable"])])
                for s in axes_spec
                if str(s["variable"]) in patient_points
            )
        for i, spec in enumerate(axes_spec, start=1):
            var = str(spec["variable"])
            if var in patient_points:
                pts = float(patient_points[var])
                ax.plot([pts, pts], [0, -i], color=mark, lw=1, ls=":")
                ax.plot([pts], [-i], "o", color=mark, ms=8, zorder=5)
                ax.text(pts + 1.2, -i + 0.22, f"{pts:.0f}", color=mark, fontsize=8.5, weight="bold")
        xt = 100 * total / total_axis
        risk = 1.0 / (1.0 + math.exp(-(offset + total / ppu)))
        ax.plot([xt, xt], [y_total, y_risk], color=mark, lw=1.2, ls="--")
        ax.plot([xt], [y_total], "o", color=mark, ms=8, zorder=5)
        ax.plot([xt], [y_risk], "D", color=mark, ms=8, zorder=5)
        ax.text(
            xt + 1.2,
            y_risk - 0.75,
            f"patient: {total:.0f} points, risk {risk:.2f}",
            color=mark,
            fontsize=9,
            weight="bold",
            ha="left" if xt < 60 else "right",
        )
    if title:
        ax.set_title(title, loc="left", fontsize=12)
    watermark(fig, synthetic)
    return fig


# --------------------------------------------------------------------------------------------
# Feature selection


def _as_path_frame(path: Any) -> pd.DataFrame:
    frame = path if isinstance(path, pd.DataFrame) else pd.DataFrame(path)
    if "lambda" in frame.columns:
        frame = frame.set_index("lambda")
    elif frame.index.name != "lambda":
        raise ALNMError("LASSO path: expected a 'lambda' index or column")
    return frame.drop(
        columns=[c for c in frame.columns if str(c) in ("(Intercept)", "intercept", "log_lambda")]
    )


def _region_suffix(region: str) -> str:
    return f": {model_label(f'{region}_score')}" if region else ""


def _lambda_lines(ax: Any, lambda_min: float | None, lambda_1se: float | None, lambda_: float | None) -> None:
    """Vertical lines at λ.min and λ.1se; the one used is drawn red (a separate line if it is neither)."""

    def usable(v: float | None) -> bool:
        return v is not None and np.isfinite(v) and v > 0

    used = float(lambda_) if usable(lambda_) else None
    marked = False
    for value, text, style in ((lambda_min, "λ min", ":"), (lambda_1se, "λ 1se", "-.")):
        if not usable(value):
            continue
        is_used = used is not None and math.isclose(float(value), used, rel_tol=1e-9)
        marked = marked or is_used
        ax.axvline(
            math.log(value),
            color="#D00000" if is_used else "#444444",
            ls=style,
            lw=1.6 if is_used else 1.2,
            label=f"{text} = {value:.3g}" + (" (used)" if is_used else ""),
        )
    if used is not None and not marked:
        ax.axvline(math.log(used), color="#D00000", ls="-", lw=1.6, label=f"λ used = {used:.3g}")


@_styled
def plot_lasso_path(
    path: Any,
    *,
    region: str = "",
    lambda_: float | None = None,
    lambda_min: float | None = None,
    lambda_1se: float | None = None,
    synthetic: bool = False,
) -> Figure:
    """LASSO coefficient paths (coefficient against log λ) with the chosen λ marked.

    ``path``: ``RegionScore.lasso_path_`` (index λ, one column per feature; an ``(Intercept)`` column
    is ignored) or its records with a ``lambda`` column.
    """
    frame = _as_path_frame(path)
    if frame.empty or frame.shape[1] == 0:
        raise ALNMError(f"LASSO path{f' ({region})' if region else ''}: no coefficients to draw")
    x = np.log(frame.index.to_numpy(dtype=float))
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    cmap = matplotlib.colormaps["tab20"]
    for j, column in enumerate(frame.columns):
        ax.plot(x, frame[column].to_numpy(dtype=float), lw=1.1, color=cmap(j % 20))
    _lambda_lines(ax, lambda_min, lambda_1se, lambda_)
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("log(λ)")
    ax.set_ylabel("Coefficient (standardised features)")
    ax.set_title("LASSO coefficient path" + _region_suffix(region))
    nonzero = (frame.to_numpy(dtype=float) != 0).sum(axis=1)
    _count_axis(ax, x, nonzero)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", framealpha=0.9)
    watermark(fig, synthetic)
    return fig


def _count_axis(ax: Any, x: np.ndarray, counts: np.ndarray) -> None:
    """glmnet-style top axis: number of non-zero coefficients at a few λ."""
    if len(x) < 2:
        return
    picks = np.unique(np.linspace(0, len(x) - 1, num=min(7, len(x))).round().astype(int))
    top = ax.secondary_xaxis("top")
    top.set_xticks(x[picks])
    top.set_xticklabels([str(int(c)) for c in np.asarray(counts)[picks]])
    top.set_xlabel("Number of non-zero coefficients", fontsize=9)


@_styled
def plot_lasso_cv(
    cv: Any,
    *,
    region: str = "",
    lambda_min: float | None = None,
    lambda_1se: float | None = None,
    lambda_: float | None = None,
    synthetic: bool = False,
) -> Figure:
    """Cross-validated binomial deviance (± SE) against log λ, with λ.min and λ.1se marked.

    ``cv``: ``RegionScore.lasso_cv_`` (``lambda mean_deviance se n_nonzero``) or its records.
    """
    frame = _require(cv, ["lambda", "mean_deviance"], f"LASSO CV curve{f' ({region})' if region else ''}")
    frame = frame.sort_values("lambda")
    x = np.log(frame["lambda"].to_numpy(dtype=float))
    y = frame["mean_deviance"].to_numpy(dtype=float)
    se = frame["se"].to_numpy(dtype=float) if "se" in frame else np.zeros_like(y)
    fig = Figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    ax.errorbar(
        x,
        y,
        yerr=se,
        fmt="o",
        color="#D00000",
        ecolor="#AAAAAA",
        ms=3.5,
        capsize=2,
        lw=0.8,
        label="CV deviance ± SE",
    )
    _lambda_lines(ax, lambda_min, lambda_1se, lambda_)
    ax.set_xlabel("log(λ)")
    ax.set_ylabel("Binomial deviance")
    ax.set_title("LASSO cross-validation" + _region_suffix(region))
    if "n_nonzero" in frame:
        _count_axis(ax, x, frame["n_nonzero"].to_numpy())
    ax.legend(loc="upper left", framealpha=0.9)
    watermark(fig, synthetic)
    return fig


def _as_log(log: Any, region: str) -> pd.DataFrame:
    frame = log if isinstance(log, pd.DataFrame) else pd.DataFrame(list(log))
    missing = [c for c in ("step", "n_in", "n_out") if c not in frame.columns]
    if missing:
        raise ALNMError(
            f"selection funnel ({region}): the selection log lacks column(s) {', '.join(missing)}"
        )
    return frame


@_styled
def plot_selection_funnel(logs: Mapping[str, Any], *, synthetic: bool = False) -> Figure:
    """Features left after each selection step, one bar group per step and a bar per region.

    ``logs``: ``{region: RegionScore.log_}`` (``step n_in n_out ...``; DataFrame or records).
    """
    if not logs:
        raise ALNMError("selection funnel: no selection log given")
    frames = {str(r): _as_log(v, str(r)) for r, v in logs.items()}
    steps = ["input"]
    for frame in frames.values():
        for s in frame["step"].astype(str):
            if s not in steps:
                steps.append(s)
    counts: dict[str, list[float]] = {}
    for region, frame in frames.items():
        by_step = dict(zip(frame["step"].astype(str), frame["n_out"].astype(float), strict=True))
        first = float(frame["n_in"].iloc[0]) if len(frame) else np.nan
        row, last = [], first
        for s in steps:
            value = first if s == "input" else by_step.get(s, last)
            row.append(value)
            last = value
        counts[region] = row
    n_regions = len(frames)
    height = 0.8 / n_regions
    fig = Figure(figsize=(8.0, 0.42 * len(steps) * max(1.0, n_regions * 0.75) + 1.2), layout="constrained")
    ax = fig.subplots()
    y = np.arange(len(steps))[::-1]
    top = max(max(v for v in row if np.isfinite(v)) for row in counts.values())
    for k, (region, row) in enumerate(counts.items()):
        pos = y + (n_regions - 1) * height / 2 - k * height
        color = _model_color(f"{region}_score", [f"{r}_score" for r in counts])
        ax.barh(pos, row, height=height * 0.92, color=color, label=model_label(f"{region}_score"))
        for p, v in zip(pos, row, strict=True):
            if np.isfinite(v):
                ax.text(v + top * 0.01, p, f"{v:.0f}", va="center", ha="left", fontsize=9)
    ax.set_yticks(y, [_STEP_LABELS.get(s, s.replace("_", " ")) for s in steps])
    ax.set_xlim(0, top * 1.12)
    ax.set_xlabel("Features remaining")
    ax.set_title("Feature selection: features left after each step")
    ax.grid(axis="y", visible=False)
    ax.legend(loc="lower right", framealpha=0.95)
    watermark(fig, synthetic)
    return fig


@_styled
def plot_selection_stability(stability: Any, *, top: int = 20, synthetic: bool = False) -> Figure:
    """How often each region feature was kept, one panel per region (the ``top`` most often kept).

    ``stability``: records or a DataFrame with ``region feature final crossfit bootstrap`` (shares 0..1,
    None/NaN where that resampling was not done). Bars: bootstrap resamples (or folds when there was no
    bootstrap); diamonds: cross-fitting folds; filled bars: features of the final score.
    """
    frame = stability if isinstance(stability, pd.DataFrame) else pd.DataFrame(list(stability))
    missing = [c for c in ("region", "feature", "final", "crossfit", "bootstrap") if c not in frame.columns]
    if missing or frame.empty:
        raise ALNMError(f"selection stability: no rows, or columns {', '.join(missing)} missing")
    frame = frame.assign(
        crossfit=pd.to_numeric(frame["crossfit"], errors="coerce"),
        bootstrap=pd.to_numeric(frame["bootstrap"], errors="coerce"),
    )
    regions = list(dict.fromkeys(frame["region"].astype(str)))
    parts = {}
    for region in regions:
        part = frame[frame["region"].astype(str) == region]
        key = part["bootstrap"].fillna(part["crossfit"]).fillna(0.0)
        parts[region] = (
            part.assign(_key=key).sort_values(["_key", "feature"], ascending=[False, True]).head(top)
        )
    rows = max(len(p) for p in parts.values())
    fig = Figure(figsize=(6.2 * len(regions), 0.26 * rows + 1.6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(regions)))
    for ax, region in zip(axes, regions, strict=True):
        part = parts[region]
        color = _model_color(f"{region}_score", [f"{r}_score" for r in regions])
        y = np.arange(len(part))[::-1]
        has_boot = part["bootstrap"].notna().any()
        bars = part["bootstrap"] if has_boot else part["crossfit"]
        final = part["final"].astype(bool).to_numpy()
        ax.barh(
            y,
            bars.fillna(0.0),
            height=0.7,
            color=np.where(final, color, "white"),
            edgecolor=color,
            label="bootstrap resamples" if has_boot else "cross-fitting folds",
        )
        if has_boot and part["crossfit"].notna().any():
            ax.plot(part["crossfit"], y, "D", color="black", markersize=4, label="cross-fitting folds")
        labels = [str(f).removeprefix(f"{region}_") for f in part["feature"]]
        ax.set_yticks(y, [label if len(label) <= 42 else label[:40] + "…" for label in labels], fontsize=8)
        ax.set_xlim(0, 1.02)
        _percent_axis(ax, "x")
        ax.set_xlabel("Share of refits that kept the feature")
        ax.set_title(model_label(f"{region}_score"))
        ax.grid(axis="y", visible=False)
        ax.legend(loc="lower right", framealpha=0.95, fontsize=8)
    watermark(fig, synthetic)
    return fig


# --------------------------------------------------------------------------------------------
# Reader study


def _as_fraction(values: np.ndarray) -> np.ndarray:
    finite = values[np.isfinite(values)]
    return values / 100.0 if finite.size and finite.max() > 1.0 else values


_READER_MARKERS = ("o", "s", "^", "D", "v", "P")


@_styled
def plot_readers(
    reader_metrics: pd.DataFrame,
    *,
    roc: pd.DataFrame | None = None,
    split: str | None = None,
    model: str = COMBINED_MODEL,
    simulated: bool = False,
    synthetic: bool = False,
) -> Figure:
    """Reader study (as the study's Figure 3): AUC and accuracy of each reader unaided vs aided.

    With ``roc`` and ``split`` a first panel shows the model's ROC curve on that split and each
    reader's operating point unaided (open) and aided (filled). ``reader_metrics``: ``reader session
    auc [auc_low auc_high] accuracy sensitivity specificity ...`` with sessions ``unaided``/``aided``.
    """
    metrics = _require(reader_metrics, ["reader", "session", "auc", "accuracy"], "reader study")
    readers = list(dict.fromkeys(metrics["reader"].astype(str)))
    sessions = _ordered(metrics["session"], ["unaided", "aided"])
    curve = None
    if roc is not None and split is not None and not roc.empty:
        curve = roc[(roc["split"].astype(str) == str(split)) & (roc["model"].astype(str) == model)]
        curve = curve if len(curve) else None
    n_panels = 3 if curve is not None else 2
    fig = Figure(figsize=(4.4 * n_panels, 4.4), layout="constrained")
    axes = list(fig.subplots(1, n_panels))
    colors = {r: _EXTRA_COLORS[i % len(_EXTRA_COLORS)] for i, r in enumerate(readers)}
    if curve is not None and {"sensitivity", "specificity"} <= set(metrics.columns):
        ax = axes.pop(0)
        fpr = 1 - curve["specificity"].to_numpy(dtype=float)
        tpr = curve["sensitivity"].to_numpy(dtype=float)
        order = np.lexsort((tpr, fpr))
        ax.plot(
            np.r_[0, fpr[order], 1],
            np.r_[0, tpr[order], 1],
            color=_model_color(model),
            lw=2,
            label=f"{model_label(model)} (AUC {float(curve['auc'].iloc[0]):.2f})",
        )
        for reader in readers:
            rows = metrics[metrics["reader"].astype(str) == reader]
            rows = rows.set_index(rows["session"].astype(str))
            pts = {}
            for s in sessions:
                if s in rows.index:
                    sen = float(_as_fraction(np.array([rows.loc[s, "sensitivity"]], dtype=float))[0])
                    spe = float(_as_fraction(np.array([rows.loc[s, "specificity"]], dtype=float))[0])
                    pts[s] = (1 - spe, sen)
                    filled = s != "unaided"
                    # readers at the same point stay visible: own marker shape, later ones smaller and on top
                    k = readers.index(reader)
                    ax.plot(
                        *pts[s],
                        marker=_READER_MARKERS[k % len(_READER_MARKERS)],
                        ms=max(11 - 2.5 * k, 5),
                        color=colors[reader],
                        mfc=colors[reader] if filled else "white",
                        mew=1.8,
                        ls="none",
                        zorder=3 + k,
                        label=f"{reader} ({s})",
                    )
            if "unaided" in pts and "aided" in pts:
                ax.annotate(
                    "",
                    xy=pts["aided"],
                    xytext=pts["unaided"],
                    arrowprops={"arrowstyle": "->", "color": colors[reader], "lw": 1.2},
                )
        ax.plot([0, 1], [0, 1], ls=":", color="#888888", lw=1)
        ax.set(
            xlim=(-0.01, 1.01), ylim=(-0.01, 1.01), aspect="equal", title=f"ROC, {split_label(str(split))}"
        )
        ax.set_xlabel("1 − Specificity")
        ax.set_ylabel("Sensitivity")
        ax.legend(loc="lower right", fontsize=8, framealpha=0.9)
    session_colors = {"unaided": "#9DB9D3", "aided": MODEL_COLORS["clinical"]}
    width = 0.8 / max(len(sessions), 1)
    for ax, column, label in ((axes[0], "auc", "AUC"), (axes[1], "accuracy", "Accuracy")):
        x = np.arange(len(readers))
        for k, s in enumerate(sessions):
            rows = metrics[metrics["session"].astype(str) == s]
            rows = rows.set_index(rows["reader"].astype(str))
            values = np.array([float(rows.loc[r, column]) if r in rows.index else np.nan for r in readers])
            if column != "auc":
                values = _as_fraction(values)
            pos = x - 0.4 + width * (k + 0.5)
            err = None
            if column == "auc" and {"auc_low", "auc_high"} <= set(rows.columns):
                lo = np.array([float(rows.loc[r, "auc_low"]) if r in rows.index else np.nan for r in readers])
                hi = np.array(
                    [float(rows.loc[r, "auc_high"]) if r in rows.index else np.nan for r in readers]
                )
                err = [np.clip(values - lo, 0, None), np.clip(hi - values, 0, None)]
            ax.bar(
                pos,
                values,
                width=width * 0.92,
                yerr=err,
                capsize=3,
                color=session_colors.get(s, _EXTRA_COLORS[k % len(_EXTRA_COLORS)]),
                label="Without AI" if s == "unaided" else "With AI" if s == "aided" else s,
            )
            for p, v in zip(pos, values, strict=True):
                if np.isfinite(v):
                    text = f"{v:.2f}" if column == "auc" else f"{100 * v:.1f}%"
                    ax.text(
                        p,
                        0.02,
                        text,
                        ha="center",
                        va="bottom",
                        fontsize=8.5,
                        color="white",
                        weight="bold",
                        rotation=90 if len(readers) > 3 else 0,
                    )
        ax.set_xticks(x, readers)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(label)
        ax.set_title(f"{label} without and with AI")
        ax.grid(axis="x", visible=False)
        if column != "auc":
            _percent_axis(ax)
        ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    if simulated:
        fig.suptitle("Reader study — SIMULATED reads (not real radiologists)", color="#B00000", weight="bold")
    watermark(fig, synthetic)
    return fig


# --------------------------------------------------------------------------------------------
# Output


def save_figure(fig: Figure, out_dir: str | os.PathLike[str], name: str, dpi: int = 150) -> tuple[Path, Path]:
    """Write ``fig`` as ``<out_dir>/<name>.png`` and ``.svg`` atomically; returns both paths."""
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise ALNMError(f"figure name {name!r} must be a plain file name without folders")
    out = Path(out_dir)
    png, svg = out / f"{name}.png", out / f"{name}.svg"
    with matplotlib.rc_context(FIGURE_STYLE):
        with atomic_path(png) as tmp:
            fig.savefig(tmp, format="png", dpi=dpi, metadata={"Software": None})
        with atomic_path(svg) as tmp:
            fig.savefig(tmp, format="svg", metadata={"Date": None})
    return png, svg


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 130) -> bytes:
    """The figure rendered in memory (``png`` or ``svg``)."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(FIGURE_STYLE):
        meta = {"Software": None} if fmt == "png" else {"Date": None}
        fig.savefig(buffer, format=fmt, dpi=dpi, metadata=meta)
    return buffer.getvalue()


def _table(source: Any, key: str) -> pd.DataFrame | None:
    table = source.get(key) if isinstance(source, Mapping) else None
    return table if isinstance(table, pd.DataFrame) and not table.empty else None


def draw_all(
    evaluation: Any,
    model_summary: Mapping[str, Any] | None = None,
    *,
    synthetic: bool = False,
    readers_simulated: bool = False,
    reader_split: str | None = None,
    only: Iterable[str] | None = None,
) -> dict[str, Figure]:
    """Every figure the inputs allow, by stable name.

    Names: ``roc calibration decision clinical_impact risk_groups nomogram selection_funnel
    lasso_path_<region> lasso_cv_<region> selection_stability readers``. ``evaluation`` has ``.tables`` and ``.curves``
    (see :mod:`ALNMPredictorLib.report`); ``model_summary`` the keys ``nomogram``,
    ``selection_logs``, ``lasso_path``, ``lasso_cv`` and ``lambdas`` as documented in
    :func:`ALNMPredictorLib.report.write_report`. Missing inputs just omit their figure; ``only``
    restricts the drawing to those names.
    """
    wanted = None if only is None else set(only)

    def want(name: str) -> bool:
        return wanted is None or name in wanted

    tables = getattr(evaluation, "tables", {}) or {}
    curves = getattr(evaluation, "curves", {}) or {}
    summary = dict(model_summary or {})
    figures: dict[str, Figure] = {}
    roc = _table(curves, "roc")
    if roc is not None and want("roc"):
        figures["roc"] = plot_roc(roc, table3=_table(tables, "table3"), synthetic=synthetic)
    binned = _table(curves, "calibration_binned")
    if binned is not None and (binned["model"].astype(str) == COMBINED_MODEL).any() and want("calibration"):
        figures["calibration"] = plot_calibration(
            binned,
            smooth=_table(curves, "calibration_smooth"),
            hosmer_lemeshow=_table(tables, "hosmer_lemeshow"),
            synthetic=synthetic,
        )
    decision = _table(curves, "decision")
    if decision is not None and want("decision"):
        figures["decision"] = plot_decision(decision, synthetic=synthetic)
    impact = _table(curves, "clinical_impact")
    if (
        impact is not None
        and (impact["model"].astype(str) == COMBINED_MODEL).any()
        and want("clinical_impact")
    ):
        figures["clinical_impact"] = plot_clinical_impact(impact, synthetic=synthetic)
    groups = _table(tables, "risk_groups")
    if groups is not None and want("risk_groups"):
        figures["risk_groups"] = plot_risk_groups(groups, synthetic=synthetic)
    if summary.get("nomogram") and want("nomogram"):
        figures["nomogram"] = plot_nomogram(summary["nomogram"], synthetic=synthetic)
    logs = summary.get("selection_logs") or {}
    if logs and want("selection_funnel"):
        figures["selection_funnel"] = plot_selection_funnel(logs, synthetic=synthetic)
    lambdas = summary.get("lambdas") or {}
    for region, path in (summary.get("lasso_path") or {}).items():
        if not want(f"lasso_path_{region}"):
            continue
        lam = lambdas.get(region, {})
        figures[f"lasso_path_{region}"] = plot_lasso_path(
            path,
            region=region,
            lambda_=lam.get("lambda"),
            lambda_min=lam.get("lambda_min"),
            lambda_1se=lam.get("lambda_1se"),
            synthetic=synthetic,
        )
    for region, cv in (summary.get("lasso_cv") or {}).items():
        if not want(f"lasso_cv_{region}"):
            continue
        lam = lambdas.get(region, {})
        figures[f"lasso_cv_{region}"] = plot_lasso_cv(
            cv,
            region=region,
            lambda_=lam.get("lambda"),
            lambda_min=lam.get("lambda_min"),
            lambda_1se=lam.get("lambda_1se"),
            synthetic=synthetic,
        )
    stability = summary.get("selection_stability")
    if stability is not None and len(stability) and want("selection_stability"):
        figures["selection_stability"] = plot_selection_stability(stability, synthetic=synthetic)
    readers = _table(tables, "reader_metrics")
    if readers is not None and want("readers"):
        if reader_split is None:
            reader_split = (getattr(evaluation, "summary", None) or {}).get("reader_split")
        figures["readers"] = plot_readers(
            readers, roc=roc, split=reader_split, simulated=readers_simulated, synthetic=synthetic
        )
    return figures


def save_all(
    evaluation: Any,
    model_summary: Mapping[str, Any] | None,
    out_dir: str | os.PathLike[str],
    *,
    synthetic: bool = False,
    readers_simulated: bool = False,
    reader_split: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, tuple[Path, Path]]:
    """Draw every figure (:func:`draw_all`) and save each as PNG + SVG in ``out_dir``; name → paths."""
    figures = draw_all(
        evaluation,
        model_summary,
        synthetic=synthetic,
        readers_simulated=readers_simulated,
        reader_split=reader_split,
    )
    out: dict[str, tuple[Path, Path]] = {}
    for name, fig in figures.items():
        if progress is not None:
            progress(name)
        out[name] = save_figure(fig, out_dir, name)
    return out
