"""Which device runs the models, and which of a model's inference paths is fastest there.

``FRUITSEG_DEVICE`` overrides the device (default: CUDA when available, else the CPU);
:func:`has_fast_bfloat16` tells whether bfloat16 runs natively there (GPUs with bf16, CPUs
with AVX-512-BF16 or AMX), which decides whether bfloat16 is a candidate at all and the
autocast of training.

:func:`fastest_path` picks among a model's candidate paths (int8, float32, bfloat16 ...)
by timing them, because which one wins depends on the machine: on an AVX2-only CPU int8
beats float32, and on a CPU with native bfloat16 int8 still beats bfloat16 (1.0 vs 2.6 ms
at batch 1), which no rule of the form "native bfloat16 => bfloat16" foresees. The timing
is short (batch 1 and batch 8, interleaved rounds) and runs once per machine: its result is
kept in ``<cache>/paths.json`` (``FRUITSEG_CACHE_DIR``, else ``$XDG_CACHE_HOME/fruitseg``,
else ``~/.cache/fruitseg``), keyed by the CPU (or GPU) model, its instruction set, the
torch version and thread count, and the candidates. Delete the file to measure again.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import statistics
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch

log = logging.getLogger("fruitseg")

TIMED_BATCHES = (1, 8)  # what the app classifies: one fruit, or the fruits of one photo


def select_device() -> torch.device:
    """``FRUITSEG_DEVICE`` if set, else CUDA when available, else CPU."""
    requested = os.environ.get("FRUITSEG_DEVICE", "").strip()
    if requested:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"FRUITSEG_DEVICE={requested} but CUDA is not available")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def has_fast_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 natively: CUDA with bf16, or a CPU with AVX-512-BF16
    or AMX. Elsewhere (an AVX2-only CPU, say) bfloat16 is emulated and several times
    slower than float32, so it is not even a candidate there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown"


def machine_key(device: torch.device) -> str:
    """What the speed of a path depends on. The CPU's name alone is not enough (one "AMD EPYC"
    VM had AVX-512-BF16, the next AVX2 only): its instruction set and bfloat16 support go in."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        bf16 = "native bfloat16" if has_fast_bfloat16(torch.device("cpu")) else "no native bfloat16"
        hardware = f"{cpu_name()} ({torch.backends.cpu.get_cpu_capability()}, {bf16}), {torch.get_num_threads()} threads"
    return f"{device.type}: {hardware}; torch {torch.__version__}"


def cache_dir() -> Path:
    if os.environ.get("FRUITSEG_CACHE_DIR"):
        return Path(os.environ["FRUITSEG_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "fruitseg"


def time_paths(paths: dict[str, Callable[[torch.Tensor], Any]], inputs: dict[int, torch.Tensor]) -> dict[str, dict[int, float]]:
    """Median milliseconds per image of each path at each batch size, the paths' calls
    interleaved in alternating rounds (so that background load hits them alike). Each call
    must return a CPU value (the GPU has finished)."""
    from fruitseg.bench.timing import interleaved

    result: dict[str, dict[int, float]] = {name: {} for name in paths}
    for batch, x in inputs.items():
        calls = {name: (lambda fn=fn: fn(x)) for name, fn in paths.items()}
        samples = interleaved(calls, rounds=6 if batch == 1 else 4, per_round=3 if batch == 1 else 1, warmup=2 if batch == 1 else 1)
        for name, seconds in samples.items():
            result[name][batch] = round(statistics.median(seconds) * 1e3 / batch, 3)
    return result


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(path: Path, data: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=path.name, suffix=".tmp", delete=False) as file:
            json.dump(data, file, indent=1, sort_keys=True)
        os.replace(file.name, path)
    except OSError as error:  # a read-only home: measure again next time
        log.info("could not cache the path timings in %s (%s)", path, error)


def fastest_path(
    model: str,
    paths: dict[str, Callable[[torch.Tensor], Any]],
    make_input: Callable[[int], torch.Tensor],
    device: torch.device,
) -> tuple[str, dict[str, dict[int, float]], str]:
    """(name, milliseconds per image of every path at batch 1 and 8, where they are kept) of
    the path with the least time per image summed over :data:`TIMED_BATCHES`: from the
    cache for this machine, else measured now (:func:`time_paths`) and cached."""
    if len(paths) == 1:
        return next(iter(paths)), {}, "the only candidate here"
    key = f"{model} [{', '.join(sorted(paths))}] on {machine_key(device)}"
    file = cache_dir() / "paths.json"
    cached = _read(file).get(key)
    if isinstance(cached, dict) and cached.get("path") in paths and set(cached.get("ms_per_image", {})) == set(paths):
        timings = {name: {int(b): ms for b, ms in by_batch.items()} for name, by_batch in cached["ms_per_image"].items()}
        return cached["path"], timings, f"timed once per machine, kept in {file}"
    timings = time_paths(paths, {batch: make_input(batch) for batch in TIMED_BATCHES})
    best = min(paths, key=lambda name: sum(timings[name].values()))
    data = _read(file)
    data[key] = {"path": best, "ms_per_image": timings}
    _write(file, data)
    log.info("%s: %s is the fastest path here (%s)", model, best, timings)
    return best, timings, f"timed once per machine, kept in {file}"  # the same words when read back
