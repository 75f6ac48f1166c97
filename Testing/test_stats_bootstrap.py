"""Seeded percentile bootstrap: reproducibility, stratification, coverage and failure handling."""

from __future__ import annotations

import numpy as np
import pytest

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats import auc_ci, bootstrap_ci, bootstrap_indices


def mean(x):
    return float(np.mean(x))


def test_same_seed_is_bit_for_bit_identical():
    rng = np.random.default_rng(0)
    x = rng.normal(size=200)
    a = bootstrap_ci(mean, x, n_boot=300, seed=7)
    b = bootstrap_ci(mean, x, n_boot=300, seed=7)
    c = bootstrap_ci(mean, x, n_boot=300, seed=8)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)


def test_percentile_ci_of_a_mean_is_close_to_normal_theory():
    rng = np.random.default_rng(1)
    x = rng.normal(loc=3.0, scale=2.0, size=400)
    res = bootstrap_ci(mean, x, n_boot=2000, seed=0)
    half = 1.96 * x.std(ddof=1) / np.sqrt(x.size)
    assert res.estimate == pytest.approx(x.mean())
    assert res.low == pytest.approx(x.mean() - half, abs=0.03)
    assert res.high == pytest.approx(x.mean() + half, abs=0.03)
    assert res.se == pytest.approx(half / 1.96, rel=0.1)
    assert res.n_failed == 0 and res.n_boot == 2000


def test_stratified_resamples_keep_class_sizes():
    y = np.array([1] * 7 + [0] * 23)
    idx = bootstrap_indices(y.size, 50, seed=3, stratify=y)
    assert idx.shape == (50, 30)
    assert (y[idx].sum(axis=1) == 7).all()


def test_auc_bootstrap_agrees_with_delong():
    rng = np.random.default_rng(2)
    y = rng.random(300) < 0.4
    s = rng.normal(size=300) + y
    res = bootstrap_ci(lambda yy, ss: auc_ci(yy, ss).auc, y, s, n_boot=500, seed=0, stratify=y)
    delong = auc_ci(y, s)
    assert res.estimate == delong.auc
    assert res.low == pytest.approx(delong.low, abs=0.02)
    assert res.high == pytest.approx(delong.high, abs=0.02)


def test_failed_resamples_are_counted_or_reported():
    y = np.array([1, 1] + [0] * 10)
    s = np.arange(12.0)
    res = bootstrap_ci(lambda yy, ss: auc_ci(yy, ss).auc, y, s, n_boot=200, seed=0)
    assert 0 < res.n_failed < 100  # one-class resamples (about (10/12)^12 = 11%) are skipped
    with pytest.raises(StatsError, match="failed on 50 of 50"):
        bootstrap_ci(lambda v: float("nan"), s, n_boot=50)


def test_bad_arguments():
    with pytest.raises(StatsError, match="array 2 has"):
        bootstrap_ci(mean, np.ones(5), np.ones(4))
    with pytest.raises(StatsError, match="argument n_boot"):
        bootstrap_ci(mean, np.ones(5), n_boot=1)
    with pytest.raises(StatsError, match="argument stratify"):
        bootstrap_ci(mean, np.ones(5), stratify=[0, 1])
