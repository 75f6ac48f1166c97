"""A test model with deep features whose region scores keep deep terms (for Grad-CAM in casepredict and Slicer).

It is the shared test model of :mod:`casepredict_fixture` plus a deep head per region (random VGG19
backbone, 64 px crops, trained on the first demo cases) and two deep features added to each region score
with their training means, SDs and ranges, so that both heatmap targets exist: the head's logit and the
score's deep part. Saved by ``pipeline.save_model``, so every consumer loads the same files.
"""

from __future__ import annotations

import functools
import tempfile
import warnings
from pathlib import Path

#: crop size of the test heads (VGG19's last block is 4 x 4: cheap, and still a map)
SIZE = 64
#: demo cases the heads are trained on (both labels among them)
N_CASES = 8


@functools.lru_cache(maxsize=1)
def deep_score_model() -> Path:
    """Build (once per process) and return the model folder."""
    import numpy as np
    from casepredict_fixture import shared_model

    from ALNMPredictorLib import demomodel
    from ALNMPredictorLib.deep import DeepFeatureExtractor, crop_roi
    from ALNMPredictorLib.pipeline import load_model, save_model
    from ALNMPredictorLib.selection import RegionScore

    shared = shared_model()
    loaded = load_model(shared.model_dir)
    cases = [demomodel.demo_case(shared.cases_dir, i) for i in range(N_CASES)]
    labels = np.array([c.label for c in cases])
    assert set(labels) == {0, 1}, labels
    heads = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for region in ("tumor", "ln"):
            head = DeepFeatureExtractor(
                weights="none", input_size=SIZE, epochs=5, n_views=0, val_fraction=0.0, device="cpu"
            )
            crops = np.stack(
                [crop_roi(c.regions[region].image, c.regions[region].mask, head.margin, SIZE) for c in cases]
            )
            heads[region] = head.fit(crops, labels)
            features = head.transform(crops)
            # two features that vary and are active for the first demo case (the one the panel tests load)
            picks = [int(j) for j in np.flatnonzero((features.std(axis=0) > 0) & (features[0] > 0))[:2]]
            assert len(picks) == 2
            saved = loaded.model.region_scores_[region].to_dict()
            names = [f"{region}_deep_{j:03d}" for j in picks]
            saved["selected"] += names
            saved["coefficients"] += [0.6, -0.4]
            saved["means"] += [float(features[:, j].mean()) for j in picks]
            saved["sds"] += [float(features[:, j].std()) for j in picks]
            if "mins" in saved:  # ranges wide enough that no demo case is clipped (its gradient stays)
                saved["mins"] += [float(features[:, j].min()) - 1.0 for j in picks]
                saved["maxs"] += [float(features[:, j].max()) + 1.0 for j in picks]
            loaded.model.region_scores_[region] = RegionScore.from_dict(saved)
    info = {k: v for k, v in loaded.info.items() if k not in ("model", "deep_heads")}
    root = Path(tempfile.mkdtemp(prefix="alnm-gradcam-model-", dir=shared.root))
    return Path(save_model(root / "model", loaded.model, info, heads))
