"""Awkward and broken uploads, against the live server and against the tab functions.

Every file in ``tests/fixtures/bad_inputs`` (made by ``tests/fixtures/make_bad_inputs.py``)
either gives a correct result (decoded the right way up, at the right size) or a clear
error: through ``gradio_client`` an ``AppError`` whose message is exactly the ``gr.Error``
text from ``fruitseg.images``, never a stack trace, a path or a bare "Error". After every
bad input the server still answers a good request, on /classify and on /segment.

The server and the models are the session fixtures of ``tests/conftest.py``.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from fruitseg import images as fi
from fruitseg.labels import FRUITS360_KINDS

BAD = Path(__file__).resolve().parent / "fixtures" / "bad_inputs"
GOOD = Path(__file__).resolve().parent / "fixtures" / "fruits" / "Apple_Braeburn_116.jpg"

pytestmark = pytest.mark.timeout(600)

# file -> the error message, or the (width, height) of the correctly decoded image
EXPECTED: dict[str, str | tuple[int, int]] = {
    "empty.jpg": fi.MSG_EMPTY,
    "truncated.jpg": fi.MSG_CORRUPT,
    "truncated.png": fi.MSG_CORRUPT,
    "random.bin": fi.MSG_NOT_AN_IMAGE,
    "text.jpg": fi.MSG_NOT_AN_IMAGE,
    "one_pixel.png": "The image is too small (1x1 pixels); at least 8x8 pixels are needed.",
    "huge_8000.png": "The image is too large (8000x8000 pixels); the limit is 40 megapixels.",
    "bomb.png": "The image is too large (400 megapixels); the limit is 40 megapixels.",
    "rgba.png": (64, 64),
    "palette.png": (32, 32),
    "palette_transparent.png": (32, 32),
    "animated.gif": (32, 32),
    "animated.webp": (32, 32),
    "cmyk.jpg": (32, 16),
    "gray16.png": (256, 16),
    "gray.jpg": (32, 32),
    "exif_rotated.jpg": (40, 60),  # stored 60x40 with Orientation=6: shown upright
    "image.webp": (48, 32),
}
NAMES = sorted(EXPECTED)


def test_every_fixture_is_covered():
    assert {p.name for p in BAD.iterdir() if p.is_file()} == set(EXPECTED)


def assert_clear(message: str, expected: str) -> None:
    assert message == expected
    for leak in ("Traceback", "File \"", "/tmp", str(BAD), "Error:"):
        assert leak not in message


def check_classify(result: dict, size: tuple[int, int], class_names: list[str]) -> None:
    assert result["image_size"] == list(size)
    assert result["label"] in class_names and result["label"] == next(iter(result["confidences"]))
    probabilities = list(result["confidences"].values())
    assert len(probabilities) == 5 and all(0 <= p <= 1 for p in probabilities) and sum(probabilities) <= 1 + 1e-6
    assert probabilities == sorted(probabilities, reverse=True)
    kinds = list(result["kinds"].values())
    assert result["kind"] == next(iter(result["kinds"])) and result["kind"] in FRUITS360_KINDS
    assert kinds == sorted(kinds, reverse=True) and sum(kinds) <= 1 + 1e-6


def check_segment(overlay: str | Image.Image, mask: str, info: dict, size: tuple[int, int], abs_tol: float = 1e-9) -> None:
    assert info["image_size"] == list(size)
    image = overlay if isinstance(overlay, Image.Image) else Image.open(overlay)
    assert image.size == size
    with Image.open(mask) as m:
        assert m.format == "PNG" and m.mode == "L" and m.size == size
        pixels = np.asarray(m)
    assert set(np.unique(pixels).tolist()) <= {0, 255}
    assert info["fruit_fraction"] == pytest.approx(np.mean(pixels == 255), abs=abs_tol)  # the area reported is the mask's


def still_serving(client, class_names) -> None:
    check_classify(client.predict(handle_file(str(GOOD)), api_name="/classify"), (100, 100), class_names)
    overlay, mask, info = client.predict(handle_file(str(GOOD)), 0.5, 0.5, api_name="/segment")
    check_segment(overlay, mask, info, (100, 100))


# --------------------------------------------------------------------------- live server


@pytest.mark.parametrize("name", NAMES)
def test_server_classify(client, models, name):
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(BAD / name)), api_name="/classify")
        assert_clear(str(caught.value), expected)
    else:
        check_classify(client.predict(handle_file(str(BAD / name)), api_name="/classify"), expected, models.classifier.class_names)
    still_serving(client, models.classifier.class_names)


@pytest.mark.parametrize("name", NAMES)
def test_server_segment(client, models, name):
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(AppError) as caught:
            client.predict(handle_file(str(BAD / name)), 0.5, 0.5, api_name="/segment")
        assert_clear(str(caught.value), expected)
    else:
        overlay, mask, info = client.predict(handle_file(str(BAD / name)), 0.5, 0.5, api_name="/segment")
        check_segment(overlay, mask, info, expected)
    still_serving(client, models.classifier.class_names)


@pytest.mark.parametrize("api", ["/classify", "/segment"])
def test_server_no_image(client, models, api):
    args = (None,) if api == "/classify" else (None, 0.5, 0.5)
    with pytest.raises(AppError) as caught:
        client.predict(*args, api_name=api)
    assert_clear(str(caught.value), fi.MSG_NO_IMAGE)
    still_serving(client, models.classifier.class_names)


# --------------------------------------------------------------------------- tab functions


def tab_functions(models):
    """The functions behind the tabs' buttons and the API, wrapped as the app wraps them."""
    from fruitseg.ui.classify import classify_api, classify_ui
    from fruitseg.ui.common import user_errors
    from fruitseg.ui.segment import SegmentCache, segment_api, segment_ui

    cache = SegmentCache(models)
    return {
        "classify_ui": user_errors("classifying the image")(partial(classify_ui, models)),
        "classify_api": user_errors("classifying the image")(partial(classify_api, models)),
        "segment_ui": user_errors("segmenting the image")(lambda path: segment_ui(cache, path, 0.5, 0.5)),
        "segment_api": user_errors("segmenting the image")(lambda path: segment_api(models, path, 0.5, 0.5)),
    }


@pytest.mark.parametrize("function", ["classify_ui", "classify_api", "segment_ui", "segment_api"])
@pytest.mark.parametrize("name", NAMES)
def test_tab_function(models, function, name):
    fn = tab_functions(models)[function]
    expected = EXPECTED[name]
    if isinstance(expected, str):
        with pytest.raises(gr.Error) as caught:
            fn(str(BAD / name))
        assert_clear(caught.value.message, expected)
        return
    out = fn(str(BAD / name))
    names = models.classifier.class_names
    if function == "classify_api":
        check_classify(out, expected, names)
    elif function == "classify_ui":
        kinds, cnn_top5, _gallery, _table, status = out
        assert len(kinds) == 5 and next(iter(kinds)) in FRUITS360_KINDS and isinstance(status, str)
        assert len(cnn_top5) == 5 and next(iter(cnn_top5)) in names
    elif function == "segment_api":
        check_segment(*out, expected)
    else:  # segment_ui: overlay, summary, table, mask path
        overlay, summary, _table, mask = out
        area = re.search(r"fruit area \*\*([\d.]+)%\*\*", summary)  # absent: "No fruit found"
        assert area or summary.startswith("**No fruit found**"), summary
        info = {"image_size": list(overlay.size), "fruit_fraction": float(area[1]) / 100 if area else 0.0}
        check_segment(overlay, mask, info, expected, abs_tol=0.00051)  # the summary's area, to 0.1 %
