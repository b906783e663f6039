"""The tab functions, called directly (no server): results, repairs and user-facing errors."""

from __future__ import annotations

import math
import re
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from fruitseg.labels import FRUITS360_KINDS, kind_of
from fruitseg.ui import charts, classify, common, lmd, lmd_inputs, render, segment
from fruitseg.ui.state import Models

CAPTION = re.compile(r"^.+ \d+(\.\d)?%$")  # "Banana 97%"


# --------------------------------------------------------------------------- helpers


class DiscSegmenter:
    """Stands in for the segmenter: fruit probability 0.9 inside the given discs, 0.05 outside."""

    source = None
    device = "cpu"

    def __init__(self, discs=()):
        self.discs = discs  # (cx, cy, r) as fractions of the width
        self.calls = 0

    def predict(self, images):
        self.calls += 1
        out = []
        for image in images:
            w, h = image.size
            yy, xx = np.mgrid[0:h, 0:w]
            prob = np.full((h, w), 0.05, np.float32)
            for cx, cy, r in self.discs:
                prob[(xx - cx * w) ** 2 + (yy - cy * w) ** 2 <= (r * w) ** 2] = 0.9
            out.append(prob)
        return out


def two_fruit_photo(example_paths) -> Image.Image:
    """Two Fruits-360 photos side by side on one white canvas, where the discs are."""
    canvas = Image.new("RGB", (400, 200), "white")
    for i, name in enumerate(("banana", "kiwi")):
        canvas.paste(Image.open(example_paths[name]).convert("RGB").resize((180, 180)), (10 + 200 * i, 10))
    return canvas


@pytest.fixture()
def disc_models(models):
    """The real classifiers with a fake segmenter that finds two round fruits (used even on white)."""
    fake = Models(models.classifier, DiscSegmenter([(0.25, 0.25, 0.2), (0.75, 0.25, 0.2)]), models.photo_classifier)
    fake.pipeline.flood_fill_on_white = False
    return fake


def error_message(excinfo) -> str:
    return str(excinfo.value.message if hasattr(excinfo.value, "message") else excinfo.value)


# --------------------------------------------------------------------------- shared pieces


def test_examples_list_every_image_in_the_folder():
    listed = common.example_images()
    on_disk = [p for p in common.EXAMPLES_DIR.iterdir() if p.suffix.lower() in common.IMAGE_SUFFIXES]
    assert sorted(listed) == sorted(str(p) for p in on_disk)
    assert len(listed) >= 4
    scenes = [i for i, p in enumerate(listed) if Path(p).name.startswith("scene_")]
    assert scenes == list(range(len(listed) - len(scenes), len(listed)))  # scenes come last


def test_raw_image_passes_the_path_without_decoding(text_as_jpg):
    from gradio.data_classes import ImageData

    component = common.image_input()
    assert component.preprocess(None) is None
    uploaded = Path(component.GRADIO_CACHE) / "test_ui" / "notes.jpg"  # where Gradio puts uploads
    uploaded.parent.mkdir(parents=True, exist_ok=True)
    uploaded.write_bytes(Path(text_as_jpg).read_bytes())
    assert component.preprocess(ImageData(path=str(uploaded), orig_name="notes.jpg")) == str(uploaded)


@pytest.mark.parametrize("where", ["outside", "escaping", "url", "empty"])
def test_raw_image_opens_only_files_in_the_upload_folder(text_as_jpg, where):
    from gradio.data_classes import ImageData

    component = common.image_input()
    path = {
        "outside": text_as_jpg,
        "escaping": f"{component.GRADIO_CACHE}/../..{text_as_jpg}",
        "url": "https://example.com/banana.jpg",
        "empty": "",
    }[where]
    with pytest.raises(gr.Error) as excinfo:
        component.preprocess(ImageData(path=path))
    assert error_message(excinfo) == common.MSG_NOT_UPLOADED


def test_raw_image_writes_data_urls_undecoded_under_the_size_limit():
    import base64

    from gradio.data_classes import ImageData

    component = common.image_input()
    jpeg = Path(common.example_images()[0]).read_bytes()
    url = "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
    path = component.preprocess(ImageData(url=url))
    assert Path(path).read_bytes() == jpeg and Path(path).is_relative_to(component.GRADIO_CACHE)
    with pytest.raises(gr.Error, match="the limit is 20 MB"):
        component.preprocess(ImageData(url="data:image/png;base64," + "A" * common.MAX_DATA_URL_CHARS))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda tmp: None, "upload an image"),
        (lambda tmp: _write(tmp / "empty.jpg", b""), "empty"),
        (lambda tmp: _write(tmp / "notes.jpg", b"hello, not an image\n" * 30), "not a supported image"),
        (lambda tmp: _write(tmp / "cut.jpg", Path(common.example_images()[0]).read_bytes()[:600]), "truncated or corrupt"),
    ],
    ids=["none", "empty", "text", "truncated"],
)
def test_read_image_errors_are_clear(tmp_path, make, message):
    with pytest.raises(gr.Error) as excinfo:
        common.read_image(make(tmp_path))
    assert message in error_message(excinfo)
    assert "Traceback" not in error_message(excinfo) and str(tmp_path) not in error_message(excinfo)


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def test_user_errors_turns_crashes_into_gr_error():
    @common.user_errors("testing")
    def boom():
        raise RuntimeError("internal detail /secret/path")

    with pytest.raises(gr.Error) as excinfo:
        boom()
    assert "Something went wrong while testing" in error_message(excinfo)
    assert "/secret/path" not in error_message(excinfo)


def test_overlay_draws_each_fruit_and_keeps_the_size():
    image = Image.new("RGB", (120, 80), (200, 200, 200))
    label_map = np.zeros((80, 120), np.uint8)
    label_map[20:60, 10:50] = 1
    label_map[20:60, 70:110] = 2
    faint = np.asarray(render.draw_overlay(image, label_map, ["A 50%", "B 40%"], opacity=0.0))
    strong = np.asarray(render.draw_overlay(image, label_map, ["A 50%", "B 40%"], opacity=1.0))
    assert faint.shape == strong.shape == (80, 120, 3)
    assert tuple(faint[45, 30]) == (200, 200, 200)  # opacity 0: the photo shows through
    assert tuple(strong[45, 30]) == render.colour(0) and tuple(strong[45, 90]) == render.colour(1)
    assert tuple(strong[5, 60]) == (200, 200, 200)  # background untouched
    mask = render.mask_image(label_map)
    assert mask.mode == "L" and mask.size == (120, 80) and set(np.unique(np.asarray(mask))) == {0, 255}


def test_caption_and_percent():
    assert render.caption("Banana", 0.973) == "Banana 97%"
    assert render.percent(0.004) == "0.4%" and render.percent(1.0) == "100%"


# --------------------------------------------------------------------------- classify


def test_classify_example_gives_kinds_and_the_cnn_classes(models, example_paths):
    kinds, cnn, gallery, table, status = classify.classify_ui(models, example_paths["banana"])
    for top5, names in ((kinds, FRUITS360_KINDS), (cnn, models.classifier.class_names)):
        assert isinstance(top5, dict) and len(top5) == 5 and set(top5) <= set(names)
        assert all(isinstance(k, str) and 0.0 <= v <= 1.0 for k, v in top5.items())
        assert sum(top5.values()) <= 1.0 + 1e-6
        assert list(top5.values()) == sorted(top5.values(), reverse=True)
    assert "ms" in status and "photo classifier" in status and "Fruits-360 CNN" in status  # both answers are given
    assert isinstance(gallery, dict) and isinstance(table, dict)  # gr.update(...)


@pytest.mark.trained_weights
@pytest.mark.parametrize(
    "stem, fruit",
    [("banana", "Banana"), ("apple_red_1", "Apple Red 1"), ("lemon", "Lemon"), ("strawberry", "Strawberry"), ("kiwi", "Kiwi"), ("pineapple", "Pineapple")],
)
def test_classify_names_the_example_fruit(models, example_paths, stem, fruit):
    result = classify.classify_image(models, common.read_image(example_paths[stem]))
    assert result.cnn.label == fruit  # the Fruits-360 CNN knows the variety of a Fruits-360 frame ...
    assert result.model == classify.CNN_MODEL and result.kind == kind_of(fruit)  # ... and heads its own setting


@pytest.mark.trained_weights
@pytest.mark.parametrize("stem, kind", [("photo_apple_in_hand", "Apple"), ("photo_bananas", "Banana"),
                                        ("photo_limes_crate", "Lime"), ("photo_pomegranates", "Pomegranate")])
def test_classify_names_the_kind_in_real_photos(models, example_paths, stem, kind):
    result = classify.classify_image(models, common.read_image(example_paths[stem]))
    assert result.model == classify.PHOTO_MODEL and result.kind == kind


def test_classify_several_fruits_gives_one_result_each(disc_models, example_paths):
    image = two_fruit_photo(example_paths)
    path = Path(common.output_dir()) / "two.png"
    image.save(path)
    kinds, cnn, gallery, table, status = classify.classify_ui(disc_models, str(path))
    assert gallery["visible"] and len(gallery["value"]) == 2
    for thumb, text in gallery["value"]:
        assert isinstance(thumb, Image.Image) and CAPTION.match(text), text
    frame = table["value"]
    assert isinstance(frame, pd.DataFrame) and len(frame) == 2
    assert "2 fruits" in status
    assert len(kinds) == 5 and len(cnn) == 5
    result = classify.classify_image(disc_models, image)
    assert not result.whole_image and len(result.fruits) == 2
    # two Fruits-360 frames on a white canvas: a studio photo, where the CNN's answer (its surest fruit) heads
    assert result.model == classify.CNN_MODEL and result.answer == result.cnn == result.cnn_fruits[0].prediction
    assert result.photo is not None  # the photo classifier still answers beside it
    for fruit in result.fruits:
        assert 0.05 < fruit.area_fraction < 0.3
    json = result.to_json("cpu")
    assert json["label"] == result.label and json["kind"] == result.kind and len(json["fruits"]) == 2
    assert len(json["fruits"][0]["box"]) == 4 and json["model"] == classify.CNN_MODEL

    # the same two fruits on a photo background: the photo classifier heads with its surest kind
    scene = Image.open(Path(__file__).parent / "fixtures" / "backgrounds" / "wood.jpg").convert("RGB").resize(image.size)
    scene.paste(image.crop((10, 10, 190, 190)), (10, 10))
    scene.paste(image.crop((210, 10, 390, 190)), (210, 10))
    result = classify.classify_image(disc_models, scene)
    assert result.model == classify.PHOTO_MODEL and len(result.fruits) == 2
    assert result.answer.kind_score >= max(f.prediction.kind_score for f in result.fruits)


def test_classify_falls_back_to_the_whole_image(models, example_paths):
    nothing = Models(models.classifier, DiscSegmenter([]))
    nothing.pipeline.flood_fill_on_white = False
    kinds, cnn, gallery, table, status = classify.classify_ui(nothing, example_paths["kiwi"])
    assert len(kinds) == 5 and "whole image" in status
    assert gallery["visible"] is False and table["visible"] is False
    result = classify.classify_image(nothing, common.read_image(example_paths["kiwi"]))
    assert result.whole_image and result.fruits == [] and result.model == classify.CNN_MODEL


def test_classify_bad_inputs_raise_clear_errors(models, text_as_jpg):
    with pytest.raises(gr.Error, match="upload an image"):
        classify.classify_ui(models, None)
    with pytest.raises(gr.Error) as excinfo:
        classify.classify_api(models, text_as_jpg)
    assert "not a supported image" in error_message(excinfo)


# --------------------------------------------------------------------------- segment


def test_segment_example_gives_overlay_and_mask_png(models, example_paths):
    path = example_paths["strawberry"]
    size = Image.open(path).size
    cache = segment.SegmentCache(models)
    overlay, summary, table, mask_path = segment.segment_ui(cache, path, 0.5, 0.5)
    assert isinstance(overlay, Image.Image) and overlay.size == size
    assert Path(mask_path).suffix == ".png" and Path(mask_path).name.startswith("strawberry")
    with Image.open(mask_path) as mask:
        assert mask.format == "PNG" and mask.size == size and mask.mode == "L"
        assert set(np.unique(np.asarray(mask))) <= {0, 255}
    assert cache.segmentation(path, 0.5).probability.shape == (size[1], size[0])
    assert isinstance(table, pd.DataFrame) and isinstance(summary, str)


@pytest.mark.trained_weights
def test_segment_finds_the_example_fruit(models, example_paths):
    seg = segment.segment_image(models, common.read_image(example_paths["strawberry"]))
    assert len(seg.fruits) >= 1 and seg.fruits[0].label == "Strawberry"
    assert 0.15 < seg.fruit_fraction < 0.95


def test_segment_threshold_reuses_the_cached_map_and_opacity_only_redraws(disc_models, example_paths):
    image = two_fruit_photo(example_paths)
    path = str(Path(common.output_dir()) / "two_fruits.png")
    image.save(path)
    segmenter = disc_models.segmenter
    cache = segment.SegmentCache(disc_models)
    overlay, summary, table, mask_path = segment.segment_ui(cache, path, 0.5, 0.6)
    seg = cache.segmentation(path, 0.5)
    assert segmenter.calls == 1
    assert len(seg.fruits) == 2 and len(table) == 2 and "2 fruits" in summary
    disc_area = 2 * math.pi * (0.2 * 400) ** 2 / (400 * 200)
    assert seg.fruit_fraction == pytest.approx(disc_area, rel=0.05)
    assert f"{100 * seg.fruit_fraction:.1f}%" in summary
    for fruit in seg.fruits:
        assert CAPTION.match(fruit.caption)

    # A threshold above every probability: no fruit, and the model did not run again.
    overlay2, summary2, table2, mask2 = segment.rethreshold_ui(cache, path, 0.95, 0.6)
    assert segmenter.calls == 1 and cache.segmentation(path, 0.95).fruits == [] and "No fruit" in summary2
    assert segment.rethreshold_ui(cache, None, 0.5, 0.6) == (gr.skip(),) * 4  # no photo yet: nothing to do

    centre = (100, 50)  # inside the first disc
    clear = segment.opacity_ui(cache, path, 0.5, 0.0)
    solid = segment.opacity_ui(cache, path, 0.5, 1.0)
    assert segmenter.calls == 1
    assert clear.getpixel(centre) == image.getpixel(centre)
    assert solid.getpixel(centre) == render.colour(0)
    assert segment.opacity_ui(cache, None, 0.5, 0.5) == gr.skip()  # nothing segmented yet: no-op update


def test_segment_cache_is_bounded_and_recomputes_what_it_dropped(disc_models, example_paths, tmp_path):
    segmenter = disc_models.segmenter
    cache = segment.SegmentCache(disc_models, photos=2, splits=3)
    paths = []
    for i in range(4):
        paths.append(str(tmp_path / f"photo{i}.png"))
        two_fruit_photo(example_paths).rotate(180 * i).save(paths[-1])
        segment.segment_ui(cache, paths[-1], 0.5, 0.5)
    assert segmenter.calls == 4
    assert cache.photo.cache_info().currsize == 2 and cache.at.cache_info().currsize == 3
    segment.rethreshold_ui(cache, paths[0], 0.4, 0.5)  # dropped: segmented again from its file
    assert segmenter.calls == 5
    segment.opacity_ui(cache, paths[0], 0.4, 0.2)  # cached again
    assert segmenter.calls == 5


def test_segment_bad_inputs_raise_clear_errors(models, example_paths, text_as_jpg):
    cache = segment.SegmentCache(models)
    with pytest.raises(gr.Error, match="upload an image"):
        segment.segment_ui(cache, None, 0.5, 0.5)
    with pytest.raises(gr.Error) as excinfo:
        segment.segment_ui(cache, text_as_jpg, 0.5, 0.5)
    assert "not a supported image" in error_message(excinfo)
    for threshold in (0, 1.5, float("nan"), "abc"):
        with pytest.raises(gr.Error, match="threshold"):
            segment.segment_ui(cache, example_paths["kiwi"], threshold, 0.5)


def test_segment_api_returns_overlay_mask_and_info(models, example_paths):
    overlay, mask_path, info = segment.segment_api(models, example_paths["lemon"], 0.5, 0.3)
    assert overlay.size == Image.open(example_paths["lemon"]).size
    assert set(info) >= {"fruit_fraction", "threshold", "fruits", "image_size", "ms", "device"}
    with Image.open(mask_path) as mask:
        fruit = np.asarray(mask) == 255
    assert info["fruit_fraction"] == pytest.approx(fruit.mean())  # the area reported is the mask's
    assert len(info["fruits"]) == len(segment.segment_image(models, common.read_image(example_paths["lemon"])).fruits)


# --------------------------------------------------------------------------- LMD explorer


def default_inputs(**changes):
    table, target = lmd_inputs.preset_table(lmd.DEFAULT_PRESET, lmd.DEFAULT_CLASSES, lmd.DEFAULT_SEED)
    inputs = dict(num_classes=lmd.DEFAULT_CLASSES, target=target, T=2.0, beta=1.5, major_source="counts", manual_majors=[], table=table)
    inputs.update(changes)
    return inputs


def test_lmd_numbers_are_consistent_and_charts_drawn():
    inputs = default_inputs()
    ce, lmd_term, total, dist, grads, comparison, details = lmd.explore_ui(**inputs)
    assert total == pytest.approx(ce + 1.5 * lmd_term, abs=1e-5)
    assert ce > 0 and lmd_term >= 0
    for chart in (dist, grads):
        assert chart.startswith("<div") and "<svg" in chart and chart.count("<rect") > 3 * lmd.DEFAULT_CLASSES
    assert "teacher, masked" in dist and "masked: major class" in dist and "masked: true class" in dist
    assert list(comparison["loss"]) == ["KD", "NTD", "LMD"]
    assert comparison["CE + β·term"].iloc[2] == pytest.approx(total, rel=1e-5)
    assert comparison["term"].iloc[2] == pytest.approx(lmd_term, rel=1e-5)
    assert "True class" in details and "Note:" not in details

    ex = lmd.explore(**inputs)
    r = ex.result
    assert ex.majors == lmd_inputs.major_ids_from_counts(inputs["table"]["count"]) and ex.majors
    assert sum(r["teacher_probs"]) == pytest.approx(1.0) and sum(r["student_probs"]) == pytest.approx(1.0)
    for i in {ex.target, *ex.majors}:
        assert r["teacher_probs"][i] == pytest.approx(0.0, abs=1e-12)  # masked in the teacher
    assert r["student_probs"][ex.target] == pytest.approx(0.0, abs=1e-12)
    assert r["grad_total"] == pytest.approx([c + 1.5 * l for c, l in zip(r["grad_ce"], r["grad_lmd"])])


def test_lmd_without_major_labels_is_ntd():
    ex = lmd.explore(**default_inputs(major_source="manual", manual_majors=[]))
    assert ex.majors == [] and ex.result["lmd"] == pytest.approx(ex.result["ntd"])


def test_lmd_every_control_changes_the_result():
    base = lmd.explore_ui(**default_inputs())[2]
    assert lmd.explore_ui(**default_inputs(beta=3.0))[2] != pytest.approx(base)
    assert lmd.explore_ui(**default_inputs(T=5.0))[2] != pytest.approx(base)
    assert lmd.explore_ui(**default_inputs(target=0))[2] != pytest.approx(base)
    assert lmd.explore_ui(**default_inputs(major_source="manual", manual_majors=[2, 4]))[2] != pytest.approx(base)


@pytest.mark.parametrize("T", [0, -1, float("nan"), float("inf"), None, "hot"])
def test_lmd_bad_temperature_is_a_clear_error(T):
    with pytest.raises(gr.Error) as excinfo:
        lmd.explore_ui(**default_inputs(T=T))
    assert "temperature T must be a number greater than 0" in error_message(excinfo)


@pytest.mark.parametrize("beta", [-0.5, float("nan"), "x"])
def test_lmd_bad_beta_is_a_clear_error(beta):
    with pytest.raises(gr.Error, match="β must be a number ≥ 0"):
        lmd.explore_ui(**default_inputs(beta=beta))


def test_lmd_repairs_silly_tables_and_says_so():
    table = pd.DataFrame(
        {"class": ["a", "b", "c", "d"], "student": ["1.5", "abc", None, 1e300], "teacher": [float("nan"), -1e9, 2, "3,5"], "count": [5, -3, "many", 40]}
    )
    ex = lmd.explore(num_classes=4, target=1, T=1.0, beta=1.0, major_source="counts", manual_majors=[], table=table)
    r = ex.result
    assert all(math.isfinite(v) for v in (r["ce"], r["lmd"], r["total"]))
    notes = " ".join(ex.notes)
    assert "Non-numeric or empty 'student' cells" in notes and "clamped" in notes
    names, student, teacher, counts, _ = lmd_inputs.repair_table(table, 4)
    assert student == [1.5, 0.0, 0.0, lmd_inputs.LOGIT_LIMIT]
    assert teacher == [0.0, -lmd_inputs.LOGIT_LIMIT, 2.0, 3.5]
    assert counts == [5.0, 0.0, 0.0, 40.0]
    assert "Note:" in lmd.explore_ui(num_classes=4, target=1, T=1.0, beta=1.0, major_source="counts", manual_majors=[], table=table)[6]


def test_lmd_true_class_out_of_range_after_fewer_classes_is_clamped():
    inputs = default_inputs(num_classes=3, target=5)
    ex = lmd.explore(**inputs)
    assert ex.target == 2 and len(ex.names) == 3
    assert any("True class 5 does not exist with 3 classes" in n for n in ex.notes)
    manual = lmd.explore(**default_inputs(num_classes=3, major_source="manual", manual_majors=[0, 7]))
    assert manual.majors == [0] and any("7" in n for n in manual.notes)


@pytest.mark.parametrize("table", [None, pd.DataFrame(columns=lmd_inputs.COLUMNS), [], {"headers": lmd_inputs.COLUMNS, "data": [[]]}])
def test_lmd_empty_table_is_repaired(table):
    out = lmd.explore_ui(num_classes=5, target=0, T=2.0, beta=1.0, major_source="counts", manual_majors=[], table=table)
    assert out[2] == pytest.approx(math.log(5), rel=1e-6)  # all-zero logits: CE = log C, LMD = 0
    assert "empty" in out[6]


def test_lmd_presets_and_resizing_keep_controls_valid(models, example_paths):
    for kind in lmd_inputs.PRESETS:
        table, target_update, manual_update = lmd.preset_ui(kind, 7, 3)
        assert len(table) == 7 and list(table.columns) == lmd_inputs.COLUMNS
        assert 0 <= target_update["value"] < 7 and len(target_update["choices"]) == 7
        assert manual_update["value"] == []
        assert np.isfinite(table[["student", "teacher", "count"]].to_numpy(dtype=float)).all()
    a, _, _ = lmd.preset_ui("random", 6, 11)
    b, _, _ = lmd.preset_ui("random", 6, 11)
    pd.testing.assert_frame_equal(a, b)  # seeded
    uniform, _, _ = lmd.preset_ui("uniform student", 6, 0)
    assert (uniform["student"] == 0).all()

    table, target, manual = lmd.resize_ui(3, a, 5, [1, 4])
    assert len(table) == 3 and target["value"] == 2 and manual["value"] == [1]
    table, target, manual = lmd.resize_ui(9, table, 2, [1])
    assert len(table) == 9 and len(set(table["class"])) == 9 and target["value"] == 2

    table, target, _ = lmd.photo_ui(models, example_paths["kiwi"], 8, 0)
    assert len(table) == 8 and target["value"] == 0
    assert set(table["class"]) <= set(models.classifier.class_names)
    assert list(table["teacher"]) == sorted(table["teacher"], reverse=True)
    with pytest.raises(gr.Error, match="upload an image"):
        lmd.photo_ui(models, None, 8, 0)


def test_lmd_switching_to_manual_starts_from_the_counts_rule():
    table, _ = lmd_inputs.preset_table(lmd.DEFAULT_PRESET, 6, lmd.DEFAULT_SEED)
    update = lmd.major_source_ui("manual", table, [])
    assert update["visible"] is True and update["value"] == lmd_inputs.major_ids_from_counts(table["count"])
    assert lmd.major_source_ui("counts", table, [1])["visible"] is False


def test_lmd_api():
    out = lmd.lmd_api([2.0, 0.5, -1.0, 0.0], [3.0, 1.0, 0.0, -2.0], 1, 2.0, 0.5, None, [50, 5, 5, 4])
    assert out["major_labels"] == [0]
    assert out["total"] == pytest.approx(out["ce"] + 0.5 * out["lmd"])
    assert lmd.lmd_api([1, 2, 3], [3, 2, 1], 0)["major_labels"] == []
    for args, message in [
        (([1, 2], [1, 2, 3], 0), "student_logits has 2 values"),
        (([1], [1], 0), "At least 2 classes"),
        (([1, 2], [1, 2], 5), "target"),
        (([1, 2], [1, 2], 0, 0.0), "temperature"),
        (([1, 2], [1, 2], 0, 1.0, 1.0, None, [1]), "counts has 1 values"),
        ((["a", 2], [1, 2], 0), "student_logits must be a list of finite numbers from -100 to 100; found 'a'."),
        (([1, 2], [1, 2], float("inf")), "target must be a class id"),
        (([1, 2], [1, 2], 0, 1.0, 1.0, ["x"]), "each major label must be a class id"),
        (([1, 2], [1, 2], 0, 1.0, 1.0, [5]), "each major label must be a class id, an integer from 0 to 1 (got 5)."),
        (([1, 2], [1, 2], 0, 1.0, 1.0, None, [1, -4]), "counts must be a list of finite numbers from 0"),
        (([1, 2], [1, 2], 0, 1.0, 1.0, None, 5), "counts must be a list of numbers (got 5)."),
        (([1, 2], [1, 2], 0, 1.0, 1.0, "1"), "major_labels must be a list"),
        (([1, 2], [1, 2], 0, 1e308), "at most 100"),
        (([0.0] * 1001, [0.0] * 1001, 0), "at most 1,000 classes are supported"),
    ]:
        with pytest.raises(gr.Error) as excinfo:
            lmd.lmd_api(*args)
        assert message in error_message(excinfo)


def test_nice_ticks_cover_the_range():
    ticks = charts.nice_ticks(-0.13, 0.42)
    assert ticks[0] <= -0.13 and ticks[-1] >= 0.42 and 0 in ticks
    assert charts.nice_ticks(0, 0) == charts.nice_ticks(0, 1)
