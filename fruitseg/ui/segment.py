"""Segment tab: each fruit's mask over the photo, labelled with its kind.

Fruits are named by the photo classifier (by the Fruits-360 CNN when the app has none), by
kind first ("Apple"), with the likeliest class beside it in the API's answer.

The segmenter runs once per photo. Its probability map is kept in a :class:`SegmentCache`
shared by every session and bounded in size (no per-session state), so moving the
threshold only re-splits the cached map into fruits and re-classifies the cut-outs, and
moving the opacity only redraws the overlay. A photo that has left the cache is simply
segmented again from its uploaded file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from functools import lru_cache, partial
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from fruitseg.ui.common import (
    Stopwatch,
    example_images,
    image_input,
    parse_number,
    read_image,
    safe_stem,
    save_png,
    user_errors,
)
from fruitseg.ui.state import Models
from fruitseg.ui.render import caption, draw_overlay, label_dict, label_map_from_masks, mask_image, percent

THRESHOLD = 0.5
OPACITY = 0.5
PHOTO_CACHE_SIZE = 8  # photos whose probability map is kept (all sessions together), ~5 MB each at 1024 px
SPLIT_CACHE_SIZE = 16  # (photo, threshold) results kept for the sliders, ~1 MB each plus their photo
TABLE_HEADERS = ["#", "kind", "confidence", "area"]


@dataclass
class FruitInfo:
    kind: str
    kind_score: float
    label: str  # the likeliest class
    score: float
    top5: dict[str, float]
    box: tuple[int, int, int, int]
    area_fraction: float

    @property
    def caption(self) -> str:
        return caption(self.kind, self.kind_score)

    def to_json(self) -> dict[str, Any]:
        """{"kind", "kind_score", "label", "score", "confidences" (top 5 classes), "box" [x0, y0, x1, y1], "area_fraction"}"""
        return {
            "kind": self.kind,
            "kind_score": self.kind_score,
            "label": self.label,
            "score": self.score,
            "confidences": self.top5,
            "box": list(self.box),
            "area_fraction": self.area_fraction,
        }


@dataclass
class Segmentation:
    """One photo's segmentation at one threshold (what the session keeps between events)."""

    image: Image.Image
    probability: np.ndarray  # (H, W) float16 fruit probability, cached so the model runs once
    threshold: float
    label_map: np.ndarray  # (H, W) uint8: 0 = background, k + 1 = fruit k (surest first)
    fruits: list[FruitInfo] = field(default_factory=list)
    stem: str = "image"
    model_ms: float = 0.0  # segmenter time for this photo
    split_ms: float = 0.0  # splitting + classifying at this threshold

    @property
    def fruit_fraction(self) -> float:
        return float(np.mean(self.label_map > 0)) if self.label_map.size else 0.0

    def mask_png(self) -> str:
        return save_png(mask_image(self.label_map), f"{self.stem}_mask")

    def overlay(self, opacity: float) -> Image.Image:
        return draw_overlay(self.image, self.label_map, [f.caption for f in self.fruits], opacity)

    def to_json(self, device: str) -> dict[str, Any]:
        return {
            "fruit_fraction": self.fruit_fraction,
            "threshold": self.threshold,
            "fruits": [f.to_json() for f in self.fruits],
            "image_size": list(self.image.size),
            "ms": round(self.model_ms + self.split_ms, 1),
            "device": device,
        }


def check_threshold(threshold: Any) -> float:
    return parse_number(
        threshold,
        "The threshold must be a number between 0 and 1.",
        low=0.0,
        high=1.0,
        low_inclusive=False,
        high_inclusive=False,
        range_message="The threshold must be between 0 and 1 (exclusive), got {value}.",
    )


def check_opacity(opacity: Any) -> float:
    """A number, clipped to [0, 1]."""
    return parse_number(opacity, "The opacity must be a number between 0 and 1.", low=0.0, high=1.0, clip=True)


def split(models: Models, segmentation: Segmentation, threshold: float) -> Segmentation:
    """Fruits of the cached probability map at ``threshold`` (no segmenter run)."""
    with Stopwatch() as watch:
        probability = segmentation.probability.astype(np.float32)
        pipeline = models.photo_pipeline or models.pipeline
        analysis = pipeline.analyze(segmentation.image, threshold=threshold, probability=probability)
        label_map = label_map_from_masks([f.mask for f in analysis.fruits], probability.shape)
        fruits = [
            FruitInfo(f.kind, float(f.prediction.kind_score), f.label, float(f.score), label_dict(f.top5),
                      tuple(int(v) for v in f.box), float(f.area_fraction))
            for f in analysis.fruits
        ]
    return replace(segmentation, threshold=threshold, label_map=label_map, fruits=fruits, split_ms=watch.ms)


def probability_map(models: Models, image: Image.Image, stem: str = "image") -> Segmentation:
    """Run the segmenter once; no fruits yet (threshold NaN): :func:`split` finds them."""
    with Stopwatch() as watch:
        probability = models.pipeline.segment(image).astype(np.float16)
    return Segmentation(image, probability, math.nan, np.zeros(probability.shape, np.uint8), [], stem, watch.ms)


def segment_image(models: Models, image: Image.Image, threshold: float = THRESHOLD, stem: str = "image") -> Segmentation:
    """Run the segmenter once, then split and classify at ``threshold``."""
    return split(models, probability_map(models, image, stem), threshold)


class SegmentCache:
    """The Segment tab's results, shared by every session, bounded whatever their number.

    ``photo(key)`` keeps the probability maps of the last :data:`PHOTO_CACHE_SIZE` photos and
    ``at(key, threshold)`` the last :data:`SPLIT_CACHE_SIZE` splits (``functools.lru_cache``;
    errors are not cached). A key is the uploaded file's path, size and modification time
    (Gradio names uploads by content), so the same photo is segmented once for everyone;
    after eviction it is segmented again from its file.
    """

    def __init__(self, models: Models, photos: int = PHOTO_CACHE_SIZE, splits: int = SPLIT_CACHE_SIZE) -> None:
        self.models = models
        self.photo = lru_cache(maxsize=photos)(self._photo)
        self.at = lru_cache(maxsize=splits)(self._split)

    @staticmethod
    def key(path: str | None) -> tuple[str | None, int, int]:
        try:
            stat = os.stat(path)  # type: ignore[arg-type]
        except (TypeError, ValueError, OSError):
            return (path, -1, -1)  # read_image says what is wrong
        return (path, stat.st_size, stat.st_mtime_ns)

    def _photo(self, key: tuple[str | None, int, int]) -> Segmentation:
        return probability_map(self.models, read_image(key[0]), safe_stem(key[0]))

    def _split(self, key: tuple[str | None, int, int], threshold: float) -> Segmentation:
        return split(self.models, self.photo(key), threshold)

    def segmentation(self, path: str | None, threshold: float) -> Segmentation:
        return self.at(self.key(path), threshold)


def summary_markdown(seg: Segmentation, device: str) -> str:
    n = len(seg.fruits)
    if n == 0:
        peak = float(seg.probability.max()) if seg.probability.size else 0.0
        return (
            f"**No fruit found** at threshold {seg.threshold:.2f} (the highest fruit probability in this photo "
            f"is {peak:.2f}). Try a lower threshold.  \nTime: {seg.model_ms + seg.split_ms:.0f} ms on {device}"
        )
    fruits = "1 fruit" if n == 1 else f"{n} fruits"
    return (
        f"**{fruits}** · fruit area **{100 * seg.fruit_fraction:.1f}%** of the image "
        f"(threshold {seg.threshold:.2f})  \nTime: segmenter {seg.model_ms:.0f} ms + fruits {seg.split_ms:.0f} ms on {device}"
    )


def fruits_table(seg: Segmentation) -> pd.DataFrame:
    rows = [[i, f.kind, percent(f.kind_score), f"{100 * f.area_fraction:.1f}%"] for i, f in enumerate(seg.fruits, start=1)]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def _outputs(seg: Segmentation, opacity: float, device: str):
    return seg.overlay(opacity), summary_markdown(seg, device), fruits_table(seg), seg.mask_png()


def segment_ui(cache: SegmentCache, path: str | None, threshold: float, opacity: float):
    """Segment button / example / threshold slider: (overlay, summary, table, mask PNG path).
    The segmenter runs only for a photo that is not in ``cache``."""
    threshold, opacity = check_threshold(threshold), check_opacity(opacity)
    return _outputs(cache.segmentation(path, threshold), opacity, cache.models.device)


def rethreshold_ui(cache: SegmentCache, path: str | None, threshold: float, opacity: float):
    """Threshold slider: re-split the cached map (no photo yet: nothing to do)."""
    if path is None:
        return (gr.skip(),) * 4
    return segment_ui(cache, path, threshold, opacity)


def opacity_ui(cache: SegmentCache, path: str | None, threshold: float, opacity: float):
    """Opacity slider: redraw the overlay only."""
    if path is None:
        return gr.skip()
    return cache.segmentation(path, check_threshold(threshold)).overlay(check_opacity(opacity))


def segment_api(models: Models, image: str | None, threshold: float = THRESHOLD, opacity: float = OPACITY):
    """Segment the fruits in an image.

    Returns (overlay image, mask PNG (255 = fruit), info) where info is {"fruit_fraction",
    "threshold", "fruits" (label, score, confidences, box [x0, y0, x1, y1], area_fraction),
    "image_size", "ms", "device"}. Images are analysed with their longer side at most 1024
    pixels; the overlay and the mask have that size.
    """
    threshold, opacity = check_threshold(threshold), check_opacity(opacity)
    seg = segment_image(models, read_image(image), threshold, safe_stem(image))
    return seg.overlay(opacity), seg.mask_png(), seg.to_json(models.device)


def build(models: Models) -> SegmentCache:
    """The Segment tab's components and events (call inside a ``gr.Tab``); returns its cache."""
    # WebP: a 1024-pixel overlay encodes in ~40 ms (PNG: ~120 ms), which keeps the opacity slider smooth.
    overlay = gr.Image(
        label="Fruits found", type="pil", format="webp", interactive=False, height=360, elem_id="segment-overlay", render=False
    )
    summary = gr.Markdown(elem_id="segment-summary", render=False)
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Fruits", elem_id="segment-table", render=False)
    mask_file = gr.File(label="Mask (PNG, white = fruit)", interactive=False, elem_id="segment-mask", render=False)
    outputs = [overlay, summary, table, mask_file]
    cache = SegmentCache(models)

    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            image = image_input(label="Photo (upload, webcam or paste)", height=320, elem_id="segment-image")
            threshold = gr.Slider(
                0.05,
                0.95,
                value=THRESHOLD,
                step=0.05,
                label="Threshold",
                info="Fruit probability above which a pixel counts as fruit",
                elem_id="segment-threshold",
            )
            opacity = gr.Slider(0.0, 1.0, value=OPACITY, step=0.05, label="Mask opacity", elem_id="segment-opacity")
            button = gr.Button("Segment", variant="primary", elem_id="segment-button")
            run = user_errors("segmenting the image")(partial(segment_ui, cache))
            examples = example_images()
            dataset = gr.Examples(
                examples=[[p] for p in examples],
                inputs=[image],
                label="Examples (click one to segment it)",
                elem_id="segment-examples",
                examples_per_page=12,
                cache_examples=False,
                api_visibility="private",
            )
        with gr.Column(scale=1):
            for component in (overlay, summary, mask_file, table):
                component.render()

    inputs = [image, threshold, opacity]
    button.click(run, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="models")
    image.upload(run, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="models")
    # Clicking an example loads it into the photo box, then segments it with the current sliders.
    dataset.load_input_event.then(run, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="models")
    threshold.change(
        user_errors("re-thresholding")(partial(rethreshold_ui, cache)),
        inputs=inputs,
        outputs=outputs,
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
        concurrency_id="models",
    )
    opacity.change(
        user_errors("redrawing the overlay")(partial(opacity_ui, cache)),
        inputs=inputs,
        outputs=[overlay],
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
        concurrency_id="models",  # a photo no longer cached is segmented again
    )

    # API: /segment(image, threshold, opacity) -> (overlay, mask PNG, info JSON).
    api_overlay = gr.Image(type="pil", format="png", visible=False)
    api_mask = gr.File(visible=False)
    api_info = gr.JSON(visible=False)
    api_button = gr.Button(visible=False)
    api_button.click(
        user_errors("segmenting the image")(partial(segment_api, models)),
        inputs=inputs,
        outputs=[api_overlay, api_mask, api_info],
        api_name="segment",
        api_description=segment_api.__doc__,
        concurrency_id="models",
    )
    return cache
