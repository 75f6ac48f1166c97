"""ICC and Cohen's kappa against psych ICC / cohen.kappa (reference values from R)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats import ICC_FORMS, cohen_kappa, icc, icc_many, icc_values

REFERENCE = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_b.json").read_text())
ICC_CASES = REFERENCE["icc"]
KAPPA_CASES = REFERENCE["kappa"]
FIELDS = ("icc", "low", "high", "F", "df1", "df2", "p")


@pytest.mark.parametrize("case", ICC_CASES, ids=[c["name"] for c in ICC_CASES])
@pytest.mark.parametrize("form", ICC_FORMS)
def test_icc_matches_psych_anova(case, form):
    res = icc(case["ratings"], form)
    ref = case["anova"][form]
    assert res.form == form
    for field in FIELDS:
        assert getattr(res, field) == pytest.approx(ref[field], rel=1e-6, abs=1e-12), field


@pytest.mark.parametrize("case", ICC_CASES, ids=[c["name"] for c in ICC_CASES])
@pytest.mark.parametrize("form", ICC_FORMS)
def test_icc_reml_matches_psych_lmer_default(case, form):
    # lme4's optimiser stops near the REML optimum, so the agreement is to its tolerance only.
    res = icc(case["ratings"], form, method="reml")
    ref = case["reml"][form]
    for field in ("icc", "low", "high"):
        assert getattr(res, field) == pytest.approx(ref[field], abs=2e-4), field
    assert res.F == pytest.approx(ref["F"], rel=1e-3)
    assert res.p == pytest.approx(ref["p"], rel=5e-3, abs=1e-10)


def test_reml_equals_anova_when_components_positive():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(40, 1)) * 2 + rng.normal(size=(1, 3)) + rng.normal(size=(40, 3)) * 0.5
    for form in ICC_FORMS:
        a, r = icc(x, form), icc(x, form, method="reml")
        assert r.icc == pytest.approx(a.icc, rel=1e-12)
        assert r.low == pytest.approx(a.low, rel=1e-12)


@pytest.mark.parametrize("case", REFERENCE["icc_many"], ids=[c["name"] for c in REFERENCE["icc_many"]])
@pytest.mark.parametrize("form", ICC_FORMS)
def test_icc_many_matches_psych_per_feature(case, form):
    ratings = np.asarray(case["ratings"], dtype=float)
    table = icc_many(ratings, form)
    ref = case["ref"][form]
    assert list(table.columns) == list(FIELDS)
    for col in ("icc", "low", "high", "F", "p"):
        np.testing.assert_allclose(table[col].to_numpy(), ref[col], rtol=1e-6, atol=1e-12, err_msg=col)


@pytest.mark.parametrize("method", ["anova", "reml"])
def test_icc_many_equals_loop_and_flags_degenerate_features(method):
    rng = np.random.default_rng(7)
    n, k, m = 20, 3, 12
    x = rng.normal(size=(n, 1, m)) + rng.normal(size=(1, k, m)) * 0.3 + rng.normal(size=(n, k, m)) * 0.6
    x[:, :, 4] = 3.3  # constant feature
    x[:, :, 7] = np.round(x[:, :, 7], 1)
    names = [f"f{i}" for i in range(m)]
    table = icc_many(x, "ICC3", features=names, method=method)
    assert table.index.tolist() == names
    assert table.loc["f4"].isna().all()
    for j in range(m):
        if j == 4:
            with pytest.raises(StatsError, match="identical"):
                icc(x[:, :, j], "ICC3", method=method)
            continue
        single = icc(x[:, :, j], "ICC3", method=method)
        for field in FIELDS:
            assert table.loc[names[j], field] == pytest.approx(getattr(single, field), rel=1e-12)


@pytest.mark.parametrize("method", ["anova", "reml"])
@pytest.mark.parametrize("form", ICC_FORMS)
def test_icc_values_are_icc_many_point_estimates(form, method):
    # the reproducibility filter's shortcut: the same computation, so the same numbers to the bit
    rng = np.random.default_rng(11)
    x = rng.normal(size=(25, 1, 9)) + rng.normal(size=(1, 2, 9)) * 0.4 + rng.normal(size=(25, 2, 9)) * 0.5
    x[:, :, 2] = -1.5  # constant: NaN
    x[:, 1, 5] = x[:, 0, 5]  # perfect agreement
    values = icc_values(x, form, method=method)
    np.testing.assert_array_equal(values, icc_many(x, form, method=method)["icc"].to_numpy())
    assert np.isnan(values[2]) and values[5] == 1.0


def test_perfect_agreement():
    x = np.repeat(np.arange(10.0)[:, None], 2, axis=1)
    for form in ICC_FORMS:
        res = icc(x, form)
        assert res.icc == 1.0 and res.p == 0.0 and math.isinf(res.F)
        assert res.low == pytest.approx(1.0) and res.high == pytest.approx(1.0)
    # a constant rater offset is perfect consistency (ICC3) but not absolute agreement (ICC2)
    shifted = np.column_stack([np.arange(10.0), np.arange(10.0) + 2])
    assert icc(shifted, "ICC3").icc == pytest.approx(1.0)
    assert icc(shifted, "ICC2").icc < 0.9


def test_icc_accepts_dataframe_and_names_bad_feature():
    df = pd.DataFrame({"reader1": [1.0, 2.0, 3.0, 4.0], "reader2": [1.1, 2.2, 2.9, 4.2]})
    assert icc(df).icc == pytest.approx(icc(df.to_numpy()).icc)
    x = np.ones((5, 2, 3)) + np.arange(5.0)[:, None, None]
    x[2, 1, 1] = np.nan
    with pytest.raises(StatsError, match="feature.*: texture"):
        icc_many(x, features=["shape", "texture", "glcm"])


@pytest.mark.parametrize(
    ("ratings", "kwargs", "message"),
    [
        (np.ones((1, 2)), {}, "at least 2 subjects"),
        (np.ones((5, 1)), {}, "at least 2 raters"),
        (np.ones(5), {}, "2-D array"),
        ([[1.0, np.nan], [2.0, 2.0]], {}, "missing"),
        ([[1.0, 2.0], [2.0, 2.0]], {"form": "ICC4"}, "unknown ICC form"),
        ([[1.0, 2.0], [2.0, 2.0]], {"method": "lmer"}, "unknown ICC method"),
    ],
)
def test_icc_bad_input(ratings, kwargs, message):
    with pytest.raises(StatsError, match=message):
        icc(ratings, **kwargs)


def test_icc_many_bad_names():
    with pytest.raises(StatsError, match="2 names given for 3 features"):
        icc_many(np.zeros((4, 2, 3)), features=["a", "b"])


@pytest.mark.parametrize("case", KAPPA_CASES, ids=[c["name"] for c in KAPPA_CASES])
def test_kappa_matches_psych(case):
    res = cohen_kappa(case["a"], case["b"])
    assert res.n == len(case["a"])
    assert res.kappa == pytest.approx(case["kappa"], rel=1e-6, abs=1e-12)
    assert res.low == pytest.approx(case["low"], rel=1e-6, abs=1e-12)
    assert res.high == pytest.approx(case["high"], rel=1e-6, abs=1e-12)
    assert res.se**2 == pytest.approx(case["var"], rel=1e-6, abs=1e-15)


def test_kappa_is_symmetric_and_label_invariant():
    case = next(c for c in KAPPA_CASES if c["name"] == "n50_3level")
    a, b = np.asarray(case["a"]), np.asarray(case["b"])
    k = cohen_kappa(a, b)
    assert cohen_kappa(b, a).kappa == pytest.approx(k.kappa)
    renamed = {1: "low", 2: "mid", 3: "high"}
    k2 = cohen_kappa([renamed[v] for v in a], [renamed[v] for v in b])
    assert (k2.kappa, k2.low, k2.high) == pytest.approx((k.kappa, k.low, k.high))


@pytest.mark.parametrize(
    ("a", "b", "message"),
    [
        ([1, 1, 1], [1, 1, 1], "single label"),
        ([1, 0, 1], [1, 0], "length 2 does not match"),
        ([1, None, 1], [1, 0, 1], "a: 1 missing"),
        ([1, 0, 1], [1, 0, float("nan")], "b: 1 missing"),
    ],
)
def test_kappa_bad_input(a, b, message):
    with pytest.raises(StatsError, match=message):
        cohen_kappa(a, b)
