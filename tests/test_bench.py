"""``fruitseg.bench`` in quick mode: well-formed, sane results (behaviour only, never timings).

Everything here runs on the bundled fixtures (``tests/fixtures/fruits``, ``backgrounds``),
so it needs neither ``../shared/data`` nor the network.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import torch

from fruitseg.bench import __main__ as cli
from fruitseg.bench.baselines import BASELINES, foreground_not_border
from fruitseg.bench.classifier import bench_classifier, load_classifier, plain_forward, plain_logits
from fruitseg.bench.inputs import FIXTURE_FRUITS, make_scenes, open_rgb, scene_banks
from fruitseg.bench.machine import RssSampler, machine_info, peak_rss_bytes, rss_bytes
from fruitseg.bench.report import clean, markdown_classifier, to_markdown
from fruitseg.bench.segmenter import bench_segmenter
from fruitseg.predictors import Classifier, classifier_paths
from fruitseg.provenance import git_commit

pytestmark = pytest.mark.timeout(300)


def positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


def check_stats(stats: dict) -> None:
    for key in ("p50_ms", "p95_ms", "mean_ms"):
        assert positive_finite(stats[key]), (key, stats)
    assert stats["p95_ms"] >= stats["p50_ms"]
    assert stats["n"] >= 1


@pytest.fixture(scope="module")
def classifier_result(tmp_path_factory):
    absent = tmp_path_factory.mktemp("no-data") / "Training"  # forces the fixture fallback
    return bench_classifier(quick=True, data=absent, log=lambda message: None)


@pytest.fixture(scope="module")
def segmenter_result(tmp_path_factory):
    absent = tmp_path_factory.mktemp("no-shared")
    return bench_segmenter(
        quick=True,
        data=absent / "Training",
        backgrounds=absent / "backgrounds",
        sizes={(128, 128): 2, (96, 160): 1},
        log=lambda message: None,
    )


# --------------------------------------------------------------------------- classifier


def test_classifier_quick_times_every_path_against_both_baselines(classifier_result):
    r = classifier_result
    assert r["threads"] >= 1 and r["device"]
    others = sorted(set(classifier_paths(load_classifier("cpu").model, torch.device("cpu"))) - {r["path"], "float32"})
    assert list(r["paths"]) == ["shipped", *others, "tuned_float32", "plain"]
    assert r["inference_path"].startswith(r["path"] + ": ") and r["paths"]["shipped"].startswith(r["path"] + ": ")
    assert r["paths"]["tuned_float32"] == "float32, BN folded, channels-last, inference_mode"
    for batch in ("batch1", "batch64"):
        rows = r[batch]
        for name in r["paths"]:
            check_stats(rows[name])
            for base in ("plain", "tuned_float32"):
                assert rows["ratios"][name][f"vs_{base}"] == pytest.approx(rows[base]["p50_ms"] / rows[name]["p50_ms"], rel=0.01)
        assert rows["speedup"] == rows["ratios"]["shipped"]["vs_plain"]
        assert rows["speedup_vs_tuned_float32"] == rows["ratios"]["shipped"]["vs_tuned_float32"]
    # images/s at batch 64 counts 64 images per call
    b64 = r["batch64"]["shipped"]
    assert b64["per_s"] == pytest.approx(64_000 / b64["p50_ms"], rel=0.02)
    table = [line for line in markdown_classifier(r).splitlines() if line.startswith("| ")]
    assert len(table) == 1 + len(r["paths"]) and "Tuned float32 (baseline)" in table[-2] and "Plain (baseline)" in table[-1]


def test_classifier_paths_agree_on_the_fixtures(classifier_result):
    acc = classifier_result["accuracy"]
    assert acc["images"] == len(list(FIXTURE_FRUITS.glob("*.jpg")))
    assert acc["shipped_classes"] == acc["plain_classes"]  # the same top-1 class, image by image
    assert acc["agreement"] == 1.0
    assert math.isfinite(acc["max_abs_logit_diff"]) and acc["max_abs_logit_diff"] >= 0
    assert "shipped_top1" not in acc  # no labelled held-out data: agreement only


def test_plain_path_matches_the_shipped_logits():
    classifier = load_classifier("cpu")
    images = [open_rgb(p) for p in sorted(FIXTURE_FRUITS.glob("*.jpg"))]
    fast = classifier.logits(images)
    plain = plain_logits(classifier.model, images, classifier.device)
    assert plain.shape == fast.shape == (len(images), len(classifier.class_names))
    assert plain.dtype == np.float32
    np.testing.assert_array_equal(plain.argmax(1), fast.argmax(1))
    spread = float(plain.max() - plain.min())
    assert np.abs(plain - fast).max() < 0.05 * spread  # int8 or bfloat16 round; float32 does not:
    exact = Classifier(classifier.model, "cpu", path="float32")
    assert np.abs(plain - exact.logits(images)).max() < 1e-3


# --------------------------------------------------------------------------- segmenter


def test_segmenter_quick_is_well_formed(segmenter_result):
    r = segmenter_result
    assert [entry["size"] for entry in r["sizes"]] == ["128x128", "160x96"]
    assert r["weights"].startswith("bundled: checkpoints/segmenter")
    assert r["inference_path"].endswith(", guided-filter edge refinement")
    for entry in r["sizes"]:
        assert set(entry["methods"]) == {"segmenter", "unrefined", *BASELINES}
        for m in entry["methods"].values():
            check_stats({**m, "n": entry["scenes"]})
            assert positive_finite(m["time_vs_segmenter"])
        assert entry["methods"]["segmenter"]["time_vs_segmenter"] == 1.0
        assert entry["methods"]["segmenter"]["iou"] > 0.5, "the trained segmenter finds most fruit of the tiny quick scenes (0.68 at 128x128)"


def test_scenes_are_deterministic_and_fall_back_to_fixtures(tmp_path):
    fruits, backgrounds, description = scene_banks(tmp_path / "a", tmp_path / "b", quick=True, log=lambda m: None)
    assert description.startswith("fixtures")
    one = make_scenes(fruits, backgrounds, 2, seed=3, size=(64, 80))
    two = make_scenes(fruits, backgrounds, 2, seed=3, size=(64, 80))
    for a, b in zip(one, two):
        assert a.image.shape == (64, 80, 3) and a.mask.shape == (64, 80)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.mask, b.mask)


def disc_scene(foreground, background, size: int = 96) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:size, 0:size]
    truth = (xs - size / 2) ** 2 + (ys - size / 2) ** 2 <= (size / 4) ** 2
    image = np.empty((size, size, 3), np.uint8)
    image[:] = background
    image[truth] = foreground
    return image, truth


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    return (pred & truth).sum() / max((pred | truth).sum(), 1)


@pytest.mark.parametrize("foreground, background", [((230, 120, 20), (40, 40, 50)), ((120, 30, 30), (235, 235, 225))])
@pytest.mark.parametrize("name", sorted(BASELINES))
def test_baselines_find_a_plain_disc_whatever_its_polarity(name, foreground, background):
    image, truth = disc_scene(foreground, background)
    pred = BASELINES[name][1](image)
    assert pred.shape == truth.shape and pred.dtype == bool
    assert iou(pred, truth) > 0.85


def test_foreground_is_the_side_touching_the_border_less():
    binary = np.ones((10, 10), bool)
    binary[3:7, 3:7] = False
    assert foreground_not_border(binary).sum() == 16
    assert foreground_not_border(~binary).sum() == 16


# --------------------------------------------------------------------------- report


def test_markdown_renders_one_table_per_part(classifier_result, segmenter_result):
    results = {
        "machine": machine_info("cpu"),
        "classifier": classifier_result,
        "segmenter": segmenter_result,
        "app": {"error": "not run in this test"},
    }
    text = to_markdown(results)
    assert text.startswith("## Performance")
    for title in ("### Classifier", "### Segmenter", "### App"):
        assert title in text
    tables = [line for line in text.splitlines() if line.startswith("|")]
    separators = [line for line in tables if set(line) <= set("|-: ")]
    assert len(separators) == 2  # classifier and segmenter; the app section says why it is missing
    widths = {line.count("|") for line in tables if "Method" in line or "Otsu" in line or "GrabCut" in line}
    assert len(widths) == 1  # every row of the segmenter table has the header's columns
    assert "Not measured: not run in this test" in text
    json.dumps(clean(results), allow_nan=False)  # strict JSON


def test_machine_info_describes_the_machine():
    info = machine_info("cpu")
    assert info["cpu"] and info["torch"] and info["device"] == "cpu"
    assert info["torch_threads"] >= 1 and info["usable_cores"] >= 1


def test_every_run_records_the_machines_reference_speed_and_keeps_the_thread_count():
    from fruitseg.bench.machine import reference_gflops
    from fruitseg.bench.report import markdown_machine

    threads = torch.get_num_threads()
    speed = reference_gflops(repeats=3)
    assert torch.get_num_threads() == threads  # measured on one thread, the caller's setting restored
    assert 0.1 < speed < 10_000  # GFLOP/s of one core: a real measurement, not a placeholder
    info = machine_info("cpu")
    assert info["reference_gflops_at_start"] > 0.1
    text = markdown_machine({**info, "reference_gflops_at_end": 12.345})
    assert f"{info['reference_gflops_at_start']:.1f} GFLOP/s at start, 12.3 at end" in text


def test_cli_writes_json_and_markdown(tmp_path, monkeypatch, capsys, classifier_result):
    canned = {"machine": machine_info("cpu"), "quick": True, "classifier": {**classifier_result, "speedup_nan": float("nan")}}
    monkeypatch.setattr(cli, "run", lambda parts, args, log: canned)
    out_json, out_md = tmp_path / "bench.json", tmp_path / "bench.md"
    assert cli.main(["classifier", "--quick", "--json", str(out_json), "--markdown", str(out_md)]) == 0
    data = json.loads(out_json.read_text())
    assert data["classifier"]["speedup_nan"] is None  # NaN is written as null
    assert data["provenance"]["commit"].removesuffix("-dirty") == git_commit().removesuffix("-dirty")
    assert data["provenance"]["inference_path"] == {"classifier": classifier_result["inference_path"]}
    assert out_md.read_text() in capsys.readouterr().out
    assert "### Classifier" in out_md.read_text()


def test_rss_helpers_measure_this_process():
    assert rss_bytes() > 0
    assert peak_rss_bytes() >= rss_bytes() * 0.5
    with RssSampler(os.getpid(), interval=0.01) as sampler:
        time.sleep(0.05)
    assert sampler.samples >= 1 and sampler.peak > 0


def test_plain_baseline_runs_in_grad_mode_without_autocast():
    classifier = load_classifier("cpu")
    images = [open_rgb(next(FIXTURE_FRUITS.glob("*.jpg")))]
    out = plain_forward(classifier.model, images, classifier.device)
    assert out.requires_grad and out.dtype == torch.float32  # an autograd graph was built
    assert out.grad_fn is not None and not torch.is_inference(out)


def test_photo_part_times_the_photo_classifier_and_the_pipeline():
    from fruitseg.bench.photo import bench_photo

    result = bench_photo(quick=True, device="cpu", log=lambda message: None)
    assert result["argmax_agreement"] is True  # the shipped path and the plain way name the same class
    assert result["inference_path"] == "float32, BN folded, channels-last, inference_mode" and result["max_abs_logit_diff"] < 1e-3
    b1, photo = result["batch1"], result["one_fruit_photo"]
    assert b1["shipped"]["n"] == b1["unfolded"]["n"] == b1["plain"]["n"] == 9
    assert b1["speedup"] == pytest.approx(b1["plain"]["p50_ms"] / b1["shipped"]["p50_ms"], rel=0.01)
    assert b1["speedup_vs_unfolded"] == pytest.approx(b1["unfolded"]["p50_ms"] / b1["shipped"]["p50_ms"], rel=0.01)
    assert photo["pipeline"]["n"] == photo["whole_photo"]["n"] == 9 and photo["pipeline_over_whole_photo"] > 0
    assert result["photo"].startswith("1024x768")
    text = to_markdown({"photo": result})
    assert "### Photo classifier" in text and len([line for line in text.splitlines() if line.startswith("| ")]) == 6
    json.dumps(clean(result), allow_nan=False)


# --------------------------------------------------------------------------- a model that cannot be loaded


@pytest.mark.parametrize("part, env, name", [
    ("classifier", "FRUITSEG_CLASSIFIER", "classifier"),
    ("photo", "FRUITSEG_PHOTO_CLASSIFIER", "photo classifier"),
    ("segmenter", "FRUITSEG_SEGMENTER", "segmenter"),
    ("app", "FRUITSEG_CLASSIFIER", "classifier"),
    ("load", "FRUITSEG_SEGMENTER", "segmenter"),  # app.py's models are checked before it is started
    ("load", "FRUITSEG_PHOTO_CLASSIFIER", "photo classifier"),
])
def test_a_model_that_cannot_be_loaded_stops_the_bench_with_one_line(part, env, name, tmp_path, monkeypatch, capsys):
    from fruitseg.bench import app, load

    def no_server(*args, **kwargs):
        raise AssertionError("an app was started without its models")

    monkeypatch.setenv(env, str(tmp_path))  # a folder without weights
    monkeypatch.setattr(cli, "machine_info", lambda device: {})
    monkeypatch.setattr(load, "AppServer", no_server)
    monkeypatch.setattr(app, "AppServer", no_server)
    assert cli.main([part, "--quick"]) == 2
    out, err = capsys.readouterr()
    assert out == ""  # no report: nothing was measured
    [line] = [line for line in err.splitlines() if "fruitseg.bench" in line]
    assert line.startswith(f"python -m fruitseg.bench: cannot load the {name} (FileNotFoundError: ")
    assert env in line and "Traceback" not in err


def test_the_bench_command_exits_non_zero_without_a_traceback(tmp_path):
    import subprocess
    import sys

    from fruitseg.bench.inputs import ROOT

    env = {**os.environ, "FRUITSEG_SEGMENTER": str(tmp_path / "missing")}
    done = subprocess.run([sys.executable, "-m", "fruitseg.bench", "segmenter", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("python -m fruitseg.bench: cannot load the segmenter (ValueError: FRUITSEG_SEGMENTER=")
