"""Bootstrap optimism correction (optimism.py): equal to rms::validate, and what it does with the whole model.

The rms fixture (Testing/R/stats_validate_reference.R, B=200 on 150 cases, lrm without selection) carries
R's own resamples; given those rows, ``bootstrap_validation`` of a plain logistic model must reproduce
rms's table. rms writes the calibration intercept and slope of a model on its own data as 0 and 1 by
definition; ``performance`` computes them by a recalibration fit, which gives 0 and 1 to the fit's
convergence (~1e-9 per resample, see test_stats_validate_fixture), hence the 1e-7 absolute tolerance on
those cells only.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator

from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.optimism import INDICES, OptimismResult, bootstrap_validation, performance
from ALNMPredictorLib.stats import logistic_fit

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stats_validate_reference.json").read_text())
PREDICTORS = ["x1", "x2", "x3"]


class PlainLogistic(BaseEstimator):
    """lrm(y ~ x1 + x2 + x3): a model without selection, as in the rms fixture."""

    def __init__(self, predictors: tuple[str, ...] = tuple(PREDICTORS)) -> None:
        self.predictors = predictors

    def fit(self, table: pd.DataFrame, y, groups=None) -> PlainLogistic:
        self.coef_ = logistic_fit(table[list(self.predictors)], np.asarray(y, dtype=float))["coef"]
        return self

    def linear_predictor(self, table: pd.DataFrame) -> np.ndarray:
        cols = list(self.predictors)
        return float(self.coef_["(Intercept)"]) + table[cols].to_numpy() @ self.coef_[cols].to_numpy()


class Standardised(BaseEstimator):
    """lp = 2 x standardised x1 (mean and SD of the fitting cases): fits wherever x1 varies, even on data
    that x1 separates."""

    def fit(self, table: pd.DataFrame, y, groups=None) -> Standardised:
        self.mean_, self.sd_ = float(table["x1"].mean()), float(table["x1"].std())
        return self

    def linear_predictor(self, table: pd.DataFrame) -> np.ndarray:
        return 2.0 * (table["x1"].to_numpy() - self.mean_) / self.sd_


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    data = FIXTURE["data"]
    table = pd.DataFrame({k: data[k] for k in PREDICTORS})
    table.index = pd.Index([f"C{i:03d}" for i in range(len(table))], name="case_id")
    return table, np.asarray(data["y"], dtype=int)


def _r_rows() -> np.ndarray:
    return np.asarray(FIXTURE["boot_indices"]) - FIXTURE["meta"]["indices_base"]


@pytest.fixture(scope="module")
def r_validated() -> OptimismResult:
    table, y = _data()
    model = PlainLogistic().fit(table, y)
    return bootstrap_validation(model, table, y, rows=_r_rows(), workers=1)


R_NAMES = {"auc": "Dxy", "intercept": "Intercept", "slope": "Slope", "brier": "B"}
R_COLUMNS = {
    "apparent": "index.orig",
    "training": "training",
    "test": "test",
    "optimism": "optimism",
    "corrected": "index.corrected",
}


@pytest.mark.parametrize("index", INDICES)
def test_equals_rms_validate(r_validated, index):
    ref = FIXTURE["validate_exact"][R_NAMES[index]]
    assert r_validated.n_boot == r_validated.n_used == 200 and not r_validated.failures
    assert r_validated.table.loc[index, "n"] == 200
    for ours, theirs in R_COLUMNS.items():
        got = float(r_validated.table.loc[index, ours])
        want = ref[theirs]
        if index == "auc":  # rms reports Dxy = 2 (AUC - 1/2); optimism is a difference: 2 x AUC's
            got = 2 * got if ours == "optimism" else 2 * (got - 0.5)
        if index in ("intercept", "slope") and ours in ("apparent", "training"):
            assert got == pytest.approx(want, abs=1e-7), ours  # rms: 0 and 1 by definition (module docstring)
        else:
            assert got == pytest.approx(want, rel=1e-6, abs=1e-7), ours


def test_result_round_trips(r_validated):
    again = OptimismResult.from_dict(json.loads(json.dumps(r_validated.to_dict())))
    pd.testing.assert_frame_equal(again.table, r_validated.table.astype(float), check_names=False)
    assert (again.n_boot, again.n_used, again.seed) == (200, 200, r_validated.seed)


def test_workers_share_the_same_resamples():
    """Two worker processes give the table of one: the resamples are drawn up front from the seed.
    Different processes may sum in another order, hence 1e-10 rather than bit equality."""
    table, y = _data()
    model = PlainLogistic().fit(table, y)
    one = bootstrap_validation(model, table, y, n_boot=12, seed=3, workers=1)
    two = bootstrap_validation(model, table, y, n_boot=12, seed=3, workers=2)
    np.testing.assert_allclose(two.table.to_numpy(float), one.table.to_numpy(float), rtol=1e-10, atol=1e-12)
    other = bootstrap_validation(model, table, y, n_boot=12, seed=4, workers=1)
    assert not np.allclose(other.table["optimism"], one.table["optimism"])


def test_failed_refits_are_counted_and_left_out():
    table, y = _data()
    model = PlainLogistic().fit(table, y)
    rows = _r_rows()[:5].copy()
    rows[2] = np.flatnonzero(y == 0)[0]  # one case 150 times: one outcome only, nothing to fit
    result = bootstrap_validation(model, table, y, rows=rows, workers=1)
    assert result.n_boot == 5 and result.n_used == 4
    assert len(result.failures) == 1 and result.failures[0].startswith("resample 3:")
    every = [bootstrap_validation(model, table, y, rows=rows[[b]], workers=1) for b in (0, 1, 3, 4)]
    mean_optimism = np.mean([r.table["optimism"].to_numpy(float) for r in every], axis=0)
    np.testing.assert_allclose(result.table["optimism"].to_numpy(float), mean_optimism, rtol=1e-12)


def test_separating_refits_leave_only_the_calibration_out():
    """A refit whose linear predictor separates its resample has no finite recalibration slope: that
    resample counts for AUC and Brier but not for intercept and slope (n per index, as rms)."""
    table, y = _data()
    separated = performance(np.array([0, 0, 1, 1]), np.array([-1.0, -0.5, 0.5, 1.0]))
    assert np.isnan(separated["slope"]) and np.isnan(separated["intercept"]) and separated["auc"] == 1.0
    rows = _r_rows()[:6].copy()
    x1 = table["x1"].to_numpy()
    low, high = (
        np.flatnonzero((y == 0) & (x1 < np.median(x1))),
        np.flatnonzero((y == 1) & (x1 > np.median(x1))),
    )
    rows[1] = np.resize(np.concatenate([low[:5], high[:5]]), len(y))  # x1 separates this resample
    result = bootstrap_validation(Standardised().fit(table, y), table, y, rows=rows, workers=1)
    assert result.n_used == 6 and not result.failures
    assert result.table.loc["auc", "n"] == 6 and result.table.loc["brier", "n"] == 6
    assert result.table.loc["slope", "n"] == 5 and result.table.loc["intercept", "n"] == 5
    assert np.isfinite(result.table.to_numpy(float)).all()


def test_bad_resample_table_is_refused():
    table, y = _data()
    model = PlainLogistic().fit(table, y)
    with pytest.raises(ALNMError, match="resample rows"):
        bootstrap_validation(model, table, y, rows=np.zeros((3, 10), dtype=int))
    with pytest.raises(ALNMError, match="at least 1 resample"):
        bootstrap_validation(model, table, y, n_boot=0)


def test_performance_indices():
    y = np.array([0, 0, 1, 1, 0, 1])
    lp = np.array([-2.0, 0.5, 0.1, 2.0, -1.0, 1.5])
    got = performance(y, lp)
    assert got["auc"] == pytest.approx(8 / 9)  # one discordant pair of 9 (0.5 vs 0.1)
    assert got["brier"] == pytest.approx(np.mean((1 / (1 + np.exp(-lp)) - y) ** 2))
    fit = logistic_fit(pd.DataFrame({"lp": lp}), y.astype(float))["coef"]
    assert (got["intercept"], got["slope"]) == pytest.approx((fit["(Intercept)"], fit["lp"]))
    with pytest.raises(Exception, match="one outcome"):
        performance(np.zeros(4), np.arange(4.0))
