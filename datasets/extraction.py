"""Turn a prepared dataset's item images into a named feature set with a pretrained extractor.

:func:`extract_features` reads ``item_images.parquet`` (and ``meta.json``'s ``n_items``) of a
prepared dataset, checks the extractor's weights (:func:`datasets.extractors.resolve_weights`),
runs every item image through the network (:func:`load_encoder`) and writes
``<extractor>@<sha12>`` with :func:`datasets.item_data.write_feature_set`: float32 items x dim,
zeros and ``present = False`` for items without an image.

Runtimes, chosen by measurement (``tests/benchmarks/bench_extraction.py``): on CUDA plain PyTorch;
on CPU ONNX Runtime running the network with its BatchNorms folded (exported in memory by
``torch.onnx.export``, nothing downloaded or cached), falling back to the folded network in
PyTorch when ONNX Runtime or the export is unavailable. ``runtime="torch"`` forces the unfolded
reference network, which the tests compare the others against.
"""
from __future__ import annotations

import importlib.metadata
import io
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from common.errors import RecAuditError
from datasets.extractor_networks import FeatureNetwork, build_network, read_state_dict
from datasets.extractors import DEFAULT_EXTRACTOR, ExtractorSpec, get_extractor, resolve_weights
from datasets.images import default_workers, iter_batches, read_item_images
from datasets.item_data import FeatureSet, make_feature_set, write_feature_set

DEFAULT_BATCH_SIZES = {"cpu": 8, "cuda": 64}  # ONNX Runtime on a CPU is fastest with small batches (benchmark)
RUNTIMES = ("auto", "onnxruntime", "torch-folded", "torch")
DEVICES = ("auto", "cpu", "cuda")


# ----- the network, on a runtime --------------------------------------------------------------
@dataclass(frozen=True)
class Encoder:
    """Pixels (N x 3 x H x W float32, as :mod:`datasets.images` makes them) -> features (N x dim)."""

    spec: ExtractorSpec
    weights_sha256: str
    runtime: str  # onnxruntime-cpu | torch-folded-cpu | torch-cpu | torch-cuda
    network: FeatureNetwork  # the reference network (unfolded; on the GPU for torch-cuda)
    _run: Callable[[np.ndarray], np.ndarray]

    @property
    def key(self) -> str:
        return f"{self.spec.name}@{self.weights_sha256[:12]}"

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return np.asarray(self._run(np.ascontiguousarray(pixels, dtype=np.float32)), dtype=np.float32)


def resolve_device(device: str = "auto") -> str:
    if device not in DEVICES:
        raise RecAuditError(f"unknown device {device!r}; use one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise RecAuditError("--device cuda was asked for, but torch sees no CUDA device here; use --device cpu or auto")
    return device


def load_network(spec: ExtractorSpec, weights_dir: Path | str | None = None, mirror: Path | str | None = None,
                 progress: bool = True) -> tuple[FeatureNetwork, str]:
    """The reference network with its verified weights, and the weights' sha256."""
    path = resolve_weights(spec, weights_dir, mirror, progress)
    network = build_network(spec.builder, read_state_dict(path, spec.name))
    return network, spec.weights.sha256


def load_encoder(extractor: str | ExtractorSpec = DEFAULT_EXTRACTOR, device: str = "auto", runtime: str = "auto",
                 weights_dir: Path | str | None = None, mirror: Path | str | None = None,
                 progress: bool = True) -> Encoder:
    """The extractor's network, weights checked, on the fastest runtime for ``device`` (or the one asked for)."""
    spec = get_extractor(extractor) if isinstance(extractor, str) else extractor
    if runtime not in RUNTIMES:
        raise RecAuditError(f"unknown runtime {runtime!r}; use one of {', '.join(RUNTIMES)}")
    device = resolve_device(device)
    network, sha256 = load_network(spec, weights_dir, mirror, progress)
    if device == "cuda":
        if runtime not in ("auto", "torch"):
            raise RecAuditError(f"the {runtime} runtime runs on the CPU only; use --device cpu, or runtime torch")
        return Encoder(spec, sha256, "torch-cuda", network, _torch_runner(network, "cuda"))
    if runtime in ("auto", "onnxruntime"):
        runner = _onnx_runner(network.folded(), spec.preprocessing.crop, strict=runtime == "onnxruntime")
        if runner is not None:
            return Encoder(spec, sha256, "onnxruntime-cpu", network, runner)
        runtime = "torch-folded"
    if runtime == "torch-folded":
        return Encoder(spec, sha256, "torch-folded-cpu", network, _torch_runner(network.folded(), "cpu"))
    return Encoder(spec, sha256, "torch-cpu", network, _torch_runner(network, "cpu"))


def _torch_runner(network: FeatureNetwork, device: str) -> Callable[[np.ndarray], np.ndarray]:
    network = network.to(device).eval()

    def run(pixels: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return network(torch.from_numpy(pixels).to(device)).float().cpu().numpy()
    return run


def _onnx_runner(network: FeatureNetwork, size: int, strict: bool) -> Callable[[np.ndarray], np.ndarray] | None:
    """ONNX Runtime on the CPU, from an in-memory export; None (or an error when ``strict``) if unavailable."""
    try:
        import onnxruntime
    except ImportError:
        if strict:
            raise RecAuditError("the onnxruntime runtime needs the package onnxruntime; install it: "
                                "pip install onnxruntime") from None
        print("note: onnxruntime is not installed; extracting with PyTorch (slower)", file=sys.stderr)
        return None
    try:
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notes
            torch.onnx.export(network.cpu().eval(), torch.zeros(1, 3, size, size), buffer, input_names=["pixels"],
                              output_names=["features"], dynamic_axes={"pixels": {0: "n"}, "features": {0: "n"}},
                              opset_version=17, dynamo=False)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ONNX Runtime threads would otherwise spin and starve the image-loading threads.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - any export or session failure: fall back to PyTorch
        if strict:
            raise RecAuditError(f"the network could not be exported to ONNX Runtime ({type(error).__name__}: "
                                f"{str(error).strip().splitlines()[0] if str(error).strip() else ''}); "
                                "use runtime torch-folded") from None
        print(f"note: ONNX export failed ({type(error).__name__}); extracting with PyTorch (slower)", file=sys.stderr)
        return None

    def run(pixels: np.ndarray) -> np.ndarray:
        return session.run(["features"], {"pixels": pixels})[0]
    return run


def library_versions(runtime: str) -> dict:
    names = {"numpy": "numpy", "torch": "torch", "pillow": "pillow"}
    if runtime.startswith("onnxruntime"):
        names["onnxruntime"] = "onnxruntime"
    versions = {}
    for key, distribution in names.items():
        try:
            versions[key] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            versions[key] = None
    if runtime.endswith("cuda"):
        versions["cuda"] = torch.version.cuda
    return versions


# ----- extraction -----------------------------------------------------------------------------
def extract_features(prepared_dir: Path | str, raw_dir: Path | str, extractor_name: str = DEFAULT_EXTRACTOR,
                     out_dir: Path | str | None = None, device: str = "auto", batch_size: int | None = None,
                     workers: int | None = None, *, runtime: str = "auto", dataset: str | None = None,
                     weights_dir: Path | str | None = None, progress: bool = True) -> FeatureSet:
    """Extract ``extractor_name`` features of every item image; write them to ``out_dir`` if given.

    ``batch_size`` defaults to 8 on a CPU and 64 on CUDA; ``workers`` (image-loading threads) to up
    to 4. ``dataset`` names the dataset in the meta (default: the prepared folder's name);
    ``weights_dir`` holds downloaded weight files (default ``data/downloads/weights``).
    Returns the feature set.
    """
    spec = get_extractor(extractor_name)
    images = read_item_images(prepared_dir, raw_dir)
    present = images.present
    n_present = int(present.sum())
    if n_present == 0:
        raise RecAuditError(f"no item of {prepared_dir} has an image; there is nothing to extract")
    workers = default_workers() if workers is None else workers
    encoder = load_encoder(spec, device, runtime, weights_dir, progress=progress)
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZES["cuda" if encoder.runtime.endswith("cuda") else "cpu"]
    values = np.zeros((images.n_items, spec.dim), dtype=np.float32)
    started = time.perf_counter()
    with tqdm(total=n_present, unit="img", desc=spec.name, leave=False, disable=None if progress else True) as bar:
        for batch in iter_batches(images, spec.preprocessing, batch_size, workers):
            features = encoder(batch.pixels)
            if features.shape != (len(batch), spec.dim):
                raise RecAuditError(f"{spec.name} returned features of shape {features.shape}, expected "
                                    f"({len(batch)}, {spec.dim}); the extractor's registry entry is wrong")
            values[batch.items] = features
            bar.update(len(batch))
    seconds = time.perf_counter() - started
    name = dataset or Path(prepared_dir).name
    meta = {**spec.describe(), "runtime": encoder.runtime, "batch_size": int(batch_size),
            "libraries": library_versions(encoder.runtime), "dataset": name,
            "items_with_image": n_present, "items_without_image": int(images.n_items - n_present),
            "images_manifest_sha256": images.manifest_sha256}
    features = make_feature_set(encoder.key, values, present, meta)
    destination = f" -> {out_dir}" if out_dir is not None else ""
    if out_dir is not None:
        write_feature_set(features, out_dir)
    print(f"{encoder.key}: {n_present:,} images of {images.n_items:,} items ({images.n_items - n_present:,} without "
          f"image) in {seconds:.1f} s, {n_present / max(seconds, 1e-9):.1f} images/s on {encoder.runtime} "
          f"(batch {batch_size}, {workers} loader workers){destination}", file=sys.stderr)
    return features
