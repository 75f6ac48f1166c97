"""Tests of the per-region radiomics score (selection.py) on small generated feature tables."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.feature_selection import mutual_info_classif

from ALNMPredictorLib import selection
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError
from ALNMPredictorLib.selection import (
    LassoBatch,
    RegionScore,
    _mutual_info_classif,
    cv_lasso_logistic,
    fit_region_scores,
    glmnet_lambdas,
    lasso_logistic_path,
)

FIXTURES = Path(__file__).parent / "fixtures"
STEPS = ["degenerate", "near_constant", "icc", "redundancy", "mutual_information", "lasso"]


def make_region(region: str = "tumor", n: int = 160, seed: int = 0) -> dict:
    """Training features with planted structure, and re-segmentations of 40 cases.

    ``inf_*``: informative and reproducible; ``dup``: a near copy of ``inf_0``; ``unstable_*``:
    informative but re-segmentation changes them a lot; ``repeat_unstable``: reproducible between
    readers, not on repetition; ``const``/``nearconst``; ``degen``: declared degenerate; ``noise_*``.
    """
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    y = np.r_[np.zeros(n // 2, int), np.ones(n - n // 2, int)]
    rng.shuffle(y)
    shift = y - 0.5
    cols: dict[str, np.ndarray] = {}
    for i in range(3):
        cols[f"{region}_inf_{i}"] = 1.6 * shift + rng.standard_normal(n)
    cols[f"{region}_dup"] = cols[f"{region}_inf_0"] + 0.05 * rng.standard_normal(n)
    for i in range(3):
        cols[f"{region}_unstable_{i}"] = 1.6 * shift + rng.standard_normal(n)
    cols[f"{region}_repeat_unstable"] = 1.6 * shift + rng.standard_normal(n)
    cols[f"{region}_const"] = np.full(n, 3.0)
    cols[f"{region}_nearconst"] = np.r_[np.full(n - 2, 2.0), 5.0, 6.0]
    cols[f"{region}_degen"] = rng.standard_normal(n)
    for i in range(30):
        cols[f"{region}_noise_{i:02d}"] = rng.standard_normal(n)
    scale = rng.uniform(0.5, 50, len(cols))  # radiomics features come on very different scales
    offset = rng.uniform(-100, 1000, len(cols))
    x = pd.DataFrame(cols, index=pd.Index(ids, name="case_id")) * scale + offset

    def resegment(cases: list[str], noisy: list[str], seed2: int) -> pd.DataFrame:
        r = np.random.default_rng(seed2)
        out = x.loc[cases].copy()
        sd = x.std()
        for c in out.columns:
            factor = 3.0 if c in noisy else 0.1
            out[c] = out[c] + factor * sd[c] * r.standard_normal(len(cases))
        out[f"{region}_const"] = (
            3.0 * scale[list(cols).index(f"{region}_const")] + offset[list(cols).index(f"{region}_const")]
        )
        return out

    unstable = [f"{region}_unstable_{i}" for i in range(3)]
    reader2 = resegment(ids[:40], unstable, seed + 1)
    repeat = resegment(ids[20:60], [*unstable, f"{region}_repeat_unstable"], seed + 2)
    return {"X": x, "y": pd.Series(y, index=x.index), "reader2": reader2, "repeat": repeat}


@pytest.fixture(scope="module")
def data() -> dict:
    return make_region()


@pytest.fixture(scope="module")
def fitted(data: dict) -> RegionScore:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn about with re-segmentations and clean data
        return RegionScore("tumor", mi_top_k=10, random_state=0).fit(
            data["X"], data["y"], data["reader2"], data["repeat"], degenerate=["tumor_degen"]
        )


def removed_at(model: RegionScore, step: str) -> set[str]:
    return set(model.dropped_.loc[model.dropped_["step"] == step, "feature"])


def auc(y: np.ndarray, score: np.ndarray) -> float:
    pos, neg = score[y == 1], score[y == 0]
    return float(
        ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
        / (len(pos) * len(neg))
    )


# ------------------------------------------------------------------ the steps


def test_every_step_shrinks_the_feature_count_and_is_logged(fitted: RegionScore, data: dict) -> None:
    log = fitted.log_
    assert list(log["step"]) == STEPS
    assert log["n_in"].iloc[0] == data["X"].shape[1]
    assert (log["n_out"] < log["n_in"]).all(), log
    assert (log["n_in"].iloc[1:].to_numpy() == log["n_out"].iloc[:-1].to_numpy()).all()
    assert log["n_out"].iloc[-1] == len(fitted.selected_) == len(fitted.coef_)
    assert (log["why"].str.len() > 0).all()
    # every removed feature is accounted for exactly once, with a reason
    assert len(fitted.dropped_) + len(fitted.selected_) == data["X"].shape[1]
    assert not fitted.dropped_["feature"].duplicated().any()
    assert (fitted.dropped_["reason"].str.len() > 0).all()
    assert set(fitted.dropped_["feature"]).isdisjoint(fitted.selected_)


def test_icc_removes_unstable_features_in_either_resegmentation(fitted: RegionScore) -> None:
    unstable = {f"tumor_unstable_{i}" for i in range(3)}
    assert removed_at(fitted, "icc") == unstable | {"tumor_repeat_unstable"}
    icc = fitted.icc_.set_index("feature")
    assert list(fitted.icc_.columns) == ["feature", "icc_reader2", "icc_repeat", "kept"]
    assert (icc.loc[sorted(unstable), "icc_reader2"] < 0.5).all()
    # reproducible between readers, not on repetition: "ICC >= 0.80 in both"
    assert icc.loc["tumor_repeat_unstable", "icc_reader2"] >= 0.8
    assert icc.loc["tumor_repeat_unstable", "icc_repeat"] < 0.8
    assert not icc.loc["tumor_repeat_unstable", "kept"]
    assert (icc.loc[["tumor_inf_0", "tumor_noise_00"], ["icc_reader2", "icc_repeat"]] > 0.95).all().all()
    assert fitted.icc_cases_ == {
        "reader2": [f"P{i:03d}" for i in range(40)],
        "repeat": [f"P{i:03d}" for i in range(20, 60)],
    }
    # the threshold is configurable: at 0.0 nothing is removed for (in)stability
    assert "ICC(2,1)" in fitted.log_.set_index("step").loc["icc", "why"]


def test_icc_threshold_and_form_are_configurable(data: dict) -> None:
    model = RegionScore("tumor", icc_threshold=-1.0, icc_form="ICC3", mi_top_k=10).fit(
        data["X"], data["y"], data["reader2"], data["repeat"], degenerate=["tumor_degen"]
    )
    assert removed_at(model, "icc") == set()
    assert "ICC(3,1)" in model.log_.set_index("step").loc["icc", "why"]
    with pytest.raises(ALNMError, match="icc_form"):
        RegionScore("tumor", icc_form="ICC9").fit(data["X"], data["y"])


def test_degenerate_and_constant_features_are_dropped(fitted: RegionScore) -> None:
    assert removed_at(fitted, "degenerate") == {"tumor_degen"}
    assert removed_at(fitted, "near_constant") == {"tumor_const", "tumor_nearconst"}
    reasons = fitted.dropped_.set_index("feature")["reason"]
    assert reasons["tumor_degen"] == "declared degenerate"
    assert reasons["tumor_const"] == "constant in training"
    assert "near-constant" in reasons["tumor_nearconst"]
    # scaler: training mean and SD (ddof=1) of every feature surviving the variance step
    assert "tumor_const" not in fitted.means_.index
    assert len(fitted.means_) == fitted.log_.set_index("step").loc["icc", "n_out"]


def test_near_constant_share_counts_the_commonest_value() -> None:
    rng = np.random.default_rng(8)
    n = 100
    cols = {
        "ln_96": np.r_[np.full(96, 2.5), rng.standard_normal(4)],
        "ln_95_signed_zero": np.r_[np.full(50, 0.0), np.full(45, -0.0), rng.standard_normal(5)],
        "ln_94": np.r_[np.full(94, -1.0), rng.standard_normal(6)],
        "ln_two_modes": np.r_[np.full(48, 1.0), np.full(48, 3.0), rng.standard_normal(4)],
    }
    for i in range(8):
        cols[f"ln_inf_{i}"] = rng.standard_normal(n)
    x = pd.DataFrame({k: rng.permutation(v) for k, v in cols.items()})
    y = (x["ln_inf_0"] + rng.standard_normal(n) > 0).astype(int).to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = RegionScore("ln", mi_top_k=5).fit(x, y)
    reasons = model.dropped_.set_index("feature")["reason"]
    for name in ("ln_96", "ln_95_signed_zero"):
        share = np.unique(x[name], return_counts=True)[1].max() / n
        assert reasons[name] == f"near-constant: {share:.1%} of training cases share one value"
    assert removed_at(model, "near_constant") == {"ln_96", "ln_95_signed_zero"}


def test_non_finite_training_values_drop_the_feature_with_a_warning(data: dict) -> None:
    x = data["X"].copy()
    x.loc["P007", "tumor_noise_03"] = np.nan
    with pytest.warns(UserWarning, match="non-finite"):
        model = RegionScore("tumor", mi_top_k=10).fit(x, data["y"], data["reader2"], data["repeat"])
    reason = model.dropped_.set_index("feature").loc["tumor_noise_03", "reason"]
    assert "P007" in reason


def test_correlated_duplicate_is_removed(fitted: RegionScore) -> None:
    pair = {"tumor_inf_0", "tumor_dup"}
    assert len(removed_at(fitted, "redundancy") & pair) == 1
    assert removed_at(fitted, "redundancy") <= pair  # independent features survive |r| <= 0.9
    dropped = (removed_at(fitted, "redundancy") & pair).pop()
    kept = (pair - {dropped}).pop()
    # the member more related to the label (|AUC - 0.5|) stays
    assert abs(fitted.auc_[kept] - 0.5) >= abs(fitted.auc_[dropped] - 0.5)
    assert kept in fitted.dropped_.set_index("feature").loc[dropped, "reason"]


def test_mutual_information_keeps_top_k(fitted: RegionScore) -> None:
    log = fitted.log_.set_index("step")
    assert log.loc["mutual_information", "n_out"] == 10
    assert list(fitted.mi_.index[:10]) == list(fitted.lasso_path_.columns[1:])
    assert fitted.mi_.is_monotonic_decreasing
    assert {"tumor_inf_1", "tumor_inf_2"} <= set(fitted.mi_.index[:10])


def test_informative_features_selected_and_noise_mostly_not(fitted: RegionScore, data: dict) -> None:
    selected = set(fitted.selected_)
    assert {"tumor_inf_1", "tumor_inf_2"} <= selected
    assert len(selected & {"tumor_inf_0", "tumor_dup"}) == 1
    informative = sorted(selected - {f for f in selected if "noise" in f})
    noise = sorted(f for f in selected if "noise" in f)
    assert len(noise) <= 5, fitted.formula()  # of 30 noise features; lambda.min lets a few in...
    assert (
        fitted.coef_[noise].abs().max() < fitted.coef_[informative].abs().min() / 2
    )  # ...with small weights
    assert (fitted.coef_[informative] > 0).all()
    score = fitted.decision_function(data["X"])
    assert score.name == "tumor_score"
    assert auc(data["y"].to_numpy(), score.to_numpy()) > 0.85


def test_lasso_cv_records(fitted: RegionScore) -> None:
    cv = fitted.lasso_cv_
    assert list(cv.columns) == ["lambda", "log_lambda", "mean_deviance", "se", "n_nonzero"]
    assert 2 <= len(cv) <= 100 and cv["lambda"].is_monotonic_decreasing
    assert cv["n_nonzero"].iloc[0] == 0
    assert fitted.lambda_min_ == cv["lambda"][cv["mean_deviance"].idxmin()]
    assert fitted.lambda_1se_ >= fitted.lambda_min_
    i_min = cv["mean_deviance"].idxmin()
    within = cv["mean_deviance"] <= cv["mean_deviance"][i_min] + cv["se"][i_min]
    assert fitted.lambda_1se_ == cv.loc[within, "lambda"].max()
    assert fitted.lambda_ == fitted.lambda_min_
    assert fitted.lasso_path_.shape == (len(cv), 1 + 10)
    row = fitted.lasso_path_.loc[fitted.lambda_]
    assert row["(Intercept)"] == fitted.intercept_
    assert (row[fitted.selected_] == fitted.coef_).all()
    folds = np.bincount(fitted.lasso_foldid_)[1:]
    assert len(folds) == 10 and folds.max() - folds.min() <= 1


def test_lambda_1se_rule(data: dict) -> None:
    model = RegionScore("tumor", mi_top_k=10, lasso_rule="lambda.1se").fit(
        data["X"], data["y"], data["reader2"], data["repeat"], degenerate=["tumor_degen"]
    )
    assert model.lambda_ == model.lambda_1se_
    assert 1 <= len(model.selected_) <= model.log_["n_in"].iloc[-1]


def test_zero_features_at_the_chosen_lambda_falls_back_with_a_warning() -> None:
    rng = np.random.default_rng(5)
    n = 120
    x = pd.DataFrame(rng.standard_normal((n, 12)), columns=[f"ln_noise_{i}" for i in range(12)])
    y = np.tile([0, 1], n // 2)
    with pytest.warns(UserWarning) as record:
        model = RegionScore("ln", lasso_rule="lambda.1se", random_state=1).fit(x, y)
    log = model.log_.set_index("step")
    assert "fell back" in log.loc["lasso", "warning"]
    assert any("fell back" in str(w.message) for w in record)
    assert len(model.selected_) >= 1
    assert model.lambda_ < model.lambda_1se_


def test_icc_step_skipped_with_a_warning_without_resegmentations(data: dict) -> None:
    with pytest.warns(UserWarning, match="ICC reproducibility filter was skipped"):
        model = RegionScore("tumor", mi_top_k=10).fit(data["X"], data["y"], degenerate=["tumor_degen"])
    row = model.log_.set_index("step").loc["icc"]
    assert row["n_in"] == row["n_out"] and row["warning"]
    assert model.icc_["kept"].all() and model.icc_["icc_reader2"].isna().all()
    assert "tumor_unstable_0" not in removed_at(model, "icc")


# ------------------------------------------------------------------ mutual information = scikit-learn's


def mi_case(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, p = 150, 25
    x = rng.standard_normal((n, p)) * rng.uniform(0.01, 100, p) + rng.uniform(-1e3, 1e3, p)
    x[:, :3] += rng.standard_normal(3) * 20  # columns of very different location and scale
    y = (rng.random(n) < 0.35).astype(int)
    x[y == 1, 3:6] += 30.0  # related to the label
    if kind == "bootstrap":  # rows drawn with replacement: duplicated cases
        rows = rng.integers(0, n, n)
        x, y = x[rows], y[rows]
    elif kind == "ties":  # few distinct values per feature, and a constant feature
        x = np.round(x / x.std(axis=0) * 2)
        x[:, 7] = 5.0
    elif kind.startswith("small_class_"):  # the minority class has 2..7 cases (k capped, brute force)
        y = np.zeros(n, dtype=int)
        y[rng.choice(n, int(kind.rsplit("_", 1)[1]), replace=False)] = 1
    elif kind == "three_classes_and_a_singleton":
        y = rng.integers(0, 3, n)
        y[0] = 9  # a class of one case is left out of the estimate
    elif kind == "heavy_tails":  # outliers: radii spanning many cases
        x = rng.standard_t(1, (n, p))
    return x, y


@pytest.mark.parametrize(
    "kind",
    [
        "plain",
        "bootstrap",
        "ties",
        "small_class_2",
        "small_class_3",
        "small_class_7",
        "small_class_8",
        "three_classes_and_a_singleton",
        "heavy_tails",
    ],
)
def test_mutual_information_equals_scikit_learn(kind: str) -> None:
    for seed in (0, 1) if kind in ("plain", "bootstrap") else (int(kind == "ties"),):
        x, y = mi_case(kind, seed)
        if seed:
            x = np.asfortranarray(x)  # a DataFrame's values often come column-major
        expected = mutual_info_classif(x, y, discrete_features=False, random_state=seed)
        got = _mutual_info_classif(x, y, random_state=seed)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(np.argsort(-got, kind="stable"), np.argsort(-expected, kind="stable"))
    # random_state=None draws from numpy's global generator, as scikit-learn does
    np.random.seed(4)
    expected = mutual_info_classif(x, y, discrete_features=False, random_state=None)
    np.random.seed(4)
    np.testing.assert_allclose(_mutual_info_classif(x, y, random_state=None), expected, rtol=0, atol=1e-12)


def test_univariate_auc_equals_average_ranks_bitwise() -> None:
    # the redundancy step's |AUC - 0.5|: the Mann-Whitney AUC from scipy's average ranks, with ties
    # (discrete columns), column-major input and the smallest classes
    from scipy.stats import rankdata

    rng = np.random.default_rng(0)
    for trial in range(120):
        n, p = int(rng.integers(2, 50)), int(rng.integers(1, 12))
        z = rng.normal(size=(n, p)) if trial % 2 else rng.integers(0, 3, size=(n, p)).astype(float)
        if trial % 3 == 0:
            z = np.asfortranarray(z)
        y = rng.integers(0, 2, n)
        y[0], y[1] = 0, 1
        n1, n0 = int(y.sum()), int(n - y.sum())
        expected = (rankdata(z, axis=0)[y == 1].sum(axis=0) - n1 * (n1 + 1) / 2) / (n1 * n0)
        np.testing.assert_array_equal(selection._auc_columns(z, y), expected)


def test_radius_counts_equal_brute_force_with_ties_and_wide_radii() -> None:
    # the neighbour counts walk out from each case and bisect when many cases lie within the
    # radius: exact integer counts (|fl(x_j - x_i)| <= r_i), with ties in any order and radii that
    # span whole rows (the bisection) or are 0
    rng = np.random.default_rng(1)
    for trial in range(150):
        p, m = int(rng.integers(1, 6)), int(rng.integers(1, 50))
        if trial % 3 == 0:
            v = rng.normal(size=(p, m))
        elif trial % 3 == 1:
            v = rng.integers(0, 4, size=(p, m)).astype(float)
        else:
            v = rng.normal(size=(p, m)) * 1e-10 + rng.integers(0, 2, size=(p, m))
        r = np.abs(rng.normal(size=(p, m))) * rng.choice([0.0, 1e-11, 0.1, 1.0, 10.0], size=(p, m))
        brute = (np.abs(v[:, None, :] - v[:, :, None]) <= r[:, :, None]).sum(axis=2)
        np.testing.assert_array_equal(selection._count_within(v, r), brute)


def test_mutual_information_step_equals_scikit_learn_on_the_fitted_table(
    fitted: RegionScore, data: dict
) -> None:
    # the MI step's input: the features left after the redundancy step, z-scored
    inputs = [f for f in fitted.means_.index if f not in removed_at(fitted, "redundancy")]
    z = ((data["X"][inputs] - fitted.means_[inputs]) / fitted.sds_[inputs]).to_numpy()
    expected = mutual_info_classif(z, data["y"].to_numpy(), discrete_features=False, random_state=0)
    order = np.argsort(-expected, kind="stable")
    assert list(fitted.mi_.index) == [inputs[i] for i in order]
    np.testing.assert_allclose(fitted.mi_.to_numpy(), expected[order], rtol=0, atol=1e-12)


# ------------------------------------------------------------------ glmnet conventions


def test_lasso_matches_glmnet_reference() -> None:
    ref = json.loads((FIXTURES / "selection_glmnet_reference.json").read_text())
    x, y = np.array(ref["x"]), np.array(ref["y"], dtype=float)
    lam = np.array(ref["lambda"])
    np.testing.assert_allclose(glmnet_lambdas(x, y)[: len(lam)], lam, rtol=1e-12)
    b0, b = lasso_logistic_path(x, y, lam)
    np.testing.assert_allclose(b0, ref["intercept"], atol=1e-6)
    np.testing.assert_allclose(b, np.array(ref["coef"]), atol=1e-6)
    cv = cv_lasso_logistic(x, y, foldid=np.array(ref["foldid"]))
    assert len(cv["lambdas"]) == len(ref["cv_lambda"])  # glmnet's early end of the path too
    np.testing.assert_allclose(cv["lambdas"], ref["cv_lambda"], rtol=1e-12)
    np.testing.assert_allclose(cv["cvm"], ref["cvm"], atol=1e-6)
    np.testing.assert_allclose(cv["cvsd"], ref["cvsd"], atol=1e-6)
    np.testing.assert_array_equal(cv["n_nonzero"], ref["nzero"])
    assert cv["lambdas"][cv["i_min"]] == pytest.approx(ref["lambda_min"], rel=1e-12)
    assert cv["lambdas"][cv["i_1se"]] == pytest.approx(ref["lambda_1se"], rel=1e-12)


# ------------------------------------------------------------------ LASSO = the coordinate-descent implementation
#
# The implementation before the active-set solver (selection.py up to commit 9dfae5f), verbatim but
# for the names: pure-Python coordinate descent for each IRLS step's weighted lasso.


def ref_logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def ref_objective(xs: np.ndarray, y: np.ndarray, b0: float, b: np.ndarray, lam: float) -> float:
    eta = b0 + xs @ b
    # mean negative log-likelihood of the logistic model, computed stably
    nll = np.mean(np.logaddexp(0.0, eta) - y * eta)
    return float(nll + lam * np.abs(b).sum())


def ref_exact_on_support(gram: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: float) -> np.ndarray | None:
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


def ref_weighted_lasso(
    gram: np.ndarray, c: np.ndarray, beta: np.ndarray, lam: float, *, tol: float, max_sweeps: int
) -> np.ndarray:
    """Minimise ``b'Gb / 2 - c'b + lam * sum_{j >= 1} |b_j|`` (coordinate 0 unpenalised) from ``beta``.

    Coordinate descent (active-set sweeps, a full sweep to confirm), finished by an exact solve on
    the support once the support and signs have settled.
    """
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
                exact = ref_exact_on_support(gram, c, new, lam)
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


def ref_lasso_logistic_path(
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
    variance), the intercept unpenalised, by proximal Newton steps (IRLS) with covariance-update
    coordinate descent, warm-started along the path. Returns ``(intercepts (L,), coefs (L, p))``
    on the scale of ``x``. Constant columns get zero coefficients. With ``early_stop`` the path
    ends, as glmnet's does for its own lambda sequence, from the 5th lambda on once the deviance
    ratio exceeds 0.999 or gains less than 1e-5 (the returned arrays are then shorter).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    n, p = x.shape
    mu = x.mean(axis=0)
    sd = np.sqrt(((x - mu) ** 2).mean(axis=0))
    usable = np.flatnonzero(sd > 0)
    xs = (x[:, usable] - mu[usable]) / sd[usable]
    q = len(usable)
    design = np.hstack([np.ones((n, 1)), xs])  # column 0: intercept
    ybar = float(y.mean())
    beta = np.zeros(q + 1)
    beta[0] = ref_logit(ybar)
    intercepts = np.empty(len(lambdas))
    coefs = np.zeros((len(lambdas), p))
    null_nll = ref_objective(xs, y, beta[0], beta[1:], 0.0)
    # at or above lambda_max every coefficient is exactly zero (CD could leave rounding residue)
    lambda_max = float(np.max(np.abs(xs.T @ (y - y.mean())) / n)) if q else 0.0
    dev_ratio = np.zeros(len(lambdas))
    for li, lam in enumerate(lambdas):
        lam = float(lam)
        if lam >= lambda_max * (1 - 1e-12):
            beta[1:] = 0.0
            beta[0] = ref_logit(ybar)
            intercepts[li] = beta[0]
            continue
        f_old = ref_objective(xs, y, beta[0], beta[1:], lam)
        for _ in range(max_outer):
            eta = design @ beta
            prob = np.clip(expit(eta), 1e-9, 1 - 1e-9)
            w = prob * (1 - prob)
            z = eta + (y - prob) / w
            v = w / n
            gram = design.T @ (design * v[:, None])
            new = ref_weighted_lasso(gram, design.T @ (v * z), beta, lam, tol=tol, max_sweeps=max_inner)
            # step halving keeps every outer step a descent step
            f_new = ref_objective(xs, y, new[0], new[1:], lam)
            halvings = 0
            while f_new > f_old and halvings < 30:
                new = (beta + new) / 2
                f_new = ref_objective(xs, y, new[0], new[1:], lam)
                halvings += 1
            step = float(np.max(np.abs(new - beta) * np.sqrt(np.maximum(np.diag(gram), 0))))
            beta = new
            f_old = f_new
            if step < 1e-9 or halvings >= 30:
                break
        b = beta[1:] / sd[usable]
        coefs[li, usable] = b
        intercepts[li] = beta[0] - float(mu[usable] @ b)
        if early_stop:
            dev_ratio[li] = 1 - ref_objective(xs, y, beta[0], beta[1:], 0.0) / null_nll
            if li >= 4 and (dev_ratio[li] > 0.999 or dev_ratio[li] - dev_ratio[li - 1] < 1e-5):
                return intercepts[: li + 1], coefs[: li + 1]
    return intercepts, coefs


def ref_lasso_paths(problems: list, **kwargs: object) -> list:
    """``selection._lasso_paths`` by the reference: each problem's path alone."""
    return [
        ref_lasso_logistic_path(x, y, lam, early_stop=bool(kwargs.get("early_stop")))
        for x, y, lam in problems
    ]


def lasso_case(kind: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs of the LASSO step: z-scored features of n cases, as RegionScore passes them."""
    rng = np.random.default_rng(seed)
    n, p = (150, 30) if kind != "small" else (60, 12)
    x = rng.standard_normal((n, p))
    y = (rng.random(n) < expit(0.9 * x[:, 0] - 0.6 * x[:, 1] + 0.4 * x[:, 2] - 0.3)).astype(float)
    if kind == "bootstrap":  # duplicated cases: the near-separated fits of a bootstrap resample
        rows = rng.integers(0, n, n)
        x, y = x[rows], y[rows]
    if kind == "constant_column":
        x[:, 5] = 3.0  # gets no coefficient
    return x, y


def kkt_residual(x: np.ndarray, y: np.ndarray, lam: float, b0: float, b: np.ndarray) -> float:
    """Largest violation of the lasso's optimality conditions, relative to lambda (IRLS's clipped probabilities)."""
    mu, sd = x.mean(axis=0), x.std(axis=0)
    ok = sd > 0
    prob = np.clip(expit(b0 + x @ b), 1e-9, 1 - 1e-9)
    grad = ((x[:, ok] - mu[ok]) / sd[ok]).T @ (y - prob) / len(y)
    bs = b[ok] * sd[ok]
    r = np.where(bs != 0, np.abs(grad - lam * np.sign(bs)), np.maximum(np.abs(grad) - lam, 0.0))
    return float(max(r.max(initial=0.0), abs(np.mean(y - prob))) / lam)


@pytest.mark.parametrize("kind", ["plain", "bootstrap", "small", "constant_column"])
def test_lasso_path_equals_the_coordinate_descent_implementation(kind: str) -> None:
    x, y = lasso_case(kind)
    lam = glmnet_lambdas(x, y)
    b0, b = lasso_logistic_path(x, y, lam)
    r0, r = ref_lasso_logistic_path(x, y, lam)
    # the old coordinate descent stopped within about 1e-8 of the minimiser; the new solver is exact
    np.testing.assert_allclose(b, r, rtol=0, atol=1e-7)
    np.testing.assert_allclose(b0, r0, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(b != 0, r != 0)
    assert max(kkt_residual(x, y, lam[i], b0[i], b[i]) for i in range(len(lam))) < 1e-8


@pytest.mark.parametrize("kind", ["plain", "bootstrap", "constant_column"])
def test_lasso_cv_equals_the_coordinate_descent_implementation(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = lasso_case(kind)
    new = cv_lasso_logistic(x, y, n_folds=10, random_state=0)
    monkeypatch.setattr(selection, "_lasso_paths", ref_lasso_paths)
    old = cv_lasso_logistic(x, y, n_folds=10, random_state=0)
    np.testing.assert_array_equal(new["lambdas"], old["lambdas"])  # the same early end of the path
    np.testing.assert_allclose(new["coefs"], old["coefs"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(new["intercepts"], old["intercepts"], rtol=0, atol=1e-7)
    np.testing.assert_allclose(new["cvm"], old["cvm"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(new["cvsd"], old["cvsd"], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(new["n_nonzero"], old["n_nonzero"])
    assert (new["i_min"], new["i_1se"]) == (old["i_min"], old["i_1se"])


def test_lasso_path_at_any_lambdas_equals_the_coordinate_descent_implementation() -> None:
    # the path is warm-started (and extrapolated along decreasing lambdas): any order gives the same
    x, y = lasso_case("plain", seed=2)
    lam = glmnet_lambdas(x, y)
    for order in (lam[[3, 10, 10, 40, 20, 60, 59, 5, 0, 80]], lam[::-1][:40]):
        b0, b = lasso_logistic_path(x, y, order)
        r0, r = ref_lasso_logistic_path(x, y, order)
        np.testing.assert_allclose(b, r, rtol=0, atol=1e-7)
        np.testing.assert_allclose(b0, r0, rtol=0, atol=1e-7)
        for i in range(len(order)):
            assert kkt_residual(x, y, order[i], b0[i], b[i]) < 1e-8


def test_paths_fitted_side_by_side_equal_each_path_alone() -> None:
    # cross-validation fits the full-data path and the fold paths together: different numbers of
    # cases, lambda sequences, early ends, and a column constant in one problem only
    x, y = lasso_case("plain", seed=3)
    x2 = x[:90].copy()
    x2[:, 4] = 1.5
    problems = [
        (x, y, glmnet_lambdas(x, y)),
        (x2, y[:90], glmnet_lambdas(x2, y[:90])),
        (x[40:], y[40:], glmnet_lambdas(x[40:], y[40:])),
    ]
    together = selection._lasso_paths(problems, early_stop=True)
    for (xi, yi, lam), (b0, b) in zip(problems, together, strict=True):
        a0, a = selection._lasso_paths([(xi, yi, lam)], early_stop=True)[0]
        r0, r = ref_lasso_logistic_path(xi, yi, lam, early_stop=True)
        assert len(b0) == len(a0) == len(r0) < len(lam)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b0, a0, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b, r, rtol=0, atol=1e-7)
        np.testing.assert_allclose(b0, r0, rtol=0, atol=1e-7)
    assert (together[1][1][:, 4] == 0).all()


def test_duplicated_cases_fitted_as_weighted_rows_equal_the_expanded_problem(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a bootstrap resample's copies of a case are one row weighted by their number: every sum of the
    # likelihood, gradient and gram is the same sum in another order, so the paths agree to rounding
    x, y = lasso_case("bootstrap", seed=4)
    assert len(np.unique(x, axis=0)) < 0.7 * len(x)
    problems = [(x, y, glmnet_lambdas(x, y)), (x[30:], y[30:], glmnet_lambdas(x[30:], y[30:]))]
    collapsed = selection._lasso_paths(problems, early_stop=True)
    monkeypatch.setattr(selection, "_distinct_rows", lambda xi, yi: (np.arange(len(yi)), np.ones(len(yi))))
    expanded = selection._lasso_paths(problems, early_stop=True)
    for (c0, c), (e0, e) in zip(collapsed, expanded, strict=True):
        assert len(c0) == len(e0)  # the same early end
        np.testing.assert_array_equal(c != 0, e != 0)
        # the solver stops when its next Newton step is predicted below 1e-13: 1e-10 leaves room for
        # the rounding of sums taken in another order, and is far below any difference that matters
        np.testing.assert_allclose(c, e, rtol=0, atol=1e-10)
        np.testing.assert_allclose(c0, e0, rtol=0, atol=1e-10)


def test_distinct_rows_counts_copies_in_order_of_first_appearance() -> None:
    x = np.array([[1.0, 0.0], [2.0, 1.0], [1.0, -0.0], [2.0, 1.0], [2.0, 1.0], [1.0, 0.0]])
    y = np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0])
    first, copies = selection._distinct_rows(x, y)
    np.testing.assert_array_equal(
        first, [0, 1, 4, 5]
    )  # -0.0 is 0.0; the same x with another label is another row
    np.testing.assert_array_equal(copies, [2, 2, 1, 1])
    first, copies = selection._distinct_rows(x[:2], y[:2])
    np.testing.assert_array_equal(first, [0, 1])
    np.testing.assert_array_equal(copies, [1, 1])


def test_paths_of_different_widths_fitted_side_by_side_equal_each_path_alone() -> None:
    # a batch of region-score fits stacks LASSO problems whose mutual-information step kept different
    # numbers of features: the narrower ones are padded with zero columns, cut off again
    x, y = lasso_case("plain", seed=6)
    problems = [
        (x, y, glmnet_lambdas(x, y)),
        (x[:100, :9], y[:100], glmnet_lambdas(x[:100, :9], y[:100])),
        (x[50:, :20], y[50:], glmnet_lambdas(x[50:, :20], y[50:])),
    ]
    together = selection._lasso_paths(problems, early_stop=True)
    for (xi, yi, lam), (b0, b) in zip(problems, together, strict=True):
        a0, a = selection._lasso_paths([(xi, yi, lam)], early_stop=True)[0]
        assert b.shape == a.shape and b.shape[1] == xi.shape[1]
        np.testing.assert_array_equal(b != 0, a != 0)
        # the same IRLS iterates; the padded columns only change how BLAS blocks its sums (rounding)
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-12)
        np.testing.assert_allclose(b0, a0, rtol=0, atol=1e-12)


def test_region_score_equals_the_coordinate_descent_implementation(
    data: dict, fitted: RegionScore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(selection, "_lasso_paths", ref_lasso_paths)
    old = RegionScore("tumor", mi_top_k=10, random_state=0).fit(
        data["X"], data["y"], data["reader2"], data["repeat"], degenerate=["tumor_degen"]
    )
    assert old.selected_ == fitted.selected_
    assert (old.lambda_, old.lambda_min_, old.lambda_1se_) == (
        fitted.lambda_,
        fitted.lambda_min_,
        fitted.lambda_1se_,
    )
    np.testing.assert_allclose(fitted.coef_, old.coef_, rtol=0, atol=1e-8)
    assert fitted.intercept_ == pytest.approx(old.intercept_, abs=1e-8)
    np.testing.assert_allclose(
        fitted.lasso_cv_["mean_deviance"], old.lasso_cv_["mean_deviance"], rtol=0, atol=1e-8
    )


def test_fits_in_a_lasso_batch_equal_each_fit_alone(data: dict, fitted: RegionScore) -> None:
    other = make_region("ln", n=120, seed=5)
    yo = other["y"]
    small = yo.index[yo == 0][:30].append(yo.index[yo == 1][:8])  # 8 positives: 8-fold CV, with a warning
    batch = LassoBatch()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a quiet fit's LASSO warning would be an error here
        tumor = batch.fit(
            RegionScore("tumor", mi_top_k=10, random_state=0),
            data["X"],
            data["y"],
            data["reader2"],
            data["repeat"],
            degenerate=["tumor_degen"],
        )
        few = batch.fit(
            RegionScore("ln", mi_top_k=10, lasso_folds=10, random_state=0),
            other["X"].loc[small],
            yo.loc[small],
            other["reader2"],
            other["repeat"],
            quiet=True,
        )
        with pytest.raises(InputError, match="too few"):  # an error before the LASSO: at once, nothing queued
            batch.fit(RegionScore("ln"), other["X"].iloc[:5], other["y"].iloc[:5])
        ln = batch.fit(
            RegionScore("ln", mi_top_k=10, random_state=0),
            other["X"],
            other["y"],
            other["reader2"],
            other["repeat"],
        )
        assert len(batch) == 3 and not hasattr(tumor, "coef_")
        assert batch.run() == [None, None, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        alone = [
            RegionScore("ln", mi_top_k=10, lasso_folds=10, random_state=0).fit(
                other["X"].loc[small], yo.loc[small], other["reader2"], other["repeat"]
            ),
            RegionScore("ln", mi_top_k=10, random_state=0).fit(
                other["X"], other["y"], other["reader2"], other["repeat"]
            ),
        ]
    for together, one in zip([tumor, few, ln], [fitted, *alone], strict=True):
        assert together.selected_ == one.selected_
        assert (together.lambda_, together.lambda_min_, together.lambda_1se_) == (
            one.lambda_,
            one.lambda_min_,
            one.lambda_1se_,
        )
        pd.testing.assert_frame_equal(together.log_, one.log_)
        # paths fitted side by side equal each path alone to rounding (see the test of side-by-side paths)
        np.testing.assert_allclose(together.coef_, one.coef_, rtol=0, atol=1e-12)
        np.testing.assert_allclose(
            together.lasso_cv_["mean_deviance"], one.lasso_cv_["mean_deviance"], rtol=0, atol=1e-12
        )
    assert (
        "8-fold" in few.log_.set_index("step").loc["lasso", "warning"]
    )  # the warning was recorded, not shown


def test_weighted_lasso_is_the_exact_minimiser() -> None:
    rng = np.random.default_rng(2)
    for trial in range(40):
        q = int(rng.integers(2, 32))
        n = q + int(rng.integers(5, 150))
        design = np.hstack([np.ones((n, 1)), rng.standard_normal((n, q - 1))])
        v = rng.uniform(1e-6, 0.25, n) / n
        gram = design.T @ (design * v[:, None])
        c = gram @ (rng.standard_normal(q) * rng.uniform(0, 2, q)) + rng.standard_normal(q) * 0.01
        lam = float(np.max(np.abs(c[1:])) * rng.uniform(0.001, 0.9))
        # warm starts with the wrong support and signs, as along a path
        start = np.where(rng.random(q) < 0.5, rng.standard_normal(q), 0.0)
        got = selection._weighted_lasso(gram, c, start, lam)
        ref = ref_weighted_lasso(gram, c, start, lam, tol=1e-16, max_sweeps=100_000)
        np.testing.assert_allclose(
            got, ref, rtol=0, atol=1e-9 * max(1.0, np.abs(ref).max()), err_msg=str(trial)
        )
        np.testing.assert_array_equal(got[1:] != 0, ref[1:] != 0)
        grad = c - gram @ got  # KKT: the gradient is lam * sign on the support, at most lam elsewhere
        on = np.flatnonzero(got[1:] != 0) + 1
        off = np.flatnonzero(got[1:] == 0) + 1
        np.testing.assert_allclose(grad[on], lam * np.sign(got[on]), rtol=1e-9, atol=1e-12)
        assert np.all(np.abs(grad[off]) <= lam * (1 + 1e-10))
        assert abs(grad[0]) < 1e-12 * max(1.0, np.abs(c).max())
    # a stack of problems is solved as each alone
    stack = [(gram, c, start, lam)]
    for _ in range(4):
        g2 = gram + np.diag(rng.uniform(0, 0.01, q))
        stack.append((g2, c + rng.standard_normal(q) * 0.001, np.zeros(q), lam * rng.uniform(0.5, 1)))
    together = selection._weighted_lasso(
        np.stack([s[0] for s in stack]),
        np.stack([s[1] for s in stack]),
        np.stack([s[2] for s in stack]),
        np.array([s[3] for s in stack]),
    )
    for i, (g, cc, b, lm) in enumerate(stack):
        np.testing.assert_allclose(together[i], selection._weighted_lasso(g, cc, b, lm), rtol=0, atol=1e-12)


def test_weighted_lasso_falls_back_to_coordinate_descent_on_a_singular_support() -> None:
    rng = np.random.default_rng(4)
    n = 40
    z = rng.standard_normal((n, 2))
    design = np.column_stack([np.ones(n), z[:, 0], z[:, 0], z[:, 1]])  # two identical columns
    gram = design.T @ design / n
    c = gram @ np.array([0.2, 1.0, 1.0, -0.5])
    start = np.array([0.0, 0.5, 0.5, 0.0])  # both copies in the support: a singular system
    got = selection._weighted_lasso(gram, c, start, 0.05)
    ref = ref_weighted_lasso(gram, c, start, 0.05, tol=1e-16, max_sweeps=100_000)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_near_separated_lasso_converges_in_few_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    # duplicated cases (a bootstrap resample): at small lambdas fitted probabilities reach the 1e-9
    # clip and coefficients grow large; IRLS converges there to the point where the (clipped)
    # gradient meets the KKT conditions, in a few steps per lambda. The coordinate-descent
    # implementation stopped short there (after 30 step halvings), about 1e-5 away.
    x, y = lasso_case("bootstrap", seed=1)
    lam = glmnet_lambdas(x, y)
    steps = []
    solve = selection._weighted_lasso
    monkeypatch.setattr(selection, "_weighted_lasso", lambda *a, **k: steps.append(1) or solve(*a, **k))
    b0, b = lasso_logistic_path(x, y, lam)
    assert np.abs(b).max() > 100  # well into separation
    assert max(kkt_residual(x, y, lam[i], b0[i], b[i]) for i in range(len(lam))) < 1e-8
    assert len(steps) <= 6 * len(lam)
    r0, r = ref_lasso_logistic_path(x, y, lam)
    np.testing.assert_allclose(b, r, rtol=0, atol=1e-4)
    np.testing.assert_allclose(b0, r0, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(b != 0, r != 0)


# ------------------------------------------------------------------ apply, persist, report


def test_to_dict_from_dict_round_trip_is_exact(fitted: RegionScore, data: dict) -> None:
    d = fitted.to_dict()
    text = json.dumps(d, allow_nan=False)  # plain JSON: no numpy objects, no NaN
    restored = RegionScore.from_dict(json.loads(text))
    new = make_region(seed=11)["X"]
    for frame in (data["X"], new):
        np.testing.assert_allclose(
            restored.decision_function(frame), fitted.decision_function(frame), rtol=0, atol=1e-12
        )
    assert restored.formula() == fitted.formula()
    assert restored.selected_ == fitted.selected_
    assert restored.get_params() == fitted.get_params()
    pd.testing.assert_frame_equal(restored.log_, fitted.log_.astype(restored.log_.dtypes.to_dict()))
    with pytest.raises(BundleError):
        RegionScore.from_dict({**d, "kind": "something else"})
    with pytest.raises(BundleError):
        RegionScore.from_dict({k: v for k, v in d.items() if k != "coefficients"})


def test_score_is_intercept_plus_coefficients_times_z(fitted: RegionScore, data: dict) -> None:
    z = fitted.transform(data["X"])
    assert list(z.columns) == fitted.selected_
    manual = (data["X"][fitted.selected_] - data["X"][fitted.selected_].mean()) / data["X"][
        fitted.selected_
    ].std()
    np.testing.assert_allclose(z, manual, atol=1e-10)
    np.testing.assert_allclose(
        fitted.decision_function(data["X"]), fitted.intercept_ + manual @ fitted.coef_, atol=1e-10
    )


def test_formula_text_and_table(fitted: RegionScore, tmp_path: Path) -> None:
    text = fitted.formula()
    assert text.startswith(f"tumor score = {fitted.intercept_:.4f}")
    for f in fitted.selected_:
        assert f"{abs(fitted.coef_[f]):.4f} × {f}" in text
    table = fitted.formula_table()
    assert list(table.columns) == ["term", "coefficient", "mean", "sd", "min", "max"]
    assert list(table["term"]) == ["(Intercept)", *fitted.selected_]
    assert table["sd"].iloc[1:].gt(0).all()
    csv, txt = fitted.write_formula(tmp_path / "tumor_score.csv")
    assert txt == tmp_path / "tumor_score.txt"
    assert pd.read_csv(csv)["term"].tolist() == table["term"].tolist()
    assert txt.read_text().splitlines()[0] == text


def test_determinism_for_a_seed(data: dict, fitted: RegionScore) -> None:
    again = RegionScore("tumor", mi_top_k=10, random_state=0).fit(
        data["X"], data["y"], data["reader2"], data["repeat"], degenerate=["tumor_degen"]
    )
    assert again.to_dict() == fitted.to_dict()
    pd.testing.assert_series_equal(again.mi_, fitted.mi_)
    pd.testing.assert_frame_equal(again.lasso_cv_, fitted.lasso_cv_)
    pd.testing.assert_frame_equal(again.lasso_path_, fitted.lasso_path_)


def test_missing_column_and_nan_errors_name_them(fitted: RegionScore, data: dict) -> None:
    first = fitted.selected_[0]
    with pytest.raises(InputError, match=first) as err:
        fitted.decision_function(data["X"].drop(columns=[first]))
    assert "missing feature column" in str(err.value)
    x = data["X"].copy()
    x.loc["P005", first] = np.nan
    with pytest.raises(InputError) as err:
        fitted.decision_function(x)
    assert err.value.case == "P005" and err.value.column == first
    # a NaN in a feature the score does not use is fine
    unused = next(c for c in data["X"].columns if c not in fitted.selected_)
    x = data["X"].copy()
    x.loc["P005", unused] = np.nan
    assert np.isfinite(fitted.decision_function(x)).all()
    with pytest.raises(ALNMError, match="not fitted"):
        RegionScore("tumor").decision_function(data["X"])


def test_bad_training_input_is_reported(data: dict) -> None:
    y = data["y"].copy()
    y.iloc[3] = 2
    with pytest.raises(InputError, match="P003"):
        RegionScore("tumor").fit(data["X"], y)
    with pytest.raises(InputError, match="no training label"):
        RegionScore("tumor").fit(data["X"], data["y"].iloc[1:])
    with pytest.raises(InputError, match="one class"):
        RegionScore("tumor").fit(data["X"], np.zeros(len(data["X"])))
    short = data["reader2"].drop(columns=["tumor_inf_1"])
    with pytest.raises(InputError, match="tumor_inf_1"):
        RegionScore("tumor").fit(data["X"], data["y"], X_reader2=short)


# ------------------------------------------------------------------ whole table


def make_table(
    n_train: int = 160, n_test: int = 60, seed: int = 0
) -> tuple[pd.DataFrame, pd.Series, pd.Series]:
    """A long feature table (case_id, variant, tumor_*, ln_*) for train and test cases."""
    tumor = make_region("tumor", n_train + n_test, seed)
    ln = make_region("ln", n_train + n_test, seed + 100)
    y = tumor["y"]
    ln_x = ln["X"].copy()
    main = pd.concat([tumor["X"], ln_x], axis=1).reset_index().assign(variant="main")
    reader2 = (
        pd.concat([tumor["reader2"], ln["reader2"].iloc[:30]], axis=1).reset_index().assign(variant="reader2")
    )
    repeat = pd.concat([tumor["repeat"], ln["repeat"]], axis=1).reset_index().assign(variant="repeat")
    table = pd.concat([main, reader2, repeat], ignore_index=True)
    split = pd.Series(np.where(np.arange(len(y)) < n_train, "train", "test"), index=y.index)
    # re-segmentations only of training cases, as in the study
    table = table[(table["variant"] == "main") | table["case_id"].map(split).eq("train")]
    return table.reset_index(drop=True), y, split


def test_fit_region_scores_splits_the_table_per_region() -> None:
    table, y, split = make_table()
    train = y[split == "train"]
    scores = fit_region_scores(
        table, train, ["tumor", "ln"], degenerate=["tumor_degen", "ln_degen"], mi_top_k=10
    )
    assert set(scores) == {"tumor", "ln"}
    for region, model in scores.items():
        assert all(f.startswith(f"{region}_") for f in model.feature_names_in_)
        assert model.n_train_ == len(train)
        assert f"{region}_degen" in removed_at(model, "degenerate")
        assert f"{region}_unstable_0" in removed_at(model, "icc")
    # ln reader2 rows exist for 30 cases only (the rest are NaN for ln): those are ignored
    assert len(scores["ln"].icc_cases_["reader2"]) == 30
    direct = RegionScore("tumor", mi_top_k=10).fit(
        table[table["variant"] == "main"]
        .set_index("case_id")
        .loc[train.index, scores["tumor"].feature_names_in_],
        train,
        table[table["variant"] == "reader2"].set_index("case_id")[scores["tumor"].feature_names_in_],
        table[table["variant"] == "repeat"].set_index("case_id")[scores["tumor"].feature_names_in_],
        degenerate=["tumor_degen"],
    )
    assert direct.to_dict() == scores["tumor"].to_dict()


def test_no_leakage_test_cases_never_change_the_fit() -> None:
    table, y, split = make_table()
    train = y[split == "train"]
    before = fit_region_scores(table, train, ["tumor", "ln"], mi_top_k=10)
    # shuffle the test split's labels and scramble its features: every fitted quantity is unchanged
    rng = np.random.default_rng(3)
    y_shuffled = y.copy()
    test_ids = y.index[split == "test"]
    y_shuffled[test_ids] = rng.permutation(y[test_ids].to_numpy())
    scrambled = table.copy()
    is_test = scrambled["case_id"].isin(test_ids)
    feature_cols = [c for c in table.columns if c not in ("case_id", "variant")]
    scrambled.loc[is_test, feature_cols] = rng.standard_normal((int(is_test.sum()), len(feature_cols)))
    after = fit_region_scores(scrambled, y_shuffled[split == "train"], ["tumor", "ln"], mi_top_k=10)
    for region in ("tumor", "ln"):
        assert after[region].to_dict() == before[region].to_dict()
        pd.testing.assert_frame_equal(after[region].lasso_cv_, before[region].lasso_cv_)
        pd.testing.assert_series_equal(after[region].means_, before[region].means_)
        pd.testing.assert_series_equal(after[region].mi_, before[region].mi_)
        pd.testing.assert_frame_equal(after[region].icc_, before[region].icc_)


def test_fit_region_scores_input_errors() -> None:
    table, y, split = make_table(n_train=80, n_test=10)
    train = y[split == "train"]
    with pytest.raises(InputError, match="variant"):
        fit_region_scores(table.drop(columns=["variant"]), train, ["tumor"])
    bad = table.copy()
    bad.loc[5, "variant"] = "reader3"
    with pytest.raises(InputError, match="reader3"):
        fit_region_scores(bad, train, ["tumor"])
    missing = table[~((table["case_id"] == "P004") & (table["variant"] == "main"))]
    with pytest.raises(InputError, match="P004"):
        fit_region_scores(missing, train, ["tumor"])
    with pytest.raises(InputError, match="region 'axilla'"):
        fit_region_scores(table, train, ["axilla"])


# ------------------------------------------------------------------ clipping to the training range


def test_out_of_range_values_are_clipped_to_the_training_range(
    fitted: RegionScore, data: dict, tmp_path: Path
) -> None:
    x = data["X"]
    feature = max(fitted.selected_, key=lambda f: abs(fitted.coef_[f]))
    lo, hi = x[feature].min(), x[feature].max()
    np.testing.assert_array_equal(fitted.lower_[fitted.selected_], x[fitted.selected_].min())
    np.testing.assert_array_equal(fitted.upper_[fitted.selected_], x[fitted.selected_].max())
    unclipped = RegionScore.from_dict({**fitted.to_dict(), "params": {**fitted.get_params(), "clip": False}})
    # training cases are inside their own range: clipping changes nothing there
    np.testing.assert_array_equal(fitted.decision_function(x), unclipped.decision_function(x))
    assert fitted.out_of_range(x).eq(0).all()

    cases = x.iloc[[0, 0, 0]].copy()
    cases.index = ["far_high", "far_low", "at_max"]
    span = hi - lo
    cases.loc["far_high", feature] = hi + 1000 * span
    cases.loc["far_low", feature] = lo - 1000 * span
    cases.loc["at_max", feature] = hi
    scores = fitted.decision_function(cases)
    assert scores["far_high"] == pytest.approx(scores["at_max"], abs=1e-12)
    at_min = cases.loc[["at_max"]].copy()
    at_min.loc["at_max", feature] = lo
    assert scores["far_low"] == pytest.approx(fitted.decision_function(at_min).iloc[0], abs=1e-12)
    # without clipping the far case moves the score by about 1000 training ranges
    moved = unclipped.decision_function(cases)["far_high"] - scores["far_high"]
    assert abs(moved) == pytest.approx(
        abs(fitted.coef_[feature]) * 1000 * span / fitted.sds_[feature], rel=1e-9
    )
    assert fitted.out_of_range(cases).to_dict() == {"far_high": 1, "far_low": 1, "at_max": 0}
    _, text = fitted.write_formula(tmp_path / "tumor_score.csv")
    assert "after clipping x to its training range" in text.read_text()
    assert not np.isnan(fitted.formula_table()[["min", "max"]].iloc[1:].to_numpy()).any()


def test_score_saved_without_training_ranges_does_not_clip(fitted: RegionScore, data: dict) -> None:
    d = fitted.to_dict()
    assert len(d["mins"]) == len(d["maxs"]) == len(fitted.selected_)
    old = RegionScore.from_dict({**{k: v for k, v in d.items() if k not in ("mins", "maxs")}, "version": 1})
    feature = fitted.selected_[0]
    case = data["X"].iloc[:1].copy()
    case[feature] = data["X"][feature].max() + 50 * data["X"][feature].std()
    sel = fitted.selected_
    expected = fitted.intercept_ + float(
        ((case[sel] - fitted.means_[sel]) / fitted.sds_[sel]).iloc[0] @ fitted.coef_[sel]
    )
    assert old.decision_function(case).iloc[0] == pytest.approx(expected, abs=1e-10)
    assert old.out_of_range(case).iloc[0] == 0
    assert fitted.decision_function(case).iloc[0] != pytest.approx(expected, abs=1e-3)
    with pytest.raises(BundleError, match="minimums and maximums"):
        RegionScore.from_dict({**d, "maxs": d["maxs"][:-1]})
    with pytest.raises(BundleError, match="minimums and maximums"):
        RegionScore.from_dict({k: v for k, v in d.items() if k != "maxs"})


def test_region_score_is_a_scikit_learn_estimator() -> None:
    from sklearn.base import clone

    score = RegionScore("ln", mi_top_k=12, lasso_rule="lambda.1se", clip=False)
    assert score.get_params() == {
        **RegionScore("x").get_params(),
        "region": "ln",
        "mi_top_k": 12,
        "lasso_rule": "lambda.1se",
        "clip": False,
    }
    copy = clone(score)
    assert copy is not score and copy.get_params() == score.get_params()
    assert copy.set_params(mi_top_k=5).mi_top_k == 5 and score.mi_top_k == 12
    assert not hasattr(
        RegionScore, "score"
    )  # the region score is decision_function: score() means fit quality
