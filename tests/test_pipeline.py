"""Segment-then-classify: splitting masks into fruits, cut-outs on white, photos on white."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fruitseg import load_classifier, load_segmenter
from fruitseg.instances import cut_out, split_fruits
from fruitseg.pipeline import FruitPipeline
from fruitseg.white_paper import on_white_background

FRUITS = Path(__file__).parent / "fixtures" / "fruits"


def disc(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_two_touching_discs_are_two_fruits_and_specks_are_dropped():
    prob = (disc((120, 200), 60, 60, 40) | disc((120, 200), 135, 60, 40)).astype(np.float32)
    prob[5, 195] = 1.0  # a one-pixel speck
    regions = split_fruits(prob)
    assert len(regions) == 2
    left, right = sorted(regions, key=lambda r: r.box[0])
    assert left.box[0] == 20 and right.box[2] == 176  # each disc's outer edge
    assert abs(left.box[2] - right.box[0]) <= 1 and 95 <= left.box[2] <= 100  # cut at the neck
    assert sum(r.area for r in regions) == int((prob >= 0.5).sum()) - 1


def test_cut_out_puts_the_fruit_on_a_white_square():
    image = Image.new("RGB", (200, 100), (30, 120, 40))
    mask = disc((100, 200), 150, 50, 30)
    crop = np.asarray(cut_out(image, mask))
    assert crop.shape[0] == crop.shape[1] > 60
    assert tuple(crop[0, 0]) == (255, 255, 255) and tuple(crop[crop.shape[0] // 2, crop.shape[1] // 2]) == (30, 120, 40)


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


def test_the_surest_region_comes_first_not_the_largest():
    prob = np.zeros((120, 240), np.float32)
    prob[disc(prob.shape, 60, 60, 50)] = 0.6    # a large, doubtful blob (a busy background)
    prob[disc(prob.shape, 190, 60, 25)] = 0.98  # a small, certain fruit
    first, second = split_fruits(prob)
    assert first.box == (165, 35, 216, 86) and first.area < second.area
    assert first.confidence > second.confidence
