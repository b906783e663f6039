"""Real photos as the seed CNN sees them in the app, labelled by the photo classifier.

The seed CNN (``FruitsClassificationModel``) learned from Fruits-360 frames only; in the app
it classifies cut-outs of the fruits the segmenter finds in a photo. :func:`teacher_cutouts`
makes exactly those cut-outs from real photos labelled by kind (``<kind>/*.jpg``) and
labels each with the photo classifier's class probabilities on the same fruit (its own view,
the fruit in its surroundings), kept to the photo's kind: the teacher says which varieties,
the folder says which kind. A fruit the teacher gives less than ``min_agreement`` of the
kind is left out (a neighbouring crate of something else, a bag, a price tag).

``python -m fruitseg.train classifier --distill-photos DIR`` trains on them beside the
Fruits-360 frames (soft-target cross entropy, Hinton et al. 2015).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm

from fruitseg.data.photo_crops import kind_photo_files
from fruitseg.images import load_image
from fruitseg.instances import context_crop, cut_out, split_fruits
from fruitseg.labels import FRUITS360_CLASSES, FRUITS360_KINDS, KIND_INDEX
from fruitseg.losses import kind_membership
from fruitseg.pipeline import FruitPipeline
from fruitseg.predictors import PhotoClassifier, Segmenter, square_on_white
from fruitseg.provenance import weights_identity


def teacher_cutouts(
    photos: str | Path, segmenter: Segmenter, teacher: PhotoClassifier, size: int = 100,
    per_photo: int = 4, min_agreement: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, size, size, 3) uint8, targets (N, C) float32 rows summing to 1): at most
    ``per_photo`` fruits a photo (the segmenter's surest first), cut out on white as the app does."""
    if list(teacher.class_names) != list(FRUITS360_CLASSES):
        raise ValueError("the teacher must name the 131 Fruits-360 classes in the seed CNN's order")
    membership = kind_membership(KIND_INDEX, len(FRUITS360_KINDS))  # (K, C)
    pipeline = FruitPipeline(None, segmenter)
    images, targets = [], []
    for path, kind in tqdm(kind_photo_files(photos), desc="teacher cut-outs", unit="photo"):
        image = load_image(path)
        regions = split_fruits(pipeline.segment(image))[:per_photo]
        if not regions:
            continue
        probs = torch.from_numpy(teacher.logits([context_crop(image, r.box) for r in regions])).softmax(1)
        in_kind = membership[FRUITS360_KINDS.index(kind)].float()
        agreement = (probs * in_kind).sum(1)
        for region, p, share in zip(regions, probs, agreement):
            if share >= min_agreement:
                images.append(np.asarray(square_on_white(cut_out(image, region.mask), size)))
                targets.append(p * in_kind / share)
    if not images:
        raise ValueError(f"no fruit in {photos} that the teacher agrees with")
    return torch.from_numpy(np.stack(images)), torch.stack(targets).float()


def cached_teacher_cutouts(photos: str | Path, cache: Path, size: int = 100) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`teacher_cutouts` with the app's segmenter and photo classifier, kept in ``cache``
    (a safetensors file) and made again when the photos folder or either model's weights change."""
    segmenter, teacher = Segmenter.load("cpu"), PhotoClassifier.load("cpu")
    key = {"photos": str(Path(photos).resolve()), "size": str(size),
           "segmenter": weights_identity(segmenter.source)["sha256"], "teacher": weights_identity(teacher.source)["sha256"]}
    if cache.exists():
        with safe_open(str(cache), "pt") as f:
            if f.metadata() == key:
                return f.get_tensor("images"), f.get_tensor("targets")
    images, targets = teacher_cutouts(photos, segmenter, teacher, size)
    cache.parent.mkdir(parents=True, exist_ok=True)
    save_file({"images": images, "targets": targets}, str(cache), metadata=key)
    return images, targets
