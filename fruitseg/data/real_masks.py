"""Real photos with hand-drawn fruit masks (``../shared/data/real-masks``): ``<name>.jpg`` +
``<name>.png`` (255 = fruit, 0 = not), named ``<source>_<id>``. A mask may also mark pixels
as unsure (:data:`UNSURE_VALUE`, the pseudo-masks of :mod:`fruitseg.train.pseudo_masks`):
they are :data:`IGNORE` in the labels, and neither trained on nor measured.

Used to train the segmenter beside the composite scenes (a few of them in every batch,
randomly cropped and flipped) and to measure it on real photos, per source
(``python -m fruitseg.evaluate segmenter --real``). The kinds of fruit in each photo, from
``SOURCES.tsv``, let the classifiers be measured on them too
(:func:`photo_kind_sets`, ``python -m fruitseg.evaluate kinds``).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision import tv_tensors

from fruitseg.labels import kind_for_folder

SOURCES_FILE = "SOURCES.tsv"
UNSURE_VALUE = 128  # a mask pixel that is neither fruit (255) nor background (0); read: 64 < value < 192
IGNORE = 255  # its label: no loss (``F.cross_entropy(..., ignore_index=IGNORE)``), not measured

# SOURCES.tsv's kind words that are not a Fruits-360 kind as written (lower case): the
# fruitsnuts_ photos' dried figs and dried jujubes (Fruits-360 "Dates", kind "Date"), and
# the ujpantry_ "litchi" (Fruits-360 "Lychee").
SOURCE_KIND_NAMES: dict[str, str] = {
    "fig (dried)": "fig",
    "jujube (red date, dried)": "dates",
    "litchi": "lychee",
}


def mask_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """Every (photo, mask) pair in ``folder``; a photo without its mask is an error."""
    photos = sorted(Path(folder).glob("*.jpg"))
    missing = [p.name for p in photos if not p.with_suffix(".png").exists()]
    if missing or not photos:
        raise ValueError(f"{folder}: {'no photos' if not photos else 'photos without a mask: ' + ', '.join(missing)}")
    return [(p, p.with_suffix(".png")) for p in photos]


def find_sources(folder: str | Path) -> Path | None:
    """The ``SOURCES.tsv`` in ``folder`` or, failing that, in its parent (``real-masks/test``
    shares ``real-masks/SOURCES.tsv``); None if neither has one."""
    folder = Path(folder)
    for candidate in (folder / SOURCES_FILE, folder.parent / SOURCES_FILE):
        if candidate.is_file():
            return candidate
    return None


def kind_of_source_word(word: str) -> str | None:
    """The Fruits-360 kind a ``fruit_kind`` word of SOURCES.tsv names (``"litchi"`` ->
    ``"Lychee"``, ``"jujube (red date, dried)"`` -> ``"Date"``), or None."""
    key = word.strip().lower()
    return kind_for_folder(SOURCE_KIND_NAMES.get(key, key))


def photo_kind_sets(folder: str | Path) -> list[tuple[Path, frozenset[str]]]:
    """Every ``<folder>/*.jpg`` (sorted) as (path, the Fruits-360 kinds in the photo).

    The kinds come from the ``fruit_kind`` column of the ``SOURCES.tsv`` in ``folder`` or its
    parent (``;``-separated words, e.g. ``apple; banana``), whose ``file`` column is relative
    to the TSV's own folder (``test/coco_000000269314.jpg``). A word that names no Fruits-360
    kind (after :data:`SOURCE_KIND_NAMES`) is refused with the list of them, as is a photo
    without a row or without kinds, so nothing is dropped silently.
    """
    folder = Path(folder)
    sources = find_sources(folder)
    if sources is None:
        raise ValueError(f"{folder}: no {SOURCES_FILE} in it or its parent")
    with open(sources, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    missing_columns = {"file", "fruit_kind"} - set(rows[0] if rows else ())
    if missing_columns:
        raise ValueError(f"{sources}: no column {', '.join(sorted(missing_columns))}")
    words = {(sources.parent / row["file"]).resolve(): [w.strip() for w in (row["fruit_kind"] or "").split(";") if w.strip()]
             for row in rows}
    photos = sorted(folder.glob("*.jpg"))
    if not photos:
        raise ValueError(f"no photos in {folder} (expected <name>.jpg)")
    unlisted = [p.name for p in photos if not words.get(p.resolve())]
    if unlisted:
        raise ValueError(f"{sources}: no fruit_kind for {', '.join(unlisted)}")
    unknown = sorted({w for p in photos for w in words[p.resolve()] if kind_of_source_word(w) is None})
    if unknown:
        raise ValueError(f"{sources}: fruit kinds that name no Fruits-360 kind: {', '.join(unknown)}")
    return [(p, frozenset(kind_of_source_word(w) for w in words[p.resolve()])) for p in photos]


def source_of(path: Path) -> str:
    return path.stem.split("_", 1)[0]


def load_pair(photo: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB, (H, W) uint8 labels: 1 fruit, 0 background, IGNORE unsure."""
    with Image.open(photo) as image, Image.open(mask) as m:
        values = np.asarray(m.convert("L"))
        labels = np.where(values >= 192, 1, np.where(values <= 64, 0, IGNORE)).astype(np.uint8)
        return np.asarray(image.convert("RGB")).copy(), labels


class RealMasks(torch.utils.data.Dataset):
    """Random square crops (a third to all of the shorter side), flips and colour jitter of real
    masked photos, as (image float32 (3, S, S) in [0, 1], mask int64 (S, S)) like ``SceneDataset``
    (labels 0 and 1, and IGNORE where the mask is unsure)."""

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
        m = tv_tensors.Mask(torch.from_numpy(mask).long())
        x, m = self.transform(x, m)
        return x.float().div_(255).as_subclass(torch.Tensor), m.as_subclass(torch.Tensor)
