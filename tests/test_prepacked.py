"""The pre-packed float32 CPU forward gives the model's own logits, for any batch size."""

import pytest
import torch

from fruitseg.hub import has_fast_bfloat16
from fruitseg.models import FruitsClassificationModel
from fruitseg.models.prepacked import PrepackedClassifier
from fruitseg.predictors import Classifier, fold_batchnorm

pytestmark = pytest.mark.skipif(not PrepackedClassifier.is_available(), reason="torch built without oneDNN")


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


@pytest.mark.parametrize("batch", [1, 5, 16, 37])
def test_prepacked_forward_matches_the_model(batch):
    model = trained_looking_model()
    x = torch.randn(batch, 3, 100, 100)
    with torch.inference_mode():
        expected = model(x)
        got = PrepackedClassifier(fold_batchnorm(model), micro_batch=16)(x)
    assert got.shape == (batch, 7) and got.dtype == torch.float32 and not got.is_mkldnn
    assert torch.allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_prepacked_refuses_unfolded_batchnorm():
    with pytest.raises(ValueError, match="fold the BatchNorm"):
        PrepackedClassifier(trained_looking_model())


def test_the_cpu_classifier_picks_prepacked_float32_unless_bfloat16_is_native():
    classifier = Classifier(trained_looking_model(), "cpu")
    if has_fast_bfloat16(torch.device("cpu")):
        assert isinstance(classifier.fast_model, FruitsClassificationModel) and "bfloat16" in classifier.inference_path
    else:
        assert isinstance(classifier.fast_model, PrepackedClassifier) and "pre-packed" in classifier.inference_path
