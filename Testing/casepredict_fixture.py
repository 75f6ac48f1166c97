"""A test model and SYNTHETIC cases shared by test_casepredict.py and test_slicer_logic.py (built once per process).

The model is the committed SYNTHETIC demo model (``Resources/Models/DemoModel.zip``: us2d handcrafted
features, tumour and LN scores) with its clinical-radiomics model set to both region scores and two
clinical factors (``us_reported_alnm``, categorical, and ``tumor_size_cm``, continuous), whatever the
demo fit's backward stepwise kept, so that the tests exercise images, both scores and clinical factors
together. It is saved as a bundle by ``pipeline.save_model``: the
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

#: clinical factors of the test model's combined model, with their coefficients
ADDED = {"us_reported_alnm[present]": 1.3, "tumor_size_cm": 0.35}
#: coefficient and nomogram range of a region score the demo fit's stepwise did not keep
SCORE_DEFAULT = (0.9, [-3.0, 3.0])


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
    scores = ["tumor_score", "ln_score"]
    model.combined_model_ = LogisticModel(
        name=base.name,
        variables=[*scores, "us_reported_alnm", "tumor_size_cm"],
        encoding={
            **{score: {"type": "numeric"} for score in scores},
            "us_reported_alnm": {
                "type": "categorical",
                "reference": "absent",
                "levels": ["absent", "present"],
            },
            "tumor_size_cm": {"type": "numeric"},
        },
        coefficients={
            "(Intercept)": base.coefficients["(Intercept)"],
            **{score: base.coefficients.get(score, SCORE_DEFAULT[0]) for score in scores},
            **ADDED,
        },
        cutoff=base.cutoff,
        ranges={
            **{score: base.ranges.get(score, SCORE_DEFAULT[1]) for score in scores},
            "tumor_size_cm": [0.5, 8.0],
        },
    )
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    model_dir = save_model(root / "model", model, info, loaded.deep_models)
    return SharedModel(root, Path(model_dir), root / "cases")
