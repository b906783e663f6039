"""The federated experiments' data: Fruits-360 frames, downscaled and cached, or synthetic.

Training frames and validation frames come from :func:`fruitseg.data.fruits360.split_by_frame_blocks`,
the project's leak-free split (one held-out block of frames per class and rotation, with a guard
band). Everything is decoded once at ``size`` x ``size`` pixels into a ``.npz`` cache, so that
a federated round costs seconds on 2 CPU cores; the Ray workers of the simulation and the
clients of a real deployment read the same cache.

A :class:`DataSpec` names the data; ``root="synthetic"`` makes small coloured-pattern images
(for tests, no files needed).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.models.classifier import FRUITS360_MEAN, FRUITS360_STD

SYNTHETIC = "synthetic"
DEFAULT_CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "fruitseg" / "federated"


@dataclass(frozen=True)
class DataSpec:
    """Which data: a Fruits-360 ``Training`` folder (or ``"synthetic"``) and how much of it.

    ``classes``: how many classes (0 = all 131), evenly spaced over the alphabetical list so
    that a subset mixes fruit kinds rather than taking the first apples. ``per_class`` /
    ``val_per_class``: at most this many training / validation frames per class (0 = all),
    evenly spaced over the class's frames (neighbouring frames are near duplicates).
    """

    root: str = SYNTHETIC
    size: int = 32
    classes: int = 0
    per_class: int = 0
    val_per_class: int = 0
    cache_dir: str = str(DEFAULT_CACHE)

    def key(self) -> str:
        fields = asdict(self)
        fields.pop("cache_dir")
        fields["root"] = fields["root"] if fields["root"] == SYNTHETIC else str(Path(fields["root"]).resolve())
        return hashlib.sha1(repr(sorted(fields.items())).encode()).hexdigest()[:12]


@dataclass
class FederatedData:
    x_train: np.ndarray  # (N, size, size, 3) uint8 RGB
    y_train: np.ndarray  # (N,) int64 in [0, C)
    x_val: np.ndarray
    y_val: np.ndarray
    class_names: list[str]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def class_subset(count: int, total: int = len(FRUITS360_CLASSES)) -> list[int]:
    """``count`` class ids evenly spaced over ``range(total)`` (all of them for 0)."""
    if count <= 0 or count >= total:
        return list(range(total))
    return sorted({int(i) for i in np.linspace(0, total - 1, count).round()})


def _evenly(items: list, limit: int) -> list:
    if limit <= 0 or len(items) <= limit:
        return items
    return [items[int(i)] for i in np.linspace(0, len(items) - 1, limit).round()]


def _per_class(items: list, limit: int) -> list:
    by_class: dict[int, list] = {}
    for item in items:
        by_class.setdefault(item.label, []).append(item)
    return [item for label in sorted(by_class) for item in _evenly(by_class[label], limit)]


def _fruits360(spec: DataSpec) -> FederatedData:
    from fruitseg.data.fruits360 import list_images, load_rgb_array, split_by_frame_blocks

    wanted = class_subset(spec.classes)
    names = [FRUITS360_CLASSES[i] for i in wanted]
    remap = {old: new for new, old in enumerate(wanted)}
    items = [item for item in list_images(spec.root) if item.label in remap]
    train, val = split_by_frame_blocks(items)
    train, val = _per_class(train, spec.per_class), _per_class(val, spec.val_per_class)
    return FederatedData(
        load_rgb_array(train, spec.size, desc="decoding training frames"),
        np.array([remap[i.label] for i in train], dtype=np.int64),
        load_rgb_array(val, spec.size, desc="decoding validation frames"),
        np.array([remap[i.label] for i in val], dtype=np.int64),
        names,
    )


def synthetic(num_classes: int = 6, per_class: int = 40, val_per_class: int = 10, size: int = 16, seed: int = 0) -> FederatedData:
    """Tiny learnable images: each class a colour and a stripe direction, plus noise."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, size=(num_classes, 3))
    ramp = np.linspace(-1, 1, size)

    def draw(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(num_classes), count)
        images = np.empty((labels.size, size, size, 3), dtype=np.uint8)
        for i, label in enumerate(labels):
            angle = np.pi * label / num_classes
            stripes = np.sin(4 * (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]))
            image = colours[label] + 30 * stripes[..., None] + rng.normal(0, 12, size=(size, size, 3))
            images[i] = np.clip(image, 0, 255).astype(np.uint8)
        return images, labels.astype(np.int64)

    x_train, y_train = draw(per_class)
    x_val, y_val = draw(val_per_class)
    return FederatedData(x_train, y_train, x_val, y_val, [f"class {i}" for i in range(num_classes)])


def _synthetic_from_spec(spec: DataSpec) -> FederatedData:
    return synthetic(spec.classes or 6, spec.per_class or 40, spec.val_per_class or 10, spec.size)


def cache_path(spec: DataSpec) -> Path:
    return Path(spec.cache_dir) / f"fruits360-{spec.size}px-{spec.key()}.npz"


@lru_cache(maxsize=4)
def load(spec: DataSpec) -> FederatedData:
    """The data for ``spec``; Fruits-360 is decoded once and then read from the cache."""
    if spec.root == SYNTHETIC:
        return _synthetic_from_spec(spec)
    path = cache_path(spec)
    if not path.exists():
        data = _fruits360(spec)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, x_train=data.x_train, y_train=data.y_train, x_val=data.x_val, y_val=data.y_val,
                 class_names=np.array(data.class_names))  # fmt: skip
        partial.replace(path)  # atomic: concurrent readers never see half a file
        return data
    with np.load(path) as cached:
        return FederatedData(
            cached["x_train"], cached["y_train"], cached["x_val"], cached["y_val"], [str(n) for n in cached["class_names"]]
        )


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32, normalised by the fixed Fruits-360 constants
    (``FRUITS360_MEAN`` / ``FRUITS360_STD``, the seed classifier's defaults).

    On purpose not a model's ``transforms()`` (:mod:`fruitseg.models.transforms`): the
    federated experiments' own small models carry no config, and their preprocessing must not
    move when a retrained shipped classifier measures new statistics for its ``config.json``."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(FRUITS360_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(FRUITS360_STD).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()
