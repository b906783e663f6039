"""The preprocessing each model's config describes, in one place (like torchvision's
``weights.transforms()``).

Every fruitseg model keeps ``mean`` / ``std`` in its config (``config.json``); its
:meth:`~fruitseg.models.hub_mixin.FruitsegHubMixin.transforms` returns a
:class:`Normalise` built from them and :meth:`~fruitseg.models.hub_mixin.FruitsegHubMixin.normalise`
applies it. The predictors, the training loops, the int8 calibration and the benches all
go through it; none of them writes ``(x - mean) / std`` itself. Resizing is not part of it:
how an image reaches ``image_size`` differs between a model's uses (white padding for the
seed classifier, a squeeze for the photo classifier, the longer side for the segmenter).

(:mod:`fruitseg.federated.data` keeps its own constants: they belong to the federated
experiments' own small models, which have no config of this kind.)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image
from torch import nn


class Normalise(nn.Module):
    """(B, 3, H, W) RGB, uint8 in [0, 255] or float in [0, 1] -> float ``(x - mean) / std``.

    The statistics are float32 (B, 3, 1, 1) buffers (not saved in any state dict), used on
    the input's device; the result keeps the input's memory format.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB), got {len(mean)} and {len(std)}")
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W) RGB, got {tuple(x.shape)}")
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        elif not x.is_floating_point():
            raise TypeError(f"expected uint8 or floating-point pixels, got {x.dtype}")
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def extra_repr(self) -> str:
        return f"mean={tuple(round(v, 4) for v in self.mean.flatten().tolist())}, std={tuple(round(v, 4) for v in self.std.flatten().tolist())}"


def pil_to_uint8(images: Sequence[Image.Image]) -> torch.Tensor:
    """Equal-sized PIL images -> (B, 3, H, W) uint8 RGB, in channels-last memory (the
    pixels' own HWC order: no copy into NCHW)."""
    array = np.stack([np.asarray(image.convert("RGB"), dtype=np.uint8) for image in images])
    return torch.from_numpy(array).permute(0, 3, 1, 2)
