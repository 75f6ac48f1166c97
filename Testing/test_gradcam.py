"""Grad-CAM: the maps are the gradients they claim to be, on the right crop and image geometry; the sanity check."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch

from ALNMPredictorLib import gradcam
from ALNMPredictorLib.deep import LAST_CONV_RELU, DeepFeatureExtractor, crop_box, crop_roi
from ALNMPredictorLib.errors import ALNMError
from ALNMPredictorLib.selection import RegionScore

pytestmark = pytest.mark.filterwarnings("ignore::ALNMPredictorLib.deep.RandomWeightsWarning")

#: 96 px crops: the last convolutional block is 6 x 6 (36 positions), enough for rank correlations, and cheap
SIZE = 96


def _cohort(n: int, seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Noisy images with a rectangular ROI; label 1 has a bright spot inside the ROI."""
    rng = np.random.default_rng(seed)
    pairs, labels = [], []
    for i in range(n):
        label = i % 2
        img = rng.integers(0, 200, (96, 112), dtype=np.uint8)
        mask = np.zeros(img.shape, np.uint8)
        r, c = rng.integers(5, 40, size=2)
        mask[r : r + 40, c : c + 50] = 1
        if label:
            rr, cc = r + rng.integers(5, 25), c + rng.integers(5, 30)
            img[rr : rr + 12, cc : cc + 14] = 255
        pairs.append((img, mask))
        labels.append(label)
    return pairs, np.array(labels)


@pytest.fixture(scope="module")
def trained():
    pairs, labels = _cohort(16, 0)
    extractor = DeepFeatureExtractor(
        weights="none", input_size=SIZE, epochs=15, patience=15, n_views=0, val_fraction=0.0, device="cpu"
    )
    crops = np.stack([crop_roi(i, m, size=SIZE) for i, m in pairs])
    extractor.fit(crops, labels)
    return extractor, pairs, crops


def _score(
    extractor: DeepFeatureExtractor, crops: np.ndarray, picks: list[int], clip_first: bool = False
) -> RegionScore:
    """A fitted tumour score keeping deep features ``picks`` (plus one handcrafted term), as a bundle stores it."""
    features = extractor.transform(crops)
    names = [f"tumor_deep_{j:03d}" for j in picks] + ["tumor_original_firstorder_Mean"]
    means = [float(features[:, j].mean()) for j in picks] + [100.0]
    sds = [float(features[:, j].std()) or 1.0 for j in picks] + [20.0]
    mins = [float(features[:, j].min()) for j in picks] + [0.0]
    maxs = [float(features[:, j].max()) for j in picks] + [255.0]
    if clip_first:  # a training range the cases lie above: the first term is clipped for every case
        mins[0] = maxs[0] = float(features[:, picks[0]].min()) - 1.0
    return RegionScore.from_dict(
        {
            "kind": "ALNMPredictor.RegionScore",
            "version": 2,
            "params": {"region": "tumor"},
            "selected": names,
            "intercept": -0.4,
            "coefficients": [0.8, -0.5, 0.3][: len(picks)] + [0.2],
            "means": means,
            "sds": sds,
            "mins": mins,
            "maxs": maxs,
            "lambda": 0.01,
        }
    )


def _active(extractor: DeepFeatureExtractor, crops: np.ndarray, crop_index: int) -> list[int]:
    """Three deep features that are non-zero for the crop and vary over the crops."""
    features = extractor.transform(crops)
    ok = np.flatnonzero((features[crop_index] > 0) & (features.std(axis=0) > 0))
    assert len(ok) >= 3
    return [int(j) for j in ok[:3]]


def _hooked(extractor: DeepFeatureExtractor, crop: np.ndarray, target) -> np.ndarray:
    """Grad-CAM the way hook libraries compute it: a forward hook keeps the layer's output, the whole network
    is run with gradients from the input, and the target is back-propagated (an independent reference)."""
    trunk = copy.deepcopy(extractor.current_trunk())
    trunk[LAST_CONV_RELU].inplace = False  # same values; keeps the hooked tensor itself
    head = copy.deepcopy(extractor.head_).eval()
    kept = {}

    def keep(module, inputs, output) -> None:
        output.retain_grad()
        kept["a"] = output

    handle = trunk[LAST_CONV_RELU].register_forward_hook(keep)
    x = torch.from_numpy(crop[None].copy()).requires_grad_(True)
    features = head.features(trunk(x).mean(dim=(2, 3)))
    target(features, head.classifier(features)).backward()
    handle.remove()
    a = kept["a"]
    return (a.grad.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)[0].detach().numpy()


def test_head_map_is_the_gradient_of_the_heads_alnm_logit(trained) -> None:
    extractor, _, crops = trained
    crop = crops[1]
    maps = gradcam.crop_heatmaps(extractor, crop, region="tumor", case_id="P1")
    assert list(maps) == ["head"]  # no score given: the head's map only
    head = maps["head"]
    assert head.signed.shape == (SIZE // 16, SIZE // 16) and head.cam.shape == (SIZE, SIZE)
    logits = extractor._head_rows(extractor.trunk_features(crop[None]), logits=True)[0]
    # the same kernels on the same single crop, the trunk run in two parts instead of one: float32 rounding only
    assert head.value == pytest.approx(float(logits[1] - logits[0]), rel=1e-5, abs=1e-6)
    reference = _hooked(extractor, crop, lambda f, logit: logit[0, 1] - logit[0, 0])
    # the same gradient through another graph (from the input, not from a leaf at the layer): float32 rounding
    np.testing.assert_allclose(head.signed, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())
    assert (head.cam >= 0).all() and head.relative().max() == pytest.approx(1.0)
    assert "case P1, tumor: deep head's ALNM logit" in head.title()


def test_score_map_follows_the_lasso_weights_and_clipping(trained) -> None:
    extractor, _, crops = trained
    picks = _active(extractor, crops, 1)
    score = _score(extractor, crops, picks)
    maps = gradcam.crop_heatmaps(extractor, crops[1], region="tumor", score=score, case_id="P1")
    assert list(maps) == ["head", "score"]
    features = extractor.transform(crops[1:2])[0]
    table = pd.DataFrame(
        [
            {
                **{f"tumor_deep_{j:03d}": float(features[j]) for j in picks},
                "tumor_original_firstorder_Mean": 100.0,
            }
        ],
        index=["P1"],
    )
    # the handcrafted term sits at its mean: the score is the intercept plus the deep part (float32 vs float64)
    assert maps["score"].value - 0.4 == pytest.approx(
        float(score.decision_function(table).iloc[0]), rel=1e-5, abs=1e-6
    )
    coef = dict(zip(score.selected_, score.coef_, strict=True))
    sds = dict(zip(score.selected_, score.sds_, strict=True))
    per_feature = [_hooked(extractor, crops[1], lambda f, logit, j=j: f[0, j]) for j in picks]
    expected = sum(
        coef[f"tumor_deep_{j:03d}"] / sds[f"tumor_deep_{j:03d}"] * m
        for j, m in zip(picks, per_feature, strict=True)
    )
    # the score is linear in the standardised features: its map is the LASSO-weighted sum of the features' maps
    np.testing.assert_allclose(maps["score"].signed, expected, rtol=1e-4, atol=1e-5 * np.abs(expected).max())
    clipped = gradcam.crop_heatmaps(
        extractor, crops[1], region="tumor", score=_score(extractor, crops, picks, clip_first=True)
    )["score"]
    rest = sum(
        coef[f"tumor_deep_{j:03d}"] / sds[f"tumor_deep_{j:03d}"] * m
        for j, m in zip(picks[1:], per_feature[1:], strict=True)
    )
    # a feature clipped to its training range does not move the score, so it adds nothing to the map
    np.testing.assert_allclose(clipped.signed, rest, rtol=1e-4, atol=1e-5 * np.abs(rest).max())
    # a score without deep features of this region has no score map
    other = _score(extractor, crops, picks)
    other.selected_ = ["tumor_original_firstorder_Mean"]
    assert "score" not in gradcam.crop_heatmaps(extractor, crops[1], region="tumor", score=other)
    assert "score" not in gradcam.crop_heatmaps(extractor, crops[1], region="ln", score=score)


def test_image_heatmap_uses_the_models_crop_and_maps_back_into_its_box(trained) -> None:
    extractor, pairs, crops = trained
    image, mask = pairs[3]
    maps = gradcam.image_heatmaps(extractor, image, mask, region="tumor", case_id="P3")
    head = maps["head"]
    np.testing.assert_array_equal(head.crop, crops[3])
    assert head.box == crop_box(mask, extractor.margin) and head.image_shape == image.shape
    assert head.roi.shape == (SIZE, SIZE) and head.roi.any() and not head.roi.all()
    on_image = head.on_image()
    r0, r1, c0, c1 = head.box
    assert on_image.shape == image.shape and on_image.dtype == np.float32
    outside = np.ones(image.shape, bool)
    outside[r0:r1, c0:c1] = False
    assert (on_image[outside] == 0).all() and on_image[r0:r1, c0:c1].max() > 0.9
    # the hottest part of the crop lands on the same part of the box (bilinear resampling both ways)
    peak_r, peak_c = np.unravel_index(np.argmax(head.relative()), head.relative().shape)
    img_r, img_c = np.unravel_index(np.argmax(on_image), on_image.shape)
    assert abs((img_r - r0) / (r1 - r0) - (peak_r + 0.5) / SIZE) < 0.1
    assert abs((img_c - c0) / (c1 - c0) - (peak_c + 0.5) / SIZE) < 0.1
    bare = gradcam.crop_heatmaps(extractor, crops[3], region="tumor")["head"]
    with pytest.raises(ALNMError, match="no image geometry"):
        bare.on_image()
    with pytest.raises(ALNMError, match=r"crop must have shape \(3, 96, 96\)"):
        gradcam.crop_heatmaps(extractor, crops[3][:, :32, :32], region="tumor")


def test_a_cases_map_does_not_depend_on_the_cases_computed_before_it(trained) -> None:
    extractor, _, crops = trained
    first = gradcam.crop_heatmaps(extractor, crops[5], region="tumor")["head"]
    for i in (0, 9, 2):
        gradcam.crop_heatmaps(extractor, crops[i], region="tumor")
    again = gradcam.crop_heatmaps(extractor, crops[5], region="tumor")["head"]
    # one crop per call in the same process: only float32 rounding could differ (1e-6 relative is ~8 ulps)
    np.testing.assert_allclose(again.signed, first.signed, rtol=1e-6, atol=1e-7 * np.abs(first.signed).max())


def test_sanity_check_a_randomised_head_gives_other_maps(trained) -> None:
    """Adebayo et al. 2018: re-drawing the head's weights must change the map. Threshold 0.5: a random head's
    map sharing a quarter of its rank variance (ρ²) with the trained one's would be suspect, and a map blind
    to the head (e.g. the mean activation) gives ρ = 1 (next test). Measured here: per-seed means from -0.22
    to 0.51 over seeds 1-5 (random heads still weight the same trunk activations, which share spatial
    structure), 0.24 averaged over the five; that average is what is tested."""
    extractor, _, crops = trained
    check = gradcam.sanity_check(extractor, crops[:10])
    assert check.seeds == (1, 2, 3, 4, 5) and len(check.spearman) == 10
    assert all(-1 <= r <= 1 for r in check.spearman)
    assert check.mean < 0.5, check
    head = gradcam.randomised_head(extractor, seed=1)
    assert torch.equal(head.mean, extractor.head_.mean) and not torch.equal(
        head.bottleneck.weight, extractor.head_.bottleneck.weight
    )
    assert torch.equal(gradcam.randomised_head(extractor, seed=1).classifier.weight, head.classifier.weight)


def test_sanity_check_fails_a_map_that_ignores_the_head(trained, monkeypatch) -> None:
    """The negative control: if the "randomised" head were the trained one (a map blind to the weights), the
    check must see it (ρ = 1), so the threshold above can fail."""
    extractor, _, crops = trained
    monkeypatch.setattr(gradcam, "randomised_head", lambda ext, seed=1: copy.deepcopy(ext.head_).eval())
    check = gradcam.sanity_check(extractor, crops[:4], seeds=(1,))
    assert check.mean == pytest.approx(1.0) and not check.mean < 0.5


def test_png_is_written_whole_with_a_colour_bar(trained, tmp_path) -> None:
    extractor, pairs, _ = trained
    head = gradcam.image_heatmaps(extractor, *pairs[1], region="tumor", case_id="P 1/x")["head"]
    name = gradcam.file_name("P 1/x", "tumor", "head")
    assert name == "P_1_x_tumor_head.png"
    path = gradcam.save_heatmap(head, tmp_path / name, synthetic=True)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    fig = gradcam.heatmap_figure(head)
    assert len(fig.axes) == 2 and "share of this map's maximum" in fig.axes[1].get_ylabel()


def test_gallery_picks_the_most_confident_of_each_category_per_test_set() -> None:
    rows = []
    for split in ("train", "internal"):
        for i, (label, prob) in enumerate(
            [(1, 0.9), (1, 0.7), (1, 0.2), (0, 0.8), (0, 0.1), (0, 0.05), (1, 0.95)]
        ):
            rows.append(
                {
                    "case_id": f"{split[0]}{i}",
                    "split": split,
                    "label": label,
                    "status": "ok",
                    "prob_clinical_radiomics": prob,
                    "risk_group": "high" if prob >= 0.5 else "low",
                }
            )
    rows.append(
        {
            "case_id": "bad",
            "split": "internal",
            "label": 1,
            "status": "failed",
            "prob_clinical_radiomics": math.nan,
            "risk_group": "",
        }
    )
    predictions = pd.DataFrame(rows).set_index("case_id")
    chosen = gradcam.gallery_cases(predictions, "train", per_category=2)
    assert chosen == [
        ("internal", "true positive", "i6"),
        ("internal", "true positive", "i0"),
        ("internal", "false negative", "i2"),
        ("internal", "false positive", "i3"),
        ("internal", "true negative", "i5"),
        ("internal", "true negative", "i4"),
    ]
    assert gradcam.gallery_cases(predictions.drop(columns=["risk_group"]), "train") == []


def test_cohort_heatmaps_name_a_case_that_cannot_be_read_and_go_on(trained, tmp_path) -> None:
    from PIL import Image

    from ALNMPredictorLib.cohort import load_manifest

    extractor, pairs, _ = trained
    rows = []
    for i in (1, 2):
        Image.fromarray(pairs[i][0]).save(tmp_path / f"img{i}.png")
        Image.fromarray((pairs[i][1] > 0).astype(np.uint8) * 255).save(tmp_path / f"mask{i}.png")
        rows.append(
            {
                "case_id": f"C{i}",
                "label": i % 2,
                "split": "internal",
                "tumor_image": f"img{i}.png",
                "tumor_mask": f"mask{i}.png",
            }
        )
    rows[1]["tumor_image"] = "missing.png"
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    cohort = load_manifest(tmp_path / "manifest.csv")
    table = gradcam.cohort_heatmaps(cohort, {"tumor": extractor}, None, ["C1", "C2"], tmp_path / "maps")
    assert list(table["case_id"]) == ["C1", "C2"] and list(table["target"]) == ["head", ""]
    assert (tmp_path / "maps" / table.loc[0, "file"]).is_file() and table.loc[1, "file"] == ""
    assert re.search(r"case C2, column tumor_image .*missing\.png", table.loc[1, "error"])
    alone = gradcam.image_heatmaps(extractor, pairs[1][0], pairs[1][1] > 0, region="tumor")["head"]
    # the file round trip gives the same pixels and mask: only float32 rounding may differ
    assert table.loc[0, "value"] == pytest.approx(alone.value, rel=1e-6, abs=1e-7)


# ----- one case (the Slicer panel's path) -------------------------------------------------------------


def test_case_heatmaps_explain_the_numbers_the_prediction_used() -> None:
    from casepredict_fixture import shared_model
    from gradcam_fixture import deep_score_model

    from ALNMPredictorLib import casepredict as cp
    from ALNMPredictorLib import demomodel

    loaded = cp.load_model_cached(deep_score_model())
    case = demomodel.demo_case(shared_model().cases_dir, 0)
    clinical = {**case.clinical, "us_reported_alnm": "present", "tumor_size_cm": 2.5}
    prediction = cp.predict_case(loaded, case.regions, clinical, case.case_id)
    maps = cp.case_heatmaps(loaded, case.regions, case.case_id)
    assert sorted(maps) == ["ln", "tumor"] and all(sorted(m) == ["head", "score"] for m in maps.values())
    for region, region_maps in maps.items():
        scorer = loaded.model.region_scores_[region]
        deep_part = sum(
            float(scorer.coef_[f])
            * (min(max(float(prediction.features[f]), scorer.lower_[f]), scorer.upper_[f]) - scorer.means_[f])
            / scorer.sds_[f]
            for f in scorer.selected_
            if "_deep_" in f
        )
        # the same crop and head as the prediction's features, in float32 (the score sums in float64)
        assert region_maps["score"].value == pytest.approx(deep_part, rel=1e-5, abs=1e-6)
        image = np.asarray(case.regions[region].image)
        assert region_maps["head"].on_image().shape == image.shape[:2]
    demo = cp.load_model_cached(demomodel.DEMO_MODEL_RESOURCE)
    assert cp.case_heatmaps(demo, case.regions, case.case_id) == {}  # no deep features, no heatmaps


# ----- the command line: weights downloaded with consent, predict --heatmaps, the report's gallery ------


def _cohort_with_small_crops(root) -> object:
    import yaml

    from ALNMPredictorLib.synth import synth_cohort

    cohort = synth_cohort(root / "cohort", n_patients=40, seed=5)
    params = root / "firstorder.yaml"  # a few handcrafted features: this test is about the deep ones
    params.write_text(
        "imageType:\n  Original: {}\nfeatureClass:\n  shape2D:\n  firstorder:\n"
        "setting:\n  binWidth: 5\n  force2D: true\n  force2Ddimension: 0\n  label: 1\n"
    )
    study_path = cohort.manifest_path.parent / "study.yaml"
    study = yaml.safe_load(study_path.read_text())
    # 32 px crops and 2 epochs keep the VGG19 work of a test small
    study["settings"].update(
        {"deep_input_size": 32, "deep_epochs": 2, "handcrafted": str(params), "lasso_folds": 5, "n_boot": 20}
    )
    study_path.write_text(yaml.safe_dump(study, sort_keys=False))
    return cohort


def _subset(manifest, ids: list[str], path) -> str:
    table = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    table = table[table["case_id"].isin(ids)]
    for column in [c for c in table.columns if c.endswith(("_image", "_mask", "_reader2", "_repeat"))]:
        table[column] = [str(manifest.parent / v) if v else "" for v in table[column]]
    table.to_csv(path, index=False)
    (path.parent / "study.yaml").write_text((manifest.parent / "study.yaml").read_text())
    return str(path)


def test_cli_downloads_with_consent_draws_heatmaps_and_refuses_another_backbone(
    tmp_path, monkeypatch, capsys
) -> None:
    import hashlib
    import json

    from weights_server import serve

    from ALNMPredictorLib import deep
    from ALNMPredictorLib.cli import main as alnm
    from ALNMPredictorLib.deep import VGG19_FILENAME, random_trunk

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(deep.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(deep.ALLOW_DOWNLOAD_ENV, raising=False)
    weights = (
        tmp_path / "served.pth"
    )  # a stand-in for torchvision's file: a VGG19 state dict with its checksum
    torch.save({f"features.{k}": v for k, v in random_trunk(5).state_dict().items()}, weights)
    blob = weights.read_bytes()
    monkeypatch.setattr(deep, "IMAGENET_SHA256_PREFIX", hashlib.sha256(blob).hexdigest()[:8])
    cohort = _cohort_with_small_crops(tmp_path)
    manifest = str(cohort.manifest_path)
    cache = deep.imagenet_cache_path()
    with serve({f"/{VGG19_FILENAME}": blob}) as base:
        monkeypatch.setattr(deep, "VGG19_URL", f"{base}/{VGG19_FILENAME}")
        # without consent: nothing downloaded, the run stops before any work with what to do
        assert (
            alnm(
                [
                    "train",
                    manifest,
                    "--out",
                    str(tmp_path / "refused"),
                    "--deep",
                    "imagenet",
                    "--workers",
                    "1",
                    "--no-progress",
                ]
            )
            == 2
        )
        err = capsys.readouterr().err
        assert "--download" in err and VGG19_FILENAME in err and str(cache) in err and "--deep none" in err
        assert not cache.parent.exists() and not (tmp_path / "refused" / "features").exists()
        status = alnm(
            [
                "run",
                manifest,
                "--out",
                str(tmp_path / "run"),
                "--deep",
                "imagenet",
                "--download",
                "--workers",
                "2",
                "--no-progress",
                "--optimism-boot",
                "0",
            ]
        )
        assert status in (0, 1), capsys.readouterr().err
    assert cache.read_bytes() == blob and sorted(p.name for p in cache.parent.iterdir()) == [VGG19_FILENAME]
    model_dir = tmp_path / "run" / "model"
    head = json.loads((model_dir / "deep_tumor.json").read_text())
    assert (
        head["backbone"]["weights"] == "imagenet"
        and head["backbone"]["sha256"] == hashlib.sha256(blob).hexdigest()
    )
    assert head["backbone"]["torchvision_weights"] == "VGG19_Weights.IMAGENET1K_V1"

    # predict with heatmaps (the weights now come from the cache, no server), on four cases
    maps = tmp_path / "maps"
    four = pd.read_csv(manifest, dtype=str)["case_id"].tolist()[-4:]
    (tmp_path / "four").mkdir()
    status = alnm(
        [
            "predict",
            _subset(cohort.manifest_path, four, tmp_path / "four" / "manifest.csv"),
            "--model",
            str(model_dir),
            "--out",
            str(tmp_path / "pred.csv"),
            "--heatmaps",
            str(maps),
            "--workers",
            "1",
            "--no-progress",
        ]
    )
    assert status in (0, 1)
    predictions = pd.read_csv(tmp_path / "pred.csv", dtype={"case_id": str})
    listing = pd.read_csv(maps / "heatmaps.csv", dtype={"case_id": str}, keep_default_na=False)
    ok = set(predictions.loc[predictions["status"] == "ok", "case_id"])
    heads = listing[listing["target"] == "head"]
    assert len(ok) == 4 and set(heads["case_id"]) == ok and sorted(set(heads["region"])) == ["ln", "tumor"]
    assert len(heads) == 8
    assert all((maps / f).is_file() for f in listing["file"]) and (listing["error"] == "").all()
    assert "heatmap(s) written to" in capsys.readouterr().out

    # the run's report: a gallery of heatmaps per test set and the sanity check
    html = (tmp_path / "run" / "report" / "report.html").read_text()
    section = html[html.index('<section id="heatmaps">') :]
    section = section[: section.index("</section>")]
    assert section.count("<img ") >= 4 and ("true positive" in section or "true negative" in section)
    assert "Sanity check (Adebayo et al. 2018)" in section and re.search(
        r"tumor -?\d\.\d\d \(n = \d+\)", section
    )
    assert list((tmp_path / "run" / "report" / "heatmaps").glob("*.png"))

    # another file in the cache (its checksum would pass as torchvision's): the model refuses it, by name
    other = tmp_path / "other.pth"
    torch.save({f"features.{k}": v for k, v in random_trunk(6).state_dict().items()}, other)
    shutil_copy = __import__("shutil").copy
    shutil_copy(other, cache)
    monkeypatch.setattr(deep, "IMAGENET_SHA256_PREFIX", hashlib.sha256(cache.read_bytes()).hexdigest()[:8])
    assert (
        alnm(
            [
                "predict",
                manifest,
                "--model",
                str(model_dir),
                "--out",
                str(tmp_path / "pred2.csv"),
                "--no-progress",
                "--workers",
                "1",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "this VGG19 weights file has SHA-256" in err and "refuses it" in err and str(cache) in err
    assert not (tmp_path / "pred2.csv").exists()
    from ALNMPredictorLib import casepredict as cp
    from ALNMPredictorLib import demomodel
    from ALNMPredictorLib.errors import BundleError

    with pytest.raises(BundleError, match="refuses it"):  # the Slicer panel's loader says the same
        cp.load_model_cached(model_dir)
    # a model without deep features has nothing for --heatmaps to explain: said before any work
    assert (
        alnm(
            [
                "predict",
                manifest,
                "--model",
                str(demomodel.DEMO_MODEL_RESOURCE),
                "--out",
                str(tmp_path / "p3.csv"),
                "--heatmaps",
                str(tmp_path / "m3"),
                "--no-progress",
            ]
        )
        == 2
    )
    assert "has no deep features" in capsys.readouterr().err and not (tmp_path / "p3.csv").exists()
