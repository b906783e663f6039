"""Segment-then-classify: find every fruit in a photo, cut it out onto white, name it.

The classifier was trained on Fruits-360 (one fruit on white), so a fruit in an ordinary
photo is first isolated by the segmenter, cut out onto a white square like the training
images, and only then classified. Both app tabs use :class:`FruitPipeline`.

A studio photo on plain white (a Fruits-360 image, a product shot) is separated the way
the dataset removed its own backgrounds, by a flood fill from the border over near-white
pixels: exact where it applies, and a case the segmenter, trained on fruit that fills at
most 60 % of a scene, handles badly when the fruit fills the frame. Where the fruit casts
a shadow on the paper the segmenter's mask is used instead (`fruitseg.white_paper`).

The photo classifier (:class:`~fruitseg.predictors.PhotoClassifier`) learned fruit in
context, so it is handed a square crop of the photo around each fruit instead
(:func:`~fruitseg.instances.context_crop`), and it also names the whole photo
(``Analysis.whole_image``): a crate or a close-up, where no single fruit stands out, is
still named. Each classifier says what it wants to see in its ``sees`` attribute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fruitseg.instances import FruitRegion, context_crop, cut_out, split_fruits
from fruitseg.predictors import Classifier, PhotoClassifier, Prediction, Segmenter
from fruitseg.white_paper import flood_fill_mask, on_white_background


@dataclass
class Fruit:
    """One fruit found in a photo: where it is and what the classifier says it is."""

    prediction: Prediction
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    mask: np.ndarray  # (H, W) bool
    area_fraction: float
    cutout: Image.Image  # what the classifier saw (before its own resize)

    @property
    def kind(self) -> str:
        return self.prediction.kind

    @property
    def label(self) -> str:
        """The likeliest class (variety)."""
        return self.prediction.label

    @property
    def score(self) -> float:
        return self.prediction.score

    @property
    def top5(self) -> list[tuple[str, float]]:
        return self.prediction.classes


@dataclass
class Analysis:
    probability: np.ndarray  # (H, W) float32 fruit probability
    fruits: list[Fruit] = field(default_factory=list)
    whole_image: Prediction | None = None  # the photo classifier's answer for the whole photo

    @property
    def fruit_fraction(self) -> float:
        return float(np.mean(self.probability >= 0.5))

    @property
    def answer(self) -> Prediction | None:
        """The headline: with a whole-photo answer (the photo classifier), the surest kind among
        the fruits found and the whole photo; else the segmenter's surest fruit (None if none)."""
        if self.whole_image is None:
            return self.fruits[0].prediction if self.fruits else None
        return max([f.prediction for f in self.fruits] + [self.whole_image], key=lambda p: p.kind_score)


def studio_photo(image: Image.Image) -> bool:
    """Whether ``image`` is fruit on plain white paper, Fruits-360's own setting (a white border),
    where the Fruits-360 CNN is at home (99 % on its held-out frames) and the photo classifier,
    which learned ordinary photos, is not the one to ask."""
    return on_white_background(np.asarray(image.convert("RGB")))


class FruitPipeline:
    def __init__(self, classifier: Classifier | PhotoClassifier, segmenter: Segmenter, flood_fill_on_white: bool = True):
        self.classifier = classifier
        self.segmenter = segmenter
        self.flood_fill_on_white = flood_fill_on_white

    def segment(self, image: Image.Image) -> np.ndarray:
        """(H, W) float32 fruit probability: the segmenter's, or the flood fill (0 or 1)
        for a photo on white where no shadow rules it out."""
        probability = self.segmenter.predict([image])[0]
        if self.flood_fill_on_white:
            flood = flood_fill_mask(np.asarray(image.convert("RGB")), probability >= 0.5)
            if flood is not None:
                return flood.astype(np.float32)
        return probability

    def analyze(
        self,
        image: Image.Image,
        threshold: float = 0.5,
        top_k: int = 5,
        probability: np.ndarray | None = None,
        regions: list[FruitRegion] | None = None,
    ) -> Analysis:
        """Segment ``image``, split the mask into fruits, classify each cut-out (surest first).

        ``probability``: an (H, W) fruit probability map for ``image`` computed earlier (for
        example by :meth:`segment`). When given, the segmenter does not run and this map is
        split at ``threshold`` instead, so a new threshold costs only the splitting and the
        classifier. It is used as given and returned as ``Analysis.probability``.
        ``regions``: that map already split at ``threshold`` (``split_fruits``), so that a
        second classifier on the same photo does not split it again.
        """
        if probability is None:
            probability = self.segment(image)
        if regions is None:
            regions = split_fruits(probability, threshold=threshold)
        in_context = self.classifier.sees == PhotoClassifier.sees
        crops = [context_crop(image, region.box) if in_context else cut_out(image, region.mask) for region in regions]
        predictions = self.classifier.predict(crops + [image] if in_context else crops, top_k=top_k)
        fruits = [
            Fruit(prediction, region.box, region.mask, region.area / probability.size, crop)
            for region, crop, prediction in zip(regions, crops, predictions)
        ]
        return Analysis(probability, fruits, predictions[-1] if in_context else None)
