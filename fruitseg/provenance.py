"""Where a stored result came from: the commit, the inference path, torch and the CPU.

Every JSON result written under ``checkpoints/`` (training metrics, evaluations, benchmarks,
the federated runs) carries :func:`provenance` (or, per training epoch, :func:`git_commit`),
so a figure can be traced to the code and the arithmetic that produced it. A commit ending in
``-dirty`` had uncommitted changes to tracked files when the result was written.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parent.parent


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10)


def git_commit() -> str:
    """``git rev-parse HEAD`` of the project, with ``-dirty`` when tracked files differ from it;
    ``"unknown"`` outside a git checkout (an installed package, a Hugging Face Space) or without git."""
    try:
        head = _git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = _git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head.stdout.strip() + ("-dirty" if dirty else "")


def provenance(inference_path: str | dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """``{"commit", "inference_path", "torch", "cpu", "cpu_bfloat16", "cpu_threads", **extra}``.

    ``inference_path`` names the arithmetic the figures come from (e.g. ``Classifier.inference_path``),
    or, where several models made them, each model's by name;
    ``cpu_bfloat16`` whether this CPU runs bfloat16 natively, which decides some of those paths.
    """
    from fruitseg.device import cpu_name, has_fast_bfloat16

    return {
        "commit": git_commit(),
        "inference_path": inference_path,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_bfloat16": has_fast_bfloat16(torch.device("cpu")),
        "cpu_threads": torch.get_num_threads(),
        **extra,
    }
