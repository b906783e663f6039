"""The models the app serves, loaded once at start-up, and how the page describes them."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fruitseg.pipeline import FruitPipeline
from fruitseg.predictors import Classifier, Segmenter

log = logging.getLogger("fruitseg")


@dataclass
class Models:
    """Everything the tabs need to run a model; built once and shared by every session."""

    classifier: Classifier
    segmenter: Segmenter

    def __post_init__(self) -> None:
        self.pipeline = FruitPipeline(self.classifier, self.segmenter)

    @property
    def device(self) -> str:
        return str(self.classifier.device)

    def describe_device(self) -> str:
        devices = {str(self.classifier.device), str(self.segmenter.device)}
        return " / ".join(sorted(devices))

    @staticmethod
    def describe_source(model: Classifier | Segmenter) -> str:
        return model.source.describe() if model.source is not None else "weights given in code"

    def header_markdown(self) -> str:
        return (
            f"Running on **{self.describe_device()}** (classifier in {self.classifier.precision}) · "
            f"classifier weights: `{self.describe_source(self.classifier)}` · "
            f"segmenter weights: `{self.describe_source(self.segmenter)}`"
        )


def load_models(device: str | None = None) -> Models:
    """Load both models (GPU when there is one, see ``fruitseg.hub.select_device``)."""
    classifier = Classifier.load(device)
    segmenter = Segmenter.load(device)
    models = Models(classifier, segmenter)
    log.info("fruitseg models loaded on %s", models.describe_device())
    return models
