"""The networks behind the extractors: builders that load a verified state dict with ``strict=True``.

A builder takes the state dict (already read from the checked weight file) and returns a
:class:`FeatureNetwork`: ``forward`` gives the pooled feature, :meth:`FeatureNetwork.classify`
the ImageNet logits (tests use them to show the weights are genuinely trained), and
:meth:`FeatureNetwork.folded` a copy with every BatchNorm folded into the convolution before it,
which computes the same function faster (and exports to ONNX as plain convolutions).

ResNet-50 is torchvision's module when torchvision imports beside the installed torch, else
:class:`ResNet50` below, written with torchvision's state-dict keys so that the published weight
file loads into either.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from common.errors import RecAuditError


class FeatureNetwork(nn.Module):
    """``forward(pixels) -> features`` (N x dim) and ``classify(pixels) -> logits`` (N x classes)."""

    def __init__(self, backbone: nn.Module, pool, head: nn.Linear, conv_bn_pairs: list[tuple[str, str]]):
        super().__init__()
        self.backbone = backbone
        self._pool = pool  # backbone, pixels -> pooled features
        self.head = head
        self._pairs = conv_bn_pairs  # (conv, batch norm) module paths inside the backbone

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self._pool(self.backbone, pixels)

    def classify(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.forward(pixels))

    def folded(self) -> FeatureNetwork:
        """An eval-mode copy with each BatchNorm folded into its convolution (same outputs, fewer ops)."""
        network = copy.deepcopy(self).eval()
        for conv_path, bn_path in network._pairs:
            conv = network.backbone.get_submodule(conv_path)
            bn = network.backbone.get_submodule(bn_path)
            scale = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
            bias = conv.bias.detach() if conv.bias is not None else torch.zeros_like(bn.running_mean)
            conv.weight = nn.Parameter(conv.weight.detach() * scale.reshape(-1, 1, 1, 1), requires_grad=False)
            conv.bias = nn.Parameter((bias - bn.running_mean) * scale + bn.bias.detach(), requires_grad=False)
            parent_path, _, name = bn_path.rpartition(".")
            parent = network.backbone.get_submodule(parent_path) if parent_path else network.backbone
            setattr(parent, name, nn.Identity())
        network._pairs = []
        return network


def load_strict(module: nn.Module, state_dict: dict, what: str) -> None:
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise RecAuditError(f"the {what} weight file does not fit the architecture ({detail}); "
                            "it is not the registered file: delete it and fetch it again") from None


# ---------------------------------------------------------------- EfficientNet-Lite0

def efficientnet_lite0(state_dict: dict) -> FeatureNetwork:
    """EfficientNet-Lite0 of efficientnet-lite-pytorch 0.1.0 (``from_name`` only: it downloads nothing)."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise RecAuditError("the efficientnet-lite0 extractor needs the package efficientnet-lite-pytorch; "
                            "install it: pip install 'efficientnet-lite-pytorch==0.1.0'") from None
    backbone = EfficientNet.from_name("efficientnet-lite0")
    load_strict(backbone, state_dict, "efficientnet-lite0")
    backbone.eval()
    pairs = [("_conv_stem", "_bn0"), ("_conv_head", "_bn1")]
    for index, block in enumerate(backbone._blocks):
        if hasattr(block, "_expand_conv"):
            pairs.append((f"_blocks.{index}._expand_conv", f"_blocks.{index}._bn0"))
        pairs += [(f"_blocks.{index}._depthwise_conv", f"_blocks.{index}._bn1"),
                  (f"_blocks.{index}._project_conv", f"_blocks.{index}._bn2")]
    return FeatureNetwork(backbone, _lite_pool, backbone._fc, pairs).eval()


def _lite_pool(backbone, pixels):
    # extract_features ends with conv_head -> BN -> ReLU6; the classifier reads its spatial mean.
    return backbone.extract_features(pixels).mean(dim=(2, 3))


# ---------------------------------------------------------------- ResNet-50

class Bottleneck(nn.Module):
    """torchvision's ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    """ResNet-50 with torchvision's module names (conv1, bn1, layer1..4, avgpool, fc)."""

    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (planes, blocks, stride) in enumerate(((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)), 1):
            downsample = None
            if stride != 1 or inplanes != planes * Bottleneck.expansion:
                downsample = nn.Sequential(nn.Conv2d(inplanes, planes * Bottleneck.expansion, 1, stride=stride,
                                                     bias=False), nn.BatchNorm2d(planes * Bottleneck.expansion))
            layers = [Bottleneck(inplanes, planes, stride, downsample)]
            inplanes = planes * Bottleneck.expansion
            layers += [Bottleneck(inplanes, planes) for _ in range(1, blocks)]
            setattr(self, f"layer{index}", nn.Sequential(*layers))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * Bottleneck.expansion, num_classes)
        # No initialisation scheme: this module only ever runs with a loaded (verified) state dict.

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(_resnet_pool(self, x))


def torchvision_resnet50() -> nn.Module | None:
    """torchvision's resnet50 module (no weights), or None when torchvision does not load beside this torch."""
    try:
        import torchvision.models
        model = torchvision.models.resnet50(weights=None)
        model(torch.zeros(1, 3, 64, 64))  # a CUDA-only or mismatched build fails here, not later
        return model
    except Exception:  # noqa: BLE001 - any failure means: use our own module
        return None


def resnet50(state_dict: dict, use_torchvision: bool = True) -> FeatureNetwork:
    backbone = (torchvision_resnet50() if use_torchvision else None) or ResNet50()
    load_strict(backbone, state_dict, "resnet50")
    backbone.eval()
    pairs = [("conv1", "bn1")]
    for name, module in backbone.named_modules():
        if name.startswith("layer") and name.count(".") == 1:
            pairs += [(f"{name}.conv{k}", f"{name}.bn{k}") for k in (1, 2, 3)]
            if module.downsample is not None:
                pairs.append((f"{name}.downsample.0", f"{name}.downsample.1"))
    return FeatureNetwork(backbone, _resnet_pool, backbone.fc, pairs).eval()


def _resnet_pool(backbone, pixels):
    x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(pixels))))
    x = backbone.layer4(backbone.layer3(backbone.layer2(backbone.layer1(x))))
    return torch.flatten(backbone.avgpool(x), 1)


BUILDERS = {"efficientnet_lite0": efficientnet_lite0, "resnet50": resnet50}


def build_network(builder: str, state_dict: dict) -> FeatureNetwork:
    return BUILDERS[builder](state_dict)


def read_state_dict(path, what: str) -> dict:
    """Read a (verified) weight file as tensors only (``weights_only``: no pickled code runs)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds for a damaged file
        raise RecAuditError(f"the {what} weight file {path} cannot be read ({type(error).__name__}); "
                            "delete it and fetch it again") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RecAuditError(f"the {what} weight file {path} is not a state dict of tensors; delete it and fetch it again")
    return state
