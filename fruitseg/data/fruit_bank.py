"""A bank of fruit cut-outs from Fruits-360 images: each image's fruit mask recovered the
way the dataset removed its background, the white outside it replaced by nearby fruit
colour (no halo when warped), cached as one .npz."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from tqdm import tqdm

from fruitseg.data.fruits360 import IMAGE_SUFFIXES, FruitImage, list_images, load_rgb_array
from fruitseg.masks import fruit_mask
from fruitseg.labels import FRUITS360_CLASSES

_CACHE_VERSION = 4  # bump when fruit_mask or the bank's preprocessing changes


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
