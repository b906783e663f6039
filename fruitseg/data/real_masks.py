"""Real photos with hand-drawn fruit masks (``../shared/data/real-masks``): ``<name>.jpg`` +
``<name>.png`` (255 = fruit), named ``<source>_<id>``.

Used to train the segmenter beside the composite scenes (a few of them in every batch,
randomly cropped and flipped) and to measure it on real photos, per source
(``python -m fruitseg.evaluate segmenter --real``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision import tv_tensors


def mask_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Every (photo, mask) pair in ``folder``; a photo without its mask is an error."""
    photos = sorted(Path(folder).glob("*.jpg"))
    missing = [p.name for p in photos if not p.with_suffix(".png").exists()]
    if missing or not photos:
        raise ValueError(f"{folder}: {'no photos' if not photos else 'photos without a mask: ' + ', '.join(missing)}")
    return [(p, p.with_suffix(".png")) for p in photos]


def source_of(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def load_pair(photo: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB, (H, W) bool fruit mask."""
    with Image.open(photo) as image, Image.open(mask) as m:
        return np.asarray(image.convert("RGB")).copy(), np.asarray(m.convert("L")) >= 128


class RealMasks(torch.utils.data.Dataset):
    """Random square crops (a third to all of the shorter side), flips and colour jitter of real
    masked photos, as (image float32 (3, S, S) in [0, 1], mask int64 (S, S)) like ``SceneDataset``."""

    def __init__(self, folder: str | Path, size: int) -> None:
        self.pairs = [load_pair(*pair) for pair in mask_pairs(folder)]
        self.transform = v2.Compose([
            v2.RandomResizedCrop(size, scale=(0.3, 1.0), ratio=(0.8, 1.25), antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ColorJitter(0.25, 0.25, 0.25, 0.02),
        ])

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.pairs[index]
        x = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1))
        m = tv_tensors.Mask(torch.from_numpy(mask.astype(np.int64)))
        x, m = self.transform(x, m)
        return x.float().div_(255).as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)
