"""Benchmarks: ``python -m fruitseg.bench [classifier|segmenter|app|load|all] [--json FILE] [--markdown FILE] [--quick]``.

classifier  images/s at batch 1 and 64, p50/p95 latency at batch 1, of the shipped path
            (``Classifier.logits``: BatchNorm folded, channels-last, inference_mode, bf16
            autocast where supported) against the same weights run the plain way (eager
            model, NCHW float32, default grad mode), and the top-1 of both on held-out
            frames (or agreement only on the bundled fixtures).
segmenter   latency of ``Segmenter.predict`` at several sizes, and IoU against the exact
            masks of composite scenes, next to GrabCut and Otsu baselines on the same scenes.
app         the real app: round trip of each endpoint through ``gradio_client`` against the
            direct Python call, cold start of ``python app.py`` to its first answer, peak RSS.
load        concurrent clients on /classify and /lmd against an ``app.py`` subprocess:
            errors, latency, throughput and RSS growth of the server.

Every speed claim is a ratio against a baseline measured in the same process and run,
in interleaved rounds (A B B A ...) so that background load hits both sides alike.
Absolute times depend on the machine and its load; the JSON records both (``machine``).
The markdown report is printed to stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image

from fruitseg.predictors import Classifier, Segmenter, square_on_white, to_tensor

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FIXTURE_FRUITS = FIXTURES / "fruits"
FIXTURE_BACKGROUNDS = FIXTURES / "backgrounds"
SHARED = ROOT.parent / "shared" / "data"
DEFAULT_DATA = SHARED / "fruits360" / "Training"
DEFAULT_BACKGROUNDS = SHARED / "backgrounds"
CACHE_DIR = ROOT / "runs" / "bench"
PARTS = ("classifier", "segmenter", "app", "load")

# --------------------------------------------------------------------------- measuring


def percentile(samples: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples, dtype=np.float64), q)) if len(samples) else float("nan")


def summarize(seconds: Sequence[float], items_per_call: int = 1) -> dict[str, float]:
    """p50/p95/mean in milliseconds and items/s (from the median) of per-call times."""
    p50 = percentile(seconds, 50)
    return {
        "n": len(seconds),
        "p50_ms": round(p50 * 1e3, 3),
        "p95_ms": round(percentile(seconds, 95) * 1e3, 3),
        "mean_ms": round(statistics.fmean(seconds) * 1e3, 3),
        "per_s": round(items_per_call / p50, 2) if p50 > 0 else float("inf"),
    }


def interleaved(fns: dict[str, Callable[[], Any]], rounds: int, per_round: int, warmup: int = 2) -> dict[str, list[float]]:
    """Per-call seconds of each function, measured in alternating rounds (A B, B A, ...).

    Background load then lands on every contender alike, which keeps ratios honest on a
    busy machine even when absolute times are not.
    """
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    items = list(fns.items())
    for r in range(rounds):
        for name, fn in items if r % 2 == 0 else items[::-1]:
            for _ in range(per_round):
                start = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - start)
    return samples


def ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    """numerator / denominator to ``digits`` significant digits; None when undefined."""
    if not denominator or denominator <= 0 or not math.isfinite(numerator):
        return None
    value = numerator / denominator
    return float(f"{value:.{digits}g}")


# --------------------------------------------------------------------------- machine


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_bf16": bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
    }
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["physical_cores"] = psutil.cpu_count(logical=False)
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["gradio"] = version("gradio")
    return info


# --------------------------------------------------------------------------- memory


def rss_bytes(pid: int | None = None) -> int | None:
    """Resident set size of a process (this one by default), or None if unknown."""
    pid = os.getpid() if pid is None else pid
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        pass
    except Exception:  # the process is gone
        return None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return None


def tree_rss_bytes(pid: int) -> int | None:
    """RSS of a process plus its children (``python app.py`` may spawn helpers)."""
    try:
        import psutil

        parent = psutil.Process(pid)
        total = parent.memory_info().rss
        for child in parent.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total
    except ImportError:
        return rss_bytes(pid)
    except Exception:
        return None


def peak_rss_bytes() -> int | None:
    """Peak RSS of this process so far (kernel-tracked high-water mark)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(Exception):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return None


class RssSampler:
    """Samples a process's RSS every ``interval`` seconds in a thread; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            value = tree_rss_bytes(self.pid)
            if value:
                self.peak = max(self.peak, value)
                self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


# --------------------------------------------------------------------------- images


def fixture_fruit_items():
    """The bundled fruit fixtures as FruitImage items (class from the file name)."""
    from fruitseg.data.scenes import flat_fruit_items

    return flat_fruit_items(FIXTURE_FRUITS)


def open_rgb(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def heldout_items(data: Path, class_names: Sequence[str], limit: int) -> list:
    """Held-out validation frames of a Fruits-360 folder, evenly subsampled to ``limit``."""
    from fruitseg.data.fruits360 import list_images, split_by_frame_blocks

    items = split_by_frame_blocks(list_images(data, tuple(class_names)))[1]
    if limit and len(items) > limit:
        items = items[:: max(1, len(items) // limit)][:limit]
    return items


# --------------------------------------------------------------------------- classifier


def plain_forward(model: torch.nn.Module, images: Sequence[Image.Image], device: torch.device) -> torch.Tensor:
    """The same weights the plain way: eager, NCHW float32, default grad mode (an autograd
    graph is built, as in a naive ``model(x)``), no autocast. Same preprocessing as shipped."""
    x = to_tensor([square_on_white(image, model.image_size) for image in images], model.mean, model.std).to(device)
    return model(x)


def plain_logits(model: torch.nn.Module, images: Sequence[Image.Image], device: torch.device) -> np.ndarray:
    return plain_forward(model, images, device).detach().float().cpu().numpy()


def load_classifier(device: str | None) -> Classifier:
    return Classifier.load(device)


def bench_classifier(
    classifier: Classifier | None = None,
    *,
    quick: bool = False,
    data: str | Path | None = None,
    limit: int | None = None,
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Shipped ``Classifier.logits`` vs the plain eager float32 model, same weights, same run."""
    classifier = classifier or load_classifier(device)
    model, dev = classifier.model, classifier.device
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
        log(f"classifier: timing batch {batch_size} ({rounds} rounds x {per_round} calls per path)")
        samples = interleaved(
            {"shipped": lambda: classifier.logits(images), "plain": lambda: plain_logits(model, images, dev)},
            rounds, per_round, warmup,
        )
        shipped, plain = summarize(samples["shipped"], batch_size), summarize(samples["plain"], batch_size)
        speed[f"batch{batch_size}"] = {
            "shipped": shipped,
            "plain": plain,
            "speedup": ratio(plain["p50_ms"], shipped["p50_ms"]),
        }
    return {
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "autocast": str(classifier.amp_dtype).replace("torch.", "") if classifier.amp_dtype else "off (float32)",
        "weights": classifier.source.describe() if classifier.source else "given model",
        "timed": "decoded PIL images -> numpy logits (preprocessing included, file decoding excluded)",
        **speed,
        "accuracy": accuracy,
    }


# --------------------------------------------------------------------------- segmenter


def load_segmenter(device: str | None, log: Callable[[str], None] = print) -> Segmenter:
    """The shipped segmenter; if no weights exist yet, an untrained ``light`` model (flagged)."""
    try:
        return Segmenter.load(device)
    except Exception as error:  # no checkpoint yet (e.g. while it trains)
        from fruitseg.hub import select_device
        from fruitseg.models import FCNTransformerNet

        log(f"segmenter: no weights ({type(error).__name__}: {str(error).splitlines()[0][:120]}); using an UNTRAINED light model")
        dev = torch.device(device) if device is not None else select_device()
        torch.manual_seed(0)
        model = FCNTransformerNet.from_preset("light")
        segmenter = Segmenter(model, dev, None)
        segmenter.untrained = True
        return segmenter


def scene_banks(data: Path | None, backgrounds: Path | None, quick: bool, log: Callable[[str], None] = print):
    """(FruitBank, BackgroundBank, description): held-out Fruits-360 frames and held-out
    background photos when they exist, else the bundled fixtures."""
    from fruitseg.data.scenes import BackgroundBank, FruitBank, split_backgrounds

    data = Path(data) if data is not None else DEFAULT_DATA
    backgrounds = Path(backgrounds) if backgrounds is not None else DEFAULT_BACKGROUNDS
    if data.is_dir() and backgrounds.is_dir():
        from fruitseg.data.fruits360 import list_images, split_by_frame_blocks

        items = split_by_frame_blocks(list_images(data))[1]
        if quick:  # one held-out frame per class and rotation is plenty for a few scenes
            seen: dict = {}
            for item in items:
                seen.setdefault((item.label, item.rotation), item)
            items = list(seen.values())
        photos = split_backgrounds(backgrounds)[1]
        log(f"segmenter: fruit bank of {len(items)} held-out frames, {len(photos)} held-out backgrounds")
        cache = CACHE_DIR / ("fruits_val_quick.npz" if quick else "fruits_val.npz")
        fruits = FruitBank.from_items(items, cache=cache, progress=False)
        desc = f"held-out Fruits-360 frames ({len(fruits)}) on held-out backgrounds ({len(photos)} photos + procedural)"
        return fruits, BackgroundBank(photos), desc
    fruits = FruitBank.from_folder(FIXTURE_FRUITS)
    desc = f"fixtures: {len(fruits)} fruits on {FIXTURE_BACKGROUNDS.relative_to(ROOT)} + procedural backgrounds"
    return fruits, BackgroundBank(FIXTURE_BACKGROUNDS), desc


def make_scenes(fruits, backgrounds, count: int, seed: int, size: tuple[int, int]) -> list:
    """Scene i is ``make_scene(default_rng([seed, i]), ..., size=(H, W))``, as in
    :func:`fruitseg.evaluate.validation_scenes`."""
    from fruitseg.data.scenes import make_scene

    return [make_scene(np.random.default_rng([seed, i]), fruits, backgrounds, size) for i in range(count)]


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
    untrained = bool(getattr(segmenter, "untrained", False))
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
        "weights": "UNTRAINED (random init; no segmenter weights found)" if untrained else segmenter.source.describe() if segmenter.source else "given model",
        "trained": not untrained,
        "working_size": segmenter.model.image_size,
        "scenes": f"{source}; seed {seed}; scene i = make_scene(default_rng([seed, i]))",
        "iou": "fruit IoU over all scenes of a size (sum of intersections / sum of unions); prediction = probability >= 0.5",
        "sizes": results,
    }


# --------------------------------------------------------------------------- markdown


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def _threads(n: int) -> str:
    return f"{n} thread" + ("" if n == 1 else "s")


def _x(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}x"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown_machine(m: dict[str, Any]) -> str:
    device = m["device"] + (f" ({m['gpu']})" if m.get("gpu") else "")
    load = m.get("load_average_at_start")
    return (
        f"Machine: {m['cpu']}, {m['usable_cores']} usable cores, {m.get('memory_gib') or '?'} GiB RAM; "
        f"torch {m['torch']}, {_threads(m['torch_threads'])}, device {device}"
        + (f"; load average at start {load[0]:.2f}" if load else "")
        + "."
    )


def markdown_classifier(r: dict[str, Any]) -> str:
    b1, b64, acc = r["batch1"], r["batch64"], r["accuracy"]
    rows = [
        [
            "Shipped (`Classifier.logits`: BN folded, channels-last, inference_mode, autocast " + r["autocast"] + ")",
            _fmt(b1["shipped"]["p50_ms"], 2), _fmt(b1["shipped"]["p95_ms"], 2), _fmt(b1["shipped"]["per_s"], 0), _fmt(b64["shipped"]["per_s"], 0),
        ],
        [
            "Plain (eager, NCHW float32, grad mode)",
            _fmt(b1["plain"]["p50_ms"], 2), _fmt(b1["plain"]["p95_ms"], 2), _fmt(b1["plain"]["per_s"], 0), _fmt(b64["plain"]["per_s"], 0),
        ],
        ["**Speed-up (plain / shipped)**", f"**{_x(b1['speedup'])}**", "", f"**{_x(b1['speedup'])}**", f"**{_x(b64['speedup'])}**"],
    ]
    out = [
        "### Classifier",
        "",
        _table(["Path", "batch 1 p50 (ms)", "batch 1 p95 (ms)", "batch 1 images/s", "batch 64 images/s"], rows),
        "",
        f"Timed: {r['timed']}; {_threads(r['threads'])} on {r['device']}; images/s from the median call; "
        "calls of both paths interleaved in alternating rounds.",
    ]
    if "shipped_top1" in acc:
        out.append(
            f"Top-1 on {acc['images']} {acc['source']}: shipped {acc['shipped_top1']:.2%}, plain {acc['plain_top1']:.2%}; "
            f"argmax agreement {acc['agreement']:.2%} (max |logit difference| {acc['max_abs_logit_diff']:.3g})."
        )
    else:
        out.append(
            f"Argmax agreement on {acc['images']} {acc['source']}: {acc['agreement']:.2%} "
            f"(max |logit difference| {acc['max_abs_logit_diff']:.3g})."
        )
    return "\n".join(out)


def markdown_segmenter(r: dict[str, Any]) -> str:
    out = ["### Segmenter", ""]
    if not r["trained"]:
        out += ["**No segmenter weights were found: the segmenter rows are an untrained model (timing only, IoU meaningless).**", ""]
    rows = []
    for entry in r["sizes"]:
        for name, m in entry["methods"].items():
            rows.append([
                f"{entry['size']} ({entry['scenes']})" if name == "segmenter" else "",
                m["label"],
                _fmt(m["iou"], 3),
                _fmt(m["p50_ms"], 1),
                _fmt(m["p95_ms"], 1),
                _fmt(m["mean_ms"], 1),
                "1x" if name == "segmenter" else _x(m["time_vs_segmenter"]),
            ])
    out.append(_table(["Size (scenes)", "Method", "fruit IoU", "p50 (ms)", "p95 (ms)", "mean (ms)", "time vs segmenter"], rows))
    out += [
        "",
        f"Scenes: {r['scenes']}. IoU: {r['iou']}. Segmenter weights: {r['weights']}; working size {r['working_size']} px "
        f"(longer side); {_threads(r['threads'])} on {r['device']}. Times include the conversion to a PIL image and the "
        "resize back to the scene size; the Otsu variants blur 5x5 first and take as foreground the side that touches "
        "the image border less.",
    ]
    return "\n".join(out)


def markdown_app(r: dict[str, Any]) -> str:
    rows = []
    for name, e in r["endpoints"].items():
        rows.append([
            f"`{name}`",
            _fmt(e["server"]["p50_ms"], 1), _fmt(e["server"]["p95_ms"], 1),
            _fmt(e["direct"]["p50_ms"], 1), _fmt(e["direct"]["p95_ms"], 1),
            f"{e['overhead_ratio']:.2f}x", _fmt(e["overhead_ms"], 1),
        ])
    cold = r.get("cold_start", {})
    out = [
        "### App (Gradio server)",
        "",
        *(["**No segmenter weights were found: an untrained stand-in segmenter served these requests.**", ""] if not r.get("segmenter_trained", True) else []),
        _table(["Endpoint", "client p50 (ms)", "client p95 (ms)", "direct p50 (ms)", "direct p95 (ms)", "client / direct", "overhead p50 (ms)"], rows),
        "",
        f"{r['calls']} calls per endpoint through `gradio_client` against an in-process `launch()`, interleaved with the "
        "same function called directly in Python.",
    ]
    if cold:
        if cold.get("error"):
            out.append(f"Cold start of `python app.py`: failed ({cold['error']}).")
        else:
            out.append(
                f"Cold start of `python app.py` to the first /classify answer: {cold['seconds']:.1f} s "
                f"(server up after {cold['server_up_s']:.1f} s); peak RSS of that server {_fmt(cold['server_peak_rss_mib'])} MiB "
                f"(first answer {cold['first_request_s']:.2f} s)."
            )
    out.append(f"Peak RSS of the bench process: {_fmt(r.get('bench_peak_rss_mib'))} MiB.")
    return "\n".join(out)


def markdown_load(r: dict[str, Any]) -> str:
    rows = []
    for name, e in r["endpoints"].items():
        rows.append([
            f"`{name}`", e["requests"], e["errors"], _fmt(e["p50_ms"], 1), _fmt(e["p95_ms"], 1), _fmt(e["throughput_per_s"], 2),
            _fmt(e["rss_early_mib"]), _fmt(e["rss_late_mib"]), f"{e['rss_growth_pct']:+.1f}%" if e["rss_growth_pct"] is not None else "-",
        ])
    out = [
        "### Load",
        "",
        *(["**No segmenter weights were found: an untrained stand-in segmenter served these requests.**", ""] if not r.get("segmenter_trained", True) else []),
        _table(["Endpoint", "requests", "errors", "p50 (ms)", "p95 (ms)", "requests/s", "server RSS early (MiB)", "server RSS late (MiB)", "RSS growth"], rows),
        "",
        f"{r['clients']} concurrent clients (threads, one `gradio_client.Client` each) x {r['requests_per_client']} requests, "
        f"against `python app.py` in a subprocess; RSS sampled at requests ~{r['rss_marks'][0]} and ~{r['rss_marks'][1]} "
        f"of each run. Pass: 0 errors and RSS growth < {r['max_growth_pct']:.0f}%: **{'PASS' if r['passed'] else 'FAIL'}**.",
    ]
    return "\n".join(out)


MARKDOWN = {"classifier": markdown_classifier, "segmenter": markdown_segmenter, "app": markdown_app, "load": markdown_load}


def clean(value: Any) -> Any:
    """``value`` with NaN / infinity replaced by None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    return value


def to_markdown(results: dict[str, Any]) -> str:
    sections = ["## Performance", ""]
    if "machine" in results:
        sections += [markdown_machine(results["machine"]), ""]
    for part in PARTS:
        if part in results:
            if "error" in results[part]:
                sections += [f"### {part.title()}", "", f"Not measured: {results[part]['error']}", ""]
            else:
                sections += [MARKDOWN[part](results[part]), ""]
    return "\n".join(sections).rstrip() + "\n"


# --------------------------------------------------------------------------- app


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def untrained_segmenter_dir() -> Path:
    """A folder with an untrained ``light`` segmenter (config.json + model.safetensors).

    Only used while ``checkpoints/segmenter`` does not exist yet, so that the app can start
    (for timing and load tests, never for IoU); the reports say so.
    """
    from fruitseg.models import FCNTransformerNet

    folder = CACHE_DIR / "untrained_segmenter"
    if not (folder / "model.safetensors").exists():
        torch.manual_seed(0)
        FCNTransformerNet.from_preset("light").save_pretrained(folder)
    return folder


def segmenter_env() -> dict[str, str]:
    """Environment for an app subprocess: the untrained stand-in when no weights exist."""
    from fruitseg.hub import CHECKPOINTS

    if os.environ.get("FRUITSEG_SEGMENTER") or (CHECKPOINTS / "segmenter" / "model.safetensors").exists():
        return {}
    return {"FRUITSEG_SEGMENTER": str(untrained_segmenter_dir())}


def bench_models(device: str | None = None, log: Callable[[str], None] = print):
    """The app's ``Models``: the shipped weights, or the untrained segmenter stand-in (flagged)."""
    from fruitseg.ui.models import Models

    segmenter = load_segmenter(device, log)
    return Models(Classifier.load(device), segmenter), bool(getattr(segmenter, "untrained", False))


def bench_scene_file(folder: Path, size: tuple[int, int] = (512, 512), seed: int = 7) -> Path:
    """A deterministic composite scene from the bundled fixtures, written as a JPEG."""
    from fruitseg.data.scenes import BackgroundBank, FruitBank, make_scene

    scene = make_scene(np.random.default_rng(seed), FruitBank.from_folder(FIXTURE_FRUITS), BackgroundBank(FIXTURE_BACKGROUNDS), size, max_fruits=4)
    path = folder / f"scene_{size[1]}x{size[0]}.jpg"
    Image.fromarray(scene.image).save(path, quality=92)
    return path


LMD_ARGS = dict(
    student_logits=[2.0, 0.5, -1.0, 0.3, 1.2], teacher_logits=[1.5, 1.0, -0.5, 0.1, 0.8],
    target=0, T=3.0, beta=1.0, major_labels=[1, 4], counts=None,
)


def endpoint_calls(models, image: Path) -> dict[str, tuple[Callable[[Any], Any], Callable[[], Any]]]:
    """For each API endpoint: (call through a client, the same function called directly)."""
    from gradio_client import handle_file

    from fruitseg.ui.classify import classify_api
    from fruitseg.ui.lmd import lmd_api
    from fruitseg.ui.segment import segment_api

    path = str(image)
    return {
        "/classify": (lambda c: c.predict(handle_file(path), api_name="/classify"), lambda: classify_api(models, path)),
        "/segment": (lambda c: c.predict(handle_file(path), 0.5, 0.5, api_name="/segment"), lambda: segment_api(models, path, 0.5, 0.5)),
        "/lmd": (lambda c: c.predict(**LMD_ARGS, api_name="/lmd"), lambda: lmd_api(**LMD_ARGS)),
    }


def make_client(url: str, downloads: str | Path):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=str(downloads), analytics_enabled=False)


class AppServer:
    """``python app.py`` in a subprocess on a free port (``with AppServer() as server:``).

    ``started`` is the perf_counter time of the spawn; :meth:`wait_ready` polls until a
    client can connect. The server's output goes to a log file (its tail is kept for errors).
    """

    def __init__(self, env: dict[str, str] | None = None, timeout: float = 300.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.timeout = timeout
        self.env = {
            **os.environ,
            "GRADIO_SERVER_PORT": str(self.port),
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_ANALYTICS_ENABLED": "False",
            "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
            "PYTHONUNBUFFERED": "1",
            **segmenter_env(),
            **(env or {}),
        }
        self.log = tempfile.NamedTemporaryFile(prefix="fruitseg-bench-server-", suffix=".log", delete=False)
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def __enter__(self) -> "AppServer":
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [sys.executable, "app.py"], cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log_tail(self, chars: int = 2000) -> str:
        with contextlib.suppress(OSError):
            return Path(self.log.name).read_text(errors="replace")[-chars:]
        return ""

    def wait_ready(self, downloads: str | Path):
        """A connected ``gradio_client.Client``; raises RuntimeError if the server dies or times out."""
        deadline = time.perf_counter() + self.timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"app.py exited with code {self.process.returncode}: {self.log_tail()}")
            with contextlib.suppress(Exception):
                return make_client(self.url, downloads)
            if time.perf_counter() > deadline:
                raise RuntimeError(f"app.py did not answer within {self.timeout:.0f} s: {self.log_tail()}")
            time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


def cold_start(image: Path, downloads: Path, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Seconds from spawning ``python app.py`` to its first successful /classify answer."""
    from gradio_client import handle_file

    log("app: cold start of python app.py")
    with AppServer() as server, RssSampler(server.pid) as sampler:
        try:
            client = server.wait_ready(downloads)
            up = time.perf_counter() - server.started
            t0 = time.perf_counter()
            client.predict(handle_file(str(image)), api_name="/classify")
            done = time.perf_counter()
        except Exception as error:
            return {"error": f"{type(error).__name__}: {str(error)[-500:]}"}
        return {
            "seconds": round(done - server.started, 2),
            "server_up_s": round(up, 2),
            "first_request_s": round(done - t0, 3),
            "server_peak_rss_mib": mib(sampler.peak),
            "rss_samples": sampler.samples,
        }


def bench_app(
    *, quick: bool = False, calls: int | None = None, device: str | None = None, cold: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Each endpoint through ``gradio_client`` vs the same function called directly (same run)."""
    from fruitseg.ui import build_demo, launch

    calls = calls or (6 if quick else 40)
    models, untrained = bench_models(device, log)
    with tempfile.TemporaryDirectory(prefix="fruitseg-bench-") as tmp:
        tmp = Path(tmp)
        image = bench_scene_file(tmp)
        demo = build_demo(models)
        port = free_port()
        log(f"app: launching in-process on port {port}")
        launch(demo, prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        endpoints: dict[str, Any] = {}
        try:
            client = make_client(f"http://127.0.0.1:{port}/", tmp / "downloads")
            for name, (remote, direct) in endpoint_calls(models, image).items():
                rounds = max(2, calls // (3 if quick else 5))
                log(f"app: {name} ({calls} client calls, {calls} direct calls)")
                samples = interleaved({"server": lambda: remote(client), "direct": direct}, rounds, max(1, calls // rounds), warmup=1)
                server, plain = summarize(samples["server"]), summarize(samples["direct"])
                endpoints[name] = {
                    "server": server,
                    "direct": plain,
                    "overhead_ratio": ratio(server["p50_ms"], plain["p50_ms"]),
                    "overhead_ms": round(server["p50_ms"] - plain["p50_ms"], 2),
                }
            client.close()
        finally:
            demo.close()
        result: dict[str, Any] = {
            "calls": calls,
            "input": f"{image.name} (a 512x512 composite scene of the fixture fruits); /lmd: 5 classes",
            "segmenter_trained": not untrained,
            "endpoints": endpoints,
        }
        if cold:
            result["cold_start"] = cold_start(image, tmp / "downloads", log)
    result["bench_peak_rss_mib"] = mib(peak_rss_bytes())
    return result


# --------------------------------------------------------------------------- load


def bench_load(
    *,
    quick: bool = False,
    clients: int | None = None,
    requests: int | None = None,
    endpoints: Sequence[str] = ("/classify", "/lmd"),
    max_growth_pct: float = 10.0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """``clients`` threads (one Client each) x ``requests`` requests per endpoint against an
    ``app.py`` subprocess: errors, latency, throughput, server RSS at ~1/4 and at the end."""
    from gradio_client import handle_file

    clients = clients or (4 if quick else 16)
    requests = requests or (5 if quick else 25)
    total = clients * requests
    marks = (max(1, round(total / 4)), total)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="fruitseg-bench-") as tmp, AppServer() as server:
        tmp = Path(tmp)
        image = str(FIXTURE_FRUITS / "Apple_Braeburn_116.jpg")
        calls = {
            "/classify": lambda c: c.predict(handle_file(image), api_name="/classify"),
            "/segment": lambda c: c.predict(handle_file(image), 0.5, 0.5, api_name="/segment"),
            "/lmd": lambda c: c.predict(**LMD_ARGS, api_name="/lmd"),
        }
        log(f"load: starting app.py on port {server.port}")
        warm = server.wait_ready(tmp / "downloads")
        for name in endpoints:  # the first call of each endpoint is not part of the run
            calls[name](warm)
        warm.close()
        for name in endpoints:
            log(f"load: {clients} clients x {requests} requests on {name}")
            pool = [make_client(server.url, tmp / f"downloads{i}") for i in range(clients)]
            latencies: list[float] = []
            errors: list[str] = []
            done = 0
            rss: dict[int, int | None] = {}
            lock = threading.Lock()
            barrier = threading.Barrier(clients + 1)

            def worker(client) -> None:
                nonlocal done
                barrier.wait()
                for _ in range(requests):
                    start = time.perf_counter()
                    try:
                        calls[name](client)
                        ok, message = True, ""
                    except Exception as error:  # counted, reported
                        ok, message = False, f"{type(error).__name__}: {str(error)[:200]}"
                    elapsed = time.perf_counter() - start
                    with lock:
                        done += 1
                        if ok:
                            latencies.append(elapsed)
                        else:
                            errors.append(message)
                        for mark in marks:
                            if done == mark:
                                rss[mark] = tree_rss_bytes(server.pid)

            rss_before = tree_rss_bytes(server.pid)
            threads = [threading.Thread(target=worker, args=(client,), daemon=True) for client in pool]
            for thread in threads:
                thread.start()
            barrier.wait()
            start = time.perf_counter()
            for thread in threads:
                thread.join()
            wall = time.perf_counter() - start
            for client in pool:
                with contextlib.suppress(Exception):
                    client.close()
            early, late = rss.get(marks[0]), rss.get(marks[1])
            stats = summarize(latencies) if latencies else {"p50_ms": None, "p95_ms": None}
            results[name] = {
                "requests": total,
                "errors": len(errors),
                "error_examples": sorted(set(errors))[:5],
                "p50_ms": stats["p50_ms"],
                "p95_ms": stats["p95_ms"],
                "throughput_per_s": round(len(latencies) / wall, 3) if wall > 0 else None,
                "wall_s": round(wall, 2),
                "rss_before_mib": mib(rss_before),
                "rss_early_mib": mib(early),
                "rss_late_mib": mib(late),
                "rss_growth_pct": round(100 * (late - early) / early, 2) if early and late else None,
            }
        alive = server.process.poll() is None
    passed = alive and all(
        e["errors"] == 0 and e["rss_growth_pct"] is not None and e["rss_growth_pct"] < max_growth_pct for e in results.values()
    )
    return {
        "clients": clients,
        "requests_per_client": requests,
        "rss_marks": list(marks),
        "max_growth_pct": max_growth_pct,
        "input": "/classify: tests/fixtures/fruits/Apple_Braeburn_116.jpg (100x100); /lmd: 5 classes",
        "segmenter_trained": not segmenter_env(),
        "server_alive_after": alive,
        "endpoints": results,
        "passed": passed,
    }


# --------------------------------------------------------------------------- CLI


def run(parts: Sequence[str], args: argparse.Namespace, log: Callable[[str], None]) -> dict[str, Any]:
    results: dict[str, Any] = {"machine": machine_info(args.device), "quick": args.quick}
    for part in parts:
        start = time.perf_counter()
        try:
            if part == "classifier":
                results[part] = bench_classifier(quick=args.quick, data=args.data, limit=args.limit, device=args.device, log=log)
            elif part == "segmenter":
                results[part] = bench_segmenter(
                    quick=args.quick, data=args.data, backgrounds=args.backgrounds, device=args.device, scenes=args.scenes, log=log
                )
            elif part == "app":
                results[part] = bench_app(quick=args.quick, calls=args.calls, device=args.device, log=log)
            elif part == "load":
                results[part] = bench_load(quick=args.quick, clients=args.clients, requests=args.requests, log=log)
        except Exception as error:
            if args.strict:
                raise
            log(f"{part}: FAILED: {type(error).__name__}: {error}")
            results[part] = {"error": f"{type(error).__name__}: {error}"}
        results.setdefault("seconds", {})[part] = round(time.perf_counter() - start, 1)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None
    results["machine"]["bench_peak_rss_mib"] = mib(peak_rss_bytes())
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fruitseg.bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("part", nargs="?", default="all", choices=[*PARTS, "all"])
    parser.add_argument("--json", default=None, metavar="FILE", help="write every number here")
    parser.add_argument("--markdown", default=None, metavar="FILE", help="write the markdown report here (it is printed either way)")
    parser.add_argument("--quick", action="store_true", help="few iterations: a smoke test, not a measurement")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: as the app: FRUITSEG_DEVICE, else CUDA if available)")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads in this process (default: torch's choice; the app.py subprocesses keep theirs)")
    parser.add_argument("--data", default=None, help=f"Fruits-360 <Class>/*.jpg folder (default {DEFAULT_DATA}; fixtures if absent)")
    parser.add_argument("--backgrounds", default=None, help=f"background photos (default {DEFAULT_BACKGROUNDS})")
    parser.add_argument("--limit", type=int, default=None, help="classifier: at most this many held-out images for top-1 (0 = all; quick: 256)")
    parser.add_argument("--scenes", type=int, default=None, help="segmenter: scenes at 512x512 (default 32; quick 3)")
    parser.add_argument("--calls", type=int, default=None, help="app: calls per endpoint and path (default 40; quick 6)")
    parser.add_argument("--clients", type=int, default=None, help="load: concurrent clients (default 16; quick 4)")
    parser.add_argument("--requests", type=int, default=None, help="load: requests per client (default 25; quick 5)")
    parser.add_argument("--strict", action="store_true", help="stop at the first failing part instead of reporting it")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="gradio")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    parts = PARTS if args.part == "all" else (args.part,)
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries the report only
        results = run(parts, args, log)
    markdown = to_markdown(results)
    if args.json:
        Path(args.json).write_text(json.dumps(clean(results), indent=1, allow_nan=False, default=str) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown)
    print(markdown)
    failed = [part for part in parts if "error" in results.get(part, {})]
    load_failed = "load" in results and not results["load"].get("passed", True)
    return 1 if failed or load_failed else 0


if __name__ == "__main__":
    sys.exit(main())
