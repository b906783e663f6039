"""Segment-then-classify: find every fruit in a photo, cut it out onto white, name it.

The classifier was trained on Fruits-360 (one fruit on white), so a fruit in an ordinary
photo is first isolated by the segmenter, cut out onto a white square like the training
images, and only then classified. Both app tabs use :class:`FruitPipeline`.

A studio photo on plain white (a Fruits-360 image, a product shot) is separated the way
the dataset removed its own backgrounds, by a flood fill from the border over near-white
pixels: exact where it applies, and a case the segmenter, trained on fruit that fills at
most 60 % of a scene, handles badly when the fruit fills the frame. Where the fruit casts
a shadow on the paper the segmenter's mask is used instead (`fruitseg.white_paper`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from fruitseg.instances import cut_out, split_fruits
from fruitseg.predictors import Classifier, Segmenter
from fruitseg.white_paper import flood_fill_mask


@dataclass
class Fruit:
    label: str
    score: float
    top5: list[tuple[str, float]]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in image pixels
    mask: np.ndarray  # (H, W) bool
    area_fraction: float
    cutout: Image.Image  # what the classifier saw (before its own resize)


@dataclass
class Analysis:
    probability: np.ndarray  # (H, W) float32 fruit probability
    fruits: list[Fruit] = field(default_factory=list)

    @property
    def fruit_fraction(self) -> float:
        return float(np.mean(self.probability >= 0.5))


class FruitPipeline:
    def __init__(self, classifier: Classifier, segmenter: Segmenter, flood_fill_on_white: bool = True):
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
    ) -> Analysis:
        """Segment ``image``, split the mask into fruits, classify each cut-out (surest first).

        ``probability``: an (H, W) fruit probability map for ``image`` computed earlier (for
        example by :meth:`segment`). When given, the segmenter does not run and this map is
        split at ``threshold`` instead, so a new threshold costs only the splitting and the
        classifier. It is used as given and returned as ``Analysis.probability``.
        """
        if probability is None:
            probability = self.segment(image)
        regions = split_fruits(probability, threshold=threshold)
        cutouts = [cut_out(image, region.mask) for region in regions]
        predictions = self.classifier.predict(cutouts, top_k=top_k)
        fruits = [
            Fruit(top[0][0], top[0][1], top, region.box, region.mask, region.area / probability.size, crop)
            for region, crop, top in zip(regions, cutouts, predictions)
        ]
        return Analysis(probability, fruits)
