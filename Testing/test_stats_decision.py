"""Net benefit and clinical impact against rmda's formulas (written out in base R, rmda not in Debian).

Reference values: Testing/fixtures/stats_reference_a.json, made by Testing/R/stats_reference_a.R.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ALNMPredictorLib.errors import StatsError
from ALNMPredictorLib.stats import DEFAULT_THRESHOLDS, clinical_impact, net_benefit

REF = json.loads((Path(__file__).parent / "fixtures" / "stats_reference_a.json").read_text())
DATA = REF["datasets"]
NB = REF["reference"]["net_benefit"]


def close(actual, expected, what: str) -> None:
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-12, err_msg=what)


def test_reference_covers_enough_datasets():
    assert len({e["dataset"] for e in NB}) >= 10


@pytest.mark.parametrize("ref", NB, ids=[e["dataset"] for e in NB])
def test_net_benefit_matches_rmda(ref):
    d = DATA[ref["dataset"]]
    curve = net_benefit(d["y"], d["prob"], ref["threshold"])
    assert list(curve.columns[:3]) == ["threshold", "net_benefit", "net_benefit_all"]
    for col in ("threshold", "net_benefit", "net_benefit_all", "standardized_net_benefit", "tpr", "fpr"):
        close(curve[col].to_numpy(), ref[col], col)
    assert (curve["net_benefit_none"] == 0).all()


@pytest.mark.parametrize("ref", NB, ids=[e["dataset"] for e in NB])
def test_clinical_impact_matches_rmda(ref):
    d = DATA[ref["dataset"]]
    curve = clinical_impact(d["y"], d["prob"], ref["threshold"], population=1000)
    assert list(curve.columns) == ["threshold", "high_risk", "high_risk_events"]
    close(curve["high_risk"].to_numpy(), ref["high_risk"], "high_risk")
    close(curve["high_risk_events"].to_numpy(), ref["high_risk_events"], "high_risk_events")


def test_high_risk_is_strictly_above_threshold():
    y = [1, 0, 1, 0]
    prob = [0.2, 0.2, 0.6, 0.1]
    curve = net_benefit(y, prob, [0.2])
    # only the case at 0.6 is above 0.2: TP/n = 1/4, FP/n = 0
    assert curve["net_benefit"].iloc[0] == pytest.approx(0.25)
    assert clinical_impact(y, prob, [0.2], population=100)["high_risk"].iloc[0] == pytest.approx(25)


def test_default_thresholds_and_treat_all_line():
    d = DATA["n300"]
    curve = net_benefit(d["y"], d["prob"])
    assert curve["threshold"].tolist() == DEFAULT_THRESHOLDS.tolist()
    rho = np.mean(d["y"])
    assert curve["net_benefit_all"].iloc[0] == pytest.approx(rho)
    assert curve["standardized_net_benefit"].to_numpy() == pytest.approx(curve["net_benefit"] / rho)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(StatsError, match=r"argument thresholds: must lie in \[0, 1\), found 1"):
        net_benefit([0, 1], [0.2, 0.8], [0.5, 1.0])
    with pytest.raises(StatsError, match=r"argument y: only non-events"):
        net_benefit([0, 0], [0.2, 0.8], [0.5])
    with pytest.raises(StatsError, match=r"argument prob: .*position 1"):
        clinical_impact([0, 1], [0.2, np.nan], [0.5])
    with pytest.raises(StatsError, match=r"argument population"):
        clinical_impact([0, 1], [0.2, 0.8], [0.5], population=0)
