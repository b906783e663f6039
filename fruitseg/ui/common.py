"""Pieces every tab shares: the image input, user-facing errors, number checks, examples, output files."""

from __future__ import annotations

import atexit
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
from PIL import Image

from fruitseg.images import InvalidImageError, load_image

log = logging.getLogger("fruitseg")

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
MAX_SIDE = 1024  # images are analysed with their longer side at most this
OUTPUT_TTL_S = 3600  # generated files older than this are removed

F = TypeVar("F", bound=Callable[..., Any])


def example_images() -> list[str]:
    """Every image in ``fruitseg/ui/examples`` (single fruits first, then ``scene_*``), sorted."""
    files = [p for p in EXAMPLES_DIR.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
    files.sort(key=lambda p: (p.name.startswith("scene_"), p.name))
    return [str(p) for p in files]


def image_input(**kwargs: Any) -> gr.Image:
    """A ``gr.Image`` that hands the function the uploaded file's path *without decoding it*.

    Stock ``gr.Image`` opens every upload with Pillow before the function runs, so a text
    file named ``.jpg`` fails inside Gradio with a bare "Error". Here every upload reaches
    :func:`read_image` (``fruitseg.images.load_image``: EXIF, CMYK, 16-bit, bombs, size
    limits...) and every bad file gets a clear message. Only this instance's ``preprocess``
    is replaced (a ``gr.Image`` subclass would make Gradio write a ``.pyi`` stub next to
    this module at import time).
    """
    kwargs.setdefault("type", "filepath")
    kwargs.setdefault("image_mode", None)
    kwargs.setdefault("sources", ["upload", "webcam", "clipboard"])
    image = gr.Image(**kwargs)
    image.preprocess = types.MethodType(_raw_preprocess, image)  # type: ignore[method-assign]
    return image


def _raw_preprocess(self: gr.Image, payload: Any) -> str | None:
    if payload is None:
        return None
    path = getattr(payload, "path", None)
    url = getattr(payload, "url", None) or ""
    if path and not url.startswith("data:"):
        return str(path)
    try:  # a base64 data URL (some webcam / clipboard paths): let Gradio write it to a file
        return gr.Image.preprocess(self, payload)
    except Exception as error:
        raise gr.Error("The image could not be read.", print_exception=False) from error


def read_image(source: Any, max_side: int = MAX_SIDE) -> Image.Image:
    """Any upload -> clean RGB PIL image, or a ``gr.Error`` with a message for the user."""
    try:
        return load_image(source, max_side=max_side)
    except InvalidImageError as error:
        raise gr.Error(str(error), title="Invalid image", print_exception=False) from None
    except TypeError as error:  # an input type load_image does not know (an API misuse)
        raise gr.Error("Please send an image file.", title="Invalid image", print_exception=False) from error


def user_errors(action: str) -> Callable[[F], F]:
    """Turn any unexpected exception into a ``gr.Error`` (logged with its trace), never a crash."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                raise
            except ValueError as error:  # library validation errors carry readable messages
                raise gr.Error(str(error), print_exception=False) from None
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
    except (TypeError, ValueError):
        raise gr.Error(message.format(value=value), print_exception=False) from None
    if math.isfinite(number) and clip:
        return float(np.clip(number, low, high)) if low is not None or high is not None else number
    above_low = low is None or (number >= low if low_inclusive else number > low)
    below_high = high is None or (number <= high if high_inclusive else number < high)
    if not (math.isfinite(number) and above_low and below_high):
        raise gr.Error((range_message or message).format(value=value), print_exception=False)
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
