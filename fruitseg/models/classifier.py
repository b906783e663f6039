"""FruitsClassificationModel: a small CNN for 100x100 Fruits-360 images.

Three blocks of Conv2d(5x5, padding 2) -> BatchNorm2d -> ReLU -> MaxPool2d(2) with 32, 64
and 128 channels take a (B, 3, 100, 100) image to (B, 128, 12, 12); a Linear layer maps the
18432 flattened features to the class logits. Submodule names (``layer1`` .. ``layer3``,
``fc``) are part of the checkpoint format and must not change.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.models.folding import fold_batchnorm_into_convs
from fruitseg.models.hub_mixin import FruitsegHubMixin

INPUT_SIZE = 100
# Per-channel statistics of the Fruits-360 training images (RGB in [0, 1]).
FRUITS360_MEAN = (0.684, 0.579, 0.504)
FRUITS360_STD = (0.303, 0.360, 0.397)


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv2d(5x5, pad 2) -> BatchNorm2d -> ReLU -> MaxPool2d(2): halves the spatial size."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class FruitsClassificationModel(nn.Module, FruitsegHubMixin, pipeline_tag="image-classification"):
    """Fruits-360 classifier. Input (B, 3, 100, 100) normalised RGB, output (B, num_classes) logits.

    The keyword arguments are the model's config (saved as ``config.json``):
    ``class_names`` names the outputs, ``image_size``/``mean``/``std`` describe the
    preprocessing the weights were trained with. ``drop_rate`` is dropout on the flattened
    features while training (it has no weights and does nothing in eval mode).
    ``int8_calibration`` holds the activation ranges measured for int8 inference
    (:mod:`fruitseg.models.quantized`); it too has no weights and does nothing here.
    """

    def __init__(
        self,
        num_classes: int = len(FRUITS360_CLASSES),
        class_names: Sequence[str] | None = None,
        image_size: int = INPUT_SIZE,
        mean: Sequence[float] = FRUITS360_MEAN,
        std: Sequence[float] = FRUITS360_STD,
        drop_rate: float = 0.0,
        int8_calibration: dict | None = None,
    ) -> None:
        super().__init__()
        if image_size != INPUT_SIZE:
            raise ValueError(f"FruitsClassificationModel is built for {INPUT_SIZE}x{INPUT_SIZE} input, got {image_size}")
        if class_names is None:
            class_names = FRUITS360_CLASSES if num_classes == len(FRUITS360_CLASSES) else [f"class {i}" for i in range(num_classes)]
        self.set_metadata(num_classes, class_names, image_size, mean, std)
        self.int8_calibration = int8_calibration

        self.layer1 = conv_block(3, 32)
        self.layer2 = conv_block(32, 64)
        self.layer3 = conv_block(64, 128)
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(128 * 12 * 12, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 100, 100) -> (B, 18432) flattened features."""
        if x.ndim != 4 or tuple(x.shape[1:]) != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(
                f"FruitsClassificationModel expects input of shape (B, 3, {INPUT_SIZE}, {INPUT_SIZE}), "
                f"got {tuple(x.shape)}"
            )
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(x, 1)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.drop(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def fold_batchnorm(model: FruitsClassificationModel) -> FruitsClassificationModel:
    """A copy of ``model`` (in eval mode) whose Conv2d+BatchNorm2d pairs are one Conv2d (each
    block's BatchNorm becomes ``Identity``): :func:`fruitseg.models.folding.fold_batchnorm_into_convs`
    on one input of the model's size, which also checks the copy's logits against the model's."""
    weight = model.fc.weight
    example = torch.randn(2, 3, INPUT_SIZE, INPUT_SIZE, generator=torch.Generator().manual_seed(0))
    folded = fold_batchnorm_into_convs(model, example.to(weight.device, weight.dtype))
    folded_convolutions(folded)  # every block's BatchNorm was folded
    return folded


def folded_convolutions(model: FruitsClassificationModel) -> list[nn.Conv2d]:
    """The three convolutions of ``model`` after its BatchNorm layers were folded into them
    (:func:`fold_batchnorm`): what the fast inference paths are built from."""
    blocks = (model.layer1, model.layer2, model.layer3)
    if any(isinstance(layer, nn.BatchNorm2d) for block in blocks for layer in block):
        raise ValueError("fold the BatchNorm layers into the convolutions first")
    return [block[0] for block in blocks]
