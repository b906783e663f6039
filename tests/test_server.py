"""The real app, launched on a free port, called through ``gradio_client`` like an API user would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image


def test_named_endpoints_and_their_parameters(client):
    api = client.view_api(print_info=False, return_format="dict")
    named = api["named_endpoints"]
    assert {"/classify", "/segment", "/lmd"} <= set(named)
    params = {name: [p["parameter_name"] for p in named[name]["parameters"]] for name in ("/classify", "/segment", "/lmd")}
    assert params["/classify"] == ["image"]
    assert params["/segment"] == ["image", "threshold", "opacity"]
    assert params["/lmd"] == ["student_logits", "teacher_logits", "target", "T", "beta", "major_labels", "counts"]
    assert not api["unnamed_endpoints"]


def test_classify(client, example_paths):
    result = client.predict(handle_file(example_paths["banana"]), api_name="/classify")
    assert result["label"] == next(iter(result["confidences"]))
    assert len(result["confidences"]) == 5 and sum(result["confidences"].values()) <= 1 + 1e-6
    assert result["image_size"] == [100, 100] and result["ms"] > 0
    assert isinstance(result["fruits"], list) and isinstance(result["whole_image"], bool)


@pytest.mark.trained_weights
def test_classify_names_the_fruit(client, example_paths):
    result = client.predict(handle_file(example_paths["pineapple"]), api_name="/classify")
    assert result["kind"] == "Pineapple" and result["fruits_360_cnn"]["label"] == "Pineapple"
    photo = client.predict(handle_file(example_paths["photo_limes_crate"]), api_name="/classify")
    assert photo["kind"] == "Lime" and photo["model"] == "photo classifier"


def test_segment(client, example_paths):
    overlay, mask, info = client.predict(handle_file(example_paths["lemon"]), 0.5, 0.4, api_name="/segment")
    with Image.open(overlay) as image:
        assert image.size == (100, 100)
    with Image.open(mask) as image:
        assert image.format == "PNG" and image.mode == "L" and image.size == (100, 100)
        white = np.asarray(image) == 255
    assert Path(mask).name.startswith("lemon")
    assert info["image_size"] == [100, 100]
    assert info["fruit_fraction"] == pytest.approx(white.mean())  # the area reported is the mask's


def test_lmd(client):
    out = client.predict(
        student_logits=[1.0, 0.2, -0.5, 0.0],
        teacher_logits=[2.5, 0.5, 0.0, -1.0],
        target=1,
        T=2.0,
        beta=0.7,
        major_labels=None,
        counts=[60, 5, 30, 3],
        api_name="/lmd",
    )
    assert out["major_labels"] == [0, 2]  # count > mean (24.5)
    assert out["total"] == pytest.approx(out["ce"] + 0.7 * out["lmd"])
    assert len(out["teacher_probs"]) == 4 and out["teacher_probs"][0] == pytest.approx(0.0)
    manual = client.predict([1.0, 0.2, -0.5], [2.5, 0.5, 0.0], 0, 1.0, 1.0, [2], None, api_name="/lmd")
    assert manual["major_labels"] == [2] and manual["major_mask"] == [False, False, True]


def test_lmd_bad_input_is_a_clear_error(client):
    with pytest.raises(AppError, match="temperature T must be a number greater than 0"):
        client.predict([1.0, 2.0], [2.0, 1.0], 0, 0.0, 1.0, None, None, api_name="/lmd")
    with pytest.raises(AppError, match="target must be a class id, an integer from 0 to 1"):
        client.predict([1.0, 2.0], [2.0, 1.0], 7, 1.0, 1.0, None, None, api_name="/lmd")


def test_bad_file_is_a_clear_error_and_the_server_keeps_serving(client, example_paths, text_as_jpg):
    with pytest.raises(AppError, match="not a supported image"):
        client.predict(handle_file(text_as_jpg), api_name="/classify")
    with pytest.raises(AppError, match="not a supported image"):
        client.predict(handle_file(text_as_jpg), 0.5, 0.5, api_name="/segment")
    with pytest.raises(AppError, match=r"Threshold must be a number from 0.05 to 0.95 \(got 1.5\)"):
        client.predict(handle_file(example_paths["kiwi"]), 1.5, 0.5, api_name="/segment")
    # Still up: the next good request succeeds.
    assert len(client.predict(handle_file(example_paths["kiwi"]), api_name="/classify")["confidences"]) == 5


def test_page_shows_device_and_weight_sources(app_url, models):
    import httpx

    config = httpx.get(app_url.rstrip("/") + "/config", timeout=10).json()
    text = " ".join(str(c.get("props", {}).get("value", "")) for c in config["components"])
    assert models.classifier.source.describe() in text and models.segmenter.source.describe() in text
    assert f"Running on **{models.device}" in text
    assert f"(Fruits-360 CNN in {models.classifier.precision})" in text


@pytest.mark.parametrize(
    "name, message",
    [("bomb.png", "too large"), ("huge_8000.png", "too large"), ("truncated.jpg", "truncated or corrupt"), ("empty.jpg", "empty")],
)
def test_bad_images_from_the_fixtures_are_clear_errors(client, name, message):
    path = Path(__file__).resolve().parent / "fixtures" / "bad_inputs" / name
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(path)), api_name="/classify")


def test_uploads_over_20mb_are_refused_by_the_server(app_url, tmp_path):
    import httpx

    big = tmp_path / "big.jpg"
    big.write_bytes(b"\xff" * (20 * 1024 * 1024 + 1))
    with big.open("rb") as file:
        response = httpx.post(app_url + "gradio_api/upload", files={"files": ("big.jpg", file, "image/jpeg")}, timeout=60)
    assert response.status_code == 413
