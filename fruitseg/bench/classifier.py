"""``python -m fruitseg.bench classifier``: the shipped inference path, every other path the
classifier could take here, a tuned float32 baseline and the plain way, in the same rounds."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

from fruitseg.bench.inputs import DEFAULT_DATA, FIXTURE_FRUITS, ROOT, fixture_fruit_items, heldout_items, open_rgb
from fruitseg.bench.loading import load_model
from fruitseg.bench.timing import interleaved, ratio, summarize
from fruitseg.predictors import PATH_DESCRIPTIONS, Classifier, classifier_paths, square_on_white, to_tensor

BASELINES = ("tuned_float32", "plain")


def plain_forward(model: torch.nn.Module, images: Sequence[Image.Image], device: torch.device) -> torch.Tensor:
    """The same weights the plain way: eager, NCHW float32, default grad mode (an autograd
    graph is built, as in a naive ``model(x)``), no autocast. Same preprocessing as shipped,
    then made NCHW-contiguous: ``to_tensor`` leaves the pixels in channels-last memory,
    which convolutions take as a hint to run in channels-last themselves."""
    x = to_tensor([square_on_white(image, model.image_size) for image in images], model)
    return model(x.to(device).contiguous())


def plain_logits(model: torch.nn.Module, images: Sequence[Image.Image], device: torch.device) -> np.ndarray:
    return plain_forward(model, images, device).detach().float().cpu().numpy()


def load_classifier(device: str | None) -> Classifier:
    """The shipped classifier (``FRUITSEG_CLASSIFIER`` or checkpoints/classifier), or
    :class:`~fruitseg.bench.loading.ModelUnavailable`."""
    return load_model("classifier", "FRUITSEG_CLASSIFIER", lambda: Classifier.load(device))


def bench_classifier(
    classifier: Classifier | None = None,
    *,
    quick: bool = False,
    data: str | Path | None = None,
    limit: int | None = None,
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Shipped ``Classifier.logits`` against the other paths and two baselines, same weights,
    same run, at batch 1 and 64.

    Rows: ``shipped`` (the path ``Classifier`` chose, ``inference_path``), each other path
    it could have taken on this device (``Classifier(path=name)``: ``winograd``, ``int8``,
    ``bfloat16`` ...), ``tuned_float32`` (BN folded, channels-last, inference_mode, float32:
    ``Classifier(path="float32")``) and ``plain`` (eager NCHW float32 in grad mode, BatchNorm
    unfolded); every row's speed as a ratio to both baselines.
    """
    classifier = classifier or load_classifier(device)
    model, dev = classifier.model, classifier.device
    others = [name for name in sorted(classifier_paths(model, dev)) if name not in (classifier.path, "float32")]
    contenders = {"shipped": classifier.logits, **{name: Classifier(model, dev, path=name).logits for name in others}}
    contenders["tuned_float32"] = Classifier(model, dev, path="float32").logits
    contenders["plain"] = lambda images: plain_logits(model, images, dev)
    if not torch.is_grad_enabled():
        raise RuntimeError("bench_classifier must run with grad mode on: that is the plain baseline")

    # ---- the top-1 check first (it also warms both paths up)
    data = Path(data) if data is not None else DEFAULT_DATA
    limit = (256 if quick else 0) if limit is None else limit
    if data.is_dir():
        items = heldout_items(data, classifier.class_names, limit)
        source = f"held-out validation frames of {data.name}/" + (" (evenly subsampled)" if limit else "")
        scored = True
    else:
        items = fixture_fruit_items()
        source = f"fixtures ({FIXTURE_FRUITS.relative_to(ROOT)})"
        scored = False
    log(f"classifier: checking top-1 on {len(items)} images ({source})")
    labels = np.array([item.label for item in items])
    fast_pred, plain_pred, max_diff = [], [], 0.0
    for start in range(0, len(items), 64):
        batch = [open_rgb(item.path) for item in items[start : start + 64]]
        a, b = classifier.logits(batch), plain_logits(model, batch, dev)
        fast_pred.append(a.argmax(1))
        plain_pred.append(b.argmax(1))
        max_diff = max(max_diff, float(np.abs(a - b).max()))
    fast_pred, plain_pred = np.concatenate(fast_pred), np.concatenate(plain_pred)
    accuracy: dict[str, Any] = {
        "source": source,
        "images": len(items),
        "agreement": round(float((fast_pred == plain_pred).mean()), 5),
        "max_abs_logit_diff": round(max_diff, 5),
    }
    if scored:
        accuracy["shipped_top1"] = round(float((fast_pred == labels).mean()), 5)
        accuracy["plain_top1"] = round(float((plain_pred == labels).mean()), 5)
    else:
        accuracy["shipped_classes"] = [classifier.class_names[i] for i in fast_pred]
        accuracy["plain_classes"] = [classifier.class_names[i] for i in plain_pred]

    # ---- speed: decoded PIL images -> numpy logits (preprocessing included, JPEG decode not)
    pool = [open_rgb(item.path) for item in items[:64]]
    while len(pool) < 64:
        pool = pool + pool
    pool = pool[:64]
    one = pool[:1]
    speed: dict[str, Any] = {}
    plans = {1: (4, 5, 3) if quick else (10, 30, 10), 64: (2, 1, 1) if quick else (6, 5, 2)}
    for batch_size, (rounds, per_round, warmup) in plans.items():
        images = one if batch_size == 1 else pool
        log(f"classifier: timing batch {batch_size} ({rounds} rounds x {per_round} calls per path, {len(contenders)} paths)")
        samples = interleaved(
            {name: (lambda fn=fn, images=images: fn(images)) for name, fn in contenders.items()}, rounds, per_round, warmup
        )
        summaries = {name: summarize(times, batch_size) for name, times in samples.items()}
        speed[f"batch{batch_size}"] = {
            **summaries,
            "speedup": ratio(summaries["plain"]["p50_ms"], summaries["shipped"]["p50_ms"]),
            "speedup_vs_tuned_float32": ratio(summaries["tuned_float32"]["p50_ms"], summaries["shipped"]["p50_ms"]),
            "ratios": {name: {f"vs_{base}": ratio(summaries[base]["p50_ms"], summaries[name]["p50_ms"]) for base in BASELINES}
                       for name in contenders},
        }
    return {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "inference_path": classifier.inference_path,
        "path": classifier.path,
        "paths": {"shipped": f"{classifier.path}: {PATH_DESCRIPTIONS[classifier.path]}",
                  **{name: PATH_DESCRIPTIONS[name] for name in others},
                  "tuned_float32": PATH_DESCRIPTIONS["float32"],
                  "plain": "eager, NCHW float32, grad mode, BatchNorm unfolded"},
        "weights": classifier.source.describe() if classifier.source else "given model",
        "timed": "decoded PIL images -> numpy logits (preprocessing included, file decoding excluded)",
        **speed,
        "accuracy": accuracy,
    }
