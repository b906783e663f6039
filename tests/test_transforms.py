"""Each model's preprocessing is its config's: ``model.transforms()`` / ``model.normalise``,
and the predictors and training loops go through it (no mean / std of their own)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fruitseg.models import FCNTransformerNet, FruitsClassificationModel
from fruitseg.models.efficientnet import EfficientNetFruitClassifier
from fruitseg.models.transforms import Normalise
from fruitseg.predictors import Classifier, PhotoClassifier, Segmenter
from fruitseg.train import photo_classifier as train_photo

ROOT = Path(__file__).resolve().parents[1]
# Unlike any class's defaults, so a transform that ignores the config fails.
MEAN, STD = (0.11, 0.52, 0.93), (0.21, 0.34, 0.55)

MAKERS = {
    "classifier": lambda **kw: FruitsClassificationModel(**kw),
    "photo-classifier": lambda **kw: EfficientNetFruitClassifier(image_size=64, **kw),
    "segmenter": lambda **kw: FCNTransformerNet.from_preset("light", image_size=64, **kw),
}


def by_hand(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> (x / 255 - MEAN) / STD in float64."""
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (x.double() / 255 - mean) / std


def pixels(size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_each_model_normalises_with_its_configs_mean_and_std(name):
    model = MAKERS[name](mean=MEAN, std=STD).eval()
    transform = model.transforms()
    assert isinstance(transform, Normalise)
    assert transform.mean.flatten().tolist() == pytest.approx(MEAN) and transform.std.flatten().tolist() == pytest.approx(STD)
    x = pixels()
    out = model.normalise(x)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), by_hand(x), rtol=0, atol=1e-5)
    # float input in [0, 1] gives the same as uint8
    assert torch.equal(model.normalise(x.float() / 255), out)
    # the defaults are something else: the config is what is used
    assert not torch.allclose(MAKERS[name]().normalise(x), out)
    assert not any(k.startswith(("mean", "std")) for k in model.state_dict())  # config, not weights


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_the_transform_travels_with_the_saved_config(tmp_path, name):
    MAKERS[name](mean=MEAN, std=STD).save_pretrained(tmp_path)
    loaded = type(MAKERS[name]()).from_pretrained(tmp_path)
    torch.testing.assert_close(loaded.normalise(pixels()).double(), by_hand(pixels()), rtol=0, atol=1e-5)
    assert loaded.transforms().mean.flatten().tolist() == pytest.approx(MEAN)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_shipped_configs_give_their_transforms(name):
    config_file = ROOT / "checkpoints" / name / "config.json"
    if not config_file.exists():
        pytest.skip(f"no checkpoints/{name}")
    config = json.loads(config_file.read_text())
    transform = Normalise(config["mean"], config["std"])
    x = pixels()
    mean = torch.tensor(config["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(config["std"]).view(1, 3, 1, 1)
    assert torch.equal(transform(x), (x.float() / 255 - mean) / std)


def test_normalise_refuses_what_it_cannot_read():
    transform = Normalise(MEAN, STD)
    with pytest.raises(ValueError, match="3 values"):
        Normalise((0.5, 0.5), STD)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        transform(torch.zeros(3, 8, 8))
    with pytest.raises(TypeError, match="int64"):
        transform(torch.zeros(1, 3, 8, 8, dtype=torch.int64))


def spy(model, monkeypatch) -> list:
    calls = []
    original = model.normalise

    def normalise(x):
        calls.append(tuple(x.shape))
        return original(x)

    monkeypatch.setattr(model, "normalise", normalise)
    return calls


def test_predictors_preprocess_through_the_models_transform(monkeypatch):
    image = Image.fromarray(np.full((50, 70, 3), 200, np.uint8))
    expected = by_hand(torch.full((1, 3, 1, 1), 200, dtype=torch.uint8))

    classifier = Classifier(MAKERS["classifier"](mean=MEAN, std=STD), path="float32")
    calls = spy(classifier.model, monkeypatch)
    x = classifier.preprocess([image])
    assert calls == [(1, 3, 100, 100)]
    # the white padding is 255, the fruit 200: both normalised with the config's mean / std
    torch.testing.assert_close(x[:, :, 50:51, 50:51].double(), expected, rtol=0, atol=1e-5)

    photo = PhotoClassifier(MAKERS["photo-classifier"](mean=MEAN, std=STD))
    calls = spy(photo.model, monkeypatch)
    x = photo.preprocess([image])
    assert calls == [(1, 3, 64, 64)]
    torch.testing.assert_close(x[:, :, :1, :1].double(), expected, rtol=0, atol=1e-5)

    segmenter = Segmenter(MAKERS["segmenter"](mean=MEAN, std=STD), refine_edges=False)
    calls = spy(segmenter.model, monkeypatch)
    segmenter.predict([image])
    assert calls == [(1, 3, 46, 64)]


def test_photo_training_normalises_through_the_models_transform():
    x = pixels()
    photo = MAKERS["photo-classifier"](mean=MEAN, std=STD)
    out = train_photo.normalise(x, photo)
    assert torch.equal(out, photo.normalise(x)) and out.is_contiguous(memory_format=torch.channels_last)
