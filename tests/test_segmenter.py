"""FCNTransformerNet's layout (encoder -> transformer -> decoder -> head for every preset) and
the shipped segmenters, whose files predate that layout, loading strictly with the same outputs."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from fruitseg.models.segmenter import PRESETS, FCNTransformerNet, SkipDecoder, TokenDecoder

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ["segmenter", "segmenter-light", "segmenter-lite2"]


def tiny(skip_stage):
    torch.manual_seed(0)
    return FCNTransformerNet(
        backbone="resnet18", backbone_stage=3, dilated=False, skip_stage=skip_stage,
        d_model=32, nhead=2, num_layers=1, dim_feedforward=64, dropout=0.0,
    ).eval()  # fmt: skip


@pytest.mark.parametrize("preset", list(PRESETS))
def test_every_preset_has_every_stage(preset):
    with torch.device("meta"):
        model = FCNTransformerNet.from_preset(preset)
    assert isinstance(model.encoder, nn.TransformerEncoder)
    decoder = SkipDecoder if PRESETS[preset].get("skip_stage") else TokenDecoder
    assert type(model.decoder) is decoder
    assert isinstance(model.head, nn.Conv2d)
    assert (model.head.in_channels, model.head.out_channels) == (model.decoder.out_channels, 2)


@pytest.mark.parametrize("skip_stage", [None, 1])
def test_state_dicts_of_the_earlier_layout_load_strictly_with_the_same_outputs(skip_stage):
    # Before the head was its own module: the skip decoder held it (decoder.classifier.*), and
    # without a skip map it was a per-token nn.Linear (head.weight of shape (C, d_model)).
    model = tiny(skip_stage)
    legacy = {}
    for key, value in model.state_dict().items():
        if key.startswith("head."):
            if skip_stage is None:
                value = value.flatten(1) if key == "head.weight" else value
            else:
                key = "decoder.classifier." + key[len("head.") :]
        legacy[key] = value.clone()
    current = {k: v.shape for k, v in model.state_dict().items()}
    assert {k: v.shape for k, v in legacy.items()} != current

    restored = tiny(skip_stage)
    for p in restored.parameters():
        nn.init.zeros_(p) if p.ndim == 1 else nn.init.normal_(p)
    restored.load_state_dict(legacy, strict=True)
    x = torch.randn(2, 3, 64, 80)
    with torch.inference_mode():
        assert torch.equal(restored(x), model(x))


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_segmenters_load_strictly(name, tmp_path):
    folder = ROOT / "checkpoints" / name
    model = FCNTransformerNet.from_pretrained(folder).eval()  # strict: any unmapped key is an error
    stored = load_file(folder / "model.safetensors")
    head = stored.get("head.weight", stored.get("decoder.classifier.weight"))
    assert torch.equal(model.head.weight, head.reshape(model.head.weight.shape))

    # Saved again in the current layout, the model reads back to the same outputs.
    model.save_pretrained(tmp_path)
    again = FCNTransformerNet.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(again(x), model(x))


def test_pretrained_backbone_without_network_gives_a_clear_error(monkeypatch, tmp_path):
    # The network is cut here (no probing of a real host): an empty torch hub cache must download.
    def offline(*args, **kwargs):
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "urlopen", offline)
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    try:
        with pytest.raises(RuntimeError, match="could not be downloaded.*offline"):
            FCNTransformerNet.from_preset("light", pretrained_backbone=True)
    finally:
        torch.hub.set_dir(previous)
