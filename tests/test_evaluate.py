"""The evaluation entry points run on small folders and report sane figures."""

import json

import numpy as np
import pytest
import torch

from fruitseg.device import select_device
from fruitseg.evaluate import evaluate_segmenter, main, validation_banks, validation_scenes
from fruitseg.predictors import Classifier
from fruitseg.provenance import git_commit

from conftest import FIXTURES


def segmenter_path() -> str:
    """Segmenter.inference_path of the app's segmenter (edges refined) on this machine."""
    return f"float32, inference_mode on {select_device().type}, guided-filter edge refinement"


@pytest.mark.trained_weights
def test_classifier_evaluation_on_a_folder_with_some_classes(tmp_path, tiny_fruits360):
    out = tmp_path / "classifier.json"
    main(["classifier", "--data", str(tiny_fruits360), "--json", str(out)])
    results = json.loads(out.read_text())
    assert results["images"] == 6 * 24
    assert results["top1"] >= 0.95 and results["top5"] >= results["top1"]
    assert set(results["per_class_top1"]) == {"Apple Braeburn", "Banana", "Cauliflower", "Grape White", "Lemon", "Onion White"}


@pytest.mark.trained_weights
def test_classifier_evaluation_says_which_path_ran_and_float32_is_on_request(tmp_path, tiny_fruits360):
    default, float32 = tmp_path / "default.json", tmp_path / "float32.json"
    main(["classifier", "--data", str(tiny_fruits360), "--limit", "48", "--json", str(default)])
    main(["classifier", "--data", str(tiny_fruits360), "--limit", "48", "--float32", "--json", str(float32)])
    default, float32 = json.loads(default.read_text()), json.loads(float32.read_text())
    assert "int8" not in float32["inference_path"]
    assert default["inference_path"] == Classifier.load().inference_path  # the app's own
    assert float32["top1"] >= 0.95 and default["top1"] >= 0.95


def test_a_written_evaluation_records_the_commit_and_the_inference_path(tmp_path, tiny_fruits360):
    out = tmp_path / "classifier.json"
    main(["classifier", "--data", str(tiny_fruits360), "--limit", "2", "--json", str(out)])
    results = json.loads(out.read_text())
    assert results["images"] == 2
    record = results["provenance"]
    assert record["commit"].removesuffix("-dirty") == git_commit().removesuffix("-dirty") and record["inference_path"] == results["inference_path"]
    assert record["torch"] == torch.__version__ and record["cpu"]


def test_segmenter_and_pipeline_evaluation_on_scenes_from_given_folders(tmp_path, tiny_fruits360):
    folders = ["--fruits", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"), "--size", "160"]
    main(["segmenter", "--scenes", "3", "--json", str(tmp_path / "seg.json"), *folders])
    seg = json.loads((tmp_path / "seg.json").read_text())
    assert seg["scenes"] == 3 and set(seg) == {"scenes", "fruit_iou", "mean_scene_iou", "pixel_accuracy", "boundary_f1_2px", "provenance"}
    assert seg["provenance"]["inference_path"] == segmenter_path()

    main(["pipeline", "--scenes", "3", "--json", str(tmp_path / "pipe.json"), *folders])
    pipe = json.loads((tmp_path / "pipe.json").read_text())
    assert pipe["scenes"] == 3
    assert pipe["provenance"]["inference_path"] == {"classifier": pipe["classifier_inference_path"], "segmenter": seg["provenance"]["inference_path"]}
    for key in (
        "fruit_found", "segment_then_classify_top1", "cutout_true_mask_top1", "classify_whole_scene_top1",
        "same_scene_on_white_top1",
    ):
        assert 3 * pipe[key] == pytest.approx(round(3 * pipe[key]), abs=1e-4)  # a share of the three scenes


class MaskSegmenter:
    """Answers each scene with a probability map made from its true mask (an oracle, or its opposite)."""

    def __init__(self, scenes, invert: bool = False):
        self.masks = {scene.image.tobytes(): scene.mask.astype(bool) != invert for scene in scenes}

    def predict(self, images):
        return [self.masks[np.asarray(image).tobytes()].astype(np.float32) for image in images]


def test_segmenter_metrics_of_a_perfect_and_of_an_inverted_mask(tiny_fruits360):
    banks = validation_banks(tiny_fruits360, FIXTURES / "backgrounds")
    scenes = list(validation_scenes(3, 0, 96, banks))
    fruit = np.mean([scene.mask.astype(bool).mean() for scene in scenes])
    assert 0 < fruit < 1

    perfect = evaluate_segmenter(MaskSegmenter(scenes), scenes)
    assert (perfect["fruit_iou"], perfect["mean_scene_iou"], perfect["pixel_accuracy"]) == (1.0, 1.0, 1.0)
    assert perfect["boundary_f1_2px"] == 1.0

    inverted = evaluate_segmenter(MaskSegmenter(scenes, invert=True), scenes)
    assert (inverted["fruit_iou"], inverted["mean_scene_iou"], inverted["pixel_accuracy"]) == (0.0, 0.0, 0.0)


def test_kinds_evaluation_on_a_folder_of_real_photos(tmp_path):
    out = tmp_path / "kinds.json"
    main(["kinds", "--data", str(FIXTURES / "photos"), "--json", str(out)])
    results = json.loads(out.read_text())
    assert results["photos"] == 4 and results["kinds"] == ["Apple", "Banana", "Lime", "Pomegranate"]
    assert results["provenance"]["inference_path"] == {**results["inference_paths"], "segmenter": segmenter_path()}
    for model in ("photo_classifier", "seed_cnn"):
        scores = results[model]
        assert set(scores["per_kind_top1"]) == set(results["kinds"])
        for key in ("answer_top1", "whole_image_top1", "surest_fruit_top1", "mean_per_kind_top1"):
            assert scores[key] in (0.0, 0.25, 0.5, 0.75, 1.0)  # a share of four photos
        wrong = round(4 * (1 - scores["answer_top1"]))
        assert sum(c["count"] for c in scores["most_confused"]) == wrong


def listed_photos(root, rows: dict[str, str]):
    """A flat ``root/test`` folder of fixture photos (``<name>.jpg``, as in real-masks) whose kinds
    are in ``root/SOURCES.tsv`` (one level up, columns as in real-masks); rows: name -> fruit_kind."""
    import shutil

    folder = root / "test"
    folder.mkdir(parents=True)
    lines = ["file\trepo\tcommit\toriginal_path\tlicense\tfruit_kind"]
    for name, kinds in rows.items():
        (photo,) = (FIXTURES / "photos").glob(f"{name}/*.jpg")
        shutil.copy(photo, folder / f"fixture_{name}.jpg")
        lines.append(f"test/fixture_{name}.jpg\tfixtures\t-\t{photo.parent.name}/{photo.name}\tMIT\t{kinds}")
    (root / "SOURCES.tsv").write_text("\n".join(lines) + "\n")
    return folder


LISTED = {"apple": "apple", "banana": "banana; jujube (red date, dried)", "limes": "lime"}  # one photo, two kinds


@pytest.fixture(scope="module")
def listed_kinds_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("real-masks")
    out = root / "kinds.json"
    main(["kinds", "--data", str(listed_photos(root, LISTED)), "--json", str(out)])
    return json.loads(out.read_text())


def test_kinds_evaluation_on_a_flat_folder_whose_kinds_are_in_sources_tsv(listed_kinds_results):
    results = listed_kinds_results
    # "jujube (red date, dried)" is Fruits-360's Date; the banana photo counts under Banana and Date
    assert results["photos"] == 3 and results["multi_kind_photos"] == 1
    assert results["kinds"] == ["Apple", "Banana", "Date", "Lime"]
    for model in ("photo_classifier", "seed_cnn"):
        scores = results[model]
        assert set(scores) == {"answer_top1", "whole_image_top1", "surest_fruit_top1", "mean_per_kind_top1",
                               "per_kind_top1", "most_confused"}
        assert set(scores["per_kind_top1"]) == set(results["kinds"])
        assert scores["per_kind_top1"]["Banana"] == scores["per_kind_top1"]["Date"]  # the same one photo
        for key in ("answer_top1", "whole_image_top1", "surest_fruit_top1"):
            assert scores[key] in (0.0, 0.3333, 0.6667, 1.0)  # a share of three photos
        wrong = round(3 * (1 - scores["answer_top1"]))
        assert sum(c["count"] for c in scores["most_confused"]) == wrong
        assert {c["true"] for c in scores["most_confused"]} <= {"Apple", "Banana+Date", "Lime"}


@pytest.mark.trained_weights
def test_an_answer_naming_any_kind_in_the_photo_is_right(listed_kinds_results):
    # the shipped photo classifier names each fixture photo's kind from the whole photo (see
    # test_photo_classifier); the banana photo's truth is {Banana, Date}, and Banana counts
    scores = listed_kinds_results["photo_classifier"]
    assert scores["whole_image_top1"] == 1.0 and scores["per_kind_top1"]["Date"] == scores["per_kind_top1"]["Banana"]


def test_sources_tsv_kinds_are_mapped_and_an_unknown_word_is_refused(tmp_path):
    from fruitseg.data.real_masks import photo_kind_sets

    folder = listed_photos(tmp_path / "ok", {"apple": "fig (dried); hazelnut", "banana": "litchi", "limes": "Lime"})
    assert [(p.name, kinds) for p, kinds in photo_kind_sets(folder)] == [
        ("fixture_apple.jpg", frozenset({"Fig", "Hazelnut"})),
        ("fixture_banana.jpg", frozenset({"Lychee"})),
        ("fixture_limes.jpg", frozenset({"Lime"})),
    ]
    folder = listed_photos(tmp_path / "bad", {"apple": "apple; durian", "banana": "banana"})
    with pytest.raises(ValueError, match="durian"):
        photo_kind_sets(folder)
    with pytest.raises(ValueError, match="durian"):
        main(["kinds", "--data", str(folder)])


def test_segmenter_evaluation_on_real_photos_with_masks(tmp_path):
    import numpy as np
    from PIL import Image

    from fruitseg.masks import fruit_mask

    real = tmp_path / "real"
    real.mkdir()
    for i, path in enumerate(sorted((FIXTURES / "fruits").glob("*.jpg"))[:2]):
        image = np.asarray(Image.open(path).convert("RGB"))
        Image.fromarray(image).save(real / f"src{i}_{path.stem}.jpg")
        Image.fromarray(fruit_mask(image).astype(np.uint8) * 255).save(real / f"src{i}_{path.stem}.png")
    out = tmp_path / "real.json"
    main(["segmenter", "--real", str(real), "--json", str(out)])
    results = json.loads(out.read_text())
    assert set(results) == {"src0", "src1", "all", "provenance"} and results["all"]["photos"] == 2
    assert results["provenance"]["inference_path"] == segmenter_path()
    # fruit on white with the recovered mask: both the app and GrabCut find it
    assert results["all"]["segmenter_iou"] > 0.8 and 0 < results["all"]["grabcut_iou"] <= 1
