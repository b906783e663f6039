"""What machine a benchmark ran on, and how much memory a process holds (RSS)."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import torch

from fruitseg.device import cpu_name, has_fast_bfloat16


def machine_info(device: torch.device | str | None = None) -> dict[str, Any]:
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    info: dict[str, Any] = {
        "cpu": cpu_name(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_bf16": has_fast_bfloat16(torch.device("cpu")),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "reference_gflops_at_start": reference_gflops(),
    }
    with contextlib.suppress(Exception):
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
        info["physical_cores"] = psutil.cpu_count(logical=False)
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        info["gradio"] = version("gradio")
    return info


REFERENCE_SIDE = 384  # the reference workload: one float32 384x384 matrix product on one thread


def reference_gflops(repeats: int = 30) -> float:
    """This machine's speed right now, on a fixed workload: GFLOP/s (from the median of
    ``repeats`` timings) of a float32 ``REFERENCE_SIDE``-square matrix product on one thread.

    A shared VM's speed changes between runs (the same model call can take 14 ms in one run and
    25 ms in another); the bench records this at the start and the end of every run, so two
    runs' absolute times can be compared (their ratios are taken within a run and need no such
    help)."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(REFERENCE_SIDE, REFERENCE_SIDE, generator=generator)
    b = torch.rand(REFERENCE_SIDE, REFERENCE_SIDE, generator=generator)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.mm(a, b)  # warm-up
        seconds = []
        for _ in range(repeats):
            start = time.perf_counter()
            torch.mm(a, b)
            seconds.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return round(2 * REFERENCE_SIDE**3 / statistics.median(seconds) / 1e9, 2)


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
