"""``python -m fruitseg.bench segmenter``: the shipped segmenter against the baselines, same scenes, same run."""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
from PIL import Image

from fruitseg.bench.baselines import BASELINES
from fruitseg.bench.inputs import make_scenes, scene_banks
from fruitseg.bench.loading import load_model
from fruitseg.bench.timing import ratio, summarize
from fruitseg.predictors import Segmenter


def load_segmenter(device: str | None, log: Callable[[str], None] = print) -> Segmenter:
    """The shipped segmenter (``FRUITSEG_SEGMENTER`` or checkpoints/segmenter), or
    :class:`~fruitseg.bench.loading.ModelUnavailable`."""
    return load_model("segmenter", "FRUITSEG_SEGMENTER", lambda: Segmenter.load(device))


def bench_segmenter(
    segmenter: Segmenter | None = None,
    *,
    quick: bool = False,
    data: str | Path | None = None,
    backgrounds: str | Path | None = None,
    device: str | None = None,
    seed: int | None = None,
    sizes: dict[tuple[int, int], int] | None = None,
    scenes: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``Segmenter.predict`` vs GrabCut and Otsu on the same composite scenes, same run.

    ``sizes`` maps (H, W) to a number of scenes; by default 512x512 (``scenes`` of them,
    the headline) and fewer at 256x256, 1024x768 and 100x100. Without ``quick`` and with
    the shared data, the 512x512 scenes are the first ones of
    ``python -m fruitseg.evaluate segmenter`` (same fruits, backgrounds and seed).
    """
    from fruitseg.evaluate import EVAL_SEED

    segmenter = segmenter or load_segmenter(device, log)
    seed = EVAL_SEED if seed is None else seed
    fruits, bank, source = scene_banks(Path(data) if data else None, Path(backgrounds) if backgrounds else None, quick, log)
    if sizes is None:
        main = scenes or (3 if quick else 32)
        sizes = {(512, 512): main, (256, 256): 2 if quick else 8, (768, 1024): 1 if quick else 6, (100, 100): 2 if quick else 8}
    methods = {"segmenter": ("Segmenter.predict (shipped)", lambda image: segmenter.predict([Image.fromarray(image)])[0] >= 0.5)}
    if segmenter.refine_edges:
        unrefined = copy.copy(segmenter)
        unrefined.refine_edges = False
        methods["unrefined"] = (
            "same, without the edge refinement",
            lambda image: unrefined.predict([Image.fromarray(image)])[0] >= 0.5,
        )
    methods.update(BASELINES)
    results = []
    for size, count in sizes.items():
        batch = make_scenes(fruits, bank, count, seed, size)
        log(f"segmenter: {len(batch)} scenes at {size[1]}x{size[0]} (W x H)")
        for _, fn in methods.values():  # warm-up at this size (not timed)
            fn(batch[0].image)
        times: dict[str, list[float]] = {name: [] for name in methods}
        inter = {name: 0 for name in methods}
        union = {name: 0 for name in methods}
        per_scene: dict[str, list[float]] = {name: [] for name in methods}
        order = list(methods.items())
        for index, scene in enumerate(batch):
            truth = scene.mask.astype(bool)
            for name, (_, fn) in order if index % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                pred = fn(scene.image)
                times[name].append(time.perf_counter() - start)
                i, u = int((pred & truth).sum()), int((pred | truth).sum())
                inter[name] += i
                union[name] += u
                per_scene[name].append(i / u if u else 1.0)
        seg_time = statistics.fmean(times["segmenter"])
        seg_iou = inter["segmenter"] / max(union["segmenter"], 1)
        rows = {}
        for name, (label, _) in methods.items():
            iou = inter[name] / max(union[name], 1)
            stats = summarize(times[name])
            rows[name] = {
                "label": label,
                "iou": round(iou, 4),
                "mean_scene_iou": round(statistics.fmean(per_scene[name]), 4),
                "p50_ms": stats["p50_ms"],
                "p95_ms": stats["p95_ms"],
                "mean_ms": stats["mean_ms"],
                "time_vs_segmenter": ratio(statistics.fmean(times[name]), seg_time),
                "iou_vs_segmenter": ratio(iou, seg_iou, 3),
            }
        results.append({"size": f"{size[1]}x{size[0]}", "scenes": len(batch), "methods": rows})
    return {
        "device": str(segmenter.device),
        "threads": torch.get_num_threads(),
        "weights": segmenter.source.describe() if segmenter.source else "given model",
        "inference_path": segmenter.inference_path,
        "working_size": segmenter.model.image_size,
        "scenes": f"{source}; seed {seed}; scene i = make_scene(default_rng([seed, i]))",
        "iou": "fruit IoU over all scenes of a size (sum of intersections / sum of unions); prediction = probability >= 0.5",
        "sizes": results,
    }
