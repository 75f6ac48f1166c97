"""Per-region radiomics score: reproducibility, variance, redundancy and relevance filters, then LASSO.

A :class:`RegionScore` is fitted on the training cases of one region (``tumor``, ``ln``, ...) and
only ever sees training data: ``fit`` takes the training features, their labels and optional
re-segmentations of training cases, and nothing else. The steps, each recorded in ``log_``
(features in, features out, which were removed and why) and per feature in ``dropped_``:

1. ``degenerate``: declared degenerate features and features with non-finite training values.
2. ``near_constant``: constant and near-constant features (before the ICC, whose value is
   undefined for them, so that the log gives the real reason).
3. ``icc``: reproducibility; single-rater ICC (psych ``ICC2`` by default) of the main mask against
   ``reader2`` (inter-observer) and ``repeat`` (intra-observer) re-segmentations; a feature is kept
   when its ICC reaches the threshold for every re-segmentation given. Skipped, with a warning,
   when none is given. The survivors are z-scored with the training means and SDs (``ddof=1``,
   as R's ``scale``).
4. ``redundancy``: pairs with ``|Pearson r|`` above a threshold, taken by descending ``|r|``; of a
   pair whose members are both still in, the one with the larger univariate ``|AUC - 0.5|`` stays
   (ties: the earlier column stays).
5. ``mutual_information``: scikit-learn's ``mutual_info_classif`` (seeded; recomputed here for all
   features at once, with the same values), the top ``k`` stay.
6. ``lasso``: L1 logistic regression fitted as ``glmnet::cv.glmnet(family="binomial",
   type.measure="deviance")`` does (internal standardisation, unpenalised intercept, lambda
   sequence from lambda_max down to 1e-4 or 1e-2 of it, CV deviance with its SE), with seeded
   stratified folds; ``lambda.min`` or ``lambda.1se``.

The region score is ``intercept + sum(coef_j * z_j)`` with ``z_j = (x_j - mean_j) / sd_j``.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import digamma, expit
from sklearn.base import BaseEstimator
from sklearn.model_selection import StratifiedKFold
from sklearn.preprocessing import scale
from sklearn.utils import check_random_state

from ALNMPredictorLib.errors import ALNMError, BundleError, InputError
from ALNMPredictorLib.fileio import write_table, write_text
from ALNMPredictorLib.stats.agreement import ICC_FORMS, icc_values

__all__ = ["RegionScore", "LassoBatch", "fit_region_scores", "VARIANTS", "ICC_FORMS", "LASSO_RULES"]

#: Row variants of the feature table: the main segmentation and the two re-segmentations.
VARIANTS = ("main", "reader2", "repeat")
LASSO_RULES = ("lambda.min", "lambda.1se")

_DICT_KIND = "ALNMPredictor.RegionScore"
_DICT_VERSION = 2  # 2: training minimums/maximums ("mins"/"maxs"); a version-1 score does not clip
_LOG_COLUMNS = ["step", "n_in", "n_out", "removed", "why", "warning"]
_ICC_MIN_CASES = 3
_CV_PROB_MIN = 1e-5  # cv.glmnet clips held-out probabilities to [1e-5, 1 - 1e-5]
_EXAMPLES = 5


# --------------------------------------------------------------------------------------------
# Building blocks


def _auc_columns(z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Univariate ROC AUC (Mann-Whitney, ties counted half) of every column of ``z`` for labels ``y``.

    The rank sum of the positive cases with tied values given their average rank (``rankdata``'s
    default): sums of half-integers, exact in floating point, so any way of summing gives the
    same AUC.
    """
    values = np.ascontiguousarray(np.asarray(z, dtype=float).T)  # columns × cases: each sorted in place
    positive = np.asarray(y) == 1
    n1 = int(positive.sum())
    n0 = len(positive) - n1
    n = values.shape[1]
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    # each run of equal values: its first and last (0-based) position, the average rank in between
    new_run = np.ones(ordered.shape, dtype=bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    at = np.broadcast_to(np.arange(n), ordered.shape)
    first = np.maximum.accumulate(np.where(new_run, at, 0), axis=1)
    ends = np.ones(ordered.shape, dtype=bool)
    ends[:, :-1] = new_run[:, 1:]
    last = np.minimum.accumulate(np.where(ends, at, n - 1)[:, ::-1], axis=1)[:, ::-1]
    average_rank = (first + last) / 2 + 1
    rank_sum = np.where(positive[order], average_rank, 0.0).sum(axis=1)
    return (rank_sum - n1 * (n1 + 1) / 2) / (n1 * n0)


def glmnet_lambdas(x: np.ndarray, y: np.ndarray, n_lambdas: int = 100) -> np.ndarray:
    """glmnet's binomial lasso lambda sequence: log-spaced from lambda_max down to 1e-4 (n < p: 1e-2) of it."""
    n, p = x.shape
    mu = x.mean(axis=0)
    sd = np.sqrt(((x - mu) ** 2).mean(axis=0))
    ok = sd > 0
    xs = np.zeros_like(x)
    xs[:, ok] = (x[:, ok] - mu[ok]) / sd[ok]
    lambda_max = float(np.max(np.abs(xs.T @ (y - y.mean())) / n)) if p else 0.0
    ratio = 1e-2 if n < p else 1e-4
    if lambda_max <= 0:
        return np.zeros(0)
    return lambda_max * ratio ** (np.arange(n_lambdas) / max(n_lambdas - 1, 1))


def _exact_on_support(gram: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: float) -> np.ndarray | None:
    """The exact minimiser when ``beta`` has the right support and signs (KKT checked), else None."""
    support = np.flatnonzero(beta != 0.0)
    support = np.union1d([0], support)
    signs = np.sign(beta[support])
    signs[0] = 0.0
    try:
        solution = np.linalg.solve(gram[np.ix_(support, support)], c[support] - lam * signs)
    except np.linalg.LinAlgError:
        return None
    if np.any(np.sign(solution[1:]) != signs[1:]):
        return None
    exact = np.zeros_like(beta)
    exact[support] = solution
    grad = c - gram @ exact
    outside = np.setdiff1d(np.arange(len(beta)), support)
    if np.any(np.abs(grad[outside]) > lam * (1 + 1e-10)):
        return None
    return exact


def _lasso_active_set(
    gram: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: np.ndarray, max_steps: int
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ``b'Gb / 2 - c'b + lam * sum_{j >= 1} |b_j|`` exactly, for a stack of problems at once.

    ``gram`` (t, q, q), ``c`` and ``beta`` (t, q), ``lam`` (t,); coordinate 0 (the intercept) is
    unpenalised. The active-set method of Osborne, Presnell and Turlach (2000), from the support
    and signs of ``beta``: solve the linear system on the support with the signs fixed; where a
    coefficient would change sign, move to the first zero crossing and drop that coordinate;
    otherwise add the coordinate whose gradient most exceeds ``lam``, until none does (the KKT
    conditions, to the tolerance of :func:`_exact_on_support`). Every step lowers the objective.
    The systems of all problems are solved together, each on its own support (the identity
    elsewhere). Returns the minimisers and which problems were solved (not: a singular system on
    a support, or the steps ran out).
    """
    t, q = c.shape
    b = beta.copy()
    support = b != 0.0
    support[:, 0] = True
    signs = np.sign(b)
    signs[:, 0] = 0.0
    limit = lam * (1 + 1e-10)
    solved = np.zeros(t, dtype=bool)
    eye = np.eye(q, dtype=bool)
    pending = np.arange(t)
    for _ in range(max_steps):
        if not pending.size:
            break
        on, s, now = support[pending], signs[pending], b[pending]
        full = bool(on.all())  # common at small lambdas: nothing to mask, nothing outside to check
        system = gram[pending] if full else np.where(on[:, :, None] & on[:, None, :], gram[pending], eye)
        rhs = c[pending] - lam[pending, None] * s
        if not full:
            rhs[~on] = 0.0
        try:
            solution = np.linalg.solve(system, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            break
        wrong = on & (solution * s <= 0.0)
        wrong[:, 0] = False
        crossing = wrong.any(axis=1)
        # a coefficient would change sign: go as far as the first zero crossing, drop that one
        r = np.flatnonzero(crossing)
        if r.size:
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(wrong[r], now[r] / (now[r] - solution[r]), np.inf)
            first = np.argmin(ratio, axis=1)
            rows = np.arange(r.size)
            length = np.clip(ratio[rows, first], 0.0, 1.0)
            moved = now[r] + length[:, None] * (solution[r] - now[r])
            moved[rows, first] = 0.0
            gone = on[r] & (moved * s[r] <= 0.0)  # the first crossing, and any other reaching zero with it
            gone[:, 0] = False
            moved[gone] = 0.0
            b[pending[r]] = moved
            support[pending[r]] = on[r] & ~gone
            signs[pending[r]] = np.where(gone, 0.0, s[r])
        # the solution keeps its signs: check the KKT conditions outside the support
        r = np.flatnonzero(~crossing)
        if r.size and full:
            b[pending[r]] = solution[r]
            solved[pending[r]] = True
            pending = pending[crossing]
        elif r.size:
            done = pending[r]
            b[done] = solution[r]
            grad = c[done] - np.matmul(gram[done], solution[r][:, :, None])[:, :, 0]
            excess = np.where(on[r], 0.0, np.abs(grad))
            j = np.argmax(excess, axis=1)
            add = excess[np.arange(r.size), j] > limit[done]
            solved[done[~add]] = True
            support[done[add], j[add]] = True
            signs[done[add], j[add]] = np.sign(grad[add, j[add]])
            pending = np.concatenate([pending[crossing], done[add]])
        else:
            pending = pending[crossing]
    return b, solved


def _weighted_lasso(
    gram: np.ndarray,
    c: np.ndarray,
    beta: np.ndarray,
    lam: float | np.ndarray,
    *,
    tol: float = 1e-16,
    max_sweeps: int = 10_000,
) -> np.ndarray:
    """Minimise ``b'Gb / 2 - c'b + lam * sum_{j >= 1} |b_j|`` (coordinate 0 unpenalised) from ``beta``.

    One problem (``gram`` (q, q)) or a stack of them (``gram`` (t, q, q), ``lam`` (t,)): the
    active-set method (:func:`_lasso_active_set`); where it fails (a singular system on the
    support, where the minimiser need not be unique), coordinate descent from ``beta``.
    """
    single = gram.ndim == 2
    if single:
        gram, c, beta = gram[None], c[None], beta[None]
    lam = np.broadcast_to(np.asarray(lam, dtype=float), (len(c),))
    out, solved = _lasso_active_set(gram, c, beta, lam, max_steps=10 * c.shape[1] + 20)
    for i in np.flatnonzero(~solved):
        out[i] = _coordinate_descent(gram[i], c[i], beta[i], float(lam[i]), tol=tol, max_sweeps=max_sweeps)
    return out[0] if single else out


def _coordinate_descent(
    gram: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: float, *, tol: float, max_sweeps: int
) -> np.ndarray:
    """Coordinate descent for :func:`_weighted_lasso` (active-set sweeps, a full sweep to confirm),
    finished by an exact solve on the support once the support and signs have settled."""
    new = beta.copy()
    grad = c - gram @ new
    diag = np.diag(gram).copy()
    everything = list(range(len(c)))
    active = everything
    full_sweep = True
    for _ in range(max_sweeps):
        max_change = 0.0
        for j in active:
            old = new[j]
            g = grad[j] + diag[j] * old
            if j == 0:
                val = g / diag[0]
            else:
                val = (math.copysign(abs(g) - lam, g) if abs(g) > lam else 0.0) / diag[j]
            delta = val - old
            if delta != 0.0:
                new[j] = val
                grad -= gram[:, j] * delta
                change = diag[j] * delta * delta
                if change > max_change:
                    max_change = change
        if max_change < max(tol, 1e-6):
            if full_sweep:
                exact = _exact_on_support(gram, c, new, lam)
                if exact is not None:
                    return exact
                if max_change < tol:
                    return new
            active = everything  # confirm on every coordinate
            full_sweep = True
        else:
            if full_sweep:
                active = [0] + [j for j in everything[1:] if new[j] != 0.0]
            full_sweep = False
    return new


_GRAM_CHUNK = 8  # problems whose IRLS gram is formed at once (8 x 400 cases x 31 columns: 0.8 MB)
_MI_WALK = 8  # neighbours compared on each side before bisection (mutual information's radius counts)
_PROB_MIN = 1e-9  # IRLS clips fitted probabilities to [1e-9, 1 - 1e-9], as glmnet does (pmin)
_ETA_MAX = math.log((1 - _PROB_MIN) / _PROB_MIN)  # the linear predictor where the clipping starts


def lasso_logistic_path(
    x: np.ndarray,
    y: np.ndarray,
    lambdas: np.ndarray,
    *,
    tol: float = 1e-16,
    max_outer: int = 100,
    max_inner: int = 10_000,
    early_stop: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """L1 logistic regression along ``lambdas`` as glmnet (alpha = 1, standardize = TRUE) fits it.

    Minimises ``-loglik / n + lambda * sum |beta_j|`` on internally standardised columns (1/n
    variance), the intercept unpenalised, by proximal Newton steps (IRLS) whose weighted lasso is
    solved exactly (:func:`_weighted_lasso`), warm-started along the path. Returns ``(intercepts
    (L,), coefs (L, p))`` on the scale of ``x``. Constant columns get zero coefficients. With
    ``early_stop`` the path ends, as glmnet's does for its own lambda sequence, from the 5th lambda
    on once the deviance ratio exceeds 0.999 or gains less than 1e-5 (the returned arrays are then
    shorter).
    """
    return _lasso_paths(
        [(x, y, lambdas)], tol=tol, max_outer=max_outer, max_inner=max_inner, early_stop=early_stop
    )[0]


def _lasso_paths(
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    tol: float = 1e-16,
    max_outer: int = 100,
    max_inner: int = 10_000,
    early_stop: bool = False,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """:func:`lasso_logistic_path` for several ``(x, y, lambdas)``, side by side.

    Each problem follows its own path exactly as alone; their IRLS steps are computed together
    (stacked arrays: rows padded with zero weight, constant columns zero, a problem with fewer
    columns than the widest padded with zero columns, which get no coefficient and are cut off
    again), which is what makes cross-validation's 1 + K paths cheap.
    """
    count = len(problems)
    # identical cases (a bootstrap resample's copies) become one row weighted by their number
    rows_of = [_distinct_rows(np.asarray(x, dtype=float), np.asarray(y, dtype=float)) for x, y, _ in problems]
    # the problems with the most rows first, so that each group of _GRAM_CHUNK neighbours forms its
    # IRLS grams over about its own number of rows (cross-validation folds have 10-25 % fewer)
    arrival = np.argsort([-len(first) for first, _ in rows_of], kind="stable")
    problems = [problems[i] for i in arrival]
    rows_of = [rows_of[i] for i in arrival]
    widths = [np.asarray(pr[0]).shape[1] for pr in problems]
    p = max(widths)
    n_rows = np.array([len(first) for first, _ in rows_of])
    n_max = int(n_rows[0])
    design = np.zeros((count, n_max, p + 1))  # column 0: intercept
    target = np.zeros((count, n_max))
    row_weight = np.zeros((count, n_max))  # (copies of the row)/n on the problem's rows, 0 on padding
    scale_mu = np.zeros((count, p))
    scale_sd = np.ones((count, p))
    usable = np.zeros((count, p), dtype=bool)
    beta = np.zeros((count, p + 1))
    lambda_max = np.zeros(count)
    all_lambdas = [np.asarray(pr[2], dtype=float) for pr in problems]
    for i, (x, y, _) in enumerate(problems):
        x = np.asarray(x, dtype=float)
        if x.shape[1] < p:
            x = np.hstack([x, np.zeros((len(x), p - x.shape[1]))])
        y = np.asarray(y, dtype=float)
        n = len(y)
        mu = x.mean(axis=0)
        sd = np.sqrt(((x - mu) ** 2).mean(axis=0))
        ok = sd > 0
        xs = (x[:, ok] - mu[ok]) / sd[ok]
        usable[i], scale_mu[i, ok], scale_sd[i, ok] = ok, mu[ok], sd[ok]
        beta[i, 0] = _logit(float(y.mean()))
        # at or above lambda_max every coefficient is exactly zero
        lambda_max[i] = float(np.max(np.abs(xs.T @ (y - y.mean())) / n)) if ok.any() else 0.0
        first, copies = rows_of[i]
        m = len(first)
        design[i, :m, 0] = 1.0
        design[i, :m, 1:][:, ok] = xs[first]
        target[i, :m] = y[first]
        row_weight[i, :m] = copies / n
    null_beta0 = beta[:, 0].copy()
    eta = np.matmul(design, beta[:, :, None])[:, :, 0]
    null_nll = _stacked_nll(eta, target, row_weight)
    dev_ratio = np.zeros((count, max(len(lam) for lam in all_lambdas)))
    intercepts = [np.empty(len(lam)) for lam in all_lambdas]
    coefs = [np.zeros((len(lam), p)) for lam in all_lambdas]
    length = [len(lam) for lam in all_lambdas]  # shortened by an early stop
    # the solution at the two previous lambdas (below lambda_max), to start from their extrapolation
    previous = np.zeros_like(beta)
    solved = np.zeros(count, dtype=int)
    lam_before = np.zeros((count, 2))
    for li in range(dev_ratio.shape[1]):
        alive = np.array([li < length[i] for i in range(count)])
        lam = np.array([all_lambdas[i][li] if alive[i] else 0.0 for i in range(count)])
        at_max = alive & (lam >= lambda_max * (1 - 1e-12))
        if at_max.any():
            beta[at_max] = 0.0
            beta[at_max, 0] = null_beta0[at_max]
            eta[at_max] = np.matmul(design[at_max], beta[at_max][:, :, None])[:, :, 0]
            solved[at_max] = 0
        todo = np.flatnonzero(alive & ~at_max)
        if todo.size:
            now = beta[todo].copy()
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = (lam_before[:, 1] - lam) / (lam_before[:, 0] - lam_before[:, 1])
            # (a decreasing sequence, as glmnet's; any other order starts from the last solution)
            ahead = todo[(solved[todo] >= 2) & (ratio[todo] > 0) & (ratio[todo] <= 2)]
            if ahead.size:
                # linear extrapolation along the path (error O(dlambda^2) instead of O(dlambda)):
                # one Newton step fewer per lambda; coefficients it would move to or across zero
                # start at zero, as the active set prefers
                ratio = ratio[ahead]
                start = beta[ahead] + ratio[:, None] * (beta[ahead] - previous[ahead])
                keep = np.sign(start) == np.sign(beta[ahead])
                keep[:, 0] = True
                beta[ahead] = np.where(keep, start, 0.0)
                rows = design if ahead.size == count else design[ahead]
                eta[ahead] = np.matmul(rows, beta[ahead][:, :, None])[:, :, 0]
            _irls_at_lambda(
                design,
                target,
                row_weight,
                n_rows,
                beta,
                eta,
                lam,
                todo,
                tol=tol,
                max_outer=max_outer,
                max_inner=max_inner,
            )
            previous[todo] = now
            lam_before[todo, 0] = lam_before[todo, 1]
            lam_before[todo, 1] = lam[todo]
            solved[todo] += 1
        b = np.where(usable, beta[:, 1:], 0.0) / scale_sd  # back on the scale of x
        b0 = beta[:, 0] - np.einsum("ij,ij->i", scale_mu, b)
        for i in np.flatnonzero(alive):
            coefs[i][li] = b[i]
            intercepts[i][li] = b0[i]
        if early_stop:
            grow = np.flatnonzero(alive & ~at_max)
            if grow.size:
                dev_ratio[grow, li] = (
                    1 - _stacked_nll(eta[grow], target[grow], row_weight[grow]) / null_nll[grow]
                )
            if li >= 4:
                for i in grow:
                    if dev_ratio[i, li] > 0.999 or dev_ratio[i, li] - dev_ratio[i, li - 1] < 1e-5:
                        length[i] = li + 1
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0), np.empty((0, 0)))] * count
    for i, original in enumerate(arrival):
        out[original] = (intercepts[i][: length[i]], coefs[i][: length[i], : widths[i]])
    return out


def _distinct_rows(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each distinct ``(x_i, y_i)`` (in order) and how many rows equal it.

    Every term of the logistic likelihood, its gradient and its weighted gram is a sum over rows,
    so equal rows can be summed as one row with their count as weight; all rows when none repeat.
    """
    n = len(y)
    if n == 0:
        return np.arange(0), np.ones(0)
    rows = np.ascontiguousarray(np.column_stack([x, y]))
    rows[rows == 0.0] = 0.0  # -0.0 and 0.0 are one value
    key = rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).ravel()
    _, first, copies = np.unique(key, return_index=True, return_counts=True)
    if len(first) == n:
        return np.arange(n), np.ones(n)
    order = np.argsort(first)
    return first[order], copies[order].astype(float)


def _stacked_nll(eta: np.ndarray, y: np.ndarray, row_weight: np.ndarray) -> np.ndarray:
    """Mean negative log-likelihood of the logistic model at linear predictors ``eta``, computed
    stably, for each row of stacked problems (``row_weight``: 1/n, 0 on padding)."""
    return np.sum(row_weight * (np.logaddexp(0.0, eta) - y * eta), axis=1)


def _stacked_irls_loss(eta: np.ndarray, y: np.ndarray, row_weight: np.ndarray) -> np.ndarray:
    """:func:`_stacked_nll` with each case's loss continued linearly beyond ``|eta| = _ETA_MAX``.

    The convex objective whose gradient IRLS uses once it clips the probabilities (the same as the
    log-likelihood unless a fitted probability is below 1e-9, i.e. near separation), so that step
    halving on it leads to the point IRLS (and glmnet) converges to.
    """
    if eta.size and max(-eta.min(), eta.max()) <= _ETA_MAX:  # the usual case: nothing to clip
        return np.sum(row_weight * (np.logaddexp(0.0, eta) - y * eta), axis=1)
    clipped = np.clip(eta, -_ETA_MAX, _ETA_MAX)
    loss = np.logaddexp(0.0, clipped) - y * clipped
    out = clipped != eta
    if out.any():
        loss[out] += (expit(clipped[out]) - y[out]) * (eta[out] - clipped[out])
    return np.sum(row_weight * loss, axis=1)


def _irls_at_lambda(
    design: np.ndarray,
    target: np.ndarray,
    row_weight: np.ndarray,
    n_rows: np.ndarray,
    beta: np.ndarray,
    eta: np.ndarray,
    lam: np.ndarray,
    todo: np.ndarray,
    *,
    tol: float,
    max_outer: int,
    max_inner: int,
) -> None:
    """Proximal Newton (IRLS) steps at one lambda per problem for the problems ``todo``; updates
    ``beta`` and ``eta`` in place.

    Each step solves the weighted lasso of the quadratic approximation exactly; step halving on
    :func:`_stacked_irls_loss` keeps every step a descent step (an increase within rounding of the
    objective is no reason to halve: that is the converged step). A problem is done when its
    step (coefficient changes in units of the weighted column scale) is below 1e-9, or when its
    support and signs have settled and its Newton steps, shrinking quadratically, predict a next
    step below 1e-13.
    """
    penalty = lam[todo] * np.abs(beta[todo, 1:]).sum(axis=1)
    f_old = np.zeros(len(beta))
    f_old[todo] = _stacked_irls_loss(eta[todo], target[todo], row_weight[todo]) + penalty
    last_step = np.full(len(beta), np.inf)
    for _ in range(max_outer):
        if len(todo) == len(beta):  # every problem still iterating: views, not copies
            d, w, yt, e, b = design, row_weight, target, eta.copy(), beta.copy()
        else:
            d, w, yt, e, b = design[todo], row_weight[todo], target[todo], eta[todo], beta[todo]
        prob = expit(e)
        np.minimum(np.maximum(prob, _PROB_MIN, out=prob), 1 - _PROB_MIN, out=prob)
        v = prob * (1 - prob) * w
        dt = d.transpose(0, 2, 1)
        # X'VX as S'S with S = sqrt(V) X: one symmetric rank-k update (BLAS syrk) per problem, half
        # the work; a few problems at a time, so that S stays in the CPU's cache, over the rows that
        # are not padding for all of them (zero rows add nothing)
        root_v = np.sqrt(v)
        gram = np.empty((len(d), d.shape[2], d.shape[2]))
        most = n_rows[todo]
        for s in range(0, len(d), _GRAM_CHUNK):
            m = int(most[s : s + _GRAM_CHUNK].max())
            root = d[s : s + _GRAM_CHUNK, :m] * root_v[s : s + _GRAM_CHUNK, :m, None]
            np.matmul(root.transpose(0, 2, 1), root, out=gram[s : s + _GRAM_CHUNK])
        # the weighted lasso's linear term X'Vz, working response z = eta + (y - prob) / w
        c = np.matmul(dt, (v * e + w * (yt - prob))[:, :, None])[:, :, 0]
        new = _weighted_lasso(gram, c, b, lam[todo], tol=tol, max_sweeps=max_inner)
        eta_new = np.matmul(d, new[:, :, None])[:, :, 0]
        lt = lam[todo]
        f_new = _stacked_irls_loss(eta_new, yt, w) + lt * np.abs(new[:, 1:]).sum(axis=1)
        f_prev = f_old[todo]
        halvings = np.zeros(len(todo), dtype=int)
        worse = f_new > f_prev + 1e-13 * np.abs(f_prev)
        while worse.any():
            new[worse] = (b[worse] + new[worse]) / 2
            eta_new[worse] = (e[worse] + eta_new[worse]) / 2
            f_new[worse] = _stacked_irls_loss(eta_new[worse], yt[worse], w[worse]) + lt[worse] * np.abs(
                new[worse, 1:]
            ).sum(axis=1)
            halvings[worse] += 1
            worse &= (f_new > f_prev + 1e-13 * np.abs(f_prev)) & (halvings < 30)
        step = np.max(np.abs(new - b) * np.sqrt(np.diagonal(gram, axis1=1, axis2=2)), axis=1)
        settled = np.all(np.sign(new) == np.sign(b), axis=1) & (halvings == 0)
        beta[todo], eta[todo], f_old[todo] = new, eta_new, f_new
        last = last_step[todo]
        with np.errstate(invalid="ignore", over="ignore"):
            # Newton steps on a settled support shrink quadratically: step_next ~ step^3 / last^2
            quadratic = settled & np.isfinite(last) & (step < 1e-3 * last) & (step**3 < 1e-13 * last**2)
        finished = (step < 1e-9) | (halvings >= 30) | quadratic
        last_step[todo] = step
        todo = todo[~finished]
        if not todo.size:
            break


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _interpolate_path(
    path_lambdas: np.ndarray, intercepts: np.ndarray, coefs: np.ndarray, at: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients at lambdas ``at`` by linear interpolation along a path (glmnet's ``lambda.interp``)."""
    grid = path_lambdas[::-1]  # increasing, as np.interp needs; it clamps outside the range
    b0 = np.interp(at, grid, intercepts[::-1])
    b = np.column_stack([np.interp(at, grid, coefs[::-1, j]) for j in range(coefs.shape[1])])
    return b0, b.reshape(len(at), coefs.shape[1])


def cv_lasso_logistic(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_folds: int = 10,
    n_lambdas: int = 100,
    random_state: int | None = 0,
    foldid: np.ndarray | None = None,
) -> dict[str, Any]:
    """``cv.glmnet(family="binomial", type.measure="deviance")`` with seeded stratified folds.

    Returns a dict: ``lambdas`` (glmnet's sequence, ended early as glmnet ends it), the full-data
    path (``intercepts``, ``coefs``), ``cvm`` (mean held-out deviance, fold means weighted by fold
    size), ``cvsd`` (its SE), ``n_nonzero``, ``i_min`` (index of lambda.min: smallest ``cvm``, the
    largest lambda on ties), ``i_1se`` (index of lambda.1se: largest lambda whose ``cvm`` is within
    one SE of the minimum) and ``foldid``. ``foldid`` (1..K per case) overrides the seeded
    stratified folds.
    """
    plan = _cv_plan(x, y, n_folds=n_folds, n_lambdas=n_lambdas, random_state=random_state, foldid=foldid)
    return _cv_result(plan, _lasso_paths(plan["problems"], early_stop=True))


def _cv_plan(
    x: np.ndarray,
    y: np.ndarray,
    *,
    n_folds: int,
    n_lambdas: int,
    random_state: int | None,
    foldid: np.ndarray | None,
) -> dict[str, Any]:
    """:func:`cv_lasso_logistic` up to its paths: the folds, lambdas and the path problems to fit."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n = len(y)
    lambdas = glmnet_lambdas(x, y, n_lambdas)
    if len(lambdas) == 0:
        raise ALNMError("LASSO: no feature is related to the labels at all (lambda_max is 0)")
    if foldid is None:
        folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=random_state)
        foldid = np.empty(n, dtype=int)
        for k, (_, test) in enumerate(folds.split(x, y)):
            foldid[test] = k + 1
    foldid = np.asarray(foldid, dtype=int)
    fold_ids = np.unique(foldid)
    # as cv.glmnet: each fold fits its own lambda sequence, and its coefficients are linearly
    # interpolated in lambda (clamped at the ends) at the full-data lambdas; the full-data path
    # and the fold paths are fitted side by side
    tests = [foldid == k for k in fold_ids]
    fold_lambdas = [glmnet_lambdas(x[~test], y[~test], n_lambdas) for test in tests]
    fitted = [r for r, lam in enumerate(fold_lambdas) if len(lam)]
    problems = [(x, y, lambdas)] + [(x[~tests[r]], y[~tests[r]], fold_lambdas[r]) for r in fitted]
    return {
        "x": x,
        "y": y,
        "lambdas": lambdas,
        "foldid": foldid,
        "fold_ids": fold_ids,
        "tests": tests,
        "fold_lambdas": fold_lambdas,
        "fitted": fitted,
        "problems": problems,
    }


def _cv_result(plan: dict[str, Any], paths: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """:func:`cv_lasso_logistic`'s result from its plan (:func:`_cv_plan`) and the fitted paths of the plan's problems."""
    x, y, lambdas, foldid, fold_ids = plan["x"], plan["y"], plan["lambdas"], plan["foldid"], plan["fold_ids"]
    tests, fold_lambdas, fitted = plan["tests"], plan["fold_lambdas"], plan["fitted"]
    intercepts, coefs = paths[0]
    fold_paths = dict(zip(fitted, paths[1:], strict=True))
    lambdas = lambdas[: len(intercepts)]
    fold_means = np.empty((len(fold_ids), len(lambdas)))
    fold_sizes = np.empty(len(fold_ids))
    for r, test in enumerate(tests):
        if r not in fold_paths:
            b0 = np.full(len(lambdas), _logit(float(y[~test].mean())))
            b = np.zeros((len(lambdas), x.shape[1]))
        else:
            f0, fb = fold_paths[r]
            b0, b = _interpolate_path(fold_lambdas[r][: len(f0)], f0, fb, lambdas)
        prob = np.clip(expit(b0[None, :] + x[test] @ b.T), _CV_PROB_MIN, 1 - _CV_PROB_MIN)
        yt = y[test][:, None]
        dev = -2 * (yt * np.log(prob) + (1 - yt) * np.log(1 - prob))
        fold_means[r] = dev.mean(axis=0)
        fold_sizes[r] = test.sum()
    weights = fold_sizes / fold_sizes.sum()
    cvm = weights @ fold_means
    cvsd = np.sqrt((weights @ (fold_means - cvm) ** 2) / (len(fold_ids) - 1))
    i_min = int(np.flatnonzero(cvm <= cvm.min())[0])  # lambdas decrease: first = largest
    i_1se = int(np.flatnonzero(cvm <= cvm[i_min] + cvsd[i_min])[0])
    return {
        "lambdas": lambdas,
        "intercepts": intercepts,
        "coefs": coefs,
        "cvm": cvm,
        "cvsd": cvsd,
        "n_nonzero": (coefs != 0).sum(axis=1),
        "i_min": i_min,
        "i_1se": i_1se,
        "foldid": foldid,
    }


# --------------------------------------------------------------------------------------------
# Mutual information: scikit-learn's k-NN estimate, all features at once


def _kth_sorted(s: np.ndarray, k: int) -> np.ndarray:
    """Per sorted row ``s`` (features × cases of one class, ascending): each case's k-th smallest
    ``|x_i - x_j|``, j != i, in the same (sorted) order.

    What ``NearestNeighbors(n_neighbors=k).kneighbors()`` returns through a KD-tree in 1-D (the
    square root of the rounded square of the rounded difference, which is the rounded difference
    itself): in sorted order the k nearest lie among the k neighbours on either side, and the k-th
    smallest of two sorted lists is ``min_i max(left_i, right_{k-i})``. Equal values have equal
    distances to all others, so the order among ties does not matter.
    """
    left = [np.empty(0)] * (k + 1)
    right = [np.empty(0)] * (k + 1)
    for o in range(1, k + 1):
        gap = s[:, o:] - s[:, :-o]
        left[o] = np.full(s.shape, np.inf)
        left[o][:, o:] = gap  # distance to the o-th case on the left
        right[o] = np.full(s.shape, np.inf)
        right[o][:, :-o] = gap  # and on the right
    kth = np.minimum(left[k], right[k])
    for i in range(1, k):
        kth = np.minimum(kth, np.maximum(left[i], right[k - i]))
    return kth


def _kth_brute(v: np.ndarray, k: int) -> np.ndarray:
    """As :func:`_kth_sorted` where scikit-learn searches by brute force (k >= class size // 2).

    Its Euclidean ``ArgKmin`` forms squared distances as ``(x_i^2 + (-2 x_i x_j)) + x_j^2``, clipped at
    0, keeps the k + 1 smallest (the case itself included, at exactly 0) and takes square roots.
    """
    sq_norm = v * v
    sq = (sq_norm[:, :, None] + -2.0 * (v[:, :, None] * v[:, None, :])) + sq_norm[:, None, :]
    return np.sqrt(np.partition(np.maximum(sq, 0.0), k, axis=2)[:, :, k])


def _count_within(values: np.ndarray, radius: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Per row: for every case, how many cases (itself included) lie within ``|fl(x_j - x_i)| <= radius_i``.

    What ``KDTree.query_radius(count_only=True)`` counts in 1-D (it compares rounded squared
    differences with the rounded squared radius, which orders exactly as the rounded differences).
    In sorted order ``fl(s_{j+o} - s_j)`` grows with ``o``, so the cases within the radius on either
    side are counted by comparing the gaps to the o-th neighbour, o = 1, 2, ... (the radius is a k-th
    neighbour distance: usually a few); a case with ``_MI_WALK`` or more on a side is bisected.
    ``order``: each row's ``argsort``, when known (the order among ties does not matter).
    """
    p, m = values.shape
    if order is None:
        order = np.argsort(values, axis=1)
    s = np.take_along_axis(values, order, axis=1)
    r = np.take_along_axis(radius, order, axis=1)
    right = np.zeros((p, m), dtype=np.intp)
    left = np.zeros((p, m), dtype=np.intp)
    for o in range(1, min(_MI_WALK, m - 1) + 1):
        gap = s[:, o:] - s[:, :-o]
        right[:, :-o] += gap <= r[:, :-o]
        left[:, o:] += gap <= r[:, o:]
    for counted, outwards in ((right, 1), (left, -1)):
        row, j = np.nonzero(counted >= _MI_WALK)
        if not row.size:
            continue
        sj, rj = s[row, j], r[row, j]
        # inside at j +- _MI_WALK; outside at the row's end (m, or -1 on the left)
        inside, outside = j + outwards * _MI_WALK, np.full(j.shape, m if outwards > 0 else -1)
        while True:
            wide = np.abs(outside - inside) > 1
            if not wide.any():
                break
            mid = np.where(wide, (inside + outside) // 2, inside)
            gap = s[row, mid] - sj if outwards > 0 else sj - s[row, mid]
            out = wide & (gap > rj)
            outside = np.where(out, mid, outside)
            inside = np.where(wide & ~out, mid, inside)
        counted[row, j] = np.abs(inside - j)
    count = np.empty((p, m), dtype=np.intp)
    np.put_along_axis(count, order, right + left + 1, axis=1)
    return count


def _mutual_info_classif(
    x: np.ndarray, y: np.ndarray, random_state: Any = None, n_neighbors: int = 3
) -> np.ndarray:
    """``sklearn.feature_selection.mutual_info_classif(x, y, discrete_features=False, ...)``, vectorised.

    The same estimate (Ross 2014, as scikit-learn computes it) with the same numbers: columns scaled
    to unit SD, the same seeded 1e-10 noise, k = min(n_neighbors, class size - 1) neighbours within
    the class, the radius just below the k-th distance (``nextafter``), the count of all cases within
    it, the digamma terms averaged over the cases (cases of one-case classes left out) and negative
    estimates set to 0. The k-NN distances and radius counts come from sorting each column once
    instead of a KD-tree per feature; tests check equality with scikit-learn.
    """
    x = np.asarray(x)
    y = np.asarray(y)
    n, p = x.shape
    # exactly as sklearn.feature_selection._mutual_info._estimate_mi for continuous features
    rng = check_random_state(random_state)
    x = x.astype(np.float64, copy=True)
    continuous = np.ones(p, dtype=bool)
    x[:, continuous] = scale(x[:, continuous], with_mean=False, copy=False)
    means = np.maximum(1, np.mean(np.abs(x[:, continuous]), axis=0))
    x[:, continuous] += 1e-10 * means * rng.standard_normal(size=(n, p))

    values = np.ascontiguousarray(x.T)  # features × cases
    _, label, counts = np.unique(y, return_inverse=True, return_counts=True)
    label = label.ravel()
    radius = np.zeros((p, n))
    k_all = np.empty(n)
    order = np.argsort(values, axis=1)  # each feature sorted once, for every class and the counts
    label_sorted = label[order]
    for li, count in enumerate(counts):
        if count <= 1:
            continue
        members = np.flatnonzero(label == li)
        k = min(n_neighbors, int(count) - 1)
        # NearestNeighbors(n_neighbors=k) searches by brute force when k >= count // 2
        if k >= count // 2:
            radius[:, members] = np.nextafter(_kth_brute(values[:, members], k), 0)
        else:
            at = order[label_sorted == li].reshape(p, count)  # the class's cases in sorted order
            kth = _kth_sorted(np.take_along_axis(values, at, axis=1), k)
            np.put_along_axis(radius, at, np.nextafter(kth, 0), axis=1)
        k_all[members] = k
    label_counts = counts[label].astype(float)
    keep = label_counts > 1
    n_samples = np.sum(keep)
    if keep.all():
        m_all = _count_within(values, radius, order)
    else:  # the order of the kept cases, numbered among themselves
        renumber = np.cumsum(keep) - 1
        kept = order[keep[order]].reshape(p, int(n_samples))
        m_all = _count_within(values[:, keep], radius[:, keep], renumber[kept])
    # each feature's mean over contiguous rows: the same pairwise sums as scikit-learn's 1-D means
    mi = (
        digamma(n_samples)
        + np.mean(digamma(k_all[keep]))
        - np.mean(digamma(label_counts[keep]))
        - np.mean(digamma(m_all), axis=1)
    )
    return np.where(mi > 0, mi, 0.0)


def _examples(names: Sequence[str], limit: int = _EXAMPLES) -> str:
    names = list(names)
    shown = ", ".join(names[:limit])
    return shown + (f", ... (+{len(names) - limit} more)" if len(names) > limit else "")


def _numeric_frame(x: Any, what: str) -> pd.DataFrame:
    """Check a case × feature frame: unique index, numeric columns; returns it as float."""
    if not isinstance(x, pd.DataFrame):
        raise InputError(f"{what} must be a pandas DataFrame (cases × features), not {type(x).__name__}")
    if x.index.has_duplicates:
        dup = x.index[x.index.duplicated()][0]
        raise InputError(f"{what}: the case appears more than once", case=str(dup))
    if x.columns.has_duplicates:
        bad = [c for c in x.columns if not (pd.api.types.is_numeric_dtype(x[c]) or x[c].isna().all())]
    else:  # the dtype check once per distinct dtype, not once per column
        numeric = {dtype: pd.api.types.is_numeric_dtype(dtype) for dtype in set(x.dtypes)}
        bad = [c for c, dtype in x.dtypes.items() if not numeric[dtype] and not x[c].isna().all()]
    if bad:
        raise InputError(f"{what}: feature column(s) are not numeric", column=", ".join(map(str, bad)))
    return x.astype(float)


def _labels(y: Any, index: pd.Index) -> np.ndarray:
    """0/1 labels for the cases of ``index``: a Series is aligned by case id, anything else by position."""
    if isinstance(y, pd.Series):
        missing = index.difference(y.index)
        if len(missing):
            raise InputError("no training label for this case", case=str(missing[0]), column="label")
        if y.index.has_duplicates:
            raise InputError("label given twice", case=str(y.index[y.index.duplicated()][0]), column="label")
        values = pd.to_numeric(y.loc[index], errors="coerce").to_numpy(dtype=float)
    else:
        values = np.asarray(y, dtype=float).ravel()
        if len(values) != len(index):
            raise InputError(f"{len(values)} labels for {len(index)} training cases", column="label")
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        raise InputError("label must be 0 or 1", case=str(index[np.flatnonzero(bad)[0]]), column="label")
    if values.min() == values.max():
        raise InputError("the training labels contain one class only", column="label")
    return values.astype(int)


def _format_number(value: float, digits: int) -> str:
    text = f"{value:.{digits}f}"
    if value != 0 and float(text) == 0:
        text = f"{value:.{digits}g}"
    return text


def _plain(value: Any) -> Any:
    """Convert numpy scalars/NaN to JSON-friendly Python values."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


# --------------------------------------------------------------------------------------------
# The estimator


class RegionScore(BaseEstimator):
    """Feature selection and LASSO score for one region, fitted on training cases only.

    Parameters: ``region`` (name used in the score's name and formula), ``icc_threshold`` and
    ``icc_form`` (``ICC1``/``ICC2``/``ICC3``, single rater, as psych), ``near_constant_tol``
    (a feature whose training SD is at most this fraction of its largest absolute value counts as
    constant), ``max_mode_fraction`` (near-constant: this share of training cases or more have one
    value), ``corr_threshold`` (redundancy, ``|r|``), ``mi_top_k``, ``lasso_folds``, ``lasso_rule``
    (``lambda.min`` or ``lambda.1se``), ``n_lambdas``, ``random_state`` (MI noise and CV folds) and
    ``clip``: when scoring, a selected feature is first clipped to the range it had on the training
    cases, so that one out-of-range value (another scanner, a heavy-tailed texture feature) cannot
    move the score further than the training data did. Training cases are never clipped, so the fit
    does not change; :meth:`out_of_range` counts the clipped features of each case.
    """

    def __init__(
        self,
        region: str,
        icc_threshold: float = 0.80,
        icc_form: str = "ICC2",
        near_constant_tol: float = 1e-8,
        max_mode_fraction: float = 0.95,
        corr_threshold: float = 0.9,
        mi_top_k: int = 30,
        lasso_folds: int = 10,
        lasso_rule: str = "lambda.min",
        n_lambdas: int = 100,
        random_state: int | None = 0,
        clip: bool = True,
    ) -> None:
        self.region = region
        self.icc_threshold = icc_threshold
        self.icc_form = icc_form
        self.near_constant_tol = near_constant_tol
        self.max_mode_fraction = max_mode_fraction
        self.corr_threshold = corr_threshold
        self.mi_top_k = mi_top_k
        self.lasso_folds = lasso_folds
        self.lasso_rule = lasso_rule
        self.n_lambdas = n_lambdas
        self.random_state = random_state
        self.clip = clip

    #: the constructor parameters, in order (scikit-learn's get_params reads them from __init__)
    _PARAMS = (
        "region",
        "icc_threshold",
        "icc_form",
        "near_constant_tol",
        "max_mode_fraction",
        "corr_threshold",
        "mi_top_k",
        "lasso_folds",
        "lasso_rule",
        "n_lambdas",
        "random_state",
        "clip",
    )

    def __repr__(self) -> str:
        return f"RegionScore(region={self.region!r}, lasso_rule={self.lasso_rule!r})"

    def _check_params(self) -> None:
        if self.icc_form not in ICC_FORMS:
            raise ALNMError(f"icc_form must be one of {', '.join(ICC_FORMS)}, not {self.icc_form!r}")
        if self.lasso_rule not in LASSO_RULES:
            raise ALNMError(f"lasso_rule must be one of {', '.join(LASSO_RULES)}, not {self.lasso_rule!r}")
        if not 0 < self.corr_threshold <= 1:
            raise ALNMError(f"corr_threshold must be in (0, 1], not {self.corr_threshold}")
        if int(self.mi_top_k) < 1 or int(self.n_lambdas) < 2 or int(self.lasso_folds) < 3:
            raise ALNMError("mi_top_k must be >= 1, n_lambdas >= 2 and lasso_folds >= 3")

    # ---------------------------------------------------------------- fit
    def fit(
        self,
        X: pd.DataFrame,
        y: Any,
        X_reader2: pd.DataFrame | None = None,
        X_repeat: pd.DataFrame | None = None,
        degenerate: Sequence[str] = (),
    ) -> RegionScore:
        """Select features and fit the LASSO score on training cases (rows of ``X``, index case_id).

        ``y``: 0/1 labels (a Series is aligned by case id). ``X_reader2`` / ``X_repeat``: the same
        features from re-segmentations of some training cases (index case_id), for the ICC filter.
        ``degenerate``: feature names to drop up front.
        """
        x, z, yv, features = self._select(X, y, X_reader2, X_repeat, degenerate)
        self._step_lasso(z, yv, features)
        self._finish(x)
        return self

    def _select(
        self,
        X: pd.DataFrame,
        y: Any,
        X_reader2: pd.DataFrame | None,
        X_repeat: pd.DataFrame | None,
        degenerate: Sequence[str],
    ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, list[str]]:
        """:meth:`fit`'s steps before the LASSO: the training features, their z-scores, labels and survivors."""
        self._check_params()
        for name in [a for a in vars(self) if a.endswith("_")]:
            delattr(self, name)  # a failed refit must not leave a half-old, half-new model behind
        x = _numeric_frame(X, f"{self.region} training features")
        if x.shape[0] < 2 * int(self.lasso_folds) or x.shape[1] == 0:
            raise InputError(
                f"{self.region}: {x.shape[0]} training cases × {x.shape[1]} features is too few to fit a score"
            )
        yv = _labels(y, x.index)
        self.feature_names_in_ = [str(c) for c in x.columns]
        self.n_features_in_ = len(self.feature_names_in_)
        self.n_train_ = len(x)
        self._log: list[dict[str, Any]] = []
        self._dropped: list[dict[str, Any]] = []

        features = self._step_degenerate(x, degenerate)
        features = self._step_near_constant(x, features)
        features = self._step_icc(x, features, X_reader2, X_repeat)
        self.means_ = x[features].mean(axis=0)
        self.sds_ = x[features].std(axis=0, ddof=1)
        z = (x[features] - self.means_) / self.sds_
        features = self._step_redundancy(z, yv, features)
        features = self._step_mutual_information(z, yv, features)
        return x, z, yv, features

    def _finish(self, x: pd.DataFrame) -> None:
        """:meth:`fit` after the LASSO: the training ranges of the selected features, the log."""
        self.lower_ = x[self.selected_].min(axis=0)
        self.upper_ = x[self.selected_].max(axis=0)
        self.log_ = pd.DataFrame(self._log, columns=_LOG_COLUMNS)
        self.dropped_ = pd.DataFrame(self._dropped, columns=["feature", "step", "reason"])
        del self._log, self._dropped

    def _record(
        self,
        step: str,
        n_in: int,
        kept: Sequence[str],
        reasons: Mapping[str, str],
        why: str,
        warning: str = "",
    ) -> None:
        self._log.append(
            {
                "step": step,
                "n_in": int(n_in),
                "n_out": len(kept),
                "removed": _examples(list(reasons)),
                "why": why,
                "warning": warning,
            }
        )
        self._dropped.extend({"feature": f, "step": step, "reason": r} for f, r in reasons.items())
        if warning:
            warnings.warn(f"{self.region} score, step {step}: {warning}", UserWarning, stacklevel=5)
        if not kept:
            raise ALNMError(f"{self.region} score: no feature is left after step {step} ({why})")

    def _step_degenerate(self, x: pd.DataFrame, degenerate: Sequence[str]) -> list[str]:
        declared = {str(d) for d in degenerate}
        values = x.to_numpy()
        finite = np.isfinite(values)
        all_finite = finite.all(axis=0)
        reasons: dict[str, str] = {}
        n_declared = n_nonfinite = 0
        for j, name in enumerate(x.columns):
            if name in declared:
                reasons[name] = "declared degenerate"
                n_declared += 1
            elif not all_finite[j]:
                bad = np.flatnonzero(~finite[:, j])
                reasons[name] = (
                    f"missing/non-finite in {len(bad)} training case(s), e.g. case {x.index[bad[0]]}"
                )
                n_nonfinite += 1
        kept = [c for c in x.columns if c not in reasons]
        warning = (
            f"{n_nonfinite} feature(s) with missing/non-finite training values dropped: "
            f"{_examples([f for f, r in reasons.items() if r != 'declared degenerate'])}"
            if n_nonfinite
            else ""
        )
        self._record(
            "degenerate",
            x.shape[1],
            kept,
            reasons,
            f"declared degenerate: {n_declared}; missing/non-finite training values: {n_nonfinite}",
            warning,
        )
        return kept

    def _step_icc(
        self,
        x: pd.DataFrame,
        features: list[str],
        x_reader2: pd.DataFrame | None,
        x_repeat: pd.DataFrame | None,
    ) -> list[str]:
        table = pd.DataFrame({"feature": features, "icc_reader2": np.nan, "icc_repeat": np.nan, "kept": True})
        self.icc_cases_ = {}
        given = {
            name: frame for name, frame in (("reader2", x_reader2), ("repeat", x_repeat)) if frame is not None
        }
        if not given:
            self.icc_ = table
            self._record(
                "icc",
                len(features),
                features,
                {},
                "no re-segmentations given: reproducibility not assessed",
                "no re-segmentations (reader2/repeat): the ICC reproducibility filter was skipped",
            )
            return features
        form = self.icc_form
        label = {"ICC1": "ICC(1,1)", "ICC2": "ICC(2,1)", "ICC3": "ICC(3,1)"}[form]
        reasons: dict[str, str] = {}
        for name, frame in given.items():
            other = _numeric_frame(frame, f"{self.region} {name} re-segmentation features")
            missing = [f for f in features if f not in other.columns]
            if missing:
                raise InputError(
                    f"{self.region} {name} re-segmentation features lack column(s) used by the score",
                    column=", ".join(missing),
                )
            cases = x.index.intersection(other.index)
            if len(cases) < _ICC_MIN_CASES:
                raise InputError(
                    f"{self.region} {name} re-segmentations cover {len(cases)} training case(s); "
                    f"the ICC needs at least {_ICC_MIN_CASES}"
                )
            self.icc_cases_[name] = [str(c) for c in cases]
            # by position: the same values as .loc, without label look-ups of every case and feature
            rows = x.index.get_indexer(cases)
            ratings = np.stack(
                [
                    x.to_numpy()[rows][:, x.columns.get_indexer(features)],
                    other.to_numpy()[other.index.get_indexer(cases)][:, other.columns.get_indexer(features)],
                ],
                axis=1,
            )
            nonfinite = ~np.isfinite(ratings).all(axis=(0, 1))
            icc = np.full(len(features), np.nan)
            if (~nonfinite).any():
                icc[~nonfinite] = icc_values(ratings[:, :, ~nonfinite], form)
            table[f"icc_{name}"] = np.where(nonfinite, np.nan, icc)
            for j, feature in enumerate(features):
                if feature in reasons:
                    continue
                if nonfinite[j]:
                    bad = np.flatnonzero(~np.isfinite(ratings[:, 1, j]))
                    case = cases[bad[0]] if len(bad) else cases[0]
                    reasons[feature] = f"{label} {name} undefined: missing/non-finite value (case {case})"
                elif not np.isfinite(icc[j]):
                    reasons[feature] = f"{label} {name} undefined (no variance)"
                elif icc[j] < self.icc_threshold:
                    reasons[feature] = f"{label} {name} {icc[j]:.3f} < {self.icc_threshold:.2f}"
        table["kept"] = ~table["feature"].isin(list(reasons))
        self.icc_ = table
        kept = [f for f in features if f not in reasons]
        counts = ", ".join(f"{name} on {len(self.icc_cases_[name])} cases" for name in given)
        self._record(
            "icc",
            len(features),
            kept,
            reasons,
            f"{label} >= {self.icc_threshold:.2f} in every re-segmentation ({counts})",
        )
        return kept

    def _step_near_constant(self, x: pd.DataFrame, features: list[str]) -> list[str]:
        values = x[features].to_numpy()
        sd = values.std(axis=0, ddof=1)
        scale = np.abs(values).max(axis=0)
        # the largest number of training cases sharing one value, per feature: the longest run of
        # equal values in each sorted column
        n = len(values)
        ordered = np.sort(values, axis=0)
        starts = np.ones(ordered.shape, dtype=bool)
        starts[1:] = ordered[1:] != ordered[:-1]
        rows = np.arange(n)[:, None]
        run_start = np.maximum.accumulate(np.where(starts, rows, 0), axis=0)
        mode_count = (rows - run_start + 1).max(axis=0, initial=0)
        reasons: dict[str, str] = {}
        for j, feature in enumerate(features):
            if not sd[j] > self.near_constant_tol * scale[j]:
                reasons[feature] = "constant in training"
                continue
            share = mode_count[j] / n
            if share >= self.max_mode_fraction:
                reasons[feature] = f"near-constant: {share:.1%} of training cases share one value"
        kept = [f for f in features if f not in reasons]
        self._record(
            "near_constant",
            len(features),
            kept,
            reasons,
            f"SD <= {self.near_constant_tol:g} × max|x|, or >= {self.max_mode_fraction:.0%} of training cases share one value",
        )
        return kept

    def _step_redundancy(self, z: pd.DataFrame, y: np.ndarray, features: list[str]) -> list[str]:
        values = z[features].to_numpy()
        auc = _auc_columns(values, y)
        self.auc_ = pd.Series(auc, index=features, name="auc")
        relevance = np.abs(auc - 0.5)
        corr = (values.T @ values) / (len(values) - 1)  # z-scored columns: this is Pearson r
        iu, ju = np.triu_indices(len(features), k=1)
        r = np.abs(corr[iu, ju])
        hit = np.flatnonzero(r > self.corr_threshold)
        order = hit[np.argsort(-r[hit], kind="stable")]
        alive = np.ones(len(features), dtype=bool)
        reasons: dict[str, str] = {}
        for h in order:
            i, j = int(iu[h]), int(ju[h])
            if not (alive[i] and alive[j]):
                continue
            keep, drop = (j, i) if relevance[j] > relevance[i] else (i, j)
            alive[drop] = False
            reasons[features[drop]] = (
                f"|r| = {r[h]:.3f} with {features[keep]} (|AUC - 0.5| {relevance[drop]:.3f} vs {relevance[keep]:.3f})"
            )
        kept = [f for f, a in zip(features, alive, strict=True) if a]
        self._record(
            "redundancy",
            len(features),
            kept,
            reasons,
            f"features z-scored with the training mean and SD; pairs with |Pearson r| > {self.corr_threshold:g} "
            "by descending |r|: the feature with the larger univariate |AUC - 0.5| stays",
        )
        return kept

    def _step_mutual_information(self, z: pd.DataFrame, y: np.ndarray, features: list[str]) -> list[str]:
        mi = _mutual_info_classif(z[features].to_numpy(), y, random_state=self.random_state)
        order = np.argsort(-mi, kind="stable")
        self.mi_ = pd.Series(mi[order], index=[features[i] for i in order], name="mutual_information")
        k = int(self.mi_top_k)
        kept = list(self.mi_.index[:k])
        ranked = mi[order]
        reasons = {
            f: f"mutual information {ranked[rank]:.4f}, rank {rank + 1} > {k}"
            for rank, f in enumerate(self.mi_.index)
            if rank >= k
        }
        self._record(
            "mutual_information",
            len(features),
            kept,
            reasons,
            f"top {k} by mutual information with the label (k-NN estimate, random_state={self.random_state})",
        )
        return kept

    def _step_lasso(self, z: pd.DataFrame, y: np.ndarray, features: list[str]) -> None:
        plan = self._lasso_plan(z, y, features)
        self._lasso_done(plan, _lasso_paths(plan["problems"], early_stop=True))

    def _lasso_plan(self, z: pd.DataFrame, y: np.ndarray, features: list[str]) -> dict[str, Any]:
        """The LASSO step's cross-validation up to its paths (:func:`_cv_plan`), and what the step reports."""
        n_min = int(min(y.sum(), len(y) - y.sum()))
        folds = min(int(self.lasso_folds), n_min)
        warning = ""
        if folds < 3:
            raise InputError(
                f"{self.region}: {n_min} case(s) in the smaller class; LASSO cross-validation needs 3"
            )
        if folds < int(self.lasso_folds):
            warning = (
                f"only {n_min} cases in the smaller class: {folds}-fold instead of {self.lasso_folds}-fold CV"
            )
        values = z[features].to_numpy()
        plan = _cv_plan(
            values,
            y,
            n_folds=folds,
            n_lambdas=int(self.n_lambdas),
            random_state=self.random_state,
            foldid=None,
        )
        plan.update(features=features, folds=folds, warning=warning)
        return plan

    def _lasso_done(self, plan: dict[str, Any], paths: Sequence[tuple[np.ndarray, np.ndarray]]) -> None:
        """The LASSO step from its plan (:meth:`_lasso_plan`) and the plan's fitted paths."""
        cv = _cv_result(plan, paths)
        features, folds, warning = plan["features"], plan["folds"], plan["warning"]
        lambdas = cv["lambdas"]
        self.lasso_path_ = pd.DataFrame(cv["coefs"], index=pd.Index(lambdas, name="lambda"), columns=features)
        self.lasso_path_.insert(0, "(Intercept)", cv["intercepts"])
        self.lasso_cv_ = pd.DataFrame(
            {
                "lambda": lambdas,
                "log_lambda": np.log(lambdas),
                "mean_deviance": cv["cvm"],
                "se": cv["cvsd"],
                "n_nonzero": cv["n_nonzero"],
            }
        )
        self.lasso_foldid_ = cv["foldid"]
        self.lambda_min_ = float(lambdas[cv["i_min"]])
        self.lambda_1se_ = float(lambdas[cv["i_1se"]])
        index = cv["i_min"] if self.lasso_rule == "lambda.min" else cv["i_1se"]
        nonzero = cv["n_nonzero"]
        if nonzero[index] == 0:
            fallback = cv["i_min"] if nonzero[cv["i_min"]] > 0 else int(np.flatnonzero(nonzero > 0)[0])
            what = (
                "lambda.min" if fallback == cv["i_min"] else "the largest lambda with a non-zero coefficient"
            )
            note = f"{self.lasso_rule} ({lambdas[index]:.4g}) keeps no feature; fell back to {what} ({lambdas[fallback]:.4g})"
            warning = f"{warning}; {note}" if warning else note
            index = fallback
        self.lambda_ = float(lambdas[index])
        coef = cv["coefs"][index]
        self.selected_ = [f for f, c in zip(features, coef, strict=True) if c != 0.0]
        self.coef_ = pd.Series([float(c) for c in coef if c != 0.0], index=self.selected_, name="coefficient")
        self.intercept_ = float(cv["intercepts"][index])
        reasons = {
            f: f"zero LASSO coefficient at lambda {self.lambda_:.4g}"
            for f, c in zip(features, coef, strict=True)
            if c == 0
        }
        self._record(
            "lasso",
            len(features),
            self.selected_,
            reasons,
            f"L1 logistic, {folds}-fold stratified CV deviance; lambda.min {self.lambda_min_:.4g}, "
            f"lambda.1se {self.lambda_1se_:.4g}; used {self.lambda_:.4g}",
            warning,
        )

    # ---------------------------------------------------------------- apply
    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise ALNMError(f"the {self.region} score is not fitted yet: call fit() or from_dict() first")

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The selected features of ``X`` (index case_id), z-scored with the training means and SDs."""
        self._check_fitted()
        if not isinstance(X, pd.DataFrame):
            raise InputError(f"{self.region} features must be a pandas DataFrame, not {type(X).__name__}")
        missing = [f for f in self.selected_ if f not in X.columns]
        if missing:
            raise InputError(
                f"missing feature column(s) needed by the {self.region} score", column=", ".join(missing)
            )
        columns = {}
        for f in self.selected_:
            column = pd.to_numeric(X[f], errors="coerce").to_numpy(dtype=float)
            bad = np.flatnonzero(~np.isfinite(column))
            if len(bad):
                more = f" (and {len(bad) - 1} more case(s))" if len(bad) > 1 else ""
                raise InputError(
                    f"missing, non-numeric or non-finite value needed by the {self.region} score{more}",
                    case=str(X.index[bad[0]]),
                    column=f,
                )
            if self._clips():
                column = np.clip(column, self.lower_[f], self.upper_[f])
            columns[f] = (column - self.means_[f]) / self.sds_[f]
        return pd.DataFrame(columns, index=X.index, columns=list(self.selected_))

    def _clips(self) -> bool:
        return bool(self.clip) and self.lower_ is not None

    def out_of_range(self, X: pd.DataFrame) -> pd.Series:
        """Per case of ``X``: how many of the score's features lie outside their training range.

        Those values are clipped when scoring (``clip``); a case with many of them is unlike every
        training case. Zero everywhere for a score restored from a bundle without training ranges.
        """
        self._check_fitted()
        name = f"{self.region}_out_of_range"
        if self.lower_ is None:
            return pd.Series(0, index=X.index, name=name)
        values = X[list(self.selected_)].apply(pd.to_numeric, errors="coerce")
        outside = values.lt(self.lower_) | values.gt(self.upper_)
        return outside.sum(axis=1).astype(int).rename(name)

    def decision_function(self, X: pd.DataFrame) -> pd.Series:
        """The region score ``intercept + sum(coef × z)`` of each case of ``X`` (a log-odds, as scikit-learn's
        ``decision_function`` of a linear classifier)."""
        z = self.transform(X)
        total = np.full(len(z), self.intercept_)
        for f in self.selected_:
            total = total + self.coef_[f] * z[f].to_numpy()
        return pd.Series(total, index=X.index, name=f"{self.region}_score")

    # ---------------------------------------------------------------- report
    def formula(self, digits: int = 4) -> str:
        """The score as text: ``tumor score = -0.1230 + 0.4560 × tumor_... - ...`` (features z-scored)."""
        self._check_fitted()
        text = f"{self.region} score = {_format_number(self.intercept_, digits)}"
        for f in self.selected_:
            c = float(self.coef_[f])
            sign = "-" if c < 0 else "+"
            text += f" {sign} {_format_number(abs(c), digits)} × {f}"
        return text

    def formula_table(self) -> pd.DataFrame:
        """One row per term: ``term``, ``coefficient``, training ``mean`` and ``sd`` (NaN for the intercept)."""
        self._check_fitted()
        columns = ["term", "coefficient", "mean", "sd", "min", "max"]
        rows = [{"term": "(Intercept)", "coefficient": self.intercept_}]
        ranges = self.lower_ is not None
        rows += [
            {
                "term": f,
                "coefficient": float(self.coef_[f]),
                "mean": float(self.means_[f]),
                "sd": float(self.sds_[f]),
                "min": float(self.lower_[f]) if ranges else np.nan,
                "max": float(self.upper_[f]) if ranges else np.nan,
            }
            for f in self.selected_
        ]
        return pd.DataFrame(rows, columns=columns)

    def write_formula(
        self,
        csv_path: str | os.PathLike[str],
        text_path: str | os.PathLike[str] | None = None,
        digits: int = 4,
    ) -> tuple[Path, Path]:
        """Write the formula table (CSV) and the formula with its z-scoring note (text), atomically."""
        csv_path = Path(csv_path)
        text_path = csv_path.with_suffix(".txt") if text_path is None else Path(text_path)
        table = self.formula_table()
        lines = [
            self.formula(digits),
            "",
            "Each feature is z-scored with the training mean and SD: z = (x - mean) / sd"
            + (", after clipping x to its training range [min, max]." if self._clips() else "."),
            f"Training cases: {getattr(self, 'n_train_', 'n/a')}; LASSO {self.lasso_rule}, lambda = {self.lambda_:.6g}.",
            "",
            f"{'term':<60} {'coefficient':>14} {'mean':>14} {'sd':>14} {'min':>14} {'max':>14}",
        ]
        for row in table.itertuples(index=False):
            lines.append(
                f"{row.term:<60} {row.coefficient:>14.6g} {row.mean:>14.6g} {row.sd:>14.6g} {row.min:>14.6g} {row.max:>14.6g}"
            )
        write_table(csv_path, table)
        write_text(text_path, "\n".join(lines) + "\n")
        return csv_path, text_path

    # ---------------------------------------------------------------- persistence
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description of the fitted score (parameters, features, scaler, coefficients, log)."""
        self._check_fitted()
        log = getattr(self, "log_", pd.DataFrame(columns=_LOG_COLUMNS))
        return {
            "kind": _DICT_KIND,
            "version": _DICT_VERSION,
            "params": {k: _plain(v) for k, v in self.get_params().items()},
            "selected": [str(f) for f in self.selected_],
            "intercept": float(self.intercept_),
            "coefficients": [float(self.coef_[f]) for f in self.selected_],
            "means": [float(self.means_[f]) for f in self.selected_],
            "sds": [float(self.sds_[f]) for f in self.selected_],
            **(
                {
                    "mins": [float(self.lower_[f]) for f in self.selected_],
                    "maxs": [float(self.upper_[f]) for f in self.selected_],
                }
                if self.lower_ is not None
                else {}
            ),
            "lambda": float(self.lambda_),
            "lambda_min": _plain(getattr(self, "lambda_min_", None)),
            "lambda_1se": _plain(getattr(self, "lambda_1se_", None)),
            "n_train": _plain(getattr(self, "n_train_", None)),
            "log": [{k: _plain(v) for k, v in row.items()} for row in log.to_dict(orient="records")],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegionScore:
        """Restore a fitted score written by :meth:`to_dict`; it scores exactly as the original."""
        if not isinstance(d, Mapping) or d.get("kind") != _DICT_KIND:
            raise BundleError("not a saved region score (kind is not ALNMPredictor.RegionScore)")
        if int(d.get("version", 0)) > _DICT_VERSION:
            raise BundleError(
                f"region score saved by a newer version (format {d.get('version')} > {_DICT_VERSION})"
            )
        try:
            params = dict(d["params"])
            selected = [str(f) for f in d["selected"]]
            coefs = [float(c) for c in d["coefficients"]]
            means = [float(m) for m in d["means"]]
            sds = [float(s) for s in d["sds"]]
            mins = [float(v) for v in d["mins"]] if "mins" in d else None
            maxs = [float(v) for v in d["maxs"]] if "maxs" in d else None
            intercept = float(d["intercept"])
            lam = float(d["lambda"])
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"saved region score is incomplete or malformed: {exc!r}") from exc
        if not len(selected) == len(coefs) == len(means) == len(sds):
            raise BundleError("saved region score: features, coefficients, means and SDs differ in length")
        if (mins is None) != (maxs is None) or (
            mins is not None and not len(mins) == len(maxs) == len(selected)
        ):
            raise BundleError("saved region score: training minimums and maximums are incomplete")
        unknown = set(params) - set(cls._PARAMS)
        if unknown or "region" not in params:
            raise BundleError(
                f"saved region score: unexpected or missing parameters {sorted(unknown) or ['region']}"
            )
        obj = cls(**params)
        obj.selected_ = selected
        obj.coef_ = pd.Series(coefs, index=selected, name="coefficient", dtype=float)
        obj.means_ = pd.Series(means, index=selected, dtype=float)
        obj.sds_ = pd.Series(sds, index=selected, dtype=float)
        obj.lower_ = None if mins is None else pd.Series(mins, index=selected, dtype=float)
        obj.upper_ = None if maxs is None else pd.Series(maxs, index=selected, dtype=float)
        obj.intercept_ = intercept
        obj.lambda_ = lam
        for key, attr in (
            ("lambda_min", "lambda_min_"),
            ("lambda_1se", "lambda_1se_"),
            ("n_train", "n_train_"),
        ):
            if d.get(key) is not None:
                setattr(obj, attr, d[key])
        obj.log_ = pd.DataFrame(list(d.get("log", [])), columns=_LOG_COLUMNS)
        return obj


# --------------------------------------------------------------------------------------------
# Convenience: a whole feature table


class LassoBatch:
    """Several :class:`RegionScore` fits whose LASSO cross-validations are fitted side by side.

    :meth:`fit` runs a fit's steps up to the LASSO (raising their errors at once) and queues its
    cross-validation; :meth:`run` fits the queued paths of all of them together (the same paths as
    one by one: IRLS steps stacked into fewer, larger array operations) and completes each fit. A
    model refitted many times (cross-fitting, bootstrap validation) fits its scores this way.
    """

    def __init__(self) -> None:
        self._queue: list[tuple[RegionScore, pd.DataFrame, dict[str, Any], bool]] = []

    def __len__(self) -> int:
        """The number of queued fits."""
        return len(self._queue)

    def fit(
        self,
        scorer: RegionScore,
        X: pd.DataFrame,
        y: Any,
        X_reader2: pd.DataFrame | None = None,
        X_repeat: pd.DataFrame | None = None,
        degenerate: Sequence[str] = (),
        *,
        quiet: bool = False,
    ) -> RegionScore:
        """Start ``scorer.fit(...)`` (the arguments are :meth:`RegionScore.fit`'s); it is fitted when
        :meth:`run` returns without an error for it. ``quiet``: its LASSO step's warnings are not shown."""
        x, z, yv, features = scorer._select(X, y, X_reader2, X_repeat, degenerate)
        self._queue.append((scorer, x, scorer._lasso_plan(z, yv, features), quiet))
        return scorer

    def run(self) -> list[Exception | None]:
        """Complete the queued fits; the error each raised in its LASSO step (None when fitted), in order."""
        queue, self._queue = self._queue, []
        problems = [problem for _, _, plan, _ in queue for problem in plan["problems"]]
        paths = _lasso_paths(problems, early_stop=True) if problems else []
        errors: list[Exception | None] = []
        start = 0
        for scorer, x, plan, quiet in queue:
            mine = paths[start : start + len(plan["problems"])]
            start += len(plan["problems"])
            try:
                with warnings.catch_warnings():
                    if quiet:
                        warnings.simplefilter("ignore", UserWarning)
                    scorer._lasso_done(plan, mine)
                    scorer._finish(x)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, which re-raises what it does not handle
                errors.append(exc)
            else:
                errors.append(None)
        return errors


def fit_region_scores(
    table: pd.DataFrame,
    labels: pd.Series | Mapping[str, int],
    regions: Sequence[str],
    degenerate: Sequence[str] = (),
    **params: Any,
) -> dict[str, RegionScore]:
    """Fit one :class:`RegionScore` per region from the extraction's feature table.

    ``table`` has ``case_id`` and ``variant`` (``main``/``reader2``/``repeat``) columns and feature
    columns prefixed ``<region>_``. ``labels`` (case_id → 0/1) names the training cases: rows of any
    other case are ignored, so test cases in the table cannot influence the fit. A re-segmentation
    row whose region features are all missing is taken as "not re-segmented for this region".
    ``params`` go to every ``RegionScore``.
    """
    for column in ("case_id", "variant"):
        if column not in table.columns:
            raise InputError("the feature table has no such column", column=column)
    labels = pd.Series(labels).copy()  # a copy: the caller's index is not touched
    labels.index = labels.index.astype(str)
    if labels.index.has_duplicates:
        raise InputError(
            "label given twice", case=str(labels.index[labels.index.duplicated()][0]), column="label"
        )
    case_ids = table["case_id"].astype(str)
    variant = table["variant"].astype(str)
    unknown = ~variant.isin(VARIANTS)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise InputError(
            f"unknown variant {variant.iloc[i]!r} (expected {', '.join(VARIANTS)})",
            case=case_ids.iloc[i],
            column="variant",
        )
    train = case_ids.isin(labels.index).to_numpy()
    rows = {}
    for name in VARIANTS:
        part = table.loc[train & (variant == name).to_numpy()].copy()
        part.index = pd.Index(case_ids[train & (variant == name).to_numpy()], name="case_id")
        if part.index.has_duplicates:
            raise InputError(
                f"more than one {name!r} feature row", case=str(part.index[part.index.duplicated()][0])
            )
        rows[name] = part
    main = rows["main"]
    absent = labels.index.difference(main.index)
    if len(absent):
        raise InputError("training case has no 'main' feature row", case=str(absent[0]))
    main = main.loc[labels.index]
    declared = [str(d) for d in degenerate]
    scores: dict[str, RegionScore] = {}
    for region in regions:
        prefix = f"{region}_"
        columns = [c for c in table.columns if isinstance(c, str) and c.startswith(prefix)]
        if not columns:
            raise InputError(f"no feature columns for region {region!r}", column=f"{prefix}*")
        extra: dict[str, pd.DataFrame | None] = {}
        for name in ("reader2", "repeat"):
            frame = rows[name][columns]
            frame = frame.loc[~frame.isna().all(axis=1)]
            extra[name] = frame if len(frame) else None
        scores[region] = RegionScore(region, **params).fit(
            main[columns],
            labels,
            X_reader2=extra["reader2"],
            X_repeat=extra["repeat"],
            degenerate=[d for d in declared if d.startswith(prefix)],
        )
    return scores
