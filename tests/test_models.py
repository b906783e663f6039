"""The two architectures: shapes, input checks, config round trips, strict safetensors loading."""

import json

import pytest
import torch
from safetensors.torch import save_file

from fruitseg.models import PRESETS, FCNTransformerNet, FruitsClassificationModel
from fruitseg.models.segmenter import sine_positions


def test_classifier_architecture_matches_the_design():
    model = FruitsClassificationModel()
    for name, (c_in, c_out) in {"layer1": (3, 32), "layer2": (32, 64), "layer3": (64, 128)}.items():
        block = getattr(model, name)
        conv, bn, relu, pool = block
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.padding) == (c_in, c_out, (5, 5), (2, 2))
        assert isinstance(bn, torch.nn.BatchNorm2d) and isinstance(relu, torch.nn.ReLU)
        assert isinstance(pool, torch.nn.MaxPool2d) and pool.kernel_size == 2
    assert (model.fc.in_features, model.fc.out_features) == (18432, 131)
    keys = set(model.state_dict())
    assert {"layer1.0.weight", "layer1.1.running_mean", "layer3.0.bias", "fc.weight", "fc.bias"} <= keys
    assert all(k.split(".")[0] in {"layer1", "layer2", "layer3", "fc"} for k in keys)


def test_classifier_forward_shape_and_input_check():
    model = FruitsClassificationModel().eval()
    assert model(torch.randn(2, 3, 100, 100)).shape == (2, 131)
    with pytest.raises(ValueError, match=r"\(B, 3, 100, 100\).*\(2, 3, 64, 64\)"):
        model(torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="100"):
        model(torch.randn(3, 100, 100))


def test_classifier_loads_a_state_dict_of_the_original_design():
    # The original module layout, written out independently: the same keys and shapes.
    reference = torch.nn.ModuleDict(
        {
            "layer1": torch.nn.Sequential(torch.nn.Conv2d(3, 32, 5, padding=2), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2)),
            "layer2": torch.nn.Sequential(torch.nn.Conv2d(32, 64, 5, padding=2), torch.nn.BatchNorm2d(64), torch.nn.ReLU(), torch.nn.MaxPool2d(2)),
            "layer3": torch.nn.Sequential(torch.nn.Conv2d(64, 128, 5, padding=2), torch.nn.BatchNorm2d(128), torch.nn.ReLU(), torch.nn.MaxPool2d(2)),
            "fc": torch.nn.Linear(18432, 131),
        }
    )
    model = FruitsClassificationModel()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(1, 3, 100, 100)
    reference.eval(), model.eval()
    expected = reference["fc"](torch.flatten(reference["layer3"](reference["layer2"](reference["layer1"](x))), 1))
    torch.testing.assert_close(model(x), expected)


def test_default_segmenter_is_the_original_configuration():
    model = FCNTransformerNet(num_classes=2)
    assert model.d_model == 2048 and model.output_stride == 8
    layer = model.encoder.layers[0]
    assert len(model.encoder.layers) == 6 and layer.self_attn.num_heads == 8 and layer.self_attn.batch_first
    # The backbone keeps its own conv1 (a ResNet stem: 64 filters of 7x7, stride 2).
    conv1 = model.backbone.conv1
    assert (conv1.in_channels, conv1.out_channels, conv1.kernel_size, conv1.stride) == (3, 64, (7, 7), (2, 2))
    assert model.backbone.return_layers == {"layer4": "out"}


def test_default_segmenter_output_shape_4x2x512x512():
    # The full-size shape check runs on the meta device (no memory, no compute) ...
    with torch.device("meta"):
        model = FCNTransformerNet(num_classes=2)
        assert model(torch.randn(4, 3, 512, 512)).shape == (4, 2, 512, 512)


def test_default_segmenter_computes_real_logits_on_a_small_input():
    # ... and real numbers flow through the same code on a small image.
    torch.manual_seed(0)
    model = FCNTransformerNet(num_classes=2).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 3, 72, 88))
    assert out.shape == (1, 2, 72, 88) and torch.isfinite(out).all()


@pytest.mark.parametrize("size", [(320, 320), (333, 517), (64, 97)])
def test_light_segmenter_gives_logits_at_the_input_size(size):
    model = FCNTransformerNet.from_preset("light").eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 3, *size))
    assert out.shape == (2, 2, *size) and torch.isfinite(out).all()


def test_other_backbones_and_widths():
    model = FCNTransformerNet(backbone="mobilenet_v3_large", d_model=64, nhead=4, num_layers=1, dim_feedforward=128).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, 96, 130)).shape == (1, 2, 96, 130)
    with pytest.raises(ValueError, match="BasicBlock"):
        FCNTransformerNet(backbone="resnet18", dilated=True)
    with pytest.raises(ValueError, match="unknown backbone"):
        FCNTransformerNet(backbone="vgg11")
    with pytest.raises(ValueError, match="divisible"):
        FCNTransformerNet(backbone="resnet18", dilated=False, d_model=100, nhead=8)


def test_segmenter_input_checks():
    model = FCNTransformerNet.from_preset("light").eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="at least 32x32"):
        model(torch.randn(1, 3, 16, 64))


def test_positions_differ_per_location_and_work_for_any_grid():
    codes = sine_positions(7, 11, 64)
    assert codes.shape == (77, 64)
    assert torch.unique(codes, dim=0).shape[0] == 77  # every cell has its own code


@pytest.mark.parametrize("make", [lambda: FruitsClassificationModel(), lambda: FCNTransformerNet.from_preset("light")])
def test_save_and_load_round_trip_reproduces_logits_exactly(tmp_path, make):
    torch.manual_seed(0)
    model = make().eval()
    size = 100 if isinstance(model, FruitsClassificationModel) else 96
    x = torch.randn(2, 3, size, size)
    model.save_pretrained(tmp_path)
    assert {"config.json", "model.safetensors"} <= {p.name for p in tmp_path.iterdir()}
    loaded = type(model).from_pretrained(tmp_path)
    assert loaded.__class__ is model.__class__ and not loaded.training
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))


def test_config_travels_with_the_weights(tmp_path):
    FCNTransformerNet.from_preset("light", image_size=288).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["backbone"] == "resnet18" and config["image_size"] == 288 and config["class_names"] == ["background", "fruit"]
    loaded = FCNTransformerNet.from_pretrained(tmp_path)
    assert loaded.image_size == 288 and loaded.d_model == PRESETS["light"]["d_model"]


def test_loading_is_strict_about_keys(tmp_path):
    model = FruitsClassificationModel()
    model.save_pretrained(tmp_path)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    state["fc.weights"] = state.pop("fc.weight")  # a misspelt key
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(RuntimeError, match="fc.weight"):
        FruitsClassificationModel.from_pretrained(tmp_path)


def test_pickled_checkpoints_are_refused(tmp_path):
    with pytest.raises(ValueError, match="safetensors only"):
        FruitsClassificationModel._load_as_pickle(FruitsClassificationModel(), str(tmp_path / "pytorch_model.bin"), "cpu", True)
