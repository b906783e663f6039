"""Segment-then-classify: photos on white, and Fruits-360 photos through the whole pipeline
(splitting maps into fruits and cut-outs: test_instances.py)."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fruitseg import load_classifier, load_segmenter
from fruitseg.pipeline import FruitPipeline
from fruitseg.white_paper import on_white_background

FRUITS = Path(__file__).parent / "fixtures" / "fruits"


def test_white_background_detection():
    fruit = np.asarray(Image.open(FRUITS / "Lemon_116.jpg").convert("RGB"))
    assert on_white_background(fruit)
    scene = np.full((100, 100, 3), (90, 140, 60), np.uint8)
    assert not on_white_background(scene)


@pytest.fixture(scope="module")
def pipeline():
    return FruitPipeline(load_classifier(), load_segmenter())


@pytest.mark.trained_weights
@pytest.mark.parametrize("path", sorted(FRUITS.glob("*.jpg")), ids=lambda p: p.stem)
def test_a_fruits360_photo_is_one_fruit_named_right(pipeline, path):
    image = Image.open(path).convert("RGB")
    analysis = pipeline.analyze(image)
    assert len(analysis.fruits) >= 1
    assert analysis.fruits[0].area_fraction > 0.15
    assert analysis.fruits[0].label == path.stem.rsplit("_", 1)[0].replace("_", " ")
