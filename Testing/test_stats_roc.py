"""ROC statistics against pROC 1.18 (Testing/fixtures/stats_reference_a.json from Testing/R/stats_reference_a.R)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats import (
    auc_ci,
    classification_metrics,
    delong_test,
    roc_curve,
    youden_threshold,
    youden_thresholds,
)

REF = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_a.json").read_text())
DATA = REF["datasets"]
RTOL = 1e-6


def num(v) -> float:
    """JSON value to float: null is NaN, "Inf"/"-Inf" strings are infinities."""
    return float("nan") if v is None else float(v)


def close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=1e-12, equal_nan=True, err_msg=what)


def ids(entries, *keys):
    return ["-".join(str(e[k]) for k in keys) for e in entries]


AUC = REF["reference"]["auc_ci"]
DELONG = REF["reference"]["delong_test"]
YOUDEN = REF["reference"]["youden"]
METRICS = REF["reference"]["classification_metrics"]


def test_reference_covers_enough_datasets():
    for key in ("auc_ci", "delong_test", "youden", "classification_metrics"):
        assert len({e["dataset"] for e in REF["reference"][key]}) >= 10, key
    sizes = [len(d["y"]) for d in DATA.values()]
    assert min(sizes) <= 25 and max(sizes) >= 1000


@pytest.mark.parametrize("ref", AUC, ids=ids(AUC, "dataset", "score", "level"))
def test_auc_ci_matches_pROC(ref):
    d = DATA[ref["dataset"]]
    res = auc_ci(d["y"], d[ref["score"]], level=ref["level"])
    for field in ("auc", "low", "high", "se"):
        close(getattr(res, field), num(ref[field]), field)


@pytest.mark.parametrize("ref", DELONG, ids=ids(DELONG, "dataset", "a", "b"))
def test_delong_test_matches_pROC(ref):
    d = DATA[ref["dataset"]]
    if "error" in ref or ref["z"] is None:  # pROC fails or gives NaN: a single event
        with pytest.raises(StatsError, match="at least 2 events"):
            delong_test(d["y"], d[ref["a"]], d[ref["b"]])
        return
    res = delong_test(d["y"], d[ref["a"]], d[ref["b"]])
    for field in ("auc_a", "auc_b", "z", "p"):
        close(getattr(res, field), num(ref[field]), field)


@pytest.mark.parametrize("ref", YOUDEN, ids=ids(YOUDEN, "dataset", "score"))
def test_youden_matches_pROC(ref):
    d = DATA[ref["dataset"]]
    expected = [num(t) for t in ref["thresholds"]]
    close(youden_thresholds(d["y"], d[ref["score"]]), expected, "all tied thresholds")
    assert youden_threshold(d["y"], d[ref["score"]]) == pytest.approx(min(expected), rel=RTOL)


def test_youden_tie_rule_is_lowest_threshold():
    multi = [e for e in YOUDEN if len(e["thresholds"]) > 1]
    assert multi, "the reference data should contain a tie of the Youden index"
    for ref in multi:
        d = DATA[ref["dataset"]]
        assert youden_threshold(d["y"], d[ref["score"]]) == num(ref["thresholds"][0])


@pytest.mark.parametrize("ref", METRICS, ids=ids(METRICS, "dataset", "score"))
def test_classification_metrics_match_R(ref):
    d = DATA[ref["dataset"]]
    res = classification_metrics(d["y"], d[ref["score"]], num(ref["threshold"]), level=ref["level"])
    for field in ("tp", "fp", "tn", "fn"):
        assert getattr(res, field) == ref[field], field
    for field in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
        close(getattr(res, field), num(ref[field]), field)
        close(getattr(res, field + "_ci"), [num(v) for v in ref[field + "_ci"]], field + "_ci")


def naive_delong(y, s):
    """O(n^2) DeLong straight from the definition (psi = 1, 1/2, 0)."""
    y = np.asarray(y, bool)
    pos, neg = s[y], s[~y]
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    var = v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size
    return auc, np.sqrt(var)


def test_fast_delong_equals_naive_definition():
    rng = np.random.default_rng(5)
    for n, digits in ((40, 0), (300, 1), (1000, 3)):
        y = rng.random(n) < 0.3
        s = np.round(rng.normal(size=n) + y, digits)
        auc, se = naive_delong(y, s)
        res = auc_ci(y, s)
        assert res.auc == pytest.approx(auc, rel=1e-12)
        assert res.se == pytest.approx(se, rel=1e-10)


def test_results_are_frozen_dataclasses_with_contract_fields():
    y, s = [0, 0, 1, 1, 0, 1], [0.1, 0.4, 0.35, 0.8, 0.2, 0.7]
    res = auc_ci(y, s)
    assert {"auc", "low", "high", "se"} <= {f.name for f in dataclasses.fields(res)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.auc = 1.0  # type: ignore[misc]
    assert {"auc_a", "auc_b", "z", "p"} <= {f.name for f in dataclasses.fields(delong_test(y, s, s))}
    metrics = classification_metrics(y, s, 0.5)
    assert {"accuracy", "sensitivity", "specificity", "ppv", "npv"} <= {
        f.name for f in dataclasses.fields(metrics)
    }


def test_auc_direction_is_fixed_not_flipped():
    y = [0, 0, 0, 1, 1, 1]
    s = np.array([3.0, 2.0, 2.5, 1.0, 0.5, 1.5])
    assert auc_ci(y, s).auc == 0.0
    assert auc_ci(y, -s).auc == 1.0


def test_constant_scores_give_half_with_zero_width():
    res = auc_ci([0, 1, 0, 1, 1], [2.0] * 5)
    assert (res.auc, res.low, res.high, res.se) == (0.5, 0.5, 0.5, 0.0)
    assert youden_threshold([0, 1, 0, 1, 1], [2.0] * 5) == -np.inf


def test_identical_scores_delong_is_z0_p1():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 50)
    s = rng.normal(size=50)
    res = delong_test(y, s, s)
    assert (res.z, res.p) == (0.0, 1.0)


def test_one_class_is_a_clear_error():
    with pytest.raises(StatsError, match=r"argument y: only non-events"):
        auc_ci([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(StatsError, match=r"argument y: only events"):
        youden_threshold([1, 1], [0.1, 0.2])


def test_bad_inputs_name_the_argument():
    with pytest.raises(StatsError, match=r"argument score: .*position 2"):
        auc_ci([0, 1, 0, 1], [0.1, 0.2, np.nan, 0.4])
    with pytest.raises(StatsError, match=r"argument score_b: .*position 0"):
        delong_test([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [np.inf, 0.2, 0.3, 0.4])
    with pytest.raises(StatsError, match=r"argument y: .*NaN"):
        auc_ci([0, 1, np.nan, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(StatsError, match=r"argument y: outcome must be 0/1, found 2"):
        auc_ci([0, 1, 2, 1], [0.1, 0.2, 0.3, 0.4])
    with pytest.raises(StatsError, match=r"argument score: has 3 values but y has 4"):
        auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3])
    with pytest.raises(StatsError, match=r"argument level"):
        auc_ci([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], level=95)
    with pytest.raises(StatsError, match=r"argument threshold"):
        classification_metrics([0, 1], [0.1, 0.2], float("nan"))


def test_ci_is_clipped_to_unit_interval():
    y = [0, 0, 0, 1, 1, 1, 0, 1]
    s = [0.1, 0.2, 0.3, 0.9, 0.8, 0.7, 0.45, 0.4]
    res = auc_ci(y, s, level=0.999)
    assert res.high == 1.0 and 0.0 <= res.low < res.auc


def test_roc_curve_matches_auc_and_thresholds():
    d = DATA["n300"]
    curve = roc_curve(d["y"], d["score_a"])
    assert list(curve.columns) == ["threshold", "sensitivity", "specificity"]
    assert curve["threshold"].iloc[0] == -np.inf and curve["threshold"].iloc[-1] == np.inf
    assert len(curve) == len(np.unique(d["score_a"])) + 1
    fpr = 1 - curve["specificity"].to_numpy()[::-1]
    tpr = curve["sensitivity"].to_numpy()[::-1]
    trapezoid = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert trapezoid == pytest.approx(auc_ci(d["y"], d["score_a"]).auc, rel=1e-12)


def test_classification_metrics_undefined_ratios_are_nan():
    res = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4], threshold=0.9)
    assert res.tp == res.fp == 0 and res.tn == 2 and res.fn == 2
    assert np.isnan(res.ppv) and all(np.isnan(res.ppv_ci))
    assert res.specificity == 1.0 and res.sensitivity == 0.0
    only_neg = classification_metrics([0, 0, 0], [0.1, 0.5, 0.9], threshold=0.5)
    assert np.isnan(only_neg.sensitivity) and only_neg.specificity == pytest.approx(1 / 3)


def test_classification_threshold_is_inclusive():
    res = classification_metrics([0, 1, 1], [0.2, 0.5, 0.7], threshold=0.5)
    assert res.tp == 2 and res.fp == 0
