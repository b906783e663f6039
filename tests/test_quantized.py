"""int8 CPU inference: calibration travels in config.json, and the int8 model names the
fruit the float model names."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from fruitseg.device import has_fast_bfloat16
from fruitseg.models import FruitsClassificationModel
from fruitseg.models.quantized import ACTIVATIONS, Int8Classifier, calibrate, int8_available
from fruitseg.models.winograd import WinogradClassifier
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.predictors import Classifier, square_on_white, to_tensor
from fruitseg.train.augment import fruit_masks
from fruitseg.train.calibrate import calibrate_classifier, write_calibration

from conftest import FIXTURES, ROOT

needs_int8 = pytest.mark.skipif(not int8_available(), reason="no FBGEMM quantized engine (not an x86 build)")
SHIPPED = ROOT / "checkpoints" / "classifier"


def fixture_fruits() -> list[Image.Image]:
    return [Image.open(path).convert("RGB") for path in sorted((FIXTURES / "fruits").glob("*.jpg"))]


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


def test_calibration_measures_each_activation():
    torch.manual_seed(0)
    folded = fold_batchnorm(FruitsClassificationModel(num_classes=5).eval())
    x = torch.randn(6, 3, 100, 100)
    ranges = calibrate(folded, [x[:3], x[3:]])
    assert set(ranges) == set(ACTIVATIONS)
    # The input observer saw the input's own range (7 bits: scale ~ (max - min) / 127).
    scale, zero_point = ranges["input"]
    assert 0.5 * float(x.max() - x.min()) / 127 < scale < 1.5 * float(x.max() - x.min()) / 127
    assert ranges["layer1"][1] == 0  # after a ReLU: nothing below zero to represent


@needs_int8
def test_int8_logits_follow_the_float_model_on_real_fruit(shipped):
    images = fixture_fruits()
    x = to_tensor([square_on_white(image, 100) for image in images], shipped.mean, shipped.std)
    folded = fold_batchnorm(shipped)
    with torch.inference_mode():
        expected = shipped(x.contiguous())
        got = Int8Classifier(folded, shipped.int8_calibration)(x)
    assert got.dtype == torch.float32 and got.shape == expected.shape
    assert torch.equal(got.argmax(1), expected.argmax(1))
    spread = float(expected.max() - expected.min())
    assert float((got - expected).abs().max()) < 0.1 * spread


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
    classifier = Classifier(reloaded, "cpu")
    if has_fast_bfloat16(torch.device("cpu")):
        pytest.skip("this CPU runs bfloat16 natively: the int8 path is not used here")
    assert isinstance(classifier.fast_model, Int8Classifier) and "int8" in classifier.inference_path
    assert classifier.precision == "int8"
    names = [p.label for p in classifier.predict(fixture_fruits())]
    assert names == [p.label for p in Classifier(shipped, "cpu").predict(fixture_fruits())]


def test_int8_needs_every_range_and_folded_batchnorm(shipped):
    if not int8_available():
        pytest.skip("no FBGEMM quantized engine")
    partial = {name: shipped.int8_calibration[name] for name in ACTIVATIONS[:2]}
    with pytest.raises(ValueError, match="lacks"):
        Int8Classifier(fold_batchnorm(shipped), partial)
    with pytest.raises(ValueError, match="fold the BatchNorm"):
        Int8Classifier(shipped, shipped.int8_calibration)


def test_a_model_without_calibration_runs_in_float32(shipped):
    uncalibrated = FruitsClassificationModel(**{**shipped._hub_mixin_config, "int8_calibration": None})
    uncalibrated.load_state_dict(shipped.state_dict())
    classifier = Classifier(uncalibrated.eval(), "cpu")
    if has_fast_bfloat16(torch.device("cpu")):
        pytest.skip("this CPU runs bfloat16 natively")
    assert isinstance(classifier.fast_model, WinogradClassifier) and "Winograd" in classifier.inference_path
    assert classifier.precision == "float32"


def test_fine_tuning_from_a_calibrated_model_drops_its_calibration(shipped):
    """``--init-from`` loads with int8_calibration=None: new weights need new ranges."""
    fresh = FruitsClassificationModel.from_pretrained(SHIPPED, int8_calibration=None)
    assert fresh.int8_calibration is None and shipped.int8_calibration is not None
