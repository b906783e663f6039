"""FruitsClassificationModel for float32 inference on a CPU, with oneDNN's pre-packed weights.

On a CPU without native bfloat16 (AVX2 only, say) the classifier's time goes to its three
5x5 convolutions. Two things make them faster there, with the same float32 arithmetic:

* Each convolution's weight is reordered once, at load time, into oneDNN's blocked layout
  (what ``torch.utils.mkldnn.to_mkldnn`` does, without its TorchScript modules), and the
  activations stay in oneDNN's layout from the first convolution to the flatten, so no
  per-call weight reorder and no layout conversion between the layers.
* A batch runs in micro-batches of 16: the activations of 16 images (the first block's are
  1.3 MB per image) stay far closer to the cores' caches than those of 64.

``python -m fruitseg.bench classifier`` measures it against the plain model.
"""

from __future__ import annotations

import torch
from torch import nn

from fruitseg.models.classifier import FruitsClassificationModel

MICRO_BATCH = 16


class PrepackedConv2d(nn.Module):
    """A Conv2d whose weight is stored in oneDNN's blocked layout; takes and returns oneDNN tensors."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups
        weight = conv.weight.detach().float().to_mkldnn()
        bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.weight = torch._C._nn.mkldnn_reorder_conv2d_weight(weight, self.padding, self.stride, self.dilation, self.groups)
        self.bias = bias.to_mkldnn()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.mkldnn_convolution(x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups)


class PrepackedClassifier(nn.Module):
    """The eval-mode ``model``, its BatchNorm already folded into the convolutions
    (``fruitseg.predictors.fold_batchnorm``), as a float32 CPU forward:
    (B, 3, 100, 100) dense float32 -> (B, num_classes) logits."""

    def __init__(self, model: FruitsClassificationModel, micro_batch: int = MICRO_BATCH):
        super().__init__()
        self.micro_batch = micro_batch
        layers = []
        for block in (model.layer1, model.layer2, model.layer3):
            for layer in block:
                if isinstance(layer, nn.Conv2d):
                    layers.append(PrepackedConv2d(layer))
                elif isinstance(layer, nn.BatchNorm2d):
                    raise ValueError("fold the BatchNorm layers into the convolutions first")
                elif not isinstance(layer, nn.Identity):
                    layers.append(layer)  # ReLU and MaxPool2d run on oneDNN tensors as they are
        self.features = nn.Sequential(*layers).eval()
        self.fc = model.fc

    @staticmethod
    def is_available() -> bool:
        return torch.backends.mkldnn.is_available()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in x.float().split(self.micro_batch):
            features = self.features(chunk.contiguous().to_mkldnn()).to_dense()
            outputs.append(self.fc(features.flatten(1)))
        return torch.cat(outputs)
