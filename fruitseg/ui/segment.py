"""Segment tab: each fruit's mask over the photo, labelled with its class.

The segmenter runs once per photo. Its probability map is kept in the session
(``gr.State``), so moving the threshold only re-splits the cached map into fruits and
re-classifies the cut-outs, and moving the opacity only redraws the overlay.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import partial
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
from fruitseg.ui.models import Models
from fruitseg.ui.render import caption, draw_overlay, fruit_json, label_dict, label_map_from_masks, mask_image, percent

THRESHOLD = 0.5
OPACITY = 0.5
STATE_TTL_S = 1800  # a session's cached photo and probability map are dropped after this
TABLE_HEADERS = ["#", "fruit", "confidence", "area"]


@dataclass
class FruitInfo:
    label: str
    score: float
    top5: dict[str, float]
    box: tuple[int, int, int, int]
    area_fraction: float

    @property
    def caption(self) -> str:
        return caption(self.label, self.score)


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
            "fruits": [fruit_json(f) for f in self.fruits],
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
        analysis = models.pipeline.analyze(segmentation.image, threshold=threshold, probability=probability)
        label_map = label_map_from_masks([f.mask for f in analysis.fruits], probability.shape)
        fruits = [
            FruitInfo(f.label, float(f.score), label_dict(f.top5), tuple(int(v) for v in f.box), float(f.area_fraction))
            for f in analysis.fruits
        ]
    return replace(segmentation, threshold=threshold, label_map=label_map, fruits=fruits, split_ms=watch.ms)


def segment_image(models: Models, image: Image.Image, threshold: float = THRESHOLD, stem: str = "image") -> Segmentation:
    """Run the segmenter once, then split and classify at ``threshold``."""
    with Stopwatch() as watch:
        probability = models.pipeline.segment(image).astype(np.float16)
    empty = Segmentation(image, probability, threshold, np.zeros(probability.shape, np.uint8), [], stem, watch.ms)
    return split(models, empty, threshold)


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
    rows = [[i, f.label, percent(f.score), f"{100 * f.area_fraction:.1f}%"] for i, f in enumerate(seg.fruits, start=1)]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def _outputs(seg: Segmentation, opacity: float, device: str):
    return seg.overlay(opacity), summary_markdown(seg, device), fruits_table(seg), seg.mask_png(), seg


def segment_ui(models: Models, path: str | None, threshold: float, opacity: float):
    """Segment button / example: (overlay, summary, table, mask PNG path, session state)."""
    threshold, opacity = check_threshold(threshold), check_opacity(opacity)
    image = read_image(path)
    return _outputs(segment_image(models, image, threshold, safe_stem(path)), opacity, models.device)


def rethreshold_ui(models: Models, seg: Segmentation | None, threshold: float, opacity: float):
    """Threshold slider: re-split the cached map (the segmenter does not run again)."""
    if seg is None:
        return (gr.skip(),) * 5
    threshold, opacity = check_threshold(threshold), check_opacity(opacity)
    if abs(threshold - seg.threshold) < 1e-9:
        return (gr.skip(),) * 5
    return _outputs(split(models, seg, threshold), opacity, models.device)


def opacity_ui(seg: Segmentation | None, opacity: float):
    """Opacity slider: redraw the overlay only."""
    if seg is None:
        return gr.skip()
    return seg.overlay(check_opacity(opacity))


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


def build(models: Models) -> None:
    """The Segment tab's components and events (call inside a ``gr.Tab``)."""
    # WebP: a 1024-pixel overlay encodes in ~40 ms (PNG: ~120 ms), which keeps the opacity slider smooth.
    overlay = gr.Image(
        label="Fruits found", type="pil", format="webp", interactive=False, height=360, elem_id="segment-overlay", render=False
    )
    summary = gr.Markdown(elem_id="segment-summary", render=False)
    table = gr.Dataframe(headers=TABLE_HEADERS, interactive=False, label="Fruits", elem_id="segment-table", render=False)
    mask_file = gr.File(label="Mask (PNG, white = fruit)", interactive=False, elem_id="segment-mask", render=False)
    state = gr.State(None, time_to_live=STATE_TTL_S)
    outputs = [overlay, summary, table, mask_file, state]

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
            run = user_errors("segmenting the image")(partial(segment_ui, models))
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
    image.clear(lambda: None, outputs=[state], api_visibility="private", queue=False)
    # Clicking an example loads it into the photo box, then segments it with the current sliders.
    dataset.load_input_event.then(run, inputs=inputs, outputs=outputs, api_visibility="private", concurrency_id="models")
    threshold.change(
        user_errors("re-thresholding")(partial(rethreshold_ui, models)),
        inputs=[state, threshold, opacity],
        outputs=outputs,
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
        concurrency_id="models",
    )
    opacity.change(
        user_errors("redrawing the overlay")(opacity_ui),
        inputs=[state, opacity],
        outputs=[overlay],
        trigger_mode="always_last",
        show_progress="hidden",
        api_visibility="private",
        concurrency_limit=None,
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
