"""NRI and IDI against Hmisc improveProb and PredictABEL reclassification (reference values from R)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats import idi, nri

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_b.json").read_text())
CASES = REFERENCE["improveprob"]


def assert_close(actual: float, expected: float | None, name: str) -> None:
    if expected is None:  # NaN in R
        assert math.isnan(actual), f"{name}: expected NaN, got {actual}"
    else:
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-12), name


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_continuous_nri_matches_hmisc(case):
    ref = case["continuous"]
    res = nri(case["y"], case["p_old"], case["p_new"])
    assert not res.categorical
    for field, key in [
        ("nri", "nri"),
        ("se", "se"),
        ("p", "p"),
        ("low", "low"),
        ("high", "high"),
        ("nri_events", "nri_events"),
        ("se_events", "se_events"),
        ("nri_nonevents", "nri_nonevents"),
        ("se_nonevents", "se_nonevents"),
    ]:
        assert_close(getattr(res, field), ref[key], f"{case['name']}.{field}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_idi_matches_hmisc(case):
    ref = case["continuous"]
    res = idi(case["y"], case["p_old"], case["p_new"])
    for field, key in [
        ("idi", "idi"),
        ("se", "se_idi"),
        ("p", "p_idi"),
        ("low", "low_idi"),
        ("high", "high_idi"),
    ]:
        assert_close(getattr(res, field), ref[key], f"{case['name']}.{field}")


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_categorical_nri_matches_predictabel(case):
    ref = case["categorical"]
    inner = nri(case["y"], case["p_old"], case["p_new"], cutoffs=case["cutoffs"])
    # PredictABEL spells the cut-offs with 0 and 1 included: same categories.
    full = nri(case["y"], case["p_old"], case["p_new"], cutoffs=[0.0, *case["cutoffs"], 1.0])
    for res in (inner, full):
        assert res.categorical
        for field in ("nri", "se", "p", "low", "high", "nri_events", "nri_nonevents"):
            assert_close(getattr(res, field), ref[field], f"{case['name']}.{field}")


def test_hand_computed_example():
    y = [1, 1, 1, 0, 0, 0, 0]
    old = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]
    new = [0.6, 0.7, 0.4, 0.2, 0.6, 0.5, 0.3]
    res = nri(y, old, new)
    # events: 2 up, 1 down -> 1/3; non-events: 2 down, 1 up -> 1/4
    assert res.nri_events == pytest.approx(1 / 3)
    assert res.nri_nonevents == pytest.approx(1 / 4)
    assert res.nri == pytest.approx(7 / 12)
    v_ev = 3 / 9 - 1 / 27
    v_ne = 3 / 16 - 1 / 64
    assert res.se == pytest.approx(math.sqrt(v_ev + v_ne))
    # categorical at 0.45/0.55: events 0.6, 0.7 up and 0.4 down; non-events 0.2, 0.3 down and 0.6 up
    cat = nri(y, old, new, cutoffs=[0.45, 0.55])
    assert cat.nri_events == pytest.approx(1 / 3)
    assert cat.nri_nonevents == pytest.approx((2 - 1) / 4)
    d = idi(y, old, new)
    assert d.idi == pytest.approx(np.mean([0.1, 0.2, -0.1]) - np.mean([-0.3, 0.1, 0.0, -0.2]))


def test_cutoff_boundaries_are_closed_on_the_left():
    # R cut(right = FALSE): 0.2 belongs to [0.2, 0.4); 1.0 to the last, closed category.
    y = [1, 0, 1, 0]
    res = nri(y, [0.19, 0.2, 0.39, 0.99], [0.2, 0.19, 0.4, 1.0], cutoffs=[0.2, 0.4])
    assert res.nri_events == pytest.approx(1.0)  # both events move up a category
    assert res.nri_nonevents == pytest.approx(0.5)  # one of two non-events moves down


def test_unchanged_predictions_give_nan_p():
    y = [0, 1, 0, 1, 1]
    p = [0.1, 0.8, 0.3, 0.6, 0.9]
    res = nri(y, p, p)
    assert res.nri == 0 and res.se == 0 and math.isnan(res.p)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (([1, 1, 1], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), {}, "argument y: only events"),
        (([0, 1, 2], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), {}, "must be 0/1, found 2"),
        (([0, 1, 1], [0.1, 0.2], [0.2, 0.3, 0.4]), {}, "p_old: has 2 values but y has 3"),
        (([0, 1, 1], [0.1, 0.2, 0.3], [0.2, float("nan"), 0.4]), {}, "p_new: 1 missing"),
        (([0, 1, 1], [0.1, 0.2, 1.3], [0.2, 0.3, 0.4]), {}, "p_old: probabilities"),
        (([0, 1, 1], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), {"cutoffs": [0.5, 0.2]}, "strictly increasing"),
        (([0, 1, 1], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), {"cutoffs": [1.5]}, "cutoffs"),
        (([0, 1, None], [0.1, 0.2, 0.3], [0.2, 0.3, 0.4]), {}, "y: 1 missing"),
    ],
)
def test_nri_bad_input(args, kwargs, message):
    with pytest.raises(StatsError, match=message):
        nri(*args, **kwargs)


def test_idi_needs_two_per_class():
    with pytest.raises(StatsError, match="at least 2 events"):
        idi([1, 0, 0, 0], [0.1, 0.2, 0.3, 0.4], [0.2, 0.2, 0.3, 0.4])
