"""The training entry points run end to end on a tiny dataset, write metrics, and resume."""

import json
from pathlib import Path

import pytest
import torch

from fruitseg.data.fruits360 import list_images, split_by_frame_blocks
from fruitseg.models import FCNTransformerNet, FruitsClassificationModel
from fruitseg.train.__main__ import main

FIXTURES = Path(__file__).parent / "fixtures"


def test_classifier_training_writes_a_loadable_model_and_resumes(tmp_path, tiny_fruits360):
    out, work = tmp_path / "out", tmp_path / "work"
    common = ["classifier", "--data", str(tiny_fruits360), "--out", str(out), "--work-dir", str(work), "--batch-size", "16"]
    main(common + ["--epochs", "1"])
    first = json.loads((work / "metrics.json").read_text())
    assert [h["epoch"] for h in first] == [1]
    validation = len(split_by_frame_blocks(list_images(tiny_fruits360))[1])
    for key in ("val_top1", "average_val_top1"):  # the weight average is evaluated (and exported) too
        hits = first[0][key] * validation  # a share of the held-out frames
        assert hits == pytest.approx(round(hits), abs=1e-3), (key, first[0][key], validation)
    main(common + ["--epochs", "2", "--resume"])
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first[0]  # the resumed run keeps epoch 1
    assert (out / "training_curves.png").stat().st_size > 0 and (out / "metrics.csv").exists()
    model = FruitsClassificationModel.from_pretrained(out)
    assert model.fc.weight.dtype == torch.float32  # stored as float16, loaded into float32
    assert len(model.mean) == 3 and model.class_names[0] == "Apple Braeburn"
    calibration = model.int8_calibration  # the last step measured the int8 ranges of what was exported
    assert calibration["images"] > 0
    assert all(calibration[name][0] > 0 for name in ("input", "layer1", "layer2", "layer3"))

    # a fresh schedule from the saved model keeps its preprocessing and starts where it left off
    tuned = tmp_path / "tuned"
    main(["classifier", "--data", str(tiny_fruits360), "--out", str(tuned), "--work-dir", str(tmp_path / "work2"),
          "--batch-size", "16", "--epochs", "1", "--lr", "1e-9", "--init-from", str(out)])
    again = FruitsClassificationModel.from_pretrained(tuned)
    assert again.mean == model.mean
    assert again.int8_calibration is not None  # measured anew for the tuned weights
    assert torch.allclose(again.fc.weight, model.fc.weight, atol=1e-2)


def test_segmenter_training_runs_on_scenes(tmp_path, tiny_fruits360):
    out = tmp_path / "out"
    main(
        ["segmenter", "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"),
         "--out", str(out), "--work-dir", str(tmp_path / "work"), "--size", "64", "--image-size", "96",
         "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--val-scenes", "2", "--workers", "0"]
    )
    model = FCNTransformerNet.from_pretrained(out)
    assert model.image_size == 96 and model.class_names == ["background", "fruit"]
    history = json.loads((out / "metrics.json").read_text())
    assert [h["epoch"] for h in history] == [1] and history[0]["train_loss"] > 0  # NaN fails too


@pytest.mark.parametrize("native_bfloat16", [True, False], ids=["cpu-with-avx512-bf16", "avx2-only-cpu"])
def test_auto_precision_is_bfloat16_only_where_the_device_runs_it_natively(monkeypatch, native_bfloat16):
    from fruitseg.train import common
    from fruitseg.train.common import autocast_context

    cpu = torch.device("cpu")
    monkeypatch.setattr(common, "has_fast_bfloat16", lambda device: native_bfloat16)  # each CPU kind
    with autocast_context(cpu, "auto")():
        assert torch.is_autocast_enabled("cpu") is native_bfloat16
        if native_bfloat16:
            assert torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_context(cpu, "bf16")():
        assert torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    with autocast_context(cpu, "none")():
        assert not torch.is_autocast_enabled("cpu")


def test_lite0_segmenter_trains_on_photo_like_scenes_and_real_masks(tmp_path, tiny_fruits360):
    """The EfficientNet-Lite0 preset from ImageNet, on the photo-like mix with real masked photos in each batch."""
    import numpy as np
    from PIL import Image

    from fruitseg.masks import fruit_mask

    real = tmp_path / "real"
    real.mkdir()
    for path in sorted((FIXTURES / "fruits").glob("*.jpg"))[:3]:  # stand-ins for real photos with hand masks
        image = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(image).save(real / f"fixture_{path.stem}.jpg")
        Image.fromarray(fruit_mask(image).astype(np.uint8) * 255).save(real / f"fixture_{path.stem}.png")
    out = tmp_path / "out"
    main(
        ["segmenter", "--preset", "lite0", "--pretrained-backbone", "--photo-like", "--real-masks", str(real),
         "--real-per-batch", "1", "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"),
         "--out", str(out), "--work-dir", str(tmp_path / "work"), "--size", "64", "--image-size", "96",
         "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "2", "--val-scenes", "2", "--workers", "0"]
    )
    model = FCNTransformerNet.from_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    assert config["backbone"] == "efficientnet_lite0" and config["pretrained_backbone"] is False
    assert model(torch.zeros(1, 3, 64, 80)).shape == (1, 2, 64, 80)


def test_warm_start_copies_what_a_deeper_preset_shares_and_keeps_the_rest(tmp_path, tiny_fruits360):
    """``--warm-start``: the trained stride-16 lite0's weights seed the stride-32 preset where names and shapes match."""
    from fruitseg.train.common import load_matching_weights

    shallow_dir = tmp_path / "lite0"
    shallow = FCNTransformerNet.from_preset("lite0")
    shallow.save_pretrained(shallow_dir)
    deep = FCNTransformerNet.from_preset("lite0-s32")
    before = {k: v.clone() for k, v in deep.state_dict().items()}
    copied, kept = load_matching_weights(deep, shallow_dir)
    after, source = deep.state_dict(), shallow.state_dict()
    assert copied and kept and not set(copied) & set(kept) and set(copied) | set(kept) == set(after)
    for name in copied:
        assert torch.equal(after[name], source[name]), name
    for name in kept:
        assert torch.equal(after[name], before[name]), name
    assert "encoder.layers.0.self_attn.in_proj_weight" in copied and "head.weight" in copied
    assert "input_proj.weight" in kept  # 320 -> 128 here, 112 -> 128 there
    assert any(k.startswith("backbone.features.blocks.6.") for k in kept)  # only the deeper encoder has it

    out = tmp_path / "out"
    main(["segmenter", "--preset", "lite0-s32", "--warm-start", str(shallow_dir), "--data", str(tiny_fruits360),
          "--backgrounds", str(FIXTURES / "backgrounds"), "--out", str(out), "--work-dir", str(tmp_path / "work"),
          "--size", "64", "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--val-scenes", "2",
          "--workers", "0", "--lr", "1e-9"])
    trained = FCNTransformerNet.from_pretrained(out)
    assert trained.output_stride == 32
    assert torch.allclose(trained.state_dict()["head.weight"], source["head.weight"], atol=1e-4)
    with pytest.raises(SystemExit):  # one way to start at a time
        main(["segmenter", "--init-from", str(shallow_dir), "--warm-start", str(shallow_dir),
              "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds")])


def test_seed_cnn_learns_from_the_photo_classifier_on_real_photo_cutouts(tmp_path, tiny_fruits360):
    """``--distill-photos``: the app's cut-outs of real photos, labelled by the photo classifier within the photo's kind."""
    from safetensors import safe_open

    from fruitseg.labels import FRUITS360_CLASSES, kind_of
    from fruitseg.train.teacher_cutouts import cached_teacher_cutouts

    photos = FIXTURES / "photos"  # one real grocery photo each of apple, banana, limes, pomegranate
    cache = tmp_path / "work" / "teacher_cutouts.safetensors"
    images, targets = cached_teacher_cutouts(photos, cache)
    assert images.dtype == torch.uint8 and images.shape[1:] == (100, 100, 3) and len(images) == len(targets) >= 2
    assert torch.allclose(targets.sum(1), torch.ones(len(targets)), atol=1e-5)
    kinds = {kind_of(FRUITS360_CLASSES[c]) for c in targets.nonzero()[:, 1].tolist()}
    assert kinds <= {"Apple", "Banana", "Lime", "Pomegranate"}  # each row within its photo's kind
    assert all(len({kind_of(FRUITS360_CLASSES[c]) for c in row.nonzero()[:, 0].tolist()}) == 1 for row in targets)
    white = (images.float().mean(-1) > 250).float().mean()
    assert 0.05 < white < 0.95  # fruit cut out on white, as the app hands it to the seed CNN
    with safe_open(str(cache), "pt") as f:
        assert f.metadata()["photos"] == str(photos.resolve()) and len(f.metadata()["teacher"]) == 16

    out = tmp_path / "out"
    main(["classifier", "--data", str(tiny_fruits360), "--out", str(out), "--work-dir", str(tmp_path / "work"),
          "--batch-size", "16", "--epochs", "1", "--distill-photos", str(photos), "--distill-per-batch", "4"])
    history = json.loads((out / "metrics.json").read_text())
    assert 0 < history[0]["train_distill_loss"] < history[0]["train_loss"]  # the total holds the frames' loss too
    assert FruitsClassificationModel.from_pretrained(out).int8_calibration is not None


def test_segmenter_learns_from_pseudo_masks_and_ignores_their_unsure_pixels(tmp_path, tiny_fruits360):
    """``pseudo-masks``: the app's own masks on unlabelled photos, unsure pixels marked; the
    segmenter trains on them with those pixels costing nothing, and they are not measured."""
    import numpy as np
    from PIL import Image

    from fruitseg.data.real_masks import IGNORE, UNSURE_VALUE, RealMasks, load_pair, mask_pairs
    from fruitseg.evaluate import evaluate_real_masks
    from fruitseg.pipeline import FruitPipeline
    from fruitseg.predictors import Segmenter
    from fruitseg.train.pseudo_masks import write_pseudo_masks
    from fruitseg.train.segmenter import dice_loss

    pseudo = tmp_path / "pseudo"
    main(["pseudo-masks", "--photos", str(FIXTURES / "photos"), "--out", str(pseudo), "--max-side", "160", "--min-fruit", "0"])
    pairs = mask_pairs(pseudo)
    assert [p.stem.split("_", 1)[0] for p, _ in pairs] == ["apple", "banana", "lime", "pomegranate"]
    for photo, mask in pairs:
        values = np.asarray(Image.open(mask))
        assert set(np.unique(values)) <= {0, UNSURE_VALUE, 255} and max(Image.open(photo).size) == 160
        assert (values == 255).mean() > 0.05 and (values == 0).mean() > 0.01  # grocery photos: fruit and not
        assert load_pair(photo, mask)[1][values == UNSURE_VALUE].tolist() == [IGNORE] * int((values == UNSURE_VALUE).sum())
    summary = json.loads((pseudo / "pseudo_masks.json").read_text())
    assert summary["photos"] == 4 and summary["left_out"] == {} and len(summary["teacher"]["sha256"]) == 16
    shares = sorted((np.asarray(Image.open(mask)) == 255).mean() for _, mask in pairs)
    # a photo where the teacher is sure of too little fruit is left out (it has missed the fruit)
    strict = write_pseudo_masks(FIXTURES / "photos", tmp_path / "strict", Segmenter.load("cpu"), min_fruit=shares[1] + 1e-3, max_side=160)
    assert strict["photos"] == 2 and sum(strict["left_out"].values()) == 2 and len(list((tmp_path / "strict").glob("*.png"))) == 2
    assert abs(summary["fruit_share"] + summary["background_share"] + summary["unsure_share"] - 1) < 1e-3
    # the teacher agrees with its own sure pixels (it saw the photo unmirrored and mirrored)
    pipeline = FruitPipeline(None, Segmenter.load("cpu"))
    assert evaluate_real_masks(pipeline, pseudo, grabcut=False)["all"]["segmenter_iou"] > 0.9

    _, labels = RealMasks(pseudo, 64)[0]
    assert labels.dtype == torch.int64 and set(labels.unique().tolist()) <= {0, 1, IGNORE}
    target = torch.tensor([[[0, 1], [IGNORE, IGNORE]]])
    logits = torch.randn(1, 2, 2, 2)
    changed = logits.clone()
    changed[..., 1, :] = torch.randn(2, 2) * 10  # only the unsure row differs
    for loss in (dice_loss, lambda x, t: torch.nn.functional.cross_entropy(x, t, ignore_index=IGNORE)):
        assert torch.allclose(loss(logits, target), loss(changed, target))

    out = tmp_path / "out"
    main(["segmenter", "--preset", "lite0", "--pseudo-masks", str(pseudo), "--pseudo-per-batch", "2",
          "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"), "--out", str(out),
          "--work-dir", str(tmp_path / "work"), "--size", "64", "--epochs", "1", "--steps-per-epoch", "2",
          "--batch-size", "2", "--val-scenes", "2", "--workers", "0"])
    assert np.isfinite(json.loads((out / "metrics.json").read_text())[0]["train_loss"])
