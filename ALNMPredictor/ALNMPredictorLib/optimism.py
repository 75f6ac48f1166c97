"""Internal validation corrected for optimism: Harrell's bootstrap, as ``rms::validate`` (TRIPOD item 10b).

A model's performance on the cases it was fitted to (its *apparent* performance) is optimistic, the more
so when the fitting chose among many candidates (feature selection, LASSO, stepwise). The bootstrap
estimates by how much: for each of ``n_boot`` resamples (cases drawn with replacement), the **whole**
fitting procedure is repeated on the resample (region scores with their selection chain and
cross-fitting, univariate screen, stepwise model); the refitted model's performance on the resample
(*training*) and on the original cases (*test*) differ by that resample's optimism. The mean optimism
is subtracted from the apparent performance (Harrell, Lee and Mark, Stat Med 1996; Steyerberg,
*Clinical Prediction Models*, 2019, ch. 17).

Indices, each of the clinical-radiomics model's linear predictor ``lp`` (as rms ``validate.lrm``):

* ``auc``: the c-statistic (rms reports Dxy = 2 (AUC - 1/2));
* ``intercept``, ``slope``: the logistic recalibration ``y ~ a + b·lp`` (0 and 1 for a model on its own
  data when it is a plain maximum-likelihood fit; computed, not assumed, here);
* ``brier``: mean squared error of the probabilities.

The resamples are drawn up front from ``seed`` (the same table of rows whatever the number of worker
processes); a resample whose refit fails (one class only, no feature left) is counted and left out.
Duplicated cases of a resample stay together in one cross-fitting fold, so a case never scores itself.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from ALNMPredictorLib.errors import ALNMError, SeparationError, StatsError

__all__ = ["INDICES", "OptimismResult", "bootstrap_validation", "performance"]

log = logging.getLogger(__name__)

INDICES = ("auc", "intercept", "slope", "brier")
_COLUMNS = ("apparent", "training", "test", "optimism", "corrected")


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC, ties counted half."""
    from scipy.stats import rankdata

    ranks = rankdata(score)
    n1 = int(y.sum())
    n0 = len(y) - n1
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def _recalibration(y: np.ndarray, lp: np.ndarray) -> tuple[float, float]:
    """(a, b) of the logistic fit ``y ~ a + b·lp`` (Newton-Raphson to the MLE)."""
    from ALNMPredictorLib.stats import logistic_fit

    fit = logistic_fit(pd.DataFrame({"lp": lp}), y)
    return float(fit.loc["(Intercept)", "coef"]), float(fit.loc["lp", "coef"])


def performance(y: Sequence[int] | np.ndarray, lp: Sequence[float] | np.ndarray) -> dict[str, float]:
    """AUC, calibration intercept and slope, and Brier score of linear predictors ``lp`` for labels ``y``.

    Where ``lp`` separates the outcomes, the recalibration has no finite maximum-likelihood estimate:
    intercept and slope are NaN (the resample is left out of those two indices only).
    """
    yy = np.asarray(y, dtype=float)
    xx = np.asarray(lp, dtype=float)
    if not np.isfinite(xx).all():
        raise StatsError("linear predictor has non-finite values")
    if yy.min() == yy.max():
        raise StatsError("one outcome class only")
    try:
        intercept, slope = _recalibration(yy, xx)
    except SeparationError:
        intercept = slope = math.nan
    return {
        "auc": _auc(yy, xx),
        "intercept": intercept,
        "slope": slope,
        "brier": float(np.mean((expit(xx) - yy) ** 2)),
    }


@dataclass
class OptimismResult:
    """The corrected indices (``table``: rows ``INDICES``, columns apparent/training/test/optimism/corrected),
    how many resamples were drawn and used, why the others failed, and how often each region feature was
    kept (``selection``: region, feature, final, crossfit, bootstrap)."""

    table: pd.DataFrame
    n_boot: int
    n_used: int
    seed: int
    failures: list[str] = field(default_factory=list)
    selection: pd.DataFrame = field(default_factory=pd.DataFrame)

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_boot": self.n_boot,
            "n_used": self.n_used,
            "seed": self.seed,
            "failures": list(self.failures),
            "table": {
                idx: {c: _number(self.table.loc[idx, c]) for c in (*_COLUMNS, "n")}
                for idx in self.table.index
            },
            "selection": self.selection.to_dict(orient="records"),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> OptimismResult:
        table = (
            pd.DataFrame.from_dict(dict(d["table"]), orient="index")
            .reindex(columns=[*_COLUMNS, "n"])
            .astype(float)
        )
        return cls(
            table,
            int(d["n_boot"]),
            int(d["n_used"]),
            int(d["seed"]),
            list(d.get("failures") or []),
            pd.DataFrame(list(d.get("selection") or [])),
        )


def _number(value: Any) -> float | None:
    """A float for JSON, None for NaN (model.json holds no NaN)."""
    value = float(value)
    return value if math.isfinite(value) else None


# --------------------------------------------------------------------------------------------------
# The resampling, in worker processes

_STATE: dict[str, Any] = {}


@dataclass
class _Factory:
    """A fresh unfitted copy of an estimator (picklable for worker processes)."""

    kind: type
    params: dict[str, Any]

    def __call__(self) -> Any:
        return self.kind(**self.params)


def _init(state: dict[str, Any], parent_pid: int | None = None) -> None:
    """A worker process: one thread, dies with the main process (as extraction's), holds the data."""
    from ALNMPredictorLib.extraction import init_worker

    init_worker(parent_pid)
    _STATE.clear()
    _STATE.update(state)


def _relabel(
    frame: pd.DataFrame | None, source: Sequence[str], new_ids: Sequence[str]
) -> pd.DataFrame | None:
    """Rows of ``frame`` (re-segmentations, index case_id) for the resample's cases, under their new ids."""
    if frame is None:
        return None
    rows = frame.reindex(list(source))
    rows.index = pd.Index(list(new_ids), name=frame.index.name)
    return rows.loc[rows.notna().any(axis=1)]


def _one_resample(b: int) -> dict[str, Any]:
    """Refit on resample ``b``; its indices on itself and on the original cases, and what it selected."""
    import inspect
    import warnings

    table: pd.DataFrame = _STATE["table"]
    y: np.ndarray = _STATE["y"]
    rows = _STATE["rows"][b]
    source = table.index[rows]
    new_ids = [f"{case}#{k}" for k, case in enumerate(source)]
    resample = table.iloc[rows].copy()
    resample.index = pd.Index(new_ids, name=table.index.name)
    yb = y[rows]
    model = _STATE["factory"]()
    kwargs: dict[str, Any] = {
        name: _relabel(frame, source, new_ids) for name, frame in _STATE["frames"].items()
    }
    kwargs.update(_STATE["fit_params"])
    if "groups" in inspect.signature(model.fit).parameters:
        kwargs["groups"] = pd.Series(list(source), index=resample.index)
    try:
        with warnings.catch_warnings():  # the original fit has said them once
            warnings.simplefilter("ignore", UserWarning)
            logging.disable(logging.WARNING)
            try:
                model.fit(resample, yb, **kwargs)
            finally:
                logging.disable(logging.NOTSET)
        training = performance(yb, np.asarray(model.linear_predictor(resample), dtype=float))
        test = performance(y, np.asarray(model.linear_predictor(table), dtype=float))
    except (ALNMError, StatsError, ValueError, np.linalg.LinAlgError) as exc:
        return {"b": b, "error": f"{type(exc).__name__}: {exc}"}
    selected = model.selected_features() if hasattr(model, "selected_features") else {}
    return {"b": b, "error": None, "training": training, "test": test, "selected": selected}


def bootstrap_validation(
    model: Any,
    table: pd.DataFrame,
    y: Sequence[int] | np.ndarray,
    *,
    reader2: pd.DataFrame | None = None,
    repeat: pd.DataFrame | None = None,
    degenerate: Sequence[str] = (),
    n_boot: int = 200,
    seed: int = 0,
    rows: np.ndarray | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> OptimismResult:
    """Harrell's optimism-corrected indices of a fitted model (an :class:`~ALNMPredictorLib.modeling.ALNMModel`
    or any scikit-learn-style estimator with ``get_params``, ``fit(table, y)`` and ``linear_predictor(table)``).

    ``table``/``y``/``reader2``/``repeat``/``degenerate``: exactly what the model was fitted on (the last
    three are passed to ``fit`` only when given). Every resample refits ``type(model)(**model.get_params())``
    (see the module docstring); ``rows`` (``n_boot`` x n, 0-based) replaces the seeded draw, e.g. R's own
    resamples. ``workers`` processes share the resamples (default: all cores); ``progress`` shows a bar
    on stderr.
    """
    yy = np.asarray(y, dtype=int)
    n = len(yy)
    if rows is None:
        n_boot = int(n_boot)
        if n_boot < 1:
            raise ALNMError(f"bootstrap validation needs at least 1 resample, got {n_boot}")
        rows = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    else:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.ndim != 2 or rows.shape[1] != n or rows.min() < 0 or rows.max() >= n:
            raise ALNMError(f"resample rows must be an (n_boot, {n}) table of row numbers 0..{n - 1}")
        n_boot = rows.shape[0]
    apparent = performance(yy, np.asarray(model.linear_predictor(table), dtype=float))
    frames = {k: v for k, v in (("reader2", reader2), ("repeat", repeat)) if v is not None}
    state = {
        "table": table,
        "y": yy,
        "rows": rows,
        "factory": _Factory(type(model), model.get_params()),
        "frames": frames,
        "fit_params": {"degenerate": list(degenerate)} if degenerate else {},
    }
    results = _run(state, n_boot, workers, progress)
    ok = [r for r in results if r["error"] is None]
    failures = [f"resample {r['b'] + 1}: {r['error']}" for r in results if r["error"] is not None]
    if not ok:
        raise ALNMError(f"bootstrap validation: every one of the {n_boot} refits failed, e.g. {failures[0]}")
    per_training = pd.DataFrame([r["training"] for r in ok])
    per_test = pd.DataFrame([r["test"] for r in ok])
    table_out = pd.DataFrame(index=pd.Index(INDICES, name="index"), columns=[*_COLUMNS, "n"], dtype=float)
    for idx in INDICES:  # each index over the resamples where it exists on both sides (rms's "n")
        both = np.isfinite(per_training[idx]) & np.isfinite(per_test[idx])
        training, test = float(per_training.loc[both, idx].mean()), float(per_test.loc[both, idx].mean())
        optimism = training - test
        table_out.loc[idx] = [
            apparent[idx],
            training,
            test,
            optimism,
            apparent[idx] - optimism,
            int(both.sum()),
        ]
    return OptimismResult(table_out, n_boot, len(ok), int(seed), failures, _selection(model, ok))


def _run(state: dict[str, Any], n_boot: int, workers: int | None, progress: bool) -> list[dict[str, Any]]:
    n_workers = max(1, min(int(workers or os.cpu_count() or 1), n_boot))
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(total=n_boot, desc="bootstrap validation", unit="resample", file=sys.stderr, disable=None)
    results: list[dict[str, Any]] = []
    try:
        if n_workers == 1:
            from ALNMPredictorLib.extraction import single_threaded

            _STATE.update(state)
            with single_threaded():
                for b in range(n_boot):
                    results.append(_one_resample(b))
                    if bar is not None:
                        bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            # spawn, as extraction: fork after torch/OpenMP initialisation can deadlock the children
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(
                max_workers=n_workers, mp_context=context, initializer=_init, initargs=(state, os.getpid())
            ) as pool:
                futures = [pool.submit(_one_resample, b) for b in range(n_boot)]
                for future in as_completed(futures):
                    results.append(future.result())
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        _STATE.clear()
    return sorted(results, key=lambda r: r["b"])


def _selection(model: Any, ok: list[dict[str, Any]]) -> pd.DataFrame:
    """How often each feature was kept: in the final score, its cross-fitting folds, and the resamples."""
    rows = []
    if not hasattr(model, "selected_features"):
        return pd.DataFrame(columns=["region", "feature", "final", "crossfit", "bootstrap"])
    crossfit = getattr(model, "crossfit_", None) or {}
    folds = int(crossfit.get("folds") or 0)
    for region, final_features in model.selected_features().items():
        in_boot: dict[str, int] = {}
        for r in ok:
            for feature in r["selected"].get(region, []):
                in_boot[feature] = in_boot.get(feature, 0) + 1
        in_folds = dict((crossfit.get("selected") or {}).get(region, {}))
        final = set(final_features)
        for feature in sorted(set(in_boot) | set(in_folds) | final):
            rows.append(
                {
                    "region": region,
                    "feature": feature,
                    "final": feature in final,
                    "crossfit": in_folds.get(feature, 0) / folds if folds else math.nan,
                    "bootstrap": in_boot.get(feature, 0) / len(ok),
                }
            )
    frame = pd.DataFrame(rows, columns=["region", "feature", "final", "crossfit", "bootstrap"])
    return frame.sort_values(
        ["region", "bootstrap", "feature"], ascending=[True, False, True], ignore_index=True
    )
