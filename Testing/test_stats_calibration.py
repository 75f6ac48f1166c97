"""Calibration statistics against R: hoslem.test (base-R copy), rms val.prob, lowess.

Reference values: Testing/fixtures/stats_reference_a.json, made by Testing/R/stats_reference_a.R.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ALNMPredictorLib.errors import SeparationError, StatsError
from ALNMPredictorLib.stats import (
    calibration_curve,
    calibration_smooth,
    calibration_stats,
    hosmer_lemeshow,
    lowess,
)

REF = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_a.json").read_text())
DATA = REF["datasets"]
HL = REF["reference"]["hosmer_lemeshow"]
CAL = REF["reference"]["calibration_stats"]
LOWESS = REF["reference"]["lowess"]
CURVE = REF["reference"]["calibration_curve"]


def num(v) -> float:
    return float("nan") if v is None else float(v)


def close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-12, equal_nan=True, err_msg=what)


def ids(entries, *keys):
    return [
        "-".join(str(round(e[k], 3)) if isinstance(e[k], float) else str(e[k]) for k in keys) for e in entries
    ]


def test_reference_covers_enough_datasets():
    for key in ("hosmer_lemeshow", "calibration_stats", "lowess", "calibration_curve"):
        assert len({e["dataset"] for e in REF["reference"][key]}) >= 10, key


@pytest.mark.parametrize("ref", HL, ids=ids(HL, "dataset", "groups"))
def test_hosmer_lemeshow_matches_hoslem_test(ref):
    d = DATA[ref["dataset"]]
    if "error" in ref:  # R gives NaN (empty group) or fails (a single break)
        with pytest.raises(StatsError, match="empty|equal|groups"):
            hosmer_lemeshow(d["y"], d["prob"], groups=ref["groups"])
        return
    res = hosmer_lemeshow(d["y"], d["prob"], groups=ref["groups"])
    close(res.statistic, ref["statistic"], "statistic")
    assert res.df == ref["df"]
    close(res.p, ref["p"], "p")


def test_hosmer_lemeshow_collapses_tied_groups():
    collapsed = [e for e in HL if "error" not in e and e["df"] < e["groups"] - 2]
    assert collapsed, "the reference should contain collapsed groups"
    for ref in collapsed:
        d = DATA[ref["dataset"]]
        assert hosmer_lemeshow(d["y"], d["prob"], ref["groups"]).groups == ref["df"] + 2


@pytest.mark.parametrize("ref", CAL, ids=ids(CAL, "dataset"))
def test_calibration_stats_match_val_prob(ref):
    d = DATA[ref["dataset"]]
    res = calibration_stats(d["y"], d["prob"])
    constant = len(set(d["prob"])) == 1
    # val.prob with constant p places Emax/E90 wrongly (an rms quirk): there they equal Eavg.
    for field in ("brier", "eavg") if constant else ("brier", "eavg", "emax", "e90"):
        close(getattr(res, field), ref[field], field)
    if constant:
        close((res.intercept, res.slope), (ref["intercept"], ref["slope"]), "constant p")
        assert res.emax == res.e90 == res.eavg
        return
    # exact MLE (R glm, epsilon 1e-14) to 1e-6; rms lrm.fit stops at its own, looser tolerance
    close((res.intercept, res.slope), (ref["intercept_mle"], ref["slope_mle"]), "recalibration MLE")
    np.testing.assert_allclose((res.intercept, res.slope), (ref["intercept"], ref["slope"]), rtol=1e-4)


def test_probabilities_of_zero_or_one_are_left_out_of_the_fit_only():
    d = DATA["n200_prob01"]
    p = np.asarray(d["prob"])
    res = calibration_stats(d["y"], p)
    assert res.n_excluded == int(np.sum((p == 0) | (p == 1))) >= 5
    assert res.brier == pytest.approx(np.mean((p - np.asarray(d["y"])) ** 2), rel=1e-14)


def test_constant_probability_follows_val_prob():
    d = DATA["n80_constant"]
    res = calibration_stats(d["y"], d["prob"])
    rate = np.mean(d["y"])
    assert res.slope == 0.0
    assert res.intercept == pytest.approx(np.log(rate / (1 - rate)), rel=1e-12)


@pytest.mark.parametrize("ref", LOWESS, ids=ids(LOWESS, "dataset", "frac"))
def test_lowess_matches_R(ref):
    d = DATA[ref["dataset"]]
    curve = lowess(d["prob"], d["y"], frac=ref["frac"])
    close(curve["x"].to_numpy(), ref["x"], "x")
    close(curve["y"].to_numpy(), ref["y"], "y")


def test_calibration_smooth_is_val_prob_lowess():
    d = DATA["n300"]
    smooth = calibration_smooth(d["y"], d["prob"])
    ref = next(e for e in LOWESS if e["dataset"] == "n300" and e["frac"] > 0.5)
    assert list(smooth.columns) == ["predicted", "observed"]
    close(smooth["observed"].to_numpy(), ref["y"], "observed")


@pytest.mark.parametrize("ref", CURVE, ids=ids(CURVE, "dataset", "method"))
def test_calibration_curve_matches_R_bins(ref):
    d = DATA[ref["dataset"]]
    curve = calibration_curve(d["y"], d["prob"], bins=ref["bins"], method=ref["method"])
    rows = ref["rows"]
    assert curve["bin"].tolist() == [r["bin"] for r in rows]
    assert curve["n"].tolist() == [r["n"] for r in rows]
    assert curve["events"].tolist() == [r["events"] for r in rows]
    for col in ("predicted", "observed", "observed_low", "observed_high"):
        close(curve[col].to_numpy(), [num(r[col]) for r in rows], col)


def test_calibration_curve_counts_every_case():
    d = DATA["n1000"]
    for method in ("quantile", "uniform"):
        curve = calibration_curve(d["y"], d["prob"], bins=10, method=method)
        assert curve["n"].sum() == len(d["y"]) and curve["events"].sum() == sum(d["y"])


def test_separation_is_reported():
    with pytest.raises(SeparationError, match="separates"):
        calibration_stats([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.8])


def test_bad_inputs_are_clear_errors():
    with pytest.raises(StatsError, match=r"argument prob: probabilities must lie in \[0, 1\], found 1.2"):
        calibration_stats([0, 1, 0], [0.2, 1.2, 0.3])
    with pytest.raises(StatsError, match=r"argument prob: .*NaN"):
        hosmer_lemeshow([0, 1, 0], [0.2, np.nan, 0.3])
    with pytest.raises(StatsError, match=r"argument y: only non-events"):
        calibration_stats([0, 0, 0], [0.2, 0.5, 0.3])
    with pytest.raises(StatsError, match=r"argument groups"):
        hosmer_lemeshow([0, 1, 0, 1], [0.2, 0.5, 0.3, 0.6], groups=2)
    with pytest.raises(StatsError, match=r"all 4 predicted probabilities are equal"):
        hosmer_lemeshow([0, 1, 0, 1], [0.5] * 4)
    with pytest.raises(StatsError, match=r"argument method"):
        calibration_curve([0, 1, 0, 1], [0.2, 0.5, 0.3, 0.6], method="bogus")


def test_hosmer_lemeshow_with_too_few_groups_left():
    y = [0, 1, 0, 1, 0, 1, 1, 0]
    with pytest.raises(StatsError, match="only 2 risk group"):
        hosmer_lemeshow(y, [0.2, 0.2, 0.2, 0.2, 0.7, 0.7, 0.7, 0.7])
