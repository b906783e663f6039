"""Calibrate a trained classifier for int8 CPU inference (writes its config.json).

    python -m fruitseg.train calibrate --data ../shared/data/fruits360/Training \
        --model checkpoints/classifier

Runs the BN-folded float model over training frames (never the validation blocks), half
of them as they are and half made to look like the pipeline's cut-outs of scene fruit
(the training augmentation's own :func:`fruitseg.train.augment.augment`), records each
quantized activation's histogram and writes the chosen ranges into the model's
``config.json`` as ``int8_calibration`` (:mod:`fruitseg.models.quantized`). The weights
file is not touched. ``python -m fruitseg.train classifier`` does this after its last
epoch; run it by hand for a model trained before int8 inference existed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fruitseg.data.fruits360 import list_images, load_rgb_array, split_by_frame_blocks
from fruitseg.models.classifier import FruitsClassificationModel
from fruitseg.models.quantized import calibrate
from fruitseg.models.classifier import fold_batchnorm
from fruitseg.train.augment import augment, fruit_masks, to_float

CALIBRATION_IMAGES = 2000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="../shared/data/fruits360/Training", help="Fruits-360 Training folder (<Class>/*.jpg)")
    parser.add_argument("--model", default="checkpoints/classifier", help="saved classifier folder; its config.json is updated")
    parser.add_argument("--images", type=int, default=CALIBRATION_IMAGES, help="training frames to calibrate on")
    parser.add_argument("--cutout-fraction", type=float, default=0.5, help="share of them made to look like pipeline cut-outs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")


def calibrate_classifier(
    model: FruitsClassificationModel,
    images: torch.Tensor,
    masks: torch.Tensor,
    cutout_fraction: float = 0.5,
    seed: int = 0,
    batch_size: int = 250,
) -> dict:
    """``int8_calibration`` for ``model`` from (N, H, W, 3) uint8 training ``images`` and
    their (N, H, W) fruit ``masks``, augmented as in training (fixed seed)."""
    generator = torch.Generator().manual_seed(seed)
    transform = model.transforms()  # the config's mean / std, as in training
    folded = fold_batchnorm(model).float().cpu()

    def batches():
        for start in tqdm(range(0, len(images), batch_size), desc="int8 calibration", unit="batch"):
            x = to_float(images[start : start + batch_size].cpu())
            mask = masks[start : start + batch_size].cpu().unsqueeze(1).float()
            yield transform(augment(x, mask, generator, cutout_fraction))

    ranges = calibrate(folded, batches())
    return {**ranges, "images": len(images), "cutout_fraction": cutout_fraction, "seed": seed}


def write_calibration(model_dir: str | Path, calibration: dict) -> None:
    """Put ``calibration`` into ``model_dir/config.json`` (other keys unchanged)."""
    path = Path(model_dir) / "config.json"
    config = json.loads(path.read_text())
    config["int8_calibration"] = calibration
    path.write_text(json.dumps(config, indent=2) + "\n")


def sample_training_frames(data: str | Path, count: int, seed: int) -> list:
    train_items, _ = split_by_frame_blocks(list_images(data))
    rng = np.random.default_rng(seed)
    return [train_items[i] for i in sorted(rng.permutation(len(train_items))[:count])]


@torch.inference_mode()
def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    items = sample_training_frames(args.data, args.images, args.seed)
    images = load_rgb_array(items, desc="calibration images")
    masks = fruit_masks(images)
    model = FruitsClassificationModel.from_pretrained(args.model).eval()
    calibration = calibrate_classifier(model, torch.from_numpy(images), masks, args.cutout_fraction, args.seed)
    write_calibration(args.model, calibration)
    print(f"wrote int8_calibration for {len(items)} training frames to {Path(args.model) / 'config.json'}")
    print(json.dumps(calibration))
