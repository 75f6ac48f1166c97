"""Logistic regression, univariate screening and backward stepwise against R glm (reference values from R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.errors import SeparationError, StatsError
from ALNMPredictorLib.stats import (
    INTERCEPT,
    backward_stepwise,
    design_matrix,
    logistic_fit,
    logistic_predict,
    univariate_screen,
)

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_b.json").read_text())
GLM_CASES = REFERENCE["glm"]
SEPARATION_CASES = REFERENCE["separation"]
STEPWISE_CASES = REFERENCE["stepwise"]
COLUMNS = ["coef", "se", "p", "odds_ratio", "or_low", "or_high"]


def frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["columns"])


def reference(case: dict) -> dict:
    ref = case["reference"]
    return ref if isinstance(ref, dict) else {}  # an empty R list is written as []


def assert_fit_matches(fit: pd.DataFrame, ref: dict) -> None:
    assert list(fit.columns) == COLUMNS
    assert fit.index.tolist() == ref["term"]
    for col in COLUMNS:
        np.testing.assert_allclose(fit[col].to_numpy(), ref[col], rtol=1e-6, atol=1e-300, err_msg=col)
    assert fit.attrs["deviance"] == pytest.approx(ref["deviance"], rel=1e-8)
    assert fit.attrs["null_deviance"] == pytest.approx(ref["null_deviance"], rel=1e-8)
    assert fit.attrs["aic"] == pytest.approx(ref["aic"], rel=1e-8)


@pytest.mark.parametrize("case", GLM_CASES, ids=[c["name"] for c in GLM_CASES])
def test_logistic_fit_matches_glm(case):
    table = frame(case)
    terms, _ = design_matrix(table, categorical=case["categorical"], reference=reference(case))
    if not reference(case):  # default reference = first sorted level, as R's factor()
        assert_fit_matches(logistic_fit(table, case["y"]), case["ref"])
    assert_fit_matches(logistic_fit(terms, case["y"]), case["ref"])


@pytest.mark.parametrize("case", [c for c in GLM_CASES if len(c["columns"]) == 1], ids=lambda c: c["name"])
def test_univariate_screen_matches_glm(case):
    table = frame(case).assign(outcome=case["y"])
    screen = univariate_screen(table, "outcome", categorical=case["categorical"])
    ref = case["ref"]
    assert screen["term"].tolist() == ref["term"][1:]
    for col in ("coef", "se", "p", "odds_ratio", "or_low", "or_high"):
        np.testing.assert_allclose(screen[col].to_numpy(), ref[col][1:], rtol=1e-6, err_msg=col)


def test_univariate_screen_table2_layout():
    case = next(c for c in GLM_CASES if c["name"] == "n866_table2_like")
    table = frame(case)
    screen = univariate_screen(table, case["y"], reference={"posterior": "none"})
    assert screen.columns.tolist() == [
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
    post = screen[screen["variable"] == "posterior"]
    assert post["level"].tolist() == ["enhancement", "shadowing"]
    assert set(post["reference"]) == {"none"}
    # each row is the one-variable model; the joint p of a 1-df variable is its own p
    for var in ("age", "size", "margin"):
        fit = logistic_fit(table[[var]], case["y"])
        row = screen[screen["variable"] == var].iloc[0]
        assert row["odds_ratio"] == pytest.approx(fit.loc[row["term"], "odds_ratio"], rel=1e-10)
        assert row["p_variable"] == pytest.approx(row["p"], rel=1e-8)
    # the 2-df joint Wald p of posterior lies between nothing and everything: a probability
    assert 0 < post["p_variable"].iloc[0] < 1 and post["p_variable"].nunique() == 1


@pytest.mark.parametrize("case", SEPARATION_CASES, ids=[c["name"] for c in SEPARATION_CASES])
def test_separation_is_detected(case):
    # R either warns or silently returns a huge coefficient here.
    assert case["r_warned"] or case["r_max_abs_coef"] > 10
    with pytest.raises(SeparationError) as err:
        logistic_fit(frame(case), case["y"])
    message = str(err.value)
    for term in case["offending"]:
        assert term in message
    innocent = set(case["columns"]) - {t.split("[")[0] for t in case["offending"]}
    named = message.split("along ")[1].split(" (")[0].split(", ")
    assert not innocent & {t.split("[")[0] for t in named}


def test_near_separation_is_not_separation():
    case = next(c for c in GLM_CASES if c["name"] == "n120_near_separation")
    fit = logistic_fit(frame(case), case["y"])
    assert fit.loc["x", "coef"] > 10  # large but finite, as R gives


def _prepare(case: dict) -> pd.DataFrame:
    return frame(case).assign(y=case["y"])


@pytest.mark.parametrize("test", ["wald", "lr"])
@pytest.mark.parametrize("sw", STEPWISE_CASES, ids=[c["glm_case"] for c in STEPWISE_CASES])
def test_backward_stepwise_matches_r(sw, test):
    case = next(c for c in GLM_CASES if c["name"] == sw["glm_case"])
    ref = sw[test]
    res = backward_stepwise(
        _prepare(case),
        "y",
        list(case["columns"]),
        0.05,
        test=test,
        categorical=case["categorical"],
        reference=reference(case),
    )
    assert list(res.selected) == ref["selected"]
    assert res.steps["removed"].tolist() == [s["removed"] for s in ref["steps"]]
    np.testing.assert_allclose(res.steps["p"].to_numpy(), [s["p"] for s in ref["steps"]], rtol=1e-6)
    assert res.steps["step"].tolist() == list(range(1, len(ref["steps"]) + 1))
    assert_fit_matches(res.fit, ref["fit"])


def test_stepwise_drops_noise_keeps_strong_predictors():
    rng = np.random.default_rng(42)
    n = 600
    table = pd.DataFrame(
        {
            "strong": rng.normal(size=n),
            "noise1": rng.normal(size=n),
            "moderate": rng.normal(size=n),
            "noise2": rng.normal(size=n),
            "group": rng.choice(["a", "b", "c"], size=n),
        }
    )
    eta = -0.5 + 1.5 * table["strong"] + 0.6 * table["moderate"]
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    res = backward_stepwise(table, y, threshold=0.05)
    assert set(res.selected) == {"strong", "moderate"}
    assert set(res.steps["removed"]) == {"noise1", "noise2", "group"}
    assert (res.steps["p"] > 0.05).all()
    assert res.fit.index.tolist() == [INTERCEPT, "strong", "moderate"]
    assert (res.fit.loc[["strong", "moderate"], "p"] < 0.05).all()
    last = res.steps.iloc[-1]
    assert last["remaining"] == "strong, moderate"
    assert res.steps.loc[res.steps["removed"] == "group", "df"].item() == 2  # dummies removed together


def test_stepwise_can_remove_everything():
    rng = np.random.default_rng(5)
    table = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    y = rng.integers(0, 2, size=80)
    res = backward_stepwise(table, y, threshold=0.001)
    assert res.selected == ()
    assert res.fit.index.tolist() == [INTERCEPT]
    assert res.fit.loc[INTERCEPT, "coef"] == pytest.approx(np.log(y.mean() / (1 - y.mean())))


def test_array_input_and_prediction():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 2))
    y = (rng.random(200) < 1 / (1 + np.exp(-(X @ [1.0, -0.5])))).astype(int)
    fit = logistic_fit(X, y)
    assert fit.index.tolist() == [INTERCEPT, "x1", "x2"]
    prob = logistic_predict(fit, X)
    # score equations of the MLE: sum of fitted = events, and orthogonal to every predictor
    assert prob.sum() == pytest.approx(y.sum(), rel=1e-8)
    np.testing.assert_allclose(X.T @ (y - prob), 0, atol=1e-7)
    single = logistic_fit(X[:, 0], y)
    assert single.index.tolist() == [INTERCEPT, "x"]


def test_prediction_reuses_categorical_encoding():
    case = next(c for c in GLM_CASES if c["name"] == "n250_two_factors")
    table = frame(case)
    fit = logistic_fit(table, case["y"])
    prob = logistic_predict(fit, table.iloc[:10])
    full = logistic_predict(fit, table)
    np.testing.assert_allclose(prob, full[:10])
    assert full.sum() == pytest.approx(np.sum(case["y"]), rel=1e-8)
    with pytest.raises(StatsError, match="column f1.*unseen"):
        logistic_predict(fit, table.assign(f1="zzz"))


def test_design_matrix_encoding():
    table = pd.DataFrame(
        {
            "grade": [0, 1, 2, 3, 1, 2],
            "side": pd.Categorical(["r", "l", "r", "l", "r", "l"], categories=["r", "l"]),
            "flag": [True, False, True, True, False, False],
        }
    )
    terms, enc = design_matrix(table, categorical=["grade"], reference={"grade": 1})
    assert terms.columns.tolist() == ["grade[0]", "grade[2]", "grade[3]", "side[l]", "flag"]
    assert enc["side"] == {"type": "categorical", "reference": "r", "levels": ["r", "l"]}
    assert enc["flag"] == {"type": "numeric"}
    assert terms["grade[2]"].tolist() == [0, 0, 1, 0, 0, 1]
    assert json.loads(json.dumps(enc)) == enc  # storable in a bundle's model.json
    again, _ = design_matrix(table, encoding=enc)
    pd.testing.assert_frame_equal(again, terms)


@pytest.mark.parametrize(
    ("table", "y", "message"),
    [
        (
            pd.DataFrame({"age": [1.0, 2.0, np.nan, 4.0, 5.0]}),
            [0, 1, 0, 1, 1],
            r"column age: 1 missing value\(s\) \(rows 2\)",
        ),
        (pd.DataFrame({"c": [1.0] * 5, "x": [1, 2, 3, 4, 5]}), [0, 1, 0, 1, 1], "column c: constant"),
        (pd.DataFrame({"g": ["a"] * 5}), [0, 1, 0, 1, 1], "column g: constant"),
        (
            pd.DataFrame({"x": [1, 2, 3, 4, 5], "x2": [2, 4, 6, 8, 10]}),
            [0, 1, 0, 1, 1],
            "collinear predictor.*x2",
        ),
        (pd.DataFrame({"x": [1, 2, 3, 4, 5]}), [1, 1, 1, 1, 1], "argument y: only events"),
        (pd.DataFrame({"x": [1, 2, 3, 4, 5]}), [0, 1, 0, 1], "length 4 does not match"),
        (pd.DataFrame({"x": [1, 2, 3, 4, 5]}), [0, 1, 2, 1, 0], "must be 0/1, found 2"),
        (pd.DataFrame({"x": [1, 2, 3, 4, 5]}), [0, 1, np.nan, 1, 0], "y: 1 missing"),
        (pd.DataFrame({"x": [1.0, 2.0]}), [0, 1], "too few"),
    ],
)
def test_logistic_bad_input(table, y, message):
    with pytest.raises(StatsError, match=message):
        logistic_fit(table, y)


def test_screen_and_stepwise_name_bad_columns():
    table = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    with pytest.raises(StatsError, match="no outcome column 'label'"):
        univariate_screen(table, "label")
    with pytest.raises(StatsError, match="no column"):
        backward_stepwise(table, "y", ["x", "size"])
    with pytest.raises(StatsError, match="threshold"):
        backward_stepwise(table, "y", ["x"], threshold=5)
    with pytest.raises(StatsError, match="reference level 'q'"):
        univariate_screen(table.assign(g=["a", "b", "a", "b"]), "y", ["g"], reference={"g": "q"})


def test_study_wide_declarations_apply_to_subsets():
    rng = np.random.default_rng(9)
    table = pd.DataFrame({"x": rng.normal(size=60), "g": rng.choice(["a", "b"], size=60)})
    y = rng.integers(0, 2, size=60)
    terms, _ = design_matrix(table, ["x"], categorical=["g"], reference={"g": "b"})
    assert terms.columns.tolist() == ["x"]
    res = backward_stepwise(table, y, ["x"], threshold=0.99, reference={"g": "b"})
    assert res.selected == ("x",) and res.fit.attrs["encoding"] == {"x": {"type": "numeric"}}
    with pytest.raises(StatsError, match="reference: table has no column"):
        design_matrix(table, ["x"], reference={"grp": "b"})


def test_firth_fallback_under_separation_maximises_the_penalised_likelihood() -> None:
    from scipy import optimize
    from scipy.special import expit as _expit

    from ALNMPredictorLib.stats import logistic_fit as _fit

    rng = np.random.default_rng(3)
    x = np.sort(rng.normal(0, 1, 40))
    y = (x > 0.1).astype(float)  # complete separation
    with pytest.raises(SeparationError):
        _fit(x, y)
    table = _fit(x, y, separation="firth")
    assert table.attrs["firth"] is True
    assert np.all(np.isfinite(table["coef"])) and table.loc["x", "coef"] > 0
    X = np.column_stack([np.ones_like(x), x])

    def neg_penalised(b: np.ndarray) -> float:
        eta = X @ b
        w = _expit(eta) * (1 - _expit(eta))
        return -(np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(X.T @ (X * w[:, None]))[1])

    ref = optimize.minimize(neg_penalised, np.zeros(2), method="BFGS", options={"gtol": 1e-10})
    np.testing.assert_allclose(table["coef"].to_numpy(), ref.x, rtol=1e-5, atol=1e-6)
    # without separation, the default ML fit is unchanged by the option
    y2 = (rng.random(40) < _expit(x)).astype(float)
    np.testing.assert_array_equal(_fit(x, y2)["coef"], _fit(x, y2, separation="firth")["coef"])
    with pytest.raises(StatsError, match="separation: unknown mode"):
        _fit(x, y, separation="ridge")


def test_firth_converges_with_sparse_levels() -> None:
    # reference level with events only and a one-case level: plain Newton steps cycle here
    g = np.array(["0"] * 2 + ["1"] * 24 + ["2"] * 12 + ["3"])
    y = np.array([1, 1] + [0] * 13 + [1] * 11 + [0] + [1] * 11 + [1], dtype=float)
    screen = univariate_screen(pd.DataFrame({"a": g}), y, ["a"], categorical=["a"], separation="firth")
    assert screen["firth"].all() and np.all(np.isfinite(screen["odds_ratio"]))
    assert screen["p"].between(0, 1).all()
