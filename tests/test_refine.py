"""Guided-filter edge refinement (fruitseg.refine)."""

import cv2
import numpy as np

from fruitseg.refine import guided_filter, refine_probability


def disc_photo(size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """A red disc on a green textured background, and its exact mask."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size]
    mask = (yy - size / 2) ** 2 + (xx - size / 2.3) ** 2 < (size / 4) ** 2
    rgb = np.where(mask[..., None], [200, 40, 30], [60, 140, 70]) + rng.normal(0, 6, (size, size, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), mask


def test_a_constant_map_stays_constant():
    rgb, _ = disc_photo()
    out = guided_filter(rgb.astype(np.float32) / 255, np.full(rgb.shape[:2], 0.3, np.float32), radius=4)
    assert np.allclose(out, 0.3, atol=1e-3)


def test_refinement_moves_a_blurred_shifted_map_onto_the_photo_edge():
    rgb, mask = disc_photo()
    coarse = cv2.GaussianBlur(np.roll(mask, 3, axis=1).astype(np.float32), (0, 0), 4)  # soft and 3 px off

    def iou(p):
        return ((p >= 0.5) & mask).sum() / ((p >= 0.5) | mask).sum()

    refined = refine_probability(rgb, coarse)
    assert refined.shape == mask.shape and refined.dtype == np.float32
    assert refined.min() >= 0 and refined.max() <= 1
    assert iou(refined) > iou(coarse) + 0.02 and iou(refined) > 0.95


def test_large_and_tiny_maps():
    rgb, mask = disc_photo(1500)
    out = refine_probability(rgb, mask.astype(np.float32))
    assert out.shape == mask.shape and ((out >= 0.5) == mask).mean() > 0.99
    tiny = refine_probability(np.zeros((3, 5, 3), np.uint8), np.ones((3, 5), np.float32))
    assert tiny.shape == (3, 5)


def test_the_fast_filter_stays_close_to_the_exact_one():
    rgb, mask = disc_photo(256)
    coarse = cv2.GaussianBlur(np.roll(mask, 3, axis=1).astype(np.float32), (0, 0), 4)
    guide = rgb.astype(np.float32) / 255
    exact = guided_filter(guide, coarse, radius=8)
    fast = guided_filter(guide, coarse, radius=8, subsample=4)
    assert fast.shape == exact.shape and fast.dtype == np.float32
    assert np.abs(fast - exact).mean() < 0.02
    assert ((fast >= 0.5) == (exact >= 0.5)).mean() > 0.99
    flat = guided_filter(guide, np.full(mask.shape, 0.3, np.float32), radius=8, subsample=4)
    assert np.allclose(flat, 0.3, atol=1e-3)
