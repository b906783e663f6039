"""FruitsClassificationModel for float32 inference on a CPU, with Winograd convolutions.

On a CPU without native bfloat16 (AVX2 only, say) the classifier's time goes to the 5x5
convolutions of its second and third blocks (256 MFLOP each an image), and float32
arithmetic is already near the cores' peak. Winograd's minimal filtering algorithm
F(4x4, 5x5) (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016)
computes each 4x4 patch of output from an 8x8 tile of input with 64 multiplications per
input/output channel pair instead of 400: the input tiles and the filters are taken to
an 8x8 "transform domain" (``B^T d B`` and ``G g G^T``), multiplied there as one matrix
product per tile position over the channels, and brought back (``A^T m A``). The
transform matrices are exact rationals (points 0, +-1, +-2, +-1/2 and infinity); the
logits match the direct convolution's to ~1e-5.

Every step is one large matrix product on a contiguous tensor, with activations in NHWC:

* input tiles (8, 8, tiles, C) -> ``B^T`` applied along each tile axis (two products
  with K = 8) -> 64 products (tiles, C) x (C, C_out) with the pre-transformed filters
  -> ``A^T`` along each axis -> (4, 4, tiles, C_out);
* the 2x2 max-pool runs on those 4x4 output patches before they are put back into
  an image (a patch holds whole pooling windows), then the bias and ReLU on the pooled,
  4x smaller map (max-pool commutes with a per-channel bias and with ReLU).

The first block (3 input channels: too few for the transform to pay) stays a direct
channels-last convolution, pooled before its ReLU for the same reason. A batch runs in
micro-batches of 4 images, whose transformed tiles (~6 MB) stay in the caches.

It is one of the classifier's CPU paths (:func:`fruitseg.predictors.classifier_paths`),
taken where it is the fastest the machine has: without an int8 calibration or an FBGEMM
engine, on an AVX2 CPU it runs 1.4-2.1x the direct float32 convolution (BN folded,
channels-last). ``python -m fruitseg.bench classifier`` measures it against that tuned
float32 path and the plain model.
"""

from __future__ import annotations

from fractions import Fraction

import torch
import torch.nn.functional as F
from torch import nn

from fruitseg.models.classifier import FruitsClassificationModel, folded_convolutions

MICRO_BATCH = 4
OUTPUT_TILE = 4  # m in F(m x m, r x r)
KERNEL = 5  # r
POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))  # plus the point at infinity


def _inverse(matrix: list[list[Fraction]]) -> list[list[Fraction]]:
    """Exact inverse by Gauss-Jordan elimination over the rationals."""
    n = len(matrix)
    rows = [list(row) + [Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(matrix)]
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        rows[col] = [v / rows[col][col] for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col] != 0:
                factor = rows[r][col]
                rows[r] = [a - factor * b for a, b in zip(rows[r], rows[col])]
    return [row[n:] for row in rows]


def winograd_matrices(m: int = OUTPUT_TILE, r: int = KERNEL, points=POINTS) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(A^T, G, B^T) of F(m, r) as float64: ``y = A^T [(G g) * (B^T d)]`` is the valid
    correlation of a tile ``d`` of m + r - 1 samples with a filter ``g`` of r taps.

    Toom-Cook: evaluate the filter (``G``) and, transposed, the signal (``A``) at the points,
    multiply pointwise, interpolate back (``B = V^-1`` for the Vandermonde matrix ``V`` of
    the points). The last row of each matrix is the point at infinity (the top coefficient).
    """
    n = m + r - 1
    if len(points) != n - 1:
        raise ValueError(f"F({m}, {r}) needs {n - 1} finite points, got {len(points)}")
    pts = [Fraction(p) for p in points]

    def vandermonde(columns: int) -> list[list[Fraction]]:
        return [[p**k for k in range(columns)] for p in pts] + [[Fraction(int(k == columns - 1)) for k in range(columns)]]

    a, g, b = vandermonde(m), vandermonde(r), _inverse(vandermonde(n))

    def tensor(rows) -> torch.Tensor:
        return torch.tensor([[float(v) for v in row] for row in rows], dtype=torch.float64)

    return tensor(a).T.contiguous(), tensor(g), tensor(b).T.contiguous()


class WinogradConvReLUPool(nn.Module):
    """Conv2d(5x5, stride 1, padding 2) + bias + ReLU + MaxPool2d(2), NHWC in and out:
    (N, H, W, C) float32 -> (N, H // 2, W // 2, C_out)."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if conv.kernel_size != (KERNEL, KERNEL) or conv.stride != (1, 1) or conv.padding != (2, 2) or conv.groups != 1:
            raise ValueError("only 5x5 convolutions with stride 1 and padding 2 are supported")
        at, g, bt = winograd_matrices()
        weight = conv.weight.detach().double()  # (C_out, C, 5, 5)
        filters = torch.einsum("ak,oikl,bl->abio", g, weight, g)  # G w G^T: (8, 8, C, C_out)
        self.register_buffer("filters", filters.reshape(-1, conv.in_channels, conv.out_channels).float().contiguous())
        bias = conv.bias.detach() if conv.bias is not None else torch.zeros(conv.out_channels)
        self.register_buffer("bias", bias.float())
        self.register_buffer("at", at.float())
        self.register_buffer("bt", bt.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, h, w, c = x.shape
        m, alpha = OUTPUT_TILE, OUTPUT_TILE + KERNEL - 1
        rows, cols = -(-h // m), -(-w // m)  # tiles per column / row
        # Pad by 2 (the convolution's own zero padding) and up to whole tiles.
        padded = F.pad(x, (0, 0, 2, m * cols + 2 - w, 2, m * rows + 2 - h))
        s = padded.stride()
        tiles = padded.as_strided((alpha, alpha, n, rows, cols, c), (s[1], s[2], s[0], m * s[1], m * s[2], s[3]))
        v = torch.matmul(self.bt, tiles.reshape(alpha, -1))  # B^T along the tile's rows
        v = torch.matmul(self.bt, v.view(alpha, alpha, -1))  # ... and along its columns
        product = torch.bmm(v.view(alpha * alpha, n * rows * cols, c), self.filters)  # (64, tiles, C_out)
        out = torch.matmul(self.at, product.view(alpha, -1))
        out = torch.matmul(self.at, out.view(m, alpha, -1))  # (4, 4, tiles * C_out): the output patches
        pooled = torch.maximum(torch.maximum(out[0::2, 0::2], out[1::2, 0::2]), torch.maximum(out[0::2, 1::2], out[1::2, 1::2]))
        co, half = product.shape[-1], m // 2
        pooled = pooled.reshape(half, half, n, rows, cols, co).permute(2, 3, 0, 4, 1, 5).reshape(n, rows * half, cols * half, co)
        return (pooled[:, : h // 2, : w // 2] + self.bias).relu_()


class WinogradClassifier(nn.Module):
    """The eval-mode ``model``, its BatchNorm already folded into the convolutions
    (``fruitseg.models.classifier.fold_batchnorm``), as a float32 CPU forward:
    (B, 3, 100, 100) float32 -> (B, num_classes) logits."""

    def __init__(self, model: FruitsClassificationModel, micro_batch: int = MICRO_BATCH):
        super().__init__()
        convs = folded_convolutions(model)
        self.micro_batch = micro_batch
        self.conv1 = convs[0].eval().to(memory_format=torch.channels_last)
        self.block2, self.block3 = WinogradConvReLUPool(convs[1]), WinogradConvReLUPool(convs[2])
        self.fc = model.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = []
        for chunk in x.float().split(self.micro_batch):
            h = self.conv1(chunk.contiguous(memory_format=torch.channels_last))
            h = F.max_pool2d(h, 2).relu_().permute(0, 2, 3, 1)  # channels-last NCHW viewed as NHWC
            h = self.block3(self.block2(h.contiguous()))
            outputs.append(self.fc(h.permute(0, 3, 1, 2).flatten(1)))  # flatten in the model's (C, H, W) order
        return torch.cat(outputs)
