"""fruitseg: classify and segment fruit (Fruits-360), and explore label-masking distillation."""

from fruitseg.predictors import (
    Classifier,
    PhotoClassifier,
    Prediction,
    Segmenter,
    load_classifier,
    load_photo_classifier,
    load_segmenter,
)

__all__ = [
    "Classifier",
    "PhotoClassifier",
    "Prediction",
    "Segmenter",
    "load_classifier",
    "load_photo_classifier",
    "load_segmenter",
]
__version__ = "0.1.0"
