"""Training-side mask helpers: soft alphas for compositing and a montage for checking masks.

The masks themselves come from :func:`fruitseg.masks.fruit_mask` (the runtime module, which
the app uses too).
"""

from __future__ import annotations

import cv2
import numpy as np

from fruitseg.masks import outline


def soft_alpha(mask: np.ndarray, feather_px: float = 1.0) -> np.ndarray:
    """float32 alpha in [0, 1] from a boolean mask, with edges softened by ``feather_px``.

    A Gaussian of sigma ``feather_px`` blurs the mask, so the 0.5 level stays on the
    mask's outline (alpha is 1 well inside and 0 well outside).
    """
    alpha = np.asarray(mask, dtype=np.float32)
    if feather_px <= 0:
        return alpha
    return cv2.GaussianBlur(alpha, (0, 0), sigmaX=float(feather_px), borderType=cv2.BORDER_REPLICATE)


def mask_montage(images: np.ndarray, masks: np.ndarray, columns: int = 4, scale: int = 2) -> np.ndarray:
    """RGB montage of (image | image with background greyed and outline drawn) pairs."""
    tiles = []
    for image, mask in zip(images, masks):
        shown = image.copy()
        shown[~mask] = (0.35 * shown[~mask] + 0.65 * np.array([255, 0, 255])).astype(np.uint8)
        edge = outline(mask)
        shown[edge] = (0, 255, 255)
        pair = np.concatenate([image, np.full((image.shape[0], 2, 3), 255, np.uint8), shown], axis=1)
        tiles.append(np.pad(pair, ((2, 2), (2, 2), (0, 0)), constant_values=64))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 64))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    if scale != 1:
        grid = cv2.resize(grid, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    return grid
