"""BatchNorm folding for any eval network whose BatchNorm layers follow convolutions.

In eval mode a BatchNorm2d is a per-channel affine map, so a convolution whose output goes
straight into one can absorb it (``torch.nn.utils.fusion.fuse_conv_bn_weights``): one pass
over the feature map instead of two. :func:`fold_batchnorm_into_convs` finds those pairs by
running the network once on an example and noting which BatchNorm's input is a
convolution's output (exactly the tensor, not a copy), so it needs no knowledge of module
names; timm's ``BatchNormAct2d`` (BatchNorm + activation in one module) keeps its
activation. The folded copy is checked against the original on the example.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights


def conv_batchnorm_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[str, str]]:
    """(convolution, BatchNorm) module names where the BatchNorm's input is the output of the
    convolution, in a forward pass on ``example``; convolutions called more than once, or
    feeding more than one BatchNorm, are left out."""
    names = {module: name for name, module in model.named_modules()}
    produced: dict[int, str] = {}
    keep_alive: list[torch.Tensor] = []  # so that no other tensor reuses an output's id
    calls: dict[str, int] = {}
    pairs: list[tuple[str, str]] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(module, nn.Conv2d):
            produced[id(output)] = name
            keep_alive.append(output)
        elif isinstance(module, nn.BatchNorm2d) and id(inputs[0]) in produced:
            pairs.append((produced[id(inputs[0])], name))

    handles = [m.register_forward_hook(hook) for m in names if isinstance(m, (nn.Conv2d, nn.BatchNorm2d))]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    convs = [conv for conv, _ in pairs]
    return [(conv, bn) for conv, bn in pairs if calls[conv] == 1 and calls[bn] == 1 and convs.count(conv) == 1]


def fold_batchnorm_into_convs(model: nn.Module, example: torch.Tensor, tolerance: float = 1e-4) -> nn.Module:
    """An eval copy of ``model`` with each BatchNorm2d that directly follows a Conv2d folded
    into it (a plain BatchNorm2d becomes ``Identity``; a BatchNorm subclass with ``drop`` /
    ``act`` parts, like timm's ``BatchNormAct2d``, becomes those parts).

    Raises ``ValueError`` if the copy's output on ``example`` differs from the original's by
    more than ``tolerance`` times the output's range (a pair that was not one after all)."""
    folded = copy.deepcopy(model).eval()
    for conv_name, bn_name in conv_batchnorm_pairs(folded, example):
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
        rest = [part for part in (getattr(bn, "drop", None), getattr(bn, "act", None)) if part is not None and not isinstance(part, nn.Identity)]
        parent, _, attribute = bn_name.rpartition(".")
        setattr(folded.get_submodule(parent), attribute, nn.Sequential(*rest) if rest else nn.Identity())
    training = model.training
    try:
        with torch.no_grad():
            expected, got = model.eval()(example), folded(example)
    finally:
        model.train(training)  # the caller's model keeps its mode
    spread = float(expected.max() - expected.min()) or 1.0
    if float((got - expected).abs().max()) > tolerance * spread:
        raise ValueError("folding the BatchNorm layers changed the output: a BatchNorm did not follow its convolution alone")
    return folded
