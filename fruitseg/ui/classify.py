"""Classify tab: name the fruit(s) in a photo.

Segment-then-classify (``FruitPipeline``): the segmenter finds each fruit, each is cut
out onto white (like the Fruits-360 training images) and classified. If the segmenter
finds no fruit, the whole image is classified instead, and the page says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from fruitseg.ui.common import Stopwatch, example_images, image_input, read_image, user_errors
from fruitseg.ui.models import Models
from fruitseg.ui.render import caption, fruit_json, label_dict, percent

THRESHOLD = 0.5  # fruit probability above which a pixel counts as fruit
TOP_K = 5
THUMBNAIL = 256
TABLE_HEADERS = ["#", "fruit", "confidence", "runner-up", "area"]


@dataclass
class FruitResult:
    label: str
    score: float
    top5: dict[str, float]
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 in pixels of the analysed image
    area_fraction: float
    cutout: Image.Image  # what the classifier saw


@dataclass
class ClassifyResult:
    top5: dict[str, float]  # the first fruit's (or the whole image's) top 5
    fruits: list[FruitResult] = field(default_factory=list)
    whole_image: bool = False  # True: the segmenter found no fruit; the whole image was classified
    ms: float = 0.0
    size: tuple[int, int] = (0, 0)  # (width, height) of the analysed image

    @property
    def label(self) -> str:
        return next(iter(self.top5))

    def to_json(self, device: str) -> dict[str, Any]:
        """The API's answer (plain JSON)."""
        return {
            "label": self.label,
            "confidences": self.top5,
            "fruits": [fruit_json(f) for f in self.fruits],
            "whole_image": self.whole_image,
            "image_size": list(self.size),
            "ms": round(self.ms, 1),
            "device": device,
        }


def classify_image(models: Models, image: Image.Image, threshold: float = THRESHOLD, top_k: int = TOP_K) -> ClassifyResult:
    """Every fruit in ``image`` (the segmenter's surest first) with its top-k; whole-image fallback when none."""
    with Stopwatch() as watch:
        analysis = models.pipeline.analyze(image, threshold=threshold, top_k=top_k)
        fruits = [
            FruitResult(f.label, float(f.score), label_dict(f.top5), tuple(map(int, f.box)), float(f.area_fraction), f.cutout)
            for f in analysis.fruits
        ]
        if fruits:
            top5, whole = fruits[0].top5, False
        else:
            top5, whole = label_dict(models.classifier.predict([image], top_k=top_k)[0]), True
    return ClassifyResult(top5, fruits, whole, watch.ms, image.size)


def fruits_table(result: ClassifyResult) -> pd.DataFrame:
    rows = []
    for i, fruit in enumerate(result.fruits, start=1):
        runner_up = list(fruit.top5.items())[1:2]
        rows.append(
            [
                i,
                fruit.label,
                percent(fruit.score),
                caption(*runner_up[0]) if runner_up else "",
                percent(fruit.area_fraction),
            ]
        )
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def status_markdown(result: ClassifyResult, device: str) -> str:
    best = f"**{result.label}** ({percent(result.top5[result.label])})"
    n = len(result.fruits)
    if result.whole_image:
        found = "The segmenter found no fruit, so the **whole image** was classified."
    elif n == 1:
        found = "1 fruit found; it was cut out and classified."
    else:
        found = f"**{n} fruits** found; the top 5 above are for the one the segmenter is surest of, each fruit is listed below."
    return f"{best} · {found}  \nTime: {result.ms:.0f} ms on {device}"


def thumbnail(image: Image.Image, side: int = THUMBNAIL) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side))
    return image


def classify_ui(models: Models, path: str | None):
    """Button / example handler: (top-5 dict, gallery update, table update, status markdown)."""
    image = read_image(path)
    result = classify_image(models, image)
    gallery = [(thumbnail(f.cutout), caption(f.label, f.score)) for f in result.fruits]
    show = bool(result.fruits)
    return (
        result.top5,
        gr.update(value=gallery, visible=show),
        gr.update(value=fruits_table(result), visible=show),
        status_markdown(result, models.device),
    )


def classify_api(models: Models, image: str | None) -> dict[str, Any]:
    """Classify every fruit in an image.

    Returns {"label", "confidences" (top 5 of the first fruit, the one the segmenter is surest of, or of the whole image when
    no fruit is found), "fruits" (one entry per fruit: label, score, confidences, box
    [x0, y0, x1, y1], area_fraction), "whole_image", "image_size", "ms", "device"}.
    """
    return classify_image(models, read_image(image)).to_json(models.device)


def build(models: Models) -> None:
    """The Classify tab's components and events (call inside a ``gr.Tab``)."""
    top5 = gr.Label(num_top_classes=TOP_K, label="Top 5 classes", elem_id="classify-label", render=False)
    status = gr.Markdown(elem_id="classify-status", render=False)
    gallery = gr.Gallery(
        label="Each fruit found (what the classifier saw)",
        columns=4,
        fit_columns=False,
        height=200,
        object_fit="contain",
        visible=False,
        elem_id="classify-gallery",
        render=False,
    )
    table = gr.Dataframe(
        headers=TABLE_HEADERS, interactive=False, visible=False, label="Fruits", elem_id="classify-table", render=False
    )
    outputs = [top5, gallery, table, status]
    run = user_errors("classifying the image")(partial(classify_ui, models))

    with gr.Row(equal_height=False):
        with gr.Column(scale=1):
            image = image_input(label="Photo (upload, webcam or paste)", height=320, elem_id="classify-image")
            button = gr.Button("Classify", variant="primary", elem_id="classify-button")
            examples = example_images()
            gr.Examples(
                examples=[[p] for p in examples],
                inputs=[image],
                outputs=outputs,
                fn=run,
                run_on_click=True,
                cache_examples=False,
                label="Examples (click one to classify it)",
                elem_id="classify-examples",
                examples_per_page=12,
                api_visibility="private",
            )
        with gr.Column(scale=1):
            for component in (top5, status, gallery, table):
                component.render()

    button.click(run, inputs=[image], outputs=outputs, api_visibility="private", concurrency_id="models")
    image.upload(run, inputs=[image], outputs=outputs, api_visibility="private", concurrency_id="models")

    # API: /classify(image) -> JSON, independent of the page's layout.
    api_out = gr.JSON(visible=False)
    api_button = gr.Button(visible=False)
    api_button.click(
        user_errors("classifying the image")(partial(classify_api, models)),
        inputs=[image],
        outputs=[api_out],
        api_name="classify",
        api_description=classify_api.__doc__,
        concurrency_id="models",
    )
