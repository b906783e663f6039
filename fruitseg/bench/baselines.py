"""Classical segmentation baselines: OpenCV GrabCut from a centred rectangle, and Otsu thresholds."""

from __future__ import annotations

from typing import Callable

import cv2
import numpy as np


def border_pixels(mask: np.ndarray) -> np.ndarray:
    return np.concatenate([mask[0], mask[-1], mask[1:-1, 0], mask[1:-1, -1]])


def foreground_not_border(binary: np.ndarray) -> np.ndarray:
    """Of the two sides of a threshold, the foreground is the one touching the border less."""
    return ~binary if border_pixels(binary).mean() > 0.5 else binary


def grabcut_mask(image: np.ndarray, margin: float = 0.05, iterations: int = 5) -> np.ndarray:
    """OpenCV GrabCut initialised with a centred rectangle ``margin`` in from every side."""
    h, w = image.shape[:2]
    mx, my = max(1, round(w * margin)), max(1, round(h * margin))
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(image[..., ::-1]), mask, (mx, my, w - 2 * mx, h - 2 * my), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def _otsu(channel: np.ndarray) -> np.ndarray:
    channel = cv2.GaussianBlur(channel, (5, 5), 0)
    _, binary = cv2.threshold(channel, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return foreground_not_border(binary > 0)


def otsu_gray(image: np.ndarray) -> np.ndarray:
    """Otsu on grayscale (after a 5x5 Gaussian blur); foreground = side touching the border less."""
    return _otsu(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))


def otsu_saturation(image: np.ndarray) -> np.ndarray:
    """Otsu on HSV saturation (fruit is usually more saturated than surfaces)."""
    return _otsu(cv2.cvtColor(image, cv2.COLOR_RGB2HSV)[..., 1])


def otsu_background_distance(image: np.ndarray) -> np.ndarray:
    """Otsu on the CIELAB distance of each pixel from the median colour of the image border."""
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB).astype(np.float32)
    ring = max(1, min(image.shape[:2]) // 50)
    border = np.concatenate([lab[:ring].reshape(-1, 3), lab[-ring:].reshape(-1, 3), lab[:, :ring].reshape(-1, 3), lab[:, -ring:].reshape(-1, 3)])
    distance = np.linalg.norm(lab - np.median(border, axis=0), axis=2)
    scaled = np.clip(distance * (255.0 / max(float(distance.max()), 1e-6)), 0, 255).astype(np.uint8)
    return _otsu(scaled)


BASELINES: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "grabcut": ("GrabCut (centred rect, 5% margin, 5 iter)", grabcut_mask),
    "otsu_gray": ("Otsu, grayscale", otsu_gray),
    "otsu_saturation": ("Otsu, HSV saturation", otsu_saturation),
    "otsu_bgdist": ("Otsu, Lab distance from border colour", otsu_background_distance),
}
