"""Edge refinement of a probability map with the photo as guide (He et al., "Guided Image
Filtering", ECCV 2010 / TPAMI 2013).

The segmenter works at a few hundred pixels and its map is upsampled to the photo's
size, so its edges are soft and a few pixels off. The colour guided filter fits, in every
window of the photo, the map as a linear function of the pixel's RGB: where the photo
has an edge (the fruit's outline), the refined map gets the same edge. Measured on the
validation scenes it adds about one point of fruit IoU (see the segmenter's model card).
"""

from __future__ import annotations

import cv2
import numpy as np

RADIUS_AT_512 = 16      # window radius for a 512-pixel image; scaled with the image
EPS = 1e-4              # regularisation: larger keeps more of the map, smaller follows the photo more
MAX_SIDE = 640          # refine at most at this size (the cost grows with the pixel count)
SUBSAMPLE = 4           # fit the coefficients this many times smaller (fast guided filter)


def _box(a: np.ndarray, radius: int) -> np.ndarray:
    return cv2.boxFilter(a, -1, (2 * radius + 1, 2 * radius + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-pixel dot product of two (H, W, 3) arrays: ``(a * b).sum(-1)``, channel by channel
    (about 10x faster than numpy's reduction over a last axis of 3)."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def guided_filter(guide: np.ndarray, source: np.ndarray, radius: int, eps: float = EPS, subsample: int = 1) -> np.ndarray:
    """Colour guided filter: ``guide`` (H, W, 3) float32 in [0, 1], ``source`` (H, W) float32.

    With ``subsample`` s > 1 the linear coefficients are fitted on both images shrunk s
    times (radius / s) and upsampled to apply to the full-size guide: the "fast guided
    filter" (He & Sun, arXiv:1505.00996), about s² times less work for nearly the same map.
    """
    guide = np.ascontiguousarray(guide, dtype=np.float32)
    source = np.ascontiguousarray(source, dtype=np.float32)
    if subsample > 1:
        h, w = source.shape
        small = (max(1, round(w / subsample)), max(1, round(h / subsample)))
        a, bias = _coefficients(
            cv2.resize(guide, small, interpolation=cv2.INTER_AREA),
            cv2.resize(source, small, interpolation=cv2.INTER_AREA),
            max(1, round(radius / subsample)),
            eps,
        )
        a = cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)
        bias = cv2.resize(bias, (w, h), interpolation=cv2.INTER_LINEAR)
    else:
        a, bias = _coefficients(guide, source, radius, eps)
    return _dot(a, guide) + bias


def _coefficients(guide: np.ndarray, source: np.ndarray, radius: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """The window-averaged linear coefficients (a: (H, W, 3), b: (H, W)) of the map on the guide."""
    mean_i = _box(guide, radius)
    mean_p = _box(source, radius)
    cov_ip = _box(guide * source[..., None], radius) - mean_i * mean_p[..., None]
    r, g, b = guide[..., 0], guide[..., 1], guide[..., 2]
    mr, mg, mb = mean_i[..., 0], mean_i[..., 1], mean_i[..., 2]
    first = _box(np.stack([r * r, r * g, r * b], -1), radius)
    second = _box(np.stack([g * g, g * b, b * b], -1), radius)
    # The guide's 3x3 covariance in each window (+ eps on the diagonal) ...
    rr, rg, rb = first[..., 0] - mr * mr + eps, first[..., 1] - mr * mg, first[..., 2] - mr * mb
    gg, gb, bb = second[..., 0] - mg * mg + eps, second[..., 1] - mg * mb, second[..., 2] - mb * mb + eps
    # ... inverted in closed form (adjugate / determinant) to solve for the linear coefficients.
    inv_rr, inv_rg, inv_rb = gg * bb - gb * gb, gb * rb - rg * bb, rg * gb - gg * rb
    inv_gg, inv_gb, inv_bb = rr * bb - rb * rb, rb * rg - rr * gb, rr * gg - rg * rg
    det = rr * inv_rr + rg * inv_rg + rb * inv_rb
    c0, c1, c2 = cov_ip[..., 0], cov_ip[..., 1], cov_ip[..., 2]
    a = np.stack(
        [inv_rr * c0 + inv_rg * c1 + inv_rb * c2, inv_rg * c0 + inv_gg * c1 + inv_gb * c2, inv_rb * c0 + inv_gb * c1 + inv_bb * c2],
        -1,
    ) / det[..., None]
    bias = mean_p - _dot(a, mean_i)
    return _box(a, radius), _box(bias, radius)


def refine_probability(rgb: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """Sharpen a fruit probability map (H, W) along the edges of the photo ``rgb`` (H, W, 3) uint8.

    Large photos are refined at ``MAX_SIDE`` and the result is resized back; the filter's
    coefficients are fitted at 1/``SUBSAMPLE`` of that size. On the 200 validation scenes
    at 512x512 this gives fruit IoU 0.9335 in 9 ms against 0.9332 in 32 ms for the exact
    filter (0.919 without refinement). The output is clipped to [0, 1].
    """
    h, w = probability.shape
    if min(h, w) < 8:
        return probability
    scale = min(1.0, MAX_SIDE / max(h, w))
    size = (max(8, round(w * scale)), max(8, round(h * scale)))
    guide, source = rgb, probability
    if scale < 1.0:
        guide = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        source = cv2.resize(probability, size, interpolation=cv2.INTER_AREA)
    radius = max(1, round(RADIUS_AT_512 * max(size) / 512))
    # Subsample only while the shrunk window keeps a radius of 4 px or more.
    subsample = max(1, min(SUBSAMPLE, radius // 4))
    refined = guided_filter(guide.astype(np.float32) / 255, source, radius, subsample=subsample)
    if scale < 1.0:
        refined = cv2.resize(refined, (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(refined, 0, 1).astype(np.float32)
