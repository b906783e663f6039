"""The app's state: the models it serves, loaded once at start-up, and how the page describes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fruitseg.pipeline import FruitPipeline
from fruitseg.predictors import Classifier, PhotoClassifier, Segmenter

log = logging.getLogger("fruitseg")


@dataclass
class Models:
    """Everything the tabs need to run a model; built once and shared by every session."""

    classifier: Classifier  # the seed CNN (Fruits-360 frames, cut-outs on white)
    segmenter: Segmenter
    photo_classifier: PhotoClassifier | None = None  # the default for photos, when there is one

    def __post_init__(self) -> None:
        self.pipeline = FruitPipeline(self.classifier, self.segmenter)
        self.photo_pipeline = FruitPipeline(self.photo_classifier, self.segmenter) if self.photo_classifier else None

    @property
    def device(self) -> str:
        return str(self.classifier.device)

    def describe_device(self) -> str:
        devices = {str(m.device) for m in (self.classifier, self.segmenter, self.photo_classifier) if m is not None}
        return " / ".join(sorted(devices))

    @staticmethod
    def describe_source(model: Classifier | PhotoClassifier | Segmenter) -> str:
        return model.source.describe() if model.source is not None else "weights given in code"

    def header_markdown(self) -> str:
        photo = (
            f"photo classifier weights: `{self.describe_source(self.photo_classifier)}` · " if self.photo_classifier else ""
        )
        return (
            f"Running on **{self.describe_device()}** (Fruits-360 CNN in {self.classifier.precision}) · "
            f"{photo}Fruits-360 CNN weights: `{self.describe_source(self.classifier)}` · "
            f"segmenter weights: `{self.describe_source(self.segmenter)}`"
        )


def load_models(device: str | None = None) -> Models:
    """Load the three models (GPU when there is one, see ``fruitseg.device.select_device``)."""
    classifier = Classifier.load(device)
    segmenter = Segmenter.load(device)
    models = Models(classifier, segmenter, PhotoClassifier.load(device))
    log.info("fruitseg models loaded on %s", models.describe_device())
    return models
