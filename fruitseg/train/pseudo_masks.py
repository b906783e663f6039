"""Pseudo-masks: the app's own fruit masks on unlabelled real photos, to train the segmenter on.

    python -m fruitseg.train pseudo-masks --photos ../shared/data/real-photos/train --out runs/pseudo-masks

Self-training ("noisy student", Xie et al., CVPR 2020): the shipped segmenter, as the app
runs it (:meth:`FruitPipeline.segment`, averaged with its answer on the mirrored photo),
labels photos nobody masked by hand; a student then learns them under random crops, flips
and colour jitter beside the composites and the hand-masked photos
(``python -m fruitseg.train segmenter --pseudo-masks DIR``). Only what the teacher is sure
of is a label: fruit where its probability is at least ``sure``, background where it is at
most ``1 - sure``; the pixels between (edges, gaps in piles, wrapped fruit) are written as
:data:`~fruitseg.data.real_masks.UNSURE_VALUE` and cost the student nothing. A photo where
the teacher is sure of less than ``min_fruit`` of the pixels being fruit is left out: every
photo of a kind-labelled set shows fruit, so the teacher has missed it (wrapped cucumbers,
bananas, pineapples in the grocery set), and its "background" would teach the student to
miss it too.

The output folder reads like ``real-masks``: ``<kind>_<name>.jpg`` (longer side at most
``max_side``) beside ``<kind>_<name>.png``, plus ``pseudo_masks.json`` naming the teacher's
weights and the thresholds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from fruitseg.data.photo_crops import kind_photo_files
from fruitseg.data.real_masks import UNSURE_VALUE
from fruitseg.images import load_image
from fruitseg.pipeline import FruitPipeline
from fruitseg.predictors import Segmenter
from fruitseg.provenance import weights_identity


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--photos", required=True, help="real photos in <kind>/*.jpg (labels are not read)")
    parser.add_argument("--out", required=True, help="folder to write <kind>_<name>.jpg/.png into")
    parser.add_argument("--sure", type=float, default=0.9,
                        help="fruit where the teacher's probability is >= this, background where <= 1 - this")
    parser.add_argument("--min-fruit", type=float, default=0.15,
                        help="leave out a photo whose sure fruit is less than this share of it (the teacher missed it)")
    parser.add_argument("--max-side", type=int, default=384, help="longer side of the written photos")


def teacher_probability(pipeline: FruitPipeline, image: Image.Image) -> np.ndarray:
    """(H, W) fruit probability: the app's map averaged with the map of the mirrored photo."""
    mirrored = pipeline.segment(ImageOps.mirror(image))[:, ::-1]
    return (pipeline.segment(image) + mirrored) / 2


def pseudo_mask(probability: np.ndarray, sure: float) -> np.ndarray:
    """(H, W) uint8 mask in the real-masks convention: 255 fruit, 0 background, UNSURE_VALUE between."""
    mask = np.full(probability.shape, UNSURE_VALUE, np.uint8)
    mask[probability >= sure] = 255
    mask[probability <= 1 - sure] = 0
    return mask


def write_pseudo_masks(photos: str | Path, out: str | Path, segmenter: Segmenter, sure: float = 0.9,
                       min_fruit: float = 0.15, max_side: int = 384) -> dict:
    """Label the photos of ``photos`` (``<kind>/*.jpg``) into ``out``; returns the summary
    written to ``out/pseudo_masks.json`` (teacher, thresholds, photos left out per kind,
    shares of sure pixels in those written)."""
    if not 0.5 < sure < 1:
        raise ValueError(f"sure must be in (0.5, 1), got {sure}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pipeline = FruitPipeline(None, segmenter)
    counts = np.zeros(3)  # fruit, background, unsure pixels
    files = kind_photo_files(photos)
    left_out: dict[str, int] = {}
    for path, kind in tqdm(files, desc="pseudo-masks", unit="photo"):
        image = load_image(path, max_side=max_side)
        mask = pseudo_mask(teacher_probability(pipeline, image), sure)
        if (mask == 255).mean() < min_fruit:
            left_out[kind] = left_out.get(kind, 0) + 1
            continue
        name = f"{kind.lower().replace(' ', '-')}_{path.stem}"
        image.save(out / f"{name}.jpg", quality=90)
        Image.fromarray(mask).save(out / f"{name}.png")
        counts += [(mask == 255).sum(), (mask == 0).sum(), (mask == UNSURE_VALUE).sum()]
    summary = {
        "photos": len(files) - sum(left_out.values()), "source": str(Path(photos)), "sure": sure,
        "min_fruit": min_fruit, "max_side": max_side, "left_out": dict(sorted(left_out.items())),
        "teacher": weights_identity(segmenter.source), "teacher_view": "FruitPipeline.segment, mean with the mirrored photo",
        **{f"{name}_share": round(float(c / max(counts.sum(), 1)), 4) for name, c in zip(("fruit", "background", "unsure"), counts)},
    }
    (out / "pseudo_masks.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def run(args: argparse.Namespace) -> None:
    summary = write_pseudo_masks(args.photos, args.out, Segmenter.load(), args.sure, args.min_fruit, args.max_side)
    print(json.dumps(summary, indent=2))
