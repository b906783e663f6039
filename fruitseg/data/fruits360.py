"""Fruits-360 folders laid out as ``<root>/<Class name>/*.jpg`` and a leak-free split.

Fruits-360 filmed each fruit on a slowly rotating shaft; ``N_100.jpg`` is frame N of the
main rotation and ``r_N_100.jpg`` frame N of a second rotation. Neighbouring frames are
near duplicates, so a random per-image split leaks. :func:`split_by_frame_blocks` holds
out one contiguous block of frames per class and rotation, and drops a guard band of
frames on both sides of the block from training.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from fruitseg.images import IMAGE_SUFFIXES
from fruitseg.labels import FRUITS360_CLASSES

_FRAME = re.compile(r"^(?P<rot>r\d*_)?(?P<n>\d+)_100\.jpg$", re.IGNORECASE)


@dataclass(frozen=True)
class FruitImage:
    path: Path
    label: int      # index into FRUITS360_CLASSES
    rotation: str   # "" for the main rotation, "r_" (or "r2_", ...) for the others
    frame: int      # frame number N within its rotation, -1 when the name has none


def parse_frame(name: str) -> tuple[str, int]:
    """``"r_12_100.jpg"`` -> ``("r_", 12)``; names outside the scheme give ``("", -1)``."""
    match = _FRAME.match(name)
    if match is None:
        return "", -1
    return match.group("rot") or "", int(match.group("n"))


def image_files(folder: str | Path) -> list[Path]:
    """The JPEG and PNG files directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def list_images(root: str | Path, class_names: tuple[str, ...] = FRUITS360_CLASSES) -> list[FruitImage]:
    """Every ``<root>/<Class>/*.jpg`` whose class is one of ``class_names``, sorted by path.

    A folder with only some of the classes works; an unknown class folder is an error,
    since its images could not be scored.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    index = {name: i for i, name in enumerate(class_names)}
    items: list[FruitImage] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name not in index:
            raise ValueError(f"{folder} is not one of the {len(class_names)} Fruits-360 classes")
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rotation, frame = parse_frame(path.name)
                items.append(FruitImage(path, index[folder.name], rotation, frame))
    if not items:
        raise ValueError(f"no images found under {root} (expected <Class>/*.jpg)")
    return items


def split_by_frame_blocks(
    items: list[FruitImage], val_start: float = 0.70, val_end: float = 0.85, guard: float = 0.03
) -> tuple[list[FruitImage], list[FruitImage]]:
    """Split into (train, val) by contiguous frame blocks, per class and rotation.

    For each (class, rotation) with frames 0..max, the frames with ``N/max`` in
    ``[val_start, val_end)`` are validation; frames within ``guard`` of that block are
    dropped, so no training frame is a near neighbour of a validation frame.
    """
    groups: dict[tuple[int, str], list[FruitImage]] = {}
    for item in items:
        groups.setdefault((item.label, item.rotation), []).append(item)
    train, val = [], []
    for group in groups.values():
        top = max(max(i.frame for i in group), 1)
        for item in group:
            position = item.frame / top
            if val_start <= position < val_end:
                val.append(item)
            elif not (val_start - guard <= position < val_end + guard):
                train.append(item)
    return train, val


def load_rgb_array(items: list[FruitImage], size: int = 100, desc: str = "decoding") -> np.ndarray:
    """Decode images to one (N, size, size, 3) uint8 array (RGB)."""
    out = np.empty((len(items), size, size, 3), dtype=np.uint8)
    for i, item in enumerate(tqdm(items, desc=desc, unit="img", leave=False)):
        with Image.open(item.path) as image:
            image = image.convert("RGB")
            if image.size != (size, size):
                image = image.resize((size, size), Image.BILINEAR)
            out[i] = np.asarray(image)
    return out
