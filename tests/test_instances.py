"""Splitting a fruit probability map into fruits (fruitseg.instances): the behaviour the app
relies on, whatever does the splitting."""

import numpy as np
import pytest
from PIL import Image

from fruitseg.instances import box_of, cut_out, split_fruits


def disc(shape, cx, cy, r):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def ellipse(shape, cx, cy, rx, ry):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1


def by_x(regions):
    return sorted(regions, key=lambda r: r.box[0])


def assert_consistent(regions, prob, threshold=0.5):
    """Masks are disjoint, inside the thresholded map, and each box and area is its mask's."""
    seen = np.zeros(prob.shape, bool)
    for region in regions:
        assert region.mask.shape == prob.shape and region.mask.dtype == bool
        assert not (seen & region.mask).any()
        seen |= region.mask
        assert region.box == box_of(region.mask) and region.area == int(region.mask.sum())
        assert region.confidence == pytest.approx(float(prob[region.mask].mean()), abs=1e-6)


def test_one_round_blob_is_one_fruit_with_its_exact_mask():
    prob = disc((120, 160), 70, 60, 35).astype(np.float32)
    (region,) = split_fruits(prob)
    assert np.array_equal(region.mask, prob >= 0.5)
    assert region.box == (35, 25, 106, 96) and region.confidence == 1.0
    assert_consistent([region], prob)


def test_fruit_that_fills_the_whole_frame_is_found():
    """No background pixel at all (a close-up of one fruit, a crate seen from above) is still a fruit."""
    prob = np.full((90, 120), 0.9, np.float32)
    (region,) = split_fruits(prob)
    assert region.area >= 0.99 * prob.size and region.box == (0, 0, 120, 90)  # the opening rounds the corners
    prob[:2, :2] = 0.0  # a speck of background smaller than a fruit: the same
    (region,) = split_fruits(prob)
    assert region.area >= 0.99 * prob.size and region.box == (0, 0, 120, 90)


def test_two_touching_discs_are_cut_at_their_neck():
    prob = (disc((120, 200), 60, 60, 40) | disc((120, 200), 135, 60, 40)).astype(np.float32)
    left, right = by_x(split_fruits(prob))
    assert left.box[0] == 20 and right.box[2] == 176
    assert abs(left.box[2] - right.box[0]) <= 1 and 95 <= left.box[2] <= 100
    assert left.area + right.area == int(prob.sum())
    assert_consistent([left, right], prob)


def test_a_small_fruit_touching_a_large_one_is_not_swallowed():
    shape = (140, 220)
    big, small = disc(shape, 70, 70, 50), disc(shape, 140, 70, 25)  # half the radius: a fruit, not a bump
    prob = (big | small).astype(np.float32)
    regions = split_fruits(prob)
    assert len(regions) == 2
    _, little = sorted(regions, key=lambda r: -r.area)
    assert (little.mask & small).sum() / small.sum() > 0.85  # most of the small disc ...
    assert (little.mask & big).sum() / big.sum() < 0.02  # ... and almost nothing of the large one
    assert_consistent(regions, prob)


def test_a_row_of_three_touching_fruits_is_three():
    shape = (100, 260)
    prob = (disc(shape, 50, 50, 32) | disc(shape, 110, 50, 32) | disc(shape, 170, 50, 32) | disc(shape, 228, 50, 28))
    regions = split_fruits(prob.astype(np.float32))
    assert len(regions) == 4
    assert [r.box[0] for r in by_x(regions)][:1] == [18]


def test_an_elongated_fruit_without_a_neck_stays_one():
    # A banana-like ellipse: its distance ridge is long and flat, with no narrow neck.
    prob = ellipse((120, 300), 150, 60, 120, 30).astype(np.float32)
    assert len(split_fruits(prob)) == 1
    # A bent one: a curved band of even thickness, whose ends' peaks see each other only
    # across the outside of the curve.
    shape = (200, 300)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    angle = np.degrees(np.arctan2(yy, xx - 150))
    band = (np.abs(np.hypot(xx - 150, yy) - 130) <= 25) & (angle >= 30) & (angle <= 150)
    assert len(split_fruits(band.astype(np.float32))) == 1


def test_heavily_overlapping_discs_without_a_neck_stay_one():
    prob = (disc((120, 200), 85, 60, 40) | disc((120, 200), 115, 60, 40)).astype(np.float32)
    assert len(split_fruits(prob)) == 1


def test_a_narrow_neck_splits_and_a_wide_one_does_not():
    shape = (120, 240)
    necked = disc(shape, 60, 60, 40) | disc(shape, 180, 60, 40)
    necked[55:66, 60:180] = True  # a thin bridge (11 px) between two separate fruits
    assert len(split_fruits(necked.astype(np.float32))) == 2
    wide = disc(shape, 60, 60, 40) | disc(shape, 180, 60, 40)
    wide[30:91, 60:180] = True  # a bar as thick as the fruits: one long object
    assert len(split_fruits(wide.astype(np.float32))) == 1


def test_specks_and_small_blobs_are_dropped_and_holes_filled():
    shape = (200, 300)
    prob = disc(shape, 100, 100, 50).astype(np.float32)
    prob[disc(shape, 100, 100, 10)] = 0.0  # a hole (a highlight the segmenter missed)
    prob[5, 290] = 1.0  # a speck
    prob[180:184, 250:254] = 1.0  # 16 px: below 0.2 % of the image (120 px)
    (region,) = split_fruits(prob)
    assert region.mask[100, 100] and region.area == int(disc(shape, 100, 100, 50).sum())
    assert region.confidence < 1.0  # the hole's zeros count in the mean


def test_a_blob_is_not_split_into_pieces_too_small_to_be_fruit():
    # Two necked halves of 314 px each in a 512x512 map (a speck is < 524 px, 0.2 %): one fruit
    # of 628 px, not two specks dropped.
    shape = (512, 512)
    prob = (disc(shape, 100, 100, 10) | disc(shape, 118, 100, 10)).astype(np.float32)
    (region,) = split_fruits(prob)
    assert region.area == int(prob.sum())
    # Halves of a fruit's size are still split.
    big = (disc(shape, 100, 100, 30) | disc(shape, 155, 100, 30)).astype(np.float32)
    assert len(split_fruits(big)) == 2


def test_split_touching_off_and_threshold():
    prob = (disc((120, 200), 60, 60, 40) | disc((120, 200), 135, 60, 40)).astype(np.float32)
    assert len(split_fruits(prob, split_touching=False)) == 1
    prob *= 0.6
    assert len(split_fruits(prob, threshold=0.5)) == 2 and split_fruits(prob, threshold=0.7) == []
    assert split_fruits(np.zeros((50, 60), np.float32)) == []


def test_the_surest_region_comes_first_not_the_largest():
    prob = np.zeros((120, 240), np.float32)
    prob[disc(prob.shape, 60, 60, 50)] = 0.6    # a large, doubtful blob (a busy background)
    prob[disc(prob.shape, 190, 60, 25)] = 0.98  # a small, certain fruit
    first, second = split_fruits(prob)
    assert first.box == (165, 35, 216, 86) and first.area < second.area
    assert first.confidence > second.confidence


def test_at_most_sixteen_fruits_surest_first():
    prob = np.zeros((300, 300), np.float32)
    for i in range(5):
        for j in range(5):
            prob[disc(prob.shape, 30 + 60 * j, 30 + 60 * i, 22)] = 0.5 + 0.02 * (5 * i + j)
    regions = split_fruits(prob)
    assert len(regions) == 16
    confidences = [r.confidence for r in regions]
    assert confidences == sorted(confidences, reverse=True) and confidences[0] == pytest.approx(0.98)


@pytest.mark.parametrize("size", [(1024, 768), (768, 1024), (2000, 1500)])
def test_a_large_map_keeps_full_resolution_masks(size):
    """Large maps may be split at a working resolution; the masks stay exact at the map's own."""
    width, height = size
    s = width / 1024
    shape = (height, width)
    prob = np.zeros(shape, np.float32)
    a, b = disc(shape, 400 * s, 380 * s, 160 * s), disc(shape, 700 * s, 380 * s, 150 * s)
    prob[a | b] = 0.9
    prob[disc(shape, 150 * s, 150 * s, 60 * s)] = 0.95  # a separate fruit
    prob[3, 3] = 1.0  # a speck
    regions = split_fruits(prob)
    assert len(regions) == 3
    assert_consistent(regions, prob)
    first = regions[0]
    assert np.array_equal(first.mask, disc(shape, 150 * s, 150 * s, 60 * s))  # exact outline, surest first
    left, right = by_x(regions[1:])
    assert np.array_equal(left.mask | right.mask, a | b)  # no pixel lost at the cut
    assert left.box[:2] == box_of(a)[:2] and right.box[2:] == box_of(b)[2:]
    neck = (400 + 160 + 700 - 150) / 2 * s
    assert abs(left.box[2] - neck) <= 6 * s and abs(right.box[0] - neck) <= 6 * s


def test_cut_out_puts_the_fruit_on_a_white_square():
    image = Image.new("RGB", (200, 100), (30, 120, 40))
    mask = disc((100, 200), 150, 50, 30)
    crop = np.asarray(cut_out(image, mask))
    assert crop.shape[0] == crop.shape[1] == round(61 * 1.12) + 1
    assert tuple(crop[0, 0]) == (255, 255, 255) and tuple(crop[crop.shape[0] // 2, crop.shape[1] // 2]) == (30, 120, 40)
