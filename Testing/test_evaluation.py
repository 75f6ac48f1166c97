"""Evaluation tables: every number equals the stats API on the same predictions; edge cases warn."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.special import logit

from ALNMPredictorLib import stats
from ALNMPredictorLib.errors import InputError
from ALNMPredictorLib.evaluation import (
    EvaluationResult,
    baseline_table,
    evaluate,
)
from ALNMPredictorLib.modeling import fit_logistic_model

SPLITS = {"train": 320, "internal": 110, "external": 160, "prospective": 120}
MODELS = ["clinical", "tumor_score", "ln_score", "clinical_radiomics"]


def _cohort(seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split, n in SPLITS.items():
        y = rng.random(n) < 0.55
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "label": y.astype(int),
                    "tumor_size": rng.normal(2.5 + 0.5 * y, 1.0),
                    "age": rng.normal(54, 10, n).round(),
                    "us_alnm": np.where(rng.random(n) < np.where(y, 0.7, 0.35), "present", "absent"),
                    "histology": np.where(rng.random(n) < 0.04, "other", "nst"),
                    "tumor_score": rng.normal(0.9 * y, 1.0),
                    "ln_score": rng.normal(1.8 * y, 1.0),
                }
            )
        )
    data = pd.concat(parts, ignore_index=True)
    data.index = pd.Index([f"P{i:04d}" for i in range(len(data))], name="case_id")
    return data


@pytest.fixture(scope="module")
def setup() -> dict:
    data = _cohort()
    train = data[data["split"] == "train"]
    y = train["label"].to_numpy()
    models = {
        "clinical": fit_logistic_model(
            "clinical", train, y, ["tumor_size", "us_alnm", "age"], categorical=["us_alnm"]
        ),
        "tumor_score": fit_logistic_model(
            "tumor_score", train, y, ["tumor_score"], screen_p=None, stepwise_p=0.999
        ),
        "ln_score": fit_logistic_model("ln_score", train, y, ["ln_score"], screen_p=None, stepwise_p=0.999),
        "clinical_radiomics": fit_logistic_model(
            "clinical_radiomics",
            train,
            y,
            ["tumor_score", "ln_score", "tumor_size", "us_alnm", "age"],
            categorical=["us_alnm"],
        ),
    }
    pred = data[["split", "label", "tumor_score", "ln_score"]].copy()
    pred["status"], pred["error"] = "ok", ""
    for name, model in models.items():
        pred[f"prob_{name}"] = model.predict_proba(data).to_numpy()
    cut = models["clinical_radiomics"].cutoff
    pred["risk_group"] = np.where(pred["prob_clinical_radiomics"] >= cut, "high", "low")
    # two failed cases and one without a known label
    failed = ["P0005", "P0400"]
    pred.loc[failed, "status"] = "failed"
    pred.loc[failed, "error"] = "mask is empty"
    pred.loc[failed, [f"prob_{m}" for m in MODELS]] = np.nan
    pred["label"] = pred["label"].astype(float)
    pred.loc["P0600", "label"] = np.nan
    clinical = data[["tumor_size", "age", "us_alnm", "histology"]]
    kinds = {
        "tumor_size": "continuous",
        "age": "continuous",
        "us_alnm": "categorical",
        "histology": "categorical",
    }
    result = evaluate(pred, models, clinical=clinical, clinical_kinds=kinds, n_boot=200, seed=1)
    return {
        "data": data,
        "pred": pred,
        "models": models,
        "result": result,
        "clinical": clinical,
        "kinds": kinds,
    }


def _cases(pred: pd.DataFrame, split: str) -> pd.DataFrame:
    return pred[(pred["split"] == split) & (pred["status"] == "ok") & pred["label"].notna()]


def test_table3_equals_stats_api(setup) -> None:
    pred, models, res = setup["pred"], setup["models"], setup["result"]
    t3 = res.tables["table3"]
    assert list(t3["split"].unique()) == list(SPLITS)
    assert list(t3[t3["split"] == "internal"]["model"]) == MODELS
    for split in ("internal", "prospective"):
        cases = _cases(pred, split)
        y = cases["label"].to_numpy()
        for name in ("clinical", "ln_score", "clinical_radiomics"):
            p = cases[f"prob_{name}"].to_numpy()
            row = t3[(t3["split"] == split) & (t3["model"] == name)].iloc[0]
            auc = stats.auc_ci(y, p)
            assert (row["auc"], row["auc_low"], row["auc_high"]) == pytest.approx(
                (auc.auc, auc.low, auc.high), rel=1e-12
            )
            m = stats.classification_metrics(y, p, models[name].cutoff)
            for key in ("accuracy", "sensitivity", "specificity", "ppv", "npv"):
                assert row[key] == pytest.approx(getattr(m, key), rel=1e-12)
            assert (row["sensitivity_low"], row["sensitivity_high"]) == pytest.approx(m.sensitivity_ci)
            assert row["cutoff"] == models[name].cutoff
            assert (row["n"], row["n_events"]) == (len(cases), int(y.sum()))
            # sensitivity by hand: positive when prob >= the model's training cut-off
            assert row["sensitivity"] == pytest.approx(np.mean(p[y == 1] >= models[name].cutoff))
    # a region score's AUC is that of the raw score (the logistic model is monotone in it)
    cases = _cases(pred, "external")
    row = t3[(t3["split"] == "external") & (t3["model"] == "ln_score")].iloc[0]
    assert row["auc"] == pytest.approx(stats.auc_ci(cases["label"], cases["ln_score"]).auc, rel=1e-12)


def test_delong_nri_idi_equal_direct_calls(setup) -> None:
    pred, res, models = setup["pred"], setup["result"], setup["models"]
    s3, s4 = res.tables["table_s3"], res.tables["table_s4"]
    for split in ("external", "prospective"):
        cases = _cases(pred, split)
        y = cases["label"].to_numpy()
        comb, clin = cases["prob_clinical_radiomics"], cases["prob_clinical"]
        for other in ("clinical", "tumor_score", "ln_score"):
            direct = stats.delong_test(y, comb, cases[f"prob_{other}"])
            row = s3[(s3["split"] == split) & (s3["model_b"] == other)].iloc[0]
            assert row["model_a"] == "clinical_radiomics"
            assert (row["auc_a"], row["auc_b"], row["z"], row["p"]) == pytest.approx(
                (direct.auc_a, direct.auc_b, direct.z, direct.p), rel=1e-12
            )
        row = s4[s4["split"] == split].iloc[0]
        n = stats.nri(y, clin, comb)
        i = stats.idi(y, clin, comb)
        cat = stats.nri(y, clin, comb, cutoffs=[models["clinical_radiomics"].cutoff])
        assert (row["nri"], row["nri_low"], row["nri_high"], row["nri_p"]) == pytest.approx(
            (n.nri, n.low, n.high, n.p), rel=1e-12
        )
        assert (row["nri_events"], row["nri_nonevents"]) == pytest.approx((n.nri_events, n.nri_nonevents))
        assert (row["idi"], row["idi_low"], row["idi_high"], row["idi_p"]) == pytest.approx(
            (i.idi, i.low, i.high, i.p), rel=1e-12
        )
        assert row["nri_cat"] == pytest.approx(cat.nri)


def test_calibration_and_risk_groups(setup) -> None:
    pred, res, models = setup["pred"], setup["result"], setup["models"]
    hl, cal, rg = res.tables["hosmer_lemeshow"], res.tables["calibration"], res.tables["risk_groups"]
    cases = _cases(pred, "internal")
    y, p = cases["label"].to_numpy(), cases["prob_clinical_radiomics"].to_numpy()
    row = hl[(hl["split"] == "internal") & (hl["model"] == "clinical_radiomics")].iloc[0]
    direct = stats.hosmer_lemeshow(y, p)
    assert (row["statistic"], row["df"], row["p"]) == pytest.approx((direct.statistic, direct.df, direct.p))
    assert res.summary["splits"]["internal"]["hosmer_lemeshow_p"]["clinical_radiomics"] == pytest.approx(
        direct.p
    )
    row = cal[(cal["split"] == "internal") & (cal["model"] == "clinical_radiomics")].iloc[0]
    cs = stats.calibration_stats(y, p)
    assert (row["intercept"], row["slope"], row["brier"]) == pytest.approx(
        (cs.intercept, cs.slope, cs.brier), rel=1e-9
    )
    assert row["slope_low"] < row["slope"] < row["slope_high"]
    assert row["intercept_low"] < row["intercept"] < row["intercept_high"]
    # the vectorised recalibration fit used by the bootstrap equals calibration_stats on the full sample
    a, b = stats.recalibration_fits(logit(p), y == 1, np.ones((1, y.size)))
    assert (a[0], b[0]) == pytest.approx((cs.intercept, cs.slope), rel=1e-8)
    # ... and its percentile CIs equal stats.bootstrap_ci over calibration_stats with the same resamples
    lo_a, hi_a, lo_b, hi_b = stats.calibration_bootstrap_ci(y == 1, p, 40, 7)
    slope = stats.bootstrap_ci(
        lambda yy, pp: stats.calibration_stats(yy, pp).slope, y, p, n_boot=40, seed=7, stratify=y
    )
    assert (lo_b, hi_b) == pytest.approx((slope.low, slope.high), rel=1e-7)
    icpt = stats.bootstrap_ci(
        lambda yy, pp: stats.calibration_stats(yy, pp).intercept, y, p, n_boot=40, seed=7, stratify=y
    )
    assert (lo_a, hi_a) == pytest.approx((icpt.low, icpt.high), rel=1e-7, abs=1e-9)
    # every model and set has its CIs, from the same resamples of the set
    assert cal[["intercept_low", "intercept_high", "slope_low", "slope_high"]].notna().all().all()
    clin = cal[(cal["split"] == "internal") & (cal["model"] == "clinical")].iloc[0]
    p_clin = cases["prob_clinical"].to_numpy()
    assert (clin["slope_low"], clin["slope_high"]) == pytest.approx(
        stats.calibration_bootstrap_ci(y == 1, p_clin, 200, 1 + 1)[2:], rel=1e-12
    )  # internal: 2nd set
    high = p >= models["clinical_radiomics"].cutoff
    got = rg[rg["split"] == "internal"].set_index("risk_group")
    assert got.loc["high", "n"] == high.sum() and got.loc["low", "n"] == (~high).sum()
    assert got.loc["high", "proportion"] == pytest.approx(y[high].mean())
    assert got.loc["high", "proportion"] > got.loc["low", "proportion"]


def test_hosmer_lemeshow_says_when_it_is_unreliable() -> None:
    """n < 100 and sparse groups (Cochran's rule) are named in the note; a large well-spread set has none."""
    from ALNMPredictorLib.evaluation import hosmer_lemeshow_caveat

    rng = np.random.default_rng(5)
    p = rng.uniform(0.05, 0.95, 600)
    y = (rng.random(600) < p).astype(int)
    hl = stats.hosmer_lemeshow(y, p)
    assert hl.share_expected_below_5 == 0 and hl.min_expected > 5 and hosmer_lemeshow_caveat(hl, 600) == ""
    small = stats.hosmer_lemeshow(y[:40], p[:40])
    assert hosmer_lemeshow_caveat(small, 40).startswith("unreliable: small set (n = 40 < 100)")
    lp = np.where(y[:300] == 1, 6.0, -6.0) + rng.normal(
        0, 1, 300
    )  # predictions near 0 and 1: tiny expected counts
    lp[:3] = -lp[:3]  # three confident errors
    extreme = 1 / (1 + np.exp(-lp))
    sparse = stats.hosmer_lemeshow(y[:300], extreme)
    assert sparse.min_expected < 1 and sparse.share_expected_below_5 > 0.2
    assert "sparse groups" in hosmer_lemeshow_caveat(
        sparse, 300
    ) and "small set" not in hosmer_lemeshow_caveat(sparse, 300)


def test_curves_are_long_format(setup) -> None:
    curves = setup["result"].curves
    for key, cols in {
        "roc": {"split", "model", "threshold", "sensitivity", "specificity", "auc"},
        "calibration_binned": {"split", "model", "bin", "n", "predicted", "observed", "low", "high"},
        "calibration_smooth": {"split", "model", "predicted", "observed"},
        "decision": {"split", "model", "threshold", "net_benefit", "net_benefit_all", "net_benefit_none"},
        "clinical_impact": {"split", "model", "threshold", "high_risk", "high_risk_events", "population"},
    }.items():
        assert cols <= set(curves[key].columns), key
        assert set(curves[key]["split"]) == set(SPLITS)
        assert set(curves[key]["model"]) == set(MODELS)
    cases = _cases(setup["pred"], "external")
    direct = stats.net_benefit(cases["label"], cases["prob_clinical"])
    dec = curves["decision"]
    got = dec[(dec["split"] == "external") & (dec["model"] == "clinical")]
    np.testing.assert_allclose(got["net_benefit"], direct["net_benefit"])
    binned = curves["calibration_binned"]
    assert (binned["low"] <= binned["observed"]).all() and (binned["observed"] <= binned["high"]).all()


def test_failed_and_unlabelled_cases_are_left_out(setup) -> None:
    res = setup["result"]
    failed = {c["case_id"] for c in res.summary["failed_cases"]}
    assert failed == {"P0005", "P0400"}
    assert res.summary["failed_cases"][0]["error"] == "mask is empty"
    n_train = res.tables["table3"].query("split == 'train'")["n"].iloc[0]
    assert n_train == SPLITS["train"] - 1
    info = res.summary["splits"]["prospective"]
    assert info["n_unlabelled"] == 1 and info["n"] == SPLITS["prospective"] - 1
    assert any("failed" in w for w in res.warnings)


def test_split_without_labels_is_left_out(setup) -> None:
    pred = setup["pred"].copy()
    new = pred.index[pred["split"] == "external"][:15]
    pred.loc[new, "split"] = "new"
    pred.loc[new, "label"] = np.nan
    res = evaluate(pred, setup["models"], n_boot=0)
    assert "new" not in set(res.tables["table3"]["split"])
    assert "new" not in res.tables["table1"].columns
    assert any("'new'" in w and "known label" in w for w in res.warnings)


def test_one_class_split_warns_not_crashes(setup) -> None:
    pred, models = setup["pred"].copy(), setup["models"]
    tiny = pred.index[(pred["split"] == "external") & (pred["label"] == 1)][:9]
    pred.loc[tiny, "split"] = "tiny"
    res = evaluate(pred, models, splits=["internal", "tiny"], n_boot=0)
    assert any("tiny" in w and "only events" in w for w in res.warnings)
    t3 = res.tables["table3"]
    rows = t3[t3["split"] == "tiny"]
    assert len(rows) == 4 and rows["auc"].isna().all()
    assert (rows["n"] == 9).all() and (rows["n_events"] == 9).all()
    assert rows["specificity"].isna().all() and rows["sensitivity"].notna().all()
    assert res.tables["table_s3"].query("split == 'tiny'")["p"].isna().all()
    assert "tiny" not in set(res.curves["roc"]["split"])
    assert res.summary["splits"]["tiny"]["one_class"] is True
    assert res.tables["calibration"]["slope_low"].isna().all()  # n_boot=0 skips the bootstrap


def test_table1_formatting_and_tests(setup) -> None:
    t1 = setup["result"].tables["table1"]
    pred = setup["pred"]
    cases = pred[(pred["status"] == "ok") & pred["label"].notna()]
    clinical = setup["clinical"].loc[cases.index]
    splits = list(SPLITS)
    assert list(t1.columns) == ["characteristic", "level", *splits, "p_value", "statistical_test"]
    # categorical: n (%) and a Pearson chi-square across the four sets
    counts = pd.crosstab(clinical["us_alnm"], cases["split"]).reindex(columns=splits)
    rows = t1[t1["characteristic"] == "us_alnm"].set_index("level")
    n = counts.loc["present", "internal"]
    total = counts["internal"].sum()
    assert rows.loc["present", "internal"] == f"{n} ({100 * n / total:.1f})"
    assert rows.loc["absent", "p_value"] == pytest.approx(
        sps.chi2_contingency(counts.to_numpy(), correction=False).pvalue
    )
    assert rows.loc["absent", "statistical_test"] == "chi-square"
    # label row
    alnm = t1[t1["characteristic"] == "ALNM"].set_index("level")
    events = int(cases.query("split == 'train'")["label"].sum())
    assert alnm.loc["Positive", "train"].startswith(f"{events} (")
    # continuous: mean ± SD and one-way ANOVA
    row = t1[t1["characteristic"] == "tumor_size"].iloc[0]
    g = clinical.loc[cases["split"] == "external", "tumor_size"]
    assert row["external"] == f"{g.mean():.1f} ± {g.std():.1f}"
    groups = [clinical.loc[cases["split"] == s, "tumor_size"] for s in splits]
    assert row["p_value"] == pytest.approx(sps.f_oneway(*groups).pvalue)
    assert row["statistical_test"] == "ANOVA"
    # small expected counts -> Fisher; 2 x 2 with Yates otherwise
    lab = pd.Series([0, 1] * 10 + [1] * 4, index=[f"c{i}" for i in range(24)], dtype=float)
    split = pd.Series(["a"] * 20 + ["b"] * 4, index=lab.index)
    rare = pd.DataFrame({"x": ["u"] * 18 + ["v"] * 2 + ["v"] * 3 + ["u"]}, index=lab.index)
    tab = baseline_table(rare, lab, split, ["a", "b"], {"x": "categorical"})
    x = tab[tab["characteristic"] == "x"].iloc[0]
    assert x["statistical_test"] == "Fisher exact"
    assert x["p_value"] == pytest.approx(sps.fisher_exact([[18, 1], [2, 3]]).pvalue)
    big = pd.DataFrame({"x": ["u", "v"] * 12}, index=lab.index)
    lab2 = pd.Series([0.0, 1.0] * 12, index=lab.index)
    split2 = pd.Series(["a", "a", "b", "b"] * 6, index=lab.index)
    tab = baseline_table(big, lab2, split2, ["a", "b"], {"x": "categorical"})
    x = tab[tab["characteristic"] == "x"].iloc[0]
    assert x["statistical_test"] == "chi-square (Yates)"
    assert x["p_value"] == pytest.approx(sps.chi2_contingency([[6, 6], [6, 6]], correction=True).pvalue)


def test_table2_odds_ratios(setup) -> None:
    models, t2 = setup["models"], setup["result"].tables["table2"]
    comb = models["clinical_radiomics"]
    uni = pd.DataFrame(comb.univariate).set_index("term")
    rows = t2.set_index("term")
    assert set(uni.index) == set(rows.index)
    for term in uni.index:
        assert rows.loc[term, "uni_or"] == pytest.approx(uni.loc[term, "odds_ratio"])
        assert rows.loc[term, "uni_p"] == pytest.approx(uni.loc[term, "p"])
    fit = pd.DataFrame(comb.fit_table).set_index("term")
    assert rows.loc["ln_score", "cr_or"] == pytest.approx(fit.loc["ln_score", "odds_ratio"])
    assert np.isnan(rows.loc["ln_score", "clin_or"])  # region scores are not in the clinical model
    clin = pd.DataFrame(models["clinical"].fit_table).set_index("term")
    for term in clin.index.drop(stats.INTERCEPT):
        assert rows.loc[term, "clin_or"] == pytest.approx(clin.loc[term, "odds_ratio"])
        assert rows.loc[term, "clin_low"] == pytest.approx(clin.loc[term, "or_low"])


def test_save_then_recompute_from_csv(setup, tmp_path) -> None:
    res, models = setup["result"], setup["models"]
    pred_csv = tmp_path / "predictions.csv"
    setup["pred"].reset_index().to_csv(pred_csv, index=False)
    paths = res.save(tmp_path / "eval")
    names = {p.name for p in paths}
    assert {
        "table1.csv",
        "table3.csv",
        "table_s3.csv",
        "table_s4.csv",
        "evaluation.json",
        "curve_roc.csv",
    } <= names
    payload = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert set(payload) == {"summary", "warnings", "tables"}
    assert payload["summary"]["cutoffs"]["clinical_radiomics"] == pytest.approx(
        models["clinical_radiomics"].cutoff
    )
    t3 = pd.read_csv(tmp_path / "eval" / "table3.csv")
    pred = pd.read_csv(pred_csv)
    cases = pred[(pred["split"] == "prospective") & (pred["status"] == "ok") & pred["label"].notna()]
    row = t3[(t3["split"] == "prospective") & (t3["model"] == "clinical_radiomics")].iloc[0]
    assert row["auc"] == pytest.approx(
        stats.auc_ci(cases["label"], cases["prob_clinical_radiomics"]).auc, rel=1e-12
    )
    s3 = pd.read_csv(tmp_path / "eval" / "table_s3.csv")
    direct = stats.delong_test(cases["label"], cases["prob_clinical_radiomics"], cases["prob_clinical"])
    got = s3[(s3["split"] == "prospective") & (s3["model_b"] == "clinical")]["p"].iloc[0]
    assert got == pytest.approx(direct.p, rel=1e-9)
    again = EvaluationResult.load(tmp_path / "eval")
    assert set(again.tables) == set(res.tables) and "roc" in again.curves


def test_bad_inputs_name_the_problem(setup) -> None:
    pred, models = setup["pred"], setup["models"]
    with pytest.raises(InputError, match="split 'nope'"):
        evaluate(pred, models, splits=["nope"], n_boot=0)
    with pytest.raises(InputError, match="prob_clinical"):
        evaluate(pred.drop(columns="prob_clinical"), models, n_boot=0)
    bad = pred.copy()
    bad.loc["P0010", "prob_ln_score"] = np.nan
    with pytest.raises(InputError, match="P0010.*prob_ln_score"):
        evaluate(bad, models, n_boot=0)
    bad = pred.copy()
    bad["label"] = bad["label"].astype(object)
    bad.loc["P0011", "label"] = 2
    with pytest.raises(InputError, match="P0011.*label"):
        evaluate(bad, models, n_boot=0)


def test_no_clinical_model(setup) -> None:
    pred, models = setup["pred"], setup["models"]
    subset = {k: v for k, v in models.items() if k != "clinical"}
    res = evaluate(pred.drop(columns="prob_clinical"), subset, splits=["train", "internal"], n_boot=0)
    assert list(res.tables["table3"].query("split == 'internal'")["model"]) == [
        "tumor_score",
        "ln_score",
        "clinical_radiomics",
    ]
    assert res.tables["table_s4"].empty
    assert res.tables["table2"]["clin_or"].isna().all()


def test_evaluate_with_reads(setup) -> None:
    from ALNMPredictorLib.reader_study import simulate_reads

    pred, models = setup["pred"], setup["models"]
    reads = simulate_reads(pred, split="prospective", seed=2, cutoff=models["clinical_radiomics"].cutoff)
    res = evaluate(pred, models, splits=["prospective"], reads=reads, n_boot=0)
    rm = res.tables["reader_metrics"]
    assert set(rm["session"]) == {"unaided", "aided"} and len(rm) == 4
    assert len(res.tables["reader_tests"]) == 2 and len(res.tables["reader_kappa"]) == 2
    assert res.summary["reader_study"]["simulated"] is True
    assert res.summary["reader_split"] == "prospective"
    assert not res.curves["reader_roc"].empty
