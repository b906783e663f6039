"""FruitsClassificationModel with int8 convolutions, for CPUs without native bfloat16.

On an x86 CPU with AVX2 but no AVX-512-BF16 the classifier's time goes to its three 5x5
convolutions, and float32 arithmetic is already near the cores' peak. FBGEMM's int8
kernels (PyTorch's ``x86`` quantized engine) do about twice the multiply-adds per
instruction and move a quarter of the bytes. Static post-training quantization:

* weights: per output channel, symmetric int8, from the float weights at load time
  (BatchNorm folded in first);
* activations: uint8 with one scale and zero point per tensor, measured once on training
  frames by :func:`calibrate` (PyTorch's histogram observer on 7 bits, 0..127: the ``x86``
  default ``reduce_range``, which keeps the AVX2 int16 sums from saturating) and stored
  in the model's ``config.json`` as ``int8_calibration``: config that travels with the
  weights. A checkpoint without it runs in float32 (:mod:`fruitseg.models.winograd`);
* the Linear layer stays float32 on the dequantized features, so logits and
  probabilities are not rounded to 8 bits.

``python -m fruitseg.train calibrate`` writes the calibration; ``python -m fruitseg.bench
classifier`` measures the path against the plain model (speed and top-1).
"""

from __future__ import annotations

import warnings
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.ao.nn.intrinsic.quantized import ConvReLU2d
from torch.ao.quantization.observer import HistogramObserver, PerChannelMinMaxObserver

from fruitseg.models.classifier import FruitsClassificationModel, folded_convolutions

# PyTorch 2.10+ announces the quantized dtypes' move to torchao on first use; they are
# what its FBGEMM int8 kernels take, and a build without them falls back to float32.
warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel", category=UserWarning)

ENGINES = ("x86", "fbgemm")  # FBGEMM-backed engines: the observers' settings below are theirs
ACTIVATIONS = ("input", "layer1", "layer2", "layer3")  # quantized tensors: the input and each block's ReLU output


def int8_available() -> bool:
    """Whether this PyTorch build has an FBGEMM quantized engine (x86 CPUs)."""
    return torch.backends.quantized.engine in ENGINES


def activation_observer() -> HistogramObserver:
    return HistogramObserver(dtype=torch.quint8, quant_min=0, quant_max=127)


@torch.no_grad()
def calibrate(folded: FruitsClassificationModel, batches: Iterable[torch.Tensor]) -> dict[str, list[float]]:
    """Activation ranges of the BN-folded eval ``folded`` model over ``batches`` of normalised
    (B, 3, 100, 100) images: ``{name: [scale, zero_point]}`` for :data:`ACTIVATIONS`."""
    observers = {name: activation_observer() for name in ACTIVATIONS}
    convs = folded_convolutions(folded)
    for x in batches:
        h = observers["input"](x.float())
        for name, conv in zip(ACTIVATIONS[1:], convs):
            h = F.max_pool2d(observers[name](conv(h).relu_()), 2)
    result = {}
    for name, observer in observers.items():
        scale, zero_point = observer.calculate_qparams()
        result[name] = [float(scale), int(zero_point)]
    return result


def quantize_conv(conv: nn.Conv2d, scale: float, zero_point: int) -> ConvReLU2d:
    """Conv2d + ReLU with per-channel symmetric int8 weights, uint8 output at (scale, zero_point)."""
    weight_observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    weight = conv.weight.detach().float()
    weight_observer(weight)
    scales, zero_points = weight_observer.calculate_qparams()
    qweight = torch.quantize_per_channel(weight, scales.double(), zero_points, 0, torch.qint8)
    qconv = ConvReLU2d(conv.in_channels, conv.out_channels, conv.kernel_size, padding=conv.padding)
    bias = conv.bias.detach().float() if conv.bias is not None else None
    qconv.set_weight_bias(qweight, bias)
    qconv.scale, qconv.zero_point = float(scale), int(zero_point)
    return qconv


class Int8Classifier(nn.Module):
    """The eval-mode ``folded`` model (BatchNorm already folded into the convolutions,
    ``fruitseg.models.classifier.fold_batchnorm``) with int8 convolutions:
    (B, 3, 100, 100) float32 -> (B, num_classes) float32 logits."""

    def __init__(self, folded: FruitsClassificationModel, calibration: dict[str, list[float]]):
        super().__init__()
        if not int8_available():
            raise RuntimeError(f"int8 inference needs one of the quantized engines {ENGINES}, have {torch.backends.quantized.engine!r}")
        missing = [name for name in ACTIVATIONS if name not in calibration]
        if missing:
            raise ValueError(f"int8_calibration lacks {missing}")
        self.input_scale, self.input_zero_point = float(calibration["input"][0]), int(calibration["input"][1])
        convs = folded_convolutions(folded)
        self.convs = nn.ModuleList(quantize_conv(conv, *calibration[name]) for name, conv in zip(ACTIVATIONS[1:], convs))
        self.fc = folded.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.quantize_per_tensor(x.float(), self.input_scale, self.input_zero_point, torch.quint8)
        for conv in self.convs:
            h = F.max_pool2d(conv(h), 2)
        return self.fc(h.dequantize().flatten(1))  # the model's (C, H, W) order, whatever the memory layout
