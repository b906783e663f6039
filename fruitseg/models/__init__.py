"""The fruitseg models: a Fruits-360 classifier and a fruit/background segmenter."""

from fruitseg.models.classifier import FruitsClassificationModel
from fruitseg.models.segmenter import PRESETS, FCNTransformerNet

__all__ = ["FruitsClassificationModel", "FCNTransformerNet", "PRESETS"]
