"""Real-image run of the tumour-region pipeline on BUS-BRA (benign vs malignant as a stand-in outcome).

BUS-BRA has no lymph-node images and no axillary status, so this exercises the tumour branch only:
one image per patient (the first of each ``Case``), malignant = 1, trained on the GE Logiq 7 scanner
(80 % of its patients; the other 20 % are the ``internal`` test set) and tested on each other scanner
(``logiq5``, ``aplio300``, ``usystems``). No clinical factor is used (BI-RADS would leak the
outcome), so the "clinical-radiomics" model is the tumour score alone.

    python benchmarks/busbra_run.py --out /tmp/busbra [--deep none|auto|off] [--preset paper|us2d]

Images are read in place from ``../shared/data/busbra``; nothing is copied into the repository.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"
SPLIT_OF_DEVICE = {
    "GE Logiq 5 @10-12MHz": "logiq5",
    "Toshiba Aplio 300 @12-14 MHz": "aplio300",
    "U-Systems @10-14MHz": "usystems",
}
TRAIN_DEVICE = "GE Logiq 7 @10-14MHz"


def write_manifest(out: Path, seed: int = 0) -> Path:
    """One row per patient: first image of each case; splits by scanner."""
    data = pd.read_csv(BUSBRA / "bus_data.csv")
    first = data.sort_values("ID").groupby("Case", sort=True).head(1)
    rng = np.random.default_rng(seed)
    rows = []
    train_cases = first.loc[first["Device"] == TRAIN_DEVICE, "Case"].to_numpy()
    internal = set(rng.choice(train_cases, size=round(0.2 * len(train_cases)), replace=False).tolist())
    for _, r in first.iterrows():
        if r["Device"] == TRAIN_DEVICE:
            split = "internal" if r["Case"] in internal else "train"
        else:
            split = SPLIT_OF_DEVICE[r["Device"]]
        rows.append(
            {
                "case_id": r["ID"],
                "label": int(r["Pathology"] == "malignant"),
                "split": split,
                "center": r["Device"].split(" @")[0],
                "tumor_image": str(BUSBRA / "Images" / f"{r['ID']}.png"),
                "tumor_mask": str(BUSBRA / "Masks" / f"mask_{r['ID'].removeprefix('bus_')}.png"),
            }
        )
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    (out / "study.yaml").write_text(
        "test_splits: [internal, logiq5, aplio300, usystems]\n"
        "settings:\n  description: BUS-BRA benign vs malignant (tumour region only), split by scanner\n"
    )
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/alnm-busbra")
    parser.add_argument("--deep", default="auto")
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument(
        "--normalize",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="standardise each image's intensities before extraction (default: on)",
    )
    args = parser.parse_args(argv)
    if not BUSBRA.is_dir():
        print(f"BUS-BRA not found at {BUSBRA}", file=sys.stderr)
        return 2
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.pipeline import PipelineSettings, run_pipeline

    out = Path(args.out)
    manifest = write_manifest(out / "cohort")
    cohort = load_manifest(manifest)
    settings = PipelineSettings(
        handcrafted=args.preset, deep=args.deep, normalize=args.normalize, workers=args.workers
    )
    start = time.perf_counter()
    trained, evaluated = run_pipeline(cohort, out / "run", settings, command="benchmarks/busbra_run.py")
    seconds = time.perf_counter() - start
    table3 = evaluated.evaluation.tables["table3"]
    rows = table3[table3["model"] == "clinical_radiomics"][
        ["split", "n", "n_events", "auc", "auc_low", "auc_high"]
    ]
    print(rows.to_string(index=False))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.python_version()}",
        "seconds": round(seconds, 1),
        "settings": {"preset": args.preset, "deep": args.deep, "normalize": args.normalize},
        "selected_features": list(trained.model.region_scores_["tumor"].selected_),
        "deep_weights": (trained.bundle_info.get("extraction") or {}).get("deep"),
        "auc": rows.to_dict(orient="records"),
    }
    (out / "busbra_result.json").write_text(json.dumps(result, indent=2, default=str))
    print(f"{seconds:.0f} s; report: {evaluated.report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
