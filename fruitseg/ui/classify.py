"""Classify tab: name the fruit(s) in a photo, by kind first, with both classifiers side by side.

The segmenter runs once; then two classifiers answer through ``FruitPipeline``:

* the **photo classifier** (ImageNet EfficientNet-Lite0, fine-tuned on photo-like scenes and
  real grocery photos) sees each fruit in its surroundings and the whole photo; it is the
  headline, because it is the one that works on ordinary photos
  (``python -m fruitseg.evaluate kinds``);
* the seed's **Fruits-360 CNN** sees each fruit cut out onto white, as in its training frames
  (the whole image when the segmenter finds no fruit); on a studio photo on plain white,
  Fruits-360's own setting (:func:`fruitseg.pipeline.studio_photo`), its answer is the headline.

Each answers with kinds ("Apple", the summed probability of its varieties) before classes
("Apple Golden 1"). Without a photo classifier (``Models(classifier, segmenter)``) the CNN's
answer is the headline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

import gradio as gr
import pandas as pd
from PIL import Image

from fruitseg.instances import split_fruits
from fruitseg.pipeline import Fruit, studio_photo
from fruitseg.predictors import Prediction
from fruitseg.ui.common import Stopwatch, example_images, image_input, read_image, user_errors
from fruitseg.ui.state import Models
from fruitseg.ui.render import caption, label_dict, percent

THRESHOLD = 0.5  # fruit probability above which a pixel counts as fruit
TOP_K = 5
THUMBNAIL = 256
TABLE_HEADERS = ["#", "kind", "likely varieties", "Fruits-360 CNN says", "area"]
TABLE_WIDTHS = ["7%", "20%", "38%", "23%", "12%"]
PHOTO_MODEL, CNN_MODEL = "photo classifier", "Fruits-360 CNN"


@dataclass
class ClassifyResult:
    answer: Prediction  # the headline
    model: str  # which classifier gave it: PHOTO_MODEL or CNN_MODEL
    cnn: Prediction  # the Fruits-360 CNN's answer (its surest fruit, or the whole image)
    photo: Prediction | None = None  # the photo classifier's answer (Analysis.answer), when there is one
    fruits: list[Fruit] = field(default_factory=list)  # as the headline classifier saw them
    cnn_fruits: list[Fruit] = field(default_factory=list)  # the same fruits, as the CNN saw them
    whole_image: bool = False  # True: the segmenter found no fruit
    ms: float = 0.0
    size: tuple[int, int] = (0, 0)  # (width, height) of the analysed image

    @property
    def kind(self) -> str:
        return self.answer.kind

    @property
    def label(self) -> str:
        return self.answer.label

    def to_json(self, device: str) -> dict[str, Any]:
        """The API's answer (plain JSON)."""
        return {
            "kind": self.kind,
            "kinds": label_dict(self.answer.kinds),
            "varieties": label_dict(self.answer.varieties()),
            "label": self.label,
            "confidences": label_dict(self.answer.classes),
            "model": self.model,
            "fruits_360_cnn": {"kind": self.cnn.kind, "label": self.cnn.label, "confidences": label_dict(self.cnn.classes)},
            "fruits": [
                {
                    "kind": f.prediction.kind,
                    "label": f.prediction.label,
                    "score": f.prediction.score,
                    "confidences": label_dict(f.prediction.classes),
                    "fruits_360_cnn_label": cnn.label,
                    "box": list(map(int, f.box)),
                    "area_fraction": float(f.area_fraction),
                }
                for f, cnn in zip(self.fruits, self.cnn_fruits)
            ],
            "whole_image": self.whole_image,
            "image_size": list(self.size),
            "ms": round(self.ms, 1),
            "device": device,
        }


def classify_image(models: Models, image: Image.Image, threshold: float = THRESHOLD, top_k: int = TOP_K) -> ClassifyResult:
    """Both classifiers' answers for ``image``, from one segmentation; the photo classifier's is the
    headline, except on a studio photo on white, where the Fruits-360 CNN's is."""
    with Stopwatch() as watch:
        probability = models.pipeline.segment(image)
        regions = split_fruits(probability, threshold=threshold)  # once, for both classifiers
        cnn = models.pipeline.analyze(image, threshold=threshold, top_k=top_k, probability=probability, regions=regions)
        cnn_answer = cnn.answer or models.classifier.predict([image], top_k=top_k)[0]
        photo = None
        if models.photo_pipeline is not None:
            photo = models.photo_pipeline.analyze(image, top_k=top_k, probability=probability, regions=regions)
        if photo is not None and not studio_photo(image):
            fruits, answer, model = photo.fruits, photo.answer, PHOTO_MODEL
        else:
            fruits, answer, model = cnn.fruits, cnn_answer, CNN_MODEL
    return ClassifyResult(answer, model, cnn_answer, photo.answer if photo else None, fruits, cnn.fruits, not cnn.fruits,
                          watch.ms, image.size)


def varieties_text(prediction: Prediction, count: int = 3) -> str:
    return ", ".join(caption(name, p) for name, p in prediction.varieties()[:count])


def fruits_table(result: ClassifyResult) -> pd.DataFrame:
    rows = [
        [i, caption(f.kind, f.prediction.kind_score), varieties_text(f.prediction), caption(cnn.label, cnn.score),
         percent(f.area_fraction)]
        for i, (f, cnn) in enumerate(zip(result.fruits, result.cnn_fruits), start=1)
    ]
    return pd.DataFrame(rows, columns=TABLE_HEADERS)


def status_markdown(result: ClassifyResult, device: str) -> str:
    answer = result.answer
    best = f"**{answer.kind}** ({percent(answer.kind_score)}, {result.model})"
    likely = varieties_text(answer)
    n = len(result.fruits)
    if result.whole_image:
        found = "The segmenter found no single fruit, so the **whole image** was classified."
    elif n == 1:
        found = "1 fruit found."
    else:
        found = f"**{n} fruits** found, each listed below."
    if result.model == PHOTO_MODEL:
        other = f"The Fruits-360 CNN says **{result.cnn.kind}** ({caption(result.cnn.label, result.cnn.score)})."
    else:
        best += " on a studio photo on white, its own setting" if result.photo else ""
        other = f"The photo classifier says **{result.photo.kind}** ({percent(result.photo.kind_score)})." if result.photo else ""
    return f"{best} · likely {likely}  \n{found} {other}  \nTime: {result.ms:.0f} ms on {device}"


def thumbnail(image: Image.Image, side: int = THUMBNAIL) -> Image.Image:
    image = image.copy()
    image.thumbnail((side, side))
    return image


def classify_ui(models: Models, path: str | None):
    """Button / example handler: (kinds dict, CNN classes dict, gallery update, table update, status markdown)."""
    image = read_image(path)
    result = classify_image(models, image)
    gallery = [(thumbnail(f.cutout), caption(f.kind, f.prediction.kind_score)) for f in result.fruits]
    show = bool(result.fruits)
    return (
        label_dict((result.photo or result.answer).kinds),
        label_dict(result.cnn.classes),
        gr.update(value=gallery, visible=show),
        gr.update(value=fruits_table(result), visible=show),
        status_markdown(result, models.device),
    )


def classify_api(models: Models, image: str | None) -> dict[str, Any]:
    """Classify every fruit in an image, by kind first.

    Returns {"kind" (the headline: the photo classifier's surest kind among the fruits found
    and the whole photo; on a studio photo on plain white, the Fruits-360 CNN's), "kinds" (top 5 kinds, each the summed probability of its classes),
    "varieties" (the likely classes of that kind), "label" and "confidences" (top 5 Fruits-360
    classes of the same answer), "model", "fruits_360_cnn" (the seed CNN's kind, label and
    top 5 for its surest cut-out), "fruits" (one entry per fruit: kind, label, score,
    confidences, fruits_360_cnn_label, box [x0, y0, x1, y1], area_fraction), "whole_image"
    (no fruit found), "image_size", "ms", "device"}.
    """
    return classify_image(models, read_image(image)).to_json(models.device)


def build(models: Models) -> None:
    """The Classify tab's components and events (call inside a ``gr.Tab``)."""
    by = PHOTO_MODEL if models.photo_classifier is not None else CNN_MODEL
    kinds = gr.Label(num_top_classes=TOP_K, label=f"Kind ({by})", elem_id="classify-label", render=False)
    cnn_classes = gr.Label(num_top_classes=TOP_K, label="Class (Fruits-360 CNN)", elem_id="classify-cnn",
                           render=False)
    status = gr.Markdown(elem_id="classify-status", render=False)
    gallery = gr.Gallery(
        label="Each fruit found (what the classifier that answers saw)",
        columns=4,
        fit_columns=False,
        height=200,
        object_fit="contain",
        visible=False,
        elem_id="classify-gallery",
        render=False,
    )
    table = gr.Dataframe(
        headers=TABLE_HEADERS, interactive=False, visible=False, label="Fruits", elem_id="classify-table", render=False,
        wrap=True, column_widths=TABLE_WIDTHS,  # long varieties wrap in their cells: no column hidden off the side
    )
    outputs = [kinds, cnn_classes, gallery, table, status]
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
                examples_per_page=16,
                api_visibility="private",
            )
        with gr.Column(scale=1):
            status.render()
            with gr.Row():
                kinds.render()
                cnn_classes.render()
            gallery.render()
            table.render()

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
