"""A test model and SYNTHETIC cases shared by test_casepredict.py and test_slicer_logic.py (built once per process).

The model is the committed SYNTHETIC demo model (``Resources/Models/DemoModel.zip``: us2d handcrafted
features, tumour and LN scores) with two clinical factors added to its clinical-radiomics model
(``us_reported_alnm``, categorical, and ``tumor_size_cm``, continuous), so that the tests exercise
images, scores and clinical factors together. It is saved as a bundle by ``pipeline.save_model``: the
Slicer logic, ``casepredict`` and ``alnm predict`` all load the same files.
"""

from __future__ import annotations

import atexit
import copy
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

#: clinical factors added to the demo model's combined model, with their coefficients
ADDED = {"us_reported_alnm[present]": 1.3, "tumor_size_cm": 0.35}


@dataclass(frozen=True)
class SharedModel:
    """Where the test model and the demo cases live."""

    root: Path
    model_dir: Path
    cases_dir: Path


@functools.lru_cache(maxsize=1)
def shared_model() -> SharedModel:
    """Build (once per test process) the test model; its folder is removed when the process ends."""
    from ALNMPredictorLib.demomodel import DEMO_MODEL_RESOURCE
    from ALNMPredictorLib.modeling import LogisticModel
    from ALNMPredictorLib.pipeline import load_model, save_model

    root = Path(tempfile.mkdtemp(prefix="alnm-test-model-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    loaded = load_model(DEMO_MODEL_RESOURCE)  # a stale committed demo model fails here, loudly
    model = copy.deepcopy(loaded.model)
    base = model.combined_model_
    model.combined_model_ = LogisticModel(
        name=base.name,
        variables=[*base.variables, "us_reported_alnm", "tumor_size_cm"],
        encoding={
            **base.encoding,
            "us_reported_alnm": {
                "type": "categorical",
                "reference": "absent",
                "levels": ["absent", "present"],
            },
            "tumor_size_cm": {"type": "numeric"},
        },
        coefficients={**base.coefficients, **ADDED},
        cutoff=base.cutoff,
        ranges={**base.ranges, "tumor_size_cm": [0.5, 8.0]},
    )
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    model_dir = save_model(root / "model", model, info, loaded.deep_models)
    return SharedModel(root, Path(model_dir), root / "cases")
