"""The evaluation entry points run on small folders and report sane figures."""

import json

import pytest

from fruitseg.evaluate import main
from fruitseg.predictors import Classifier

from conftest import FIXTURES


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


def test_segmenter_and_pipeline_evaluation_on_scenes_from_given_folders(tmp_path, tiny_fruits360):
    folders = ["--fruits", str(tiny_fruits360), "--backgrounds", str(FIXTURES / "backgrounds"), "--size", "160"]
    main(["segmenter", "--scenes", "3", "--json", str(tmp_path / "seg.json"), *folders])
    seg = json.loads((tmp_path / "seg.json").read_text())
    assert seg["scenes"] == 3 and 0 <= seg["fruit_iou"] <= 1 and 0.5 <= seg["pixel_accuracy"] <= 1

    main(["pipeline", "--scenes", "3", "--json", str(tmp_path / "pipe.json"), *folders])
    pipe = json.loads((tmp_path / "pipe.json").read_text())
    assert pipe["scenes"] == 3
    for key in (
        "fruit_found", "segment_then_classify_top1", "cutout_true_mask_top1", "classify_whole_scene_top1",
        "same_scene_on_white_top1",
    ):
        assert 0 <= pipe[key] <= 1
