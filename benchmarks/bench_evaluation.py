"""Time ``evaluation.evaluate`` on the study's set sizes, and its vectorised calibration bootstrap.

Synthetic predictions with the study's four sets (421/106/222/107 cases, times ``--scale``), four
logistic models fitted on the training set. Reports the best of ``--repeat`` wall times of
``evaluate`` without and with the calibration bootstrap, of the vectorised bootstrap of the val.prob
intercept/slope alone against ``stats.bootstrap_ci`` looping over ``calibration_stats`` (the same
resamples; the CIs are checked equal), and of simulating and analysing the reader study.

    python benchmarks/bench_evaluation.py [--scale 1] [--n-boot 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import pandas as pd

from ALNMPredictorLib import stats
from ALNMPredictorLib.evaluation import _calibration_boot, evaluate
from ALNMPredictorLib.modeling import fit_logistic_model
from ALNMPredictorLib.reader_study import reader_study, simulate_reads

SETS = {"train": 421, "internal": 106, "external": 222, "prospective": 107}


def best_of(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def cohort(scale: float, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for split, n in SETS.items():
        n = max(20, int(round(n * scale)))
        y = rng.random(n) < 0.58
        parts.append(
            pd.DataFrame(
                {
                    "split": split,
                    "label": y.astype(float),
                    "tumor_size": rng.normal(2.6 + 0.5 * y, 1.0),
                    "us_alnm": np.where(rng.random(n) < np.where(y, 0.7, 0.35), "present", "absent"),
                    "tumor_score": rng.normal(0.9 * y, 1.0),
                    "ln_score": rng.normal(1.8 * y, 1.0),
                }
            )
        )
    data = pd.concat(parts, ignore_index=True)
    data.index = pd.Index([f"P{i:05d}" for i in range(len(data))], name="case_id")
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    data = cohort(args.scale)
    train = data[data["split"] == "train"]
    y = train["label"].to_numpy()
    models = {
        "clinical": fit_logistic_model(
            "clinical", train, y, ["tumor_size", "us_alnm"], categorical=["us_alnm"]
        ),
        "tumor_score": fit_logistic_model(
            "tumor_score", train, y, ["tumor_score"], screen_p=None, stepwise_p=0.999
        ),
        "ln_score": fit_logistic_model("ln_score", train, y, ["ln_score"], screen_p=None, stepwise_p=0.999),
        "clinical_radiomics": fit_logistic_model(
            "clinical_radiomics",
            train,
            y,
            ["tumor_score", "ln_score", "tumor_size", "us_alnm"],
            categorical=["us_alnm"],
        ),
    }
    pred = data[["split", "label"]].copy()
    pred["status"] = "ok"
    for name, model in models.items():
        pred[f"prob_{name}"] = model.predict_proba(data).to_numpy()
    clinical = data[["tumor_size", "us_alnm"]]

    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
        f"{len(data)} cases, 4 splits x 4 models"
    )
    t0, _ = best_of(lambda: evaluate(pred, models, clinical=clinical, n_boot=0), args.repeat)
    t1, _ = best_of(lambda: evaluate(pred, models, clinical=clinical, n_boot=args.n_boot), args.repeat)
    print(f"evaluate, no bootstrap:          {t0:.3f} s")
    print(f"evaluate, n_boot={args.n_boot}:         {t1:.3f} s")

    tr = pred[pred["split"] == "train"]
    yy, pp = tr["label"].to_numpy(), tr["prob_clinical_radiomics"].to_numpy()
    tv, ci = best_of(lambda: _calibration_boot(yy == 1, pp, args.n_boot, 0), args.repeat)
    tl, loop = best_of(
        lambda: stats.bootstrap_ci(
            lambda a, b: stats.calibration_stats(a, b).slope, yy, pp, n_boot=args.n_boot, seed=0, stratify=yy
        ),
        1,
    )
    assert np.allclose((ci[2], ci[3]), (loop.low, loop.high), rtol=1e-7), (ci, loop)
    print(
        f"calibration slope CI, {len(tr)} cases, {args.n_boot} resamples: vectorised {tv:.3f} s, "
        f"bootstrap_ci loop {tl:.2f} s ({tl / tv:.0f}x); CIs equal"
    )

    def readers() -> object:
        reads = simulate_reads(pred, split="prospective", seed=0, cutoff=models["clinical_radiomics"].cutoff)
        return reader_study(reads, pred["label"])

    tr_, _ = best_of(readers, args.repeat)
    print(f"simulate_reads + reader_study (prospective, 2 readers): {tr_:.3f} s")


if __name__ == "__main__":
    main()
