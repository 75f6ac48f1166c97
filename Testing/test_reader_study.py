"""Reader study: reads validation, McNemar as R, metrics/kappa as the stats API, simulated reads."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from ALNMPredictorLib import stats
from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.reader_study import (
    STUDY_READERS,
    load_reads,
    mcnemar_test,
    reader_study,
    simulate_reads,
    validate_reads,
)


def _write(tmp_path, text: str):
    path = tmp_path / "reads.csv"
    path.write_text(text)
    return path


def test_load_reads_accepts_a_good_file(tmp_path) -> None:
    path = _write(
        tmp_path,
        "case_id,reader,session,call,confidence\n007,A,unaided,1,4\n007,A,Aided ,0,2\n008,A,unaided,0,1\n008,A,aided,0,1\n",
    )
    reads = load_reads(path)
    assert list(reads["case_id"]) == ["007", "007", "008", "008"]  # leading zeros kept
    assert list(reads["session"]) == ["unaided", "aided", "unaided", "aided"]
    assert reads["call"].dtype.kind == "i" and reads["confidence"].dtype.kind == "f"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("case_id,reader,call\nc1,A,1\n", "column session"),
        ("case_id,reader,session,call\n", "no rows"),
        (
            "case_id,reader,session,call\nc1,A,unaided,1\nc2,A,before,0\n",
            r"case c2, column session.*row 2 \(line 3\).*'before'",
        ),
        ("case_id,reader,session,call\nc1,A,unaided,2\n", r"case c1, column call.*0 or 1, got 2"),
        ("case_id,reader,session,call\nc1,A,unaided,yes\n", r"column call.*'yes'"),
        (
            "case_id,reader,session,call\nc1,A,unaided,1\nc1,A,unaided,0\n",
            r"case c1, column case_id.*row 2 \(line 3\).*reader A read this case twice",
        ),
        (
            "case_id,reader,session,call,confidence\nc1,A,unaided,1,0.9\nc2,A,unaided,0,\n",
            r"case c2, column confidence.*some",
        ),
        (
            "case_id,reader,session,call,confidence\nc1,A,unaided,1,high\n",
            r"column confidence.*number.*'high'",
        ),
        ("case_id,reader,session,call\nc1,,unaided,1\n", r"column reader.*row 1.*empty"),
    ],
)
def test_load_reads_errors_name_row_case_column(tmp_path, text: str, pattern: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=pattern) as info:
        load_reads(path)
    assert "reads.csv" in str(info.value)


def test_load_reads_missing_file(tmp_path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_reads(tmp_path / "none.csv")


def test_mcnemar_matches_r() -> None:
    # R: a <- c(rep(1,30), rep(1,12), rep(0,4), rep(0,25)); b <- c(rep(1,30), rep(0,12), rep(1,4), rep(0,25))
    #    mcnemar.test(table(a, b))                 -> McNemar's chi-squared = 3.0625, p-value = 0.0801183137276343
    #    mcnemar.test(table(a, b), correct=FALSE)  -> 4, p-value = 0.0455002638963585
    #    binom.test(12, 16)$p.value                -> 0.076812744140625
    a = np.r_[np.ones(42), np.zeros(29)]
    b = np.r_[np.ones(30), np.zeros(12), np.ones(4), np.zeros(25)]
    res = mcnemar_test(a, b)
    assert (res.b, res.c) == (12, 4)
    assert res.statistic == pytest.approx(3.0625, rel=1e-12)
    assert res.p == pytest.approx(0.0801183137276343, rel=1e-10)
    assert res.exact_p == pytest.approx(0.076812744140625, rel=1e-10)
    raw = mcnemar_test(a, b, correct=False)
    assert (raw.statistic, raw.p) == pytest.approx((4.0, 0.0455002638963585), rel=1e-10)
    # R: mcnemar.test(table(c(1,1,0,0,1,0), c(0,0,1,1,1,0))) -> statistic 0, p-value 1 (no correction when b == c)
    tie = mcnemar_test([1, 1, 0, 0, 1, 0], [0, 0, 1, 1, 1, 0])
    assert (tie.statistic, tie.p) == (0.0, 1.0)
    none = mcnemar_test([1, 0], [1, 0])
    assert np.isnan(none.p) and none.exact_p == 1.0


def _reads_fixture(seed: int = 0, n: int = 80, confidence: bool = True) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    ids = [f"c{i:03d}" for i in range(n)]
    y = (rng.random(n) < 0.45).astype(int)
    labels = pd.Series(y.astype(float), index=ids)
    rows = []
    for reader, noise in (("A", 1.2), ("B", 0.9)):
        base = 1.2 * y + rng.normal(0, noise, n)
        for session, shift in (("unaided", 0.0), ("aided", 0.8)):
            score = base + shift * (2 * y - 1) + rng.normal(0, 0.3, n)
            part = pd.DataFrame(
                {"case_id": ids, "reader": reader, "session": session, "call": (score > 0.6).astype(int)}
            )
            if confidence:
                part["confidence"] = np.round(expit(score), 3)
            rows.append(part)
    return validate_reads(pd.concat(rows, ignore_index=True)), labels


def test_reader_study_equals_stats_api() -> None:
    reads, labels = _reads_fixture()
    out = reader_study(reads, labels)
    rm = out["reader_metrics"].set_index(["reader", "session"])
    for (reader, session), grp in reads.groupby(["reader", "session"]):
        y = labels[grp["case_id"]].to_numpy()
        auc = stats.auc_ci(y, grp["confidence"])
        m = stats.classification_metrics(y, grp["call"], 0.5)
        row = rm.loc[(reader, session)]
        assert (row["auc"], row["auc_low"], row["auc_high"]) == pytest.approx(
            (auc.auc, auc.low, auc.high), rel=1e-12
        )
        assert (row["accuracy"], row["sensitivity"], row["specificity"]) == pytest.approx(
            (m.accuracy, m.sensitivity, m.specificity)
        )
        assert row["auc_of"] == "confidence"
    tests = out["reader_tests"].set_index("reader")
    un = reads[(reads["reader"] == "A") & (reads["session"] == "unaided")]
    ai = reads[(reads["reader"] == "A") & (reads["session"] == "aided")]
    y = labels[un["case_id"]].to_numpy()
    dl = stats.delong_test(y, ai["confidence"], un["confidence"])
    assert tests.loc["A", "delong_p"] == pytest.approx(dl.p, rel=1e-12)
    mc = mcnemar_test(un["call"].to_numpy() == y, ai["call"].to_numpy() == y)
    assert (tests.loc["A", "mcnemar_stat"], tests.loc["A", "mcnemar_p"]) == pytest.approx(
        (mc.statistic, mc.p)
    )
    assert tests.loc["A", "acc_aided"] == pytest.approx(np.mean(ai["call"].to_numpy() == y))
    kap = out["reader_kappa"].set_index("session")
    for session in ("unaided", "aided"):
        a = reads[(reads["reader"] == "A") & (reads["session"] == session)]["call"]
        b = reads[(reads["reader"] == "B") & (reads["session"] == session)]["call"]
        k = stats.cohen_kappa(a.to_numpy(), b.to_numpy())
        assert (
            kap.loc[session, "kappa"],
            kap.loc[session, "low"],
            kap.loc[session, "high"],
        ) == pytest.approx((k.kappa, k.low, k.high))


def test_reader_auc_from_calls_without_confidence() -> None:
    reads, labels = _reads_fixture(confidence=False)
    rm = reader_study(reads, labels)["reader_metrics"]
    row = rm.iloc[0]
    assert row["auc_of"] == "call"
    # the AUC of a 0/1 call is (sensitivity + specificity) / 2, as pROC gives
    assert row["auc"] == pytest.approx((row["sensitivity"] + row["specificity"]) / 2)


def test_reads_of_unknown_cases_name_the_case() -> None:
    reads, labels = _reads_fixture()
    with pytest.raises(InputError, match="case c005.*not in the predictions"):
        reader_study(reads, labels.drop("c005"))
    labels = labels.copy()
    labels["c007"] = np.nan
    with pytest.raises(InputError, match="case c007, column label"):
        reader_study(reads, labels)


def _predictions(n: int, seed: int = 0, prevalence: float = 0.462) -> pd.DataFrame:
    """A prospective split with a study-like model: SEN 0.76 and SPE 0.92 at the cut-off 0.701."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < prevalence).astype(int)
    lg = np.where(y == 1, rng.normal(1.70, 1.2, n), rng.normal(-0.84, 1.2, n))
    prob = expit(lg)
    return pd.DataFrame(
        {
            "case_id": [f"p{i}" for i in range(n)],
            "split": "prospective",
            "label": y.astype(float),
            "status": "ok",
            "prob_clinical_radiomics": prob,
            "risk_group": np.where(prob >= 0.701, "high", "low"),
        }
    )


def test_simulate_reads_hits_study_operating_points() -> None:
    pred = _predictions(20000)
    reads = simulate_reads(pred, seed=0, cutoff=0.701)
    assert set(reads.columns) == {"case_id", "reader", "session", "call"}
    assert reads.attrs["simulated"] is True
    assert all(r.endswith("(simulated)") for r in reads["reader"])
    validate_reads(reads)  # the CSV format
    out = reader_study(reads, pred.set_index("case_id")["label"])
    rm = out["reader_metrics"].set_index(["reader", "session"])
    for profile in STUDY_READERS:
        row = rm.loc[(profile.name, "unaided")]
        assert row["accuracy"] == pytest.approx(profile.accuracy, abs=0.015)
        assert row["specificity"] == pytest.approx(profile.specificity, abs=0.015)
        aided = rm.loc[(profile.name, "aided")]
        assert aided["accuracy"] > row["accuracy"] + 0.05
        assert aided["auc"] > row["auc"] + 0.05
    kappa = out["reader_kappa"].set_index("session")["kappa"]
    assert kappa["unaided"] == pytest.approx(0.557, abs=0.03)
    assert kappa["aided"] > kappa["unaided"]


def test_simulate_reads_is_deterministic_and_checks_inputs() -> None:
    pred = _predictions(300, seed=4)
    a = simulate_reads(pred, seed=5)  # cut-off inferred from the risk groups
    b = simulate_reads(pred, seed=5)
    c = simulate_reads(pred, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["call"].equals(c["call"])
    conf = simulate_reads(pred, seed=5, confidence=True)
    assert ((conf["confidence"] >= 0.5) == (conf["call"] == 1)).mean() > 0.99
    with pytest.raises(InputError, match="split 'nope'"):
        simulate_reads(pred, split="nope")
    one = pred.assign(label=1.0)
    with pytest.raises(InputError, match="one outcome class"):
        simulate_reads(one)
    with pytest.raises(InputError, match="prob_clinical_radiomics"):
        simulate_reads(pred.drop(columns="prob_clinical_radiomics"))
