"""Classifier augmentation (fruitseg.train.augment) and the training weight average."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fruitseg.masks import fruit_mask
from fruitseg.models import FruitsClassificationModel
from fruitseg.train import augment as aug
from fruitseg.train.common import WeightAverage, load_state, save_state

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """The fixture fruits (100x100 on white) as a float batch with their flood-fill masks."""
    images = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((FIXTURES / "fruits").glob("*.jpg"))]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    masks = torch.from_numpy(np.stack([fruit_mask(i) for i in images])).float().unsqueeze(1)
    return x.repeat(4, 1, 1, 1), masks.repeat(4, 1, 1, 1)


def test_augment_is_deterministic_by_generator_and_stays_in_range(batch):
    x, mask = batch
    a = aug.augment(x, mask, torch.Generator().manual_seed(3), cutout_fraction=0.5)
    b = aug.augment(x, mask, torch.Generator().manual_seed(3), cutout_fraction=0.5)
    c = aug.augment(x, mask, torch.Generator().manual_seed(4), cutout_fraction=0.5)
    assert a.shape == x.shape and a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= 0 and a.max() <= 1


def test_geometry_moves_image_and_mask_together_and_fills_white(batch):
    x, mask = batch
    warped, warped_mask = aug.geometric(x, mask, torch.Generator().manual_seed(0))
    outside = (warped_mask == 0).expand_as(warped)
    # Far from the fruit the frame is white, as in Fruits-360 (a little JPEG ringing aside).
    assert warped[outside].mean() > 0.97
    inside = (warped_mask > 0.99).expand_as(warped)
    assert warped[inside].mean() < 0.8


def test_imperfect_mask_is_exact_grown_or_shrunk(batch):
    _, mask = batch
    hard = mask >= 0.5
    out = aug.imperfect_mask(mask, torch.Generator().manual_seed(1)).bool()
    kinds = set()
    for h, o in zip(hard, out):
        if torch.equal(h, o):
            kinds.add("exact")
        elif (o | h).equal(o):
            kinds.add("grown")
        else:
            assert (o & h).equal(o), "a changed mask is either a superset or a subset"
            kinds.add("shrunk")
    assert kinds == {"exact", "grown", "shrunk"}


def test_simulated_cut_out_is_white_outside_its_mask_and_may_carry_a_background_rim(batch):
    x, mask = batch
    generator = torch.Generator().manual_seed(2)
    out = aug.simulate_cut_out(x, mask, generator)
    # With no resampling and no noise the area beyond any grown mask (4 px) is pure white.
    far = aug._dilate((mask >= 0.5).float(), 6) == 0
    assert out.shape == x.shape
    assert (out.clamp(0, 1)[far.expand_as(out)] > 0.9).float().mean() > 0.99
    # Some image kept a rim of (non-white) background around its fruit.
    rim = (aug._dilate((mask >= 0.5).float(), 4) > 0) & (mask == 0)
    rim_darkness = [(1 - o[r.expand_as(o)]).mean().item() for o, r in zip(out, rim)]
    assert max(rim_darkness) > 0.1


def test_scene_colour_changes_colour_but_keeps_the_fruit_recognisable(batch):
    x, mask = batch
    out = aug.scene_colour(x, mask, torch.Generator().manual_seed(5)).clamp(0, 1)
    inside = (mask > 0.5).expand_as(x)
    assert not torch.allclose(out[inside], x[inside])
    assert (out[inside] - x[inside]).abs().mean() < 0.15


def test_weight_average_follows_the_weights_and_resumes(tmp_path):
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.5)
    start = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    average.update(model)  # decay ramps up: min(0.5, 2 / 11)
    assert torch.allclose(average.module[0].weight, start + 1 - 2 / 11)
    average.update(model)
    assert torch.allclose(average.module[0].weight, start + 1 - (2 / 11) * (3 / 12))
    assert average.module[1].num_batches_tracked.item() == model[1].num_batches_tracked.item()

    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    save_state(tmp_path, model, optimizer, None, 1, [], average)
    restored = WeightAverage(torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2)))
    load_state(tmp_path, model, optimizer, None, restored)
    assert torch.equal(restored.module[0].weight, average.module[0].weight) and restored.updates == 2


def test_classifier_dropout_only_acts_in_training():
    model = FruitsClassificationModel(drop_rate=0.5)
    assert set(model.state_dict()) == set(FruitsClassificationModel().state_dict())
    x = torch.randn(2, 3, 100, 100)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model(x), model(x))
