"""Colour changes shared by scene composition and training augmentation: a random
surface colour, and a linear RGB transform (gain, saturation, hue rotation in YIQ) with
contrast about the mean luma."""

from __future__ import annotations

import math

import cv2
import numpy as np


def random_colour(rng: np.random.Generator, max_sat: float = 0.6) -> np.ndarray:
    """A float32 RGB colour (0..255), mostly muted, as surfaces are."""
    h = rng.uniform(0, 360)
    s = rng.uniform(0, max_sat) ** 1.5
    v = rng.uniform(0.15, 1.0) ** 0.7
    hsv = np.array([[[h, s, v]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] * np.float32(255)


RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
LUMA = RGB_TO_YIQ[0]


def colour_jitter_matrix(
    rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_deg: float
) -> tuple[np.ndarray, float]:
    """A 3x3 linear RGB transform (gain, saturation, hue rotation in YIQ) and contrast."""
    gain = rng.uniform(1 - brightness, 1 + brightness)
    sat = rng.uniform(1 - saturation, 1 + saturation)
    angle = math.radians(rng.uniform(-hue_deg, hue_deg))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[1, 0, 0], [0, sat * c, -sat * s], [0, sat * s, sat * c]], np.float64)
    matrix = YIQ_TO_RGB @ rot @ RGB_TO_YIQ * gain
    return matrix.astype(np.float32), rng.uniform(1 - contrast, 1 + contrast)


def apply_colour(image: np.ndarray, matrix: np.ndarray, contrast: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Image -> float32 image: ``matrix`` applied, then contrast about the mean luma (of
    the pixels in the uint8 ``mask``, when given). Both are linear, so one cv2.transform."""
    mean_rgb = np.array(cv2.mean(image, mask)[:3], np.float64)
    luma = float(LUMA @ (matrix.astype(np.float64) @ mean_rgb))
    affine = np.empty((3, 4), np.float32)
    affine[:, :3] = matrix * contrast
    affine[:, 3] = luma * (1 - contrast)
    return cv2.transform(image.astype(np.float32, copy=False), affine)
