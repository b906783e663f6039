"""Overlays (fruitseg.ui.render) and the one outline function (fruitseg.masks.outline): how fills and outlines are drawn."""

import numpy as np
import pytest
from PIL import Image

from fruitseg.masks import outline
from fruitseg.ui.render import colour, draw_overlay, label_map_from_masks


def test_outline_is_the_inner_ring_of_each_region():
    labels = np.zeros((12, 20), np.uint8)
    labels[2:10, 2:8] = 1
    labels[2:10, 8:14] = 2  # touching the first
    edge = outline(labels, 1)
    ring = np.zeros_like(edge)
    ring[2:10, 2:14] = True
    ring[3:9, 3:7] = False
    ring[3:9, 9:13] = False
    assert np.array_equal(edge, ring)  # where two fruits meet, each gets its own edge
    thick = outline(labels, 2)
    assert thick[3, 3] and not thick[4, 4] and thick[5, 6] and thick[5, 9]


def test_outline_of_a_mask_includes_the_image_border_and_nothing_outside():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True  # touches the top, bottom and left borders
    edge = outline(mask, 1)
    assert edge[0].sum() == 5 and edge[:, 0].all() and edge[:, 4].all()
    assert not edge[4:6, 1:4].any() and not edge[:, 5:].any()
    assert not outline(np.zeros((4, 4), bool)).any()


@pytest.mark.parametrize("opacity", [0.0, 0.3, 1.0])
def test_overlay_blends_fills_and_draws_outlines_in_full_colour(opacity):
    photo = np.full((60, 90, 3), (40, 120, 200), np.uint8)
    masks = [np.zeros((60, 90), bool), np.zeros((60, 90), bool)]
    masks[0][10:50, 5:40] = True
    masks[1][10:50, 45:85] = True
    label_map = label_map_from_masks(masks, (60, 90))
    out = np.asarray(draw_overlay(Image.fromarray(photo), label_map, ["", ""], opacity)).astype(int)
    for k, (y, x) in enumerate([(30, 20), (30, 65)]):
        expected = np.round((1 - opacity) * photo[y, x] + opacity * np.array(colour(k)))
        assert np.abs(out[y, x] - expected).max() <= 1
        assert tuple(out[10, x]) == colour(k)  # the outline
    assert tuple(out[5, 42]) == (40, 120, 200)  # background untouched
    assert np.array_equal(draw_overlay(Image.fromarray(photo), np.zeros((60, 90), np.uint8), [], 0.5), photo)
