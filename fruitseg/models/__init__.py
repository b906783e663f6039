"""The fruitseg models."""

from fruitseg.models.classifier import FruitsClassificationModel

__all__ = ["FruitsClassificationModel"]
