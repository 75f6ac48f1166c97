"""Synthetic inputs in the shape of evaluation.EvaluationResult and the pipeline's model summary.

Shared by test_plots.py and test_report.py; built from random numbers with a fixed seed, no fitting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

SPLITS = ["train", "internal", "external", "prospective"]
MODELS = ["clinical", "tumor_score", "ln_score", "clinical_radiomics"]


@dataclass
class FakeEvaluation:
    """Duck-typed stand-in for evaluation.EvaluationResult (same attributes)."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    curves: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _roc_points(rng: np.random.Generator, auc: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """A monotone ROC-like curve (sensitivity, specificity) roughly matching ``auc``."""
    fpr = np.sort(rng.uniform(0, 1, n))
    power = (1 - auc) / auc
    tpr = fpr**power
    return tpr, 1 - fpr


def make_evaluation(seed: int = 0, readers: bool = True) -> FakeEvaluation:
    """Every table and curve of the evaluation contract, for four splits and four models."""
    rng = np.random.default_rng(seed)
    aucs = {"clinical": 0.78, "tumor_score": 0.80, "ln_score": 0.88, "clinical_radiomics": 0.93}
    roc_rows, t3_rows, dec_rows, cic_rows, bin_rows, sm_rows = [], [], [], [], [], []
    for s_i, split in enumerate(SPLITS):
        n, events = 120 + 10 * s_i, 70 + 3 * s_i
        prev = events / n
        for m_i, model in enumerate(MODELS):
            auc = aucs[model] - 0.01 * s_i + 0.0037 * m_i
            sen, spe = _roc_points(rng, auc)
            for thr, (a, b) in enumerate(zip(sen, spe, strict=True)):
                roc_rows.append(
                    {
                        "split": split,
                        "model": model,
                        "threshold": 1 - thr / 40,
                        "sensitivity": a,
                        "specificity": b,
                        "auc": auc,
                    }
                )
            t3_rows.append(
                {
                    "split": split,
                    "model": model,
                    "auc": auc,
                    "auc_low": auc - 0.0412,
                    "auc_high": min(auc + 0.0388, 1),
                    "accuracy": 0.7 + 0.01 * m_i,
                    "sensitivity": 0.8123,
                    "specificity": 0.6549,
                    "ppv": 0.8,
                    "npv": 0.61,
                    "cutoff": 0.7012 if model == "clinical_radiomics" else 0.5,
                    "n": n,
                    "n_events": events,
                }
            )
            thresholds = np.linspace(0.01, 0.99, 50)
            for t in thresholds:
                nb_all = prev - (1 - prev) * t / (1 - t)
                dec_rows.append(
                    {
                        "split": split,
                        "model": model,
                        "threshold": t,
                        "net_benefit": max(nb_all, 0) + (auc - 0.5) * 0.3 * (1 - t),
                        "net_benefit_all": nb_all,
                        "net_benefit_none": 0.0,
                    }
                )
                if model == "clinical_radiomics":
                    cic_rows.append(
                        {
                            "split": split,
                            "model": model,
                            "threshold": t,
                            "high_risk": 1000 * (1 - t) ** 1.2,
                            "high_risk_events": 1000 * prev * (1 - t**3),
                            "population": 1000,
                        }
                    )
            for b in range(10):
                pred = (b + 0.5) / 10
                obs = float(np.clip(pred + rng.normal(0, 0.05), 0, 1))
                bin_rows.append(
                    {
                        "split": split,
                        "model": model,
                        "bin": b + 1,
                        "n": 12,
                        "predicted": pred,
                        "observed": obs,
                        "low": max(obs - 0.15, 0),
                        "high": min(obs + 0.15, 1),
                    }
                )
            for x in np.linspace(0.02, 0.98, 30):
                sm_rows.append(
                    {"split": split, "model": model, "predicted": x, "observed": x + 0.03 * np.sin(6 * x)}
                )
    table1 = pd.DataFrame(
        [
            {
                "characteristic": "Age, years",
                "level": "",
                **{s: f"{54.0 - i:.1f} ± {10.6:.1f}" for i, s in enumerate(SPLITS)},
                "p_value": 0.4712,
                "statistical_test": "ANOVA",
            },
            {
                "characteristic": "US-reported ALNM",
                "level": "present",
                **{s: f"{60 + i} ({50.0 + i:.1f}%)" for i, s in enumerate(SPLITS)},
                "p_value": 0.00004,
                "statistical_test": "chi-squared",
            },
            {
                "characteristic": "US-reported ALNM",
                "level": "absent",
                **{s: f"{60 - i} ({50.0 - i:.1f}%)" for i, s in enumerate(SPLITS)},
                "p_value": np.nan,
                "statistical_test": "",
            },
            {
                "characteristic": "Margin <b>&",
                "level": "non-circumscribed",
                **{s: f"{80 + i} ({70.0 + i:.1f}%)" for i, s in enumerate(SPLITS)},
                "p_value": 0.0312,
                "statistical_test": "chi-squared",
            },
        ]
    )
    table2 = pd.DataFrame(
        [
            {
                "variable": "us_reported_alnm",
                "level": "present",
                "uni_or": 5.9123,
                "uni_low": 3.8101,
                "uni_high": 9.1634,
                "uni_p": 0.0000012,
                "clin_or": 4.6789,
                "clin_low": 2.9412,
                "clin_high": 7.4588,
                "clin_p": 0.0002,
                "cr_or": 2.2401,
                "cr_low": 1.1923,
                "cr_high": 4.2087,
                "cr_p": 0.0121,
            },
            {
                "variable": "tumor_size",
                "level": "",
                "uni_or": 1.7512,
                "uni_low": 1.4433,
                "uni_high": 2.1201,
                "uni_p": 0.004,
                "clin_or": 1.5234,
                "clin_low": 1.2411,
                "clin_high": 1.8712,
                "clin_p": 0.0451,
                "cr_or": np.nan,
                "cr_low": np.nan,
                "cr_high": np.nan,
                "cr_p": np.nan,
            },
            {
                "variable": "tumor_score",
                "level": "",
                "uni_or": 3.7811,
                "uni_low": 2.8312,
                "uni_high": 5.0623,
                "uni_p": 1e-9,
                "clin_or": np.nan,
                "clin_low": np.nan,
                "clin_high": np.nan,
                "clin_p": np.nan,
                "cr_or": 2.7234,
                "cr_low": 1.9011,
                "cr_high": 3.8978,
                "cr_p": 0.0004,
            },
        ]
    )
    table_s3 = pd.DataFrame(
        [
            {
                "split": s,
                "model_a": "clinical_radiomics",
                "model_b": m,
                "auc_a": 0.93,
                "auc_b": aucs[m],
                "z": 3.2101,
                "p": 0.0013,
            }
            for s in SPLITS
            for m in MODELS[:3]
        ]
    )
    table_s4 = pd.DataFrame(
        [
            {
                "split": s,
                "nri": 0.8123,
                "nri_low": 0.5561,
                "nri_high": 1.0712,
                "nri_p": 0.00001,
                "nri_events": 0.41,
                "nri_nonevents": 0.40,
                "idi": 0.2012,
                "idi_low": 0.1411,
                "idi_high": 0.2634,
                "idi_p": 0.0004,
            }
            for s in SPLITS
        ]
    )
    hl = pd.DataFrame(
        [
            {"split": s, "model": "clinical_radiomics", "statistic": 11.634, "df": 8, "p": 0.1689}
            for s in SPLITS
        ]
    )
    calibration = pd.DataFrame(
        [
            {"split": s, "model": "clinical_radiomics", "intercept": 0.0123, "slope": 0.9712, "brier": 0.1123}
            for s in SPLITS
        ]
    )
    risk = pd.DataFrame(
        [
            row
            for s in SPLITS
            for row in (
                {"split": s, "risk_group": "high", "n": 70, "n_events": 62, "proportion": 62 / 70},
                {"split": s, "risk_group": "low", "n": 50, "n_events": 9, "proportion": 9 / 50},
            )
        ]
    )
    tables = {
        "table1": table1,
        "table2": table2,
        "table3": pd.DataFrame(t3_rows),
        "table_s3": table_s3,
        "table_s4": table_s4,
        "hosmer_lemeshow": hl,
        "calibration": calibration,
        "risk_groups": risk,
    }
    if readers:
        tables["reader_metrics"] = pd.DataFrame(
            [
                {
                    "reader": r,
                    "session": sess,
                    "auc": auc,
                    "auc_low": auc - 0.07,
                    "auc_high": auc + 0.06,
                    "accuracy": acc,
                    "sensitivity": sen,
                    "specificity": spe,
                    "ppv": 0.8,
                    "npv": 0.7,
                    "n": 107,
                }
                for r, rows in {
                    "junior": [("unaided", 0.71, 0.701, 0.78, 0.619), ("aided", 0.82, 0.821, 0.79, 0.857)],
                    "senior": [("unaided", 0.75, 0.761, 0.65, 0.873), ("aided", 0.85, 0.863, 0.74, 0.984)],
                }.items()
                for sess, auc, acc, sen, spe in rows
            ]
        )
        tables["reader_tests"] = pd.DataFrame(
            [
                {
                    "reader": "junior",
                    "auc_unaided": 0.71,
                    "auc_aided": 0.82,
                    "delong_p": 0.0021,
                    "mcnemar_stat": 7.1,
                    "mcnemar_p": 0.0077,
                    "acc_unaided": 0.701,
                    "acc_aided": 0.821,
                },
                {
                    "reader": "senior",
                    "auc_unaided": 0.75,
                    "auc_aided": 0.85,
                    "delong_p": 0.013,
                    "mcnemar_stat": 5.0,
                    "mcnemar_p": 0.025,
                    "acc_unaided": 0.761,
                    "acc_aided": 0.863,
                },
            ]
        )
        tables["reader_kappa"] = pd.DataFrame(
            [
                {
                    "session": "unaided",
                    "reader_a": "junior",
                    "reader_b": "senior",
                    "kappa": 0.557,
                    "low": 0.41,
                    "high": 0.70,
                },
                {
                    "session": "aided",
                    "reader_a": "junior",
                    "reader_b": "senior",
                    "kappa": 0.733,
                    "low": 0.61,
                    "high": 0.86,
                },
            ]
        )
    curves = {
        "roc": pd.DataFrame(roc_rows),
        "calibration_binned": pd.DataFrame(bin_rows),
        "calibration_smooth": pd.DataFrame(sm_rows),
        "decision": pd.DataFrame(dec_rows),
        "clinical_impact": pd.DataFrame(cic_rows),
    }
    summary = {
        "splits": {s: {"n": 120 + 10 * i} for i, s in enumerate(SPLITS)},
        "failed_cases": [{"case_id": "P0007", "error": "column tumor_mask: mask is empty <script>"}],
        "reader_split": "prospective",
    }
    return FakeEvaluation(tables, curves, summary, ["ln score: 3 degenerate features dropped"])


def make_nomogram_scale() -> dict[str, Any]:
    """A scale shaped like LogisticModel.nomogram_scale() for three predictors."""
    ppu = 100 / 6.0
    offset = -5.0
    return {
        "axes": [
            {
                "variable": "us_reported_alnm",
                "type": "categorical",
                "ticks": [("absent", 0.0), ("present", 13.4)],
            },
            {
                "variable": "tumor_score",
                "type": "numeric",
                "ticks": [(v, (v + 3) * 100 / 6 * 0.9) for v in (-3, -2, -1, 0, 1, 2, 3)],
            },
            {
                "variable": "ln_score",
                "type": "numeric",
                "ticks": [(v, (v + 3) * 100 / 6) for v in (-3, -2, -1, 0, 1, 2, 3)],
            },
        ],
        "points_per_unit_lp": ppu,
        "lp_offset": offset,
        "max_total_points": 203.4,
        "probability_ticks": [
            (p, (np.log(p / (1 - p)) - offset) * ppu) for p in (0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
        ],
        "cutoff": 0.701,
        "cutoff_points": (np.log(0.701 / 0.299) - offset) * ppu,
    }


def _lasso(
    rng: np.random.Generator, region: str, n_features: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    lambdas = np.exp(np.linspace(-1, -6, 30))
    names = [f"{region}_original_glcm_f{j}" for j in range(n_features)]
    coefs = np.zeros((30, n_features))
    for j in range(n_features):
        start = rng.integers(0, 25)
        coefs[start:, j] = np.linspace(0, rng.normal(0, 1), 30 - start)
    path = pd.DataFrame(coefs, index=pd.Index(lambdas, name="lambda"), columns=names)
    path.insert(0, "(Intercept)", 0.3)
    cv = pd.DataFrame(
        {
            "lambda": lambdas,
            "log_lambda": np.log(lambdas),
            "mean_deviance": 1.3 - 0.4 * np.exp(-((np.log(lambdas) + 3.5) ** 2)),
            "se": np.full(30, 0.05),
            "n_nonzero": (coefs != 0).sum(axis=1),
        }
    )
    return (
        path,
        cv,
        {"lambda": float(lambdas[15]), "lambda_min": float(lambdas[15]), "lambda_1se": float(lambdas[10])},
    )


def make_model_summary(seed: int = 1) -> dict[str, Any]:
    """The keys write_report documents, with two regions."""
    rng = np.random.default_rng(seed)
    paths, cvs, lambdas, logs, formula_tables = {}, {}, {}, {}, {}
    for region, n in (("tumor", 12), ("ln", 8)):
        path, cv, lam = _lasso(rng, region, n)
        paths[region], cvs[region], lambdas[region] = path, cv, lam
        logs[region] = [
            {
                "step": "degenerate",
                "n_in": 979,
                "n_out": 976,
                "removed": "a, b, c",
                "why": "non-finite",
                "warning": "",
            },
            {
                "step": "near_constant",
                "n_in": 976,
                "n_out": 950,
                "removed": "…",
                "why": "constant",
                "warning": "",
            },
            {"step": "icc", "n_in": 950, "n_out": 600, "removed": "…", "why": "ICC2 < 0.8", "warning": ""},
            {
                "step": "redundancy",
                "n_in": 600,
                "n_out": 120,
                "removed": "…",
                "why": "|r| > 0.9",
                "warning": "",
            },
            {
                "step": "mutual_information",
                "n_in": 120,
                "n_out": 30,
                "removed": "…",
                "why": "top 30",
                "warning": "",
            },
            {"step": "lasso", "n_in": 30, "n_out": n, "removed": "…", "why": "lambda.min", "warning": ""},
        ]
        formula_tables[region] = [
            {"term": "(Intercept)", "coefficient": 0.1234, "mean": None, "sd": None}
        ] + [
            {"term": f"{region}_original_glcm_f{j}", "coefficient": 0.5 - 0.1 * j, "mean": 1.5, "sd": 0.25}
            for j in range(3)
        ]
    return {
        "formula": "clinical_radiomics: logit(p) = -1.2345 + 0.8066 × us_reported_alnm[present] + 1.0012 × tumor_score",
        "formulas": {"clinical": "clinical: logit(p) = -2.0000 + 0.4200 × tumor_size"},
        "region_formulas": {
            "tumor": "tumor score = 0.1234 + 0.5000 × tumor_original_glcm_f0",
            "ln": "ln score = -0.2000 + 0.7000 × ln_original_glcm_f0",
        },
        "region_formula_tables": formula_tables,
        "nomogram": make_nomogram_scale(),
        "cutoff": 0.7012,
        "selection_logs": logs,
        "lasso_path": {r: p.reset_index().to_dict(orient="records") for r, p in paths.items()},
        "lasso_cv": {r: c.to_dict(orient="records") for r, c in cvs.items()},
        "lambdas": lambdas,
        "degenerate_features": {"ln": ["ln_wavelet_x", "ln_wavelet_y", "ln_wavelet_z"]},
        "score_fit": "cross-fitted: out-of-fold region scores (5-fold, stratified, seed 0)",
        "model_notes": {
            "clinical_radiomics": [
                "the clinical_radiomics model was fitted by Firth's penalised "
                "likelihood: separation along ln_score"
            ]
        },
        "internal_validation": {
            "n_boot": 200,
            "n_used": 199,
            "seed": 0,
            "failures": ["resample 17: SeparationError: one class"],
            "table": {
                "auc": {
                    "apparent": 0.9412,
                    "training": 0.9533,
                    "test": 0.9301,
                    "optimism": 0.0232,
                    "corrected": 0.9180,
                    "n": 199,
                },
                "intercept": {
                    "apparent": 0.0,
                    "training": 0.0,
                    "test": -0.0412,
                    "optimism": 0.0412,
                    "corrected": -0.0412,
                    "n": 180,
                },
                "slope": {
                    "apparent": 1.0,
                    "training": 1.0,
                    "test": 0.8712,
                    "optimism": 0.1288,
                    "corrected": 0.8712,
                    "n": 180,
                },
                "brier": {
                    "apparent": 0.0912,
                    "training": 0.0853,
                    "test": 0.0977,
                    "optimism": -0.0124,
                    "corrected": 0.1036,
                    "n": 199,
                },
            },
        },
        "selection_stability": [
            {
                "region": region,
                "feature": f"{region}_original_glcm_f{j}",
                "final": j < 3,
                "crossfit": max(0.0, 1 - 0.2 * j),
                "bootstrap": max(0.0, 0.95 - 0.04 * j),
            }
            for region in ("tumor", "ln")
            for j in range(25)
        ],
        "not_computed_features": {"tumor": [f"tumor_wavelet-LLH_f{i}" for i in range(372)], "ln": []},
    }


def make_meta() -> dict[str, Any]:
    return {
        "versions": {"ALNMPredictorLib": "0.1.0", "numpy": "2.4.0"},
        "settings": {"selection": {"icc_threshold": 0.8, "lasso_rule": "lambda.min"}, "preset": "paper"},
        "seeds": {"random_state": 0},
        "deep_weights": {
            "name": "VGG19_Weights.IMAGENET1K_V1",
            "sha256": "dcbd4f29",
            "source": "torchvision",
        },
        "readers_simulated": True,
        "command": "alnm demo --out demo",
    }
