"""Which handcrafted preset serves real 2D ultrasound best: ``paper`` vs ``us2d``, and why (ablation).

For each cohort and each parameter variant this extracts the handcrafted features (deep features off,
images standardised: the project's defaults), trains the whole model on the training split
(``pipeline.train``: ICC, z-score, redundancy, mutual information, LASSO, cross-fitted second stage), and
reports the test AUC of the region score(s) and of the combined model per test split and pooled, with a
paired DeLong test of each variant against ``us2d`` on the pooled test cases, and the CPU time of the
extraction (process user + system, this process and its worker processes).

Cohorts:

- ``busbra``: real BUS-BRA breast ultrasound (benign vs malignant as the stand-in outcome), one image per
  patient, trained on the GE Logiq 7 scanner, tested on its held-out 20 % and on the three other scanners
  (the split of ``benchmarks/busbra_run.py``); no pixel spacing in the PNGs (features in pixel units).
- ``synthetic``: ``alnm demo``'s SYNTHETIC multicentre cohort (tumour and LN regions, clinical factors).

Variants (the three factors on which the presets differ; see Resources/Parameters):

- ``paper``: 3D shape, 3D texture and wavelet on the one-slice volume (force2D off), binWidth 25.
- ``paper-full``: ``paper`` with ``full_table`` (the 372 z-high-pass wavelet features computed too; selection
  drops them, so the model must be the one of ``paper``).
- ``paper+force2D``: the same with in-plane texture matrices and wavelets (force2D on, axis 0).
- ``paper+bw5``: the same as ``paper`` with binWidth 5.
- ``us2d+shape3D``: ``us2d`` (force2D, binWidth 5) with the 3D shape class instead of shape2D.
- ``us2d+bw25``: ``us2d`` with binWidth 25.
- ``us2d``: shape2D, force2D on, binWidth 5.

Usage::

    python benchmarks/preset_comparison.py --out /tmp/presets [--cohorts busbra synthetic]
        [--variants paper us2d ...] [--workers 2] [--patients 200]

Results go to ``OUT/results.json`` (one record per cohort x variant; a rerun skips those already there
and reuses the feature caches) and a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))


def _variant_params(name: str) -> dict[str, Any]:
    from ALNMPredictorLib.handcrafted import load_params

    paper, us2d = load_params("paper"), load_params("us2d")
    if name in ("paper", "paper-full"):
        return paper
    if name == "paper+force2D":
        paper["setting"].update(force2D=True, force2Ddimension=0)
        return paper
    if name == "paper+bw5":
        paper["setting"]["binWidth"] = 5
        return paper
    if name == "us2d":
        return us2d
    if name == "us2d+shape3D":
        classes = dict(us2d["featureClass"])
        classes.pop("shape2D")
        us2d["featureClass"] = {"shape": None, **classes}
        return us2d
    if name == "us2d+bw25":
        us2d["setting"]["binWidth"] = 25
        return us2d
    raise SystemExit(f"unknown variant {name!r}")


VARIANTS = ["paper", "paper+force2D", "paper+bw5", "us2d+shape3D", "us2d+bw25", "us2d"]


def _cohort(name: str, out: Path, patients: int) -> Any:
    from ALNMPredictorLib.cohort import load_manifest

    folder = out / "cohorts" / name
    if name == "busbra":
        import busbra_run

        manifest = folder / "manifest.csv"
        if not manifest.is_file():
            manifest = busbra_run.write_manifest(folder)
        return load_manifest(manifest)
    if name == "synthetic":
        from ALNMPredictorLib.synth import existing_cohort, synth_cohort

        if existing_cohort(folder, patients, 0) is None:
            synth_cohort(folder, n_patients=patients, seed=0, workers=2)
        return load_manifest(folder / "manifest.csv")
    raise SystemExit(f"unknown cohort {name!r}")


def _cpu() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _aucs(predictions: pd.DataFrame, columns: list[str], train_split: str) -> dict[str, Any]:
    from ALNMPredictorLib.stats import auc_ci

    out: dict[str, Any] = {}
    ok = predictions[(predictions["status"] == "ok") & predictions["label"].notna()]
    splits = [s for s in ok["split"].unique() if s != train_split]
    for column in columns:
        per: dict[str, Any] = {}
        for split in [train_split, *splits, "pooled test"]:
            rows = ok[ok["split"] != train_split] if split == "pooled test" else ok[ok["split"] == split]
            rows = rows[rows[column].notna()]
            y = rows["label"].astype(int).to_numpy()
            if len(np.unique(y)) < 2:
                continue
            ci = auc_ci(y, rows[column].astype(float).to_numpy())
            per[split] = {"n": len(rows), "auc": ci.auc, "low": ci.low, "high": ci.high}
        out[column] = per
    return out


def run_one(cohort: Any, cohort_name: str, variant: str, out: Path, workers: int) -> dict[str, Any]:
    from ALNMPredictorLib.extraction import extract_cohort
    from ALNMPredictorLib.modeling import score_column
    from ALNMPredictorLib.pipeline import FEATURES_DIR, PipelineSettings, train

    folder = out / "runs" / cohort_name / variant
    folder.mkdir(parents=True, exist_ok=True)
    params_path = folder / "params.yaml"
    params_path.write_text(yaml.safe_dump(_variant_params(variant), sort_keys=False))
    cpu, wall = _cpu(), time.perf_counter()
    full = variant == "paper-full"
    result = extract_cohort(
        cohort,
        folder / FEATURES_DIR,
        handcrafted=str(params_path),
        deep=None,
        workers=workers,
        progress=False,
        normalize=True,
        full_table=full,
    )
    extraction = {
        "cpu_s": _cpu() - cpu,
        "wall_s": time.perf_counter() - wall,
        "computed": result.computed,
        "cached": result.cached,
        "rois": len(result.status),
        "failed": len(result.failed),
    }
    settings = PipelineSettings(
        handcrafted=str(params_path), deep="off", normalize=True, workers=workers, full_table=full
    )
    cpu, wall = _cpu(), time.perf_counter()
    trained = train(cohort, folder, settings, progress=False)
    fit = {"cpu_s": _cpu() - cpu, "wall_s": time.perf_counter() - wall}
    predictions = trained.predictions.copy()
    predictions.index = predictions.index.astype(str)
    columns = [score_column(r) for r in trained.model.regions] + ["prob_clinical_radiomics"]
    if cohort.clinical:
        columns.append("prob_clinical")
    selected = {r: list(s.selected_) for r, s in trained.model.region_scores_.items()}
    predictions[["split", "label", "status", *columns]].to_csv(folder / "scores.csv")
    return {
        "cohort": cohort_name,
        "variant": variant,
        "features_per_roi": int(result.info["handcrafted"]["features_per_region"]),
        "flagged_degenerate_per_roi": len(result.degenerate) // len(cohort.regions),
        "extraction": extraction,
        "train": fit,
        "selected": selected,
        "combined_terms": list(trained.model.combined_model_.variables),
        "auc": _aucs(predictions, columns, cohort.train_split),
    }


def paired_delong(
    out: Path, cohort_name: str, variant: str, reference: str, column: str
) -> dict[str, float] | None:
    """Paired DeLong test of ``variant`` vs ``reference`` on the pooled test cases both scored."""
    from ALNMPredictorLib.stats import delong_test

    frames = []
    for name in (variant, reference):
        path = out / "runs" / cohort_name / name / "scores.csv"
        if not path.is_file():
            return None
        frames.append(pd.read_csv(path, index_col=0))
    a, b = frames
    train_split = "train"
    both = a.index[(a["split"] != train_split) & a[column].notna() & (a["status"] == "ok")]
    both = both.intersection(b.index[b[column].notna() & (b["status"] == "ok")])
    y = a.loc[both, "label"].astype(int).to_numpy()
    test = delong_test(y, a.loc[both, column].to_numpy(float), b.loc[both, column].to_numpy(float))
    return {"n": len(both), "auc": test.auc_a, "auc_reference": test.auc_b, "z": test.z, "p": test.p}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--cohorts", nargs="+", default=["busbra", "synthetic"])
    parser.add_argument("--variants", nargs="+", default=VARIANTS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--patients", type=int, default=200, help="synthetic cohort size (default 200)")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else []
    done = {(r["cohort"], r["variant"]) for r in results}
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, python {platform.python_version()}; "
        f"load average {os.getloadavg()}"
    )
    for cohort_name in args.cohorts:
        cohort = _cohort(cohort_name, args.out, args.patients)
        for variant in args.variants:
            if (cohort_name, variant) in done:
                continue
            started = time.perf_counter()
            record = run_one(cohort, cohort_name, variant, args.out, args.workers)
            record["load_average_after"] = os.getloadavg()
            results.append(record)
            results_path.write_text(json.dumps(results, indent=1, default=float))
            print(f"{cohort_name} {variant}: {time.perf_counter() - started:.0f} s", flush=True)
    for cohort_name in args.cohorts:
        rows = [r for r in results if r["cohort"] == cohort_name]
        if not rows:
            continue
        columns = list(rows[0]["auc"])
        print(f"\n### {cohort_name}\n")
        print(
            "| variant | features | extraction CPU (s) | "
            + " | ".join(f"{c}: pooled test AUC (95 % CI); DeLong p vs us2d" for c in columns)
            + " |"
        )
        print("|---|---:|---:|" + "---:|" * len(columns))
        for r in rows:
            cells = []
            for c in columns:
                a = r["auc"][c].get("pooled test")
                test = (
                    None
                    if r["variant"] == "us2d"
                    else paired_delong(args.out, cohort_name, r["variant"], "us2d", c)
                )
                p = "" if test is None else f"; p = {test['p']:.2g}"
                cells.append(f"{a['auc']:.3f} ({a['low']:.3f}-{a['high']:.3f}){p}" if a else "")
            print(
                f"| {r['variant']} | {r['features_per_roi']} | {r['extraction']['cpu_s']:.0f} | "
                + " | ".join(cells)
                + " |"
            )
        print()
        for r in rows:
            splits = {s: f"{v['auc']:.3f}" for s, v in r["auc"][columns[0]].items()}
            print(
                f"- {r['variant']}: {columns[0]} per split {splits}; selected {sum(map(len, r['selected'].values()))}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
