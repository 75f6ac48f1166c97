"""Logistic models: stepwise selection, nomogram arithmetic, cut-off, JSON round trip, input errors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.modeling import LogisticModel, fit_logistic_model
from ALNMPredictorLib.stats import logistic_fit, youden_threshold


@pytest.fixture(scope="module")
def cohort() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(7)
    n = 600
    size = rng.normal(2.9, 1.2, n)
    us = rng.choice(["absent", "present"], n)
    noise = rng.normal(0, 1, n)
    colour = rng.choice(["red", "green", "blue"], n)
    lp = -2.0 + 0.6 * size + 1.7 * (us == "present")
    y = (rng.random(n) < expit(lp)).astype(int)
    data = pd.DataFrame(
        {"tumor_size": size, "us_alnm": us, "noise": noise, "colour": colour},
        index=pd.Index([f"P{i:04d}" for i in range(n)], name="case_id"),
    )
    return data, y


def test_stepwise_keeps_signal_and_drops_noise(cohort) -> None:
    data, y = cohort
    model = fit_logistic_model(
        "clinical",
        data,
        y,
        ["tumor_size", "us_alnm", "noise", "colour"],
        categorical=["us_alnm", "colour"],
        reference={"us_alnm": "absent"},
    )
    assert model.variables == ["tumor_size", "us_alnm"]
    # final coefficients equal a direct glm-style fit of the kept variables
    direct = logistic_fit(data[["tumor_size", "us_alnm"]], y)
    for term, coef in direct["coef"].items():
        assert model.coefficients[term] == pytest.approx(coef, rel=1e-10)
    uni = pd.DataFrame(model.univariate)
    assert set(uni["variable"]) == {"tumor_size", "us_alnm", "noise", "colour"}
    assert model.cutoff == youden_threshold(y, model.predict_proba(data).to_numpy())


def test_nomogram_points_map_back_to_probability(cohort) -> None:
    data, y = cohort
    model = fit_logistic_model("clinical", data, y, ["tumor_size", "us_alnm"], categorical=["us_alnm"])
    scale = model.nomogram_scale()
    pts = model.points(data)
    # the widest predictor spans exactly 0..100 over the training data, the other less
    spans = {v: pts[v].max() - pts[v].min() for v in model.variables}
    assert max(spans.values()) == pytest.approx(100.0)
    assert min(pts[v].min() for v in model.variables) == pytest.approx(0.0, abs=1e-9)
    lp = scale["lp_offset"] + pts["total_points"] / scale["points_per_unit_lp"]
    np.testing.assert_allclose(expit(lp), model.predict_proba(data), rtol=1e-12)
    for p, total in scale["probability_ticks"]:
        assert expit(scale["lp_offset"] + total / scale["points_per_unit_lp"]) == pytest.approx(p)
    axis = {a["variable"]: a for a in scale["axes"]}
    assert [t[0] for t in axis["us_alnm"]["ticks"]] == ["absent", "present"]


def test_json_round_trip_is_exact(cohort) -> None:
    data, y = cohort
    model = fit_logistic_model(
        "clinical", data, y, ["tumor_size", "us_alnm", "noise"], categorical=["us_alnm"]
    )
    again = LogisticModel.from_dict(json.loads(json.dumps(model.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(again.predict_proba(data), model.predict_proba(data))
    assert again.formula() == model.formula()
    assert again.nomogram_scale() == model.nomogram_scale()


def test_input_errors_name_case_and_column(cohort) -> None:
    data, y = cohort
    model = fit_logistic_model("clinical", data, y, ["tumor_size", "us_alnm"], categorical=["us_alnm"])
    with pytest.raises(InputError, match="needs column.*us_alnm"):
        model.predict_proba(data.drop(columns="us_alnm"))
    bad = data.copy()
    bad.loc["P0003", "tumor_size"] = np.nan
    with pytest.raises(InputError, match="case P0003, column tumor_size"):
        model.predict_proba(bad)
    unseen = data.head(3).copy()
    unseen["us_alnm"] = "maybe"
    with pytest.raises(InputError, match="maybe"):
        model.predict_proba(unseen)


def test_screen_with_no_significant_candidate_keeps_the_best(cohort) -> None:
    data, _ = cohort
    y = np.random.default_rng(3).integers(0, 2, len(data))
    model = fit_logistic_model("clinical", data, y, ["noise", "colour"], categorical=["colour"])
    assert len(model.variables) == 1
    assert any("kept the best one" in n for n in model.notes)


# --------------------------------------------------------------------------------------------------
# The whole clinical-radiomics model on a planted feature table


@pytest.fixture(scope="module")
def feature_table() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(11)
    n = 320
    y = rng.integers(0, 2, n)
    cols = {}
    for region, strength in (("tumor", 0.8), ("ln", 1.4)):
        for j in range(3):
            cols[f"{region}_original_signal{j}"] = rng.normal(0, 1, n) + strength * y * (1 - 0.2 * j)
        for j in range(25):
            cols[f"{region}_original_noise{j:02d}"] = rng.normal(0, 1, n)
    table = pd.DataFrame(cols, index=pd.Index([f"C{i:03d}" for i in range(n)], name="case_id"))
    table["us_alnm"] = np.where(rng.random(n) < 0.3 + 0.4 * y, "present", "absent")
    table["age"] = rng.normal(54, 10, n)
    return table, pd.Series(y, index=table.index)


def test_alnm_model_fits_scores_and_combined_model(feature_table) -> None:
    from ALNMPredictorLib.modeling import ALNMModel
    from ALNMPredictorLib.stats import auc_ci

    table, y = feature_table
    train = table.index[:240]
    test = table.index[240:]
    model = ALNMModel(
        clinical=["us_alnm", "age"],
        categorical=["us_alnm"],
        reference={"us_alnm": "absent"},
        score_params={"lasso_folds": 5},
        random_state=0,
    )
    model.fit(table.loc[train], y.loc[train])
    assert set(model.combined_model_.variables) >= {"tumor_score", "ln_score"}
    assert "age" not in model.combined_model_.variables
    assert model.clinical_model_.variables == ["us_alnm"]
    prob = model.predict_proba(table.loc[test])
    auc_combined = auc_ci(y.loc[test], prob).auc
    auc_clinical = auc_ci(y.loc[test], model.clinical_model_.predict_proba(table.loc[test])).auc
    assert auc_combined > auc_clinical
    pts = model.nomogram_points(table.loc[test])
    assert list(pts.columns) == [*model.combined_model_.variables, "total_points"]
    explained = model.explain(table, test[0])
    assert explained.iloc[-1]["value"] == pytest.approx(prob.iloc[0], rel=1e-12)
    # JSON round trip reproduces every model's predictions to 1e-12
    again = ALNMModel.from_dict(json.loads(json.dumps(model.to_dict())))
    np.testing.assert_allclose(again.predict_proba(table.loc[test]), prob, rtol=1e-12, atol=0)
    for name, m in model.models().items():
        inputs = model.predictor_table(table.loc[test])
        np.testing.assert_allclose(
            again.models()[name].predict_proba(inputs), m.predict_proba(inputs), rtol=1e-12
        )
    need = model.required_columns()
    assert set(need) == {"tumor", "ln", "clinical"}
    with pytest.raises(InputError, match=need["ln"][0]):
        model.predict_proba(table.loc[test].drop(columns=need["ln"][0]))


def test_a_separating_variable_is_left_out_with_a_note() -> None:
    rng = np.random.default_rng(5)
    n = 200
    x = rng.normal(0, 1, n)
    flag = rng.choice(["a", "b"], n)
    y = ((x + 1.5 * (flag == "a")) > 0.75).astype(int)  # separable jointly, not by either variable alone
    data = pd.DataFrame({"x": x, "flag": flag})
    model = fit_logistic_model("m", data, y, ["x", "flag"], categorical=["flag"])
    assert len(model.variables) == 1
    assert any("separates the classes" in note for note in model.notes)


def test_firth_keeps_a_score_that_separates_a_small_training_set() -> None:
    rng = np.random.default_rng(2)
    score = rng.normal(0, 1, 40)
    y = (score > 0.2).astype(int)
    data = pd.DataFrame({"tumor_score": score, "noise": rng.normal(0, 1, 40)})
    with_drop = fit_logistic_model("m", data, y, ["tumor_score", "noise"])
    assert "tumor_score" not in with_drop.variables
    firth = fit_logistic_model("m", data, y, ["tumor_score", "noise"], separation="firth")
    assert firth.variables == ["tumor_score"]
    assert np.isfinite(firth.coefficients["tumor_score"]) and firth.coefficients["tumor_score"] > 0
    assert any("Firth" in note for note in firth.notes)
    assert LogisticModel.from_dict(json.loads(json.dumps(firth.to_dict()))).coefficients == firth.coefficients


def test_nomogram_axes_span_the_training_range() -> None:
    """Every training value can be read off its axis (issue: axes stopped at the round ticks -2 and 2
    while the demo's scores ran from -3.2 to 3.5), on the committed demo model and on a made-up range."""
    from ALNMPredictorLib.demomodel import DEMO_MODEL_RESOURCE
    from ALNMPredictorLib.pipeline import load_model
    from ALNMPredictorLib.plots import plot_nomogram

    combined = load_model(DEMO_MODEL_RESOURCE).model.combined_model_
    rng = np.random.default_rng(3)
    score = np.concatenate([[-3.2, 3.43], rng.normal(0, 1, 60)])
    y = (rng.random(62) < expit(1.5 * score)).astype(int)
    made_up = fit_logistic_model(
        "m", pd.DataFrame({"ln_score": score}), y, ["ln_score"], screen_p=None, stepwise_p=None
    )
    for model in (combined, made_up):
        scale = model.nomogram_scale()
        fig = plot_nomogram(scale)
        lines = [line.get_xdata() for line in fig.axes[0].lines if len(line.get_xdata()) == 2]
        for axis in scale["axes"]:
            if axis["type"] == "categorical":
                continue
            values = [v for v, _ in axis["ticks"]]
            lo, hi = model.ranges[axis["variable"]]
            assert min(values) <= lo and max(values) >= hi, axis["variable"]
            assert min(values) > lo - 0.1 * (hi - lo) and max(values) < hi + 0.1 * (hi - lo)  # not far beyond
            points = [p for _, p in axis["ticks"]]
            assert any(
                min(x) == pytest.approx(min(points)) and max(x) == pytest.approx(max(points)) for x in lines
            )
    ticks = [v for v, _ in made_up.nomogram_scale()["axes"][0]["ticks"]]
    assert ticks[0] == -3.2 and ticks[-1] == pytest.approx(
        3.5
    )  # 3.43 rounded outward to a tenth of the step 2
