"""Fruit masks at run time: recover a fruit on painted white, and outline masks.

Fruits-360 removed each photo's background with a flood fill from the image border over
pixels close in colour to the white paper behind the fruit, and painted them pure white.
JPEG compression then put noise (and a little chroma bleed from the fruit) on that white.
:func:`fruit_mask` undoes this the same way: it marks the near-white pixels, keeps only
those connected to the image border (so bright fruit - white grapes, lemons, onions,
cauliflower - is not eaten from the inside), fills holes, and cleans the result up.
The app uses it for photos of a fruit on white (:mod:`fruitseg.white_paper`), training
for the Fruits-360 frames (:mod:`fruitseg.data`).

:func:`outline` is the one outline of masks and label maps: the app's overlays, the
training montages and the evaluation's boundary F1 use it.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# A background pixel is "near white" when its luma is at least LUMA_MIN and its darkest
# channel at least CHANNEL_MIN. Fruits-360 is JPEG quality ~95 with 4:2:0 chroma: luma is
# stored at full resolution, while the chroma is subsampled and bleeds the fruit's colour
# a pixel or two into the white, so the per-channel bound is much looser than the luma
# bound (it only keeps clearly coloured pale pixels, e.g. a lemon's rim, as fruit).
LUMA_MIN = 238
CHANNEL_MIN = 160

_CROSS = ndimage.generate_binary_structure(2, 1)


def near_white(image: np.ndarray, luma_min: int = LUMA_MIN, channel_min: int = CHANNEL_MIN) -> np.ndarray:
    """Boolean (H, W): pixels close enough to the painted white to be background."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return (luma >= luma_min) & (image.min(axis=2) >= channel_min)


def border_connected(region: np.ndarray) -> np.ndarray:
    """The parts of a boolean ``region`` 4-connected to any pixel on the image border."""
    labels, count = ndimage.label(region, structure=_CROSS)
    if count == 0:
        return np.zeros_like(region, dtype=bool)
    edge = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    keep = np.zeros(count + 1, dtype=bool)
    keep[np.unique(edge)] = True
    keep[0] = False
    return keep[labels]


def _keep_main_components(mask: np.ndarray, min_fraction: float, min_pixels: int) -> np.ndarray:
    """Drop 8-connected pieces smaller than ``min_fraction`` of the largest (and specks)."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    areas = stats[1:, cv2.CC_STAT_AREA]
    limit = max(min_pixels, min_fraction * areas.max())
    keep = np.concatenate([[False], areas >= limit])
    return keep[labels]


def _drop_light_rim(image: np.ndarray, mask: np.ndarray, min_contrast: float = 40.0) -> np.ndarray:
    """Drop outline pixels that are mostly paper: coverage < 0.5 by luma.

    A pixel on the fruit's outline mixes fruit and white paper. Its fruit coverage is
    estimated as ``(255 - Y) / (255 - Y_fruit)``, with ``Y_fruit`` the luma of the fruit
    just inside (normalised convolution over the mask eroded by 2 px). Only where the
    fruit is clearly darker than the paper (by ``min_contrast``); pale fruit keeps its rim.
    """
    mask_u8 = mask.astype(np.uint8)
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(mask_u8, kernel, iterations=2).astype(np.float32)
    if inner.sum() < 4:
        return mask
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    weight = cv2.GaussianBlur(inner, (0, 0), 1.5)
    fruit_luma = cv2.GaussianBlur(luma * inner, (0, 0), 1.5) / np.maximum(weight, 1e-6)
    contrast = 255.0 - fruit_luma
    rim = (mask_u8 > 0) & (cv2.erode(mask_u8, kernel) == 0) & (weight > 1e-3) & (contrast > min_contrast)
    coverage = (255.0 - luma) / np.maximum(contrast, 1e-6)
    return mask & ~(rim & (coverage < 0.5))


def fruit_mask(
    image: np.ndarray,
    luma_min: int = LUMA_MIN,
    channel_min: int = CHANNEL_MIN,
    min_fraction: float = 0.05,
    min_pixels: int = 12,
    refine_rim: bool = True,
) -> np.ndarray:
    """Boolean (H, W) mask of the fruit in a Fruits-360 image (fruit on painted white).

    1. near-white pixels (:func:`near_white`) 4-connected to the border are background,
       as the dataset's own flood fill made them; everything else is fruit, so bright
       highlights inside the fruit stay fruit;
    2. holes are filled and the edge is smoothed by one pixel (3x3 median), which
       removes JPEG specks on the white and one-pixel notches in the outline;
    3. with ``refine_rim``, outline pixels that are less than half fruit (by luma
       against the fruit just inside) are dropped, so the outline sits on the 50%
       coverage line rather than ~0.5 px outside it;
    4. pieces much smaller than the main one are dropped and holes filled.
    """
    background = border_connected(near_white(image, luma_min, channel_min))
    mask = ndimage.binary_fill_holes(~background)
    mask = cv2.medianBlur(mask.astype(np.uint8) * 255, 3) > 0
    if refine_rim:
        mask = _drop_light_rim(image, mask)
    mask = _keep_main_components(mask, min_fraction, min_pixels)
    return ndimage.binary_fill_holes(mask)


def outline(label_map: np.ndarray, width: int = 1) -> np.ndarray:
    """(H, W) bool: the pixels of each region (``label_map > 0``; a boolean mask is one region)
    within ``width`` pixels (4-connected steps) of a pixel outside it: another region, the
    background or the image border.

    For a boolean mask and ``width=1`` this is ``mask & ~scipy.ndimage.binary_erosion(mask)``
    (the inner ring, with the image border counted as outside), the boundary that
    :func:`fruitseg.evaluate.boundary_f1` scores.
    """
    labels = np.asarray(label_map).astype(np.uint8 if label_map.max() < 256 else np.int32)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    steps = max(1, int(width))
    highest = cv2.dilate(labels, cross, iterations=steps, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    lowest = cv2.erode(labels, cross, iterations=steps, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return (labels > 0) & ((highest != labels) | (lowest != labels))
