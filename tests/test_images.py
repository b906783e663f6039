"""Tests for fruitseg.images: every kind of upload gives a clean RGB image or a clear error.

The fixture files come from tests/fixtures/make_bad_inputs.py (run it to regenerate them).
"""

from __future__ import annotations

import importlib.util
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from fruitseg import images
from fruitseg.images import InvalidImageError, image_to_array, load_image, to_rgb

FIXTURES_DIR = Path(__file__).resolve().parent / "fixtures"
BAD_INPUTS = FIXTURES_DIR / "bad_inputs"

WHITE = (255, 255, 255)
ORANGE = (255, 140, 0)
RED = (255, 0, 0)
GREEN = (0, 255, 0)
BLUE = (0, 0, 255)
YELLOW = (255, 255, 0)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_bad_inputs", FIXTURES_DIR / "make_bad_inputs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generator = _load_generator()


def fixture_path(name: str) -> Path:
    path = BAD_INPUTS / name
    assert path.exists(), f"missing fixture {name}: run tests/fixtures/make_bad_inputs.py"
    return path


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, int, int]:
    value = image.getpixel(xy)
    assert isinstance(value, tuple) and len(value) == 3
    return value


def assert_close(actual: tuple[int, ...], expected: tuple[int, ...], tolerance: int) -> None:
    assert max(abs(a - e) for a, e in zip(actual, expected, strict=True)) <= tolerance, (actual, expected)


def assert_rgb(image: Image.Image, size: tuple[int, int] | None = None) -> None:
    assert isinstance(image, Image.Image)
    assert image.mode == "RGB"
    if size is not None:
        assert image.size == size


# The same upload, in each form load_image() accepts besides arrays and PIL images.
SOURCE_KINDS: dict[str, Callable[[Path], object]] = {
    "str": str,
    "pathlib": lambda path: path,
    "bytes": lambda path: path.read_bytes(),
    "file": lambda path: io.BytesIO(path.read_bytes()),
}


# --------------------------------------------------------------------------- fixture files

ERROR_FIXTURES = {
    "empty.jpg": "The file is empty.",
    "truncated.jpg": "The image file is truncated or corrupt.",
    "truncated.png": "The image file is truncated or corrupt.",
    "random.bin": "not a supported image",
    "text.jpg": "not a supported image",
    "one_pixel.png": "The image is too small (1x1 pixels); at least 8x8 pixels are needed.",
    "bomb.png": "The image is too large (400 megapixels); the limit is 40 megapixels.",
    "huge_8000.png": "The image is too large (8000x8000 pixels); the limit is 40 megapixels.",
}


@pytest.mark.parametrize("kind", SOURCE_KINDS)
@pytest.mark.parametrize("name", ERROR_FIXTURES)
def test_bad_fixture_gives_clear_error(name: str, kind: str) -> None:
    source = SOURCE_KINDS[kind](fixture_path(name))
    with pytest.raises(InvalidImageError) as info:
        load_image(source)
    message = str(info.value)
    assert ERROR_FIXTURES[name] in message
    # Safe to show as-is: short plain English, no path, file name or exception dump.
    assert len(message) < 120 and message.endswith(".")
    assert os.sep not in message and name not in message
    assert "Traceback" not in message and "Error" not in message


@pytest.mark.parametrize("name", ["huge_8000.png", "bomb.png"])
def test_huge_images_are_refused_quickly_without_decoding(name: str) -> None:
    path = fixture_path(name)
    start = time.perf_counter()
    with pytest.raises(InvalidImageError, match="too large"):
        load_image(path)
    assert time.perf_counter() - start < 1.0


def test_huge_8000_fixture_really_is_a_valid_8000x8000_png() -> None:
    with Image.open(fixture_path("huge_8000.png")) as image:
        assert image.size == (8000, 8000)
        assert image.format == "PNG"


def test_rgba_transparent_pixels_become_white() -> None:
    image = load_image(fixture_path("rgba.png"))
    assert_rgb(image, (64, 64))
    assert pixel(image, (0, 0)) == WHITE  # stored as transparent *black*
    assert pixel(image, (63, 40)) == WHITE
    assert pixel(image, (32, 28)) == ORANGE  # opaque disc
    assert_close(pixel(image, (32, 60)), (127, 127, 127), 1)  # black at alpha 128 on white


def test_palette_colours() -> None:
    image = load_image(fixture_path("palette.png"))
    assert_rgb(image, (32, 32))
    for x, colour in zip((4, 12, 20, 28), (RED, GREEN, BLUE, YELLOW), strict=True):
        assert pixel(image, (x, 16)) == colour


def test_palette_with_transparency_becomes_white() -> None:
    image = load_image(fixture_path("palette_transparent.png"))
    assert_rgb(image, (32, 32))
    assert pixel(image, (0, 0)) == WHITE  # transparent index, whose palette colour is black
    assert pixel(image, (16, 16)) == ORANGE


@pytest.mark.parametrize(("name", "colour"), [("animated.gif", RED), ("animated.webp", RED)])
def test_animated_image_gives_first_frame(name: str, colour: tuple[int, int, int]) -> None:
    image = load_image(fixture_path(name))
    assert_rgb(image, (32, 32))
    assert image.getcolors() == [(32 * 32, colour)]


def test_cmyk_jpeg_colours() -> None:
    image = load_image(fixture_path("cmyk.jpg"))
    assert_rgb(image, (32, 16))
    assert_close(pixel(image, (4, 8)), (255, 127, 0), 12)  # CMYK (0, 128, 255, 0)
    assert_close(pixel(image, (27, 8)), (0, 255, 0), 12)  # CMYK (255, 0, 255, 0)


def test_16_bit_gray_gradient_is_scaled_not_clipped() -> None:
    image = load_image(fixture_path("gray16.png"))
    assert_rgb(image, (256, 16))
    values = np.asarray(image)
    assert (values[..., 0] == values[..., 1]).all() and (values[..., 1] == values[..., 2]).all()
    ramp = values[8, :, 0].astype(int)
    assert ramp[0] == 0 and ramp[-1] == 255
    assert abs(ramp[128] - 128) <= 1  # clipping would give 255 here
    assert (np.diff(ramp) >= 0).all()
    assert len(np.unique(ramp)) == 256


def test_grayscale_jpeg() -> None:
    image = load_image(fixture_path("gray.jpg"))
    assert_rgb(image, (32, 32))
    assert_close(pixel(image, (4, 16)), (50, 50, 50), 3)
    assert_close(pixel(image, (27, 16)), (200, 200, 200), 3)


def test_exif_orientation_is_applied() -> None:
    image = load_image(fixture_path("exif_rotated.jpg"))
    # Stored 60x40, left half red, right half blue, green square top-left; Orientation=6
    # (rotate 90 degrees clockwise): shown 40x60, top red, bottom blue, green top-right.
    assert_rgb(image, (40, 60))
    assert_close(pixel(image, (20, 20)), RED, 24)
    assert_close(pixel(image, (20, 45)), BLUE, 24)
    assert_close(pixel(image, (35, 4)), GREEN, 24)
    assert_close(pixel(image, (4, 4)), RED, 24)


def test_webp() -> None:
    image = load_image(fixture_path("image.webp"))
    assert_rgb(image, (48, 32))
    assert pixel(image, (10, 16)) == ORANGE
    assert pixel(image, (40, 16)) == GREEN


@pytest.mark.parametrize("kind", SOURCE_KINDS)
def test_every_source_kind_decodes_the_same(kind: str) -> None:
    expected = np.asarray(load_image(fixture_path("rgba.png")))
    actual = np.asarray(load_image(SOURCE_KINDS[kind](fixture_path("rgba.png"))))
    np.testing.assert_array_equal(actual, expected)


def test_lazily_opened_pil_image() -> None:
    with Image.open(fixture_path("exif_rotated.jpg")) as opened:
        image = load_image(opened)
    assert_rgb(image, (40, 60))
    with Image.open(fixture_path("truncated.jpg")) as opened, pytest.raises(InvalidImageError, match="truncated"):
        load_image(opened)


def test_fixture_generator_is_deterministic_and_small(tmp_path: Path) -> None:
    small = {name: make for name, make in generator.FIXTURES.items() if name not in ("bomb.png", "huge_8000.png")}
    for name, make in small.items():
        assert make() == make(), name
    sizes = {path.name: path.stat().st_size for path in BAD_INPUTS.iterdir()}
    assert set(sizes) == set(generator.FIXTURES)
    assert sum(sizes.values()) < 300_000
    assert sizes["bomb.png"] < 100_000


# --------------------------------------------------------------------------- size limits


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    ("width", "height", "phrase"),
    [
        (6_400, 6_400, "(6400x6400 pixels)"),  # just over our limit, far below Pillow's
        (8_000, 8_000, "(8000x8000 pixels)"),
        (10_000, 10_000, "(10000x10000 pixels)"),  # Pillow only warns at this size
        (20_000, 30_000, "(600 megapixels)"),  # Pillow refuses this one itself
        (200_000, 200_000, "megapixels"),
    ],
)
def test_declared_size_over_limit_is_refused_quickly(tmp_path: Path, width: int, height: int, phrase: str) -> None:
    # A valid PNG header with a deliberately tiny (incomplete) image body: the size
    # must be refused from the header alone, before any pixel is decoded.
    png = generator.uniform_png(width, 1, bit_depth=1, colour_type=0, row=bytes((width + 7) // 8))
    png = png.replace(
        png[8:33], generator.png_chunk(b"IHDR", width.to_bytes(4, "big") + height.to_bytes(4, "big") + png[24:29])
    )
    start = time.perf_counter()
    with pytest.raises(InvalidImageError) as info:
        load_image(png)
    assert time.perf_counter() - start < 2.0
    assert phrase in str(info.value) and "the limit is 40 megapixels." in str(info.value)


def test_pixel_limit_is_read_at_call_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_PIXELS", 100 * 100)
    assert load_image(np.zeros((100, 100, 3), np.uint8)).size == (100, 100)
    with pytest.raises(InvalidImageError, match=r"\(100x101 pixels\); the limit is 0.01 megapixels"):
        load_image(np.zeros((101, 100, 3), np.uint8))


def test_huge_array_is_refused_without_copying() -> None:
    # A read-only broadcast view: 192 MB worth of pixels backed by 3 bytes.
    huge = np.broadcast_to(np.zeros(3, np.uint8), (8000, 8000, 3))
    start = time.perf_counter()
    with pytest.raises(InvalidImageError, match=r"\(8000x8000 pixels\)"):
        load_image(huge)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize("shape", [(7, 100, 3), (100, 7), (1, 1, 3), (0, 10, 3), (10, 0)])
def test_too_small_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidImageError, match="too small.*at least 8x8 pixels"):
        load_image(np.zeros(shape, np.uint8))


def test_smallest_accepted_size() -> None:
    assert load_image(np.zeros((8, 8, 3), np.uint8)).size == (8, 8)


@pytest.mark.parametrize(("width", "height"), [(20_000, 20), (20, 2_000), (2_001, 100), (8, 161)])
def test_extreme_aspect_ratios_are_refused_from_the_header(width: int, height: int) -> None:
    png = generator.uniform_png(width, height, bit_depth=1, colour_type=0, row=bytes((width + 7) // 8))
    with pytest.raises(InvalidImageError) as info:
        load_image(png)
    assert str(info.value) == (
        f"The image is too elongated ({width}x{height} pixels); "
        f"its longer side may be at most {images.MAX_ASPECT_RATIO} times its shorter side."
    )


@pytest.mark.parametrize("size", [(2_000, 100), (100, 2_000), (8, 160)])
def test_the_most_elongated_images_accepted(size: tuple[int, int]) -> None:
    image = load_image(np.full((size[1], size[0], 3), ORANGE, np.uint8))
    assert image.size == images._fit_within(size, images.MAX_SIDE)


@pytest.mark.parametrize("kind", ["path", "bytes", "file"])
def test_files_over_the_byte_limit_are_refused_before_parsing(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "big.png"
    with path.open("wb") as file:  # a valid PNG header, then zeros up to one byte over the limit
        file.write(generator.uniform_png(8, 8, bit_depth=1, colour_type=0, row=b"\0"))
        file.truncate(images.MAX_FILE_BYTES + 1)
    source = {"path": str(path), "bytes": path.read_bytes(), "file": io.BytesIO(path.read_bytes())}[kind]
    with pytest.raises(InvalidImageError, match=r"^The file is too large \(20.0 MB\); the limit is 20 MB\.$"):
        load_image(source)


# --------------------------------------------------------------------------- downscaling


@pytest.mark.parametrize(
    ("size", "max_side", "expected"),
    [
        ((3000, 2000), 1024, (1024, 683)),
        ((2000, 3000), 1024, (683, 1024)),
        ((1024, 1024), 1024, (1024, 1024)),
        ((4000, 400), 1024, (1024, 102)),
        ((300, 200), 1024, (300, 200)),  # never upscaled
        ((300, 200), None, (300, 200)),
        ((300, 200), 100, (100, 67)),
    ],
)
def test_downscale_keeps_aspect_ratio(size: tuple[int, int], max_side: int | None, expected: tuple[int, int]) -> None:
    array = np.full((size[1], size[0], 3), ORANGE, np.uint8)
    image = load_image(array, max_side=max_side)
    assert_rgb(image, expected)
    assert image.getcolors() == [(expected[0] * expected[1], ORANGE)]


def test_large_jpeg_with_exif_rotation_is_downscaled(tmp_path: Path) -> None:
    # 3000x1500 stored, left half red; Orientation=6 -> shown 1500x3000, top half red.
    pixels = np.zeros((1500, 3000, 3), np.uint8)
    pixels[:, :1500] = RED
    pixels[:, 1500:] = BLUE
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, quality=90, exif=exif.tobytes())
    image = load_image(path, max_side=1000)
    assert_rgb(image, (500, 1000))
    assert_close(pixel(image, (250, 250)), RED, 24)
    assert_close(pixel(image, (250, 750)), BLUE, 24)


def test_default_max_side() -> None:
    assert load_image(np.zeros((2048, 1024, 3), np.uint8)).size == (512, 1024)


def test_invalid_max_side() -> None:
    with pytest.raises(ValueError, match="max_side"):
        load_image(np.zeros((16, 16, 3), np.uint8), max_side=0)


# --------------------------------------------------------------------------- numpy inputs


def test_uint8_rgb_array_as_gradio_gives_it() -> None:
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    image = load_image(array)
    assert_rgb(image, (60, 40))
    np.testing.assert_array_equal(np.asarray(image), array)


def test_non_contiguous_array() -> None:
    array = np.zeros((20, 30, 3), np.uint8)
    array[:, :15] = RED
    image = load_image(array[:, ::-1])  # mirrored view
    assert pixel(image, (0, 0)) == (0, 0, 0) and pixel(image, (29, 0)) == RED


def test_rgba_array_alpha_on_white() -> None:
    array = np.zeros((16, 16, 4), np.uint8)
    array[:, :8] = (*ORANGE, 255)
    image = load_image(array)
    assert pixel(image, (0, 0)) == ORANGE and pixel(image, (15, 0)) == WHITE


@pytest.mark.parametrize("shape", [(16, 16), (16, 16, 1)])
def test_gray_arrays(shape: tuple[int, ...]) -> None:
    image = load_image(np.full(shape, 77, np.uint8))
    assert_rgb(image, (16, 16))
    assert image.getcolors() == [(256, (77, 77, 77))]


def test_gray_alpha_array() -> None:
    array = np.zeros((16, 16, 2), np.uint8)
    array[:8] = (10, 255)
    image = load_image(array)
    assert pixel(image, (0, 0)) == (10, 10, 10) and pixel(image, (0, 15)) == WHITE


def test_uint16_arrays_are_scaled() -> None:
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    gray = load_image(np.repeat(ramp[None, :], 16, axis=0))
    np.testing.assert_array_equal(np.asarray(gray)[0, :, 0], np.arange(256))
    colour = load_image(np.full((8, 8, 3), (65535, 32896, 0), np.uint16))
    assert pixel(colour, (0, 0)) == (255, 128, 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, 255), (0.5, 128), (0.0, 0), (200.0, 200), (300.0, 255), (-0.5, 0), (np.nan, 0)],
)
def test_float_arrays(value: float, expected: int) -> None:
    for dtype in (np.float32, np.float64):
        image = load_image(np.full((8, 8, 3), value, dtype))
        assert pixel(image, (0, 0)) == (expected,) * 3


def test_bool_and_wide_integer_arrays() -> None:
    mask = np.zeros((8, 8), bool)
    mask[:, 4:] = True
    image = load_image(mask)
    assert pixel(image, (0, 0)) == (0, 0, 0) and pixel(image, (7, 0)) == WHITE
    assert pixel(load_image(np.full((8, 8, 3), 200, np.int64)), (0, 0)) == (200, 200, 200)
    assert pixel(load_image(np.full((8, 8), 65535, np.int32)), (0, 0)) == WHITE


@pytest.mark.parametrize("shape", [(3, 32, 32), (32, 32, 5), (32,), (2, 32, 32, 3)])
def test_unsupported_array_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidImageError, match="Unsupported image array shape"):
        load_image(np.zeros(shape, np.uint8))


def test_unsupported_array_dtype() -> None:
    with pytest.raises(InvalidImageError, match="Unsupported image array type"):
        load_image(np.full((16, 16), "x"))


# --------------------------------------------------------------------------- PIL inputs and modes


def _with_info(image: Image.Image, **info: object) -> Image.Image:
    image.info.update(info)
    return image


def _palette_alpha() -> Image.Image:
    image = Image.new("PA", (16, 16))
    image.putpalette([*ORANGE])
    return image  # index 0 (orange), alpha 0 everywhere


def _float_image(value: float) -> Image.Image:
    return Image.fromarray(np.full((16, 16), value, np.float32))


MODE_CASES: dict[str, tuple[Callable[[], Image.Image], tuple[int, int, int]]] = {
    "1": (lambda: Image.new("1", (16, 16), 1), WHITE),
    "L": (lambda: Image.new("L", (16, 16), 90), (90, 90, 90)),
    "L+transparency": (lambda: _with_info(Image.new("L", (16, 16), 90), transparency=90), WHITE),
    "LA": (lambda: Image.new("LA", (16, 16), (0, 0)), WHITE),
    "La": (lambda: Image.new("La", (16, 16), (0, 255)), (0, 0, 0)),
    "RGB+transparency": (lambda: _with_info(Image.new("RGB", (16, 16), RED), transparency=RED), WHITE),
    "RGBA": (lambda: Image.new("RGBA", (16, 16), (*BLUE, 0)), WHITE),
    "RGBa": (lambda: Image.new("RGBa", (16, 16), (0, 0, 255, 255)), BLUE),
    "RGBX": (lambda: Image.new("RGBX", (16, 16), (*GREEN, 0)), GREEN),
    "PA": (_palette_alpha, WHITE),
    "CMYK": (lambda: Image.new("CMYK", (16, 16), (0, 0, 0, 255)), (0, 0, 0)),
    "HSV": (lambda: Image.new("HSV", (16, 16), (0, 255, 255)), RED),
    "YCbCr": (lambda: Image.new("YCbCr", (16, 16), (255, 128, 128)), WHITE),
    "I;16": (lambda: Image.new("I;16", (16, 16), 65535), WHITE),
    "I;16B": (lambda: Image.fromarray(np.full((16, 16), 32896, ">u2")), (128, 128, 128)),
    "I (16-bit data)": (lambda: Image.new("I", (16, 16), 32896), (128, 128, 128)),
    "F [0,1]": (lambda: _float_image(0.5), (128, 128, 128)),
    "F [0,255]": (lambda: _float_image(77.0), (77, 77, 77)),
}


@pytest.mark.parametrize("case", MODE_CASES)
def test_pil_modes_convert_to_rgb(case: str) -> None:
    make, expected = MODE_CASES[case]
    source = make()
    image = load_image(source)
    assert_rgb(image, (16, 16))
    assert_close(pixel(image, (8, 8)), expected, 1)
    assert image is not source


def test_wide_integer_image_is_stretched() -> None:
    array = np.array([[-1000, 1000]], np.int32).repeat(8, axis=0).repeat(4, axis=1)
    image = load_image(Image.fromarray(array))
    assert pixel(image, (0, 0)) == (0, 0, 0) and pixel(image, (7, 0)) == WHITE


def test_unconvertible_mode_gives_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: Image.Image, mode: str | None = None, *args: object, **kwargs: object) -> Image.Image:
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")

    monkeypatch.setattr(Image.Image, "convert", refuse)
    with pytest.raises(InvalidImageError, match=r"^The image's colour format \(HSV\) is not supported\.$"):
        load_image(Image.new("HSV", (16, 16)))


def test_rgb_pil_image_is_copied_not_modified() -> None:
    source = Image.new("RGB", (2000, 1000), RED)
    image = load_image(source, max_side=None)
    assert image is not source and image.size == (2000, 1000)
    image.putpixel((0, 0), BLUE)
    assert source.getpixel((0, 0)) == RED and source.size == (2000, 1000)


def test_to_rgb_returns_rgb_images_unchanged() -> None:
    source = Image.new("RGB", (4, 4), RED)
    assert to_rgb(source) is source


def test_image_to_array() -> None:
    array = image_to_array(load_image(fixture_path("palette.png")))
    assert array.dtype == np.uint8 and array.shape == (32, 32, 3) and array.flags.writeable
    assert tuple(array[0, 4]) == RED
    rgba = image_to_array(Image.new("RGBA", (4, 4), (0, 0, 0, 0)))
    assert (rgba == 255).all()


# --------------------------------------------------------------------------- other bad inputs


def test_none_asks_for_an_upload() -> None:
    with pytest.raises(InvalidImageError, match=r"^Please upload an image first\.$"):
        load_image(None)


@pytest.mark.parametrize("source", [b"", bytearray(), io.BytesIO()])
def test_empty_bytes(source: object) -> None:
    with pytest.raises(InvalidImageError, match=r"^The file is empty\.$"):
        load_image(source)  # type: ignore[arg-type]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"^The file could not be found\.$") as info:
        load_image(tmp_path / "secret_dir" / "missing.png")
    assert "secret_dir" not in str(info.value)


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidImageError, match=r"^The file could not be read\.$"):
        load_image(tmp_path)


def test_zero_width_png_header_is_refused() -> None:
    png = generator.uniform_png(16, 16, bit_depth=8, colour_type=0, row=bytes(16))
    png = png.replace(png[8:33], generator.png_chunk(b"IHDR", bytes(4) + png[20:29]))
    with pytest.raises(InvalidImageError):
        load_image(png)


def test_text_file_opened_in_text_mode_is_a_programming_error(tmp_path: Path) -> None:
    path = tmp_path / "note.txt"
    path.write_text("hello")
    with path.open() as text_file, pytest.raises(TypeError, match="binary mode"):
        load_image(text_file)  # type: ignore[arg-type]


def test_unsupported_source_type_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match="not int"):
        load_image(42)  # type: ignore[arg-type]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to count open files")
def test_no_file_left_open() -> None:
    before = len(os.listdir("/proc/self/fd"))
    for name in ("animated.gif", "animated.webp", "exif_rotated.jpg", "truncated.jpg", "bomb.png", "text.jpg"):
        for _ in range(3):
            try:
                load_image(fixture_path(name))
            except InvalidImageError:
                pass
    assert len(os.listdir("/proc/self/fd")) == before
