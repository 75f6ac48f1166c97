"""The SYNTHETIC demo model embedded in the extension, and the demo cases the Slicer panel opens.

:func:`ensure_demo_model` gives the committed model (``Resources/Models/DemoModel.zip``) or trains one on
first use; :func:`build_demo_model` is how the committed one is made; :func:`demo_case` reads one patient
of a small synthetic cohort as the panel's inputs (:class:`~ALNMPredictorLib.casepredict.RegionArrays`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ALNMPredictorLib.casepredict import COMBINED, RegionArrays
from ALNMPredictorLib.clinicalform import is_missing
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError

__all__ = ["DEMO_MODEL_RESOURCE", "DemoCase", "build_demo_model", "demo_case", "ensure_demo_model"]

log = logging.getLogger(__name__)

RESOURCES = Path(__file__).resolve().parent.parent / "Resources"
#: the committed SYNTHETIC demo model (a zipped bundle) and its training predictions (for calibration)
DEMO_MODEL_RESOURCE = RESOURCES / "Models" / "DemoModel.zip"
DEMO_PREDICTIONS_RESOURCE = RESOURCES / "Models" / "DemoModel.predictions.csv"
#: how the demo model is trained: synthetic cohort size and seed, pipeline settings
DEMO_PATIENTS = 200
DEMO_SEED = 0
#: (no optimism bootstrap: the panel does not show it, and it would make a first-use build take minutes, not
#: about one; ``alnm demo`` runs it)
DEMO_SETTINGS: dict[str, Any] = {"handcrafted": "us2d", "deep": "off", "seed": 0, "optimism_boot": 0}
#: the demo cases come from another synthetic cohort than the demo model's training cohort
DEMO_CASE_PATIENTS = 20
DEMO_CASE_SEED = 1


def build_demo_model(
    work_dir: str | os.PathLike[str],
    *,
    zip_to: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> Path:
    """Train the SYNTHETIC demo model in ``work_dir`` (cohort, features, model); optionally zip it.

    Returns the model folder (or the zip). ``zip_to`` also writes ``<zip stem>.predictions.csv`` (split,
    label, probability: enough for the calibration plot).
    """
    from ALNMPredictorLib import synth
    from ALNMPredictorLib.fileio import atomic_path, write_table
    from ALNMPredictorLib.pipeline import PipelineSettings, train

    work = Path(work_dir)
    cohort_dir = work / "cohort"
    manifest = synth.existing_cohort(cohort_dir, DEMO_PATIENTS, DEMO_SEED)
    if manifest is None:
        manifest = synth.synth_cohort(
            cohort_dir, DEMO_PATIENTS, DEMO_SEED, workers=workers or 1, progress=progress
        ).manifest_path
    settings = PipelineSettings.from_sources(DEMO_SETTINGS, {"workers": workers})
    result = train(manifest, work / "run", settings, progress=progress)
    if zip_to is None:
        return result.model_dir
    import zipfile

    target = Path(zip_to)
    with atomic_path(target) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(result.model_dir.iterdir()):
            archive.write(file, file.name)
    keep = [c for c in ("split", "label", f"prob_{COMBINED}") if c in result.predictions.columns]
    write_table(
        target.with_name(target.name.removesuffix(".zip") + ".predictions.csv"),
        result.predictions[keep].reset_index().round(10),
    )
    return target


def ensure_demo_model(work_dir: str | os.PathLike[str] | None = None, *, progress: bool = False) -> Path:
    """A usable SYNTHETIC demo model: the committed one, else one trained in ``work_dir`` on first use."""
    from ALNMPredictorLib.pipeline import load_model

    try:
        load_model(DEMO_MODEL_RESOURCE)
        return DEMO_MODEL_RESOURCE
    except (BundleError, OSError, KeyError, TypeError, ALNMError) as exc:
        if work_dir is None:
            raise ALNMError(
                f"the committed demo model cannot be used ({exc}); give a folder to train one in"
            ) from exc
        log.warning("committed demo model not usable (%s); training one in %s", exc, work_dir)
    built = Path(work_dir) / "run" / "model"
    if (built / "model.json").is_file():
        try:
            load_model(built)
            return built
        except ALNMError as exc:
            log.warning(
                "the demo model trained earlier in %s is not usable (%s); training it again", built, exc
            )
    return build_demo_model(work_dir, progress=progress)


@dataclass
class DemoCase:
    """One SYNTHETIC patient: arrays per region, clinical factors, true label and where its files are."""

    case_id: str
    label: int | None
    split: str
    regions: dict[str, RegionArrays]
    clinical: dict[str, Any]
    files: dict[str, tuple[Path, Path]] = field(default_factory=dict)


def demo_case(folder: str | os.PathLike[str], index: int = 0) -> DemoCase:
    """The ``index``-th test-set patient of a small SYNTHETIC cohort (written to ``folder`` on first use)."""
    from ALNMPredictorLib import synth
    from ALNMPredictorLib.cohort import load_manifest
    from ALNMPredictorLib.imaging import load_image, load_mask

    folder = Path(folder)
    manifest = synth.existing_cohort(folder, DEMO_CASE_PATIENTS, DEMO_CASE_SEED)
    if manifest is None:
        manifest = synth.synth_cohort(folder, DEMO_CASE_PATIENTS, DEMO_CASE_SEED).manifest_path
    cohort = load_manifest(manifest)
    tests = [c for c in cohort.case_ids() if c not in set(cohort.case_ids(cohort.train_split))]
    ids = tests or cohort.case_ids()
    case_id = ids[int(index) % len(ids)]
    row = cohort.table.loc[case_id]
    regions, files = {}, {}
    for region in cohort.regions:
        inputs = cohort.region_inputs(case_id, region)
        if inputs is None:
            raise InputError("no image or mask in the demo cohort", case=case_id, column=f"{region}_image")
        image = load_image(inputs.image_path, spacing=inputs.spacing)
        array = image.array.astype(np.uint8) if image.original_dtype == "uint8" else image.array
        mask = load_mask(inputs.mask_path, label=inputs.mask_label)
        regions[region] = RegionArrays(array, mask, image.spacing, source=Path(inputs.image_path).name)
        files[region] = (Path(inputs.image_path), Path(inputs.mask_path))
    clinical = {name: (None if is_missing(row[name]) else row[name]) for name in cohort.clinical}
    labels = cohort.labels()
    label = labels.get(case_id)
    return DemoCase(
        str(case_id),
        None if label is None or pd.isna(label) else int(label),
        str(row.get(cohort.split_column, "")),
        regions,
        clinical,
        files,
    )
