"""``python -m fruitseg.bench photo``: the photo classifier and the pipeline it heads, on real photos.

Two timings, each interleaved in the same rounds with its baselines:

* the photo classifier at batch 1 (a 1024x768 photo's fruit crop -> numpy logits, resize
  included): the shipped ``PhotoClassifier.logits`` (BatchNorm folded, channels-last,
  ``inference_mode``) against the same weights unfolded (channels-last, ``inference_mode``:
  what folding adds) and the plain way (eager, NCHW, grad mode);
* a one-fruit 1024x768 photo through segment-then-classify with the photo classifier
  (``FruitPipeline.analyze``: segmenter, splitting, every fruit's crop and the whole photo
  classified) against the strongest simple way to name a photo: the photo classifier on
  the whole photo alone, without segmenting (what the pipeline costs on top).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from fruitseg.bench.inputs import ROOT
from fruitseg.bench.loading import load_model
from fruitseg.bench.segmenter import load_segmenter
from fruitseg.bench.timing import interleaved, ratio, summarize
from fruitseg.pipeline import FruitPipeline
from fruitseg.predictors import PhotoClassifier

PHOTOS = ROOT / "tests" / "fixtures" / "photos"


def one_fruit_photo(size: tuple[int, int] = (1024, 768)) -> Image.Image:
    """The apple-in-hand fixture photo (one fruit) resized to ``size``."""
    with Image.open(next(PHOTOS.glob("apple/*.jpg"))) as image:
        return image.convert("RGB").resize(size, Image.BICUBIC)


def plain_logits(classifier: PhotoClassifier, images: list[Image.Image]) -> np.ndarray:
    """The same weights and preprocessing the plain way: NCHW memory, grad mode on."""
    return classifier.model(classifier.preprocess(images).contiguous()).detach().float().cpu().numpy()


@torch.inference_mode()
def unfolded_logits(classifier: PhotoClassifier, images: list[Image.Image]) -> np.ndarray:
    """The shipped path without the BatchNorm folding: channels-last, inference_mode."""
    return classifier.model(classifier.preprocess(images)).float().cpu().numpy()


def load_photo_classifier(device: str | None) -> PhotoClassifier:
    """The shipped photo classifier (``FRUITSEG_PHOTO_CLASSIFIER`` or checkpoints/photo-classifier),
    or :class:`~fruitseg.bench.loading.ModelUnavailable`."""
    return load_model("photo classifier", "FRUITSEG_PHOTO_CLASSIFIER", lambda: PhotoClassifier.load(device))


def bench_photo(quick: bool = False, device: str | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    classifier = load_photo_classifier(device)
    segmenter = load_segmenter(device)
    if not torch.is_grad_enabled():
        raise RuntimeError("bench_photo must run with grad mode on: that is the plain baseline")
    pipeline = FruitPipeline(classifier, segmenter)
    photo = one_fruit_photo()
    analysis = pipeline.analyze(photo)
    crop = analysis.fruits[0].cutout if analysis.fruits else photo
    shipped, plain = classifier.logits([crop]), plain_logits(classifier, [crop])
    agree = shipped.argmax(1) == plain.argmax(1)
    rounds, per_round, warmup = (3, 3, 2) if quick else (10, 10, 5)

    log(f"photo: timing the photo classifier at batch 1 ({rounds} rounds x {per_round} calls per path)")
    paths = {"shipped": classifier.logits, "unfolded": lambda images: unfolded_logits(classifier, images),
             "plain": lambda images: plain_logits(classifier, images)}
    samples = interleaved({name: (lambda fn=fn: fn([crop])) for name, fn in paths.items()}, rounds, per_round, warmup)
    batch1 = {name: summarize(times) for name, times in samples.items()}
    batch1["speedup"] = ratio(batch1["plain"]["p50_ms"], batch1["shipped"]["p50_ms"])
    batch1["speedup_vs_unfolded"] = ratio(batch1["unfolded"]["p50_ms"], batch1["shipped"]["p50_ms"])

    log(f"photo: timing a one-fruit {photo.width}x{photo.height} photo through the pipeline")
    samples = interleaved({"pipeline": lambda: pipeline.analyze(photo), "whole_photo": lambda: classifier.predict([photo])},
                          rounds, per_round, warmup)
    photo_times = {name: summarize(times) for name, times in samples.items()}
    photo_times["pipeline_over_whole_photo"] = ratio(photo_times["pipeline"]["p50_ms"], photo_times["whole_photo"]["p50_ms"])
    return {
        "device": str(classifier.device),
        "threads": torch.get_num_threads(),
        "weights": classifier.source.describe() if classifier.source else "given model",
        "image_size": classifier.model.image_size,
        "photo": f"{photo.width}x{photo.height}, {len(analysis.fruits)} fruit(s) found, answer {analysis.answer.kind if analysis.answer else '-'}",
        "inference_path": classifier.inference_path,
        "argmax_agreement": bool(agree.all()),
        "max_abs_logit_diff": round(float(np.abs(shipped - plain).max()), 6),
        "batch1": batch1,
        "one_fruit_photo": photo_times,
    }
