"""Logistic models of the study: univariate screen, backward stepwise, nomogram, Youden cut-off.

* :func:`fit_logistic_model` runs the study's procedure on one set of candidates (Table 2): a univariate
  logistic model per candidate, the significant ones (joint Wald p < ``screen_p``) into a backward
  stepwise elimination (p < ``stepwise_p``), the final multivariable fit, its nomogram scales and the
  Youden cut-off of its predicted probability on the training set.
* :class:`LogisticModel` applies a fitted model to new cases: probability, linear predictor, rms-style
  nomogram points, each predictor's contribution. It is stored as plain JSON in the saved model.
* :class:`ALNMModel` is the whole clinical-radiomics model (scikit-learn style): per-region radiomics
  scores (:mod:`ALNMPredictorLib.selection`), the clinical model, the clinical-radiomics model and a
  model per single score, for comparison.

Honest region scores (``score_fit="crossfit"``, the default): a LASSO score fitted and evaluated on the
same training cases looks far stronger than it is, so a second stage fitted on those in-sample scores
keeps it and weights it too heavily. With cross-fitting, each training case's score used by the second
stage (univariate screen, stepwise model, nomogram, cut-off) is its out-of-fold value: the training cases
are split into ``crossfit_folds`` stratified, seeded folds and, for each fold, the whole selection chain
(ICC filter, redundancy, mutual information, LASSO) is refitted on the other folds and applied to it.
New cases get the score refitted on all training cases, as before. This is stacking's cross-fitted
first stage (Wolpert 1992; the super learner, van der Laan, Polley and Hubbard 2007; cross-fitting in
Chernozhukov et al. 2018). ``score_fit="insample"`` is the reference study's way, kept for replication.

Nomogram (as rms ``nomogram``): a predictor's contribution to the linear predictor, ``b·x`` or the
coefficient of its level, is mapped linearly to points so that the predictor whose contribution spans
the widest range over the training data gets 0-100 points, and every other predictor is scaled alike.
Total points map back to the linear predictor as ``lp = intercept + Σ min_i + total · W / 100`` where
``W`` is that widest span; the probability is ``1 / (1 + exp(-lp))``. The Nomo-score of a patient is
the model's predicted probability, whose Youden cut-off on the training set (the study's 0.701) is
applied unchanged to every test set.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit
from sklearn.base import BaseEstimator

from ALNMPredictorLib.bundle import (
    check_types,
    describe,
    integer,
    json_path,
    mapping,
    number,
    numbers,
    required,
    sequence,
    text,
    texts,
)
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError, SeparationError, StatsError
from ALNMPredictorLib.fileio import jsonable
from ALNMPredictorLib.stats import (
    INTERCEPT,
    StepwiseResult,
    backward_stepwise,
    design_matrix,
    logistic_fit,
    univariate_screen,
    youden_threshold,
)

log = logging.getLogger(__name__)

__all__ = [
    "LogisticModel",
    "fit_logistic_model",
    "ALNMModel",
    "SCORE_FITS",
    "score_column",
    "stratified_group_folds",
]

#: how the second stage sees the training cases' region scores (see the module docstring)
SCORE_FITS = ("crossfit", "insample")


def score_column(region: str) -> str:
    """Name of a region's radiomics score in predictor tables (``tumor_score``, ``ln_score``)."""
    return f"{region}_score"


def stratified_group_folds(
    y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fit, held-out) row indices of ``StratifiedGroupKFold(n_splits, shuffle=True, random_state=seed)``
    as scikit-learn 1.8 and later compute them, whatever scikit-learn is installed.

    Each group stays in one fold; groups (shuffled by the seed, then by decreasing spread of their
    class counts) go one by one to the fold that keeps the folds' class proportions most even (on a
    near-tie, the fold with fewer cases). Before 1.8 scikit-learn shuffled the class counts without
    their groups, so its folds were balanced on other groups' counts and differed for the same seed.
    """
    y = np.asarray(y)
    _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    _, group_inv, group_cnt = np.unique(np.asarray(groups), return_inverse=True, return_counts=True)
    n_groups, n_classes = len(group_cnt), len(y_cnt)
    if n_splits > n_groups:
        raise ALNMError(f"{n_splits} folds need at least {n_splits} groups of cases; there are {n_groups}")
    counts = np.zeros((n_groups, n_classes))
    np.add.at(counts, (group_inv.ravel(), y_inv.ravel()), 1)
    perm = np.arange(n_groups)
    np.random.RandomState(seed).shuffle(perm)  # scikit-learn's check_random_state(seed) stream
    counts = counts[perm]
    inverse = np.empty_like(perm)
    inverse[perm] = np.arange(n_groups)
    group_inv = inverse[group_inv.ravel()]
    order = np.argsort(-np.std(counts, axis=1), kind="stable")
    # scikit-learn's float operations, in its order: near-ties between folds are decided by their
    # rounding, so the same folds need the same arithmetic
    per_fold = np.zeros((n_splits, n_classes))
    sizes = y_cnt.reshape(1, -1)
    fold_of_group = np.empty(n_groups, dtype=int)
    for g in order:
        add = counts[g]
        best, min_eval, min_samples = 0, np.inf, np.inf
        for i in range(n_splits):
            per_fold[i] += add
            fold_eval = np.mean(np.std(per_fold / sizes, axis=0))
            per_fold[i] -= add
            samples = np.sum(per_fold[i])
            if fold_eval < min_eval or (np.isclose(fold_eval, min_eval) and samples < min_samples):
                best, min_eval, min_samples = i, fold_eval, samples
        per_fold[best] += add
        fold_of_group[g] = best
    fold_of_row = fold_of_group[group_inv]
    rows = np.arange(len(y))
    return [(rows[fold_of_row != k], rows[fold_of_row == k]) for k in range(n_splits)]


def _nice_ticks(lo: float, hi: float, n: int = 6) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi) or hi <= lo:
        return [lo]
    raw = (hi - lo) / max(n - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    start = math.ceil(lo / step - 1e-9) * step
    ticks = []
    value = start
    while value <= hi + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks or [lo, hi]


def _axis_values(lo: float, hi: float) -> list[float]:
    """Tick values of a nomogram axis over the whole training range [lo, hi] (as rms draws it): round
    ticks inside, and both ends rounded outward to a tenth of the tick step, so every training value can
    be read off the axis (the plot leaves out a label that would overlap its neighbour, not the tick)."""
    inner = _nice_ticks(lo, hi)
    if len(inner) < 2:
        return inner
    step = inner[1] - inner[0]
    scale = 10.0 ** max(0, 1 - math.floor(math.log10(step)))
    ends = [math.floor(lo * scale + 1e-9) / scale, math.ceil(hi * scale - 1e-9) / scale]
    return sorted({round(v, 10) for v in [*inner, *ends]})


@dataclass
class LogisticModel:
    """A fitted logistic model with its nomogram; JSON round trip via :meth:`to_dict`/:meth:`from_dict`."""

    name: str
    variables: list[str]
    encoding: dict[str, dict[str, Any]]
    coefficients: dict[str, float]
    cutoff: float
    ranges: dict[str, list[float]] = field(default_factory=dict)
    fit_table: list[dict[str, Any]] = field(default_factory=list)
    univariate: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    # -- prediction ----------------------------------------------------------------------------
    def _terms(self, data: pd.DataFrame) -> pd.DataFrame:
        missing = [v for v in self.variables if v not in data.columns]
        if missing:
            raise InputError(f"the {self.name} model needs column(s) {', '.join(missing)}", column=missing[0])
        for var in self.variables:
            bad = data[var].isna()
            if bad.any():
                case = str(data.index[bad.to_numpy()][0])
                raise InputError(f"missing value needed by the {self.name} model", case=case, column=var)
        try:
            terms, _ = design_matrix(data, self.variables, encoding=self.encoding)
        except StatsError as exc:
            raise InputError(f"{self.name} model: {exc}") from exc
        return terms

    def contributions(self, data: pd.DataFrame) -> pd.DataFrame:
        """Each variable's contribution to the linear predictor (b·x summed over its terms)."""
        terms = self._terms(data)
        out = {}
        for var in self.variables:
            cols = [t for t in terms.columns if t == var or t.startswith(f"{var}[")]
            coef = np.array([self.coefficients[c] for c in cols])
            out[var] = terms[cols].to_numpy(dtype=float) @ coef if cols else np.zeros(len(terms))
        return pd.DataFrame(out, index=data.index)

    def linear_predictor(self, data: pd.DataFrame) -> pd.Series:
        """Intercept + Σ contributions, one value per case."""
        lp = self.contributions(data).sum(axis=1) + self.coefficients[INTERCEPT]
        return lp.rename(f"{self.name}_lp")

    def predict_proba(self, data: pd.DataFrame) -> pd.Series:
        """Predicted probability of metastasis per case."""
        return pd.Series(
            expit(self.linear_predictor(data).to_numpy()), index=data.index, name=f"{self.name}_prob"
        )

    # -- nomogram ------------------------------------------------------------------------------
    def _variable_extent(self, var: str) -> tuple[float, float]:
        spec = self.encoding[var]
        if spec["type"] == "categorical":
            values = [0.0] + [
                self.coefficients[f"{var}[{lv}]"] for lv in spec["levels"] if lv != spec["reference"]
            ]
        else:
            lo, hi = self.ranges[var]
            values = [self.coefficients[var] * lo, self.coefficients[var] * hi]
        return min(values), max(values)

    def nomogram_scale(self) -> dict[str, Any]:
        """Points axes: per variable (value, points) ticks, total points ↔ probability mapping."""
        extents = {v: self._variable_extent(v) for v in self.variables}
        width = max((hi - lo for lo, hi in extents.values()), default=0.0)
        if width <= 0:
            raise StatsError(f"{self.name} model: no predictor varies; a nomogram cannot be drawn")
        axes = []
        for var in self.variables:
            lo, _ = extents[var]
            spec = self.encoding[var]
            if spec["type"] == "categorical":
                ticks = [
                    (
                        str(lv),
                        100.0
                        * ((0.0 if lv == spec["reference"] else self.coefficients[f"{var}[{lv}]"]) - lo)
                        / width,
                    )
                    for lv in spec["levels"]
                ]
            else:
                rlo, rhi = self.ranges[var]
                ticks = [
                    (v, 100.0 * (self.coefficients[var] * v - lo) / width) for v in _axis_values(rlo, rhi)
                ]
            axes.append({"variable": var, "type": spec["type"], "ticks": ticks})
        offset = self.coefficients[INTERCEPT] + sum(lo for lo, _ in extents.values())
        max_total = sum(100.0 * (hi - lo) / width for lo, hi in extents.values())
        prob_ticks = []
        for p in (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99):
            total = (math.log(p / (1 - p)) - offset) * 100.0 / width
            if 0 <= total <= max_total:
                prob_ticks.append((p, total))
        return {
            "axes": axes,
            "points_per_unit_lp": 100.0 / width,
            "lp_offset": offset,
            "max_total_points": max_total,
            "probability_ticks": prob_ticks,
            "cutoff": self.cutoff,
            "cutoff_points": (math.log(self.cutoff / (1 - self.cutoff)) - offset) * 100.0 / width
            if 0 < self.cutoff < 1
            else float("nan"),
        }

    def points(self, data: pd.DataFrame) -> pd.DataFrame:
        """Nomogram points of each variable and the total, per case."""
        contrib = self.contributions(data)
        extents = {v: self._variable_extent(v) for v in self.variables}
        width = max(hi - lo for lo, hi in extents.values())
        pts = pd.DataFrame(
            {v: 100.0 * (contrib[v] - extents[v][0]) / width for v in self.variables}, index=data.index
        )
        pts["total_points"] = pts.sum(axis=1)
        return pts

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form for the saved model."""
        return {
            "name": self.name,
            "variables": list(self.variables),
            "encoding": jsonable(self.encoding),
            "coefficients": {k: float(v) for k, v in self.coefficients.items()},
            "cutoff": float(self.cutoff),
            "ranges": {k: [float(a), float(b)] for k, (a, b) in self.ranges.items()},
            "fit_table": jsonable(self.fit_table),
            "univariate": jsonable(self.univariate),
            "steps": jsonable(self.steps),
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "model") -> LogisticModel:
        """Rebuild from :meth:`to_dict` output, strictly: BundleError naming the JSON path (``where``) of a
        missing key, a value of the wrong type, a NaN or infinite number, or a term without its coefficient."""
        d = mapping(d, where)
        name = text(required(d, "name", where), json_path(where, "name"))
        variables = texts(required(d, "variables", where), json_path(where, "variables"))
        encoding = _encoding(required(d, "encoding", where), variables, json_path(where, "encoding"))
        at = json_path(where, "coefficients")
        coefficients = {
            text(k, at): number(v, json_path(at, k))
            for k, v in mapping(required(d, "coefficients", where), at).items()
        }
        for term in [INTERCEPT, *_terms_of(variables, encoding)]:
            required(coefficients, term, at)
        cutoff = number(required(d, "cutoff", where), json_path(where, "cutoff"))
        if not 0 <= cutoff <= 1:
            raise BundleError(
                f"{json_path(where, 'cutoff')}: a probability cut-off must lie in [0, 1], found {cutoff}"
            )
        at = json_path(where, "ranges")
        ranges = {k: _range(v, json_path(at, k)) for k, v in mapping(d.get("ranges", {}), at).items()}
        for var in variables:
            if encoding[var]["type"] == "numeric":
                required(ranges, var, at)
        return cls(
            name=name,
            variables=variables,
            encoding=encoding,
            coefficients=coefficients,
            cutoff=cutoff,
            ranges=ranges,
            fit_table=sequence(d.get("fit_table", []), json_path(where, "fit_table")),
            univariate=sequence(d.get("univariate", []), json_path(where, "univariate")),
            steps=sequence(d.get("steps", []), json_path(where, "steps")),
            notes=texts(d.get("notes", []), json_path(where, "notes")),
        )

    def fit_frame(self) -> pd.DataFrame:
        """The final multivariable fit (term, coef, se, p, odds_ratio, or_low, or_high)."""
        return pd.DataFrame(self.fit_table)

    def formula(self) -> str:
        """``logit(p) = b0 + b1·x1 + ...`` with the terms of the model."""
        parts = [f"{self.coefficients[INTERCEPT]:.4f}"]
        for term, coef in self.coefficients.items():
            if term != INTERCEPT:
                parts.append(f"{'-' if coef < 0 else '+'} {abs(coef):.4f} × {term}")
        return f"{self.name}: logit(p) = " + " ".join(parts)


def _encoding(value: Any, variables: Sequence[str], where: str) -> dict[str, dict[str, Any]]:
    """A saved model's encoding: every variable numeric, or categorical with its levels and reference."""
    out = {}
    for var, spec in mapping(value, where).items():
        at = json_path(where, var)
        spec = dict(mapping(spec, at))
        kind = text(required(spec, "type", at), json_path(at, "type"))
        if kind == "categorical":
            levels = sequence(required(spec, "levels", at), json_path(at, "levels"))
            if required(spec, "reference", at) not in levels:
                raise BundleError(
                    f"{json_path(at, 'reference')}: {describe(spec['reference'])} is not one of the levels"
                )
            spec["levels"] = list(levels)
        elif kind != "numeric":
            raise BundleError(
                f'{json_path(at, "type")}: expected "numeric" or "categorical", found {describe(kind)}'
            )
        out[var] = spec
    for var in variables:
        required(out, var, where)
    return out


def _terms_of(variables: Sequence[str], encoding: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The coefficient names a model's variables need (``x``, ``cat[level]`` for each non-reference level)."""
    terms = []
    for var in variables:
        spec = encoding[var]
        if spec["type"] == "categorical":
            terms += [f"{var}[{lv}]" for lv in spec["levels"] if lv != spec["reference"]]
        else:
            terms.append(var)
    return terms


def _range(value: Any, where: str) -> list[float]:
    """A training range ``[low, high]`` of finite numbers, low <= high."""
    pair = numbers(value, where)
    if len(pair) != 2 or pair[0] > pair[1]:
        raise BundleError(f"{where}: expected a training range [low, high], found {pair}")
    return pair


def _check_region_score(value: Any, region: str, where: str) -> Mapping[str, Any]:
    """The numeric parts and parameters of a saved region score, checked before RegionScore.from_dict.

    RegionScore.from_dict converts with ``float()``/``bool()``, which would accept NaN, texts such as
    "1.5", and ``clip: "no"`` as True.
    """
    from ALNMPredictorLib.selection import RegionScore

    d = mapping(value, where)
    if "version" in d:
        integer(d["version"], json_path(where, "version"))
    params = mapping(required(d, "params", where), json_path(where, "params"))
    at = json_path(where, "params")
    signature = inspect.signature(RegionScore.__init__).parameters
    check_types(params, {k: p.annotation for k, p in signature.items() if k != "self"}, at)
    if required(params, "region", at) != region:
        raise BundleError(
            f"{json_path(at, 'region')}: {describe(params['region'])} is not the region "
            f"it is saved under ('{region}')"
        )
    selected = texts(required(d, "selected", where), json_path(where, "selected"))
    for key in ("intercept", "lambda"):
        number(required(d, key, where), json_path(where, key))
    lengths = {}
    for key in ("coefficients", "means", "sds", "mins", "maxs"):
        if key in ("mins", "maxs") and key not in d:
            continue
        lengths[key] = len(numbers(required(d, key, where), json_path(where, key)))
    if any(n != len(selected) for n in lengths.values()):
        raise BundleError(
            f"{where}: {len(selected)} selected features but "
            + ", ".join(f"{n} {k}" for k, n in lengths.items())
        )
    for i, sd in enumerate(d["sds"]):
        if sd <= 0:
            raise BundleError(
                f"{json_path(json_path(where, 'sds'), i)}: a scaler SD must be positive, found {sd}"
            )
    for i, (lo, hi) in enumerate(zip(d.get("mins", []), d.get("maxs", []), strict=False)):
        if lo > hi:
            raise BundleError(
                f"{json_path(where, 'mins')}[{i}] is above {json_path(where, 'maxs')}[{i}] ({lo} > {hi})"
            )
    return d


def fit_logistic_model(
    name: str,
    data: pd.DataFrame,
    y: Sequence[int] | np.ndarray | pd.Series,
    candidates: Sequence[str],
    *,
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    screen_p: float | None = 0.05,
    stepwise_p: float | None = 0.05,
    separation: str = "drop",
) -> LogisticModel:
    """Univariate screen → backward stepwise → final fit, nomogram ranges and training Youden cut-off.

    ``screen_p=None`` skips the univariate screen (all candidates enter the stepwise step);
    ``stepwise_p=None`` keeps every entered candidate (no elimination). Candidates
    whose univariate model cannot be fitted (separation, a single level) are left out with a note.
    If no candidate passes the screen, the one with the smallest univariate p is kept, with a note.
    Under (quasi-)complete separation, ``separation="drop"`` leaves the separating variable out (with a
    note); ``"firth"`` fits Firth's penalised likelihood instead (finite estimates, noted), which keeps
    a strongly predictive score that happens to separate a small training set.
    """
    if separation not in ("drop", "firth"):
        raise StatsError(f"separation: expected 'drop' or 'firth', got {separation!r}")
    mode = "firth" if separation == "firth" else "error"
    yy = np.asarray(y, dtype=float)
    categorical = [c for c in categorical if c in candidates]
    reference = {k: v for k, v in (reference or {}).items() if k in candidates}
    notes: list[str] = []
    uni_rows: list[pd.DataFrame] = []
    usable: list[str] = []
    for var in candidates:
        try:
            uni_rows.append(
                univariate_screen(
                    data,
                    yy,
                    [var],
                    categorical=[c for c in categorical if c == var],
                    reference={var: reference[var]} if var in reference else None,
                    separation=mode,
                )
            )
            usable.append(var)
        except StatsError as exc:
            notes.append(f"{var} left out of the {name} model: {exc}")
            log.warning("%s left out of the %s model: %s", var, name, exc)
    if not usable:
        raise StatsError(f"{name} model: none of the candidates {', '.join(candidates)} can be fitted")
    uni = pd.concat(uni_rows, ignore_index=True)
    p_var = uni.groupby("variable", sort=False)["p_variable"].first()
    if screen_p is None:
        entered = usable
    else:
        entered = [v for v in usable if p_var[v] < screen_p]
        if not entered:
            best = str(p_var.idxmin())
            entered = [best]
            notes.append(f"no candidate had univariate p < {screen_p}; kept the best one, {best}")
    if stepwise_p is None:
        terms, encoding = design_matrix(
            data,
            entered,
            categorical=[c for c in categorical if c in entered],
            reference={k: v for k, v in reference.items() if k in entered},
        )
        fit = logistic_fit(terms, yy, separation=mode)
        fit.attrs["encoding"] = encoding
        step = StepwiseResult(
            selected=tuple(entered),
            steps=pd.DataFrame(columns=["step", "removed", "p", "df", "remaining"]),
            fit=fit,
        )
    else:
        step = _stepwise_without_separation(
            data, yy, entered, stepwise_p, categorical, reference, p_var, notes, name, mode
        )
    selected = list(step.selected)
    fit = step.fit
    if not selected:
        best = str(p_var.loc[entered].idxmin())
        notes.append(f"backward elimination removed every variable; kept the best one, {best}")
        step = backward_stepwise(
            data,
            yy,
            [best],
            0.999999,
            categorical=[c for c in categorical if c == best],
            reference={k: v for k, v in reference.items() if k == best},
            separation=mode,
        )
        selected, fit = list(step.selected), step.fit
    if fit.attrs.get("firth"):
        reason = str(fit.attrs.get("firth_reason") or "")
        if reason.startswith("separation"):
            why = (
                f"its predictors separate the training classes ({reason}), so the ordinary maximum-likelihood "
                "estimates are infinite"
            )
        else:
            why = reason or "the ordinary maximum-likelihood fit could not be used"
        notes.append(f"the {name} model was fitted by Firth's penalised likelihood: {why}")
        log.warning(notes[-1])
    encoding = fit.attrs["encoding"]
    ranges = {}
    for var in selected:
        if encoding[var]["type"] == "numeric":
            values = data[var].astype(float)
            ranges[var] = [float(values.min()), float(values.max())]
    coefficients = {str(t): float(c) for t, c in fit["coef"].items()}
    model = LogisticModel(
        name=name,
        variables=selected,
        encoding=encoding,
        coefficients=coefficients,
        cutoff=0.5,
        ranges=ranges,
        fit_table=fit.reset_index().to_dict(orient="records"),
        univariate=uni.to_dict(orient="records"),
        steps=step.steps.to_dict(orient="records"),
        notes=notes,
    )
    model.cutoff = youden_threshold(yy, model.predict_proba(data).to_numpy())
    return model


def _stepwise_without_separation(
    data: pd.DataFrame,
    y: np.ndarray,
    entered: list[str],
    threshold: float,
    categorical: Sequence[str],
    reference: Mapping[str, Any],
    p_var: pd.Series,
    notes: list[str],
    name: str,
    mode: str = "error",
) -> StepwiseResult:
    """Backward stepwise; a variable that (quasi-)separates the classes together with others is left out.

    Of the variables named by the separation check, the one with the largest univariate p leaves first
    (the others carry the signal), with a note; then the elimination starts again.
    """
    entered = list(entered)
    while True:
        try:
            return backward_stepwise(
                data,
                y,
                entered,
                threshold,
                categorical=[c for c in categorical if c in entered],
                reference={k: v for k, v in reference.items() if k in entered},
                separation=mode,
            )
        except SeparationError as exc:
            involved = [v for v in entered if any(t == v or t.startswith(f"{v}[") for t in exc.terms)]
            if len(entered) <= 1 or not involved:
                raise
            drop = max(involved, key=lambda v: (p_var.get(v, 1.0), v))
            entered.remove(drop)
            notes.append(
                f"{drop} left out of the {name} model: it separates the classes together with "
                f"{', '.join(v for v in involved if v != drop) or 'the other predictors'}"
            )
            log.warning(notes[-1])


class ALNMModel(BaseEstimator):
    """The clinical-radiomics model of the study, a scikit-learn estimator (``get_params``, ``fit``).

    ``fit(table, labels)`` takes one row per training case (index ``case_id``) holding the region
    feature columns (``tumor_...``, ``ln_...``) and the clinical columns; re-segmentation features for
    the ICC filter come as ``reader2=`` / ``repeat=`` tables of the same columns (a subset of cases).
    Fitted: ``region_scores_`` (region → RegionScore), ``clinical_model_``, ``combined_model_`` and
    ``score_models_`` (region → single-score model). ``predict_proba`` gives the combined model's
    probability (the Nomo-score).
    """

    def __init__(
        self,
        regions: Sequence[str] = ("tumor", "ln"),
        clinical: Sequence[str] = (),
        categorical: Sequence[str] = (),
        reference: Mapping[str, Any] | None = None,
        screen_p: float = 0.05,
        stepwise_p: float = 0.05,
        score_params: Mapping[str, Any] | None = None,
        random_state: int = 0,
        separation: str = "firth",
        score_fit: str = "crossfit",
        crossfit_folds: int = 5,
    ) -> None:
        self.regions = regions
        self.clinical = clinical
        self.categorical = categorical
        self.reference = reference
        self.screen_p = screen_p
        self.stepwise_p = stepwise_p
        self.score_params = score_params
        self.random_state = random_state
        self.separation = separation
        self.score_fit = score_fit
        self.crossfit_folds = crossfit_folds

    # -- fitting -------------------------------------------------------------------------------
    def fit(
        self,
        table: pd.DataFrame,
        labels: Sequence[int] | pd.Series,
        *,
        reader2: pd.DataFrame | None = None,
        repeat: pd.DataFrame | None = None,
        degenerate: Sequence[str] = (),
        groups: pd.Series | None = None,
    ) -> ALNMModel:
        """Fit region scores and the three model families on training cases only.

        The second stage sees the scores ``score_fit`` says: out-of-fold (``crossfit``) or in-sample.
        ``groups`` (index case_id): rows with the same group stay in one cross-fitting fold (a bootstrap
        resample's copies of one case).
        """
        if self.score_fit not in SCORE_FITS:
            raise ALNMError(f"score_fit must be one of {', '.join(SCORE_FITS)}, got {self.score_fit!r}")
        from ALNMPredictorLib.selection import LassoBatch

        y = pd.Series(np.asarray(labels, dtype=int), index=table.index)
        columns = {r: self._region_columns(table, r) for r in self.regions}
        # every region score (final and cross-fitting folds) is queued, and their LASSO
        # cross-validations are fitted together: the same fits, in fewer array operations
        batch = LassoBatch()
        self.region_scores_ = {
            r: self._fit_score(r, table[columns[r]], y, reader2, repeat, degenerate, batch=batch)
            for r in self.regions
        }
        if self.score_fit == "crossfit":
            predictors = self._crossfit_predictors(
                table, y, columns, reader2, repeat, degenerate, groups, batch
            )
        else:
            for error in batch.run():
                if error is not None:
                    raise error
            predictors = self.predictor_table(table)
            self.crossfit_ = None
        self._fit_models(predictors, y)
        self.training_predictors_ = predictors
        return self

    def _region_columns(self, table: pd.DataFrame, region: str) -> list[str]:
        cols = [c for c in table.columns if c.startswith(f"{region}_") and c not in self.clinical]
        if not cols:
            raise InputError(f"no feature columns for region '{region}' (expected '{region}_...')")
        return cols

    def _fit_score(
        self,
        region: str,
        x: pd.DataFrame,
        y: pd.Series,
        reader2: pd.DataFrame | None,
        repeat: pd.DataFrame | None,
        degenerate: Sequence[str],
        *,
        batch: Any = None,
        quiet: bool = False,
    ) -> Any:
        """One region score fitted on the cases of ``x``; with ``batch`` (a ``LassoBatch``) only
        started, and fitted when the batch runs."""
        from ALNMPredictorLib.selection import RegionScore

        cols = list(x.columns)

        def resegmented(frame: pd.DataFrame | None) -> pd.DataFrame | None:
            if frame is None:
                return None
            # (a look-up in the training cases' index: Index.isin is 40 times slower on string ids)
            ours = x.index.get_indexer(frame.index) >= 0 if x.index.is_unique else frame.index.isin(x.index)
            return frame.loc[ours].reindex(columns=cols)

        scorer = RegionScore(region, random_state=self.random_state, **dict(self.score_params or {}))
        args = (
            x,
            y.loc[x.index],
            resegmented(reader2),
            resegmented(repeat),
            [d for d in degenerate if d in cols],
        )
        return scorer.fit(*args) if batch is None else batch.fit(scorer, *args, quiet=quiet)

    def _crossfit_predictors(
        self,
        table: pd.DataFrame,
        y: pd.Series,
        columns: Mapping[str, list[str]],
        reader2: pd.DataFrame | None,
        repeat: pd.DataFrame | None,
        degenerate: Sequence[str],
        groups: pd.Series | None = None,
        batch: Any = None,
    ) -> pd.DataFrame:
        """Out-of-fold region scores of the training cases (the whole selection chain refitted per fold).

        ``batch``: the ``LassoBatch`` holding the final scores' fits, run here with the folds' (their
        errors raised first, as if they had been fitted before)."""
        import warnings

        from sklearn.model_selection import StratifiedKFold

        from ALNMPredictorLib.selection import LassoBatch

        if batch is None:
            batch = LassoBatch()
        n_final = len(batch)
        folds = int(self.crossfit_folds)
        if folds < 2 or np.bincount(y.to_numpy(), minlength=2).min() < folds:
            for error in batch.run():
                if error is not None:
                    raise error
            raise ALNMError(
                f"cross-fitting needs at least {folds} training cases of each outcome "
                f"(crossfit_folds={folds}); use fewer folds or score_fit='insample'"
            )
        if groups is None:
            splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=self.random_state).split(
                np.zeros(len(y)), y.to_numpy()
            )
        else:
            splits = stratified_group_folds(
                y.to_numpy(), groups.reindex(table.index).to_numpy(), folds, int(self.random_state)
            )
        scores = pd.DataFrame(index=table.index, columns=[score_column(r) for r in self.regions], dtype=float)
        kept: dict[str, dict[str, int]] = {r: {} for r in self.regions}
        notes: list[str] = []
        started: list[
            tuple[int, str, pd.Index, pd.Index, Any]
        ] = []  # each fold's scores, fitted by the batch
        for k, (fit_rows, held_rows) in enumerate(splits, start=1):
            fit_ids, held_ids = table.index[fit_rows], table.index[held_rows]
            for region in self.regions:
                with warnings.catch_warnings():  # the full fit has already said them once
                    warnings.simplefilter("ignore", UserWarning)
                    try:
                        scorer = self._fit_score(
                            region,
                            table.loc[fit_ids, columns[region]],
                            y,
                            reader2,
                            repeat,
                            degenerate,
                            batch=batch,
                            quiet=True,
                        )
                    except ALNMError as exc:
                        scorer = exc
                started.append((k, region, fit_ids, held_ids, scorer))
        errors = batch.run()
        for error in errors[:n_final]:  # the final scores' errors come first, as they were fitted first
            if error is not None:
                raise error
        errors_of = iter(errors[n_final:])
        for k, region, fit_ids, held_ids, scorer in started:
            error = scorer if isinstance(scorer, ALNMError) else next(errors_of)
            if error is not None and not isinstance(error, ALNMError):
                raise error
            if error is not None:
                prevalence = float(np.clip(y.loc[fit_ids].mean(), 1e-6, 1 - 1e-6))
                scores.loc[held_ids, score_column(region)] = math.log(prevalence / (1 - prevalence))
                notes.append(
                    f"{region} score, fold {k} of {folds}: {error}; its held-out cases got the "
                    "fold's log-odds of metastasis"
                )
                continue
            scores.loc[held_ids, score_column(region)] = scorer.decision_function(
                table.loc[held_ids]
            ).to_numpy()
            for feature in scorer.selected_:
                kept[region][feature] = kept[region].get(feature, 0) + 1
        self.crossfit_ = {
            "folds": folds,
            "seed": int(self.random_state),
            "selected": {r: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for r, v in kept.items()},
            "final": {r: list(self.region_scores_[r].selected_) for r in self.regions},
            "notes": notes,
        }
        for note in notes:
            log.warning(note)
        predictors = scores
        for col in self.clinical:
            if col not in table.columns:
                raise InputError("clinical factor missing from the input", column=col)
            predictors[col] = table[col]
        return predictors

    def _fit_models(self, predictors: pd.DataFrame, y: pd.Series) -> None:
        clinical = list(self.clinical)
        categorical = [c for c in self.categorical if c in clinical]
        scores = [score_column(r) for r in self.regions]
        self.clinical_model_ = (
            fit_logistic_model(
                "clinical",
                predictors,
                y,
                clinical,
                categorical=categorical,
                reference=self.reference,
                screen_p=self.screen_p,
                stepwise_p=self.stepwise_p,
                separation=self.separation,
            )
            if clinical
            else None
        )
        self.combined_model_ = fit_logistic_model(
            "clinical_radiomics",
            predictors,
            y,
            scores + clinical,
            categorical=categorical,
            reference=self.reference,
            screen_p=self.screen_p,
            stepwise_p=self.stepwise_p,
            separation=self.separation,
        )
        self.score_models_ = {
            r: fit_logistic_model(
                score_column(r),
                predictors,
                y,
                [score_column(r)],
                screen_p=None,
                stepwise_p=None,
                separation=self.separation,
            )
            for r in self.regions
        }

    # -- prediction ----------------------------------------------------------------------------
    def predictor_table(self, table: pd.DataFrame) -> pd.DataFrame:
        """Region scores plus the clinical columns, one row per case."""
        out = pd.DataFrame(index=table.index)
        for region, scorer in self.region_scores_.items():
            out[score_column(region)] = scorer.decision_function(table)
        for col in self.clinical:
            if col not in table.columns:
                raise InputError("clinical factor missing from the input", column=col)
            out[col] = table[col]
        return out

    def models(self) -> dict[str, LogisticModel]:
        """Every fitted model by name: clinical, each single score, clinical_radiomics."""
        out: dict[str, LogisticModel] = {}
        if self.clinical_model_ is not None:
            out["clinical"] = self.clinical_model_
        for region, model in self.score_models_.items():
            out[score_column(region)] = model
        out["clinical_radiomics"] = self.combined_model_
        return out

    def notes(self) -> dict[str, list[str]]:
        """Every note of the fit by the model it concerns (``models()`` names): Firth fits, variables left
        out, screens without a significant candidate; a score model also gets its region score's selection
        warnings (skipped ICC filter, fewer CV folds) and its cross-fitting notes."""
        out: dict[str, list[str]] = {}
        for name, fitted in self.models().items():
            out[name] = list(fitted.notes)
        for region, scorer in self.region_scores_.items():
            log_ = getattr(scorer, "log_", None)
            if log_ is None or "warning" not in getattr(log_, "columns", ()):
                continue
            out.setdefault(score_column(region), []).extend(
                f"{region} score, step {r['step']}: {r['warning']}"
                for r in log_.to_dict(orient="records")
                if r.get("warning")
            )
        for note in (getattr(self, "crossfit_", None) or {}).get("notes") or []:
            region = str(note).split(" score,", 1)[0]
            out.setdefault(
                score_column(region) if region in self.region_scores_ else "clinical_radiomics", []
            ).append(str(note))
        return {name: notes for name, notes in out.items() if notes}

    def selected_features(self) -> dict[str, list[str]]:
        """The features each region score kept (fitted on all training cases)."""
        return {r: list(s.selected_) for r, s in self.region_scores_.items()}

    def required_columns(self) -> dict[str, list[str]]:
        """Feature columns per region and the clinical factors the combined model needs."""
        need = {r: list(s.selected_) for r, s in self.region_scores_.items()}
        need["clinical"] = [v for v in self.combined_model_.variables if v in self.clinical]
        return need

    def predict_proba(self, table: pd.DataFrame) -> pd.Series:
        """The clinical-radiomics model's probability (Nomo-score) per case."""
        return self.combined_model_.predict_proba(self._combined_inputs(table))

    def linear_predictor(self, table: pd.DataFrame) -> pd.Series:
        """The clinical-radiomics model's linear predictor (log-odds) per case."""
        return self.combined_model_.linear_predictor(self._combined_inputs(table))

    def _combined_inputs(self, table: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame(index=table.index)
        for var in self.combined_model_.variables:
            region = next((r for r in self.regions if var == score_column(r)), None)
            if region is not None:
                out[var] = self.region_scores_[region].decision_function(table)
            elif var in table.columns:
                out[var] = table[var]
            else:
                raise InputError("clinical factor required by the model is missing", column=var)
        return out

    def nomogram_points(self, table: pd.DataFrame) -> pd.DataFrame:
        """Each predictor's nomogram points and the total, per case."""
        return self.combined_model_.points(self._combined_inputs(table))

    def explain(self, table: pd.DataFrame, case_id: str | None = None) -> pd.DataFrame:
        """Per predictor: value, points and contribution to the log-odds, for one case."""
        inputs = self._combined_inputs(table if case_id is None else table.loc[[case_id]])
        if len(inputs) != 1:
            raise InputError("explain() needs exactly one case; pass case_id")
        model = self.combined_model_
        pts = model.points(inputs).iloc[0]
        contrib = model.contributions(inputs).iloc[0]
        rows = [
            {"predictor": v, "value": inputs[v].iloc[0], "points": pts[v], "log_odds": contrib[v]}
            for v in model.variables
        ]
        rows.append(
            {"predictor": INTERCEPT, "value": None, "points": None, "log_odds": model.coefficients[INTERCEPT]}
        )
        prob = float(model.predict_proba(inputs).iloc[0])
        rows.append(
            {
                "predictor": "total",
                "value": prob,
                "points": pts["total_points"],
                "log_odds": float(contrib.sum() + model.coefficients[INTERCEPT]),
            }
        )
        return pd.DataFrame(rows)

    # -- (de)serialisation ---------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form of every fitted quantity."""
        return {
            "params": jsonable(
                {
                    "regions": list(self.regions),
                    "clinical": list(self.clinical),
                    "categorical": list(self.categorical),
                    "reference": dict(self.reference or {}),
                    "screen_p": self.screen_p,
                    "stepwise_p": self.stepwise_p,
                    "score_params": dict(self.score_params or {}),
                    "random_state": self.random_state,
                    "separation": self.separation,
                    "score_fit": self.score_fit,
                    "crossfit_folds": self.crossfit_folds,
                }
            ),
            "crossfit": jsonable(getattr(self, "crossfit_", None)),
            "region_scores": {r: s.to_dict() for r, s in self.region_scores_.items()},
            "clinical_model": None if self.clinical_model_ is None else self.clinical_model_.to_dict(),
            "combined_model": self.combined_model_.to_dict(),
            "score_models": {r: m.to_dict() for r, m in self.score_models_.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], where: str = "model") -> ALNMModel:
        """Rebuild a fitted model from :meth:`to_dict` output.

        Strict: a missing key, a value of the wrong type or a NaN/infinite number is a BundleError naming
        its JSON path (``where`` is the path of ``d`` itself, ``model`` in a saved model's model.json).
        """
        from ALNMPredictorLib.selection import RegionScore

        d = mapping(d, where)
        at = json_path(where, "params")
        params = dict(mapping(required(d, "params", where), at))
        signature = inspect.signature(cls.__init__).parameters
        check_types(params, {k: p.annotation for k, p in signature.items() if k != "self"}, at)
        regions = texts(required(params, "regions", at), json_path(at, "regions"))
        for key in ("clinical", "categorical"):
            if key in params:
                params[key] = texts(params[key], json_path(at, key))
        for key in ("reference", "score_params"):
            if params.get(key) is not None:
                params[key] = dict(mapping(params[key], json_path(at, key)))
        params["regions"] = regions
        params.setdefault("score_fit", "insample")  # a model saved before cross-fitting existed
        self = cls(**params)
        self.crossfit_ = d.get("crossfit")
        at = json_path(where, "region_scores")
        scores = mapping(required(d, "region_scores", where), at)
        if sorted(scores) != sorted(regions):
            raise BundleError(
                f"{at}: region scores for {', '.join(map(str, scores)) or 'no region'}, but the model's "
                f"regions are {', '.join(regions)}"
            )
        self.region_scores_ = {}
        for r in regions:
            saved = _check_region_score(scores[r], r, json_path(at, r))
            try:
                self.region_scores_[r] = RegionScore.from_dict(saved)
            except BundleError as exc:
                raise BundleError(f"{json_path(at, r)}: {exc}") from exc
        clinical = required(d, "clinical_model", where)
        at = json_path(where, "clinical_model")
        self.clinical_model_ = None if clinical is None else LogisticModel.from_dict(clinical, at)
        at = json_path(where, "combined_model")
        self.combined_model_ = LogisticModel.from_dict(required(d, "combined_model", where), at)
        at = json_path(where, "score_models")
        self.score_models_ = {
            text(r, at): LogisticModel.from_dict(m, json_path(at, r))
            for r, m in mapping(required(d, "score_models", where), at).items()
        }
        return self
