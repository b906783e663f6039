"""Turn any user upload into a clean 8-bit RGB image, or a clear, user-facing error.

The app receives uploads in many shapes: a file path (what ``gr.Image(type="filepath")``
and ``gr.File`` give), raw bytes, a file-like object, a PIL image (``type="pil"``) or a
numpy array (``type="numpy"``). :func:`load_image` accepts all of them and returns an
RGB :class:`PIL.Image.Image` that is

* decoded from the first frame only (animated GIF / WebP / APNG),
* turned the right way up (EXIF orientation applied),
* flattened onto a white background when it has transparency (the classifier was
  trained on fruit photographed on white),
* converted to 8-bit RGB from any Pillow mode (palette, CMYK, grayscale, 1-bit,
  16/32-bit integer, float), rescaling high bit depths rather than clipping them,
* downscaled so that its longer side is at most ``max_side`` pixels.

Anything unusable raises :class:`InvalidImageError`, whose message is short plain
English that is safe to show to the user as-is: it never contains a stack trace, a file
path or an internal exception message.

Size limits (file bytes, pixels, aspect ratio) are checked from the file's size and the
image header, *before* any pixel data is decoded, so oversized images and decompression
bombs are refused in milliseconds. This module does
not change Pillow's global settings (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``): it relies on their defaults and checks its own,
stricter limit.
"""

from __future__ import annotations

import io
import os
import re
from typing import IO, Final, TypeAlias

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "IMAGE_SUFFIXES",
    "MAX_FILE_BYTES",
    "MAX_PIXELS",
    "MAX_ASPECT_RATIO",
    "MAX_SIDE",
    "MIN_SIDE",
    "BACKGROUND",
    "InvalidImageError",
    "ImageSource",
    "load_image",
    "to_rgb",
    "downscale",
    "image_to_array",
]

IMAGE_SUFFIXES: Final = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")
"""File name endings of the image files the project lists in folders (examples, data sets)."""

MAX_FILE_BYTES: Final = 20 * 1024 * 1024
"""Files larger than this (20 MiB, the app's upload limit) are refused before being parsed."""

MAX_PIXELS: Final = 40_000_000
"""Images with more pixels than this (width * height) are refused."""

MAX_ASPECT_RATIO: Final = 20
"""Images whose longer side is more than this many times their shorter side are refused
(20000x20 would be analysed as a 1024x1 strip)."""

MAX_SIDE: Final = 1024
"""Default bound on the longer side of the image returned by :func:`load_image`."""

MIN_SIDE: Final = 8
"""Images with a side shorter than this are refused as too small."""

BACKGROUND: Final = (255, 255, 255)
"""Colour that transparent pixels are composited onto (white, like the training data)."""

ImageSource: TypeAlias = (
    str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes] | Image.Image | np.ndarray
)

# User-facing messages.
MSG_NO_IMAGE: Final = "Please upload an image first."
MSG_EMPTY: Final = "The file is empty."
MSG_NOT_FOUND: Final = "The file could not be found."
MSG_UNREADABLE: Final = "The file could not be read."
MSG_NOT_AN_IMAGE: Final = (
    "The file is not a supported image. Please upload a JPEG, PNG, WebP, GIF or BMP image."
)
MSG_CORRUPT: Final = "The image file is truncated or corrupt."
MSG_OUT_OF_MEMORY: Final = "The image is too large to process."


class InvalidImageError(ValueError):
    """A user-facing message, safe to show as-is (no stack trace, no internal paths)."""


def load_image(source: ImageSource | None, *, max_side: int | None = MAX_SIDE) -> Image.Image:
    """Decode ``source`` into an 8-bit RGB PIL image ready for the model.

    ``source`` may be a path (``str`` / ``os.PathLike``), ``bytes``, a binary file-like
    object, a :class:`PIL.Image.Image` or a numpy array (``HxW``, ``HxWx1``, ``HxWx2``,
    ``HxWx3`` or ``HxWx4``; ``uint8``, ``uint16``, other integers, ``bool`` or float,
    see :func:`_array_to_uint8` for how values are scaled).

    The returned image is always a new object, fully loaded, in mode ``"RGB"``, with the
    longer side at most ``max_side`` (aspect ratio kept; ``None`` disables downscaling;
    images are never upscaled).

    Raises :class:`InvalidImageError` with a user-facing message for a missing, empty,
    unreadable, corrupt, truncated, too small or too large image. Raises ``TypeError``
    for a ``source`` of an unsupported Python type (a programming error, not a user one).
    """
    if max_side is not None and max_side < 1:
        raise ValueError(f"max_side must be a positive integer or None, got {max_side!r}")
    if source is None:
        raise InvalidImageError(MSG_NO_IMAGE)

    if isinstance(source, np.ndarray):
        image = _array_to_image(source)
        owned = True
    elif isinstance(source, Image.Image):
        image = source
        owned = False
    else:
        image = _open(source)
        owned = True

    try:
        _check_dimensions(*image.size)
        if owned and max_side is not None:
            # JPEG can decode at 1/2, 1/4 or 1/8 scale, staying at least as large as the
            # final size; Lanczos does the rest. A 12 MP photo decodes ~4x faster.
            image.draft(None, _fit_within(image.size, max_side))
        _decode_pixels(image)
        result = downscale(to_rgb(_apply_exif_orientation(image)), max_side)
        # Never hand back the caller's object (or one tied to a file we are closing).
        return result.copy() if result is image else result
    finally:
        if owned:
            image.close()


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert a (loaded) image of any Pillow mode to 8-bit ``"RGB"``.

    Transparency (alpha channel, or a palette / single colour marked transparent) is
    composited onto :data:`BACKGROUND`. 16-bit and 32-bit integer and float modes are
    rescaled to 0..255 (see :func:`_array_to_uint8`). Returns ``image`` itself when it
    is already RGB without transparency.
    """
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return _high_bit_depth_to_rgb(image)
    if image.mode == "La":  # premultiplied; Pillow converts it to LA only
        image = image.convert("LA")
    if _has_transparency(image):
        return _flatten_onto_background(image.convert("RGBA"))
    try:
        return image.convert("RGB")
    except ValueError as exc:  # a mode this Pillow version cannot convert to RGB
        raise InvalidImageError(
            f"The image's colour format ({image.mode}) is not supported."
        ) from exc


def downscale(image: Image.Image, max_side: int | None) -> Image.Image:
    """Shrink ``image`` so that its longer side is ``max_side``, keeping the aspect ratio.

    Returns ``image`` itself when it already fits (or ``max_side`` is ``None``). Uses
    Lanczos resampling, preceded by a fast integer ``reduce()`` for large factors.
    """
    size = _fit_within(image.size, max_side)
    if size == image.size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def image_to_array(image: Image.Image) -> np.ndarray:
    """Return ``image`` as a new, writable ``uint8`` array of shape ``(H, W, 3)``.

    Images not in RGB mode are converted with :func:`to_rgb` first.
    """
    return np.array(to_rgb(image), dtype=np.uint8, copy=True)


# --------------------------------------------------------------------------- opening


def _open(source: object) -> Image.Image:
    """Lazily open a path, bytes or file-like object: reads the header, not the pixels."""
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(source))
    if hasattr(source, "read"):
        data = source.read()  # type: ignore[attr-defined]
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError("load_image() needs a file-like object opened in binary mode")
        return _open_bytes(bytes(data))
    raise TypeError(
        "load_image() accepts a path, bytes, a binary file, a PIL image or a numpy array, "
        f"not {type(source).__name__}"
    )


def _open_path(path: str | os.PathLike[str]) -> Image.Image:
    try:
        size = os.path.getsize(path)
    except FileNotFoundError as exc:
        raise InvalidImageError(MSG_NOT_FOUND) from exc
    except OSError as exc:
        raise InvalidImageError(MSG_UNREADABLE) from exc
    if not os.path.isfile(path):  # a directory, a device...
        raise InvalidImageError(MSG_UNREADABLE)
    if size == 0:
        raise InvalidImageError(MSG_EMPTY)
    _check_file_size(size)
    return _open_image(path)


def _open_bytes(data: bytes) -> Image.Image:
    if not data:
        raise InvalidImageError(MSG_EMPTY)
    _check_file_size(len(data))
    return _open_image(io.BytesIO(data))


def _check_file_size(size: int) -> None:
    if size > MAX_FILE_BYTES:
        raise InvalidImageError(
            f"The file is too large ({size / 2**20:.1f} MB); the limit is {MAX_FILE_BYTES / 2**20:g} MB."
        )


def _open_image(file: str | os.PathLike[str] | IO[bytes]) -> Image.Image:
    """``Image.open`` with every failure turned into an :class:`InvalidImageError`.

    Pillow parses only the header here; the pixels are decoded by ``load()``.
    """
    try:
        return Image.open(file)
    except Image.DecompressionBombError as exc:  # over 2 * Image.MAX_IMAGE_PIXELS
        raise InvalidImageError(_too_large_message(_pixels_from_bomb_error(exc))) from exc
    except UnidentifiedImageError as exc:
        raise InvalidImageError(MSG_NOT_AN_IMAGE) from exc
    except (PermissionError, IsADirectoryError, FileNotFoundError) as exc:
        raise InvalidImageError(MSG_UNREADABLE) from exc
    except Exception as exc:  # any other parser error on untrusted data means corrupt
        raise InvalidImageError(MSG_CORRUPT) from exc


def _decode_pixels(image: Image.Image) -> None:
    """Decode the pixel data now, so truncation and corruption are caught here."""
    try:
        image.load()
    except MemoryError as exc:
        raise InvalidImageError(MSG_OUT_OF_MEMORY) from exc
    except Exception as exc:  # OSError("image file is truncated"), SyntaxError, zlib...
        raise InvalidImageError(MSG_CORRUPT) from exc


# --------------------------------------------------------------------------- sizes


def _check_dimensions(width: int, height: int) -> None:
    """Refuse images too small to classify, too large to decode safely or too elongated."""
    if width * height > MAX_PIXELS:
        raise InvalidImageError(_too_large_message(width * height, (width, height)))
    if min(width, height) < MIN_SIDE:
        raise InvalidImageError(
            f"The image is too small ({width}x{height} pixels); "
            f"at least {MIN_SIDE}x{MIN_SIDE} pixels are needed."
        )
    if max(width, height) > MAX_ASPECT_RATIO * min(width, height):
        raise InvalidImageError(
            f"The image is too elongated ({width}x{height} pixels); "
            f"its longer side may be at most {MAX_ASPECT_RATIO} times its shorter side."
        )


def _too_large_message(pixels: int | None, size: tuple[int, int] | None = None) -> str:
    limit = f"the limit is {MAX_PIXELS / 1e6:g} megapixels."
    if size is not None:
        return f"The image is too large ({size[0]}x{size[1]} pixels); {limit}"
    if pixels is not None:
        return f"The image is too large ({pixels / 1e6:.0f} megapixels); {limit}"
    return f"The image is too large; {limit}"


def _pixels_from_bomb_error(exc: Exception) -> int | None:
    """Pixel count from Pillow's DecompressionBombError message, if it has one."""
    match = re.search(r"\((\d+) pixels\)", str(exc))
    return int(match.group(1)) if match else None


def _fit_within(size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """``size`` scaled down (never up) so that its longer side is ``max_side``."""
    width, height = size
    longest = max(width, height)
    if max_side is None or longest <= max_side:
        return size
    scale = max_side / longest
    return max(1, round(width * scale)), max(1, round(height * scale))


# --------------------------------------------------------------------------- pixels


def _apply_exif_orientation(image: Image.Image) -> Image.Image:
    """Rotate / flip the image as its EXIF Orientation tag says (always a new image)."""
    try:
        return ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: keep the pixels as stored rather than refuse
        return image.copy()


def _has_transparency(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def _flatten_onto_background(rgba: Image.Image) -> Image.Image:
    """Alpha-composite an RGBA image onto :data:`BACKGROUND`; returns RGB."""
    background = Image.new("RGB", rgba.size, BACKGROUND)
    background.paste(rgba, mask=rgba.getchannel("A"))
    return background


def _high_bit_depth_to_rgb(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float grayscale (modes I;16*, I, F) to 8-bit RGB."""
    values = np.asarray(image)
    if image.mode == "I":  # 32-bit: usually 16-bit data (e.g. 16-bit PNG in Pillow < 11)
        gray = _wide_integers_to_uint8(values)
    else:
        gray = _array_to_uint8(values)
    return Image.fromarray(gray).convert("RGB")


def _array_to_image(array: np.ndarray) -> Image.Image:
    """Wrap a numpy image (HxW, HxWx1, HxWx2, HxWx3 or HxWx4) as an 8-bit PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (2, 3, 4))):
        raise InvalidImageError(f"Unsupported image array shape {tuple(array.shape)}.")
    height, width = array.shape[:2]
    _check_dimensions(width, height)  # before allocating any converted copy
    # uint8 HxW / HxWx2 / HxWx3 / HxWx4 -> modes L / LA / RGB / RGBA.
    return Image.fromarray(np.ascontiguousarray(_array_to_uint8(array)))


def _array_to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale image values to ``uint8``, according to the array's dtype.

    * ``uint8``: unchanged. ``bool``: False/True -> 0/255.
    * ``uint16``: 0..65535 -> 0..255 (rescaled, not clipped).
    * other integers: used as-is when all values fit 0..255, otherwise as for
      :func:`_wide_integers_to_uint8`.
    * floats: 0..1 -> 0..255 when all values are within [0, 1], otherwise taken as
      0..255 and clipped; NaN becomes 0.
    """
    if array.dtype == np.uint8:
        return array
    if array.dtype == np.bool_:
        return array.astype(np.uint8) * 255
    if array.dtype == np.uint16:
        return _uint16_to_uint8(array)
    if np.issubdtype(array.dtype, np.integer):
        if array.size and array.min() >= 0 and array.max() <= 255:
            return array.astype(np.uint8)
        return _wide_integers_to_uint8(array)
    if np.issubdtype(array.dtype, np.floating):
        values = np.nan_to_num(array.astype(np.float32), nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0.0 and values.max() <= 1.0:
            values = values * 255.0
        return np.clip(np.rint(values), 0, 255).astype(np.uint8)
    raise InvalidImageError(f"Unsupported image array type ({array.dtype}).")


def _uint16_to_uint8(array: np.ndarray) -> np.ndarray:
    """0..65535 -> 0..255 with rounding (65535 / 257 == 255)."""
    return ((array.astype(np.uint32) + 128) // 257).astype(np.uint8)


def _wide_integers_to_uint8(array: np.ndarray) -> np.ndarray:
    """Integers of unknown range: taken as 16-bit when within 0..65535, else min-max stretched."""
    if array.size == 0:
        return array.astype(np.uint8)
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high <= 65535:
        return _uint16_to_uint8(array.astype(np.uint16))
    stretched = (array.astype(np.float64) - low) * (255.0 / max(high - low, 1))
    return np.rint(stretched).astype(np.uint8)
