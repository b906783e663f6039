"""Photos of a fruit on white: when the dataset's own flood fill may cut the fruit out.

Fruits-360 painted its backgrounds pure white, so a flood fill from the border over
near-white pixels (:func:`fruitseg.masks.fruit_mask`) recovers such a fruit exactly,
even one that fills the frame, which the segmenter (trained on fruit covering at most
60 % of a scene) handles badly. A photo of a fruit on white paper has a shadow, though:
the flood fill stops where the penumbra gets too dark and takes the rest of the shadow
for fruit, and the cut-out then shows a grey blob the classifier has never seen.

A shadow is the paper in shade: its pixels keep the paper's colour, only darker. So the
flood fill is used unless a good part of what it adds beyond the segmenter's mask looks
like that (:func:`flood_fill_mask`).
"""

from __future__ import annotations

import numpy as np

from fruitseg.masks import fruit_mask, near_white

WHITE_BORDER_FRACTION = 0.75  # share of near-white border pixels that makes a "photo on white"
SHADE_TOLERANCE = (6.0, 0.04)  # |pixel - shade * paper| per channel < 6 + 4 % of the pixel's mean
DARKEST_SHADE = 0.5  # a shadow is at least half as bright as the paper
EXTRA_TO_CHECK = 0.08  # flood-fill area beyond the segmenter's mask (share of the flood fill) worth a look
SHADOW_SHARE = 0.5  # share of that extra area that must be paper in shade to call it a shadow


def _border(array: np.ndarray) -> np.ndarray:
    return np.concatenate([array[0], array[-1], array[1:-1, 0], array[1:-1, -1]])


def _white_border(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The border pixels (N, 3) and which of them are near-white (N,), without looking inside."""
    border = _border(rgb)
    return border, near_white(border[None])[0]


def on_white_background(rgb: np.ndarray) -> bool:
    """True when nearly the whole image border is near-white, as in Fruits-360."""
    return bool(_white_border(rgb)[1].mean() >= WHITE_BORDER_FRACTION)


def paper_colour(rgb: np.ndarray) -> np.ndarray:
    """(3,) float32: the median colour of the near-white border pixels (white if none)."""
    border, white = _white_border(rgb)
    if not white.any():
        return np.full(3, 255.0, np.float32)
    return np.median(border[white], axis=0).astype(np.float32)


def paper_in_shade(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels that are the paper's colour scaled by a shade in [0.5, 1)."""
    pixels = rgb.astype(np.float32)
    shade = pixels.sum(axis=2, keepdims=True) / max(float(paper.sum()), 1.0)
    off = np.abs(pixels - shade * paper).max(axis=2)
    close = off < SHADE_TOLERANCE[0] + SHADE_TOLERANCE[1] * pixels.mean(axis=2)
    return close & (shade[..., 0] >= DARKEST_SHADE) & (shade[..., 0] < 1.0)


def flood_fill_mask(rgb: np.ndarray, segmenter_mask: np.ndarray | None = None) -> np.ndarray | None:
    """The flood-fill fruit mask of a photo on white, or None where it does not apply.

    None when the border is not white, or when ``segmenter_mask`` (the segmenter's
    thresholded output for the same image) shows that the flood fill took a shadow for
    fruit: at least :data:`EXTRA_TO_CHECK` of the flood-fill mask lies outside the
    segmenter's mask, and at least half of that extra is paper in shade.
    """
    if min(rgb.shape[:2]) < 3 or not on_white_background(rgb):
        return None
    flood = fruit_mask(rgb)
    if segmenter_mask is None or not segmenter_mask.any():
        return flood
    extra = flood & ~segmenter_mask
    if extra.sum() < EXTRA_TO_CHECK * flood.sum():
        return flood
    shadow = paper_in_shade(rgb, paper_colour(rgb))[extra].mean()
    return None if shadow >= SHADOW_SHARE else flood
