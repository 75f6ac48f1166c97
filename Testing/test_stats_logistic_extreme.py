"""logistic_fit where the fitted linear predictor is extreme (|eta| > 37) but the data are not separated.

There plogis(eta) rounds to exactly 0 or 1; R's glm keeps mu inside (0, 1) with its clamped logit link
(family.c) and finds the MLE. Reference values: Testing/R/stats_logistic_extreme.R, whose JSON fixture
Testing/fixtures/stats_logistic_extreme.json the tests read (R is not needed to run them).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.errors import SeparationError
from ALNMPredictorLib.modeling import fit_logistic_model
from ALNMPredictorLib.stats import backward_stepwise, logistic_fit, logistic_predict, univariate_screen
from ALNMPredictorLib.stats import logistic as logistic_module

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stats_logistic_extreme.json").read_text())
CASES = FIXTURE["cases"]
IDS = [c["name"] for c in CASES]


def frame(case: dict) -> pd.DataFrame:
    return pd.DataFrame(case["columns"])


def assert_matches_r(fit: pd.DataFrame, ref: dict) -> None:
    assert fit.index.tolist() == ref["term"]
    np.testing.assert_allclose(fit["coef"].to_numpy(), ref["coef"], rtol=1e-8, err_msg="coef")
    np.testing.assert_allclose(fit["se"].to_numpy(), ref["se"], rtol=1e-8, err_msg="se")
    np.testing.assert_allclose((fit["coef"] / fit["se"]).to_numpy(), ref["z"], rtol=1e-8, err_msg="z")
    np.testing.assert_allclose(fit["p"].to_numpy(), ref["p"], rtol=1e-8, err_msg="p")
    assert fit.attrs["deviance"] == pytest.approx(ref["deviance"], rel=1e-10)
    assert fit.attrs["null_deviance"] == pytest.approx(ref["null_deviance"], rel=1e-10)
    assert fit.attrs["aic"] == pytest.approx(ref["aic"], rel=1e-10)


def test_fixture_is_extreme_and_glm_warned():
    assert len(CASES) >= 5
    for case in CASES:
        assert case["max_abs_eta"] > 37  # beyond where plogis rounds to exactly 0 or 1
        assert case["default"]["converged"]
        # glm's default fit is the MLE too, to its 1e-8 tolerance
        np.testing.assert_allclose(case["default"]["coef"], case["ref"]["coef"], rtol=1e-5)
    assert any(len(c["columns"]) == 2 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("separation", ["error", "firth"])
def test_extreme_eta_fit_matches_glm_quietly(case, separation, capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning (0/0) either
        fit = logistic_fit(frame(case), case["y"], separation=separation)
    out, err = capfd.readouterr()
    assert out == "" and err == ""  # no LAPACK "DLASCL parameter number 4" lines
    assert fit.attrs["firth"] is False and fit.attrs["firth_reason"] is None
    assert_matches_r(fit, case["ref"])
    # the MLE's score equations hold although many fitted probabilities round to 0 or 1
    prob = logistic_predict(fit, frame(case))
    assert prob.sum() == pytest.approx(np.sum(case["y"]), rel=1e-8)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_screen_and_stepwise_use_the_mle(case, capfd):
    table = frame(case).assign(outcome=case["y"])
    screen = univariate_screen(table, "outcome", separation="firth")
    assert not screen["firth"].any()
    res = backward_stepwise(table, "outcome", list(case["columns"]), threshold=0.999999, separation="firth")
    assert res.fit.attrs["firth"] is False
    assert_matches_r(res.fit, case["ref"])
    assert capfd.readouterr().err == ""


def test_tumour_score_model_has_no_firth_note(capfd):
    case = next(c for c in CASES if c["name"] == "n200_tumour_score_tail26")
    data = frame(case)
    model = fit_logistic_model("m", data, case["y"], ["tumor_score"], separation="firth")
    assert not any("Firth" in note or "separate" in note for note in model.notes)
    assert model.coefficients["tumor_score"] == pytest.approx(case["ref"]["coef"][1], rel=1e-8)
    assert model.coefficients["(Intercept)"] == pytest.approx(case["ref"]["coef"][0], rel=1e-8)
    assert capfd.readouterr().err == ""


def test_link_functions_are_rs():
    eps = float(np.finfo(float).eps)
    assert FIXTURE["meta"]["double_eps"] == pytest.approx(eps, rel=1e-14)  # JSON keeps 15 digits
    assert FIXTURE["meta"]["logit_thresh"] == 30
    eta = np.array([-800.0, -45.0, -30.5, -29.9, 0.0, 29.9, 30.5, 45.0, 800.0])
    mu = logistic_module._linkinv(eta)
    assert mu[0] == mu[1] == mu[2] == eps / (1 + eps)
    assert mu[-1] == mu[-2] == mu[-3] == 1 / (1 + eps) < 1.0
    assert mu[3] == np.exp(-29.9) / (1 + np.exp(-29.9)) and mu[4] == 0.5
    d = logistic_module._mu_eta(eta)
    assert np.all(d[[0, 1, 2, 6, 7, 8]] == eps)
    assert d[5] == np.exp(29.9) / (1 + np.exp(29.9)) ** 2
    assert np.all(np.isfinite(np.log(mu))) and np.all(np.isfinite(np.log(1 - mu)))


def test_separation_at_extreme_scale_is_still_detected():
    x = np.linspace(-40.0, 40.0, 81)
    y = (x > 0.5).astype(float)
    with pytest.raises(SeparationError, match="along x"):
        logistic_fit(x, y)
    fit = logistic_fit(x, y, separation="firth")
    assert fit.attrs["firth"] is True and fit.attrs["firth_reason"] == "separation along x"
