"""Timing helpers: per-call samples in interleaved rounds, their summary, and ratios."""

from __future__ import annotations

import math
import statistics
import time
from typing import Any, Callable, Sequence

import numpy as np


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
