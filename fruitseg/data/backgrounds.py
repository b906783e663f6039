"""Backgrounds for composite scenes: random crops of photos, plain white, and procedural
surfaces (plain colour, gradient, smooth noise, fine grain)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np
from PIL import Image

from fruitseg.data.colour import apply_colour, colour_jitter_matrix, random_colour
from fruitseg.data.fruits360 import image_files

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

    def texture(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        """(H, W, 3) float32 in 0..255: a photo crop (a real surface's texture); a procedural
        background when the bank has no photos."""
        h, w = size
        return self._photo(rng, h, w) if self.photos else self._procedural(rng, h, w)[0]

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
        matrix, contrast = colour_jitter_matrix(rng, 0.25, 0.25, 0.3, 10)
        out = apply_colour(out, matrix, contrast)
        if rng.random() < 0.2:
            out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.6, 2.5))
        return out

    def _procedural(self, rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, str]:
        kind = _PROCEDURAL_KINDS[int(np.searchsorted(_PROCEDURAL_CDF, rng.random(), side="right"))]
        c1 = random_colour(rng)
        if kind == "plain":
            out = np.empty((h, w, 3), np.float32)
            out[:] = c1
        elif kind == "gradient":
            c2 = c1 * rng.uniform(0.5, 1.3) if rng.random() < 0.5 else random_colour(rng)
            angle = rng.uniform(0, 2 * math.pi)
            xx = (np.arange(w, dtype=np.float32) - w / 2) * (math.cos(angle) / w)
            yy = (np.arange(h, dtype=np.float32) - h / 2) * (math.sin(angle) / h)
            t = np.clip(yy[:, None] + xx[None, :] + 0.5, 0, 1)[..., None]
            out = t * (c2 - c1).astype(np.float32) + c1
        else:
            c2 = random_colour(rng)
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
