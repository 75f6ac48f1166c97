"""VGG19 deep features: crops, backbone weights, training determinism, save/load reproduction."""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from weights_server import free_port, serve

from ALNMPredictorLib import deep
from ALNMPredictorLib.deep import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    VGG19_FILENAME,
    VGG19_URL,
    DeepFeatureExtractor,
    RandomWeightsWarning,
    crop_roi,
    file_sha256,
    random_trunk,
    tensor_sha256,
)
from ALNMPredictorLib.errors import ALNMError, BundleError, InputError

pytestmark = pytest.mark.filterwarnings("ignore::ALNMPredictorLib.deep.RandomWeightsWarning")

SIZE = 32  # VGG19's smallest input: keeps every forward pass cheap


def _cohort(n: int = 16, seed: int = 0) -> tuple[list[tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """Synthetic noisy images whose ROI is brighter for label 1."""
    rng = np.random.default_rng(seed)
    pairs, labels = [], []
    for i in range(n):
        label = i % 2
        img = rng.integers(0, 200, (72, 80), dtype=np.uint8)
        mask = np.zeros(img.shape, np.uint8)
        r, c = rng.integers(5, 30, size=2)
        mask[r : r + 25, c : c + 30] = 1
        if label:
            img[mask > 0] = np.clip(img[mask > 0].astype(int) + 50, 0, 255).astype(np.uint8)
        pairs.append((img, mask))
        labels.append(label)
    return pairs, np.array(labels)


def _crops(pairs: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    return np.stack([crop_roi(img, mask, size=SIZE) for img, mask in pairs])


def _extractor(**kwargs) -> DeepFeatureExtractor:
    settings = {
        "weights": "none",
        "input_size": SIZE,
        "epochs": 8,
        "patience": 3,
        "batch_size": 32,
        "n_views": 1,
    }
    settings["device"] = "cpu"
    settings.update(kwargs)
    return DeepFeatureExtractor(**settings)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    pairs, labels = _cohort()
    return _crops(pairs), labels


@pytest.fixture(scope="module")
def fitted(data) -> DeepFeatureExtractor:
    crops, labels = data
    return _extractor().fit(crops, labels)


@pytest.fixture(scope="module")
def state_files(tmp_path_factory) -> dict[str, object]:
    """A random VGG19 state dict (seed 5) as a torch.save file and as safetensors, plus one of seed 6."""
    folder = tmp_path_factory.mktemp("weights")
    state = {f"features.{k}": v for k, v in random_trunk(5).state_dict().items()}
    state["classifier.6.bias"] = torch.zeros(1000)  # extra keys of a full VGG19 are ignored
    pth = folder / "vgg19_seed5.pth"
    torch.save(state, pth)
    st = folder / "vgg19_seed5.safetensors"
    save_file(state, str(st))
    other = folder / "vgg19_seed6.pth"
    torch.save({f"features.{k}": v for k, v in random_trunk(6).state_dict().items()}, other)
    return {"pth": pth, "safetensors": st, "other": other}


# ----- crop_roi -------------------------------------------------------------------------------------


def test_crop_is_normalised_box_plus_margin():
    img = np.zeros((60, 80), np.uint8)
    mask = np.zeros_like(img)
    mask[10:20, 20:40] = 1  # box 10 rows x 20 columns
    img[5:25, 10:50] = 200  # exactly the box grown by 50 % of its height/width on each side
    crop = crop_roi(img, mask, margin=0.5, size=SIZE)
    assert crop.shape == (3, SIZE, SIZE) and crop.dtype == np.float32
    expected = (200 / 255 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    np.testing.assert_allclose(crop.reshape(3, -1), np.repeat(expected[:, None], SIZE * SIZE, 1), atol=1e-5)
    # a larger margin reaches the black surround, so the crop is no longer uniform
    assert np.ptp(crop_roi(img, mask, margin=0.7, size=SIZE)[0]) > 1.0


def test_crop_clips_at_border_and_handles_16bit_and_float():
    rng = np.random.default_rng(1)
    img8 = rng.integers(0, 256, (50, 50), dtype=np.uint8)
    img8[0, 0], img8[-1, -1] = 0, 255
    mask = np.zeros(img8.shape, bool)
    mask[0:12, 40:50] = True  # touches the top and right borders
    ref = crop_roi(img8, mask, margin=0.5, size=SIZE)
    assert ref.shape == (3, SIZE, SIZE)
    img16 = img8.astype(np.uint16) * 16  # whole-image min-max gives back img8 / 255
    np.testing.assert_allclose(crop_roi(img16, mask, margin=0.5, size=SIZE), ref, atol=1e-5)
    img_float = img8.astype(np.float32) / 10 - 3
    np.testing.assert_allclose(crop_roi(img_float, mask, margin=0.5, size=SIZE), ref, atol=1e-5)
    # (1, H, W) arrays as SimpleITK gives for 2D files are accepted
    np.testing.assert_array_equal(crop_roi(img8[None], mask[None], margin=0.5, size=SIZE), ref)
    # a given label selects that value only
    labelled = mask.astype(np.uint8) * 2
    np.testing.assert_array_equal(crop_roi(img8, labelled, margin=0.5, size=SIZE, label=2), ref)


def test_crop_errors_name_the_case():
    img = np.zeros((20, 20), np.uint8)
    with pytest.raises(InputError, match="case P7, column tumor_mask: mask is empty"):
        crop_roi(img, np.zeros_like(img), case="P7", column="tumor_mask")
    mask = np.ones((20, 20), np.uint8)
    with pytest.raises(InputError, match="case P7.*differs from image shape"):
        crop_roi(img, mask[:10], case="P7")
    with pytest.raises(InputError, match="2D greyscale"):
        crop_roi(np.zeros((20, 20, 3), np.uint8), np.ones((20, 20, 3)), case="P7")
    bad = np.zeros((20, 20), np.float32)
    bad[3, 3] = np.nan
    with pytest.raises(InputError, match="NaN"):
        crop_roi(bad, mask, case="P7")
    with pytest.raises(InputError, match="no pixel with label 3"):
        crop_roi(img, mask, label=3, case="P7")


# ----- features, determinism ------------------------------------------------------------------------


def test_features_have_128_columns_and_names(fitted, data):
    crops, _ = data
    features = fitted.transform(crops)
    assert features.shape == (len(crops), 128) and features.dtype == np.float32
    assert (features >= 0).all() and features.std(axis=0).max() > 0
    assert fitted.feature_names("tumor")[:2] == ["tumor_deep_000", "tumor_deep_001"]
    assert fitted.feature_names()[-1] == "deep_127" and len(fitted.feature_names()) == 128
    summary = fitted.training_summary_
    assert summary["n_train"] + summary["n_val"] == len(crops) and summary["n_val"] > 0
    assert summary["views_per_train_case"] == 2 and 1 <= summary["best_epoch"] <= summary["epochs_run"] <= 8
    assert fitted.predict_proba(crops).shape == (len(crops),)


def test_same_seed_same_features_other_seed_differs(fitted, data):
    crops, labels = data
    state_before = torch.get_rng_state()
    again = _extractor().fit(crops, labels)
    assert torch.equal(torch.get_rng_state(), state_before)  # the caller's RNG is left alone
    np.testing.assert_array_equal(again.transform(crops), fitted.transform(crops))
    other = _extractor(seed=1).fit(crops, labels)
    assert not np.allclose(other.transform(crops), fitted.transform(crops))


def test_pairs_and_precomputed_trunk_give_the_same_model(fitted, data):
    crops, labels = data
    pairs, _ = _cohort()
    from_pairs = _extractor().fit(pairs, labels)
    np.testing.assert_array_equal(from_pairs.transform(pairs), fitted.transform(crops))
    extractor = _extractor()
    trunk = extractor.trunk_features(crops)
    assert trunk.shape == (len(crops), 512)
    extractor.fit(crops, labels, trunk=trunk)
    np.testing.assert_array_equal(extractor.transform_trunk(trunk), fitted.transform(crops))


def test_a_crops_features_do_not_depend_on_the_crops_computed_with_it(fitted, data):
    """Reliability #0: CPU kernels choose blocking by batch shape (Intel's last float32 digits moved with the
    batch), so the trunk sees one crop per call and the head one row per call; a case is then computed
    the same way alone (Slicer, one case) and inside a cohort (alnm extract/predict)."""
    crops, _ = data
    seen: list[int] = []
    hook = fitted.current_trunk().register_forward_pre_hook(
        lambda module, args: seen.append(args[0].shape[0])
    )
    try:
        together = fitted.trunk_features(crops)
    finally:
        hook.remove()
    assert seen == [1] * len(crops)
    alone = np.concatenate([fitted.trunk_features(crops[i : i + 1]) for i in (5, 0, 11)])
    # same process, same single-crop computation: equal up to float32 rounding (1e-6 relative is ~8 ulps)
    np.testing.assert_allclose(alone, together[[5, 0, 11]], rtol=1e-6, atol=1e-7)
    rows: list[int] = []
    hook = fitted.head_.bottleneck.register_forward_pre_hook(
        lambda module, args: rows.append(args[0].shape[0])
    )
    try:
        features = fitted.transform_trunk(together)
    finally:
        hook.remove()
    assert rows == [1] * len(crops)
    np.testing.assert_allclose(fitted.transform_trunk(together[[7]]), features[[7]], rtol=1e-6, atol=1e-7)


def test_bad_training_input_is_refused(data):
    crops, labels = data
    with pytest.raises(ALNMError, match="one class"):
        _extractor().fit(crops, np.zeros(len(crops), int))
    with pytest.raises(ALNMError, match="labels of shape"):
        _extractor().fit(crops, labels[:-1])
    with pytest.raises(ALNMError, match="0/1"):
        _extractor().fit(crops, labels * 2)
    with pytest.raises(ALNMError, match=r"shape \(N, 3, 64, 64\)"):
        _extractor(input_size=64).fit(crops, labels)
    with pytest.raises(ALNMError, match="not fitted"):
        _extractor().transform(crops)
    with pytest.raises(ALNMError, match="finetune"):
        _extractor(finetune="partial")


def test_random_weights_warn_loudly():
    with pytest.warns(RandomWeightsWarning, match="RANDOM weights"):
        info = _extractor(seed=3).backbone_info
    assert info["weights"] == "none" and info["seed"] == 3
    assert info["sha256"] == tensor_sha256(random_trunk(3).state_dict())
    assert info["torch"] == torch.__version__ and "torchvision" in info


# ----- save / load ----------------------------------------------------------------------------------


def test_saved_random_backbone_model_reproduces_features_exactly(fitted, data, tmp_path):
    crops, _ = data
    paths = fitted.save(tmp_path, "tumor")
    assert [p.name for p in paths] == ["tumor.safetensors", "tumor.json"]
    assert paths[0].stat().st_size < 5_000_000
    meta = json.loads(paths[1].read_text())
    assert meta["backbone"]["weights"] == "none" and meta["backbone"]["seed"] == 0
    assert meta["backbone"]["sha256"] == fitted.backbone_info["sha256"]
    assert meta["training"]["n_train"] == fitted.training_summary_["n_train"]
    assert meta["trunk_sha256"] == fitted.trunk_checksum() == meta["backbone"]["tensor_sha256"]
    loaded = DeepFeatureExtractor.load(tmp_path, "tumor", device="cpu")
    np.testing.assert_array_equal(loaded.transform(crops), fitted.transform(crops))
    assert loaded.feature_names("ln") == fitted.feature_names("ln")


def test_load_refuses_backbone_checksum_mismatch_and_tampering(fitted, tmp_path):
    _, json_path = fitted.save(tmp_path, "m")
    meta = json.loads(json_path.read_text())
    meta["backbone"]["sha256"] = "0" * 64  # as if saved with a torch that draws other random numbers
    json_path.write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"regenerated from seed 0 has checksum .* torch"):
        DeepFeatureExtractor.load(tmp_path, "m")

    tensors, _ = fitted.save(tmp_path, "t")
    blob = bytearray(tensors.read_bytes())
    blob[-1] ^= 1
    tensors.write_bytes(bytes(blob))
    with pytest.raises(BundleError, match="modified"):
        DeepFeatureExtractor.load(tmp_path, "t")
    with pytest.raises(BundleError, match="not found"):
        DeepFeatureExtractor.load(tmp_path, "absent")


def test_full_finetune_smoke(data, tmp_path):
    crops, labels = data
    extractor = _extractor(finetune="full", epochs=2, patience=2, batch_size=8)
    before = extractor.trunk_features(crops[:4])
    extractor.fit(crops[:8], labels[:8])
    assert extractor.training_summary_["device"] == "cpu"
    features = extractor.transform(crops[:4])
    assert features.shape == (4, 128)
    assert not np.array_equal(extractor.trunk_features(crops[:4]), before)  # the trunk was trained
    assert extractor.trunk_checksum() != extractor.backbone_info["tensor_sha256"]
    paths = extractor.save(tmp_path, "full")
    loaded = DeepFeatureExtractor.load(tmp_path, "full", device="cpu")
    np.testing.assert_array_equal(loaded.transform(crops[:4]), features)
    assert loaded.trunk_checksum() == extractor.trunk_checksum()
    assert loaded.backbone_info == extractor.backbone_info
    assert paths[0].stat().st_size > 50_000_000  # the fine-tuned trunk travels with the model


# ----- weights files --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["pth", "safetensors"])
def test_state_dict_file_is_used_and_recorded(state_files, data, kind, tmp_path):
    crops, labels = data
    path = state_files[kind]
    extractor = _extractor(weights=str(path))
    info = extractor.backbone_info
    assert info["weights"] == "file" and info["file"] == path.name
    assert info["sha256"] == file_sha256(path)
    assert info["tensor_sha256"] == tensor_sha256(random_trunk(5).state_dict())
    with torch.inference_mode():
        reference = random_trunk(5)(torch.from_numpy(crops)).mean(dim=(2, 3)).numpy()
    np.testing.assert_allclose(extractor.trunk_features(crops), reference, rtol=1e-5, atol=1e-6)
    if kind == "safetensors":
        return  # the same tensors as the .pth file: training and reloading are checked once, below

    extractor.fit(crops, labels)
    extractor.save(tmp_path, "m")
    loaded = DeepFeatureExtractor.load(tmp_path, "m", device="cpu")
    np.testing.assert_array_equal(loaded.transform(crops), extractor.transform(crops))
    moved = tmp_path / ("moved" + path.suffix)
    shutil.copy(path, moved)
    relocated = DeepFeatureExtractor.load(tmp_path, "m", weights_path=moved, device="cpu")
    np.testing.assert_array_equal(relocated.transform(crops), extractor.transform(crops))
    with pytest.raises(BundleError, match="SHA-256"):
        DeepFeatureExtractor.load(tmp_path, "m", weights_path=state_files["other"])
    meta = json.loads((tmp_path / "m.json").read_text())
    meta["backbone"]["path"] = str(tmp_path / "gone.pth")
    (tmp_path / "m.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match=r"gone\.pth; pass weights_path"):
        DeepFeatureExtractor.load(tmp_path, "m")


def test_bad_state_dict_files_are_named(tmp_path):
    wrong = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(2)}, wrong)
    with pytest.raises(InputError, match=r"resnet\.pth.*not a VGG19 state dict"):
        _ = _extractor(weights=str(wrong)).backbone_info
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match=r"garbage\.pth.*cannot read"):
        _ = _extractor(weights=str(garbage)).backbone_info
    with pytest.raises(InputError, match="not found"):
        _ = _extractor(weights=str(tmp_path / "missing.pth")).backbone_info


def test_missing_imagenet_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(deep.WEIGHTS_ENV, raising=False)
    expected = tmp_path / "torch" / "hub" / "checkpoints" / VGG19_FILENAME
    assert deep.imagenet_cache_path() == expected
    with pytest.raises(ALNMError) as err:
        _ = DeepFeatureExtractor(weights="imagenet", input_size=SIZE).backbone_info
    message = str(err.value)
    assert str(expected) in message and VGG19_URL in message and deep.WEIGHTS_ENV in message
    monkeypatch.setenv(deep.WEIGHTS_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(InputError, match=r"nowhere\.pth"):
        _ = DeepFeatureExtractor(weights="imagenet", input_size=SIZE).backbone_info


def test_imagenet_weights_from_cache_and_env(state_files, data, tmp_path, monkeypatch):
    crops, labels = data
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(deep.WEIGHTS_ENV, raising=False)
    cached = deep.imagenet_cache_path()
    cached.parent.mkdir(parents=True)
    shutil.copy(state_files["pth"], cached)
    # a file with the right name but other contents is not taken for torchvision's ImageNet weights
    with pytest.raises(ALNMError, match="not torchvision's ImageNet VGG19 weights"):
        _ = _extractor(weights="imagenet").backbone_info
    sha = file_sha256(cached)
    monkeypatch.setattr(deep, "IMAGENET_SHA256_PREFIX", sha[:8])
    extractor = _extractor(weights="imagenet").fit(crops, labels)
    info = extractor.backbone_info
    assert info["weights"] == "imagenet" and info["sha256"] == sha and info["url"] == VGG19_URL
    extractor.save(tmp_path, "m")
    features = extractor.transform(crops)
    np.testing.assert_array_equal(
        DeepFeatureExtractor.load(tmp_path, "m", device="cpu").transform(crops), features
    )
    # from the environment variable when the cache is empty
    elsewhere = tmp_path / "copy.pth"
    cached.rename(elsewhere)
    monkeypatch.setenv(deep.WEIGHTS_ENV, str(elsewhere))
    np.testing.assert_array_equal(
        DeepFeatureExtractor.load(tmp_path, "m", device="cpu").transform(crops), features
    )


# ----- torchvision's VGG19 ---------------------------------------------------------------------------


def _handwritten_trunk() -> torch.nn.Sequential:
    """The trunk as this project wrote it by hand before it used torchvision (configuration "E")."""
    cfg = (
        64,
        64,
        "M",
        128,
        128,
        "M",
        256,
        256,
        256,
        256,
        "M",
        512,
        512,
        512,
        512,
        "M",
        512,
        512,
        512,
        512,
        "M",
    )
    layers: list[torch.nn.Module] = []
    channels = 3
    for v in cfg:
        if v == "M":
            layers.append(torch.nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [
                torch.nn.Conv2d(channels, int(v), kernel_size=3, padding=1),
                torch.nn.ReLU(inplace=True),
            ]
            channels = int(v)
    return torch.nn.Sequential(*layers)


def test_the_trunk_is_torchvisions_vgg19_and_gives_the_features_of_the_handwritten_one(data):
    import torchvision

    trunk = deep._vgg19_trunk()
    assert trunk.state_dict().keys() == torchvision.models.vgg19(weights=None).features.state_dict().keys()
    state = random_trunk(5).state_dict()
    # the same state-dict keys (features.N.*): no mapping is needed
    assert set(state) == set(_handwritten_trunk().state_dict())
    old = _handwritten_trunk().eval()
    old.load_state_dict(state)
    new = deep._trunk_from_state(state).eval()
    crops = torch.from_numpy(data[0][:4])
    with torch.inference_mode():
        for i in range(len(crops)):
            # the same kernels (Conv2d, ReLU, MaxPool2d) on the same tensors, one crop at a time, in one
            # process: not a rounding difference is possible, so the outputs must be identical
            assert torch.equal(old(crops[i : i + 1]), new(crops[i : i + 1]))
    # the random backbone of weights="none" is drawn as before: saved models' checksums still match
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in old:
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(
                    module.weight, mode="fan_out", nonlinearity="relu", generator=gen
                )
                torch.nn.init.zeros_(module.bias)
    assert tensor_sha256(old.state_dict()) == tensor_sha256(state)


def test_imagenet_facts_come_from_torchvisions_weights_api():
    from torchvision.models import VGG19_Weights

    weights = VGG19_Weights.IMAGENET1K_V1
    assert deep.IMAGENET_WEIGHTS is weights and deep.IMAGENET_WEIGHTS_NAME == "VGG19_Weights.IMAGENET1K_V1"
    assert VGG19_URL == weights.url and VGG19_FILENAME == weights.url.split("/")[-1] == "vgg19-dcbb9e9d.pth"
    assert deep.IMAGENET_SHA256_PREFIX == "dcbb9e9d"
    assert list(IMAGENET_MEAN) == list(weights.transforms().mean) and list(IMAGENET_STD) == list(
        weights.transforms().std
    )
    assert deep.VGG19_SIZE_MB == weights.meta["_file_size"]


# ----- downloading the ImageNet weights --------------------------------------------------------------


def _leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_checks_length_and_checksum_and_leaves_nothing_when_it_fails(tmp_path):
    blob = np.random.default_rng(0).bytes(3_000_000)
    sha = hashlib.sha256(blob).hexdigest()
    folder = tmp_path / "checkpoints"
    seen: list[tuple[int, int | None]] = []
    with serve({"/w.pth": blob}) as base:
        # match: every byte, the progress reported up to the announced total
        path = deep.download_weights(
            f"{base}/w.pth", folder / f"w-{sha[:8]}.pth", sha[:8], progress=lambda d, t: seen.append((d, t))
        )
        assert path.read_bytes() == blob and _leftovers(folder) == [path.name]
        assert seen[0] == (0, len(blob)) and seen[-1] == (len(blob), len(blob))
        # mismatch: the file's bytes do not have the checksum its name promises
        with pytest.raises(ALNMError, match=r"SHA-256 starts .* not 00000000 .*nothing was kept") as err:
            deep.download_weights(f"{base}/w.pth", folder / "bad.pth", "00000000", progress=lambda d, t: None)
        assert str(folder) in str(err.value)
        # interrupted: the server closes the connection halfway through the body
        with pytest.raises(
            ALNMError, match=r"interrupted: the connection closed after 1,500,000 of 3,000,000 bytes"
        ):
            deep.download_weights(
                f"{base}/cut/w.pth", folder / "cut.pth", sha[:8], progress=lambda d, t: None
            )
        with pytest.raises(ALNMError, match="HTTP 404"):
            deep.download_weights(
                f"{base}/absent.pth", folder / "absent.pth", None, progress=lambda d, t: None
            )
    assert _leftovers(folder) == [path.name]  # no partial or temporary file of the three failures
    # no server at all (no network): the message names the URL, the file and where to put it by hand
    url = f"http://127.0.0.1:{free_port()}/{VGG19_FILENAME}"
    with pytest.raises(ALNMError) as err:
        deep.download_weights(url, tmp_path / "none" / VGG19_FILENAME, "dcbb9e9d", progress=lambda d, t: None)
    message = str(err.value)
    assert "no connection" in message and url in message and str(tmp_path / "none") in message
    assert VGG19_FILENAME in message and "--deep none" in message and "--deep off" in message
    assert "weights=" not in message  # CLI wording, not Python's
    assert _leftovers(tmp_path / "none") == []
    # a file:// URL (a local mirror) works the same way
    source = tmp_path / "mirror.pth"
    source.write_bytes(blob)
    copied = deep.download_weights(
        source.as_uri(), tmp_path / "copy" / "w.pth", sha[:8], progress=lambda d, t: None
    )
    assert copied.read_bytes() == blob


def test_imagenet_weights_are_downloaded_into_torch_hubs_cache_only_with_consent(
    state_files, data, tmp_path, monkeypatch, capsys
):
    crops, _ = data
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(deep.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv(deep.ALLOW_DOWNLOAD_ENV, raising=False)
    blob = state_files["pth"].read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    monkeypatch.setattr(deep, "IMAGENET_SHA256_PREFIX", sha[:8])
    cache = deep.imagenet_cache_path()
    assert cache.parent == tmp_path / "torch" / "hub" / "checkpoints"
    with serve({f"/{VGG19_FILENAME}": blob}) as base:
        monkeypatch.setattr(deep, "VGG19_URL", f"{base}/{VGG19_FILENAME}")
        with pytest.raises(
            ALNMError, match="add --download to the alnm command or set ALNM_ALLOW_DOWNLOAD=1"
        ):
            deep.find_imagenet_weights()
        assert not cache.parent.exists()  # nothing fetched without consent
        monkeypatch.setenv(deep.ALLOW_DOWNLOAD_ENV, "0")
        with pytest.raises(ALNMError, match="not found"):
            deep.find_imagenet_weights()
        monkeypatch.setenv(deep.ALLOW_DOWNLOAD_ENV, "1")
        extractor = _extractor(weights="imagenet")
        info = extractor.backbone_info  # downloaded here, with tqdm's bar on stderr
        assert "vgg19-dcbb9e9d.pth" in capsys.readouterr().err
        assert cache.read_bytes() == blob and _leftovers(cache.parent) == [VGG19_FILENAME]
        assert info["sha256"] == sha and info["torchvision_weights"] == "VGG19_Weights.IMAGENET1K_V1"
    # from now on the cache is used, without the server
    monkeypatch.delenv(deep.ALLOW_DOWNLOAD_ENV)
    assert deep.find_imagenet_weights() == cache
    np.testing.assert_allclose(
        extractor.trunk_features(crops[:2]),
        _extractor(weights=str(state_files["pth"])).trunk_features(crops[:2]),
        rtol=1e-6,
        atol=1e-7,
    )


# ----- intensity standardisation --------------------------------------------------------------------


def test_zscore_crop_ignores_gain_and_dynamic_range():
    rng = np.random.default_rng(3)
    img = rng.normal(100.0, 30.0, (60, 70))
    mask = np.zeros(img.shape, np.uint8)
    mask[20:40, 25:50] = 1
    img[mask > 0] -= 40.0  # a darker lesion
    ref = crop_roi(img, mask, size=SIZE, intensity="zscore")
    brighter = crop_roi(1.6 * img + 25.0, mask, size=SIZE, intensity="zscore")  # more gain, other range
    np.testing.assert_allclose(brighter, ref, atol=1e-5)
    # the 8-bit default keeps absolute grey levels, so the same change moves the crop
    as8 = np.clip(img, 0, 255).astype(np.uint8)
    as8_bright = np.clip(1.6 * img + 25.0, 0, 255).astype(np.uint8)
    assert np.abs(crop_roi(as8_bright, mask, size=SIZE) - crop_roi(as8, mask, size=SIZE)).mean() > 0.5
    # grey = 127.5 + 32 z of the whole image: the crop's mean follows the lesion's z-score
    z_lesion = (img[mask > 0].mean() - img.mean()) / img.std()
    grey = (
        crop_roi(img, mask, margin=0.0, size=SIZE, intensity="zscore")[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0]
    )
    assert grey.mean() * 255 == pytest.approx(127.5 + deep.NORMALIZE_SCALE * z_lesion, abs=1.0)
    flat = crop_roi(np.full((40, 40), 7.0), np.ones((40, 40)), size=SIZE, intensity="zscore")
    np.testing.assert_allclose(flat[0], (0.5 - IMAGENET_MEAN[0]) / IMAGENET_STD[0], atol=1e-6)
    with pytest.raises(ALNMError, match="intensity must be one of auto, minmax, zscore"):
        crop_roi(img, mask, size=SIZE, intensity="zcore")


def test_intensity_setting_is_used_saved_and_checked(tmp_path):
    pairs, labels = _cohort()
    model = _extractor(intensity="zscore", epochs=2).fit(
        np.stack([crop_roi(i, m, size=SIZE, intensity="zscore") for i, m in pairs]), labels
    )
    assert model.settings()["intensity"] == "zscore"
    # (image, mask) pairs are cropped with the model's own intensity mode
    np.testing.assert_array_equal(
        model.transform(pairs),
        model.transform(np.stack([crop_roi(i, m, size=SIZE, intensity="zscore") for i, m in pairs])),
    )
    model.save(tmp_path, "tumor")
    loaded = DeepFeatureExtractor.load(tmp_path, "tumor", device="cpu")
    assert loaded.intensity == "zscore"
    np.testing.assert_array_equal(loaded.transform(pairs), model.transform(pairs))
    # a model saved before the setting existed loads with the old behaviour
    meta_path = tmp_path / "tumor.json"
    meta = json.loads(meta_path.read_text())
    del meta["settings"]["intensity"]
    meta["version"] = 1
    meta_path.write_text(json.dumps(meta))
    assert DeepFeatureExtractor.load(tmp_path, "tumor", device="cpu").intensity == "auto"
    with pytest.raises(ALNMError, match="intensity must be one of"):
        _extractor(intensity="percentile")


def test_head_training_reports_progress_over_every_trunk_pass(data):
    crops, labels = data
    seen: list[tuple[int, int]] = []
    model = _extractor(n_views=2, epochs=1).fit(
        crops, labels, progress=lambda done, total: seen.append((done, total))
    )
    n_train = model.training_summary_["n_train"]
    assert {total for _, total in seen} == {len(crops) + 2 * n_train}  # plain crops, then two augmented views
    assert [done for done, _ in seen] == sorted(done for done, _ in seen) and seen[-1][0] == len(
        crops
    ) + 2 * n_train
    seen.clear()
    _extractor(n_views=2, epochs=1).fit(
        crops,
        labels,
        trunk=_extractor().trunk_features(crops),
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[-1] == (2 * n_train, 2 * n_train)  # given trunk features: the views only


def test_deep_cache_keys_entries_and_heads(fitted, data, tmp_path, caplog):
    """The deep extractor's own cache: keys follow the trunk identity and input; bad entries are recomputed."""
    store = deep.DeepCache(tmp_path, version=1)
    identity = fitted.trunk_identity()
    assert (
        identity == _extractor().trunk_identity()
    )  # the frozen backbone's outputs do not depend on the head
    assert identity != _extractor(margin=0.2).trunk_identity() != _extractor(seed=1).trunk_identity()
    path = store.trunk_path("input-a", identity)
    assert path.parent == tmp_path / "deep" / "trunk"
    assert path != store.trunk_path("input-b", identity) and path != store.trunk_path("input-a", "other")
    assert deep.DeepCache(tmp_path, version=2).trunk_path("input-a", identity) != path

    crops, labels = data
    vector = fitted.trunk_features(crops[:1])[0]
    assert store.load_trunk(path, fitted.trunk_dim) is None
    store.save_trunk(path, vector)
    assert np.array_equal(store.load_trunk(path, fitted.trunk_dim), vector)
    store.save_trunk(path, vector[:-1])
    assert store.load_trunk(path, fitted.trunk_dim) is None and "expected" in caplog.text
    path.write_bytes(b"not numpy")
    assert store.load_trunk(path, fitted.trunk_dim) is None and "unreadable cache entry" in caplog.text

    train = [(f"case-{i}", int(y)) for i, y in enumerate(labels)]
    head_dir = store.head_dir(fitted, "none", train)
    assert head_dir.parent == tmp_path / "deep" / "heads"
    assert head_dir != store.head_dir(fitted, "none", [*train[:-1], (train[-1][0], 1 - train[-1][1])])
    assert store.load_head(head_dir, "tumor", {}) is None
    fitted.save(head_dir, "tumor")
    loaded = store.load_head(head_dir, "tumor", {"device": "cpu"})
    assert loaded is not None and np.array_equal(loaded.transform(crops[:2]), fitted.transform(crops[:2]))
    (head_dir / "tumor.json").write_text("{}")
    assert store.load_head(head_dir, "tumor", {}) is None and "retraining it" in caplog.text


def test_auto_without_imagenet_weights_says_random_once(tmp_path, monkeypatch, caplog):
    """`--deep auto` with no ImageNet file: one warning, with what to do, not a second one per trunk built."""
    from ALNMPredictorLib.pipeline import resolve_deep

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(deep.WEIGHTS_ENV, raising=False)
    monkeypatch.delenv("ALNM_ALLOW_DOWNLOAD", raising=False)
    monkeypatch.setattr(deep, "_RANDOM_LOGGED", set())
    caplog.set_level("WARNING")
    assert resolve_deep("auto", download=False, progress=False) == "none"
    for region_seed in (0, 0, 5):
        deep.load_backbone("none", region_seed)
    said = [r.getMessage() for r in caplog.records if "RANDOM" in r.getMessage()]
    assert len(said) == 1 and "--download" in said[0] and "for tests only" in said[0], said
    assert said[0].count("ImageNet VGG19 weights not found") == 1

    monkeypatch.setattr(deep, "_RANDOM_LOGGED", set())  # without the explanation: once per seed
    caplog.clear()
    for region_seed in (0, 0, 5):
        deep.load_backbone("none", region_seed)
    assert sum("RANDOM weights" in r.getMessage() for r in caplog.records) == 2
