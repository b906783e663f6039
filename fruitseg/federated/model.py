"""The federated experiments' model: the seed classifier's architecture, scaled down.

:class:`~fruitseg.models.classifier.FruitsClassificationModel` is three blocks of
Conv2d(5x5, pad 2) -> BatchNorm -> ReLU -> MaxPool(2) with 32/64/128 channels on 100x100
input, then one Linear layer (2.67 M parameters for 131 classes). :class:`SmallFruitsCNN` keeps
the three 5x5 blocks and the single Linear head at half the width (16/32/64 channels) on
32x32 input (64 x 4 x 4 = 1024 features): 106 k parameters for 40 classes. It has no
BatchNorm: running statistics averaged across clients whose label distributions differ
describe none of them (FedAvg's, FedNTD's and FedLMD's CNNs have none either).
"""

from __future__ import annotations

import torch
from torch import nn


class SmallFruitsCNN(nn.Module):
    def __init__(self, num_classes: int, image_size: int = 32, channels: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        blocks, previous = [], 3
        for width in channels:
            blocks += [nn.Conv2d(previous, width, kernel_size=5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = width
        self.features = nn.Sequential(*blocks)
        self.fc = nn.Linear(previous * (image_size // 8) ** 2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.features(x), 1))
