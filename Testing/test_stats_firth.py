"""Firth-penalised logistic regression equals R's logistf (package output: Testing/R/stats_firth_logistf.R)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.stats import logistic as logistic_module
from ALNMPredictorLib.stats import logistic_fit

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stats_firth_logistf.json").read_text())
CASES = {case["name"]: case for case in FIXTURE["cases"]}
SEPARATED = ["complete_separation", "sparse_levels", "separated_binary_with_continuous"]

# logistf stopped at changes below 1e-13 in the coefficients, the score and the penalised log-likelihood, and
# this fit at a score below 1e-9: both sit at the same maximum to far better than 1e-7 relative; the SEs and
# p-values are smooth functions of the coefficients there.
RTOL = 1e-7


def _design(case: dict) -> tuple[pd.DataFrame, np.ndarray]:
    return pd.DataFrame(case["columns"]), np.asarray(case["y"], dtype=float)


def test_fixture_is_logistf_output() -> None:
    assert FIXTURE["meta"]["logistf_version"] >= "1.26"
    assert "pl = FALSE" in FIXTURE["meta"]["control"]
    assert set(SEPARATED) < set(CASES)


@pytest.mark.parametrize("name", SEPARATED)
def test_separated_data_get_logistfs_firth_fit(name: str) -> None:
    case = CASES[name]
    X, y = _design(case)
    with pytest.raises(logistic_module.SeparationError):
        logistic_fit(X, y)
    table = logistic_fit(X, y, separation="firth")
    assert table.attrs["firth"] is True and table.attrs["firth_reason"].startswith("separation along")
    assert list(table.index) == case["terms"]
    ref = case["ref"]
    np.testing.assert_allclose(table["coef"], ref["coef"], rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(table["se"], ref["se"], rtol=RTOL)
    np.testing.assert_allclose(table["p"], ref["p"], rtol=RTOL)


@pytest.mark.parametrize("name", list(CASES))
def test_firth_estimate_and_penalised_likelihood_equal_logistf(name: str) -> None:
    case = CASES[name]
    X, y = _design(case)
    design = np.column_stack([np.ones(len(y)), X.to_numpy(dtype=float)])
    beta, cov, _, _ = logistic_module._firth(design, y)
    np.testing.assert_allclose(beta, case["ref"]["coef"], rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(np.sqrt(np.diag(cov)), case["ref"]["se"], rtol=RTOL)
    eta = design @ beta
    w = np.exp(-np.logaddexp(0, -eta) - np.logaddexp(0, eta))
    penalised = (
        np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(design.T @ (design * w[:, None]))[1]
    )
    assert penalised == pytest.approx(case["ref"]["loglik_penalised"], rel=1e-10)


def test_firth_shrinks_the_ml_estimate_where_both_exist() -> None:
    case = CASES["small_sample_not_separated"]
    X, y = _design(case)
    ml = logistic_fit(X, y)
    assert ml.attrs["firth"] is False  # no separation: the ML fit, as glm
    assert np.all(np.abs(np.asarray(case["ref"]["coef"][1:])) < np.abs(ml["coef"].to_numpy()[1:]))
