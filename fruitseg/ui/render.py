"""Showing results: coloured mask overlays with labels, mask PNGs, captions, API JSON.

Fills are blended with OpenCV and tags drawn with PIL. torchvision's drawing helpers were
measured and do not serve here: ``draw_segmentation_masks`` blends in float over the whole
image (about 40 ms for three fruits on a 1024x768 photo against ~5 ms for ``cv2.addWeighted``,
on a path the opacity slider redraws), and ``draw_bounding_boxes`` would draw a box, put the
label inside it, and size its font only from a TrueType file the app cannot count on.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from fruitseg.masks import outline

# Distinct, colour-blind-friendly colours (Okabe-Ito, then Tableau), one per fruit.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0),
    (86, 180, 233),
    (0, 158, 115),
    (240, 228, 66),
    (0, 114, 178),
    (213, 94, 0),
    (204, 121, 167),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
)


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def percent(p: float) -> str:
    """0.973 -> '97%'; small but non-zero values keep one decimal (0.004 -> '0.4%')."""
    value = 100 * float(p)
    return f"{value:.0f}%" if value >= 9.95 or value == 0 else f"{value:.1f}%"


def caption(label: str, score: float) -> str:
    """The caption of one fruit: ``Banana 97%``."""
    return f"{label} {percent(score)}"


def label_dict(top: Sequence[tuple[str, float]]) -> dict[str, float]:
    """[(name, prob), ...] -> {name: prob} for ``gr.Label`` (order kept, plain floats)."""
    return {str(name): float(prob) for name, prob in top}


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: bitmap font, fixed size
        return ImageFont.load_default()


def draw_overlay(
    image: Image.Image,
    label_map: np.ndarray,
    captions: Sequence[str],
    opacity: float = 0.5,
) -> Image.Image:
    """``image`` with fruit ``k`` (pixels where ``label_map == k + 1``) tinted and outlined
    in its own colour, and ``captions[k]`` written on a tag at the top of its box.

    ``opacity`` in [0, 1] is how strongly the fill colour covers the photo (the outline and
    tags are always drawn). Returns a new RGB image of the same size.
    """
    opacity = float(np.clip(opacity, 0.0, 1.0))
    rgb = np.array(image.convert("RGB"))
    if label_map.shape != rgb.shape[:2]:
        raise ValueError(f"label map {label_map.shape} does not match the image {rgb.shape[:2]}")
    height, width = label_map.shape
    count = len(captions)
    if count == 0 or not label_map.any():
        return Image.fromarray(rgb)
    lut = np.zeros((max(count, int(label_map.max())) + 1, 3), np.uint8)  # label -> colour (0: none)
    lut[1 : count + 1] = [colour(k) for k in range(count)]
    fruit = (label_map > 0) & (label_map <= count)
    if opacity > 0:
        tinted = cv2.addWeighted(rgb, 1.0 - opacity, np.take(lut, label_map, axis=0), opacity, 0.0)
        cv2.copyTo(tinted, fruit.view(np.uint8), rgb)
    edges = outline(label_map, max(1, round(max(height, width) / 300))) & fruit
    rgb[edges] = lut[label_map[edges]]
    result = Image.fromarray(rgb)

    draw = ImageDraw.Draw(result)
    font = _font(max(11, round(max(height, width) / 38)))
    for k, found in enumerate(ndimage.find_objects(label_map, max_label=count)):
        if found is None or not captions[k]:
            continue
        y0, x0 = found[0].start, found[1].start
        text = captions[k]
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        tw, th = right - left, bottom - top
        pad = max(2, th // 4)
        tag_w, tag_h = tw + 2 * pad, th + 2 * pad
        tx = int(np.clip(x0, 0, max(0, width - tag_w)))
        ty = y0 - tag_h if y0 - tag_h >= 0 else y0  # above the fruit, or just inside it
        ty = int(np.clip(ty, 0, max(0, height - tag_h)))
        fill = colour(k)
        text_colour = (0, 0, 0) if sum(fill) > 380 else (255, 255, 255)
        draw.rectangle((tx, ty, tx + tag_w, ty + tag_h), fill=fill)
        draw.text((tx + pad - left, ty + pad - top), text, fill=text_colour, font=font)
    return result


def label_map_from_masks(masks: Sequence[np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """Boolean masks (in the pipeline's order) -> uint8 map: 0 = background, k + 1 = fruit k."""
    label_map = np.zeros(shape, dtype=np.uint8)
    for k, mask in enumerate(masks[:255]):
        label_map[mask & (label_map == 0)] = k + 1
    return label_map


def mask_image(label_map: np.ndarray) -> Image.Image:
    """The fruit mask as an 8-bit grayscale image: 255 = fruit, 0 = background."""
    return Image.fromarray(np.where(label_map > 0, 255, 0).astype(np.uint8))
