"""Which device runs the models, and which arithmetic is fast on it.

``FRUITSEG_DEVICE`` overrides the device (default: CUDA when available, else the CPU);
:func:`has_fast_bfloat16` tells whether bfloat16 runs natively there (GPUs with bf16, CPUs
with AVX-512-BF16 or AMX), which decides the inference path of the seed classifier and the
autocast of training.
"""

from __future__ import annotations

import os

import torch


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
    slower than float32, so inference and training stay in float32 there."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
