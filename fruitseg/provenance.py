"""Where a stored result came from: the commit, the inference path, the weights, torch and the CPU.

Every JSON result written under ``checkpoints/`` (training metrics, evaluations, benchmarks,
the federated runs) carries :func:`provenance` (or, per training epoch, :func:`git_commit`),
so a figure can be traced to the code and the arithmetic that produced it. A commit ending in
``-dirty`` had uncommitted changes to tracked files when the result was written. Evaluations
and benchmarks also name the weights each model read (:func:`weights_identity`): where they
came from and a hash of their ``model.safetensors``, so figures of a candidate loaded through
``FRUITSEG_SEGMENTER=/some/folder`` are not mistaken for the bundled weights'.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from fruitseg.hub import WeightsSource

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


def weights_file(source: WeightsSource) -> Path | None:
    """The ``model.safetensors`` that :func:`fruitseg.hub.load_weights` read for ``source``: in its
    folder (bundled or local), or for the Hub the file the local Hugging Face cache resolves
    ``repo@revision`` to (where ``from_pretrained`` put it; nothing is downloaded). None if absent."""
    from huggingface_hub import constants, try_to_load_from_cache

    if source.kind == "hub":
        cached = try_to_load_from_cache(source.location, constants.SAFETENSORS_SINGLE_FILE, revision=source.revision)
        path = Path(cached) if isinstance(cached, str) else None
    else:
        path = Path(source.location) / constants.SAFETENSORS_SINGLE_FILE
    return path if path is not None and path.is_file() else None


def sha256_prefix(path: str | Path, chars: int = 16, chunk: int = 1 << 20) -> str:
    """The first ``chars`` hex digits of the file's SHA-256, read in ``chunk``-byte pieces."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()[:chars]


def weights_identity(source: WeightsSource | None) -> dict[str, str]:
    """``{"source": source.describe(), "sha256": first 16 hex digits of its model.safetensors}``:
    which weights a model ran with (``model.source`` of :class:`~fruitseg.predictors.Classifier`,
    :class:`~fruitseg.predictors.PhotoClassifier`, :class:`~fruitseg.predictors.Segmenter`).
    ``"given model"`` for a model built in memory (no source), ``"unknown"`` for a file not found."""
    if source is None:
        return {"source": "given model", "sha256": "unknown"}
    path = weights_file(source)
    return {"source": source.describe(), "sha256": sha256_prefix(path) if path is not None else "unknown"}


def provenance(
    inference_path: str | dict[str, str] | None = None,
    weights: dict[str, dict[str, str]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """``{"commit", "inference_path", "torch", "cpu", "cpu_bfloat16", "cpu_threads", **extra}``,
    with ``"weights"`` after ``cpu_threads`` when ``weights`` is given.

    ``inference_path`` names the arithmetic the figures come from (e.g. ``Classifier.inference_path``),
    or, where several models made them, each model's by name;
    ``cpu_bfloat16`` whether this CPU runs bfloat16 natively, which decides some of those paths;
    ``weights`` each model's :func:`weights_identity` by name.
    """
    from fruitseg.device import cpu_name, has_fast_bfloat16

    record = {
        "commit": git_commit(),
        "inference_path": inference_path,
        "torch": torch.__version__,
        "cpu": cpu_name(),
        "cpu_bfloat16": has_fast_bfloat16(torch.device("cpu")),
        "cpu_threads": torch.get_num_threads(),
    }
    if weights is not None:
        record["weights"] = weights
    return {**record, **extra}
