"""Composite training scenes for fruit / background segmentation.

Fruits-360 photos show one fruit on painted white; :func:`fruitseg.data.masks.fruit_mask`
recovers each fruit's mask. :func:`make_scene` cuts 1 to 8 of those fruits out, scales,
rotates, flips and colour-jitters them, and lays them (with soft shadows) on a background
photo crop or a procedural background, so the pixel masks stay exact:

* ``Scene.mask`` is 1 exactly where a fruit's warped alpha is >= 0.5 (after occlusion);
  shadows, feathered fringes and the background are 0;
* ``Scene.instances`` numbers the visible pixels of each kept fruit 1..K, so
  ``mask == (instances > 0)`` always holds.

Everything is a pure function of a :class:`numpy.random.Generator`, so a scene set is
fixed by its seed. :class:`SceneDataset` serves ``(image, mask)`` tensors for training;
its banks are plain numpy arrays, so it works with DataLoader workers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import torch
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from fruitseg.data.fruits360 import IMAGE_SUFFIXES, FruitImage, image_files, list_images, load_rgb_array
from fruitseg.data.masks import fruit_mask
from fruitseg.labels import FRUITS360_CLASSES

_CACHE_VERSION = 4  # bump when fruit_mask or the bank's preprocessing changes


# --------------------------------------------------------------------------- fruit bank


def _bleed(image: np.ndarray, mask: np.ndarray, ring: int = 2) -> np.ndarray:
    """Replace the (white) pixels outside ``mask`` by nearby fruit colour.

    Linear interpolation while warping mixes neighbouring source pixels; without this the
    painted white would leak into the fruit's edge as a light halo. The outline of a
    Fruits-360 fruit also carries a light rim ``ring`` px wide (pixels partly blended
    with the white paper, JPEG ringing): a rim pixel lighter than the colour filled in
    from further inside is replaced too. The mask itself is unchanged. Normalised
    convolution at two scales fills the pixels near the fruit (the only ones a warp
    can mix in); far pixels get the fruit's mean colour.
    """
    mask_u8 = mask.astype(np.uint8)
    inner = cv2.erode(mask_u8, np.ones((3, 3), np.uint8), iterations=ring).astype(np.float32)
    if inner.sum() < 4:
        inner = mask_u8.astype(np.float32)
    out = image.astype(np.float32)
    weighted = out * inner[..., None]
    fill = np.zeros_like(out)
    known = np.zeros(inner.shape, bool)
    for sigma in (1.5, 6.0):
        w = cv2.GaussianBlur(inner, (0, 0), sigma)
        c = cv2.GaussianBlur(weighted, (0, 0), sigma)
        take = ~known & (w > 1e-3)
        fill[take] = c[take] / w[take, None]
        known |= take
    fill[~known] = weighted.sum((0, 1)) / max(inner.sum(), 1)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    replace = (inner == 0) & ((mask_u8 == 0) | (out @ luma > fill @ luma))
    out[replace] = fill[replace]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


@dataclass
class FruitBank:
    """Fruit cutouts: ``images`` (N, S, S, 3) uint8, ``masks`` (N, S, S) bool, ``labels`` (N,).

    ``images`` hold the fruit pixels; outside the mask they hold nearby fruit colour
    instead of the original white (see :func:`_bleed`), so warped edges have no halo.
    Build one with :meth:`from_items` (Fruits-360 files), :meth:`from_folder` or
    :meth:`from_arrays` (raw fruit-on-white images; masks are recovered with
    :func:`fruit_mask` and degenerate ones dropped).
    """

    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    names: np.ndarray | None = None  # source file names, when known
    bbox: np.ndarray = field(init=False, repr=False)      # (N, 4) x0, y0, x1, y1 (exclusive)
    centroid: np.ndarray = field(init=False, repr=False)  # (N, 2) x, y of the mask
    extent: np.ndarray = field(init=False, repr=False)    # (N,) longer side of bbox, px
    by_class: dict[int, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.masks = np.ascontiguousarray(self.masks, dtype=bool)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        n = len(self.images)
        if self.images.ndim != 4 or self.images.shape[3] != 3 or self.masks.shape != self.images.shape[:3]:
            raise ValueError(f"images {self.images.shape} and masks {self.masks.shape} do not match")
        if self.labels.shape != (n,):
            raise ValueError(f"expected {n} labels, got {self.labels.shape}")
        if n == 0:
            raise ValueError("a FruitBank needs at least one fruit")
        rows, cols = self.masks.any(axis=2), self.masks.any(axis=1)
        if not (rows.any(axis=1).all() and cols.any(axis=1).all()):
            raise ValueError("every fruit needs a non-empty mask")
        y0, y1 = rows.argmax(1), rows.shape[1] - rows[:, ::-1].argmax(1)
        x0, x1 = cols.argmax(1), cols.shape[1] - cols[:, ::-1].argmax(1)
        self.bbox = np.stack([x0, y0, x1, y1], axis=1).astype(np.int32)
        area = self.masks.sum((1, 2)).astype(np.float64)
        ys = np.arange(self.masks.shape[1], dtype=np.float64)
        xs = np.arange(self.masks.shape[2], dtype=np.float64)
        cy = (self.masks.sum(2) * ys).sum(1) / area
        cx = (self.masks.sum(1) * xs).sum(1) / area
        self.centroid = np.stack([cx, cy], axis=1)
        self.extent = np.maximum(x1 - x0, y1 - y0).astype(np.float64)
        self.by_class = {int(c): np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        return f"FruitBank({len(self)} fruits of {len(self.by_class)} classes, {self.images.shape[1]}px)"

    @property
    def classes(self) -> np.ndarray:
        return np.array(sorted(self.by_class), dtype=np.int64)

    # ---- construction

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray,
        labels: Sequence[int],
        masks: np.ndarray | None = None,
        names: Sequence[str] | None = None,
        min_area: float = 0.05,
        max_area: float = 0.95,
        progress: bool = False,
    ) -> "FruitBank":
        """Fruit-on-white images -> bank; recovers masks unless given, drops degenerate ones."""
        images = np.asarray(images, dtype=np.uint8)
        if masks is None:
            it = tqdm(images, desc="fruit masks", unit="img", leave=False, disable=not progress)
            masks = np.stack([fruit_mask(im) for im in it]) if len(images) else np.zeros(images.shape[:3], bool)
        masks = np.asarray(masks, dtype=bool)
        area = masks.mean(axis=(1, 2))
        keep = (area >= min_area) & (area <= max_area)
        images, masks = images[keep], masks[keep]
        bled = np.stack([_bleed(im, m) for im, m in zip(images, masks)]) if len(images) else images
        names_kept = None if names is None else np.asarray(list(names), dtype=str)[keep]
        return cls(bled, masks, np.asarray(labels, dtype=np.int64)[keep], names_kept)

    @classmethod
    def from_items(
        cls, items: Sequence[FruitImage], cache: str | Path | None = None, progress: bool = True
    ) -> "FruitBank":
        """Bank of Fruits-360 files; with ``cache`` (an .npz path) reuses or writes the result.

        The cache is keyed by the file list and the mask-recovery version; a cache made
        for other files is rebuilt.
        """
        items = list(items)
        if not items:
            raise ValueError("no fruit images given")
        key = _items_key(items)
        if cache is not None and Path(cache).exists():
            bank = cls.load(cache, expect_key=key)
            if bank is not None:
                return bank
        images = load_rgb_array(items)
        names = [f"{i.path.parent.name}/{i.path.name}" for i in items]
        bank = cls.from_arrays(images, [i.label for i in items], names=names, progress=progress)
        if cache is not None:
            bank.save(cache, key=key)
        return bank

    @classmethod
    def from_folder(cls, root: str | Path, cache: str | Path | None = None, progress: bool = False) -> "FruitBank":
        """Bank of a folder: Fruits-360 layout ``<root>/<Class>/*.jpg``, or flat files named
        ``<Class>_<frame>.jpg`` with spaces in the class name written as ``_``
        (``Grape_White_120.jpg``)."""
        root = Path(root)
        if any(p.is_dir() for p in root.iterdir()):
            return cls.from_items(list_images(root), cache=cache, progress=progress)
        return cls.from_items(flat_fruit_items(root), cache=cache, progress=progress)

    # ---- cache

    def save(self, path: str | Path, key: str = "") -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(
            tmp,
            images=self.images,
            masks=np.packbits(self.masks, axis=-1),
            mask_width=np.int64(self.masks.shape[-1]),
            labels=self.labels,
            names=self.names if self.names is not None else np.array([], dtype=str),
            key=np.array(key),
            version=np.int64(_CACHE_VERSION),
        )
        tmp.replace(path)

    @classmethod
    def load(cls, path: str | Path, expect_key: str | None = None) -> "FruitBank | None":
        """The bank saved at ``path``; None if its version or key does not match."""
        with np.load(path, allow_pickle=False) as data:
            if int(data["version"]) != _CACHE_VERSION or (expect_key is not None and str(data["key"]) != expect_key):
                return None
            width = int(data["mask_width"])
            masks = np.unpackbits(data["masks"], axis=-1, count=width).astype(bool)
            names = data["names"]
            return cls(data["images"], masks, data["labels"], names if len(names) else None)


def flat_fruit_items(root: str | Path, class_names: tuple[str, ...] = FRUITS360_CLASSES) -> list[FruitImage]:
    """``<root>/<Class_with_underscores>_<frame>.jpg`` files as FruitImage items."""
    index = {name.replace(" ", "_").lower(): i for i, name in enumerate(class_names)}
    items = []
    for path in sorted(Path(root).iterdir()):
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        stem, _, frame = path.stem.rpartition("_")
        label = index.get(stem.lower())
        if label is None or not frame.isdigit():
            raise ValueError(f"{path.name}: expected <Class>_<frame>{path.suffix} with a Fruits-360 class")
        items.append(FruitImage(path, label, "", int(frame)))
    if not items:
        raise ValueError(f"no images in {root}")
    return items


def _items_key(items: Sequence[FruitImage]) -> str:
    digest = hashlib.sha1()
    for item in items:
        digest.update(f"{item.path.parent.name}/{item.path.name}:{item.label}\n".encode())
    return digest.hexdigest()


# ------------------------------------------------------------------- background bank


def _random_colour(rng: np.random.Generator, max_sat: float = 0.6) -> np.ndarray:
    """A float32 RGB colour (0..255), mostly muted, as surfaces are."""
    h = rng.uniform(0, 360)
    s = rng.uniform(0, max_sat) ** 1.5
    v = rng.uniform(0.15, 1.0) ** 0.7
    hsv = np.array([[[h, s, v]]], np.float32)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0] * np.float32(255)


RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]], np.float64)
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)
_LUMA = RGB_TO_YIQ[0]


def _colour_jitter_matrix(
    rng: np.random.Generator, brightness: float, contrast: float, saturation: float, hue_deg: float
) -> tuple[np.ndarray, float]:
    """A 3x3 linear RGB transform (gain, saturation, hue rotation in YIQ) and contrast."""
    gain = rng.uniform(1 - brightness, 1 + brightness)
    sat = rng.uniform(1 - saturation, 1 + saturation)
    angle = math.radians(rng.uniform(-hue_deg, hue_deg))
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[1, 0, 0], [0, sat * c, -sat * s], [0, sat * s, sat * c]], np.float64)
    matrix = YIQ_TO_RGB @ rot @ RGB_TO_YIQ * gain
    return matrix.astype(np.float32), rng.uniform(1 - contrast, 1 + contrast)


def _apply_colour(image: np.ndarray, matrix: np.ndarray, contrast: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Image -> float32 image: ``matrix`` applied, then contrast about the mean luma (of
    the pixels in the uint8 ``mask``, when given). Both are linear, so one cv2.transform."""
    mean_rgb = np.array(cv2.mean(image, mask)[:3], np.float64)
    luma = float(_LUMA @ (matrix.astype(np.float64) @ mean_rgb))
    affine = np.empty((3, 4), np.float32)
    affine[:, :3] = matrix * contrast
    affine[:, 3] = luma * (1 - contrast)
    return cv2.transform(image.astype(np.float32, copy=False), affine)


_PROCEDURAL_KINDS = ("plain", "gradient", "noise", "grain")
_PROCEDURAL_CDF = np.cumsum([0.25, 0.25, 0.3, 0.2])[:-1]


def split_backgrounds(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """(training, validation) photos: every fifth photo (sorted by name) is for validation."""
    paths = image_files(folder)
    return [p for i, p in enumerate(paths) if i % 5], [p for i, p in enumerate(paths) if i % 5 == 0]


class BackgroundBank:
    """Background photos (decoded once, uint8) plus procedural backgrounds.

    :meth:`sample` returns pure white with ``white_prob`` (fruit on white, as Fruits-360
    itself looks), otherwise a random photo crop with ``photo_prob`` and a procedural
    background (plain colour, linear gradient, smooth noise, fine-grain texture) else.
    ``source`` is a folder, a list of image paths, or a list of RGB arrays; it may be
    empty (procedural only). Photos larger than ``max_side`` are shrunk.
    """

    def __init__(
        self,
        source: str | Path | Iterable[str | Path | np.ndarray] | None = None,
        photo_prob: float = 0.6,
        white_prob: float = 0.08,
        max_side: int = 800,
    ) -> None:
        if source is None:
            entries: list = []
        elif isinstance(source, (str, Path)):
            entries = image_files(source)
        else:
            entries = list(source)
        self.photos: list[np.ndarray] = []
        for entry in entries:
            if isinstance(entry, np.ndarray):
                photo = np.ascontiguousarray(entry[..., :3], dtype=np.uint8)
            else:
                with Image.open(entry) as image:
                    image = image.convert("RGB")
                    if max(image.size) > max_side:
                        image.thumbnail((max_side, max_side), Image.LANCZOS)
                    photo = np.asarray(image).copy()
            if photo.ndim != 3 or min(photo.shape[:2]) < 8:
                raise ValueError(f"background {getattr(entry, 'name', 'array')} is not a usable RGB image")
            self.photos.append(photo)
        self.photo_prob = photo_prob if self.photos else 0.0
        self.white_prob = white_prob

    def __len__(self) -> int:
        return len(self.photos)

    def sample(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """(H, W, 3) uint8 background."""
        return np.clip(self.sample_float(rng, size)[0] + 0.5, 0, 255).astype(np.uint8)

    def sample_float(self, rng: np.random.Generator, size: tuple[int, int]) -> tuple[np.ndarray, str]:
        """(H, W, 3) float32 background in 0..255, and its kind."""
        h, w = size
        u = rng.random()
        if u < self.white_prob:
            return np.full((h, w, 3), 255, np.float32), "white"
        if rng.random() < self.photo_prob:
            return self._photo(rng, h, w), "photo"
        return self._procedural(rng, h, w)

    def _photo(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        photo = self.photos[rng.integers(len(self.photos))]
        ph, pw = photo.shape[:2]
        # crop side relative to the output: 0.5x (zoomed in) .. 2.5x (zoomed out)
        zoom = math.exp(rng.uniform(math.log(0.5), math.log(2.5)))
        ch, cw = h * zoom, w * zoom
        fit = min(ph / ch, pw / cw, 1.0)
        ch, cw = max(4, int(ch * fit)), max(4, int(cw * fit))
        y, x = rng.integers(0, ph - ch + 1), rng.integers(0, pw - cw + 1)
        crop = photo[y : y + ch, x : x + cw]
        interp = cv2.INTER_AREA if ch > h else cv2.INTER_LINEAR
        out = cv2.resize(crop, (w, h), interpolation=interp).astype(np.float32)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        if rng.random() < 0.3:
            out = out[::-1]
        if rng.random() < 0.25:
            out = np.rot90(out) if h == w else out
        out = np.ascontiguousarray(out)
        matrix, contrast = _colour_jitter_matrix(rng, 0.25, 0.25, 0.3, 10)
        out = _apply_colour(out, matrix, contrast)
        if rng.random() < 0.2:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 2.5))
        return out

    def _procedural(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
        kind = _PROCEDURAL_KINDS[int(np.searchsorted(_PROCEDURAL_CDF, rng.random(), side="right"))]
        c1 = _random_colour(rng)
        if kind == "plain":
            out = np.empty((h, w, 3), np.float32)
            out[:] = c1
        elif kind == "gradient":
            c2 = c1 * rng.uniform(0.5, 1.3) if rng.random() < 0.5 else _random_colour(rng)
            angle = rng.uniform(0, 2 * math.pi)
            xx = (np.arange(w, dtype=np.float32) - w / 2) * (math.cos(angle) / w)
            yy = (np.arange(h, dtype=np.float32) - h / 2) * (math.sin(angle) / h)
            t = np.clip(yy[:, None] + xx[None, :] + 0.5, 0, 1)[..., None]
            out = t * (c2 - c1).astype(np.float32) + c1
        else:
            c2 = _random_colour(rng)
            if kind == "noise":
                cells = int(rng.integers(2, 16))
            else:
                cells = int(rng.integers(24, 96))
                c2 = c1 * rng.uniform(0.6, 1.2) + rng.normal(0, 12, 3)
            gh, gw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
            t = cv2.resize(rng.random((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC)
            t = np.clip(t, 0, 1)[..., None]
            out = t * (c2 - c1).astype(np.float32) + c1
        if rng.random() < 0.5:
            sigma = rng.uniform(1, 7)
            grain = rng.standard_normal((h, w, 1), dtype=np.float32) * sigma
            if rng.random() < 0.5:
                grain = cv2.GaussianBlur(grain, (0, 0), rng.uniform(0.5, 1.5))[..., None]
            out += grain
        return np.clip(out, 0, 255, out=out), kind


# --------------------------------------------------------------------------- scenes


@dataclass
class Scene:
    """A composite scene. ``boxes`` are (x0, y0, x1, y1) of each instance's visible pixels,
    x1/y1 exclusive; ``labels[k-1]`` is the class id of instance k."""

    image: np.ndarray      # (H, W, 3) uint8
    mask: np.ndarray       # (H, W) uint8, 1 = fruit
    instances: np.ndarray  # (H, W) int32, 0 = background, k = k-th fruit's visible pixels
    labels: list[int]
    boxes: list[tuple[int, int, int, int]]
    background: str = ""   # kind of background: photo, white, plain, gradient, noise, grain


MIN_VISIBLE_PX = 30
MIN_DIAMETER_PX = 14.0  # so that even a slim fruit keeps >= MIN_VISIBLE_PX pixels


def _blur(alpha: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a float32 map; wide blurs run on a shrunk copy (same result, cheaper)."""
    if sigma <= 4:
        return cv2.GaussianBlur(alpha, (0, 0), sigma)
    factor = sigma / 2
    h, w = alpha.shape
    small = cv2.resize(alpha, (max(1, round(w / factor)), max(1, round(h / factor))), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), 2.0)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _shadow_paste(canvas: np.ndarray, alpha: np.ndarray, x0: int, y0: int, dx: float, dy: float,
                  sigma: float, strength: float) -> None:
    """Darken ``canvas`` in place by a blurred copy of ``alpha`` (placed at x0, y0) shifted by dx, dy."""
    if strength <= 0:
        return
    pad = int(math.ceil(2.5 * sigma)) + 1
    local = cv2.copyMakeBorder(alpha, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    local = _blur(local, sigma)
    ox, oy = x0 - pad + int(round(dx)), y0 - pad + int(round(dy))
    H, W = canvas.shape[:2]
    cx0, cy0 = max(ox, 0), max(oy, 0)
    cx1, cy1 = min(ox + local.shape[1], W), min(oy + local.shape[0], H)
    if cx0 >= cx1 or cy0 >= cy1:
        return
    piece = local[cy0 - oy : cy1 - oy, cx0 - ox : cx1 - ox]
    canvas[cy0:cy1, cx0:cx1] *= (1 - strength * piece)[..., None]


def make_scene(
    rng: np.random.Generator,
    fruits: FruitBank,
    backgrounds: BackgroundBank,
    size: tuple[int, int] = (256, 256),
    max_fruits: int = 8,
    min_fruits: int = 1,
    degrade: bool = True,
) -> Scene:
    """A random scene of ``min_fruits``..``max_fruits`` fruits on a random background.

    Fruits are sampled class-uniformly; each is scaled so its longer side is ~12-60% of
    the scene's shorter side (fewer fruits -> larger), rotated, flipped, colour-jittered
    and pasted with slight edge feathering and a soft cast + contact shadow (shadows
    darken what lies below - the background or earlier fruits - and are never in the
    mask). Later fruits occlude earlier ones. A placement that would leave any fruit
    with 1..29 visible pixels is retried elsewhere (or the fruit is skipped), so every
    instance has >= 30 pixels and ``mask == (instances > 0)``. With ``degrade`` the
    whole scene may get a global colour cast, blur, noise and JPEG compression.
    """
    h, w = int(size[0]), int(size[1])
    short = min(h, w)
    canvas, kind = backgrounds.sample_float(rng, (h, w))
    canvas = np.ascontiguousarray(canvas, dtype=np.float32)
    instances = np.zeros((h, w), np.int32)
    counts = [0]  # visible pixels per instance id (index 0 unused)
    labels: list[int] = []

    n = int(rng.integers(min_fruits, max_fruits + 1))
    hi = 0.60 - 0.30 * (n - 1) / 7 if n > 1 else 0.60
    lo = 0.12
    base = math.exp(rng.uniform(math.log(lo), math.log(max(hi, lo * 1.01))))
    classes = fruits.classes
    # one light per scene: direction, cast-shadow length/softness/strength
    light = rng.uniform(0, 2 * math.pi)
    flat_light = rng.random() < 0.15  # no shadows at all, like Fruits-360 itself
    cast = 0.0 if flat_light else rng.uniform(0.2, 0.65)
    cast_len, cast_blur = rng.uniform(0.02, 0.14), rng.uniform(0.04, 0.14)
    contact = 0.0 if flat_light else rng.uniform(0.15, 0.45)
    feather = rng.uniform(0.3, 0.9)

    for _ in range(n):
        cls = classes[rng.integers(len(classes))]
        idx = int(rng.choice(fruits.by_class[int(cls)]))
        diameter = float(np.clip(base * math.exp(rng.uniform(-0.3, 0.3)), lo, 0.62)) * short
        diameter = max(diameter, MIN_DIAMETER_PX)
        scale = diameter / fruits.extent[idx]
        src, src_mask = fruits.images[idx], fruits.masks[idx]
        src_alpha = src_mask.astype(np.float32)
        if scale < 0.7:  # anti-alias before shrinking
            sigma = 0.45 * (1 / scale - 1)
            src = cv2.GaussianBlur(src, (0, 0), sigma)
            src_alpha = cv2.GaussianBlur(src_alpha, (0, 0), sigma)
        elif scale > 1.5:  # round off the source's pixel staircase before enlarging
            src_alpha = cv2.GaussianBlur(src_alpha, (0, 0), 0.6)
        # per-fruit colour jitter on the small source, before warping
        matrix, contrast = _colour_jitter_matrix(rng, 0.15, 0.15, 0.15, 4)
        src = _apply_colour(src, matrix, contrast, mask=src_mask.view(np.uint8))

        angle = rng.uniform(-180, 180)
        flip = rng.random() < 0.5
        cx0, cy0 = fruits.centroid[idx]
        bx0, by0, bx1, by1 = fruits.bbox[idx]
        corners = np.array([[bx0 - 1, by0 - 1], [bx1 + 1, by0 - 1], [bx0 - 1, by1 + 1], [bx1 + 1, by1 + 1]], np.float64)
        rot = cv2.getRotationMatrix2D((0.0, 0.0), angle, scale)[:, :2]
        if flip:
            rot = rot @ np.diag([-1.0, 1.0])
        local = (corners - [cx0, cy0]) @ rot.T
        margin = 0.25 * diameter
        placed = None
        attempts = 4 if labels else 8
        for attempt in range(attempts):
            tx = rng.uniform(margin, max(w - margin, margin + 1))
            ty = rng.uniform(margin, max(h - margin, margin + 1))
            if attempt == attempts - 1 and not labels:  # the first fruit always lands
                tx, ty = w / 2, h / 2
            pts = local + [tx, ty]
            rx0, ry0 = max(int(math.floor(pts[:, 0].min())), 0), max(int(math.floor(pts[:, 1].min())), 0)
            rx1, ry1 = min(int(math.ceil(pts[:, 0].max())) + 1, w), min(int(math.ceil(pts[:, 1].max())) + 1, h)
            if rx0 >= rx1 or ry0 >= ry1:
                continue
            M = np.empty((2, 3), np.float64)
            M[:, :2] = rot
            M[:, 2] = np.array([tx - rx0, ty - ry0]) - rot @ [cx0, cy0]
            dsize = (rx1 - rx0, ry1 - ry0)
            alpha = cv2.warpAffine(src_alpha, M, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            hard = alpha >= 0.5
            area = int(hard.sum())
            if area < MIN_VISIBLE_PX:
                continue
            # would this leave an earlier fruit with a sliver of 1..29 pixels?
            covered = np.bincount(instances[ry0:ry1, rx0:rx1][hard], minlength=len(counts))
            left = np.asarray(counts) - covered
            if np.any((left[1:] > 0) & (left[1:] < MIN_VISIBLE_PX)):
                continue
            placed = (M, dsize, alpha, hard, rx0, ry0, rx1, ry1, covered)
            break
        if placed is None:
            continue
        M, dsize, alpha, hard, rx0, ry0, rx1, ry1, covered = placed
        fruit = cv2.warpAffine(src, M, dsize, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

        # shadows: darken what is below (background and earlier fruits), never the mask
        dx, dy = math.cos(light) * cast_len * diameter, math.sin(light) * cast_len * diameter
        _shadow_paste(canvas, alpha, rx0, ry0, dx, dy, max(cast_blur * diameter, 0.8), cast)
        _shadow_paste(canvas, alpha, rx0, ry0, dx * 0.15, dy * 0.15, max(0.025 * diameter, 0.6), contact)

        # feathering only widens the fringe outwards; inside pixels keep the warped alpha
        soft = np.maximum(cv2.GaussianBlur(alpha, (0, 0), feather), alpha) if feather > 0.35 else alpha
        region = canvas[ry0:ry1, rx0:rx1]
        region += (fruit - region) * soft[..., None]

        for k in np.flatnonzero(covered[1:]) + 1:
            counts[k] -= int(covered[k])
        counts.append(int(hard.sum()))
        instances[ry0:ry1, rx0:rx1][hard] = len(counts) - 1
        labels.append(int(fruits.labels[idx]))

    # renumber the surviving instances 1..K
    alive = [k for k in range(1, len(counts)) if counts[k] > 0]
    remap = np.zeros(len(counts), np.int32)
    remap[alive] = np.arange(1, len(alive) + 1, dtype=np.int32)
    instances = remap[instances]
    labels = [labels[k - 1] for k in alive]
    boxes = [(sx.start, sy.start, sx.stop, sy.stop) for sy, sx in ndimage.find_objects(instances, len(alive))]

    image = np.clip(canvas + 0.5, 0, 255).astype(np.uint8)
    if degrade:
        image = _degrade(rng, image)
    mask = (instances > 0).astype(np.uint8)
    return Scene(image, mask, instances, labels, boxes, kind)


def _degrade(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Global camera-ish changes on a uint8 scene: white balance and exposure (a LUT),
    blur, sensor noise, JPEG compression."""
    if rng.random() < 0.5:
        gains = rng.uniform(0.92, 1.08, 3) * rng.uniform(0.85, 1.12)
        gamma = rng.uniform(0.85, 1.18)
        levels = np.arange(256, dtype=np.float64)[:, None]
        lut = 255.0 * (np.clip(levels * gains, 0, 255) / 255.0) ** gamma
        image = cv2.LUT(image, np.clip(lut + 0.5, 0, 255).astype(np.uint8).reshape(1, 256, 3))
    if rng.random() < 0.25:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.4, 1.1))
    if rng.random() < 0.4:
        noise = rng.standard_normal(image.shape[:2] + (1,), dtype=np.float32) * rng.uniform(1, 5)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        ok, buf = cv2.imencode(".jpg", image[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(45, 92))])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1]
    return np.ascontiguousarray(image)


# --------------------------------------------------------------------------- dataset


class SceneDataset(torch.utils.data.Dataset):
    """``length`` scenes; item i is ``make_scene(np.random.default_rng([seed, i]), ...)``
    as (image float32 (3, H, W) in [0, 1], mask int64 (H, W)).

    Deterministic by (``seed``, index): a fixed validation set is a fixed seed over
    validation fruits. Changing ``seed`` (e.g. per epoch) gives new scenes.

    With DataLoader workers (fork), do not call ``cv2.setNumThreads`` inside a worker:
    after a fork it can deadlock on the parent's OpenCV thread pool. Set it in the
    parent before the loader starts, if at all.
    """

    def __init__(
        self,
        fruits: FruitBank,
        backgrounds: BackgroundBank,
        length: int,
        size: tuple[int, int] = (256, 256),
        seed: int = 0,
        max_fruits: int = 8,
        degrade: bool = True,
    ) -> None:
        self.fruits, self.backgrounds = fruits, backgrounds
        self.length, self.size, self.seed = int(length), (int(size[0]), int(size[1])), int(seed)
        self.max_fruits, self.degrade = max_fruits, degrade

    def __len__(self) -> int:
        return self.length

    def scene(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(index)
        rng = np.random.default_rng([self.seed, index])
        return make_scene(
            rng, self.fruits, self.backgrounds, self.size, max_fruits=self.max_fruits, degrade=self.degrade
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        scene = self.scene(int(index))
        image = torch.from_numpy(scene.image).permute(2, 0, 1).float().div_(255)
        return image.contiguous(), torch.from_numpy(scene.mask.astype(np.int64))


# --------------------------------------------------------------------------- visual check

_PALETTE = np.array(
    [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], np.float32,
)


def scene_overlay(scene: Scene) -> np.ndarray:
    """The scene darkened outside the mask, each instance tinted, outlines drawn."""
    image = scene.image.astype(np.float32)
    out = image * 0.35
    for k in range(1, len(scene.labels) + 1):
        sel = scene.instances == k
        out[sel] = image[sel] * 0.55 + _PALETTE[(k - 1) % len(_PALETTE)] * 0.45
    out = out.astype(np.uint8)
    inst = scene.instances
    edge = np.zeros(inst.shape, bool)
    edge[:, 1:] |= inst[:, 1:] != inst[:, :-1]
    edge[1:] |= inst[1:] != inst[:-1]
    out[edge] = 255
    return out


def save_scene_grid(scenes: Sequence[Scene], path: str | Path, columns: int = 4) -> Path:
    """Write a PNG montage of (image | mask overlay) pairs; returns the path."""
    scenes = list(scenes)
    if not scenes:
        raise ValueError("no scenes")
    h, w = scenes[0].image.shape[:2]
    tiles = []
    for scene in scenes:
        image, overlay = scene.image, scene_overlay(scene)
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
            overlay = cv2.resize(overlay, (w, h), interpolation=cv2.INTER_NEAREST)
        pair = np.concatenate([image, np.full((h, 2, 3), 255, np.uint8), overlay], axis=1)
        tiles.append(np.pad(pair, ((3, 3), (3, 3), (0, 0)), constant_values=40))
    columns = max(1, min(columns, len(tiles)))
    while len(tiles) % columns:
        tiles.append(np.full_like(tiles[0], 40))
    rows = [np.concatenate(tiles[i : i + columns], axis=1) for i in range(0, len(tiles), columns)]
    grid = np.concatenate(rows, axis=0)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)
    return path
