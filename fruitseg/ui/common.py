"""Pieces every tab shares: the image input, user-facing errors, number checks, examples, output files,
and the check of every event's raw input values (:func:`guard_inputs`)."""

from __future__ import annotations

import atexit
import binascii
import functools
import logging
import math
import shutil
import tempfile
import time
import types
import uuid
from pathlib import Path
from typing import Any, Callable, TypeVar

import gradio as gr
import numpy as np
from gradio import processing_utils
from gradio import utils as gradio_utils
from gradio_client import utils as client_utils
from PIL import Image

from fruitseg.images import IMAGE_SUFFIXES, MAX_FILE_BYTES, InvalidImageError, load_image

log = logging.getLogger("fruitseg")

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
MAX_SIDE = 1024  # images are analysed with their longer side at most this
OUTPUT_TTL_S = 3600  # generated files older than this are removed
MAX_DATA_URL_CHARS = 4 * math.ceil(MAX_FILE_BYTES / 3) + 256  # a base64 data URL of a MAX_FILE_BYTES file
MSG_NOT_UPLOADED = (
    "Only images uploaded to this server can be read: upload the file first "
    "(gradio_client's handle_file does), or send it as a data: URL."
)

F = TypeVar("F", bound=Callable[..., Any])


def example_images() -> list[str]:
    """Every image in ``fruitseg/ui/examples`` (single fruits first, then ``scene_*``), sorted."""
    files = [p for p in EXAMPLES_DIR.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda p: (p.name.startswith("scene_"), p.name))
    return [str(p) for p in files]


def image_input(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` that hands the function the uploaded file's path *without decoding it*.

    Stock ``gr.Image`` opens every upload with Pillow before the function runs, so a text
    file named ``.jpg`` fails inside Gradio with a bare "Error", and a ``data:`` URL is
    decoded whole, whatever its size. Here every upload reaches :func:`read_image`
    (``fruitseg.images.load_image``: EXIF, CMYK, 16-bit, bombs, size limits...) and every
    bad file gets a clear message. Only files in Gradio's upload folder are ever opened
    (:func:`uploaded_path`), and a ``data:`` URL is written to that folder undecoded, under
    the upload size limit. Only this instance's ``preprocess`` is replaced (a ``gr.Image``
    subclass would make Gradio write a ``.pyi`` stub next to this module at import time).
    """
    kwargs.setdefault("type", "filepath")
    kwargs.setdefault("image_mode", None)
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    image = gr.Image(**kwargs)
    image.preprocess = types.MethodType(_raw_preprocess, image)  # type: ignore[method-assign]
    return image


def is_image_input(block: Any) -> bool:
    return getattr(getattr(block, "preprocess", None), "__func__", None) is _raw_preprocess


def refusal(message: str, **kwargs: Any) -> gr.Error:
    """A ``gr.Error`` for the user, logged as ONE line (no traceback)."""
    if len(message) > 300:  # a message that quotes a huge input value
        message = message[:300] + "..."
    log.warning("refused: %s", message)
    return gr.Error(message, print_exception=False, **kwargs)


def uploaded_path(path: Any, cache_dir: str) -> str:
    """``path`` when it names a file in Gradio's upload folder ``cache_dir`` (where Gradio puts
    uploads, its own copies of the examples and decoded data URLs), else the same short
    refusal, whatever the path: nothing outside that folder is ever opened, and the message
    never tells whether such a path exists. The rule is Gradio's own for uploads
    (``processing_utils._check_allowed(..., check_in_upload_folder=True)``)."""
    if (
        isinstance(path, str)
        and path
        and "\0" not in path
        and not client_utils.is_http_url_like(path)
        and gradio_utils.is_in_or_equal(path, cache_dir)
    ):
        return path
    raise refusal(MSG_NOT_UPLOADED, title="Invalid image")


def data_url_to_file(url: str, cache_dir: str) -> str:
    """A base64 ``data:`` URL written to ``cache_dir`` as bytes (not decoded as an image: that is
    :func:`read_image`'s job, under its pixel limits); refused above the upload size limit."""
    if len(url) > MAX_DATA_URL_CHARS:
        limit = f"the limit is {MAX_FILE_BYTES / 2**20:g} MB."
        raise refusal(f"The image is too large (about {len(url) * 3 / 4 / 2**20:.0f} MB); {limit}", title="Invalid image")
    try:
        return processing_utils.save_base64_to_cache(url, cache_dir)
    except (binascii.Error, ValueError, OSError):
        raise refusal("The image could not be read.", title="Invalid image") from None


def _raw_preprocess(self: gr.Image, payload: Any) -> str | None:
    if payload is None:
        return None
    url = getattr(payload, "url", None) or ""
    if url.startswith("data:"):  # some webcam / clipboard paths, and API clients
        return data_url_to_file(url, self.GRADIO_CACHE)
    return uploaded_path(getattr(payload, "path", None), self.GRADIO_CACHE)


def shown(value: Any, width: int = 40) -> str:
    """``repr(value)``, cut to ``width`` characters, for quoting a bad input in a message."""
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


def _check_raw_value(block: Any, value: Any) -> None:
    """One raw input value (as it came in the request), for the components whose own
    processing would fail with a traceback and no message: images, numbers, examples."""
    if is_image_input(block):
        if value is None:
            return
        if not isinstance(value, dict):
            raise refusal(MSG_NOT_UPLOADED, title="Invalid image")
        url = value.get("url")
        if value.get("path") is not None or not (isinstance(url, str) and url.startswith("data:")):
            uploaded_path(value.get("path"), block.GRADIO_CACHE)  # Gradio would try to copy any path given
    elif isinstance(block, (gr.Slider, gr.Number)):
        if value is None and isinstance(block, gr.Number):
            return
        low = -math.inf if block.minimum is None else block.minimum
        high = math.inf if block.maximum is None else block.maximum
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
        if not (math.isfinite(number) and low <= number <= high):  # also NaN and non-numbers
            span = f" from {low:g} to {high:g}" if math.isfinite(low) and math.isfinite(high) else ""
            raise refusal(f"{block.label or 'This value'} must be a number{span} (got {shown(value)}).")
    elif isinstance(block, gr.Dataset):  # the examples: the page sends the index of the one clicked
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < len(block.samples or []):
            raise refusal("Please pick one of the examples.")


def guard_inputs(demo: gr.Blocks) -> gr.Blocks:
    """Check every event's raw input values before Gradio processes them.

    Gradio answers too few values, a slider given a string, or a file path it will not
    serve with a traceback in the log and ``{"error": null}`` for the client. Wrapping the
    app's ``validate_inputs`` (the first thing Gradio does with an event's values) turns each
    into a clear message and one log line, the same refusal that the image input's own
    :func:`_raw_preprocess` gives.
    """
    gradio_check = demo.validate_inputs

    def validate_inputs(block_fn: Any, inputs: list[Any]) -> None:
        if len(inputs) < len(block_fn.inputs):
            names = [n for n in (block_fn.input_parameter_names or []) if n]
            wanted = f" ({', '.join(names)})" if len(names) == len(block_fn.inputs) else ""
            raise refusal(f"This event takes {len(block_fn.inputs)} values{wanted}; got {len(inputs)}.")
        for block, value in zip(block_fn.inputs, inputs):
            _check_raw_value(block, value)
        gradio_check(block_fn, inputs)

    demo.validate_inputs = validate_inputs  # type: ignore[method-assign]
    return demo


def read_image(source: Any, max_side: int = MAX_SIDE) -> Image.Image:
    """Any upload -> clean RGB PIL image, or a ``gr.Error`` with a message for the user."""
    try:
        return load_image(source, max_side=max_side)
    except InvalidImageError as error:
        raise refusal(str(error), title="Invalid image") from None
    except TypeError as error:  # an input type load_image does not know (an API misuse)
        raise refusal("Please send an image file.", title="Invalid image") from error


def user_errors(action: str) -> Callable[[F], F]:
    """Turn any unexpected exception into a ``gr.Error`` (logged with its trace), never a crash.

    A refused input is logged as one line (:func:`refusal`), never with a traceback."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except ValueError as error:  # library validation errors carry readable messages
                raise refusal(str(error)) from None
            except Exception as error:
                log.exception("%s failed", action)
                raise gr.Error(
                    f"Something went wrong while {action} ({type(error).__name__}). Please try another input.",
                    print_exception=False,
                ) from None

        return wrapper  # type: ignore[return-value]

    return decorate


def parse_number(
    value: Any,
    message: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    clip: bool = False,
    range_message: str | None = None,
) -> float:
    """A control's or an API argument's ``value`` as a finite float, or a ``gr.Error`` for the user.

    ``message`` (and ``range_message``) are ``str.format`` templates: ``{value}`` /
    ``{value!r}`` stand for the value as it was given. A value ``float()`` cannot read gets
    ``message``; NaN, +-inf and a number outside ``[low, high]`` (an open end where
    ``low_inclusive`` / ``high_inclusive`` is False; ``None`` = no bound) get ``range_message``,
    or ``message`` when there is none. With ``clip=True`` a finite number outside the bounds is
    clipped to them instead of refused.
    """
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise refusal(message.format(value=value)) from None
    if math.isfinite(number) and clip:
        return float(np.clip(number, low, high)) if low is not None or high is not None else number
    above_low = low is None or (number >= low if low_inclusive else number > low)
    below_high = high is None or (number <= high if high_inclusive else number < high)
    if not (math.isfinite(number) and above_low and below_high):
        raise refusal((range_message or message).format(value=value))
    return number


class Stopwatch:
    """``with Stopwatch() as watch: ...`` then ``watch.ms``."""

    def __enter__(self) -> "Stopwatch":
        self.start = time.perf_counter()
        self.ms = 0.0
        return self

    def __exit__(self, *exc: Any) -> None:
        self.ms = (time.perf_counter() - self.start) * 1000


_OUTPUT_DIR: Path | None = None


def output_dir() -> Path:
    """A private temporary folder for files the app hands out (removed at exit)."""
    global _OUTPUT_DIR
    if _OUTPUT_DIR is None or not _OUTPUT_DIR.is_dir():
        _OUTPUT_DIR = Path(tempfile.mkdtemp(prefix="fruitseg-ui-"))
        atexit.register(shutil.rmtree, _OUTPUT_DIR, ignore_errors=True)
    return _OUTPUT_DIR


def save_png(image: Image.Image, stem: str) -> str:
    """Write ``image`` as ``<stem>.png`` in a fresh sub-folder of :func:`output_dir`; returns the path."""
    root = output_dir()
    now = time.time()
    for old in root.iterdir():  # prune what earlier requests left behind
        try:
            if now - old.stat().st_mtime > OUTPUT_TTL_S:
                shutil.rmtree(old, ignore_errors=True)
        except OSError:
            pass
    folder = root / uuid.uuid4().hex[:12]
    folder.mkdir()
    path = folder / f"{stem}.png"
    image.save(path, format="PNG", optimize=False)
    return str(path)


def safe_stem(path: str | None, default: str = "image") -> str:
    """A file-name-safe stem from an upload's path (Gradio keeps the original file name)."""
    stem = Path(path).stem if path else default
    cleaned = "".join(c if c.isalnum() or c in "-_" else "_" for c in stem)[:60].strip("_")
    return cleaned or default
