"""Binary logistic regression as R ``glm(family = binomial)`` reports it, plus the study's Table 2 workflow.

* :func:`logistic_fit`: maximum-likelihood fit by iteratively reweighted least squares; coefficients,
  Wald standard errors, two-sided Wald p and odds ratios with Wald intervals
  ``exp(coef ± qnorm(0.975) * se)``, as ``summary(glm(...))`` and ``exp(confint.default(...))``.
  As R's ``binomial()`` family, the fitted probabilities are kept inside (0, 1) (the logit link is
  clamped at |eta| = 30), so data whose linear predictor reaches far beyond |eta| = 37 without being
  separated get their maximum-likelihood fit, as in glm.
* :func:`univariate_screen`: one model per candidate factor (Table 2, "Univariate analysis").
* :func:`backward_stepwise`: backward elimination by Wald p (Table 2, "Multivariate analysis").

Categorical factors (text or pandas ``category`` columns, or any column named in ``categorical``) are
dummy-coded against a reference level, R's treatment contrasts: the first level (the category order of a
pandas Categorical, else the sorted values) unless ``reference`` names another. Terms are called
``variable[level]``; levels absent from the data are dropped.

Before fitting, the design is checked: missing values, constant columns and collinear (aliased) terms
raise :class:`StatsError` naming the column; complete or quasi-complete separation (some combination of
the terms splits the classes, so the MLE is infinite) is detected exactly with a linear program
(Konis 2007, as R's ``detectseparation``/``safeBinaryRegression``) and raises :class:`SeparationError`
naming the terms involved, where R would return huge coefficients and a warning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import linalg, optimize
from scipy import stats as sps
from scipy.special import expit

from ALNMPredictorLib.errors import SeparationError, StatsError, format_location
from ALNMPredictorLib.stats._checks import as_binary, require_both_classes

__all__ = [
    "INTERCEPT",
    "StepwiseResult",
    "design_matrix",
    "logistic_fit",
    "logistic_predict",
    "univariate_screen",
    "backward_stepwise",
]

INTERCEPT = "(Intercept)"
FIT_COLUMNS = ["coef", "se", "p", "odds_ratio", "or_low", "or_high"]
_MAX_ITER = 100


# --------------------------------------------------------------------------------------------------
# Design matrix


def _is_categorical(series: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series))


def _observed_levels(series: pd.Series) -> list[Any]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        present = set(series.dropna().unique())
        return [level for level in series.cat.categories if level in present]
    values = series.dropna().unique().tolist()
    try:
        return sorted(values)
    except TypeError:
        return sorted(values, key=str)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _check_missing(series: pd.Series, column: str) -> None:
    missing = series.isna().to_numpy()
    if missing.any():
        rows = ", ".join(str(r) for r in series.index[missing][:5])
        more = " ..." if missing.sum() > 5 else ""
        raise StatsError(
            format_location(f"{int(missing.sum())} missing value(s) (rows {rows}{more})", column=column)
        )


def design_matrix(
    table: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    encoding: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    """Numeric model terms of ``table[columns]`` (no intercept) and the encoding that produced them.

    Numeric and boolean columns give one term each; categorical ones a 0/1 term per non-reference
    level. The returned ``encoding`` (JSON-serialisable: ``{"type": "numeric"}`` or
    ``{"type": "categorical", "reference": ..., "levels": [...]}`` per column) applied to new data with
    ``encoding=`` reproduces the same terms; a level unseen at fit time raises StatsError.
    ``categorical`` and ``reference`` may name columns outside ``columns`` (a study-wide declaration).
    """
    if not isinstance(table, pd.DataFrame):
        raise StatsError(f"table: expected a pandas DataFrame, got {type(table).__name__}")
    columns = list(table.columns if columns is None else columns)
    missing_cols = [c for c in columns if c not in table.columns]
    if missing_cols:
        raise StatsError(f"table has no column(s) {', '.join(map(str, missing_cols))}")
    unknown_ref = [c for c in (reference or {}) if c not in table.columns]
    if unknown_ref:
        raise StatsError(f"reference: table has no column(s) {', '.join(map(str, unknown_ref))}")
    # References (and categorical declarations) of columns left out of this model are ignored.
    reference = {c: r for c, r in (reference or {}).items() if c in columns}
    forced = set(categorical)
    terms: dict[str, np.ndarray] = {}
    out_encoding: dict[str, dict[str, Any]] = {}
    for col in columns:
        series = table[col]
        name = str(col)
        _check_missing(series, name)
        spec = None if encoding is None else encoding.get(name)
        if encoding is not None and spec is None:
            raise StatsError(format_location("not in the model's encoding", column=name))
        is_cat = (
            spec["type"] == "categorical"
            if spec
            else (col in forced or col in reference or _is_categorical(series))
        )
        if not is_cat:
            try:
                values = series.astype(float).to_numpy()
            except (TypeError, ValueError):
                raise StatsError(format_location("values are not numeric", column=name)) from None
            if not np.all(np.isfinite(values)):
                raise StatsError(format_location("non-finite value(s)", column=name))
            terms[name] = values
            out_encoding[name] = {"type": "numeric"}
            continue
        if spec:
            levels = list(spec["levels"])
            ref = spec["reference"]
            unseen = sorted({str(v) for v in series.unique()} - {str(v) for v in levels})
            if unseen:
                raise StatsError(
                    format_location(f"level(s) {', '.join(unseen)} unseen when fitting", column=name)
                )
        else:
            levels = [_plain(v) for v in _observed_levels(series)]
            if len(levels) < 2:
                raise StatsError(format_location("constant predictor (a single level)", column=name))
            ref = reference.get(col, levels[0] if levels else None)
            if ref not in levels:
                raise StatsError(
                    format_location(f"reference level {ref!r} not among the levels {levels}", column=name)
                )
        as_text = series.astype(str).to_numpy()
        for level in levels:
            if level == ref:
                continue
            terms[f"{name}[{level}]"] = (as_text == str(level)).astype(float)
        out_encoding[name] = {"type": "categorical", "reference": ref, "levels": levels}
    return pd.DataFrame(terms, index=table.index), out_encoding


def _variables_of(encoding: Mapping[str, Mapping[str, Any]]) -> dict[str, list[str]]:
    """Terms of each variable, in design order."""
    out: dict[str, list[str]] = {}
    for var, spec in encoding.items():
        if spec["type"] == "numeric":
            out[var] = [var]
        else:
            out[var] = [f"{var}[{lv}]" for lv in spec["levels"] if lv != spec["reference"]]
    return out


# --------------------------------------------------------------------------------------------------
# Fitting


@dataclass(frozen=True)
class _Fit:
    terms: list[str]
    beta: np.ndarray
    cov: np.ndarray
    deviance: float
    null_deviance: float
    n: int
    n_events: int
    iterations: int
    firth: bool = False
    firth_reason: str | None = None


def _outcome(y: ArrayLike | pd.Series, n: int | None = None) -> np.ndarray:
    """The 0/1 outcome as floats, both classes present, ``n`` values when given (the predictors' rows)."""
    arr = as_binary(y, "y")
    if n is not None and arr.size != n:
        raise StatsError(f"argument y: length {arr.size} does not match the predictors ({n} rows)")
    require_both_classes(arr, "y")
    return arr.astype(float)


def _check_design(X: np.ndarray, terms: list[str]) -> None:
    """Constant and aliased terms (column 0 is the intercept)."""
    for j in range(1, X.shape[1]):
        if np.ptp(X[:, j]) == 0:
            raise StatsError(format_location("constant predictor (a single value)", column=terms[j]))
    scale = np.sqrt(np.sum(X**2, axis=0))
    Xs = X / scale
    kept: list[int] = []
    aliased: list[str] = []
    for j in range(X.shape[1]):
        if kept:
            coef, *_ = np.linalg.lstsq(Xs[:, kept], Xs[:, j], rcond=None)
            resid = Xs[:, j] - Xs[:, kept] @ coef
            if np.linalg.norm(resid) < 1e-7:
                aliased.append(terms[j])
                continue
        kept.append(j)
    if aliased:
        raise StatsError(
            "collinear predictor(s) " + ", ".join(aliased) + ": a linear combination of earlier terms"
        )


def _separation(X: np.ndarray, y: np.ndarray, terms: list[str]) -> list[str]:
    """Terms along which the classes are (quasi-)completely separated; empty when the MLE exists."""
    Xs = X.copy()
    Xs[:, 1:] = (Xs[:, 1:] - Xs[:, 1:].mean(axis=0)) / Xs[:, 1:].std(axis=0)
    A = (2.0 * y - 1.0)[:, None] * Xs
    res = optimize.linprog(
        -A.sum(axis=0),
        A_ub=-A,
        b_ub=np.zeros(len(y)),
        bounds=[(-1.0, 1.0)] * X.shape[1],
        method="highs",
    )
    if res.status != 0:  # pragma: no cover - the LP is always feasible (b = 0) and bounded
        raise StatsError(f"separation check failed: {res.message}")
    margin = A @ res.x
    if -res.fun <= 1e-7 * len(y) or margin.min() < -1e-7:
        return []
    # Name the fewest terms that separate: the separating direction of least L1 norm (intercept free).
    p = X.shape[1]
    cost = np.concatenate([[0.0, 0.0], np.ones(2 * (p - 1))])
    B = np.hstack([A[:, :1], -A[:, :1], A[:, 1:], -A[:, 1:]])
    sparse = optimize.linprog(
        cost,
        A_ub=np.vstack([-B, -B.sum(axis=0)]),
        b_ub=np.concatenate([np.zeros(len(y)), [-1.0]]),
        bounds=[(0, None)] * (2 * p),
        method="highs",
    )
    b = res.x if sparse.status != 0 else np.concatenate([[0.0], sparse.x[2 : p + 1] - sparse.x[p + 1 :]])
    scale = np.abs(b[1:]).max()
    return [terms[j] for j in range(1, p) if abs(b[j]) > 1e-6 * scale] or terms[1:]


# R's binomial() family (src/library/stats/src/family.c): the logit link's inverse and derivative clamp
# eta at +-30, so mu stays within [eps/(1 + eps), 1/(1 + eps)] and d mu / d eta at least eps, with
# eps = .Machine$double.eps. Without this a fitted eta beyond about 37 rounds mu to exactly 0 or 1, the
# working weight mu(1 - mu) to 0 and the working response to 0/0.
_EPS = float(np.finfo(float).eps)
_THRESH = 30.0


def _linkinv(eta: np.ndarray) -> np.ndarray:
    """R ``binomial()$linkinv``: ``t / (1 + t)`` with ``t = exp(eta)``, ``eps`` below -30, ``1/eps`` above 30."""
    t = np.exp(np.clip(eta, -_THRESH, _THRESH))
    t = np.where(eta < -_THRESH, _EPS, np.where(eta > _THRESH, 1.0 / _EPS, t))
    return t / (1.0 + t)


def _mu_eta(eta: np.ndarray) -> np.ndarray:
    """R ``binomial()$mu.eta``: ``exp(eta) / (1 + exp(eta))^2``, ``eps`` where ``|eta| > 30``."""
    e = np.exp(np.clip(eta, -_THRESH, _THRESH))
    return np.where(np.abs(eta) > _THRESH, _EPS, e / ((1.0 + e) * (1.0 + e)))


def _deviance(y: np.ndarray, mu: np.ndarray) -> float:
    """R ``binomial()$dev.resids`` summed: ``2 * (y log(y/mu) + (1-y) log((1-y)/(1-mu)))`` for 0/1 ``y``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ll = np.where(y > 0, np.log(mu), np.log(1.0 - mu))
    return float(-2.0 * ll.sum())


def _irls(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """R ``glm.fit`` with ``binomial()``: Fisher scoring by weighted least squares on the working response.

    As glm.fit: start from ``mu = (y + 1/2) / 2``, working response ``z = eta + (y - mu) / mu.eta(eta)``
    and weights ``mu.eta^2 / (mu (1 - mu))``, with R's clamped link functions, and halve the step towards
    the previous coefficients while the deviance is not finite; in addition (as R package glm2) while it
    increases. Converges when the relative change of deviance is below 1e-13 (glm's 1e-8 is too loose for
    the SEs to equal those at the MLE). The covariance is that at the final coefficients.
    """
    mu = (y + 0.5) / 2.0  # glm's binomial start
    eta = np.log(mu / (1 - mu))
    beta = np.zeros(X.shape[1])
    dev_old = _deviance(y, mu)
    for it in range(1, _MAX_ITER + 1):
        mu_eta = _mu_eta(eta)
        z = eta + (y - mu) / mu_eta
        sw = mu_eta / np.sqrt(mu * (1.0 - mu))
        if not (
            np.all(np.isfinite(z)) and np.all(np.isfinite(sw))
        ):  # pragma: no cover - the clamps prevent it
            raise StatsError("logistic regression: non-finite working response")
        new_beta, *_ = np.linalg.lstsq(X * sw[:, None], z * sw, rcond=None)
        new_eta = X @ new_beta
        dev = _deviance(y, _linkinv(new_eta))
        halvings = 0
        while it > 1 and (not np.isfinite(dev) or dev > dev_old + 1e-12 * abs(dev_old)) and halvings < 30:
            new_beta = (beta + new_beta) / 2.0
            new_eta = X @ new_beta
            dev = _deviance(y, _linkinv(new_eta))
            halvings += 1
        if not np.isfinite(dev):  # pragma: no cover - the clamped mu keeps every deviance finite
            raise StatsError("logistic regression: the deviance is not finite")
        beta, eta, mu = new_beta, new_eta, _linkinv(new_eta)
        if abs(dev - dev_old) / (abs(dev) + 0.1) < 1e-13:
            break
        dev_old = dev
    else:
        raise StatsError(f"logistic regression did not converge in {_MAX_ITER} iterations")
    sw = _mu_eta(eta) / np.sqrt(mu * (1.0 - mu))
    r = linalg.qr(X * sw[:, None], mode="r")[0][: X.shape[1]]
    rinv = linalg.solve_triangular(r, np.eye(X.shape[1]))
    cov = rinv @ rinv.T
    return beta, cov, dev, it


def _firth(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Firth's bias-reduced logistic regression (penalised by half the log-determinant of the information).

    Newton steps on the modified score ``X'(y - mu + h(1/2 - mu))`` with step halving on the penalised
    log-likelihood, as R ``logistf``; where those steps cycle (sparse cells), a quasi-Newton search on the
    same penalised likelihood, whose gradient is that score, finishes. Always finite, also under
    separation. Returns the coefficients, the Wald covariance (logistf's ``var``), the unpenalised deviance
    and the iterations used; equal to R logistf 1.26 (Testing/R/stats_firth_logistf.R).
    """

    def penalised(beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        eta = X @ beta
        mu = expit(eta)
        w = mu * (1 - mu)
        info = X.T @ (X * w[:, None])
        sign, logdet = np.linalg.slogdet(info)
        ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
        return (ll + 0.5 * logdet if sign > 0 else -np.inf), mu, info

    def score(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, mu, info = penalised(beta)
        inv = np.linalg.inv(info)
        xs = X * np.sqrt(mu * (1 - mu))[:, None]
        h = np.einsum("ij,jk,ik->i", xs, inv, xs)
        return X.T @ (y - mu + h * (0.5 - mu)), inv

    beta = np.zeros(X.shape[1])
    value = penalised(beta)[0]
    iterations = 0
    for iterations in range(1, _MAX_ITER + 1):  # noqa: B007 - the count is returned
        grad, inv = score(beta)
        if np.max(np.abs(grad)) < 1e-9:
            break
        delta = inv @ grad
        step = 1.0
        while True:
            candidate = beta + step * delta
            new_value = penalised(candidate)[0]
            if new_value >= value - 1e-12 * abs(value) or step < 1e-8:
                break
            step /= 2.0
        beta, value = candidate, new_value
    grad, _ = score(beta)
    if np.max(np.abs(grad)) >= 1e-9:
        res = optimize.minimize(
            lambda b: -penalised(b)[0],
            beta,
            jac=lambda b: -score(b)[0],
            method="BFGS",
            options={"gtol": 1e-10, "maxiter": 1000},
        )
        beta = res.x
        iterations += int(res.nit)
        if np.max(np.abs(score(beta)[0])) > 1e-6:
            raise StatsError("Firth-penalised logistic regression did not converge")
    _, mu, info = penalised(beta)
    # Wald covariance as logistf's ``var``: the inverse information of the augmented data, whose rows weigh
    # (1 + h_i) mu_i (1 - mu_i) (the plain inverse information at the estimate is 5-33 % wider on
    # Testing/fixtures/stats_firth_logistf.json's cases)
    w = mu * (1 - mu)
    xs = X * np.sqrt(w)[:, None]
    h = np.einsum("ij,jk,ik->i", xs, np.linalg.inv(info), xs)
    cov = np.linalg.inv(X.T @ (X * (w * (1.0 + h))[:, None]))
    return beta, cov, _deviance(y, mu), iterations


def _fit_terms(terms_df: pd.DataFrame, y: np.ndarray, separation: str = "error") -> _Fit:
    terms = [INTERCEPT, *map(str, terms_df.columns)]
    X = np.column_stack([np.ones(len(y)), terms_df.to_numpy(dtype=float)])
    if len(y) <= X.shape[1]:
        raise StatsError(f"{len(y)} observations are too few for {X.shape[1]} coefficients")
    _check_design(X, terms)
    separated = _separation(X, y, terms)
    firth = False
    reason = None
    if separated and separation == "firth":
        beta, cov, dev, iterations = _firth(X, y)
        firth, reason = True, "separation along " + ", ".join(separated)
    elif separated:
        raise SeparationError(
            "complete or quasi-complete separation: the outcome is perfectly predicted along "
            + ", ".join(separated)
            + " (the maximum-likelihood odds ratio is infinite); merge sparse levels or drop the variable",
            terms=tuple(separated),
        )
    else:
        try:
            beta, cov, dev, iterations = _irls(X, y)
        except (np.linalg.LinAlgError, StatsError) as exc:
            if separation != "firth":
                if isinstance(exc, StatsError):
                    raise
                raise StatsError(
                    f"logistic regression failed numerically ({exc}); terms: {', '.join(terms[1:])}"
                ) from exc
            # The separation check found none, so the MLE exists: this is a numerical failure, not separation.
            beta, cov, dev, iterations = _firth(X, y)
            firth, reason = True, f"maximum-likelihood fit failed numerically ({exc})"
    ybar = y.mean()
    null_dev = float(-2.0 * len(y) * (ybar * np.log(ybar) + (1 - ybar) * np.log1p(-ybar)))
    return _Fit(terms, beta, cov, dev, null_dev, len(y), int(y.sum()), iterations, firth, reason)


def _table(fit: _Fit, level: float) -> pd.DataFrame:
    se = np.sqrt(np.diag(fit.cov))
    z = fit.beta / se
    q = sps.norm.ppf(1 - (1 - level) / 2)
    df = pd.DataFrame(
        {
            "coef": fit.beta,
            "se": se,
            "p": 2.0 * sps.norm.sf(np.abs(z)),
            "odds_ratio": np.exp(fit.beta),
            "or_low": np.exp(fit.beta - q * se),
            "or_high": np.exp(fit.beta + q * se),
        },
        index=pd.Index(fit.terms, name="term"),
    )
    df.attrs.update(
        deviance=fit.deviance,
        null_deviance=fit.null_deviance,
        aic=fit.deviance + 2.0 * len(fit.terms),
        n=fit.n,
        n_events=fit.n_events,
        iterations=fit.iterations,
        firth=fit.firth,
        firth_reason=fit.firth_reason,
    )
    return df


def _check_separation_mode(separation: str) -> str:
    if separation not in ("error", "firth"):
        raise StatsError(f"separation: unknown mode {separation!r}; expected 'error' or 'firth'")
    return separation


def _as_terms(X: ArrayLike | pd.DataFrame) -> tuple[pd.DataFrame, dict[str, dict[str, Any]]]:
    if isinstance(X, pd.DataFrame):
        return design_matrix(X)
    if isinstance(X, pd.Series):
        return design_matrix(X.to_frame(name=str(X.name) if X.name is not None else "x"))
    try:
        arr = np.asarray(X, dtype=float)
    except (TypeError, ValueError):
        raise StatsError("X: predictors must be numeric (or a DataFrame with categorical columns)") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise StatsError(f"X: expected a 1-D or 2-D array, got shape {arr.shape}")
    names = ["x"] if arr.shape[1] == 1 else [f"x{j + 1}" for j in range(arr.shape[1])]
    return design_matrix(pd.DataFrame(arr, columns=names))


def logistic_fit(
    X: ArrayLike | pd.DataFrame,
    y: ArrayLike,
    *,
    level: float = 0.95,
    separation: Literal["error", "firth"] = "error",
) -> pd.DataFrame:
    """Logistic regression of 0/1 ``y`` on ``X``, equal to R ``glm(y ~ ., family = binomial)``.

    ``X``: a DataFrame (column names become terms; categorical columns are dummy-coded) or an array
    (terms ``x`` or ``x1, x2, ...``). Returns a DataFrame indexed by term, ``(Intercept)`` first, with
    columns ``coef se p odds_ratio or_low or_high``; ``attrs`` holds ``deviance``, ``null_deviance``,
    ``aic``, ``n``, ``n_events``, ``iterations`` and the ``encoding`` for :func:`logistic_predict`.
    Raises SeparationError under (quasi-)complete separation, StatsError on bad input.
    ``separation="firth"`` fits Firth's penalised likelihood (R ``logistf``, Wald intervals) where the data
    are separated, instead of raising SeparationError; the table's ``attrs["firth"]`` says so and
    ``attrs["firth_reason"]`` why (``"separation along ..."``, or the rare numerical failure of an ML fit
    on data that are not separated), None when the ML fit was used.
    """
    terms_df, encoding = _as_terms(X)
    yy = _outcome(y, len(terms_df))
    table = _table(_fit_terms(terms_df, yy, _check_separation_mode(separation)), level)
    table.attrs["encoding"] = encoding
    return table


def logistic_predict(fit: pd.DataFrame, X: ArrayLike | pd.DataFrame) -> np.ndarray:
    """Predicted probabilities of a :func:`logistic_fit` table on new predictors ``X``."""
    encoding = fit.attrs.get("encoding")
    if isinstance(X, pd.DataFrame) and encoding is not None:
        terms_df, _ = design_matrix(X, list(encoding), encoding=encoding)
    else:
        terms_df, _ = _as_terms(X)
    wanted = [t for t in fit.index if t != INTERCEPT]
    absent = [t for t in wanted if t not in terms_df.columns]
    if absent:
        raise StatsError(f"X: missing model term(s) {', '.join(absent)}")
    eta = terms_df[wanted].to_numpy(dtype=float) @ fit.loc[wanted, "coef"].to_numpy()
    if INTERCEPT in fit.index:
        eta = eta + float(fit.loc[INTERCEPT, "coef"])
    return expit(eta)


# --------------------------------------------------------------------------------------------------
# Table 2 workflow


def _resolve_y(table: pd.DataFrame, y: ArrayLike | str) -> tuple[np.ndarray, str | None]:
    if isinstance(y, str):
        if y not in table.columns:
            raise StatsError(f"y: table has no outcome column {y!r}")
        _check_missing(table[y], y)
        return _outcome(table[y].to_numpy(), len(table)), y
    return _outcome(y, len(table)), None


def _joint_wald(fit: _Fit, terms: Sequence[str]) -> tuple[float, int]:
    idx = [fit.terms.index(t) for t in terms]
    b = fit.beta[idx]
    stat = float(b @ np.linalg.solve(fit.cov[np.ix_(idx, idx)], b))
    return float(sps.chi2.sf(stat, len(idx))), len(idx)


def univariate_screen(
    table: pd.DataFrame,
    y: ArrayLike | str,
    columns: Sequence[str] | None = None,
    *,
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    level: float = 0.95,
    separation: Literal["error", "firth"] = "error",
) -> pd.DataFrame:
    """One logistic model per candidate factor: odds ratio, Wald CI and p per term (Table 2 layout).

    ``y`` is a 0/1 array or the name of the outcome column. Returns one row per numeric variable and per
    non-reference level of a categorical one, with columns ``variable level reference term coef se
    odds_ratio or_low or_high p p_variable firth`` (``p_variable``: joint Wald test of all the variable's terms).
    ``separation="firth"`` fits Firth's penalised likelihood (R ``logistf``, Wald intervals) where the data
    are separated, instead of raising SeparationError; the table's ``attrs["firth"]`` says so.
    """
    yy, y_name = _resolve_y(table, y)
    cols = [c for c in (table.columns if columns is None else columns) if c != y_name]
    ref = dict(reference or {})
    rows = []
    for col in cols:
        terms_df, encoding = design_matrix(
            table,
            [col],
            categorical=[c for c in categorical if c == col],
            reference={col: ref[col]} if col in ref else None,
        )
        fit = _fit_terms(terms_df, yy, _check_separation_mode(separation))
        tab = _table(fit, level)
        spec = encoding[str(col)]
        terms = _variables_of(encoding)[str(col)]
        p_var, _ = _joint_wald(fit, terms)
        is_cat = spec["type"] == "categorical"
        levels = [lv for lv in spec["levels"] if lv != spec["reference"]] if is_cat else [None]
        for term, lv in zip(terms, levels, strict=True):
            row = tab.loc[term]
            rows.append(
                {
                    "variable": str(col),
                    "level": lv,
                    "reference": spec["reference"] if is_cat else None,
                    "term": term,
                    "coef": row["coef"],
                    "se": row["se"],
                    "odds_ratio": row["odds_ratio"],
                    "or_low": row["or_low"],
                    "or_high": row["or_high"],
                    "p": row["p"],
                    "p_variable": p_var,
                    "firth": fit.firth,
                }
            )
    columns_out = [
        "variable",
        "level",
        "reference",
        "term",
        "coef",
        "se",
        "odds_ratio",
        "or_low",
        "or_high",
        "p",
        "p_variable",
        "firth",
    ]
    return pd.DataFrame(rows, columns=columns_out)


@dataclass(frozen=True, eq=False)
class StepwiseResult:
    """Outcome of :func:`backward_stepwise`: kept variables, one row per removal, final model table."""

    selected: tuple[str, ...]
    steps: pd.DataFrame
    fit: pd.DataFrame


def backward_stepwise(
    table: pd.DataFrame,
    y: ArrayLike | str,
    candidates: Sequence[str] | None = None,
    threshold: float = 0.05,
    *,
    test: Literal["wald", "lr"] = "wald",
    categorical: Sequence[str] = (),
    reference: Mapping[str, Any] | None = None,
    level: float = 0.95,
    separation: Literal["error", "firth"] = "error",
) -> StepwiseResult:
    """Backward elimination: refit, drop the variable with the largest p above ``threshold``, repeat.

    A variable's p is its Wald p; for a categorical variable with several dummies it is the joint Wald
    chi-square test of all of them (``test="wald"``, as SPSS "Backward: Wald"), or with ``test="lr"``
    the likelihood-ratio test against the model without the variable (for every variable). Dummies of
    one variable are always kept or dropped together. ``steps`` has columns ``step removed p df
    remaining`` (``remaining``: the variables left after the step, comma-separated).
    ``separation="firth"`` fits Firth's penalised likelihood (R ``logistf``, Wald intervals) where the data
    are separated, instead of raising SeparationError; the table's ``attrs["firth"]`` says so.
    """
    mode = _check_separation_mode(separation)
    if test not in ("wald", "lr"):
        raise StatsError(f"test: unknown test {test!r}; expected 'wald' or 'lr'")
    if not 0 < threshold < 1:
        raise StatsError(f"threshold: must lie in (0, 1), got {threshold}")
    yy, y_name = _resolve_y(table, y)
    cand = [c for c in (table.columns if candidates is None else candidates) if c != y_name]
    if not cand:
        raise StatsError("candidates: no candidate variables")
    terms_df, encoding = design_matrix(table, cand, categorical=categorical, reference=reference)
    var_terms = _variables_of(encoding)
    remaining = [str(c) for c in cand]
    steps = []

    def fit_of(variables: list[str]) -> _Fit:
        cols = [t for v in variables for t in var_terms[v]]
        return _fit_terms(terms_df[cols], yy, mode)

    current = fit_of(remaining)
    while remaining:
        pvals: dict[str, tuple[float, int]] = {}
        for var in remaining:
            if test == "wald":
                pvals[var] = _joint_wald(current, var_terms[var])
            else:
                reduced = fit_of([v for v in remaining if v != var])
                df = len(var_terms[var])
                pvals[var] = (float(sps.chi2.sf(reduced.deviance - current.deviance, df)), df)
        worst = max(remaining, key=lambda v: pvals[v][0])
        p_worst, df_worst = pvals[worst]
        if not p_worst > threshold:
            break
        remaining.remove(worst)
        steps.append(
            {
                "step": len(steps) + 1,
                "removed": worst,
                "p": p_worst,
                "df": df_worst,
                "remaining": ", ".join(remaining),
            }
        )
        current = fit_of(remaining)
    final = _table(current, level)
    final.attrs["encoding"] = {v: encoding[v] for v in remaining}
    steps_df = pd.DataFrame(steps, columns=["step", "removed", "p", "df", "remaining"])
    return StepwiseResult(selected=tuple(remaining), steps=steps_df, fit=final)
