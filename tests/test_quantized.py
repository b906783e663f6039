"""int8 CPU inference with torch.ao.quantization: the calibration travels in config.json, the
int8 model is PyTorch's own quantized modules, and it names the fruit the float model names."""

import importlib
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from torch.ao.nn.intrinsic.quantized import ConvReLU2d
from torch.ao.nn.quantized import DeQuantize, Quantize

from fruitseg.models import FruitsClassificationModel
from fruitseg.models import quantized
from fruitseg.models.quantized import ACTIVATIONS, calibrate, int8_available, int8_classifier
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.predictors import Classifier, classifier_paths, square_on_white, to_tensor
from fruitseg.train.augment import fruit_masks
from fruitseg.train.calibrate import calibrate_classifier, write_calibration

from conftest import FIXTURES, ROOT

needs_int8 = pytest.mark.skipif(not int8_available(), reason="no FBGEMM quantized engine (not an x86 build)")
SHIPPED = ROOT / "checkpoints" / "classifier"


def fixture_fruits() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((FIXTURES / "fruits").glob("*.jpg"))]


def trained_looking_model() -> FruitsClassificationModel:
    """A random model whose BatchNorm statistics are not the identity, so folding matters."""
    torch.manual_seed(0)
    model = FruitsClassificationModel(num_classes=5).eval()
    for block in (model.layer1, model.layer2, model.layer3):
        block[1].running_mean.uniform_(-0.5, 0.5)
        block[1].running_var.uniform_(0.5, 2.0)
    return model


@pytest.fixture(scope="module")
def shipped() -> FruitsClassificationModel:
    return FruitsClassificationModel.from_pretrained(SHIPPED).eval()


def test_the_shipped_config_carries_a_calibration_for_every_quantized_activation(shipped):
    calibration = shipped.int8_calibration
    assert calibration is not None, "checkpoints/classifier/config.json lacks int8_calibration"
    for name in ACTIVATIONS:
        scale, zero_point = calibration[name]
        assert scale > 0 and 0 <= zero_point <= 127
    assert calibration["images"] >= 1000  # measured on training frames, not on a handful


def test_calibration_measures_each_activation_with_or_without_folded_batchnorm():
    model = trained_looking_model()
    x = torch.randn(6, 3, 100, 100)
    ranges = calibrate(fold_batchnorm(model), [x[:3], x[3:]])
    assert set(ranges) == set(ACTIVATIONS)
    # The input observer saw the input's own range (7 bits: scale ~ (max - min) / 127).
    scale, zero_point = ranges["input"]
    assert 0.5 * float(x.max() - x.min()) / 127 < scale < 1.5 * float(x.max() - x.min()) / 127
    assert ranges["layer1"][1] == 0  # after a ReLU: nothing below zero to represent
    # fuse_modules folds the BatchNorm itself: the unfolded model observes the same ranges
    unfolded = calibrate(model, [x[:3], x[3:]])
    for name in ACTIVATIONS:
        assert unfolded[name][1] == ranges[name][1] and unfolded[name][0] == pytest.approx(ranges[name][0], rel=1e-4)


@needs_int8
def test_the_int8_model_is_torch_ao_quantized_modules_with_the_stored_ranges(shipped):
    model = int8_classifier(shipped, shipped.int8_calibration)
    assert isinstance(model[0], Quantize) and isinstance(model[4], DeQuantize)
    assert float(model[0].scale) == pytest.approx(shipped.int8_calibration["input"][0])
    for index, name in enumerate(ACTIVATIONS[1:], start=1):
        conv = model[index][0]
        assert isinstance(conv, ConvReLU2d)
        assert (conv.scale, conv.zero_point) == pytest.approx(tuple(shipped.int8_calibration[name]))
        weight = conv.weight()  # int8 per output channel, symmetric: every zero point 0
        assert weight.dtype == torch.qint8 and weight.q_per_channel_scales().numel() == conv.out_channels
        assert not weight.q_per_channel_zero_points().any()
    assert isinstance(model[-1], torch.nn.Linear)  # the logits stay float32


@needs_int8
def test_int8_logits_follow_the_float_model_on_real_fruit(shipped):
    images = fixture_fruits()
    x = to_tensor([square_on_white(image, 100) for image in images], shipped)
    with torch.inference_mode():
        expected = shipped(x.contiguous())
        got = int8_classifier(shipped, shipped.int8_calibration)(x)
        folded_first = int8_classifier(fold_batchnorm(shipped), shipped.int8_calibration)(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got.argmax(1), expected.argmax(1))
    spread = float(expected.max() - expected.min())
    assert float((got - expected).abs().max()) < 0.1 * spread
    assert float((got - expected).abs().max()) > 1e-4  # it does round: this is not the float model
    assert float((folded_first - got).abs().max()) < 1e-3 * spread


@needs_int8
def test_calibrating_fixture_frames_gives_a_working_int8_model(shipped, tmp_path):
    images = np.stack([np.asarray(square_on_white(image, 100)) for image in fixture_fruits()])
    calibration = calibrate_classifier(shipped, torch.from_numpy(images), fruit_masks(images), cutout_fraction=0.5, seed=3)
    assert calibration["images"] == len(images) and calibration["seed"] == 3
    shipped.save_pretrained(tmp_path)
    write_calibration(tmp_path, calibration)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["int8_calibration"] == calibration and config["class_names"] == shipped.class_names
    reloaded = FruitsClassificationModel.from_pretrained(tmp_path)
    classifier = Classifier(reloaded, "cpu", path="int8")
    assert classifier.precision == "int8" and classifier.inference_path.startswith("int8: int8 convolutions (torch.ao")
    names = [p.label for p in classifier.predict(fixture_fruits())]
    assert names == [p.label for p in Classifier(shipped, "cpu", path="float32").predict(fixture_fruits())]


def test_int8_needs_every_range_and_sane_ones(shipped):
    if not int8_available():
        pytest.skip("no FBGEMM quantized engine")
    partial = {name: shipped.int8_calibration[name] for name in ACTIVATIONS[:2]}
    with pytest.raises(ValueError, match="lacks"):
        int8_classifier(shipped, partial)
    with pytest.raises(ValueError, match="scale > 0"):
        int8_classifier(shipped, {**shipped.int8_calibration, "layer2": [0.0, 0]})


def test_a_model_without_calibration_has_no_int8_path(shipped):
    uncalibrated = FruitsClassificationModel(**{**shipped._hub_mixin_config, "int8_calibration": None})
    uncalibrated.load_state_dict(shipped.state_dict())
    assert "int8" not in classifier_paths(uncalibrated.eval(), torch.device("cpu"))
    with pytest.raises(ValueError, match="'int8' is not available"):
        Classifier(uncalibrated.eval(), "cpu", path="int8")


def test_fine_tuning_from_a_calibrated_model_drops_its_calibration(shipped):
    """``--init-from`` loads with int8_calibration=None: new weights need new ranges."""
    fresh = FruitsClassificationModel.from_pretrained(SHIPPED, int8_calibration=None)
    assert fresh.int8_calibration is None and shipped.int8_calibration is not None


def test_importing_the_int8_module_leaves_the_warning_filters_alone():
    before = list(warnings.filters)
    importlib.reload(quantized)
    assert warnings.filters == before


@needs_int8
def test_building_the_int8_model_shows_no_deprecation_noise_but_keeps_the_callers_filters(shipped):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        int8_classifier(shipped, shipped.int8_calibration)
        warnings.warn("the caller's own warning", UserWarning)
    assert [str(w.message) for w in caught] == ["the caller's own warning"]
