"""Cross-fitted vs in-sample region scores in the second stage, on a cohort whose score is pure noise.

The cohort is ``Testing/test_crossfit.py::_noise_cohort`` (300 noise features beside one informative clinical
factor; 150 training, 300 test patients). For each seed, the whole model is fitted both ways and the test AUCs
of the clinical and the combined model are printed with the combined model's variables (BENCHMARKS.md).

Usage: ``python benchmarks/crossfit_noise.py [--seeds 0 1 2 ...]``
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from test_crossfit import _noise_cohort

    from ALNMPredictorLib.modeling import ALNMModel
    from ALNMPredictorLib.stats import auc_ci

    for seed in args.seeds:
        tr, ytr, te, yte = _noise_cohort(seed)
        out = []
        for mode in ("insample", "crossfit"):
            m = ALNMModel(regions=("tumor",), clinical=["age"], score_fit=mode, random_state=seed).fit(
                tr, ytr
            )
            table, models = m.predictor_table(te), m.models()
            auc = {
                name: auc_ci(yte, models[name].predict_proba(table).to_numpy()).auc
                for name in ("clinical", "clinical_radiomics", "tumor_score")
            }
            out.append(
                f"{mode}: clin {auc['clinical']:.3f} comb {auc['clinical_radiomics']:.3f} "
                f"score {auc['tumor_score']:.3f} vars {m.combined_model_.variables}"
            )
        print(seed, " | ".join(out), flush=True)


if __name__ == "__main__":
    main()
