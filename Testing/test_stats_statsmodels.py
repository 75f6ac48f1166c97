"""Independent cross-checks against statsmodels: the logistic fits, the backward-stepwise steps and lowess.

The R fixtures are the references these functions are built to equal; statsmodels is a second, independently
written implementation of the same estimators, so a disagreement here flags a bug neither fixture covers.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

sm = pytest.importorskip("statsmodels.api", reason="statsmodels is in the [test] extra")
from statsmodels.nonparametric.smoothers_lowess import lowess as sm_lowess  # noqa: E402

from ALNMPredictorLib.stats import backward_stepwise, logistic_fit  # noqa: E402
from ALNMPredictorLib.stats.calibration import lowess  # noqa: E402

# Both fit the same likelihood to convergence (ours: R's glm criterion at 1e-8 relative deviance change, then
# restarted at the estimate; statsmodels: Newton to 1e-10): coefficients agree far below 1e-6 relative, and
# SEs, p-values and deviances are smooth functions of them.
RTOL = 1e-6


def _cohort(seed: int, n: int = 300) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    table = pd.DataFrame(
        {
            "age": rng.normal(52, 10, n).round(0),
            "size": rng.gamma(2.0, 1.2, n).round(2),
            "score": rng.normal(0, 1, n),
            "noise1": rng.normal(0, 1, n),
            "noise2": rng.normal(0, 1, n),
            "margin": rng.choice(["circumscribed", "irregular", "spiculated"], n, p=[0.5, 0.3, 0.2]),
        }
    )
    eta = -4.5 + 0.05 * table["age"] + 0.4 * table["size"] + 1.1 * table["score"]
    eta += table["margin"].map({"circumscribed": 0.0, "irregular": 0.7, "spiculated": 1.2})
    y = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float)
    return table, y


def _dummies(table: pd.DataFrame) -> pd.DataFrame:
    out = table.drop(columns="margin").copy()
    for level in ("irregular", "spiculated"):
        out[f"margin[{level}]"] = (table["margin"] == level).astype(float)
    return sm.add_constant(out, prepend=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logistic_fit_equals_statsmodels_logit(seed: int) -> None:
    table, y = _cohort(seed)
    ours = logistic_fit(table, y)
    ref = sm.Logit(y, _dummies(table)).fit(method="newton", tol=1e-12, maxiter=100, disp=False)
    assert len(ours) == len(ref.params)
    np.testing.assert_allclose(ours["coef"].to_numpy(), ref.params.to_numpy(), rtol=RTOL, atol=1e-9)
    np.testing.assert_allclose(ours["se"].to_numpy(), ref.bse.to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ours["p"].to_numpy(), ref.pvalues.to_numpy(), rtol=1e-5, atol=1e-12)
    assert ours.attrs["deviance"] == pytest.approx(-2 * ref.llf, rel=1e-10)
    # ours is closed form; statsmodels fits the null model iteratively at its default tolerance (1e-10 relative seen)
    assert ours.attrs["null_deviance"] == pytest.approx(-2 * ref.llnull, rel=1e-8)
    low, high = np.exp(ref.conf_int().to_numpy()).T
    np.testing.assert_allclose(ours["or_low"].to_numpy(), low, rtol=RTOL)
    np.testing.assert_allclose(ours["or_high"].to_numpy(), high, rtol=RTOL)


@pytest.mark.parametrize("test", ["wald", "lr"])
def test_each_backward_stepwise_step_equals_statsmodels_refits(test: str) -> None:
    table, y = _cohort(3)
    data = table.assign(y=y)
    result = backward_stepwise(
        data,
        "y",
        ["age", "size", "score", "noise1", "noise2", "margin"],
        0.05,
        test=test,
        categorical=["margin"],
        reference={"margin": "circumscribed"},
    )
    assert len(result.steps) >= 1  # the two noise columns are candidates to go
    remaining = ["age", "size", "score", "noise1", "noise2", "margin"]
    design = _dummies(table)
    columns = {v: [c for c in design.columns if c == v or c.startswith(f"{v}[")] for v in remaining}

    def fit(variables: list[str]):
        return sm.Logit(y, design[["const", *[c for v in variables for c in columns[v]]]]).fit(
            method="newton", tol=1e-12, maxiter=100, disp=False
        )

    for step in result.steps.to_dict(orient="records") + [None]:
        full = fit(remaining)
        pvals = {}
        for var in remaining:
            if test == "wald":
                restriction = np.zeros((len(columns[var]), len(full.params)))
                for k, c in enumerate(columns[var]):
                    restriction[k, list(full.params.index).index(c)] = 1.0
                pvals[var] = float(full.wald_test(restriction, scalar=True).pvalue)
            else:
                reduced = fit([v for v in remaining if v != var])
                pvals[var] = float(chi2.sf(2 * (full.llf - reduced.llf), len(columns[var])))
        worst = max(pvals, key=pvals.get)
        if step is None:  # stopped: every variable left is below the threshold
            assert pvals[worst] <= 0.05 and tuple(remaining) == result.selected
            break
        assert step["removed"] == worst and step["p"] == pytest.approx(pvals[worst], rel=1e-5)
        remaining.remove(worst)
    np.testing.assert_allclose(
        result.fit["coef"].to_numpy(), fit(remaining).params.to_numpy(), rtol=RTOL, atol=1e-9
    )


def test_lowess_near_statsmodels_which_skips_delta_points_differently() -> None:
    """Our lowess equals R's clowess to 1e-14 (Testing/test_stats_calibration.py). statsmodels' lowess is
    the same local linear fit but interpolates the points within ``delta`` by its own rule: without ties it
    can differ from R by a few 1e-6 (seen at n = 200), so it is a cross-check, not the reference."""
    rng = np.random.default_rng(0)
    for n, ties in ((20, False), (57, True), (200, False), (1000, True)):
        x = rng.random(n)
        if ties:
            x = np.round(x, 1)
        y = (rng.random(n) < x).astype(float)
        ours = lowess(x, y)["y"].to_numpy()
        ref = sm_lowess(y, x, frac=2 / 3, it=0, delta=0.01 * (x.max() - x.min()), return_sorted=True)[:, 1]
        np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5, err_msg=f"n={n}")
        if ties:  # with ties every point is a fit point in both: the same numbers
            np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-12, err_msg=f"n={n}")
