"""Which inference path the seed classifier takes, on each kind of CPU, and why; the photo
classifier's BatchNorm folding.

The CPU kind (native bfloat16 or not, an FBGEMM engine or not) and the timings are
injected, so every branch is checked on any machine; one test also measures for real.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

import fruitseg.device
import fruitseg.predictors
from fruitseg.device import TIMED_BATCHES, machine_key
from fruitseg.models import FruitsClassificationModel
from fruitseg.models.folding import conv_batchnorm_pairs, fold_batchnorm_into_convs
from fruitseg.predictors import Classifier, PhotoClassifier, classifier_paths

from conftest import FIXTURES, ROOT

SHIPPED = ROOT / "checkpoints" / "classifier"
# Milliseconds per image at batch 1 and 8. "avx2": this project's AVX2-only EPYC VM; "bf16": the
# AVX-512-BF16 one of issue 17 (int8 1.0 ms vs bfloat16 2.6 ms at batch 1, 304 vs 600 images/s
# at batch 64; tuned float32 3.5 ms, Winograd 6.3 ms).
TIMINGS = {
    "avx2": {"int8": {1: 7.6, 8: 5.9}, "winograd": {1: 8.7, 8: 8.3}, "float32": {1: 11.0, 8: 12.5}},
    "bf16": {"int8": {1: 1.0, 8: 1.5}, "bfloat16": {1: 2.6, 8: 2.4}, "float32": {1: 3.5, 8: 3.3}, "winograd": {1: 6.3, 8: 5.0}},
}


@pytest.fixture(scope="module")
def shipped() -> FruitsClassificationModel:
    return FruitsClassificationModel.from_pretrained(SHIPPED).eval()


@pytest.fixture()
def uncalibrated(shipped) -> FruitsClassificationModel:
    model = FruitsClassificationModel(**{**shipped._hub_mixin_config, "int8_calibration": None})
    model.load_state_dict(shipped.state_dict())
    return model.eval()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FRUITSEG_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "paths.json"


def cpu_kind(monkeypatch, kind: str, fbgemm: bool = True) -> None:
    """Make this CPU look like ``kind`` ("avx2" or "bf16"), with or without an FBGEMM engine."""
    monkeypatch.setattr(fruitseg.predictors, "has_fast_bfloat16", lambda device: kind == "bf16" and device.type == "cpu")
    monkeypatch.setattr(fruitseg.predictors, "int8_available", lambda: fbgemm)


def fake_timer(kind: str, calls: list):
    def time_paths(paths, inputs):
        calls.append((sorted(paths), sorted(inputs)))
        return {name: dict(TIMINGS[kind][name]) for name in paths}
    return time_paths


@pytest.mark.parametrize(
    "kind, fbgemm, calibrated, candidates, chosen",
    [
        ("avx2", True, True, ["float32", "int8", "winograd"], "int8"),
        ("avx2", True, False, ["float32", "winograd"], "winograd"),
        ("avx2", False, True, ["float32", "winograd"], "winograd"),  # no FBGEMM: no int8
        ("bf16", True, True, ["bfloat16", "float32", "int8", "winograd"], "int8"),  # not bfloat16, though native
        ("bf16", True, False, ["bfloat16", "float32", "winograd"], "bfloat16"),
    ],
)
def test_the_path_is_the_fastest_candidate_on_each_kind_of_cpu(monkeypatch, shipped, uncalibrated, kind, fbgemm, calibrated, candidates, chosen):
    cpu_kind(monkeypatch, kind, fbgemm)
    calls = []
    monkeypatch.setattr(fruitseg.device, "time_paths", fake_timer(kind, calls))
    model = shipped if calibrated else uncalibrated
    assert sorted(classifier_paths(model, torch.device("cpu"))) == candidates
    classifier = Classifier(model, "cpu")
    assert calls == [(candidates, list(TIMED_BATCHES))]  # every candidate timed once, at batch 1 and 8
    assert classifier.path == chosen and classifier.inference_path.startswith(f"{chosen}: ")
    assert "the fastest here" in classifier.inference_path and "timed once per machine" in classifier.inference_path
    assert classifier.path_timings == {name: TIMINGS[kind][name] for name in candidates}
    assert classifier.precision == {"int8": "int8", "winograd": "float32", "bfloat16": "bfloat16"}[chosen]
    assert (classifier.amp_dtype == torch.bfloat16) == (chosen == "bfloat16")


def test_the_choice_is_cached_per_machine_and_measured_again_elsewhere(monkeypatch, shipped, private_cache):
    cpu_kind(monkeypatch, "avx2")
    calls = []
    monkeypatch.setattr(fruitseg.device, "time_paths", fake_timer("avx2", calls))
    first = Classifier(shipped, "cpu")
    assert len(calls) == 1 and private_cache.exists()
    entry = json.loads(private_cache.read_text())
    [(key, record)] = entry.items()
    assert machine_key(torch.device("cpu")) in key and torch.__version__ in key and record["path"] == "int8"

    again = Classifier(shipped, "cpu")  # same machine: read from the cache, not timed
    assert len(calls) == 1 and again.path == first.path == "int8"
    assert again.inference_path == first.inference_path  # read back, it says the same

    monkeypatch.setattr(fruitseg.device, "cpu_name", lambda: "Another CPU")  # another machine, same cache
    monkeypatch.setattr(fruitseg.device, "time_paths", fake_timer("bf16", calls))
    cpu_kind(monkeypatch, "bf16")
    assert Classifier(shipped, "cpu").path == "int8" and len(calls) == 2
    assert len(json.loads(private_cache.read_text())) == 2

    private_cache.write_text("{not json")  # a damaged cache is measured over
    assert Classifier(shipped, "cpu").path == "int8" and len(calls) == 3


def test_a_requested_path_is_not_timed_and_an_unknown_one_is_refused(monkeypatch, shipped):
    monkeypatch.setattr(fruitseg.device, "time_paths", lambda *args: pytest.fail("timed"))
    exact = Classifier(shipped, "cpu", path="float32")
    assert exact.inference_path == "float32: float32, BN folded, channels-last, inference_mode (as requested)"
    assert exact.precision == "float32" and exact.amp_dtype is None and exact.path_timings == {}
    with pytest.raises(ValueError, match="'float16' is not available on cpu"):
        Classifier(shipped, "cpu", path="float16")


def test_measuring_for_real_picks_the_least_time_per_image(shipped, private_cache):
    classifier = Classifier(shipped, "cpu")
    timings = classifier.path_timings
    assert set(timings) == set(classifier_paths(shipped, torch.device("cpu")))
    assert all(set(by_batch) == set(TIMED_BATCHES) and min(by_batch.values()) > 0 for by_batch in timings.values())
    assert classifier.path == min(timings, key=lambda name: sum(timings[name].values()))
    assert json.loads(private_cache.read_text())  # and it was cached


@pytest.mark.trained_weights
def test_evaluate_float32_runs_plain_float32(tmp_path, tiny_fruits360, monkeypatch):
    from fruitseg.evaluate import main

    cpu_kind(monkeypatch, "bf16")  # where the app would take int8 or bfloat16
    out = tmp_path / "float32.json"
    main(["classifier", "--data", str(tiny_fruits360), "--limit", "12", "--float32", "--device", "cpu", "--json", str(out)])
    results = json.loads(out.read_text())
    assert results["inference_path"].startswith("float32: float32, BN folded") and "bfloat16" not in results["inference_path"]
    assert results["top1"] >= 0.9


# --------------------------------------------------------------------------- BatchNorm folding


class ConvBnAct(nn.Module):
    def __init__(self):
        super().__init__()
        from timm.layers import BatchNormAct2d

        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = BatchNormAct2d(8, act_layer=nn.ReLU6)  # timm's BatchNorm + activation in one module
        self.conv2 = nn.Conv2d(8, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv2(self.bn(self.conv(x))))


class Residual(nn.Module):
    """The convolution's output feeds its BatchNorm and the sum: not foldable."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + y


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-1, 1)
            module.running_var.uniform_(0.5, 2)
            module.weight.data.uniform_(0.5, 2)
            module.bias.data.uniform_(-1, 1)
    return model.eval()


def test_folding_keeps_the_activation_and_the_output():
    model, x = randomise_batchnorm(ConvBnAct()), torch.randn(2, 3, 16, 16)
    assert conv_batchnorm_pairs(model, x) == [("conv", "bn"), ("conv2", "bn2")]
    folded = fold_batchnorm_into_convs(model, x)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert isinstance(folded.bn, nn.Sequential) and isinstance(folded.bn[0], nn.ReLU6) and isinstance(folded.bn2, nn.Identity)
    with torch.no_grad():
        assert torch.allclose(folded(x), model(x), atol=1e-5)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_folding_refuses_a_batchnorm_whose_convolution_output_is_used_elsewhere():
    with pytest.raises(ValueError, match="changed the output"):
        fold_batchnorm_into_convs(randomise_batchnorm(Residual()), torch.randn(1, 3, 8, 8))


def test_the_seed_cnns_batchnorm_folding_is_the_generic_one_and_exact(shipped):
    from fruitseg.models.classifier import fold_batchnorm, folded_convolutions

    x = torch.randn(4, 3, 100, 100, generator=torch.Generator().manual_seed(1))
    assert conv_batchnorm_pairs(shipped, x) == [(f"layer{i}.0", f"layer{i}.1") for i in (1, 2, 3)]  # every block's pair
    model = FruitsClassificationModel.from_pretrained(SHIPPED).train()
    folded = fold_batchnorm(model)
    assert model.training and not folded.training  # the caller's model keeps its mode
    assert [type(block[1]) for block in (folded.layer1, folded.layer2, folded.layer3)] == [nn.Identity] * 3
    assert len(folded_convolutions(folded)) == 3
    with torch.inference_mode():
        got, expected = folded(x), shipped(x)
    assert (got - expected).abs().max() <= 1e-5 * (expected.max() - expected.min())  # float32 rounding only (~1e-6 here)


def test_the_photo_classifier_runs_folded_with_the_same_answers():
    from PIL import Image

    classifier = PhotoClassifier.load("cpu")
    assert not any(isinstance(m, nn.BatchNorm2d) for m in classifier.fast_model.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in classifier.model.modules())  # the model as trained
    photos = [Image.open(path).convert("RGB") for path in sorted((FIXTURES / "photos").glob("*/*.jpg"))]
    x = classifier.preprocess(photos)
    with torch.inference_mode():
        expected = classifier.model(x)
    got = classifier.logits(photos)
    assert (got.argmax(1) == expected.argmax(1).numpy()).all()
    assert abs(got - expected.numpy()).max() < 1e-4 * float(expected.max() - expected.min())
    assert classifier.inference_path == "float32, BN folded, channels-last, inference_mode"
