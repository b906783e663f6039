"""fruitseg: classify and segment fruit (Fruits-360), and explore label-masking distillation."""

from fruitseg.predictors import Classifier, Segmenter, load_classifier, load_segmenter

__all__ = ["Classifier", "Segmenter", "load_classifier", "load_segmenter"]
__version__ = "0.1.0"
