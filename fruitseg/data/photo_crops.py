"""Training images for the photo classifier: fruit in photo-like context, and real photos.

Two sources, mixed in every batch by ``python -m fruitseg.train photo-classifier``:

* :class:`CompositeCrops`: Fruits-360 fruits cut out and composited on photo and
  procedural backgrounds (:func:`fruitseg.data.scenes.make_scene`, with its shadows, colour
  jitter, blur, noise and JPEG), labelled by class. Half are *piles*: the middle of a scene of 4-8 fruits of one
  class, as in a market crate; half are *one fruit* cropped loosely or
  tightly around it (what the pipeline hands the classifier after segmenting a photo),
  sometimes cut by the crop's edge.
* :class:`KindPhotos`: real photos in ``<kind>/*.jpg`` folders (``../shared/data/real-photos``),
  labelled by kind only: a random resized crop, a flip and colour jitter (or, ``strong``,
  torchvision's TrivialAugmentWide as well).

Both return uint8 (3, S, S) tensors; normalisation belongs to the model's preprocessing.
Item ``i`` of :class:`CompositeCrops` is a pure function of (``seed``, ``i``).
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

from fruitseg.data.backgrounds import BackgroundBank
from fruitseg.data.fruit_bank import FruitBank
from fruitseg.data.fruits360 import image_files
from fruitseg.data.scenes import make_scene
from fruitseg.labels import FRUITS360_CLASSES, kind_for_folder, kind_of


def composite_crop(
    rng: np.random.Generator, fruits: FruitBank, backgrounds: BackgroundBank, size: int, by_kind: bool = False
) -> tuple[np.ndarray, int]:
    """(an (size, size, 3) uint8 photo-like image, its Fruits-360 class id).

    Classes are drawn uniformly, or with ``by_kind`` a kind uniformly and then one of its
    classes: a kind's probability is the sum over its classes, so class-uniform draws give
    Apple (13 classes) 13 times the prior of a one-class kind."""
    if by_kind:
        kinds = sorted({kind_of(FRUITS360_CLASSES[c]) for c in fruits.classes})
        kind = kinds[rng.integers(len(kinds))]
        members = [c for c in fruits.classes if kind_of(FRUITS360_CLASSES[c]) == kind]
        label = int(members[rng.integers(len(members))])
    else:
        label = int(fruits.classes[rng.integers(len(fruits.classes))])
    if rng.random() < 0.5:  # a pile of one kind: the middle of a scene of 4-8, so fruits are larger and denser
        canvas = int(size / rng.uniform(0.55, 0.9))
        scene = make_scene(rng, fruits, backgrounds, (canvas, canvas), max_fruits=8, min_fruits=4, classes=[label])
        x0, y0 = (canvas - size) // 2 + rng.integers(-(canvas - size) // 4, (canvas - size) // 4 + 1, size=2)
        return np.ascontiguousarray(scene.image[y0 : y0 + size, x0 : x0 + size]), label
    canvas = int(size * 1.5)
    scene = make_scene(rng, fruits, backgrounds, (canvas, canvas), max_fruits=1, classes=[label])
    x0, y0, x1, y1 = scene.boxes[0] if scene.boxes else (0, 0, canvas, canvas)
    side = max(x1 - x0, y1 - y0) * math.exp(rng.uniform(math.log(0.8), math.log(2.2)))  # < 1: cut by the edge
    cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15) * side
    cy = (y0 + y1) / 2 + rng.uniform(-0.15, 0.15) * side
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2])
    # an affine crop: parts outside the canvas repeat its border, as a padded photo would
    scale = size / side
    matrix = np.array([[scale, 0, -box[0] * scale], [0, scale, -box[1] * scale]], np.float64)
    crop = cv2.warpAffine(scene.image, matrix, (size, size), flags=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)
    return crop, label


class CompositeCrops(torch.utils.data.Dataset):
    """``length`` composite crops; item i = :func:`composite_crop` with ``default_rng([seed, i])``."""

    def __init__(
        self, fruits: FruitBank, backgrounds: BackgroundBank, length: int, size: int, seed: int = 0, by_kind: bool = False
    ) -> None:
        self.fruits, self.backgrounds = fruits, backgrounds
        self.length, self.size, self.seed, self.by_kind = int(length), int(size), int(seed), by_kind

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        rng = np.random.default_rng([self.seed, int(index)])
        image, label = composite_crop(rng, self.fruits, self.backgrounds, self.size, self.by_kind)
        return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1), label


def kind_photo_files(root: str | Path) -> list[tuple[Path, str]]:
    """Every ``<root>/<kind>/*.jpg`` as (path, kind); folders that name no Fruits-360 kind are
    refused with the list of them, so a typo cannot silently drop a kind."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    unknown = [p.name for p in folders if kind_for_folder(p.name) is None]
    if unknown:
        raise ValueError(f"{root}: folders that name no Fruits-360 kind: {', '.join(unknown)}")
    items = [(path, kind_for_folder(folder.name)) for folder in folders for path in image_files(folder)]
    if not items:
        raise ValueError(f"no photos under {root} (expected <kind>/*.jpg)")
    return items


class KindPhotos(torch.utils.data.Dataset):
    """Real photos labelled by kind, decoded once (longer side <= ``max_side``): items are
    (path, kind) or (path, the set of kinds the photo shows); item i is (uint8 image, (K,)
    bool: the kinds of photo i), the target :func:`fruitseg.losses.kind_nll_loss` takes.

    ``augment``: ``"none"`` the centre square at ``size`` (validation); ``"basic"`` a random
    resized crop (25-100 % of the area), flip and colour jitter; ``"strong"`` a wider random
    resized crop (8-100 %, aspect 1:2 to 2:1), flip, torchvision's ``TrivialAugmentWide``
    (one random photometric or geometric op per image) and sometimes a blur, so that a
    model cannot lean on how one store's piles look.
    """

    AUGMENTS = ("none", "basic", "strong")

    def __init__(self, items: list[tuple[Path, str]], kinds: list[str], size: int, augment: str = "basic", max_side: int = 288):
        if augment not in self.AUGMENTS:
            raise ValueError(f"augment must be one of {self.AUGMENTS}, got {augment!r}")
        self.targets = torch.zeros(len(items), len(kinds), dtype=torch.bool)
        for i, (_, shown) in enumerate(items):
            self.targets[i, [kinds.index(kind) for kind in ([shown] if isinstance(shown, str) else sorted(shown))]] = True
        self.images = []
        for path, _ in items:
            with Image.open(path) as image:
                image = image.convert("RGB")
                image.thumbnail((max_side, max_side), Image.BILINEAR)
                self.images.append(torch.from_numpy(np.asarray(image).copy()).permute(2, 0, 1))
        if augment == "basic":
            self.transform = v2.Compose([
                v2.RandomResizedCrop(size, scale=(0.25, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.ColorJitter(0.3, 0.3, 0.3, 0.03),
            ])
        elif augment == "strong":
            self.transform = v2.Compose([
                v2.RandomResizedCrop(size, scale=(0.08, 1.0), ratio=(1 / 2, 2), antialias=True),
                v2.RandomHorizontalFlip(),
                v2.TrivialAugmentWide(),
                v2.RandomApply([v2.GaussianBlur(5, sigma=(0.3, 2.0))], p=0.2),
            ])
        else:
            self.transform = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.transform(self.images[index]), self.targets[index]
