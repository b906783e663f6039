"""The Winograd float32 CPU forward gives the model's own logits, for any batch and map size."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fruitseg.models import FruitsClassificationModel
from fruitseg.models.winograd import WinogradClassifier, WinogradConvReLUPool, winograd_matrices
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.predictors import Classifier


def trained_looking_model() -> FruitsClassificationModel:
    """A random model whose BatchNorm statistics are not the identity, so folding matters."""
    torch.manual_seed(0)
    model = FruitsClassificationModel(num_classes=7).eval()
    for block in (model.layer1, model.layer2, model.layer3):
        bn = block[1]
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.data.uniform_(0.5, 1.5)
        bn.bias.data.uniform_(-0.2, 0.2)
    return model


def test_the_transforms_compute_a_correlation_exactly():
    at, g, bt = winograd_matrices()
    assert at.shape == (4, 8) and g.shape == (8, 5) and bt.shape == (8, 8)
    torch.manual_seed(1)
    d, w = torch.randn(8, dtype=torch.float64), torch.randn(5, dtype=torch.float64)
    expected = torch.stack([(d[i : i + 5] * w).sum() for i in range(4)])
    assert torch.allclose(at @ ((g @ w) * (bt @ d)), expected, atol=1e-12)


@pytest.mark.parametrize(("size", "channels"), [((50, 50), (32, 64)), ((25, 25), (64, 128)), ((9, 14), (5, 3)), ((4, 4), (2, 2))])
def test_a_winograd_block_equals_conv_relu_pool(size, channels):
    torch.manual_seed(2)
    conv = nn.Conv2d(channels[0], channels[1], 5, padding=2)
    x = torch.randn(3, channels[0], *size)
    expected = F.max_pool2d(F.relu(conv(x)), 2)
    with torch.inference_mode():
        got = WinogradConvReLUPool(conv)(x.permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_a_winograd_block_refuses_other_convolutions():
    with pytest.raises(ValueError, match="5x5"):
        WinogradConvReLUPool(nn.Conv2d(4, 4, 3, padding=1))


@pytest.mark.parametrize("batch", [1, 5, 16, 37])
def test_winograd_forward_matches_the_model(batch):
    model = trained_looking_model()
    x = torch.randn(batch, 3, 100, 100)
    with torch.inference_mode():
        expected = model(x)
        got = WinogradClassifier(fold_batchnorm(model))(x)
    assert got.shape == (batch, 7) and got.dtype == torch.float32
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_winograd_refuses_unfolded_batchnorm():
    with pytest.raises(ValueError, match="fold the BatchNorm"):
        WinogradClassifier(trained_looking_model())


def test_the_winograd_path_of_the_classifier_gives_the_float32_logits():
    model = trained_looking_model()
    x = torch.randn(3, 3, 100, 100)
    winograd, exact = Classifier(model, "cpu", path="winograd"), Classifier(model, "cpu", path="float32")
    assert isinstance(winograd.fast_model, WinogradClassifier) and winograd.inference_path.startswith("winograd: float32, Winograd")
    assert winograd.precision == "float32"
    with torch.inference_mode():
        assert torch.allclose(winograd.fast_model(x), exact.fast_model(x.contiguous(memory_format=torch.channels_last)), atol=1e-4, rtol=1e-4)
