"""The SYNTHETIC multicentre cohort: sizes, prevalences, Table 2 odds ratios, images, masks, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ALNMPredictorLib import SYNTHETIC_LABEL, cli, synth
from ALNMPredictorLib.errors import ALNMError

PAPER_PREVALENCE = {"train": 64.6, "internal": 67.9, "external": 55.4, "prospective": 46.2}


# ---------------------------------------------------------------------------------------- helpers
def _logistic_or(x: np.ndarray, y: np.ndarray, strata: np.ndarray) -> float:
    """Odds ratio of ``x`` from a logistic fit by IRLS with one intercept per stratum (set)."""
    levels = np.unique(strata)
    design = np.column_stack([x.astype(float)] + [(strata == s).astype(float) for s in levels])
    beta = np.zeros(design.shape[1])
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-design @ beta))
        w = p * (1 - p)
        step = np.linalg.solve(design.T @ (design * w[:, None]), design.T @ (y - p))
        beta += step
        if np.max(np.abs(step)) < 1e-10:
            break
    return float(np.exp(beta[0]))


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Mann-Whitney AUC (ties count one half)."""
    pos, neg = score[y == 1], score[y == 0]
    return float(
        ((pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum())
        / (len(pos) * len(neg))
    )


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "L", f"{path}: not 8-bit grey ({im.mode})"
        return np.asarray(im)


def _axis_ratio(mask: np.ndarray) -> float:
    ys, xs = np.nonzero(mask)
    eig = np.sort(np.linalg.eigvalsh(np.cov(np.vstack([xs, ys]))))
    return float(np.sqrt(eig[1] / eig[0]))


def _all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def clinical() -> pd.DataFrame:
    return synth.synth_clinical(2000, seed=7, include_latent=True)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> synth.SynthResult:
    return synth.synth_cohort(tmp_path_factory.mktemp("synthetic") / "cohort", 80, seed=3)


# ---------------------------------------------------------------------------------- clinical table
def test_set_sizes_follow_the_study_and_scale_down() -> None:
    assert synth.PAPER_SCALE == 856  # the study's sets sum to 856 (its text says 866)
    assert synth.split_sizes(synth.PAPER_SCALE) == {
        "train": 421,
        "internal": 106,
        "external": 222,
        "prospective": 107,
    }
    for n in (20, 57, 100, 200, 1000):
        sizes = synth.split_sizes(n)
        assert sum(sizes.values()) == n and min(sizes.values()) >= 2
        assert abs(sizes["train"] - n * 421 / synth.PAPER_SCALE) <= 1.5
    with pytest.raises(ALNMError, match="at least"):
        synth.split_sizes(10)


def test_prevalences_centres_and_table1_marginals(clinical: pd.DataFrame) -> None:
    sizes = synth.split_sizes(2000)
    for split, target in PAPER_PREVALENCE.items():
        part = clinical[clinical["split"] == split]
        assert len(part) == sizes[split]
        assert abs(100 * part["label"].mean() - target) <= 5.0, split
    assert set(clinical.loc[clinical["split"] != "external", "center"]) == {"H1"}
    assert set(clinical.loc[clinical["split"] == "external", "center"]) == {"H2", "H3", "H4", "H5", "H6"}
    train = clinical[clinical["split"] == "train"]
    assert abs(train["age"].mean() - 54.0) < 1.5 and abs(train["age"].std() - 10.6) < 1.5
    assert abs(train["tumor_size_cm"].mean() - 2.9) < 0.2 and abs(train["tumor_size_cm"].std() - 1.5) < 0.2
    assert train["tumor_size_cm"].min() >= 0.5
    for column, level, pct in (
        ("us_reported_alnm", "present", 63.2),
        ("margin", "non-circumscribed", 85.5),
        ("microcalcification", "present", 60.6),
        ("er", "positive", 65.1),
    ):
        assert abs(100 * (train[column] == level).mean() - pct) < 5.0, column
    assert train["adler_grade"].isin([0, 1, 2, 3]).all()


def test_table2_odds_ratios_are_recovered_within_a_factor_1_5(clinical: pd.DataFrame) -> None:
    y = clinical["label"].to_numpy()
    strata = clinical["split"].to_numpy()
    targets = {
        "tumor_size_cm": (clinical["tumor_size_cm"].to_numpy(), 1.75),
        "margin": ((clinical["margin"] == "non-circumscribed").to_numpy(), 2.90),
        "microcalcification": ((clinical["microcalcification"] == "present").to_numpy(), 1.62),
        "us_reported_alnm": ((clinical["us_reported_alnm"] == "present").to_numpy(), 5.91),
        # little or no association
        "location": ((clinical["location"] == "right").to_numpy(), 1.0),
        "er": ((clinical["er"] == "positive").to_numpy(), 1.0),
        "ki67": ((clinical["ki67"] == "ge20").to_numpy(), 1.0),
    }
    for name, (x, target) in targets.items():
        odds_ratio = _logistic_or(x, y, strata)
        assert target / 1.5 <= odds_ratio <= target * 1.5, f"{name}: OR {odds_ratio:.2f}, Table 2 {target}"
    age_or = _logistic_or(clinical["age"].to_numpy(), y, strata)
    assert 0.97 <= age_or <= 1.01


def test_receptors_agree_with_molecular_type(clinical: pd.DataFrame) -> None:
    tn = clinical[clinical["molecular_type"] == "triple_negative"]
    assert (tn[["er", "pr", "her2"]] == "negative").all().all()
    lum_a = clinical[clinical["molecular_type"] == "luminal_a"]
    assert (lum_a["her2"] == "negative").all() and (lum_a["ki67"] == "lt20").all()
    assert ((lum_a["er"] == "positive") | (lum_a["pr"] == "positive")).all()
    assert (clinical.loc[clinical["molecular_type"] == "her2_positive", "her2"] == "positive").all()


def test_us_reported_alnm_is_a_noisy_reading_of_the_node(clinical: pd.DataFrame) -> None:
    reported = (clinical["us_reported_alnm"] == "present").to_numpy().astype(int)
    appearance = clinical[[f"latent_ln_{k}" for k in synth.LN_CRITERIA]].mean(axis=1).to_numpy()
    assert 0.65 < _auc(reported, appearance) < 0.95  # follows the node, with reader noise and other nodes
    # ... and, as in the study, carries information on ALNM beyond the node's appearance
    from ALNMPredictorLib.stats import logistic_fit

    fit = logistic_fit(
        pd.DataFrame({"appearance": appearance, "reported": reported}), clinical["label"].to_numpy()
    )
    assert fit.loc["reported", "p"] < 1e-3 and fit.loc["reported", "odds_ratio"] > 1.5
    assert not any(c.startswith("latent_") for c in synth.synth_clinical(40, seed=7).columns)


def test_conditional_probabilities_match_marginal_and_odds_ratio() -> None:
    p0, p1 = synth.conditional_probabilities([53.0, 35.9, 11.1], [1.0, 1.28, 0.58], 0.646)
    np.testing.assert_allclose(0.646 * p1 + 0.354 * p0, [0.53, 0.359, 0.111], atol=1e-9)
    ratios = (p1 / p1[0]) / (p0 / p0[0])
    np.testing.assert_allclose(ratios, [1.0, 1.28, 0.58], rtol=1e-9)


# ------------------------------------------------------------------------------- cohort on disk
def test_cohort_files_manifest_and_labels(cohort: synth.SynthResult) -> None:
    root, manifest = cohort.out_dir, pd.read_csv(cohort.manifest_path, keep_default_na=False)
    head = ["case_id", "label", "split", "center"]
    for region in ("tumor", "ln"):
        head += [
            f"{region}_image",
            f"{region}_mask",
            f"{region}_spacing",
            f"{region}_mask_reader2",
            f"{region}_mask_repeat",
        ]
    assert list(manifest.columns) == head + list(synth.CLINICAL_COLUMNS)
    assert not any("latent" in c for c in manifest.columns)
    assert manifest["case_id"].is_unique and len(manifest) == 80
    for _, row in manifest.head(12).iterrows():
        look = synth.CENTERS[row["center"]]
        assert row["tumor_spacing"] == look.tumor_spacing and row["ln_spacing"] == look.ln_spacing
        for region, shape in (("tumor", synth.TUMOR_SHAPE), ("ln", synth.LN_SHAPE)):
            image, mask = _read(root / row[f"{region}_image"]), _read(root / row[f"{region}_mask"])
            assert image.shape == mask.shape == shape
            assert set(np.unique(mask)) == {0, 255}
            assert not mask[: int(synth.ROI_TOP)].any()  # clear of the SYNTHETIC marker
    n_icc = (manifest["tumor_mask_reader2"] != "").sum()
    assert n_icc == max(10, round(50 * 80 / synth.PAPER_SCALE))
    assert set(manifest.loc[manifest["tumor_mask_reader2"] != "", "split"]) == {"train"}
    for name in ("SYNTHETIC.txt", "study.yaml"):
        assert SYNTHETIC_LABEL in (root / name).read_text()
    assert json.loads((root / "synth.json").read_text())["description"] == SYNTHETIC_LABEL
    assert cohort.summary["patients"].sum() == 80


def test_cohort_passes_manifest_validation(cohort: synth.SynthResult) -> None:
    from ALNMPredictorLib.cohort import load_manifest

    loaded = load_manifest(cohort.manifest_path)
    errors = [p for p in loaded.validate() if p.severity == "error"]
    assert not errors, errors
    assert loaded.regions == ["tumor", "ln"]
    assert loaded.clinical["margin"].reference == "circumscribed"
    assert loaded.clinical["adler_grade"].kind == "categorical"
    assert loaded.clinical["tumor_size_cm"].kind == "continuous"


def test_lymph_node_shape_and_cortex_differ_by_label(cohort: synth.SynthResult) -> None:
    root, manifest = cohort.out_dir, cohort.manifest
    y = manifest["label"].to_numpy()
    ratio, inside_mean = [], []
    for _, row in manifest.iterrows():
        mask = _read(root / row["ln_mask"]) > 0
        ratio.append(_axis_ratio(mask))
        inside_mean.append(_read(root / row["ln_image"])[mask].mean())
    ratio = np.array(ratio)
    assert np.median(ratio[y == 1]) < np.median(ratio[y == 0])
    assert _auc(y, ratio) < 0.3  # metastatic nodes are rounder (long/short axis nearer 1)
    assert _auc(y, np.array(inside_mean)) < 0.3  # more hypoechoic cortex, less echogenic hilum
    truth = pd.read_csv(root / synth.TRUTH_NAME)
    assert (
        truth.groupby("label")["ln_cortex_mm"].median()[1]
        > truth.groupby("label")["ln_cortex_mm"].median()[0]
    )
    assert _auc(truth["label"].to_numpy(), truth["ln_cortex_mm"].to_numpy()) > 0.7
    assert _auc(truth["label"].to_numpy(), -truth["ln_hilum_visible"].to_numpy()) > 0.7
    # the tumour drawn in the image follows tumor_size_cm (up to the field of view)
    drawn = truth.set_index("case_id")["drawn_tumor_size_cm"]
    size = manifest.set_index("case_id")["tumor_size_cm"]
    small = size[size < 3.0].index
    np.testing.assert_allclose(drawn[small], size[small], rtol=0.02, atol=0.01)
    assert (drawn <= size + 0.01).all()


def test_resegmentations_differ_like_two_readers(cohort: synth.SynthResult) -> None:
    root, manifest = cohort.out_dir, cohort.manifest
    dice = {"reader2": [], "repeat": []}
    for _, row in manifest[manifest["tumor_mask_reader2"] != ""].iterrows():
        for region in ("tumor", "ln"):
            main = _read(root / row[f"{region}_mask"]) > 0
            for kind in dice:
                other = _read(root / row[f"{region}_mask_{kind}"]) > 0
                dice[kind].append(2 * (main & other).sum() / (main.sum() + other.sum()))
    for values in dice.values():
        assert 0.6 < min(values) and max(values) < 1.0
    assert np.mean(dice["repeat"]) > np.mean(dice["reader2"])  # same reader agrees better


def test_centres_have_their_own_scanner_look() -> None:
    row = synth.synth_clinical(30, seed=1, include_latent=True).iloc[0]
    looks = {}
    for center in ("H1", "H3", "H6"):
        rendered = synth.render_tumor(row, synth.CENTERS[center], np.random.default_rng(0))
        background = rendered.image[rendered.masks["mask"] == 0].astype(float)
        looks[center] = (background.mean(), background.std())
    assert len({round(m) for m, _ in looks.values()}) == 3


def test_same_seed_gives_identical_files_different_seed_differs(tmp_path: Path) -> None:
    a = synth.synth_cohort(tmp_path / "a", 20, seed=11)
    b = synth.synth_cohort(tmp_path / "b", 20, seed=11, workers=2)
    c = synth.synth_cohort(tmp_path / "c", 20, seed=12)
    files_a, files_b, files_c = (_all_files(r.out_dir) for r in (a, b, c))
    assert files_a == files_b
    assert files_a["manifest.csv"] != files_c["manifest.csv"]
    assert files_a["images/P0001_tumor.png"] != files_c["images/P0001_tumor.png"]
    pd.testing.assert_frame_equal(
        synth.synth_clinical(20, seed=11),
        a.manifest[["case_id", "label", "split", "center", *synth.CLINICAL_COLUMNS]],
    )


def test_regenerating_replaces_and_foreign_folders_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "cohort"
    synth.synth_cohort(out, 24, seed=1)
    assert synth.existing_cohort(out, 24, seed=1) == out / "manifest.csv"
    assert synth.existing_cohort(out, 24, seed=2) is None
    synth.synth_cohort(out, 20, seed=1)
    assert len(list((out / "images").glob("*.png"))) == 40  # stale images of the larger cohort removed
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(ALNMError, match="not empty"):
        synth.synth_cohort(foreign, 20, seed=1)
    assert (foreign / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------------------- commands
def test_cli_synth_and_demo(tmp_path: Path, capsys) -> None:
    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--patients", "20", "--seed", "4"]) == 0
    out = capsys.readouterr().out
    assert SYNTHETIC_LABEL in out and "prospective" in out and "manifest.csv" in out
    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--patients", "5"]) == 2
    assert "at least" in capsys.readouterr().err

    demo_dir = tmp_path / "demo"
    stages = ["--stages", "cohort,validate"]  # the rest of the demo is tested in test_pipeline.py
    assert cli.main(["demo", "--out", str(demo_dir), "--patients", "20", "--seed", "4", *stages]) == 0
    first = capsys.readouterr().out
    assert "generating" in first and "0 error(s)" in first and SYNTHETIC_LABEL in first
    assert cli.main(["demo", "--out", str(demo_dir), "--patients", "20", "--seed", "4", *stages]) == 0
    assert "reusing" in capsys.readouterr().out
    # the demo's cohort is the one `alnm synth` writes with the same parameters
    assert _all_files(demo_dir / "cohort") == _all_files(tmp_path / "s")


def test_demo_stops_on_a_broken_cohort(tmp_path: Path) -> None:
    from ALNMPredictorLib import demo

    run = demo.DemoRun(out_dir=tmp_path, n_patients=20, seed=0, echo=lambda _: None)
    demo.run_stages(run, [("cohort", demo.stage_cohort)])
    (run.cohort_dir / "images" / "P0003_ln.png").unlink()
    demo.run_stages(run, [("validate", demo.stage_validate)])
    assert run.failed
    assert any(p.severity == "error" and p.case == "P0003" for p in run.problems)


def test_standardised_images_remove_most_of_the_scanner_shift_of_intensity_features() -> None:
    """The external centres' gain and dynamic range move raw first-order features by several
    patient-to-patient SDs; with pyradiomics' whole-image normalisation (the pipeline default) the
    same tumours, drawn by another scanner, land close to where H1 puts them."""
    import warnings

    from ALNMPredictorLib import handcrafted as hc

    rows = synth.synth_clinical(20, seed=3, include_latent=True).iloc[:8]
    names = [
        "original_firstorder_Mean",
        "original_firstorder_10Percentile",
        "original_firstorder_90Percentile",
    ]
    shifts = {}
    for normalize in (False, True):
        extractor = hc.HandcraftedExtractor("us2d", normalize=normalize)
        values = {}
        for center in ("H1", "H6"):
            look = synth.CENTERS[center]
            out = []
            for i in range(len(rows)):
                drawn = synth.render_tumor(
                    rows.iloc[i], look, np.random.default_rng(i)
                )  # same tumour, other scanner
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    f = extractor.extract(
                        drawn.image.astype(float), drawn.masks["mask"], (look.tumor_spacing,) * 2
                    )
                out.append([f[n] for n in names])
            values[center] = np.array(out)
        patient_sd = values["H1"].std(axis=0, ddof=1)
        shifts[normalize] = np.abs((values["H6"] - values["H1"]).mean(axis=0)) / patient_sd
    assert (shifts[False] > 1.5).all(), shifts  # raw: H6's +6 dB gain moves them by > 1.5 patient SDs
    assert (shifts[True] < 0.5).all(), shifts  # standardised: under half a patient SD
