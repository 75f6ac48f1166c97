"""Handcrafted pyradiomics features: presets, equality with bare pyradiomics, input traps, errors."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from radiomics import featureextractor, imageoperations

from ALNMPredictorLib import handcrafted as hc
from ALNMPredictorLib.errors import InputError

REPO = Path(__file__).resolve().parents[1]
BUSBRA = REPO.parent / "shared" / "data" / "busbra"

# pykwalify loads pyradiomics' schema functions with the deprecated importlib load_module().
pytestmark = pytest.mark.filterwarnings("ignore:the load_module:DeprecationWarning")


def _synthetic(
    seed: int = 0, shape: tuple[int, int] = (48, 60), high: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """A uint8 speckle-like image and an elliptical 0/255 mask."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    image = rng.integers(0, high, size=shape).astype(np.uint8)
    inside = ((rows - shape[0] / 2) / (shape[0] / 3)) ** 2 + (
        (cols - shape[1] / 2) / (shape[1] / 2.6)
    ) ** 2 <= 1
    image[inside] = np.clip(image[inside].astype(int) + (cols[inside] - shape[1] // 2), 0, 255).astype(
        np.uint8
    )
    first = inside.nonzero()
    image[first[0][0], first[1][0]] = 250  # ROI max ≥ 206 and min < 25: the uint8 trap fires
    image[first[0][-1], first[1][-1]] = 3
    return image, inside.astype(np.uint8) * 255


def _bare(preset: str, image: np.ndarray, mask: np.ndarray, spacing=(1.0, 1.0), dtype=np.float64) -> dict:
    """Bare pyradiomics, reading the preset YAML itself, on a one-slice volume of ``dtype``."""
    extractor = featureextractor.RadiomicsFeatureExtractor(str(hc.preset_path(preset)))
    sitk_image = sitk.GetImageFromArray(np.asarray(image, dtype=dtype)[np.newaxis])
    sitk_mask = sitk.GetImageFromArray((np.asarray(mask) != 0).astype(np.uint8)[np.newaxis])
    for item in (sitk_image, sitk_mask):
        item.SetSpacing((spacing[1], spacing[0], 1.0))
    result = extractor.execute(sitk_image, sitk_mask)
    return {k: float(v) for k, v in result.items() if not k.startswith("diagnostics_")}


#: 3D shape features computed from pyradiomics' mesh surface area and volume, which shape3d gives to
#: rounding (its sum over 15 window configurations against pyradiomics' running sum over every triangle:
#: 2e-13 relative on these small ROIs, 2e-12 on the largest BUS-BRA ROI; see Testing/test_shape3d.py)
_MESH_AREA_VOLUME = {
    "MeshVolume",
    "SurfaceArea",
    "SurfaceVolumeRatio",
    "Sphericity",
    "Compactness1",
    "Compactness2",
    "SphericalDisproportion",
}


def _assert_pyradiomics_values(ours: dict, bare: dict) -> None:
    """``ours`` equals bare pyradiomics for every feature it gives: 1e-12 relative (both computed in this
    process by the same code), 1e-10 for the features of the mesh area and volume (see above)."""
    names = list(ours)
    mesh = [n for n in names if n.split("_")[-1] in _MESH_AREA_VOLUME and "_shape_" in n]
    rest = [n for n in names if n not in mesh]
    np.testing.assert_allclose(
        [ours[n] for n in rest], [bare[n] for n in rest], rtol=1e-12, atol=0, equal_nan=True
    )
    np.testing.assert_allclose([ours[n] for n in mesh], [bare[n] for n in mesh], rtol=1e-10, atol=0)


@pytest.fixture(scope="module")
def paper() -> hc.HandcraftedExtractor:
    return hc.HandcraftedExtractor("paper")


@pytest.fixture(scope="module")
def paper_full() -> hc.HandcraftedExtractor:
    return hc.HandcraftedExtractor("paper", full_table=True)


@pytest.fixture(scope="module")
def us2d() -> hc.HandcraftedExtractor:
    return hc.HandcraftedExtractor("us2d")


# --- parameters -------------------------------------------------------------------------------------


def test_presets_encode_the_documented_settings() -> None:
    assert hc.PRESETS == ("paper", "us2d")
    paper = hc.load_params("paper")
    assert paper["setting"]["binWidth"] == 25 and paper["setting"]["force2D"] is False
    assert paper["imageType"]["Wavelet"]["wavelet"] == "coif1" and paper["imageType"]["Wavelet"]["level"] == 1
    assert set(paper["imageType"]) == {"Original", "Wavelet"}
    assert set(paper["featureClass"]) == {"shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"}
    us2d = hc.load_params("us2d")
    assert us2d["setting"]["force2D"] is True and us2d["setting"]["force2Ddimension"] == 0
    assert "shape2D" in us2d["featureClass"] and "shape" not in us2d["featureClass"]
    assert us2d["setting"]["binWidth"] < 25


def test_load_params_from_file_and_dict(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("imageType:\n  Original: {}\nfeatureClass:\n  firstorder:\nsetting:\n  binWidth: 10\n")
    params = hc.load_params(path)
    assert params["setting"]["binWidth"] == 10
    assert hc.load_params(str(path)) == params
    given = {"featureClass": {"firstorder": None}, "setting": {"binWidth": 3}}
    loaded = hc.load_params(given)
    loaded["setting"]["binWidth"] = 99
    assert given["setting"]["binWidth"] == 3  # the caller's dict is not shared


def test_load_params_errors_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(InputError, match="nope.yaml"):
        hc.load_params(missing)
    with pytest.raises(InputError, match="paper, us2d"):
        hc.load_params("papr")
    bad = tmp_path / "bad.yaml"
    bad.write_text("setting:\n  binWidth: -5\n")
    with pytest.raises(InputError, match=r"bad\.yaml.*invalid pyradiomics parameters"):
        hc.load_params(bad)
    bad.write_text("featureClass:\n  nosuchclass:\n")
    with pytest.raises(InputError, match="invalid pyradiomics parameters"):
        hc.load_params(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(InputError, match="mapping"):
        hc.load_params(bad)
    with pytest.raises(InputError, match="shape2D needs setting force2D"):
        hc.load_params({"featureClass": {"shape2D": None}})
    with pytest.raises(InputError, match="force2Ddimension must be 0"):
        hc.load_params({"setting": {"force2D": True, "force2Ddimension": 1}})
    # A preset whose file went missing (broken installation) names the file.
    monkeypatch.setattr(hc, "PARAMETERS_DIR", tmp_path / "gone")
    with pytest.raises(InputError, match=r"gone/paper\.yaml: parameter file of preset 'paper' is missing"):
        hc.load_params("paper")


def test_invalid_params_are_reported_once_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    # pykwalify logs each schema error at ERROR level (to stderr outside pytest) before raising.
    with (
        caplog.at_level(logging.DEBUG),
        pytest.raises(InputError, match=r"Path: '/setting/binWidth'") as info,
    ):
        hc.load_params({"setting": {"binWidth": -1}})
    assert "\n" not in str(info.value)
    assert not [r for r in caplog.records if r.name.startswith("pykwalify")]


def test_settings_hash_is_stable_and_sensitive(paper: hc.HandcraftedExtractor) -> None:
    again = hc.HandcraftedExtractor("paper")
    assert paper.settings_hash == again.settings_hash
    assert len(paper.settings_hash) == 64 and int(paper.settings_hash, 16) >= 0
    changed = hc.load_params("paper")
    changed["setting"]["binWidth"] = 24
    assert hc.HandcraftedExtractor(changed).settings_hash != paper.settings_hash
    assert hc.HandcraftedExtractor("us2d").settings_hash != paper.settings_hash
    assert hc.HandcraftedExtractor(hc.load_params("paper")).settings_hash == paper.settings_hash


def test_radiomics_logging_is_quiet() -> None:
    assert logging.getLogger("radiomics").getEffectiveLevel() >= logging.ERROR


# --- equality with bare pyradiomics ---------------------------------------------------------------


def test_paper_full_table_gives_851_features_identical_to_bare_pyradiomics(
    paper_full: hc.HandcraftedExtractor,
) -> None:
    image, mask = _synthetic(1)
    ours = paper_full.extract(image.astype(np.float64), mask, (0.1, 0.1))
    bare = _bare("paper", image, mask, (0.1, 0.1))
    assert len(ours) == 851
    assert list(ours) == list(bare) == paper_full.feature_names() == paper_full.all_feature_names()
    assert sum(k.startswith("original_shape_") for k in ours) == 14
    assert all(isinstance(v, float) for v in ours.values())
    _assert_pyradiomics_values(ours, bare)
    assert "original_firstorder_Entropy" in ours
    assert paper_full.not_computed_features() == []


def test_paper_default_leaves_out_the_372_noise_features_and_keeps_the_rest_equal(
    paper: hc.HandcraftedExtractor,
) -> None:
    image, mask = _synthetic(1)
    ours = paper.extract(image, mask, (0.2, 0.1))
    bare = _bare("paper", image, mask, (0.2, 0.1))
    left_out = paper.not_computed_features()
    assert len(ours) == 851 - 372 == 479 and len(left_out) == 372
    assert list(ours) == [k for k in bare if k not in set(left_out)] == paper.feature_names()
    assert paper.all_feature_names() == list(bare)
    assert {k.split("_", 1)[0] for k in left_out} == {
        "wavelet-LLH",
        "wavelet-LHH",
        "wavelet-HLH",
        "wavelet-HHH",
    }
    _assert_pyradiomics_values(ours, bare)
    # the cache key tells the two tables apart
    assert paper.settings_hash != hc.HandcraftedExtractor("paper", full_table=True).settings_hash


def test_us2d_is_true_2d_and_identical_to_bare_pyradiomics(us2d: hc.HandcraftedExtractor) -> None:
    image, mask = _synthetic(2)
    ours = us2d.extract(image, mask, (0.2, 0.1))
    bare = _bare("us2d", image, mask, (0.2, 0.1))
    assert list(ours) == list(bare) == us2d.feature_names()
    assert len(ours) == 9 + 93 * 5
    image_types = {k.split("_", 1)[0] for k in ours}
    assert image_types == {"original", "wavelet-LH", "wavelet-HL", "wavelet-HH", "wavelet-LL"}
    assert not any(k.startswith("original_shape_") for k in ours)
    assert sum(k.startswith("original_shape2D_") for k in ours) == 9
    np.testing.assert_allclose(list(ours.values()), list(bare.values()), rtol=1e-12, atol=0, equal_nan=True)
    assert us2d.degenerate_features() == [] and us2d.degenerate_reason() is None
    assert us2d.not_computed_features() == [] and us2d.noise_features() == []
    assert hc.HandcraftedExtractor("us2d", full_table=True).feature_names() == us2d.feature_names()


def test_uint8_overflow_trap_is_avoided(paper: hc.HandcraftedExtractor) -> None:
    """numpy 2: pyradiomics' ``maximum + 2 * binWidth`` wraps around on a uint8 image."""
    image, mask = _synthetic(3)
    assert int(image[mask > 0].max()) + 2 * 25 > 255
    float_path = _bare("paper", image, mask, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "overflow encountered in scalar add"
        uint8_path = _bare("paper", image, mask, dtype=np.uint8)
    if np.lib.NumpyVersion(np.__version__) >= "2.0.0":
        # The bare uint8 path is really corrupt here, so this test tells the two paths apart.
        changed = [k for k in float_path if not np.isclose(uint8_path[k], float_path[k], rtol=1e-6)]
        assert "original_firstorder_Entropy" in changed and len(changed) > 50
    ours = paper.extract(image, mask, (1.0, 1.0))  # uint8 in, as read from a PNG
    assert image.dtype == np.uint8
    _assert_pyradiomics_values(ours, float_path)


# --- degenerate features -------------------------------------------------------------------------


def test_paper_flags_the_z_high_pass_wavelet_features(
    paper: hc.HandcraftedExtractor, paper_full: hc.HandcraftedExtractor
) -> None:
    """374 = 372 z-high-pass wavelet features + the 2 3D shape features that are 0 on one slice."""
    zero = ["original_shape_Flatness", "original_shape_LeastAxisLength"]
    noise_types = ["wavelet-LLH", "wavelet-LHH", "wavelet-HLH", "wavelet-HHH"]
    degenerate = paper_full.degenerate_features()
    assert len(degenerate) == 374
    assert paper_full.degenerate_image_types() == paper_full.noise_image_types() == noise_types
    assert sorted(d for d in degenerate if d.startswith("original_")) == zero
    assert {k.split("_", 1)[0] for k in degenerate} - {"original"} == set(noise_types)
    assert set(degenerate) <= set(paper_full.feature_names())
    assert paper_full.degenerate_features(prefix="ln_")[0] == "ln_" + degenerate[0]
    reason = paper_full.degenerate_reason()
    assert (
        "372" in reason and "LeastAxisLength" in reason and "us2d" in reason and "not computed" not in reason
    )
    # by default the 372 are not computed; the 2 shape features are still flagged
    assert sorted(paper.degenerate_features()) == zero and paper.degenerate_image_types() == []
    assert paper.noise_features() == paper_full.noise_features() == paper.not_computed_features()
    reason = paper.degenerate_reason()
    assert "372" in reason and "not computed" in reason and "--full-table" in reason and "Flatness" in reason


@pytest.mark.parametrize("name", ["LeastAxisLength", "Flatness"])
def test_zero_shape_features_are_zero_on_one_slice(paper: hc.HandcraftedExtractor, name: str) -> None:
    for seed in (1, 2, 3):
        image, mask = _synthetic(seed, shape=(30 + 7 * seed, 41))
        assert paper.extract(image, mask, (0.3, 0.1))[f"original_shape_{name}"] == 0.0


def test_flagged_wavelet_images_are_really_noise() -> None:
    """The flag matches pyradiomics' own wavelet output on a one-slice volume."""
    image, mask = _synthetic(4, shape=(31, 40))
    flagged = set(hc.HandcraftedExtractor("paper").noise_image_types())
    sitk_image = sitk.GetImageFromArray(image.astype(np.float64)[np.newaxis])
    sitk_mask = sitk.GetImageFromArray((mask > 0).astype(np.uint8)[np.newaxis])
    seen = set()
    for filtered, name, _ in imageoperations.getWaveletImage(sitk_image, sitk_mask, wavelet="coif1", level=1):
        peak = np.abs(sitk.GetArrayFromImage(filtered)).max()
        seen.add(name)
        if name in flagged:
            assert peak < 1e-9, name
        else:
            assert peak > 1.0, name
    assert flagged < seen


def test_degenerate_note_is_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    image, mask = _synthetic(5, shape=(24, 28))
    extractor = hc.HandcraftedExtractor("paper")
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.handcrafted"):
        extractor.extract(image, mask, (0.1, 0.1))
        extractor.extract(image, mask, (0.1, 0.1))
    notes = [r for r in caplog.records if "degenerate" in r.getMessage()]
    assert len(notes) == 1


# --- inputs --------------------------------------------------------------------------------------


def test_rgb_masks_labels_and_prefix(us2d: hc.HandcraftedExtractor) -> None:
    image, mask = _synthetic(6, shape=(32, 36))
    reference = us2d.extract(image, mask > 0, (0.1, 0.1))
    grey_rgb = np.repeat(image[..., np.newaxis], 3, axis=-1)
    rgba = np.concatenate([grey_rgb, np.full(image.shape + (1,), 255, np.uint8)], axis=-1)
    assert us2d.extract(grey_rgb, mask, (0.1, 0.1)) == reference
    assert us2d.extract(rgba, mask, (0.1, 0.1)) == reference
    assert us2d.extract(image[np.newaxis], mask, (0.1, 0.1)) == reference
    assert us2d.extract(image, (mask > 0).astype(np.int16) * 7, (0.1, 0.1)) == reference  # label 7
    assert us2d.extract(image, np.repeat(mask[..., None], 3, axis=-1), (0.1, 0.1)) == reference
    prefixed = us2d.extract(image, mask, (0.1, 0.1), prefix="tumor_")
    assert list(prefixed) == ["tumor_" + k for k in reference]
    assert list(prefixed.values()) == list(reference.values())
    assert not any("diagnostics" in k for k in prefixed)

    colour = grey_rgb.copy()
    colour[..., 0] = np.clip(colour[..., 0].astype(int) + 40, 0, 255)
    with pytest.warns(UserWarning, match="colour image"):
        got = us2d.extract(colour, mask, (0.1, 0.1))
    luma = colour.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert got == us2d.extract(luma, mask, (0.1, 0.1))
    assert got != reference


def test_spacing_is_row_col_in_mm(us2d: hc.HandcraftedExtractor) -> None:
    image = np.random.default_rng(7).uniform(0, 255, (30, 60))
    mask = np.zeros(image.shape, bool)
    mask[10:14, 10:50] = True  # 4 rows x 40 columns
    square = us2d.extract(image, mask, (1.0, 0.1))  # 4 mm x 4 mm
    flat = us2d.extract(image, mask, (0.1, 1.0))  # 0.4 mm x 40 mm
    assert square["original_shape2D_PixelSurface"] == pytest.approx(160 * 0.1)
    assert square["original_shape2D_Elongation"] > 0.9
    assert flat["original_shape2D_Elongation"] < 0.05
    assert us2d.extract(image, mask, 0.5) == us2d.extract(image, mask, (0.5, 0.5))


def test_missing_spacing_warns_once_and_uses_1mm(caplog: pytest.LogCaptureFixture) -> None:
    image, mask = _synthetic(8, shape=(24, 28))
    extractor = hc.HandcraftedExtractor("us2d")
    with caplog.at_level(logging.WARNING, logger="ALNMPredictorLib.handcrafted"):
        first = extractor.extract(image, mask, None)
        extractor.extract(image, mask, None)
    assert sum("spacing" in r.getMessage() for r in caplog.records) == 1
    assert first == extractor.extract(image, mask, (1.0, 1.0))


@pytest.mark.parametrize(
    ("image", "mask", "spacing", "reason"),
    [
        (np.ones((20, 20)), np.zeros((20, 20)), (1, 1), "mask is empty"),
        (
            np.ones((20, 20)),
            np.ones((20, 21)),
            (1, 1),
            r"mask size \(20, 21\) differs from image size \(20, 20\)",
        ),
        (np.ones((20, 20)), np.pad(np.ones((1, 1)), ((5, 14), (5, 14))), (1, 1), "single pixel"),
        (np.ones((20, 20)), np.pad(np.ones((1, 6)), ((5, 14), (5, 9))), (1, 1), "one pixel thick"),
        (np.full((20, 20), np.nan), np.ones((20, 20)), (1, 1), "NaN"),
        (np.ones((20, 20)), np.full((20, 20), np.nan), (1, 1), "mask contains NaN"),
        (np.ones((4, 20, 20)), np.ones((20, 20)), (1, 1), "2D grey or RGB"),
        (np.ones((20, 20)), np.ones((20, 20)), (0.0, 1.0), "spacing"),
        (np.ones((20, 20)), np.ones((20, 20)), (1.0, 1.0, 1.0), "spacing"),
        (np.array([["a"] * 20] * 20), np.ones((20, 20)), (1, 1), "pixel type"),
    ],
)
def test_bad_inputs_raise_input_error(
    us2d: hc.HandcraftedExtractor, image: np.ndarray, mask: np.ndarray, spacing: tuple, reason: str
) -> None:
    with pytest.raises(InputError, match=reason) as info:
        us2d.extract(image, mask, spacing, case="P0007", column="tumor_mask")
    assert "case P0007, column tumor_mask" in str(info.value)


def test_pyradiomics_rejection_becomes_input_error() -> None:
    extractor = hc.HandcraftedExtractor(
        {"featureClass": {"firstorder": None}, "setting": {"minimumROISize": 50}}
    )
    image, mask = _synthetic(9, shape=(20, 20))
    small = np.zeros(mask.shape, bool)
    small[5:9, 5:9] = True
    with pytest.raises(InputError, match="pyradiomics failed on this ROI"):
        extractor.extract(image, small, (1.0, 1.0), case="P1")


def test_convenience_function_matches_extractor(paper: hc.HandcraftedExtractor) -> None:
    image, mask = _synthetic(10, shape=(24, 28))
    expected = paper.extract(image, mask, (0.1, 0.1), prefix="ln_")
    assert hc.extract_handcrafted(image, mask, (0.1, 0.1), params="paper", prefix="ln_") == expected
    assert hc.DEFAULT_PRESET == "us2d"
    assert hc.extract_handcrafted(image, mask, (0.1, 0.1)) == hc.HandcraftedExtractor("us2d").extract(
        image, mask, 0.1
    )
    custom = hc.extract_handcrafted(image, mask, (0.1, 0.1), params={"featureClass": {"firstorder": None}})
    assert set(custom) == {k[3:] for k in expected if k.startswith("ln_original_firstorder_")}


# --- real data -----------------------------------------------------------------------------------


@pytest.mark.skipif(not BUSBRA.is_dir(), reason=f"BUS-BRA data set not found at {BUSBRA}")
def test_real_busbra_image_extracts(
    paper_full: hc.HandcraftedExtractor, us2d: hc.HandcraftedExtractor
) -> None:
    from PIL import Image

    image = np.asarray(Image.open(BUSBRA / "Images" / "bus_0001-l.png"))
    mask = np.asarray(Image.open(BUSBRA / "Masks" / "mask_0001-l.png"))
    assert image.dtype == np.uint8
    ours = paper_full.extract(image, mask, (0.1, 0.1), prefix="tumor_")
    assert len(ours) == 851
    flagged = set(paper_full.degenerate_features("tumor_"))
    sound = [k for k in paper_full.feature_names("tumor_") if k not in flagged]
    assert np.isfinite([ours[k] for k in sound]).all()
    bare = _bare("paper", image, mask, (0.1, 0.1))
    _assert_pyradiomics_values({k.removeprefix("tumor_"): v for k, v in ours.items()}, bare)
    two_d = us2d.extract(image, mask, (0.1, 0.1))
    assert len(two_d) == 474 and np.isfinite(list(two_d.values())).all()
    assert two_d["original_shape2D_PixelSurface"] == pytest.approx((mask > 0).sum() * 0.01)


def test_normalize_adds_pyradiomics_standardisation_and_removes_gain() -> None:
    raw = hc.HandcraftedExtractor("us2d")
    norm = hc.HandcraftedExtractor("us2d", normalize=True)
    assert norm.params["setting"]["normalize"] is True
    assert norm.params["setting"]["normalizeScale"] == hc.NORMALIZE_SCALE == 32
    assert "normalize" not in raw.params["setting"] and norm.settings_hash != raw.settings_hash
    assert norm.feature_names() == raw.feature_names()
    # parameters that already say how to normalise are kept
    own = hc.load_params("us2d")
    own["setting"]["normalize"] = False
    assert hc.HandcraftedExtractor(own, normalize=True).params["setting"]["normalize"] is False

    image, mask = _synthetic(4)
    grey = image.astype(np.float64)
    gained = 1.5 * grey + 20.0  # another scanner's gain and dynamic range
    base, other = norm.extract(grey, mask, (0.2, 0.2)), norm.extract(gained, mask, (0.2, 0.2))
    for name in (
        "original_firstorder_Mean",
        "original_firstorder_90Percentile",
        "original_glcm_Contrast",
        "original_glszm_ZonePercentage",
        "wavelet-LL_firstorder_Median",
    ):
        assert other[name] == pytest.approx(base[name], rel=1e-6, abs=1e-9), name
    raw_base, raw_other = raw.extract(grey, mask, (0.2, 0.2)), raw.extract(gained, mask, (0.2, 0.2))
    assert raw_other["original_firstorder_Mean"] != pytest.approx(
        raw_base["original_firstorder_Mean"], rel=0.1
    )
    # equal to bare pyradiomics with the same two settings
    params = hc.load_params("us2d")
    params["setting"].update(normalize=True, normalizeScale=32)
    bare = featureextractor.RadiomicsFeatureExtractor(params)
    sitk_image = sitk.GetImageFromArray(grey[np.newaxis])
    sitk_mask = sitk.GetImageFromArray((mask != 0).astype(np.uint8)[np.newaxis])
    for item in (sitk_image, sitk_mask):
        item.SetSpacing((0.2, 0.2, 1.0))
    expected = {
        k: float(v)
        for k, v in bare.execute(sitk_image, sitk_mask).items()
        if not k.startswith("diagnostics_")
    }
    assert base.keys() == expected.keys()
    np.testing.assert_allclose(list(base.values()), list(expected.values()), rtol=1e-12, atol=0)


def test_default_preset_is_us2d_and_every_command_says_so(capsys: pytest.CaptureFixture) -> None:
    from ALNMPredictorLib import cli
    from ALNMPredictorLib.pipeline import PipelineSettings

    assert PipelineSettings().handcrafted == hc.DEFAULT_PRESET == "us2d"
    for command in ("extract", "train", "run"):
        with pytest.raises(SystemExit) as exit_info:
            cli.main([command, "--help"])
        assert exit_info.value.code == 0
        text = " ".join(capsys.readouterr().out.split())
        assert "Default: us2d" in text and "paper: the reference study's 851 features" in text, command
        assert "--full-table" in text and "--scheduler" in text, command
