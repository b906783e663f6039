"""From a fruit probability map to individual fruits, and each fruit cut out onto white.

`split_fruits` thresholds the map, fills holes, drops specks, and separates touching
fruits with a watershed on the distance transform (each fruit is roughly convex, so two
touching fruits show two distance peaks). `cut_out` puts one fruit on a white square
with a margin, the way Fruits-360 images look, ready for the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image
from scipy import ndimage

MIN_AREA_FRACTION = 0.002  # smaller blobs are specks, not fruit
MAX_FRUITS = 16


@dataclass
class FruitRegion:
    mask: np.ndarray  # (H, W) bool
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 (exclusive)
    area: int
    confidence: float  # mean fruit probability inside the mask


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def separate_touching(component: np.ndarray, min_peak_ratio: float = 0.45) -> np.ndarray:
    """Label map (0 = outside) splitting one connected blob into its roundish parts."""
    distance = ndimage.distance_transform_edt(component)
    peak_distance = distance.max()
    if peak_distance < 4:
        return component.astype(np.int32)
    # A peak is a local maximum of the distance that is a good fraction of the largest one.
    size = max(3, int(peak_distance * 0.9) | 1)
    peaks = (distance == ndimage.maximum_filter(distance, size=size)) & (distance >= min_peak_ratio * peak_distance)
    markers, count = ndimage.label(ndimage.binary_dilation(peaks, iterations=2) & component)
    if count <= 1:
        return component.astype(np.int32)
    relief = (255 * (1 - distance / peak_distance)).astype(np.uint8)
    markers = markers.astype(np.int32)
    markers[~component] = count + 1  # the outside is its own basin
    cv2.watershed(cv2.cvtColor(relief, cv2.COLOR_GRAY2BGR), markers)
    markers[(markers == count + 1) | (markers < 0)] = 0
    # Watershed lines (-1) inside the blob go to the nearest part, so no fruit pixel is lost.
    if (component & (markers == 0)).any():
        _, (iy, ix) = ndimage.distance_transform_edt(markers == 0, return_indices=True)
        markers = np.where(component, markers[iy, ix], 0)
    return markers


def split_fruits(
    prob: np.ndarray, threshold: float = 0.5, min_area_fraction: float = MIN_AREA_FRACTION, split_touching: bool = True
) -> list[FruitRegion]:
    """The fruits in a (H, W) probability map, largest first."""
    binary = ndimage.binary_fill_holes(prob >= threshold)
    binary = ndimage.binary_opening(binary, iterations=1)
    min_area = max(16, int(min_area_fraction * prob.size))
    components, count = ndimage.label(binary)
    regions: list[FruitRegion] = []
    for index, found in enumerate(ndimage.find_objects(components), start=1):
        if found is None:
            continue
        local = components[found] == index
        if local.sum() < min_area:
            continue
        parts = separate_touching(local) if split_touching else local.astype(np.int32)
        for part in range(1, int(parts.max()) + 1):
            part_mask = parts == part
            area = int(part_mask.sum())
            if area < min_area:
                continue
            mask = np.zeros(prob.shape, dtype=bool)
            mask[found] = part_mask
            regions.append(FruitRegion(mask, box_of(mask), area, float(prob[mask].mean())))
    regions.sort(key=lambda r: r.area, reverse=True)
    return regions[:MAX_FRUITS]


def cut_out(image: Image.Image, mask: np.ndarray, margin: float = 0.06) -> Image.Image:
    """The masked fruit on white, cropped to a square around it with ``margin`` on each side."""
    rgb = np.asarray(image.convert("RGB"))
    x0, y0, x1, y1 = box_of(mask)
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin))) + 1
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
