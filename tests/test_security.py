"""Issue 16: the live app's security and resource limits, probed over raw HTTP.

Raw requests to ``/gradio_api/call/<name>`` (and the page's ``/gradio_api/queue/join``) say
what a client library would hide: payloads it would never send, status codes, headers and
the exact JSON of every answer. Every test ends with a good request that must still work.

The app is the real one (``build_demo`` + ``launch``, as ``app.py``), served for this module
with Gradio's session store shrunk to :data:`SESSIONS` so that its bound is reached quickly.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio.utils import get_upload_folder
from PIL import Image

from fruitseg import images
from fruitseg.ui import blocks, common, lmd_inputs, segment

pytestmark = pytest.mark.timeout(600)

GOOD = Path(__file__).resolve().parent / "fixtures" / "fruits" / "Apple_Braeburn_116.jpg"
SESSIONS = 20  # the served app's state_session_capacity (the app's own is blocks.SESSION_CAPACITY)
LMD_GOOD = [[1.0, 2.0, 0.5], [3.0, 1.0, 0.0], 0, 2.0, 1.0, None, [10, 2, 3]]


@pytest.fixture(scope="module")
def served(models):
    """(demo, base URL of its API) for the real app with a small session store."""
    from conftest import free_port

    from fruitseg.ui import build_demo, launch

    demo = build_demo(models)
    port = free_port()
    launch(demo, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, state_session_capacity=SESSIONS)
    try:
        yield demo, f"http://127.0.0.1:{port}/gradio_api"
    finally:
        demo.close()


@pytest.fixture(scope="module")
def api(served):
    return served[1]


def strict_json(text: str):
    """json.loads that refuses NaN / Infinity, as a browser's JSON.parse does."""

    def refuse(constant: str):
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=refuse)


def call(api: str, name: str, data: list, timeout: float = 120) -> tuple[str, object]:
    """POST /call/<name>, then read its result: ("complete", outputs) or ("error", message)."""
    response = httpx.post(f"{api}/call/{name}", json={"data": data}, timeout=timeout)
    assert response.status_code == 200, response.text
    stream = httpx.get(f"{api}/call/{name}/{response.json()['event_id']}", timeout=timeout).text
    lines = stream.strip().splitlines()
    event = lines[-2].removeprefix("event: ")
    payload = strict_json(lines[-1].removeprefix("data: "))
    return (event, payload) if event == "complete" else (event, payload["error"])


def upload(api: str, name: str, data: bytes) -> dict:
    """Upload through Gradio's upload route, as gradio_client does; returns the FileData payload."""
    response = httpx.post(f"{api}/upload", files={"files": (name, data, "application/octet-stream")}, timeout=60)
    assert response.status_code == 200, response.text
    return {"path": response.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def png_bytes(width: int, height: int, colour=(200, 60, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def still_serving(api: str) -> None:
    """The good requests every test ends with: /classify, /segment and /lmd all answer."""
    image = upload(api, "apple.jpg", GOOD.read_bytes())
    event, out = call(api, "classify", [image])
    assert event == "complete" and out[0]["image_size"] == [100, 100]
    event, out = call(api, "segment", [image, 0.5, 0.5])
    assert event == "complete" and out[2]["image_size"] == [100, 100]
    event, out = call(api, "lmd", LMD_GOOD)
    assert event == "complete" and out[0]["major_labels"] == [0]


def image_args(endpoint: str, image) -> list:
    return [image] if endpoint == "classify" else [image, 0.5, 0.5]


# --------------------------------------------------------------------------- 1. files on the server


def outside_paths(tmp_path: Path) -> dict[str, str]:
    real = tmp_path / "private.png"
    real.write_bytes(png_bytes(64, 64))
    upload_folder = get_upload_folder()
    return {
        "image_on_the_server": str(real),
        "example_image": common.example_images()[0],
        "missing_file": str(tmp_path / "missing.png"),
        "not_an_image": "/etc/hostname",
        "empty_file": os.devnull,
        "directory": str(tmp_path),
        "relative": "tests/fixtures/fruits/Apple_Braeburn_116.jpg",
        "escapes_the_upload_folder": f"{upload_folder}/../../{real}",
        "url": "http://127.0.0.1:9/photo.jpg",
    }


@pytest.mark.parametrize("endpoint", ["classify", "segment"])
@pytest.mark.parametrize("meta", [False, True], ids=["bare_path", "with_meta"])
def test_only_uploaded_files_are_ever_opened(api, tmp_path, endpoint, meta):
    # Whatever the path (an image, a missing file, a directory...), the same short refusal:
    # no file outside the upload folder is read, and no message tells whether it exists.
    for case, path in outside_paths(tmp_path).items():
        payload = {"path": path, "meta": {"_type": "gradio.FileData"}} if meta else {"path": path}
        assert call(api, endpoint, image_args(endpoint, payload)) == ("error", common.MSG_NOT_UPLOADED), case
    assert call(api, endpoint, image_args(endpoint, "/etc/hostname")) == ("error", common.MSG_NOT_UPLOADED)
    with_data_url = {"path": outside_paths(tmp_path)["image_on_the_server"], "url": data_url(png_bytes(32, 32))}
    assert call(api, endpoint, image_args(endpoint, with_data_url)) == ("error", common.MSG_NOT_UPLOADED)
    still_serving(api)


# --------------------------------------------------------------------------- 2. data: URLs


def test_data_url_images_are_read_under_the_upload_limits(api):
    for endpoint in ("classify", "segment"):
        image = {"path": None, "url": data_url(png_bytes(48, 32))}
        event, out = call(api, endpoint, image_args(endpoint, image))
        assert event == "complete"
        assert (out[0] if endpoint == "classify" else out[2])["image_size"] == [48, 32]


def bomb_png(side: int) -> bytes:
    """A valid side x side 1-bit PNG of a few hundred KB: 169 megapixels for side 13000."""
    buffer = io.BytesIO()
    Image.new("1", (side, side), 0).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "make_url, message",
    [
        (lambda: data_url(bomb_png(13000)), "The image is too large (13000x13000 pixels); the limit is 40 megapixels."),
        (lambda: "data:image/png;base64," + "A" * (common.MAX_DATA_URL_CHARS + 100), "the limit is 20 MB."),
        (lambda: data_url(b"<html><script>alert(1)</script></html>", "text/html"), images.MSG_NOT_AN_IMAGE),
        (lambda: "data:image/png;base64,@@@@", images.MSG_EMPTY),  # base64 ignores what it cannot read
        (lambda: data_url(png_bytes(20000, 20)), "The image is too elongated (20000x20 pixels)"),
    ],
    ids=["bomb_13000x13000", "over_20MB", "html", "not_base64", "20000x20"],
)
def test_bad_data_urls_are_refused_before_decoding(api, make_url, message):
    event, error = call(api, "segment", [{"path": None, "url": make_url()}, 0.5, 0.5])
    assert event == "error" and message in error
    still_serving(api)


def test_request_bodies_over_the_limit_are_refused_with_413(api):
    huge = "data:image/png;base64," + "A" * blocks.MAX_REQUEST_BYTES
    response = httpx.post(f"{api}/call/segment", json={"data": [{"path": None, "url": huge}, 0.5, 0.5]}, timeout=60)
    assert response.status_code == 413 and "the limit is" in response.text

    def chunks():  # no Content-Length: the body is counted as it arrives
        yield b'{"data": ["'
        for _ in range(blocks.MAX_REQUEST_BYTES // 2**20 + 1):
            yield b"A" * 2**20
        yield b'"]}'

    response = httpx.post(f"{api}/call/classify", content=chunks(), headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code == 413
    still_serving(api)


# --------------------------------------------------------------------------- 3. Segment's memory


def queue_event(api: str, session: str, fn_index: int, data: list) -> tuple[str, object]:
    """What the page does: join the queue with a session, read the session's event stream."""
    response = httpx.post(
        f"{api}/queue/join", json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None}, timeout=60
    )
    assert response.status_code == 200, response.text
    with httpx.stream("GET", f"{api}/queue/data", params={"session_hash": session}, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = strict_json(line[5:])
                if message.get("msg") == "process_completed":
                    output = message["output"]
                    return ("complete", output["data"]) if message["success"] else ("error", output.get("error"))
    raise AssertionError("the event stream ended without a result")


def event_index(demo, elem_id: str, trigger: str) -> int:
    block = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)
    return next(fn._id for fn in demo.fns.values() if (block._id, trigger) in fn.targets)


def test_segment_keeps_no_session_state_and_its_cache_is_bounded(served, tmp_path):
    demo, api = served
    assert not [b for b in demo.blocks.values() if isinstance(b, segment.gr.State)]
    cache = demo.segment_cache
    segment_button = event_index(demo, "segment-button", "click")
    threshold_moved = event_index(demo, "segment-threshold", "change")
    session = uuid.uuid4().hex
    photos = [upload(api, f"photo{i}.png", png_bytes(64 + i, 64, (20 * i, 150, 60))) for i in range(segment.PHOTO_CACHE_SIZE + 3)]
    for photo in photos:
        event, out = queue_event(api, session, segment_button, [photo, 0.5, 0.5])
        assert event == "complete" and len(out) == 4
    assert cache.photo.cache_info().currsize == segment.PHOTO_CACHE_SIZE
    assert cache.at.cache_info().currsize <= segment.SPLIT_CACHE_SIZE
    # The first photo has left the cache: moving the threshold segments it again from its file.
    misses = cache.photo.cache_info().misses
    event, out = queue_event(api, session, threshold_moved, [photos[0], 0.3, 0.5])
    assert event == "complete" and "threshold 0.30" in out[1]
    assert cache.photo.cache_info().misses == misses + 1
    still_serving(api)


# --------------------------------------------------------------------------- 4, 5. /lmd: classes, strict JSON


def lmd_args(num_classes: int, value: float = 1.0, **changes) -> list:
    rng = np.random.default_rng(num_classes)
    args = dict(
        student_logits=rng.normal(0, value, num_classes).round(3).tolist(),
        teacher_logits=rng.normal(0, value, num_classes).round(3).tolist(),
        target=0, T=2.0, beta=1.0, major_labels=None, counts=None,
    )  # fmt: skip
    args.update(changes)
    return list(args.values())


def test_lmd_number_of_classes_is_capped(api):
    event, out = call(api, "lmd", lmd_args(lmd_inputs.MAX_API_CLASSES))
    assert event == "complete" and len(out[0]["teacher_probs"]) == lmd_inputs.MAX_API_CLASSES
    event, error = call(api, "lmd", lmd_args(lmd_inputs.MAX_API_CLASSES + 1))
    assert (event, error) == ("error", "student_logits has 1,001 values; at most 1,000 classes are supported.")
    response = httpx.post(f"{api}/call/lmd", json={"data": lmd_args(200_000)}, timeout=60)
    assert response.status_code == 413 and "the limit is 262,144 bytes" in response.text
    still_serving(api)


@pytest.mark.parametrize(
    "changes",
    [
        dict(value=100.0, T=1e-3),
        dict(value=100.0, T=100.0, beta=100.0),
        dict(value=100.0, T=1e-300),
        dict(value=1.0, T=5e-324),
        dict(value=100.0, T=0.01, major_labels=[1, 2, 3]),
    ],
    ids=["cold", "hot", "tiny_T", "denormal_T", "masked"],
)
def test_lmd_answers_are_strict_json(api, changes):
    value = changes.pop("value")
    student = [value, -value, value / 2, 0.0, -value]
    teacher = [-value, value, 0.0, value, value / 3]
    event, out = call(api, "lmd", [student, teacher, *lmd_args(5, **changes)[2:]])  # call() parses strictly
    if event == "complete":
        assert all(np.isfinite(v) for key, v in out[0].items() if isinstance(v, float))
    else:
        assert "not a finite number" in out or "temperature" in out
    still_serving(api)


# --------------------------------------------------------------------------- 6. every parameter


BAD_PARAMETERS = {
    "lmd_T_1e308": ("lmd", lmd_args(3, T=1e308), "The temperature T must be a number greater than 0 and at most 100"),
    "lmd_T_string": ("lmd", lmd_args(3, T="hot"), "The temperature T must be a number"),
    "lmd_beta_negative": ("lmd", lmd_args(3, beta=-1), "β must be a number ≥ 0"),
    "lmd_counts_5": ("lmd", lmd_args(3, counts=5), "counts must be a list of numbers (got 5)."),
    "lmd_counts_length": ("lmd", lmd_args(3, counts=[1, 2]), "counts has 2 values for 3 classes."),
    "lmd_counts_negative": ("lmd", lmd_args(3, counts=[1, -2, 3]), "counts must be a list of finite numbers from 0"),
    "lmd_major_1e30": ("lmd", lmd_args(3, major_labels=[1e30]), "each major label must be a class id, an integer from 0 to 2"),
    "lmd_major_string_12": ("lmd", lmd_args(3, major_labels="12"), "major_labels must be a list of at most 3 class ids"),
    "lmd_major_bool": ("lmd", lmd_args(3, major_labels=[True]), "each major label must be a class id"),
    "lmd_target_string": ("lmd", lmd_args(3, target="0"), "target must be a class id, an integer from 0 to 2 (got '0')."),
    "lmd_target_out_of_range": ("lmd", lmd_args(3, target=3), "target must be a class id"),
    "lmd_logits_1e308": ("lmd", lmd_args(3, student_logits=[1e308, 0, 0]), "student_logits must be a list of finite numbers"),
    "lmd_logits_string": ("lmd", lmd_args(3, teacher_logits="123"), "teacher_logits must be a list of numbers"),
    "lmd_lengths": ("lmd", lmd_args(3, teacher_logits=[1, 2]), "student_logits has 3 values but teacher_logits has 2."),
    "lmd_too_few_values": ("lmd", LMD_GOOD[:3], "This event takes 7 values (student_logits, teacher_logits, target"),
    "segment_threshold_abc": ("segment", [None, "abc", 0.5], "Threshold must be a number from 0.05 to 0.95 (got 'abc')."),
    "segment_threshold_1.5": ("segment", [None, 1.5, 0.5], "Threshold must be a number from 0.05 to 0.95 (got 1.5)."),
    "segment_opacity_null": ("segment", [None, 0.5, None], "Mask opacity must be a number from 0 to 1 (got None)."),
    "segment_no_sliders": ("segment", [None], "This event takes 3 values (image, threshold, opacity); got 1."),
    "segment_no_image": ("segment", [None, 0.5, 0.5], images.MSG_NO_IMAGE),
    "classify_nothing": ("classify", [], "This event takes 1 values (image); got 0."),
    "classify_image_string": ("classify", ["/etc/hostname"], common.MSG_NOT_UPLOADED),
    "classify_image_number": ("classify", [5], common.MSG_NOT_UPLOADED),
}


@pytest.mark.parametrize("case", list(BAD_PARAMETERS))
def test_bad_parameters_get_a_clear_message_and_one_log_line(api, caplog, capfd, case):
    endpoint, data, message = BAD_PARAMETERS[case]
    capfd.readouterr()
    with caplog.at_level(logging.INFO):
        event, error = call(api, endpoint, data)
    assert event == "error" and message in error
    lines = [r for r in caplog.records if r.levelno >= logging.INFO and r.name != "httpx"]
    assert [r.getMessage() for r in lines] == [f"refused: {error}"]
    assert "Traceback" not in capfd.readouterr().err
    still_serving(api)


def test_the_pages_own_events_check_their_numbers_too(served):
    demo, api = served
    preset = event_index(demo, "lmd-preset-random", "click")
    session = uuid.uuid4().hex
    assert queue_event(api, session, preset, [6, "abc"]) == ("error", "This value must be a number (got 'abc').")
    assert queue_event(api, session, preset, [60, 1]) == ("error", "Classes C must be a number from 3 to 20 (got 60).")
    event, out = queue_event(api, session, preset, [6, 1])
    assert event == "complete" and len(out[0]["data"]) == 6 and out[1]["value"] in range(6)


# --------------------------------------------------------------------------- 7. aspect ratio


@pytest.mark.parametrize("endpoint", ["classify", "segment"])
@pytest.mark.parametrize("size", [(20000, 20), (20, 2000), (420, 20)])
def test_extreme_aspect_ratios_are_refused(api, endpoint, size):
    image = upload(api, "strip.png", png_bytes(*size))
    event, error = call(api, endpoint, image_args(endpoint, image))
    assert event == "error"
    assert error == (
        f"The image is too elongated ({size[0]}x{size[1]} pixels); "
        f"its longer side may be at most {images.MAX_ASPECT_RATIO} times its shorter side."
    )
    still_serving(api)


def test_the_most_elongated_image_accepted_is_analysed(api):
    image = upload(api, "strip.png", png_bytes(400, 20))
    event, out = call(api, "classify", [image])
    assert event == "complete" and out[0]["image_size"] == [400, 20]


# --------------------------------------------------------------------------- 8. what is reachable


ROUTES = ["call/{}", "call/v2/{}", "run/{}", "api/{}"]


def test_only_the_public_endpoints_can_be_called_by_name(served):
    demo, api = served
    public = {fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public"}
    assert public == {"classify", "segment", "lmd"}
    internal = {fn.api_name for fn in demo.fns.values()} - public
    assert {"explore_ui", "wrapper_1", "load_example"} <= internal
    for name in sorted(internal) + ["no_such_endpoint"]:
        for route in ROUTES:
            response = httpx.post(f"{api}/{route.format(name)}", json={"data": []}, timeout=30)
            assert (response.status_code, response.text) == (404, "Not Found"), (route, name)
        assert httpx.get(f"{api}/call/{name}/0123", timeout=30).status_code == 404
    # A queued event cannot be run past the queue (and its concurrency limit) at all.
    response = httpx.post(f"{api}/run/lmd", json={"data": LMD_GOOD}, timeout=30)
    assert response.status_code == 404 and "join the queue" in response.text
    still_serving(api)


def test_run_predict_runs_only_the_pages_unqueued_events(served):
    demo, api = served
    unqueued = [fn._id for fn in demo.fns.values() if not fn.queue]
    assert unqueued and all(demo.fns[i].api_name.startswith("load_example") for i in unqueued)
    queued = event_index(demo, "segment-button", "click")
    photo = upload(api, "apple.jpg", GOOD.read_bytes())
    for body in ({"data": [photo, 0.5, 0.5], "fn_index": queued}, {"data": [0]}, {"data": [0], "fn_index": "0"}):
        response = httpx.post(f"{api}/run/predict", json=body, timeout=30)
        assert (response.status_code, response.text) == (404, "Not Found"), body
    response = httpx.post(f"{api}/run/predict", content=b"not json", timeout=30)
    assert (response.status_code, response.text) == (404, "Not Found")
    # What the page sends when an example is clicked, and a bad example index.
    response = httpx.post(f"{api}/run/predict", json={"data": [0], "fn_index": unqueued[0], "session_hash": "s"}, timeout=30)
    assert response.status_code == 200 and response.json()["data"][0]["value"]["path"].startswith(get_upload_folder())
    response = httpx.post(f"{api}/run/predict", json={"data": [10**6], "fn_index": unqueued[0], "session_hash": "s"}, timeout=30)
    assert response.json()["error"] == "Please pick one of the examples."
    still_serving(api)


def test_monitoring_is_off(api):
    root = api.removesuffix("/gradio_api")
    assert httpx.get(f"{root}/monitoring/summary", timeout=30).status_code == 403
    assert httpx.get(f"{root}/monitoring", timeout=30).status_code == 403
    still_serving(api)


def test_uploaded_files_are_served_with_nosniff(api):
    image = upload(api, "page.jpg", b"<html><body><script>alert(document.cookie)</script></body></html>")
    response = httpx.get(f"{api}/file={image['path']}", timeout=30)
    assert response.status_code == 200 and b"<script>" in response.content
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "text/html" not in response.headers.get("content-type", "")
    page = httpx.get(api.removesuffix("/gradio_api") + "/", timeout=30)
    assert page.headers["x-content-type-options"] == "nosniff"
    still_serving(api)


# --------------------------------------------------------------------------- 9. memory per call


def test_gradio_session_store_is_bounded(served):
    # Every API call is a session of its own; Gradio keeps each one's state (~140 KB) until
    # state_session_capacity is reached, then drops the oldest: memory levels off there.
    demo, api = served
    assert blocks.launch_options()["state_session_capacity"] == blocks.SESSION_CAPACITY
    for _ in range(SESSIONS + 10):
        call(api, "lmd", LMD_GOOD)
        call(api, "lmd", lmd_args(3, T=1e308))  # refused calls are sessions too
    assert len(demo.state_holder.session_data) == SESSIONS
    still_serving(api)
