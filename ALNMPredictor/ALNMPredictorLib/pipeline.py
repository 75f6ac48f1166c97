"""The end-to-end pipeline behind ``alnm train``, ``alnm predict``, ``alnm evaluate`` and ``alnm run``.

``train``: cohort → features (extracted, or read from a table) → region scores + logistic models fitted
on the training split → saved model (bundle) + predictions for every case. ``predict``: a saved model
applied to new cases, the same code path as evaluation. ``evaluate``: predictions per split → the
study's tables, figures and the HTML report. A case that cannot be processed is recorded with its
error and the run goes on; the exit status is 1 when some cases failed.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import logging
import os
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib import SYNTHETIC_LABEL, __version__
from ALNMPredictorLib.bundle import open_bundle, write_bundle
from ALNMPredictorLib.cohort import sort_problems
from ALNMPredictorLib.errors import ALNMError, InputError
from ALNMPredictorLib.extraction import Features, split_variants
from ALNMPredictorLib.fileio import jsonable, write_json, write_table
from ALNMPredictorLib.modeling import ALNMModel, score_column

log = logging.getLogger(__name__)

MODEL_DIR = "model"
FEATURES_DIR = "features"
REPORT_DIR = "report"
PREDICTIONS = "predictions.csv"


# --------------------------------------------------------------------------------------------------
# Settings


@dataclass
class PipelineSettings:
    """Every setting of a run; recorded in the saved model and the report.

    Defaults follow the study, except where evidence says otherwise for real 2D ultrasound (the ``us2d``
    handcrafted preset, standardised images, cross-fitted scores); a cohort's ``study.yaml`` ``settings:``
    section and command-line options override them (in that order).
    """

    handcrafted: str = (
        "us2d"  # the reference study's "paper" predicted worse on real 2D ultrasound (BENCHMARKS.md)
    )
    deep: str = "imagenet"  # imagenet | none | auto | off | path to a VGG19 state dict
    normalize: bool = True  # standardise each image's intensities before extraction (scanner gain, range)
    full_table: bool = False  # also compute the features that are rounding noise on a 2D image (paper: 372)
    deep_epochs: int = 50
    deep_input_size: int = 224
    deep_finetune: str = "frozen"  # frozen (heads on the ImageNet trunk, the study) | full (the trunk too)
    seed: int = 0
    workers: int | None = None
    scheduler: str | None = (
        None  # a Dask scheduler (tcp://HOST:PORT) or "local" for extraction; None: process pool
    )
    icc_threshold: float = 0.80
    icc_form: str = "ICC2"
    corr_threshold: float = 0.9
    mi_top_k: int = 30
    lasso_folds: int = 10
    lasso_rule: str = "lambda.min"
    screen_p: float = 0.05
    stepwise_p: float = 0.05
    n_boot: int = 1000
    score_fit: str = "crossfit"  # crossfit (honest second stage) | insample (the reference study's way)
    crossfit_folds: int = 5
    optimism_boot: int = 200  # bootstrap resamples of the optimism-corrected internal validation; 0 skips it

    def __post_init__(self) -> None:
        """Check every value's type and range (study.yaml is free text: ``mi_top_k: thirty``, ``normalize: 'no'``)."""
        for name, (kind, low, high) in _SETTING_RULES.items():
            value = getattr(self, name)
            if value is None and name in ("workers", "scheduler"):
                continue
            setattr(self, name, _checked_setting(name, value, kind, low, high))
        if self.lasso_rule not in ("lambda.min", "lambda.1se"):
            raise ALNMError(f"setting lasso_rule: must be lambda.min or lambda.1se, got {self.lasso_rule!r}")
        if self.icc_form not in ("ICC1", "ICC2", "ICC3"):
            raise ALNMError(f"setting icc_form: must be ICC1, ICC2 or ICC3, got {self.icc_form!r}")
        if self.score_fit not in ("crossfit", "insample"):
            raise ALNMError(f"setting score_fit: must be crossfit or insample, got {self.score_fit!r}")
        if self.deep_finetune not in ("frozen", "full"):
            raise ALNMError(f"setting deep_finetune: must be frozen or full, got {self.deep_finetune!r}")

    def record(self) -> dict[str, Any]:
        """Every setting by name, as written into outputs (model, extraction.json, report)."""
        return asdict(self)

    def deep_options(self) -> dict[str, Any]:
        """The :class:`~ALNMPredictorLib.deep.DeepFeatureExtractor` arguments these settings fix."""
        return {
            "epochs": self.deep_epochs,
            "seed": self.seed,
            "input_size": self.deep_input_size,
            "finetune": self.deep_finetune,
        }

    @classmethod
    def from_sources(cls, *sources: Mapping[str, Any] | None) -> PipelineSettings:
        """Merge mappings left to right (later wins); unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        merged: dict[str, Any] = {}
        for source in sources:
            for key, value in (source or {}).items():
                if value is None:
                    continue
                if key not in known:
                    raise ALNMError(f"unknown setting '{key}' (known: {', '.join(sorted(known))})")
                merged[key] = value
        return cls(**merged)

    def score_params(self) -> dict[str, Any]:
        """Parameters for every RegionScore."""
        return {
            "icc_threshold": self.icc_threshold,
            "icc_form": self.icc_form,
            "corr_threshold": self.corr_threshold,
            "mi_top_k": self.mi_top_k,
            "lasso_folds": self.lasso_folds,
            "lasso_rule": self.lasso_rule,
        }


#: setting -> (type, lowest, highest allowed value; None = unbounded)
_SETTING_RULES: dict[str, tuple[type, float | None, float | None]] = {
    "handcrafted": (str, None, None),
    "deep": (str, None, None),
    "normalize": (bool, None, None),
    "deep_epochs": (int, 1, None),
    "deep_input_size": (int, 32, None),
    "deep_finetune": (str, None, None),
    "seed": (int, 0, None),
    "full_table": (bool, None, None),
    "workers": (int, 1, None),
    "scheduler": (str, None, None),
    "icc_threshold": (float, 0.0, 1.0),
    "icc_form": (str, None, None),
    "corr_threshold": (float, 0.0, 1.0),
    "mi_top_k": (int, 1, None),
    "lasso_folds": (int, 2, None),
    "lasso_rule": (str, None, None),
    "screen_p": (float, 0.0, 1.0),
    "stepwise_p": (float, 0.0, 1.0),
    "n_boot": (int, 0, None),
    "score_fit": (str, None, None),
    "crossfit_folds": (int, 2, None),
    "optimism_boot": (int, 0, None),
}


def _checked_setting(name: str, value: Any, kind: type, low: float | None, high: float | None) -> Any:
    """``value`` as ``kind`` (an integral float is a whole number), or ALNMError saying what is expected."""
    wanted = {
        bool: "true or false (without quotes)",
        int: "a whole number",
        float: "a number",
        str: "a text",
    }[kind]
    if kind is bool:
        ok = isinstance(value, bool | np.bool_)
    elif kind is int:
        ok = (
            isinstance(value, int | np.integer | float)
            and not isinstance(value, bool)
            and float(value).is_integer()
        )
    elif kind is float:
        ok = isinstance(value, int | float | np.number) and not isinstance(value, bool) and np.isfinite(value)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ALNMError(
            f"setting {name}: must be {wanted}, got {value!r} (study.yaml settings or the command line)"
        )
    value = kind(value)
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
        raise ALNMError(f"setting {name}: must be {bounds}, got {value!r}")
    return value


def software_versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries that shape the numbers."""
    out = {
        "alnm-predictor": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in (
        "numpy",
        "scipy",
        "pandas",
        "scikit-learn",
        "pyradiomics-bhklab",
        "pyradiomics",
        "SimpleITK",
        "torch",
        "torchvision",
        "matplotlib",
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


# --------------------------------------------------------------------------------------------------
# Features


#: how to get PyTorch, in a user's words (the handcrafted path needs none)
TORCH_INSTALL = (
    "install it with pip install 'alnm-predictor[deep]' (on a computer without an NVIDIA GPU first pip install torch "
    "torchvision --index-url https://download.pytorch.org/whl/cpu, which skips about 4 GB of CUDA libraries; in 3D "
    "Slicer, the PyTorch extension installs it), or run with --deep off for handcrafted features only"
)


def torch_available() -> bool:
    """Whether PyTorch can be imported (without importing it)."""
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def _check_deep(deep: str) -> None:
    """ALNMError unless ``deep`` names a backbone choice or an existing weights file, and PyTorch is there
    when deep features are asked for (``auto`` goes without them, see :func:`_resolve_deep`)."""
    if deep not in ("imagenet", "none", "auto", "off") and not Path(deep).expanduser().is_file():
        raise ALNMError(
            f"setting deep: must be imagenet, none, auto, off or a VGG19 weights file, got {deep!r} "
            "(no such file)"
        )
    if deep not in ("auto", "off") and not torch_available():
        raise ALNMError(f"--deep {deep}: deep features need PyTorch, which is not installed: {TORCH_INSTALL}")


def resolve_deep(deep: str, download: bool | None = None, progress: bool = True) -> str | None:
    """``auto`` → imagenet when its weights are on disk (or downloaded with consent), else random (warned);
    ``off`` → no deep features. ``imagenet`` weights are found (or downloaded with consent) here, before any
    work, so that a missing file stops the run at once with what to do."""
    if deep == "off":
        return None
    _check_deep(deep)
    if deep == "auto" and not torch_available():
        log.warning(
            "PyTorch is not installed: no deep features, handcrafted only (for deep features, %s)",
            TORCH_INSTALL.removesuffix(", or run with --deep off for handcrafted features only"),
        )
        return None
    if deep in ("auto", "imagenet"):
        try:
            imagenet_weights(download, progress)
            return "imagenet"
        except ALNMError as exc:
            if deep == "imagenet":
                raise
            from ALNMPredictorLib.deep import random_backbone_explained

            log.warning(
                "%s; deep features use a RANDOM VGG19 backbone, which carries no ImageNet knowledge (for tests only)",
                exc,
            )
            random_backbone_explained()  # said here, with what to do: not again when the trunk is built
            return "none"
    return deep


def imagenet_weights(download: bool | None = None, progress: bool = True) -> Path:
    """torchvision's ImageNet VGG19 file: found where the library looks, or downloaded into torch hub's cache
    with consent (``download`` True, or None and ``$ALNM_ALLOW_DOWNLOAD=1``); ALNMError with what to do if not."""
    from ALNMPredictorLib.deep import find_imagenet_weights

    return find_imagenet_weights(download=download, progress=None if progress else (lambda done, total: None))


def extract_features(
    cohort: Any,
    out_dir: Path,
    settings: PipelineSettings,
    *,
    fitted_deep: Mapping[str, Any] | None = None,
    handcrafted: Any = None,
    progress: bool = True,
    normalize: bool | None = None,
    cache_dir: Path | None = None,
    download: bool | None = None,
) -> Features:
    """Extract (or reuse cached) features of every case.

    Without ``fitted_deep``, deep heads are trained on the training split (``settings.deep`` names the
    backbone); with it (prediction), the saved heads are applied and nothing is trained.
    ``normalize`` (default ``settings.normalize``): False when applying a saved model, whose recorded
    handcrafted parameters and deep settings already say how its images were normalised.
    When applying (``fitted_deep`` or ``handcrafted`` given), only the main masks are extracted; ``cache_dir``
    (default ``out_dir/cache``) may be the training run's cache, whose entries are reused by key.
    ``download``: consent to download the ImageNet weights (None: ``$ALNM_ALLOW_DOWNLOAD``).
    """
    from ALNMPredictorLib.extraction import extract_cohort

    deep_spec = None if fitted_deep else resolve_deep(settings.deep, download, progress)
    result = extract_cohort(
        cohort,
        out_dir,
        handcrafted=handcrafted_params(settings.handcrafted, settings.normalize)
        if handcrafted is None
        else handcrafted,
        deep=deep_spec,
        deep_options=settings.deep_options(),
        workers=settings.workers,
        progress=progress,
        fitted_deep=dict(fitted_deep) if fitted_deep else None,
        normalize=settings.normalize if normalize is None else normalize,
        settings=settings.record(),
        variants=["main"] if (fitted_deep or handcrafted is not None) else None,
        cache_dir=cache_dir,
        full_table=settings.full_table,
        scheduler=settings.scheduler,
    )
    variants = split_variants(result.table)
    failed: dict[str, str] = {}
    for case_id, region, variant, error in result.failed:
        if variant == "main":
            failed.setdefault(str(case_id), f"{region}: {error}")
    info = dict(result.info)
    return Features(
        main=variants.get("main", pd.DataFrame()),
        reader2=variants.get("reader2"),
        repeat=variants.get("repeat"),
        failed=failed,
        degenerate=list(result.degenerate),
        info=info,
        deep_models=dict(result.deep_models or {}),
    )


# --------------------------------------------------------------------------------------------------
# Prediction


def clinical_frame(cohort: Any) -> pd.DataFrame:
    """The cohort's clinical columns, typed: categorical levels as text, continuous as float."""
    out = pd.DataFrame(index=cohort.table.index.astype(str))
    for name, var in cohort.clinical.items():
        col = cohort.table[name]
        out[name] = (
            col.astype(str).where(col.notna(), None)
            if var.kind == "categorical"
            else pd.to_numeric(col, errors="coerce")
        )
    return out


def _missing_reason(model: ALNMModel, row: pd.Series, needed: Mapping[str, Sequence[str]]) -> str | None:
    for region, columns in needed.items():
        if region == "clinical":
            continue
        absent = [c for c in columns if c not in row.index or pd.isna(row[c])]
        if absent:
            return f"region {region}: feature {absent[0]} is missing" + (
                f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""
            )
    for col in needed.get("clinical", []):
        if col not in row.index or pd.isna(row[col]) or row[col] is None:
            return f"column {col}: clinical factor required by the model is missing"
    return None


def _unusable(lm: Any, frame: pd.DataFrame) -> dict[str, str]:
    """Cases whose values a fitted logistic model cannot take: a level it was not fitted with, a number that
    is not one (case -> reason naming the column, the value and what the model knows)."""
    out: dict[str, str] = {}
    for var in lm.variables:
        if var not in frame.columns:
            continue
        spec = lm.encoding.get(var) or {}
        values = frame[var]
        for case_id, value in values.items():
            if value is None or (isinstance(value, float) and np.isnan(value)) or str(case_id) in out:
                continue
            if spec.get("type") == "categorical":
                levels = [str(v) for v in spec.get("levels", [])]
                if str(value) not in levels:
                    out[str(case_id)] = (
                        f"column {var}: level {value!r} unknown to the model (it knows {', '.join(levels)})"
                    )
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = float("nan")
                if not np.isfinite(number):
                    out[str(case_id)] = f"column {var}: {value!r} is not a number"
    return out


#: decimals of the probabilities and scores in predictions.csv (far below any clinical difference) and
#: of the nomogram points
PREDICTION_DECIMALS = 6
POINTS_DECIMALS = 2


def predictions_for_writing(predictions: pd.DataFrame, model: ALNMModel, cohort: Any = None) -> pd.DataFrame:
    """predictions.csv as a reader wants it: one row per case in the manifest's order (failed cases in
    place), the Nomo-score and its rule first (``nomo_score`` = the clinical-radiomics model's probability,
    ``risk_group`` high when ``nomo_score`` >= ``youden_cutoff``, the training set's Youden cut-off), labels
    as integers, probabilities and scores rounded to ``PREDICTION_DECIMALS``, points to ``POINTS_DECIMALS``."""
    out = predictions.copy()
    if cohort is not None and hasattr(cohort, "case_ids"):
        order = [str(c) for c in cohort.case_ids()]
        present = [c for c in order if c in out.index] + [c for c in out.index if c not in set(order)]
        out = out.loc[present]
    if "label" in out.columns:
        out["label"] = pd.to_numeric(out["label"], errors="coerce").round().astype("Int64")
    combined = f"prob_{model.combined_model_.name}"
    if combined in out.columns:
        out.insert(0, "nomo_score", pd.to_numeric(out[combined], errors="coerce"))
        out.insert(1, "youden_cutoff", float(model.combined_model_.cutoff))
    for column in out.columns:
        if not pd.api.types.is_float_dtype(out[column]):
            continue
        is_points = column == "total_points" or str(column).startswith("points_")
        out[column] = out[column].round(POINTS_DECIMALS if is_points else PREDICTION_DECIMALS)
    lead = [
        c
        for c in ("split", "center", "label", "status", "nomo_score", "risk_group", "youden_cutoff")
        if c in out.columns
    ]
    out = out[lead + [c for c in out.columns if c not in lead]]
    return out.reset_index()


def predict_cases(
    model: ALNMModel,
    data: pd.DataFrame,
    *,
    meta: pd.DataFrame | None = None,
    failed: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Scores, every model's probability, risk group and nomogram points per case (the predictions table).

    ``data``: features + clinical columns indexed by case_id. ``meta``: split/center/label columns to
    carry. ``failed``: cases whose extraction failed, with the reason. A case lacking something the
    combined model needs, or holding a value it cannot take (a level it was not fitted with), gets status
    ``failed`` and its reason instead of a number; one the other models cannot take gets no probability
    from them, and the ``note`` column says why (also when the manifest lacks a column a model needs).
    """
    failed = dict(failed or {})
    needed = model.required_columns()
    combined = model.combined_model_
    status = pd.Series("ok", index=data.index, dtype=object)
    errors = pd.Series("", index=data.index, dtype=object)
    notes: dict[str, list[str]] = {str(c): [] for c in data.index}
    unusable = _unusable(combined, data)
    for case_id in data.index:
        reason = (
            failed.get(str(case_id))
            or _missing_reason(model, data.loc[case_id], needed)
            or unusable.get(str(case_id))
        )
        if reason:
            status[case_id], errors[case_id] = "failed", reason
    for case_id, reason in failed.items():
        if case_id not in status.index:
            status[case_id], errors[case_id] = "failed", reason
    out = pd.DataFrame(index=pd.Index(status.index, name="case_id"))
    if meta is not None:
        for col in meta.columns:
            out[col] = meta[col].reindex(out.index)
    out["status"] = status
    out["error"] = errors
    ok = [c for c in data.index if status[c] == "ok"]
    good = data.loc[ok]
    if len(good):
        for region, scorer in model.region_scores_.items():
            out.loc[ok, score_column(region)] = scorer.decision_function(good).to_numpy()
            out.loc[ok, f"{region}_out_of_range"] = scorer.out_of_range(good).to_numpy()
        predictors = pd.DataFrame(index=good.index)
        for region in model.region_scores_:
            predictors[score_column(region)] = out.loc[ok, score_column(region)].astype(float)
        for col in model.clinical:
            if col in good.columns:
                predictors[col] = good[col]
        for name, lm in model.models().items():
            absent = [v for v in lm.variables if v not in predictors.columns]
            if absent:
                for case_id in ok:
                    notes[str(case_id)].append(
                        f"prob_{name} not computed: the manifest has no column {absent[0]}"
                    )
                continue
            usable = predictors.dropna(subset=list(lm.variables))
            for case_id in predictors.index.difference(usable.index):
                empty = next(v for v in lm.variables if pd.isna(predictors.at[case_id, v]))
                notes[str(case_id)].append(f"prob_{name} not computed: column {empty} is missing")
            bad = _unusable(lm, usable)
            for case_id, reason in bad.items():
                notes[case_id].append(f"prob_{name} not computed: {reason}")
            usable = usable.loc[[c for c in usable.index if str(c) not in bad]]
            if len(usable):
                out.loc[usable.index, f"prob_{name}"] = lm.predict_proba(usable).to_numpy()
        out.loc[ok, "risk_group"] = np.where(
            out.loc[ok, "prob_clinical_radiomics"].astype(float) >= combined.cutoff, "high", "low"
        )
        pts = combined.points(predictors)
        for col in pts.columns:
            name = col if col == "total_points" else f"points_{col}"
            out.loc[ok, name] = pts[col].to_numpy()
    out["note"] = (
        pd.Series({c: "; ".join(dict.fromkeys(v)) for c, v in notes.items()}, dtype=object)
        .reindex(out.index)
        .fillna("")
    )
    return out


# --------------------------------------------------------------------------------------------------
# Train


@dataclass
class TrainResult:
    """A fitted model with what produced it."""

    model: ALNMModel
    model_dir: Path
    predictions: pd.DataFrame
    features: Features
    settings: PipelineSettings
    bundle_info: dict[str, Any]
    warnings: list[str]


def _meta(cohort: Any) -> pd.DataFrame:
    table = cohort.table
    out = pd.DataFrame(index=table.index.astype(str))
    out["split"] = (
        table[cohort.split_column].astype(str).to_numpy()
        if cohort.split_column in table
        else cohort.train_split
    )
    if cohort.center_column and cohort.center_column in table:
        out["center"] = table[cohort.center_column].to_numpy()
    out["label"] = cohort.labels().astype("Float64").to_numpy() if cohort.label_column in table else np.nan
    return out


def _usable_cohort(cohort: Any, progress: bool) -> tuple[dict[str, str], list[str]]:
    """Validate; cases with errors are set aside (case → reason); global errors stop the run."""
    return sort_problems(cohort.validate(progress=progress))


#: fewest usable training cases a model is fitted on
MIN_TRAINING_CASES = 20


def _training_cases(cohort: Any, meta: pd.DataFrame, failed: Mapping[str, str]) -> list[str]:
    """The usable training cases; ALNMError naming the commonest reasons when too few are left to fit on."""
    train_ids = [c for c in cohort.case_ids(cohort.train_split) if c not in failed]
    labels = meta.loc[train_ids, "label"]
    if labels.isna().any():
        raise InputError(
            "training case without a label",
            case=str(labels.index[labels.isna().to_numpy()][0]),
            column="label",
        )
    if len(train_ids) >= MIN_TRAINING_CASES and labels.nunique() == 2:
        return train_ids
    set_aside = [failed[c] for c in cohort.case_ids(cohort.train_split) if c in failed]
    why = ""
    if set_aside:
        reasons = pd.Series(set_aside).value_counts()
        shown = "; ".join(f"{n} x {reason}" for reason, n in reasons.head(3).items())
        why = f"; {len(set_aside)} training case(s) were set aside, most often for: {shown}"
    raise ALNMError(
        f"the training split '{cohort.train_split}' has {len(train_ids)} usable cases with "
        f"{int(labels.sum())} events: too few to fit a model (at least {MIN_TRAINING_CASES}, both "
        f"outcomes){why}"
    )


def train(
    manifest: str | os.PathLike[str] | Any,
    out_dir: str | os.PathLike[str],
    settings: PipelineSettings | None = None,
    *,
    progress: bool = True,
    feature_table: Any = None,
    download: bool | None = None,
) -> TrainResult:
    """Fit the whole model on the training split and save it to ``out_dir/model``.

    ``feature_table``: a :class:`~ALNMPredictorLib.tablefeatures.FeatureTableSpec` to read features from
    instead of extracting them from images. ``download``: consent to download torchvision's ImageNet
    VGG19 weights when ``settings.deep`` needs them and they are not on this machine (None: the
    ``$ALNM_ALLOW_DOWNLOAD`` environment variable decides).
    """
    from ALNMPredictorLib.cohort import load_manifest

    cohort = manifest if hasattr(manifest, "table") else load_manifest(manifest)
    settings = settings or pipeline_settings(cohort.settings)
    out_dir = Path(out_dir)
    if feature_table is not None:
        from ALNMPredictorLib.tablefeatures import training_features

        features, bad, warnings = training_features(cohort, feature_table)
    else:
        if not cohort.regions:  # a feature-table manifest without --features: say that, not what deep needs
            raise InputError(
                "no <region>_image column (e.g. tumor_image, ln_image): nothing to extract; "
                "for features in a table, give --features TABLE",
                path=cohort.path,
            )
        _check_deep(settings.deep)
        if settings.deep == "imagenet":  # found or fetched now, not after hours of handcrafted extraction
            imagenet_weights(download, progress)
        bad, warnings = _usable_cohort(cohort, progress)
        _training_cases(cohort, _meta(cohort), bad)  # enough cases left? (before hours of extraction)
        features = extract_features(
            cohort, out_dir / FEATURES_DIR, settings, progress=progress, download=download
        )
    failed = {**bad, **{k: v for k, v in features.failed.items() if k not in bad}}
    clinical = clinical_frame(cohort)
    data = features.main.join(clinical, how="outer")
    meta = _meta(cohort)
    train_ids = _training_cases(cohort, meta, failed)
    labels = meta.loc[train_ids, "label"]
    kinds = {n: v.kind for n, v in cohort.clinical.items()}
    model = ALNMModel(
        regions=list(features.info.get("regions", cohort.regions)),
        clinical=list(cohort.clinical),
        categorical=[n for n, k in kinds.items() if k == "categorical"],
        reference={
            n: v.reference
            for n, v in cohort.clinical.items()
            if v.kind == "categorical" and v.reference is not None
        },
        screen_p=settings.screen_p,
        stepwise_p=settings.stepwise_p,
        score_params=settings.score_params(),
        random_state=settings.seed,
        score_fit=settings.score_fit,
        crossfit_folds=settings.crossfit_folds,
    )
    train_rows = data.loc[train_ids]
    model.fit(
        train_rows,
        labels.astype(int),
        reader2=None
        if features.reader2 is None
        else features.reader2.loc[features.reader2.index.isin(train_ids)],
        repeat=None
        if features.repeat is None
        else features.repeat.loc[features.repeat.index.isin(train_ids)],
        degenerate=features.degenerate,
    )
    predictions = predict_cases(
        model, data.loc[[c for c in data.index if c not in bad]], meta=meta, failed=failed
    )
    bundle_info = {
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "software": software_versions(),
        "settings": asdict(settings),
        "synthetic": bool(cohort.settings.get("synthetic", False))
        or "SYNTHETIC" in str(cohort.settings.get("description", "")),
        "feature_source": features.info.get("source", "images"),
        "regions": list(model.regions),
        "extraction": features.info,
        "degenerate_features": features.degenerate,
        "clinical_variables": {n: asdict(v) for n, v in cohort.clinical.items()},
        "training": {
            "manifest": str(getattr(cohort, "path", "")),
            "n": len(train_ids),
            "n_events": int(labels.sum()),
            "failed_cases": {k: v for k, v in failed.items()},
        },
    }
    bundle_info["selection_curves"] = selection_curves(model)
    if settings.optimism_boot:
        bundle_info["internal_validation"] = internal_validation(
            model, train_rows, labels.astype(int), features, settings, progress=progress
        ).to_dict()
    model_dir = save_model(out_dir / MODEL_DIR, model, bundle_info, features.deep_models)
    write_table(out_dir / PREDICTIONS, predictions_for_writing(predictions, model, cohort))
    return TrainResult(model, model_dir, predictions, features, settings, bundle_info, warnings)


def internal_validation(
    model: ALNMModel,
    train_rows: pd.DataFrame,
    labels: pd.Series,
    features: Features,
    settings: PipelineSettings,
    *,
    progress: bool = True,
) -> Any:
    """Harrell's bootstrap of the whole model on its training cases (``settings.optimism_boot`` resamples)."""
    from ALNMPredictorLib.optimism import bootstrap_validation

    def training_only(frame: pd.DataFrame | None) -> pd.DataFrame | None:
        return None if frame is None else frame.loc[frame.index.isin(train_rows.index)]

    result = bootstrap_validation(
        model,
        train_rows,
        labels.to_numpy(),
        reader2=training_only(features.reader2),
        repeat=training_only(features.repeat),
        degenerate=features.degenerate,
        n_boot=settings.optimism_boot,
        seed=settings.seed,
        workers=settings.workers,
        progress=progress,
    )
    for failure in result.failures[:3]:
        log.warning("internal validation: %s", failure)
    if result.failures:
        log.warning(
            "internal validation: %d of %d resamples could not be refitted and were left out",
            len(result.failures),
            result.n_boot,
        )
    return result


def save_model(
    model_dir: Path, model: ALNMModel, info: Mapping[str, Any], deep_models: Mapping[str, Any]
) -> Path:
    """Write the bundle: model.json (+ formulas as text) and the deep heads as safetensors."""
    body = dict(info)
    body["model"] = model.to_dict()
    body["deep_heads"] = {region: f"deep_{region}" for region in deep_models}

    def files(tmp: Path) -> None:
        for region, extractor in deep_models.items():
            extractor.save(tmp, f"deep_{region}")
        lines = [SYNTHETIC_LABEL, ""] if body.get("synthetic") else []
        lines += [s.formula() for s in model.region_scores_.values()]
        lines += [m.formula() for m in model.models().values()]
        (tmp / "formulas.txt").write_text("\n".join(lines) + "\n")

    return write_bundle(model_dir, body, files)


@dataclass
class LoadedModel:
    """A saved model ready to apply."""

    model: ALNMModel
    info: dict[str, Any]
    deep_models: dict[str, Any]


def load_model(model_dir: str | os.PathLike[str], *, deep_heads: bool = True) -> LoadedModel:
    """Load and verify a bundle; the deep heads come back as fitted extractors (left out with ``deep_heads=False``,
    e.g. to read the model's clinical factors where PyTorch is not installed)."""
    from ALNMPredictorLib.bundle import (
        MODEL_FILE,
        check_types,
        is_plain_name,
        json_path,
        mapping,
        required,
        text,
    )
    from ALNMPredictorLib.errors import BundleError

    with open_bundle(model_dir) as bundle:
        info = dict(bundle.model)
        try:
            model = ALNMModel.from_dict(required(info, "model", ""), "model")
            if info.get("settings") is not None:
                # strict: a recorded ``normalize: "no"`` is refused, not read as True (see bundle.py)
                check_types(info["settings"], {f.name: f.type for f in fields(PipelineSettings)}, "settings")
                try:  # and whatever PipelineSettings itself checks, as predict() will read them
                    PipelineSettings.from_sources(info["settings"])
                except BundleError:
                    raise
                except ALNMError as exc:
                    raise BundleError(f"settings: {exc}") from exc
            heads = dict(mapping(info.get("deep_heads") or {}, "deep_heads"))
            for region, name in heads.items():
                at = json_path("deep_heads", region)
                if region not in model.regions:
                    raise BundleError(f"{at}: a deep head for '{region}', which is not a region of the model")
                if not is_plain_name(text(name, at)):
                    raise BundleError(f"{at}: {name!r} is not the name of a file inside the model")
        except BundleError as exc:
            raise BundleError(f"{model_dir}: {MODEL_FILE}: {exc}") from exc
        for name in heads.values():  # every file the model refers to is covered by the checksums
            bundle.file(f"{name}.json")
            bundle.file(f"{name}.safetensors")
        deep_models = {}
        if deep_heads and heads:
            if not torch_available():
                raise ALNMError(
                    f"{model_dir}: this model has deep features ({', '.join(heads)}), which need PyTorch; "
                    f"{TORCH_INSTALL}"
                )
            from ALNMPredictorLib.deep import DeepFeatureExtractor

            for region, name in heads.items():
                try:
                    deep_models[region] = DeepFeatureExtractor.load(bundle.path, name)
                except (
                    BundleError
                ) as exc:  # a zipped model's files are named inside the zip, not the temporary folder
                    raise BundleError(str(exc).replace(str(bundle.path), str(model_dir))) from exc
    return LoadedModel(model, info, deep_models)


def _training_cache(model_dir: Any) -> Path | None:
    """The feature cache of the run that trained ``model_dir`` (``RUN/model`` → ``RUN/features/cache``) when
    it is there and writable: applying the model to cases it has seen reuses their features by key."""
    if not isinstance(model_dir, str | os.PathLike) or not Path(model_dir).is_dir():
        return None
    cache = Path(model_dir).resolve().parent / FEATURES_DIR / "cache"
    if not (cache.is_dir() and os.access(cache, os.W_OK)):
        return None
    log.info("reusing the feature cache of the training run: %s", cache)
    return cache


def predict(
    manifest: str | os.PathLike[str] | Any,
    model_dir: str | os.PathLike[str] | LoadedModel,
    out_dir: str | os.PathLike[str],
    *,
    settings: PipelineSettings | None = None,
    progress: bool = True,
    feature_table: str | os.PathLike[str] | None = None,
    download: bool | None = None,
) -> tuple[pd.DataFrame, LoadedModel, Any]:
    """Apply a saved model to every case of a manifest; returns (predictions, model, cohort).

    ``feature_table``: the cases' features as a table (required by a model trained on a table).
    ``download``: consent to download the ImageNet VGG19 weights a model's deep heads need (None:
    ``$ALNM_ALLOW_DOWNLOAD``).
    """
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.dependencies import model_needs_imagenet_weights

    if not isinstance(model_dir, LoadedModel) and model_needs_imagenet_weights(model_dir):
        imagenet_weights(download, progress)  # before the model's heads are loaded
    loaded = model_dir if isinstance(model_dir, LoadedModel) else load_model(model_dir)
    cohort = manifest if hasattr(manifest, "table") else load_manifest(manifest)
    saved = PipelineSettings.from_sources(loaded.info.get("settings"))
    if settings is not None:
        saved.workers = settings.workers
    if feature_table is not None or loaded.info.get("feature_source") == "table":
        from ALNMPredictorLib.tablefeatures import prediction_features

        features, bad = prediction_features(cohort, feature_table, loaded.info, loaded.model)
    else:
        bad, _ = _usable_cohort(cohort, progress)
        missing_regions = [r for r in loaded.model.regions if r not in cohort.regions]
        if missing_regions:
            raise InputError(
                f"the model needs region(s) {', '.join(missing_regions)}; the manifest has "
                f"{', '.join(cohort.regions) or 'none'}",
                column=f"{missing_regions[0]}_image",
            )
        features = extract_features(
            cohort,
            Path(out_dir) / FEATURES_DIR,
            saved,
            fitted_deep=loaded.deep_models or None,
            handcrafted=((loaded.info.get("extraction") or {}).get("handcrafted") or {}).get(
                "params", saved.handcrafted
            ),
            progress=progress,
            normalize=False,
            cache_dir=_training_cache(model_dir),
        )
    failed = {**bad, **{k: v for k, v in features.failed.items() if k not in bad}}
    data = features.main.join(clinical_frame(cohort), how="outer")
    predictions = predict_cases(
        loaded.model, data.loc[[c for c in data.index if c not in bad]], meta=_meta(cohort), failed=failed
    )
    return predictions, loaded, cohort


# --------------------------------------------------------------------------------------------------
# CLI


def _common(parser: argparse.ArgumentParser) -> None:
    from ALNMPredictorLib.preflight import positive_int

    parser.add_argument(
        "--workers", type=positive_int, default=None, help="parallel cases (default: all cores)"
    )
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _download_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--download",
        action="store_true",
        default=None,
        help="download torchvision's ImageNet VGG19 weights (vgg19-dcbb9e9d.pth, 548 MB) into torch "
        "hub's cache if the run needs them and they are not on this machine (once; checksum "
        "verified); also ALNM_ALLOW_DOWNLOAD=1. Without it nothing is downloaded",
    )


def _train_options(parser: argparse.ArgumentParser) -> None:
    from ALNMPredictorLib.extraction import PRESET_HELP
    from ALNMPredictorLib.preflight import non_negative_int

    parser.add_argument(
        "--preset", dest="handcrafted", default=None, metavar="us2d|paper|FILE.yaml", help=PRESET_HELP
    )
    parser.add_argument(
        "--deep", default=None, help="VGG19 weights: imagenet, none (random), auto, off, or a state-dict file"
    )
    parser.add_argument(
        "--epochs", dest="deep_epochs", type=int, default=None, help="deep head training epochs"
    )
    parser.add_argument(
        "--finetune",
        dest="deep_finetune",
        choices=("frozen", "full"),
        default=None,
        help="deep head training: frozen (heads on the fixed ImageNet trunk, the default) or full",
    )
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="standardise each image's intensities before extraction, so scanner gain and "
        "dynamic range do not move the features (default: on)",
    )
    parser.add_argument(
        "--full-table",
        action="store_true",
        default=None,
        help="also compute the features that are rounding noise on a 2D image (the paper preset's "
        "372 z-high-pass wavelet features), for the study's whole 851-column table (default: left "
        "out; selection would drop them anyway)",
    )
    parser.add_argument("--seed", type=int, default=None, help="random seed (default 0)")
    from ALNMPredictorLib.extraction import add_scheduler_option

    add_scheduler_option(parser)
    parser.add_argument(
        "--lasso-rule",
        choices=["lambda.min", "lambda.1se"],
        default=None,
        help="the LASSO penalty chosen by cross-validation: lambda.min (least CV deviance, the "
        "default, as the study) or lambda.1se (the largest within one SE of it: fewer features)",
    )
    parser.add_argument("--mi-top-k", type=int, default=None, help="features kept by mutual information")
    parser.add_argument(
        "--score-fit",
        choices=["crossfit", "insample"],
        default=None,
        help="the training cases' region scores the second stage (screen, stepwise model, nomogram, "
        "cut-off) is fitted on: crossfit (out-of-fold, the default: honest) or insample (the reference "
        "study's way, for replication)",
    )
    parser.add_argument(
        "--optimism-boot",
        type=non_negative_int,
        default=None,
        metavar="B",
        help="bootstrap resamples of the internal validation corrected for optimism (Harrell; the whole "
        "model refitted in each; default 200; 0 skips it)",
    )
    from ALNMPredictorLib.tablefeatures import add_feature_table_options

    add_feature_table_options(parser, training=True)
    _download_option(parser)


def pipeline_settings(
    cohort_settings: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
    *,
    source: str = "the command line",
) -> PipelineSettings:
    """The one resolved settings object of a run: defaults, then a study.yaml ``settings:`` section (keys
    that are not pipeline settings, such as ``synthetic`` or ``description``, are ignored), then
    ``overrides`` (``source`` names them: the command line, the Slicer panel). An override that changes a
    value study.yaml set is logged as a warning naming both."""
    known = {f.name for f in fields(PipelineSettings)}
    study = {k: v for k, v in (cohort_settings or {}).items() if k in known}
    for key, value in (overrides or {}).items():
        if value is not None and key in study and study[key] is not None and study[key] != value:
            log.warning(
                "setting %s: %s gives %r, study.yaml %r; %r is used", key, source, value, study[key], value
            )
    return PipelineSettings.from_sources(study, overrides)


#: PipelineSettings fields that ``alnm train`` / ``run`` / ``extract`` take from the command line
CLI_SETTINGS = (
    "handcrafted",
    "deep",
    "deep_epochs",
    "deep_input_size",
    "deep_finetune",
    "normalize",
    "full_table",
    "seed",
    "workers",
    "scheduler",
    "lasso_rule",
    "mi_top_k",
    "score_fit",
    "optimism_boot",
)


def settings_from_args(
    args: argparse.Namespace, cohort_settings: Mapping[str, Any] | None
) -> PipelineSettings:
    """The run's settings: defaults, then study.yaml's ``settings:``, then the options in ``args`` (:data:`CLI_SETTINGS`)."""
    return pipeline_settings(cohort_settings, {k: getattr(args, k, None) for k in CLI_SETTINGS})


def handcrafted_params(spec: Any, normalize: bool) -> Any:
    """The run's pyradiomics parameters with the run's one ``normalize`` setting.

    A parameter file that sets ``setting: normalize`` itself would otherwise standardise the handcrafted
    features one way and the deep crops the other: the run's setting (default, study.yaml, then the command
    line) wins, with a warning naming the file. Presets and files without ``normalize`` pass unchanged.
    """
    from ALNMPredictorLib.handcrafted import PRESETS, load_params

    if spec is None or (isinstance(spec, str) and spec in PRESETS):
        return spec
    params = load_params(spec)
    setting = dict(params.get("setting") or {})
    if "normalize" not in setting or bool(setting["normalize"]) == bool(normalize):
        return spec
    log.warning(
        "%s sets normalize: %s, but the run's setting normalize is %s (study.yaml settings or "
        "--normalize/--no-normalize); %s is used for the handcrafted and the deep features alike",
        spec if isinstance(spec, (str, os.PathLike)) else "the pyradiomics parameters",
        str(bool(setting["normalize"])).lower(),
        str(bool(normalize)).lower(),
        str(bool(normalize)).lower(),
    )
    for key in ("normalize", "normalizeScale", "removeOutliers"):
        setting.pop(key, None)
    params["setting"] = setting
    return params


def configure_train(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm train``."""
    parser.add_argument("manifest", help="cohort manifest (CSV)")
    parser.add_argument("--out", required=True, help="output folder (model/, features/, predictions.csv)")
    _train_options(parser)
    _common(parser)


def run_train(args: argparse.Namespace) -> int:
    """``alnm train``."""
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.preflight import output_folder
    from ALNMPredictorLib.tablefeatures import table_spec_from_args

    output_folder(args.out)
    cohort = load_manifest(args.manifest)
    result = train(
        cohort,
        args.out,
        settings_from_args(args, cohort.settings),
        progress=not args.no_progress,
        feature_table=table_spec_from_args(args),
        download=args.download,
    )
    _print_training(result)
    return 1 if (result.predictions["status"] != "ok").any() else 0


def _print_failures(predictions: pd.DataFrame) -> int:
    """One stderr line per failed case, and per case with a note; returns how many failed."""
    failed = predictions[predictions["status"] != "ok"]
    for case_id, row in failed.iterrows():
        print(f"failed: case {case_id}: {row['error']}", file=sys.stderr)
    if "note" in predictions.columns:
        for case_id, note in predictions.loc[predictions["note"].fillna("") != "", "note"].items():
            print(f"note: case {case_id}: {note}", file=sys.stderr)
    return len(failed)


def _print_training(result: TrainResult) -> None:
    model = result.model
    for scorer in model.region_scores_.values():
        print(scorer.formula())
    print(model.combined_model_.formula())
    print(f"cut-off (training Youden) = {model.combined_model_.cutoff:.3f}")
    _print_failures(result.predictions)
    print(f"model saved to {result.model_dir}")


def _apply_options(parser: argparse.ArgumentParser, manifest_help: str, out_help: str) -> None:
    """Arguments shared by the commands that apply a saved model (predict, evaluate)."""
    from ALNMPredictorLib.tablefeatures import add_feature_table_options

    parser.add_argument("manifest", help=manifest_help)
    parser.add_argument("--model", required=True, help="saved model folder (or .zip)")
    parser.add_argument("--out", required=True, help=out_help)
    add_feature_table_options(parser, training=False)
    _download_option(parser)
    _common(parser)


def configure_predict(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm predict``."""
    _apply_options(parser, "cohort manifest (CSV); labels may be empty", "predictions CSV to write")
    parser.add_argument("--work-dir", default=None, help="feature cache folder (default: beside --out)")
    parser.add_argument(
        "--heatmaps",
        default=None,
        metavar="DIR",
        help="also write Grad-CAM heatmaps (PNG) of every predicted case and region into DIR, listed "
        "in DIR/heatmaps.csv: what the deep head and the region score look at on the ROI crop "
        "(models with deep features)",
    )


def run_predict(args: argparse.Namespace) -> int:
    """``alnm predict``."""
    from ALNMPredictorLib.preflight import output_file, output_folder

    out = output_file(args.out, "predictions file (--out)")
    work = output_folder(
        Path(args.work_dir) if args.work_dir else out.with_name(out.stem + "-work"), "work folder"
    )
    heatmaps = None
    if args.heatmaps:
        from ALNMPredictorLib.dependencies import model_uses_deep_features

        heatmaps = output_folder(args.heatmaps, "heatmaps folder (--heatmaps)")
        if not model_uses_deep_features(args.model) or args.features:
            raise ALNMError(
                f"--heatmaps: the model {args.model} has no deep features applied to images, so Grad-CAM "
                "has nothing to explain; leave --heatmaps out"
            )
    settings = PipelineSettings(workers=args.workers)
    predictions, loaded, cohort = predict(
        args.manifest,
        args.model,
        work,
        settings=settings,
        progress=not args.no_progress,
        feature_table=args.features,
        download=args.download,
    )
    write_table(out, predictions_for_writing(predictions, loaded.model, cohort))
    n_failed = _print_failures(predictions)
    print(f"{len(predictions) - n_failed} case(s) predicted, {n_failed} failed; written to {out}")
    if heatmaps is not None:
        written = write_heatmaps(cohort, loaded, predictions, heatmaps, progress=not args.no_progress)
        for _, row in written[written["error"] != ""].iterrows():
            print(
                f"failed: heatmap of case {row['case_id']}, {row['region']}: {row['error']}", file=sys.stderr
            )
        print(
            f"{int((written['file'] != '').sum())} heatmap(s) written to {heatmaps} (listed in heatmaps.csv)"
        )
    return 1 if n_failed else 0


def write_heatmaps(
    cohort: Any,
    loaded: LoadedModel,
    predictions: pd.DataFrame,
    out_dir: str | os.PathLike[str],
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Grad-CAM PNGs of every successfully predicted case and region of a model with deep features in
    ``out_dir``, and ``out_dir/heatmaps.csv`` listing them (see :func:`ALNMPredictorLib.gradcam.cohort_heatmaps`)."""
    from ALNMPredictorLib.gradcam import cohort_heatmaps

    if not loaded.deep_models:
        raise ALNMError("the model has no deep features: there are no heatmaps to draw")
    ok = [str(c) for c in predictions.index[predictions["status"] == "ok"]]
    bar = _tqdm(progress, "heatmaps")
    if bar is not None:
        bar.unit = "map"
    table = cohort_heatmaps(
        cohort,
        loaded.deep_models,
        loaded.model,
        ok,
        out_dir,
        synthetic=bool(loaded.info.get("synthetic")),
        progress=None
        if bar is None
        else (lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n))),
    )
    if bar is not None:
        bar.close()
    write_table(Path(out_dir) / "heatmaps.csv", table)
    return table


# --------------------------------------------------------------------------------------------------
# Evaluate and report


def selection_curves(model: ALNMModel) -> dict[str, Any]:
    """LASSO paths and CV curves per region (for the report's figures; stored in the bundle)."""
    out: dict[str, Any] = {}
    for region, scorer in model.region_scores_.items():
        path = getattr(scorer, "lasso_path_", None)
        cv = getattr(scorer, "lasso_cv_", None)
        if path is None or cv is None:
            continue
        path = path.loc[:, (path != 0).any(axis=0)] if isinstance(path, pd.DataFrame) else path
        out[region] = {
            "lasso_path": path.reset_index().to_dict(orient="list")
            if isinstance(path, pd.DataFrame)
            else path,
            "lasso_cv": cv.to_dict(orient="list") if isinstance(cv, pd.DataFrame) else cv,
        }
    return out


def model_summary(model: ALNMModel, info: Mapping[str, Any]) -> dict[str, Any]:
    """What the report shows about the fitted model (see :func:`ALNMPredictorLib.report.write_report`)."""
    combined = model.combined_model_
    curves = info.get("selection_curves") or {}
    degenerate = list(info.get("degenerate_features") or [])
    extraction = info.get("extraction") or {}
    deep = extraction.get("deep")
    summary: dict[str, Any] = {
        "formula": combined.formula(),
        "cutoff": combined.cutoff,
        "region_formulas": {r: s.formula() for r, s in model.region_scores_.items()},
        "region_formula_tables": {
            r: s.formula_table().to_dict(orient="records") for r, s in model.region_scores_.items()
        },
        "nomogram": combined.nomogram_scale(),
        "selection_logs": {r: s.log_.to_dict(orient="records") for r, s in model.region_scores_.items()},
        "lasso_path": {r: pd.DataFrame(c["lasso_path"]).to_dict(orient="records") for r, c in curves.items()},
        "lasso_cv": {r: pd.DataFrame(c["lasso_cv"]).to_dict(orient="records") for r, c in curves.items()},
        "lambdas": {
            r: {
                "lambda": s.lambda_,
                "lambda_min": getattr(s, "lambda_min_", None),
                "lambda_1se": getattr(s, "lambda_1se_", None),
            }
            for r, s in model.region_scores_.items()
        },
        "degenerate_features": {
            r: [d for d in degenerate if str(d).startswith(f"{r}_")] for r in model.region_scores_
        },
        "not_computed_features": {
            r: [f"{r}_{n}" for n in (extraction.get("handcrafted") or {}).get("not_computed") or []]
            for r in model.region_scores_
        },
        "deep_weights": _deep_weights_text(deep)
        if info.get("feature_source") != "table"
        else _table_source_text(info),
        "settings": info.get("settings"),
        "seeds": {"seed": (info.get("settings") or {}).get("seed")},
        "versions": info.get("software"),
        "score_fit": score_fit_text(model),
        "model_notes": model.notes(),
        "internal_validation": info.get("internal_validation"),
        "selection_stability": selection_stability(model, info.get("internal_validation")),
    }
    random = random_backbone_regions(deep) if info.get("feature_source") != "table" else []
    if random:
        in_scores = {
            r: [f for f in s.selected_ if f.startswith(f"{r}_deep_")] for r, s in model.region_scores_.items()
        }
        used = (
            ", ".join(f"{r} score: {len(v)} deep feature(s)" for r, v in in_scores.items() if v)
            or "no score kept one"
        )
        summary["random_backbone"] = (
            f"Deep features of {', '.join(random)} come from a RANDOM VGG19 backbone (no ImageNet weights were "
            f"available): they carry no ImageNet knowledge ({used}). Train with --deep imagenet (or a weights file) "
            "for a model to use, or --deep off for handcrafted features only."
        )
        summary["warnings"] = [summary["random_backbone"]]
    return summary


def random_backbone_regions(deep: Mapping[str, Any] | None) -> list[str]:
    """Regions whose deep features came from a random VGG19 backbone (weights ``none``)."""
    if not deep:
        return []
    regions = deep.get("regions") or {}
    return [
        r
        for r, spec in regions.items()
        if ((spec.get("backbone") or {}).get("weights") or deep.get("weights")) == "none"
    ]


def score_fit_text(model: ALNMModel) -> str:
    """How the second stage saw the training cases' region scores, in a sentence."""
    if getattr(model, "score_fit", "insample") == "crossfit":
        info = getattr(model, "crossfit_", None) or {}
        folds = info.get("folds", getattr(model, "crossfit_folds", "?"))
        return (
            f"cross-fitted: each training case's region scores, as the univariate screen, the stepwise model "
            f"and the nomogram saw them, come from the whole selection chain refitted without it ({folds}-fold, "
            f"stratified, seed {info.get('seed', getattr(model, 'random_state', 0))}); test cases get the scores "
            "fitted on all training cases"
        )
    return (
        "in-sample (the reference study's way): the region scores were fitted on the training cases and the "
        "second stage was fitted on those same in-sample scores, which overstates them"
    )


def selection_stability(model: ALNMModel, validation: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """How often each region feature was kept: final score, cross-fitting folds, bootstrap resamples."""
    if validation and validation.get("selection"):
        return [dict(r) for r in validation["selection"]]
    crossfit = getattr(model, "crossfit_", None) or {}
    folds = int(crossfit.get("folds") or 0)
    rows = []
    for region, scorer in model.region_scores_.items():
        in_folds = dict((crossfit.get("selected") or {}).get(region, {}))
        final = set(scorer.selected_)
        for feature in sorted(final | set(in_folds)):
            rows.append(
                {
                    "region": region,
                    "feature": feature,
                    "final": feature in final,
                    "crossfit": in_folds.get(feature, 0) / folds if folds else None,
                    "bootstrap": None,
                }
            )
    return rows


def _table_source_text(info: Mapping[str, Any]) -> str:
    from ALNMPredictorLib.tablefeatures import source_text

    return source_text(info)


def _deep_weights_text(deep: Mapping[str, Any] | None) -> str:
    if not deep:
        return "no deep features (handcrafted only)"
    parts = []
    for region, spec in (deep.get("regions") or {}).items():
        backbone = spec.get("backbone") or {}
        name = backbone.get("weights") or deep.get("weights")
        sha = str(backbone.get("sha256") or backbone.get("tensor_sha256") or "")[:16]
        warn = (
            " - RANDOM backbone (no ImageNet weights): deep features are not ImageNet features"
            if name == "none"
            else ""
        )
        parts.append(f"{region}: VGG19 weights '{name}' (sha256 {sha}...){warn}")
    return "; ".join(parts) or str(deep.get("weights"))


@dataclass
class EvaluateResult:
    """Where the report and tables went, and the evaluation itself."""

    evaluation: Any
    report: Path
    predictions: pd.DataFrame


def evaluate_and_report(
    predictions: pd.DataFrame,
    model: ALNMModel,
    info: Mapping[str, Any],
    cohort: Any,
    out_dir: str | os.PathLike[str],
    *,
    reads: pd.DataFrame | None = None,
    reads_simulated: bool = False,
    reader_split: str | None = None,
    study_comparison: bool = False,
    progress: bool = True,
    command: str = "",
    deep_models: Mapping[str, Any] | None = None,
) -> EvaluateResult:
    """Every table, figure and the HTML report for predictions of a fitted model (per split).

    ``deep_models`` (region → fitted deep feature extractor): adds a gallery of Grad-CAM heatmaps of a few
    true/false positives/negatives per test set, with the randomised-head sanity check.
    """
    from ALNMPredictorLib import plots
    from ALNMPredictorLib.evaluation import evaluate
    from ALNMPredictorLib.report import write_report

    out_dir = Path(out_dir)
    settings = PipelineSettings.from_sources(info.get("settings"))
    synthetic = bool(info.get("synthetic")) or bool(cohort.settings.get("synthetic", False))
    present = [s for s in cohort.splits() if s in set(predictions["split"].astype(str))]
    evaluation = evaluate(
        predictions,
        model.models(),
        clinical=clinical_frame(cohort),
        clinical_kinds={n: v.kind for n, v in cohort.clinical.items()},
        splits=present or None,
        train_split=cohort.train_split,
        reads=reads,
        n_boot=settings.n_boot,
        seed=settings.seed,
    )
    evaluation.save(out_dir / "tables")
    write_table(out_dir / PREDICTIONS, predictions_for_writing(predictions, model, cohort))
    if reads is not None:  # the reads behind the reader study, beside the report (simulated ones named so)
        write_table(out_dir / ("reads_simulated.csv" if reads_simulated else "reads.csv"), reads)
    for region, scorer in model.region_scores_.items():
        scorer.write_formula(out_dir / f"{region}_score_formula.csv", out_dir / f"{region}_score_formula.txt")
    summary = model_summary(model, info)
    write_optimism_tables(out_dir / "tables", summary)
    bar = _tqdm(progress, "figures")
    figures = plots.save_all(
        evaluation,
        summary,
        out_dir / "figures",
        synthetic=synthetic,
        readers_simulated=reads_simulated,
        reader_split=reader_split,
        progress=lambda name: bar.update(1) if bar is not None else None,
    )
    if bar is not None:
        bar.close()
    failed = [
        {"case_id": str(c), "error": str(e)}
        for c, e in predictions.loc[predictions["status"] != "ok", "error"].items()
    ]
    meta = {
        "versions": info.get("software"),
        "settings": info.get("settings"),
        "seeds": {"seed": settings.seed},
        "deep_weights": summary["deep_weights"],
        "readers_simulated": reads_simulated,
        "reader_split": reader_split,
        "failed_cases": failed,
        "warnings": list(info.get("warnings") or [])
        + out_of_range_notes(predictions)
        + coverage_notes(predictions, cohort),
        "command": command,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "cohort": str(getattr(cohort, "path", "")),
        "model_created": info.get("created"),
    }
    if deep_models:
        meta["heatmaps"] = _heatmap_gallery(
            cohort,
            deep_models,
            model,
            predictions,
            out_dir / "heatmaps",
            synthetic=synthetic,
            progress=progress,
        )
    report = write_report(
        out_dir,
        evaluation=evaluation,
        model_summary=summary,
        figures=figures,
        title="ALNM Predictor report" + (" - SYNTHETIC demo cohort" if synthetic else ""),
        synthetic=synthetic,
        study_comparison=study_comparison,
        meta=meta,
    )
    write_json(
        out_dir / "summary.json",
        jsonable({"summary": evaluation.summary, "warnings": evaluation.warnings, "meta": meta}),
    )
    return EvaluateResult(evaluation, report, predictions)


def write_optimism_tables(tables_dir: Path, summary: Mapping[str, Any]) -> None:
    """tables/internal_validation.csv (apparent, optimism, corrected per index) and
    tables/selection_stability.csv (how often each feature was kept), where the model has them."""
    validation = summary.get("internal_validation") or {}
    if validation.get("table"):
        frame = pd.DataFrame.from_dict(validation["table"], orient="index").rename_axis("index").reset_index()
        frame["n_boot"], frame["n_used"], frame["seed"] = (
            validation.get("n_boot"),
            validation.get("n_used"),
            validation.get("seed"),
        )
        write_table(tables_dir / "internal_validation.csv", frame)
    if summary.get("selection_stability"):
        write_table(tables_dir / "selection_stability.csv", pd.DataFrame(summary["selection_stability"]))


def _heatmap_gallery(
    cohort: Any,
    deep_models: Mapping[str, Any],
    model: ALNMModel,
    predictions: pd.DataFrame,
    out_dir: Path,
    *,
    synthetic: bool,
    progress: bool,
) -> dict[str, Any]:
    """The report's Grad-CAM gallery (PNGs in ``out_dir``), or a note when the images cannot be read."""
    from ALNMPredictorLib.gradcam import report_gallery

    if getattr(cohort, "regions", None) is None or predictions.empty:
        return {"items": [], "sanity": {}, "failed": ["no images to draw heatmaps on"]}
    bar = _tqdm(progress, "heatmaps")
    gallery = report_gallery(
        cohort,
        deep_models,
        model,
        predictions,
        out_dir,
        synthetic=synthetic,
        progress=None
        if bar is None
        else (lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n))),
    )
    if bar is not None:
        bar.close()
    return gallery


def coverage_notes(predictions: pd.DataFrame, cohort: Any) -> list[str]:
    """Warnings about what the report's numbers rest on: no test set at all, and models without probabilities."""
    notes = []
    evaluated = predictions[(predictions["status"] == "ok") & predictions["label"].notna()]
    tests = sorted({str(s) for s in evaluated["split"]} - {cohort.train_split})
    if not tests:
        notes.append(
            f"no test set: every number in this report comes from the training split '{cohort.train_split}' "
            "the model was fitted on, so it is optimistic; validate on cases the model has not seen"
        )
    if "note" in predictions.columns:
        counts = (
            predictions.loc[predictions["note"].fillna("") != "", "note"]
            .str.split("; ")
            .explode()
            .value_counts()
        )
        for note, n in counts.items():
            notes.append(f"{n} case(s): {note}")
    return notes


def out_of_range_notes(predictions: pd.DataFrame) -> list[str]:
    """One line per split and region whose cases have score features outside the training range."""
    notes = []
    columns = [c for c in predictions.columns if str(c).endswith("_out_of_range")]
    if not columns or "split" not in predictions.columns:
        return notes
    for split, part in predictions.groupby(predictions["split"].astype(str), sort=False):
        for column in columns:
            counts = pd.to_numeric(part[column], errors="coerce")
            n = int((counts > 0).sum())
            if n:
                region = str(column).removesuffix("_out_of_range")
                notes.append(
                    f"{split}: {n} of {int(counts.notna().sum())} case(s) have {region} score features outside the "
                    f"training range (at most {int(counts.max())}); they were clipped to it "
                    f"(column {column} of the predictions)"
                )
    return notes


def _tqdm(enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(desc=desc, file=sys.stderr, bar_format="{desc}: {n} drawn [{elapsed}]")


def _reads(path: str | None) -> pd.DataFrame | None:
    if not path:
        return None
    from ALNMPredictorLib.reader_study import load_reads

    return load_reads(path)


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm evaluate``."""
    _apply_options(parser, "cohort manifest (CSV) with labels", "report folder")
    parser.add_argument(
        "--readers", default=None, help="reads CSV: case_id, reader, session, call[, confidence]"
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """``alnm evaluate``."""
    from ALNMPredictorLib.preflight import output_folder

    out = output_folder(args.out)
    predictions, loaded, cohort = predict(
        args.manifest,
        args.model,
        out / "work",
        settings=PipelineSettings(workers=args.workers),
        progress=not args.no_progress,
        feature_table=args.features,
        download=args.download,
    )
    reads = _reads(args.readers)
    result = evaluate_and_report(
        predictions,
        loaded.model,
        loaded.info,
        cohort,
        out,
        reads=reads,
        progress=not args.no_progress,
        command="alnm evaluate " + " ".join(sys.argv[2:]),
        deep_models=loaded.deep_models,
    )
    return _finish(result)


def _finish(result: EvaluateResult) -> int:
    summary = result.evaluation.summary
    for split, values in (summary.get("splits") or {}).items():
        aucs = values.get("auc") or {}
        shown = ", ".join(f"{m} {v:.3f}" for m, v in aucs.items() if isinstance(v, float) and np.isfinite(v))
        print(f"{split}: n={values.get('n')} AUC {shown}")
    for warning in result.evaluation.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    n_failed = _print_failures(result.predictions)
    print(f"report: {result.report}")
    if n_failed:
        print(f"{n_failed} case(s) failed; see the report's 'failed cases' section", file=sys.stderr)
        return 1
    return 0


def configure_run(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``alnm run``."""
    parser.add_argument("manifest", help="cohort manifest (CSV)")
    parser.add_argument("--out", required=True, help="output folder (model/, features/, report/)")
    parser.add_argument("--readers", default=None, help="reads CSV for the reader study")
    _train_options(parser)
    _common(parser)


def run_pipeline(
    manifest: str | os.PathLike[str] | Any,
    out_dir: str | os.PathLike[str],
    settings: PipelineSettings | None = None,
    *,
    reads: pd.DataFrame | None = None,
    reads_simulated: bool = False,
    reader_split: str | None = None,
    study_comparison: bool = False,
    progress: bool = True,
    command: str = "",
    feature_table: Any = None,
    download: bool | None = None,
) -> tuple[TrainResult, EvaluateResult]:
    """extract (or read ``feature_table``) → train → evaluate; the model in ``out_dir/model``, the report
    in ``out_dir/report``. ``download``: as for :func:`train`."""
    from ALNMPredictorLib.cohort import load_manifest

    cohort = manifest if hasattr(manifest, "table") else load_manifest(manifest)
    trained = train(
        cohort, out_dir, settings, progress=progress, feature_table=feature_table, download=download
    )
    info = dict(trained.bundle_info)
    info["warnings"] = trained.warnings
    evaluated = evaluate_and_report(
        trained.predictions,
        trained.model,
        info,
        cohort,
        Path(out_dir) / REPORT_DIR,
        reads=reads,
        reads_simulated=reads_simulated,
        reader_split=reader_split,
        study_comparison=study_comparison,
        progress=progress,
        command=command,
        deep_models=trained.features.deep_models,
    )
    return trained, evaluated


def run_run(args: argparse.Namespace) -> int:
    """``alnm run``."""
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.preflight import output_folder
    from ALNMPredictorLib.tablefeatures import table_spec_from_args

    output_folder(args.out)
    cohort = load_manifest(args.manifest)
    trained, evaluated = run_pipeline(
        cohort,
        args.out,
        settings_from_args(args, cohort.settings),
        reads=_reads(args.readers),
        progress=not args.no_progress,
        command="alnm run " + " ".join(sys.argv[2:]),
        feature_table=table_spec_from_args(args),
        download=args.download,
    )
    _print_training(trained)
    return _finish(evaluated)
