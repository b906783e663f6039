"""Photos on white: the flood fill is used for clean studio shots, not where a shadow lies."""

import cv2
import numpy as np
import pytest
from PIL import Image

from fruitseg.bench.inputs import fixture_fruit_items
from fruitseg.data.backgrounds import BackgroundBank
from fruitseg.data.fruit_bank import FruitBank
from fruitseg.masks import fruit_mask
from fruitseg.data.scenes import make_scene
from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.white_paper import flood_fill_mask, paper_colour, paper_in_shade


def disc(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def red_fruit_on_paper(shadow: bool, paper=(252, 250, 244)):
    """A red disc on slightly warm paper, with or without a soft shadow to its lower right."""
    image = np.empty((160, 160, 3), np.float32)
    image[:] = paper
    fruit = disc((160, 160), 70, 70, 40)
    if shadow:
        shade = cv2.GaussianBlur(disc((160, 160), 84, 84, 42).astype(np.float32), (0, 0), 5)
        image *= 1 - 0.4 * shade[..., None]
    image[fruit] = (190, 30, 40)
    return image.round().astype(np.uint8), fruit


def iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


def test_paper_in_shade_is_the_paper_darker_not_another_colour():
    paper = np.array([250, 248, 240], np.float32)
    pixels = np.array([[paper * 0.7, paper * 0.3, [250, 240, 150], [190, 30, 40], paper]]).round().astype(np.uint8)
    assert paper_in_shade(pixels, paper)[0].tolist() == [True, False, False, False, False]


def test_paper_colour_is_read_off_the_border():
    image, _ = red_fruit_on_paper(shadow=False)
    assert paper_colour(image).tolist() == [252, 250, 244]
    assert paper_colour(np.zeros((10, 10, 3), np.uint8)).tolist() == [255, 255, 255]


def test_without_a_shadow_the_flood_fill_is_kept_even_where_the_segmenter_missed_some_fruit():
    image, fruit = red_fruit_on_paper(shadow=False)
    missed_half = fruit & (np.arange(160)[None, :] < 70)
    mask = flood_fill_mask(image, missed_half)
    assert mask is not None and iou(mask, fruit) > 0.97


def test_a_shadow_rules_the_flood_fill_out():
    image, fruit = red_fruit_on_paper(shadow=True)
    assert iou(fruit_mask(image), fruit) < 0.9  # the flood fill takes the shadow for fruit
    assert flood_fill_mask(image, fruit) is None
    assert flood_fill_mask(image) is not None  # with nothing to compare, the flood fill is all there is


def test_not_on_white_means_no_flood_fill():
    image = np.full((50, 50, 3), (90, 140, 60), np.uint8)
    assert flood_fill_mask(image) is None
    assert flood_fill_mask(np.full((2, 2, 3), 255, np.uint8)) is None


@pytest.mark.trained_weights
@pytest.mark.parametrize("seed", [0, 2])  # a pale onion and a red apple, each with a cast shadow
def test_a_fruit_casting_a_shadow_on_white_is_cut_out_without_it(seed):
    from fruitseg import load_classifier, load_segmenter
    from fruitseg.pipeline import FruitPipeline

    fruits = FruitBank.from_items(fixture_fruit_items())
    scene = make_scene(np.random.default_rng(seed), fruits, BackgroundBank(), (320, 320), max_fruits=1, white_background=True)
    truth = scene.mask.astype(bool)
    assert scene.background == "white" and iou(fruit_mask(scene.image), truth) < 0.8
    analysis = FruitPipeline(load_classifier(), load_segmenter()).analyze(Image.fromarray(scene.image))
    assert iou(analysis.fruits[0].mask, truth) > 0.95
    assert analysis.fruits[0].label == FRUITS360_CLASSES[scene.labels[0]]
