"""From a fruit probability map to individual fruits, and each fruit cut out onto white.

`split_fruits` thresholds the map, fills holes, drops specks, and separates touching
fruits (`separate_touching`): a watershed of the distance to the blob's edge
(``skimage.segmentation.watershed``) from its peaks (``skimage.feature.peak_local_max``).
Each fruit is roughly convex, so two touching fruits show two peaks with a low pass (a
neck) between them; peaks joined by a high pass are one long fruit, a banana
(`merge_unnecked_peaks`). Large maps are split at a working resolution
(:data:`SPLIT_SIDE`); the outlines stay those of the full-size map. `cut_out` puts one
fruit on a white square with a margin, the way Fruits-360 images look, ready for the
classifier; `context_crop` gives the photo classifier the fruit in its surroundings.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.feature import peak_local_max
from skimage.segmentation import expand_labels, watershed

MIN_AREA_FRACTION = 0.002  # blobs and parts under this share of the map's pixels are specks, not fruit ...
MIN_AREA_PIXELS = 16  # ... and so is anything under this many pixels, whatever the map's size
MAX_FRUITS = 16  # at most this many fruits per photo (the surest)
SPLIT_SIDE = 320  # touching fruits are separated on the blob shrunk so the map's longer side is at most this
# (the segmenter's own resolution: the map holds no finer detail about where one fruit ends)
MIN_SPLIT_RADIUS = 4.0  # a blob whose widest inscribed circle has a smaller radius (map pixels) is never split
MIN_PEAK_RATIO = 0.45  # a fruit's centre: a peak of the distance to the blob's edge at least this share of its highest,
PEAK_SPACING = 0.45  # with no higher peak closer than this share of the highest peak's height
NECK_RATIO = 0.9  # two peaks are one fruit when the pass between them is at least this share of the lower peak
# (on 160 composite validation scenes, seed 7: instance PQ of the segmenter's maps 0.81 at 0.9, 0.76 at 0.7,
# 0.80 at 1.0 where nothing is joined; the earlier straight-line neck test at 0.7: 0.78)

_CROSS = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))


@dataclass
class FruitRegion:
    mask: np.ndarray  # (H, W) bool
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int
    confidence: float  # mean fruit probability inside the mask


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1), exclusive, of a non-empty boolean mask."""
    ys, xs = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


def distance_to_edge(mask: np.ndarray) -> np.ndarray:
    """float32 Euclidean distance of each mask pixel to the nearest pixel outside it (0 outside)."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def merge_unnecked_peaks(
    parts: np.ndarray, distance: np.ndarray, neck_ratio: float = NECK_RATIO, min_area: int = 0
) -> np.ndarray:
    """Join neighbouring watershed parts with no narrow neck between them: one long fruit (a banana), not two.

    ``parts``: (H, W) labels 1..n from a watershed of ``-distance`` (0 = outside). Two touching
    round fruits meet at a neck: the pass between their peaks (the highest distance on the line
    where their parts meet) is well below both peaks. Along an elongated or bent fruit it stays
    close to them: parts whose pass is at least ``neck_ratio`` times the lower peak are joined,
    and so is each part smaller than ``min_area`` pixels to the neighbour it has the highest
    pass with (too small to be a fruit, it is the end of one), transitively. Returns labels
    1..m, m <= n.
    """
    count = int(parts.max())
    if count <= 1:
        return parts
    index = np.arange(1, count + 1)
    peaks = np.asarray(ndimage.maximum(distance, parts, index), dtype=np.float32)
    # Every pair of 4-neighbours in different parts; the pass is the highest of their lower distances.
    pairs = []
    for a, b, da, db in (
        (parts[:, :-1], parts[:, 1:], distance[:, :-1], distance[:, 1:]),
        (parts[:-1], parts[1:], distance[:-1], distance[1:]),
    ):
        meet = (a != b) & (a > 0) & (b > 0)
        pairs.append((a[meet], b[meet], np.minimum(da[meet], db[meet])))
    first, second, height = (np.concatenate(column) for column in zip(*pairs))
    passes = np.zeros((count + 1, count + 1), np.float32)
    np.maximum.at(passes, (first, second), height)
    passes = np.maximum(passes, passes.T)[1:, 1:]
    joined = passes >= neck_ratio * np.minimum(peaks[:, None], peaks[None, :])
    small = np.flatnonzero(np.bincount(parts.ravel(), minlength=count + 1)[1:] < min_area)
    neighbour = passes[small].argmax(axis=1)
    joined[small, neighbour] |= passes[small, neighbour] > 0
    np.fill_diagonal(joined, False)
    if not joined.any():
        return parts
    _, fruit = connected_components(coo_matrix(joined), directed=False)
    return np.concatenate([[0], fruit + 1]).astype(np.int32)[parts]


def separate_touching(
    component: np.ndarray,
    min_radius: float = MIN_SPLIT_RADIUS,
    min_peak_ratio: float = MIN_PEAK_RATIO,
    peak_spacing: float = PEAK_SPACING,
    neck_ratio: float = NECK_RATIO,
    min_area: int = 0,
) -> np.ndarray:
    """int32 labels (0 = outside, 1..n) splitting one connected blob (bool) into its roundish parts.

    The peaks of the distance to the blob's edge are the fruits' centres (``peak_local_max``:
    at least ``min_peak_ratio`` of the highest, none closer to a higher one than ``peak_spacing``
    times the highest); the blob is flooded from them (``watershed`` of ``-distance``),
    so touching fruits are cut along their neck, and parts with no neck between them, or
    smaller than ``min_area`` pixels, are joined again (:func:`merge_unnecked_peaks`). A blob
    thinner than ``min_radius`` stays whole.
    """
    single = component.astype(np.int32)
    distance = distance_to_edge(component)
    highest = float(distance.max())
    if highest < min_radius:
        return single
    peaks = peak_local_max(
        distance,
        min_distance=max(1, int(peak_spacing * highest)),
        threshold_abs=min_peak_ratio * highest,
        labels=single,
        exclude_border=False,
    )
    if len(peaks) <= 1:
        return single
    markers = np.zeros(component.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    parts = watershed(-distance, markers, mask=component)
    return merge_unnecked_peaks(parts, distance, neck_ratio, min_area)


def _split_at(component: np.ndarray, scale: float, min_radius: float, min_area: int) -> np.ndarray:
    """:func:`separate_touching` on ``component`` shrunk by ``scale`` (<= 1), labels at full size.

    Full-size pixels take the label under them in the shrunk split, grown over the pixels the
    shrunk blob lost (thin edges) with ``expand_labels``: each takes its nearest part's label.
    """
    if scale >= 1.0:
        return separate_touching(component, min_radius, min_area=min_area)
    height, width = component.shape
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = cv2.resize(component.astype(np.uint8) * 255, size, interpolation=cv2.INTER_AREA) >= 128
    parts = separate_touching(small, min_radius * scale, min_area=int(min_area * scale**2)) if small.any() else small.astype(np.int32)
    if parts.max() <= 1:
        return component.astype(np.int32)
    parts = expand_labels(parts, distance=max(size))
    parts = cv2.resize(parts, (width, height), interpolation=cv2.INTER_NEAREST)
    parts[~component] = 0
    return parts


def fruit_blobs(prob: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 (H, W): 1 where ``prob >= threshold``, holes filled, one-pixel spurs and specks opened away."""
    binary = (prob >= threshold).astype(np.uint8)
    # Holes: what a flood fill of the background from outside the map does not reach (4-connected).
    padded = np.pad(binary, 1)
    reached = np.zeros((padded.shape[0] + 2, padded.shape[1] + 2), np.uint8)
    cv2.floodFill(padded, reached, (0, 0), 1, flags=4 | (1 << 8) | cv2.FLOODFILL_MASK_ONLY)
    filled = 1 - reached[2:-2, 2:-2]
    return cv2.morphologyEx(filled, cv2.MORPH_OPEN, _CROSS, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def split_fruits(
    prob: np.ndarray,
    threshold: float = 0.5,
    min_area_fraction: float = MIN_AREA_FRACTION,
    split_touching: bool = True,
    split_side: int = SPLIT_SIDE,
) -> list[FruitRegion]:
    """The fruits in a (H, W) probability map, the ones the segmenter is surest of first.

    Blobs of ``prob >= threshold`` (holes filled, opened, 4-connected) and the fruits
    :func:`separate_touching` finds in each, all of at least ``min_area_fraction`` of the
    map (and :data:`MIN_AREA_PIXELS`), at most :data:`MAX_FRUITS`. Touching fruits are
    separated with the map shrunk to ``split_side`` on its longer side; each fruit's mask
    is the full-size blob's pixels on its side of the cut.

    Regions are ranked by their mean fruit probability (ties: larger first), not by size:
    in a photo of one fruit, a false region in a busy background is often larger than the
    fruit but less certain. Of 500 single-fruit validation scenes (seeds 7 and 11, not the
    report seed), 76 gave several regions; this ranking put the real fruit first in 67 of
    them, "largest first" in 58.
    """
    prob = np.asarray(prob, dtype=np.float32)
    min_area = max(MIN_AREA_PIXELS, int(min_area_fraction * prob.size))
    scale = min(1.0, split_side / max(prob.shape))
    _, blobs = cv2.connectedComponents(fruit_blobs(prob, threshold), connectivity=4, ltype=cv2.CV_32S)
    regions: list[FruitRegion] = []
    labels = np.flatnonzero(np.bincount(blobs.ravel()) >= min_area)
    for index in labels[labels != 0]:  # 0 is the background (absent when fruit fills the frame)
        x0, y0, x1, y1 = box_of(blobs == index)
        window = (slice(y0, y1), slice(x0, x1))
        blob = blobs[window] == index
        parts = _split_at(blob, scale, MIN_SPLIT_RADIUS, min_area) if split_touching else blob.astype(np.int32)
        n = int(parts.max())
        areas = np.bincount(parts.ravel(), minlength=n + 1)
        sums = np.bincount(parts.ravel(), weights=prob[window].ravel(), minlength=n + 1)
        for part, found in enumerate(ndimage.find_objects(parts), start=1):
            if found is None or areas[part] < min_area:
                continue
            rows, columns = found
            mask = np.zeros(prob.shape, dtype=bool)
            mask[window] = parts == part
            box = (x0 + columns.start, y0 + rows.start, x0 + columns.stop, y0 + rows.stop)
            regions.append(FruitRegion(mask, box, int(areas[part]), float(sums[part] / areas[part])))
    regions.sort(key=lambda r: (r.confidence, r.area), reverse=True)
    return regions[:MAX_FRUITS]


def cut_out(image: Image.Image, mask: np.ndarray, margin: float = 0.06) -> Image.Image:
    """The masked fruit on white, cropped to a square around it with ``margin`` on each side."""
    rgb = np.asarray(image.convert("RGB"))
    x0, y0, x1, y1 = box_of(mask)
    side = round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)) + 1
    cx, cy = (x0 + x1) // 2, (y0 + y1) // 2
    canvas = np.full((side, side, 3), 255, dtype=np.uint8)
    # Paste the part of the square that lies inside the image.
    sx0, sy0 = cx - side // 2, cy - side // 2
    ix0, iy0 = max(sx0, 0), max(sy0, 0)
    ix1, iy1 = min(sx0 + side, rgb.shape[1]), min(sy0 + side, rgb.shape[0])
    crop = rgb[iy0:iy1, ix0:ix1]
    keep = mask[iy0:iy1, ix0:ix1, None]
    canvas[iy0 - sy0 : iy1 - sy0, ix0 - sx0 : ix1 - sx0] = np.where(keep, crop, 255)
    return Image.fromarray(canvas)


def context_crop(image: Image.Image, box: tuple[int, int, int, int], margin: float = 0.15) -> Image.Image:
    """A square of the photo around ``box`` (x0, y0, x1, y1), ``margin`` wider on each side and
    shifted to stay inside the image where it can: the fruit *with* its surroundings, as the
    photo classifier (:class:`fruitseg.predictors.PhotoClassifier`) was trained to see it."""
    x0, y0, x1, y1 = box
    side = min(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)), max(image.size))
    left = int(np.clip((x0 + x1) / 2 - side / 2, 0, max(image.width - side, 0)))
    top = int(np.clip((y0 + y1) / 2 - side / 2, 0, max(image.height - side, 0)))
    return image.crop((left, top, min(left + side, image.width), min(top + side, image.height)))
