"""The rms::validate fixture and the mechanics of Harrell's bootstrap optimism correction.

Testing/R/stats_validate_reference.R ran ``validate(lrm(y ~ x1 + x2 + x3, x=TRUE, y=TRUE), B=200,
method="boot")`` and stored the data, the 200 bootstrap resamples it drew (row indices, 1-based) and its
table. Here the optimism of Dxy, calibration intercept and slope and the Brier score is recomputed from
those resamples with the project's own statistics (logistic_fit for every fit, auc_ci for Dxy,
calibration_stats for intercept, slope and Brier), and must equal R's:

* ``validate_exact`` (every lrm fit converged to the MLE) to 1e-8 relative: the computation is
  deterministic, so this proves the fixture and the mechanics;
* ``validate`` (rms as called, whose lrm.fit stops ~1e-8 short of the MLE) to 1e-6 relative.

Per index, as rms defines it, with lp the linear predictor of the model being assessed:
  Dxy = 2 (AUC - 1/2) of lp; Intercept, Slope = coefficients of the logistic recalibration y ~ a + b lp
  (0 and 1 on the data the model was fitted to, by definition); B = mean((plogis(lp) - y)^2).
  training = mean over resamples of the index of the resample's fit on the resample; test = of the
  resample's fit on the original data; optimism = training - test; corrected = index.orig - optimism.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ALNMPredictorLib.stats import auc_ci, calibration_stats, logistic_fit

FIXTURE = json.loads((Path(__file__).parent / "fixtures" / "stats_validate_reference.json").read_text())
META = FIXTURE["meta"]
PREDICTORS = ["x1", "x2", "x3"]
INDICES = ("Dxy", "Intercept", "Slope", "B")
COLUMNS = ("index.orig", "training", "test", "optimism", "index.corrected")


def _data() -> tuple[pd.DataFrame, np.ndarray]:
    data = FIXTURE["data"]
    return pd.DataFrame({k: data[k] for k in PREDICTORS}), np.asarray(data["y"], dtype=float)


def _lp(fit: pd.DataFrame, X: pd.DataFrame) -> np.ndarray:
    coef = fit["coef"]
    return float(coef["(Intercept)"]) + X[PREDICTORS].to_numpy() @ coef[PREDICTORS].to_numpy()


def _dxy(y: np.ndarray, lp: np.ndarray) -> float:
    return 2.0 * (auc_ci(y, lp).auc - 0.5)


def _apparent(y: np.ndarray, lp: np.ndarray) -> dict[str, float]:
    """Indices of a model on the data it was fitted to: rms sets Intercept 0 and Slope 1 there."""
    return {"Dxy": _dxy(y, lp), "Intercept": 0.0, "Slope": 1.0, "B": calibration_stats(y, expit(lp)).brier}


def _on_original(y: np.ndarray, lp: np.ndarray) -> dict[str, float]:
    cal = calibration_stats(y, expit(lp))
    return {"Dxy": _dxy(y, lp), "Intercept": cal.intercept, "Slope": cal.slope, "B": cal.brier}


@pytest.fixture(scope="module")
def python_validate() -> dict:
    X, y = _data()
    rows = np.asarray(FIXTURE["boot_indices"]) - META["indices_base"]  # 0-based rows, one resample each
    orig_fit = logistic_fit(X, y)
    orig = _apparent(y, _lp(orig_fit, X))
    train, test, apparent_cal = [], [], []
    for j in rows:
        fit = logistic_fit(X.iloc[j].reset_index(drop=True), y[j])
        lp_all = _lp(fit, X)
        train.append(_apparent(y[j], lp_all[j]))
        test.append(_on_original(y, lp_all))
        cal = calibration_stats(y[j], expit(lp_all[j]))
        apparent_cal.append((cal.intercept, cal.slope))
    training = pd.DataFrame(train).mean()
    tested = pd.DataFrame(test).mean()
    optimism = training - tested
    table = {
        k: {
            "index.orig": orig[k],
            "training": training[k],
            "test": tested[k],
            "optimism": optimism[k],
            "index.corrected": orig[k] - optimism[k],
        }
        for k in INDICES
    }
    return {
        "table": table,
        "coef_orig": orig_fit["coef"].to_numpy(),
        "per_train": pd.DataFrame(train),
        "per_test": pd.DataFrame(test),
        "apparent_cal": np.asarray(apparent_cal),
    }


def test_fixture_shape():
    n, B = META["n"], META["B"]
    idx = np.asarray(FIXTURE["boot_indices"])
    assert idx.shape == (B, n) and META["indices_base"] == 1
    assert idx.min() >= 1 and idx.max() <= n
    assert len(FIXTURE["data"]["y"]) == n and set(FIXTURE["data"]["y"]) == {0, 1}
    for table in ("validate", "validate_exact"):
        rows = FIXTURE[table]
        assert list(rows) == ["Dxy", "R2", "Intercept", "Slope", "Emax", "D", "U", "Q", "B", "g", "gp"]
        for name, row in rows.items():
            assert list(row) == [*COLUMNS, "n"] and row["n"] == B
            if name == "Emax":  # from the corrected Intercept and Slope only: 0, 0, e, e, e
                assert row["index.orig"] == row["training"] == 0 and row["test"] == row["index.corrected"]
                continue
            assert row["optimism"] == pytest.approx(row["training"] - row["test"], rel=1e-12, abs=1e-15)
            assert row["index.corrected"] == pytest.approx(
                row["index.orig"] - row["optimism"], rel=1e-12, abs=1e-15
            )


def test_original_fit_is_rs(python_validate):
    np.testing.assert_allclose(python_validate["coef_orig"], FIXTURE["coef_orig"]["exact"], rtol=1e-9)
    np.testing.assert_allclose(python_validate["coef_orig"], FIXTURE["coef_orig"]["default"], rtol=1e-6)


def test_per_resample_values_equal_rs(python_validate):
    per = FIXTURE["per_resample_exact"]
    for k in INDICES:
        np.testing.assert_allclose(python_validate["per_train"][k], per[f"{k}_train"], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(python_validate["per_test"][k], per[f"{k}_test"], rtol=1e-8, atol=1e-12)
    # rms's 0 and 1 on the resample are what recalibrating an MLE on its own data gives
    np.testing.assert_allclose(
        python_validate["apparent_cal"], np.tile([0.0, 1.0], (META["B"], 1)), atol=1e-7
    )


@pytest.mark.parametrize(("table", "rtol"), [("validate_exact", 1e-8), ("validate", 1e-6)])
@pytest.mark.parametrize("index", INDICES)
def test_optimism_equals_rms_validate(python_validate, table, rtol, index):
    ref = FIXTURE[table][index]
    got = python_validate["table"][index]
    for col in COLUMNS:
        assert got[col] == pytest.approx(ref[col], rel=rtol, abs=1e-12), f"{index} {col}"


def test_emax_from_corrected_calibration(python_validate):
    # rms: max |p - plogis(a + b logit(p))| over p = 0, 0.0005, ..., 1 with the corrected a, b
    a = python_validate["table"]["Intercept"]["index.corrected"]
    b = python_validate["table"]["Slope"]["index.corrected"]
    p = np.linspace(0.0, 1.0, 2001)[1:-1]  # the ends give |0 - 0| and |1 - 1|
    emax = float(np.max(np.abs(p - expit(a + b * np.log(p / (1 - p))))))
    assert emax == pytest.approx(FIXTURE["validate_exact"]["Emax"]["index.corrected"], rel=1e-7)
