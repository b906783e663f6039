"""FruitsClassificationModel in int8, by PyTorch's post-training static quantization.

``torch.ao.quantization`` in eager mode, with the x86 (FBGEMM) settings:

* :func:`quantizable`: the model as one sequence, ``QuantStub -> three Conv2d+BatchNorm2d+ReLU
  (fused by fuse_modules, the BatchNorm folded into the convolution) + MaxPool2d ->
  DeQuantStub -> Flatten -> Linear``; the Linear layer stays float32, so logits and
  probabilities are not rounded to 8 bits;
* :func:`calibrate` (prepare -> calibrate): the x86 default qconfig (:data:`X86_QCONFIG`:
  histogram observers for the uint8 activations on 7 bits, 0..127, which keeps AVX2's 16-bit
  sums from saturating; per-channel symmetric int8 weights) observes training frames, and
  the observers' scale and zero point of each quantized activation (:data:`ACTIVATIONS`)
  are written to the model's ``config.json`` as ``int8_calibration``, config that travels
  with the weights (``python -m fruitseg.train calibrate``; training does it after its last
  epoch);
* :func:`int8_classifier` (prepare -> convert at load): the same qconfig with each
  activation's observer fixed to its stored range (``FixedQParamsObserver``), so loading
  needs no data; the weights are quantized from the float weights by ``convert``.

A checkpoint without a calibration or a PyTorch without an FBGEMM engine (ARM) has no int8
path (:class:`fruitseg.predictors.Classifier` then chooses among the float ones).
"""

from __future__ import annotations

import copy
import warnings
from contextlib import contextmanager
from typing import Iterable

import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.quantization.observer import FixedQParamsObserver, HistogramObserver, default_per_channel_weight_observer

from fruitseg.models.classifier import FruitsClassificationModel

ENGINES = ("x86", "fbgemm")  # FBGEMM-backed engines: the qconfig below is theirs
ACTIVATIONS = ("input", "layer1", "layer2", "layer3")  # quantized tensors: the input and each block's ReLU output
ACTIVATION_RANGE = (0, 127)  # uint8 on 7 bits: the x86 qconfig's reduce_range
# get_default_qconfig("x86"), with the 7-bit range given as quant_min / quant_max rather than by
# its deprecated ``reduce_range`` flag (same observers, same ranges).
X86_QCONFIG = tq.QConfig(
    activation=HistogramObserver.with_args(quant_min=ACTIVATION_RANGE[0], quant_max=ACTIVATION_RANGE[1]),
    weight=default_per_channel_weight_observer,
)


def int8_available() -> bool:
    """Whether this PyTorch build has an FBGEMM quantized engine (x86 CPUs)."""
    return torch.backends.quantized.engine in ENGINES


@contextmanager
def _eager_mode_api():
    """torch.ao.quantization's eager-mode ``prepare`` / ``convert`` and the quantized tensors
    ``convert`` makes announce their move to torchao; they still work as documented (the
    x86 int8 kernels take them): silenced here, while these calls run only."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="torch.quantize_per_tensor, torch.quantize_per_channel", category=UserWarning)
        yield


def quantizable(model: FruitsClassificationModel) -> nn.Sequential:
    """A float copy of eval ``model`` (its BatchNorm folded or not) as ``QuantStub, layer1,
    layer2, layer3, DeQuantStub, Flatten, fc``, each block's Conv2d(+BatchNorm2d)+ReLU fused
    into one module (``fuse_modules``) for quantization."""
    source = copy.deepcopy(model).float().cpu().eval()
    body = nn.Sequential(tq.QuantStub(), source.layer1, source.layer2, source.layer3, tq.DeQuantStub(), nn.Flatten(1), source.fc)
    groups = []
    for index in (1, 2, 3):
        block = body[index]
        if not (isinstance(block[0], nn.Conv2d) and isinstance(block[2], nn.ReLU)):
            raise ValueError(f"layer{index} is not Conv2d -> BatchNorm2d -> ReLU -> MaxPool2d")
        names = ["0", "1", "2"] if isinstance(block[1], nn.BatchNorm2d) else ["0", "2"]  # folded: block[1] is Identity
        groups.append([f"{index}.{name}" for name in names])
    return tq.fuse_modules(body, groups)


def _observed(model: FruitsClassificationModel, qconfigs: dict[str, tq.QConfig]) -> nn.Sequential:
    """``quantizable(model)`` prepared with one qconfig per activation; the Linear stays float."""
    body = quantizable(model)
    for index, name in enumerate(ACTIVATIONS):  # body[0] is the QuantStub, body[1..3] the blocks
        body[index].qconfig = qconfigs[name]
    body[4].qconfig = qconfigs["input"]  # the DeQuantStub: any qconfig makes convert swap it in
    with _eager_mode_api():
        return tq.prepare(body)


def _observers(body: nn.Sequential) -> dict[str, nn.Module]:
    return {name: body[index][0].activation_post_process if index else body[0].activation_post_process
            for index, name in enumerate(ACTIVATIONS)}


@torch.no_grad()
def calibrate(model: FruitsClassificationModel, batches: Iterable[torch.Tensor]) -> dict[str, list[float]]:
    """Activation ranges of eval ``model`` over ``batches`` of normalised (B, 3, 100, 100)
    images, under :data:`X86_QCONFIG`: ``{name: [scale, zero_point]}`` for :data:`ACTIVATIONS`."""
    body = _observed(model, {name: X86_QCONFIG for name in ACTIVATIONS})
    for x in batches:
        body(x.float().cpu())
    result = {}
    for name, observer in _observers(body).items():
        scale, zero_point = observer.calculate_qparams()
        result[name] = [float(scale), int(zero_point)]
    return result


def int8_classifier(model: FruitsClassificationModel, calibration: dict[str, list[float]]) -> nn.Sequential:
    """Eval ``model`` (its BatchNorm folded or not) with int8 convolutions at the stored
    activation ranges: (B, 3, 100, 100) float32 -> (B, num_classes) float32 logits."""
    if not int8_available():
        raise RuntimeError(f"int8 inference needs one of the quantized engines {ENGINES}, have {torch.backends.quantized.engine!r}")
    missing = [name for name in ACTIVATIONS if name not in calibration]
    if missing:
        raise ValueError(f"int8_calibration lacks {missing}")
    fixed = {}
    for name in ACTIVATIONS:
        scale, zero_point = float(calibration[name][0]), int(calibration[name][1])
        if not (scale > 0 and ACTIVATION_RANGE[0] <= zero_point <= ACTIVATION_RANGE[1]):
            raise ValueError(f"int8_calibration[{name!r}] = {calibration[name]} is not a (scale > 0, zero point in 0..127) pair")
        observer = FixedQParamsObserver.with_args(scale=scale, zero_point=zero_point, quant_min=ACTIVATION_RANGE[0], quant_max=ACTIVATION_RANGE[1])
        fixed[name] = tq.QConfig(activation=observer, weight=X86_QCONFIG.weight)
    body = _observed(model, fixed)
    with _eager_mode_api():
        return tq.convert(body)
