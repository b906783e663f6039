"""Train EfficientNetFruitClassifier (ImageNet EfficientNet-Lite0) for real photos.

    python -m fruitseg.train photo-classifier --data ../shared/data/fruits360/Training \
        --backgrounds ../shared/data/backgrounds --photos ../shared/data/real-photos/train \
        --out checkpoints/photo-classifier --steps 2000

Every step takes half its batch from composite crops of Fruits-360 fruits on photo and
procedural backgrounds (piles of one class and single fruits, labelled by class: cross
entropy with label smoothing) and half from real photos labelled by kind only (the
negative log of the kind's summed class probability, :func:`fruitseg.losses.kind_nll_loss`).
The body starts from ImageNet (``requirements-train.txt``) and learns at
``--body-lr-scale`` times the head's rate, so what ImageNet knows about real photos is
kept while the new head is learned. An exponential moving average of the weights is what
is evaluated and exported. ``--init-from DIR`` continues from a saved model with a fresh
schedule (the next training stage); ``--resume`` picks up an interrupted run.

``--photo-augment strong`` augments the real photos harder (TrivialAugmentWide and wider
crops); ``--imagenet-distill W`` keeps what ImageNet knows in the body ("learning without
forgetting"): a training-only copy of the ImageNet head on the model's pooled features
learns to match the frozen ImageNet model's answers on every training image (Hinton
distillation, weight W); the exported model is unchanged in shape.

Validation, every ``--eval-every`` steps: top-1 by class and by kind on fixed composite
crops of the held-out Fruits-360 frames on held-out backgrounds, and top-1 by kind on
every tenth photo of ``--photos`` (held out from training). ``real-photos/test`` is never
read here: ``python -m fruitseg.evaluate kinds`` measures on it.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm import tqdm

from fruitseg.data.backgrounds import BackgroundBank, split_backgrounds
from fruitseg.data.fruit_bank import FruitBank
from fruitseg.data.fruits360 import list_images, split_by_frame_blocks
from fruitseg.data.photo_crops import CompositeCrops, KindPhotos, kind_photo_files
from fruitseg.data.real_masks import photo_kind_sets
from fruitseg.labels import FRUITS360_CLASSES, FRUITS360_KINDS, KIND_INDEX
from fruitseg.losses import kd_loss, kind_log_softmax, kind_membership, kind_nll_loss
from fruitseg.models.efficientnet import EfficientNetFruitClassifier
from fruitseg.train import common

PANELS = {"loss": ["train_loss", "train_composite_loss", "train_photo_loss", "train_distill_loss"],
          "top-1": ["val_composite_top1", "val_composite_kind_top1", "val_photo_kind_top1"]}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default="../shared/data/fruits360/Training", help="Fruits-360 Training folder")
    parser.add_argument("--backgrounds", default="../shared/data/backgrounds", help="background photos")
    parser.add_argument("--photos", default="../shared/data/real-photos/train", help="real photos in <kind>/*.jpg")
    parser.add_argument("--more-photos", default=None,
                        help="more real photos, trained on beside --photos: a folder of *.jpg whose kinds a SOURCES.tsv "
                             "lists (real-masks/train); a photo of several kinds is right with any of them")
    parser.add_argument("--more-photos-repeat", type=int, default=1, help="how many times each of them is in the photo set")
    parser.add_argument("--out", default="checkpoints/photo-classifier")
    parser.add_argument("--work-dir", default="runs/photo-classifier", help="resumable state and caches")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32, help="half composites, half real photos")
    parser.add_argument("--size", type=int, default=160, help="input side in pixels")
    parser.add_argument("--lr", type=float, default=1.5e-3, help="the head's peak learning rate")
    parser.add_argument("--body-lr-scale", type=float, default=0.25, help="the ImageNet body's rate relative to the head's")
    parser.add_argument("--weight-decay", type=float, default=0.02)
    parser.add_argument("--warmup", type=int, default=100, help="linear warm-up steps")
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--average-decay", type=float, default=0.998, help="weight EMA (0 = off)")
    parser.add_argument("--frames-per-class", type=int, default=60, help="training frames per class in the fruit bank")
    parser.add_argument("--sample-by", choices=["class", "kind"], default="class",
                        help="draw composites class-uniformly, or kind-uniformly (no prior towards many-class kinds)")
    parser.add_argument("--photo-augment", choices=["basic", "strong"], default="basic", help="augmentation of the real photos")
    parser.add_argument("--imagenet-distill", type=float, default=0.0,
                        help="weight of distilling the frozen ImageNet model into a training-only ImageNet head (0 = off)")
    parser.add_argument("--distill-temperature", type=float, default=2.0)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--val-composites", type=int, default=524)
    parser.add_argument("--init-from", default=None, help="a saved EfficientNetFruitClassifier to continue from")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--device", default=None)


def fruit_banks(data: str, frames_per_class: int, cache_dir: Path) -> tuple[FruitBank, FruitBank]:
    """(training, validation) fruit banks from the frame-block split; training frames are
    thinned evenly to ``frames_per_class`` per class (neighbouring frames are near copies)."""
    train_items, val_items = split_by_frame_blocks(list_images(data))
    by_class: dict[int, list] = {}
    for item in train_items:
        by_class.setdefault(item.label, []).append(item)
    thinned = []
    for items in by_class.values():
        step = max(1, len(items) // frames_per_class)
        thinned += items[::step][:frames_per_class]
    val_thinned = val_items[::4]
    return (FruitBank.from_items(thinned, cache=cache_dir / "train_bank.npz"),
            FruitBank.from_items(val_thinned, cache=cache_dir / "val_bank.npz"))


class ImageNetDistillation(nn.Module):
    """Learning without forgetting: the frozen ImageNet EfficientNet-Lite0 (the teacher) and a
    copy of its 1000-class head on the student's pooled features (trained, never exported).
    ``loss(x, pooled)``: Hinton's KD from the teacher's answer on ``x`` to the copied head's on
    ``pooled`` (the student's pooled features of the same ``x``)."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        self.teacher = EfficientNetFruitClassifier.imagenet().requires_grad_(False).eval()
        self.head = copy.deepcopy(self.teacher.net.get_classifier()).requires_grad_(True)
        self.temperature = temperature

    def loss(self, x: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.teacher(x)
        return kd_loss(self.head(pooled), target, self.temperature)


def split_photos(photos: str) -> tuple[list, list]:
    """(training, held-out) photos: every tenth photo of each kind is held out."""
    items = kind_photo_files(photos)
    by_kind: dict[str, list] = {}
    for item in items:
        by_kind.setdefault(item[1], []).append(item)
    train, held = [], []
    for group in by_kind.values():
        for i, item in enumerate(group):
            (held if i % 10 == 5 else train).append(item)
    return train, held


def normalise(x: torch.Tensor, model: EfficientNetFruitClassifier) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> the model's normalised float input (its config's
    :meth:`~fruitseg.models.hub_mixin.FruitsegHubMixin.normalise`), channels-last."""
    return common.unwrap(model).normalise(x).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def evaluate(model, composites, photos, membership, device) -> dict:
    model.eval()
    hits = np.zeros(3)
    counts = np.zeros(2)
    kind_of_class = membership.float().argmax(0).to(device)
    for x, y in torch.utils.data.DataLoader(composites, batch_size=64):
        logits = model(normalise(x.to(device), model))
        hits[0] += (logits.argmax(1).cpu() == y).sum().item()
        hits[1] += (kind_log_softmax(logits, membership).argmax(1) == kind_of_class[y.to(device)]).sum().item()
        counts[0] += len(y)
    for x, shown in torch.utils.data.DataLoader(photos, batch_size=64):
        logits = model(normalise(x.to(device), model))
        answer = kind_log_softmax(logits, membership).argmax(1).cpu()
        hits[2] += shown[torch.arange(len(answer)), answer].sum().item()  # any kind the photo shows
        counts[1] += len(shown)
    return {
        "val_composite_top1": round(float(hits[0] / max(counts[0], 1)), 4),
        "val_composite_kind_top1": round(float(hits[1] / max(counts[0], 1)), 4),
        "val_photo_kind_top1": round(float(hits[2] / max(counts[1], 1)), 4),
    }


def run(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    dist = common.Distributed(0, 1, 0)
    device = common.training_device(dist, args.device)
    common.seed_everything(args.seed)
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    train_bank, val_bank = fruit_banks(args.data, args.frames_per_class, work_dir)
    train_backgrounds, val_backgrounds = split_backgrounds(args.backgrounds)
    photo_train, photo_held = split_photos(args.photos)
    more = photo_kind_sets(args.more_photos) * args.more_photos_repeat if args.more_photos else []
    photo_train = photo_train + more
    print(f"fruit bank {train_bank} (validation {val_bank}); photos: {len(photo_train)} train "
          f"({len(more)} of them --more-photos), {len(photo_held)} held out")
    val_composites = CompositeCrops(val_bank, BackgroundBank(val_backgrounds), args.val_composites, args.size, seed=2024)
    kinds = list(FRUITS360_KINDS)
    photos = KindPhotos(photo_train, kinds, args.size, augment=args.photo_augment)
    val_photos = KindPhotos(photo_held, kinds, args.size, augment="none")
    membership = kind_membership(KIND_INDEX, len(kinds)).to(device)

    if args.init_from:
        model = EfficientNetFruitClassifier.from_pretrained(args.init_from)
    else:
        model = EfficientNetFruitClassifier(num_classes=len(FRUITS360_CLASSES), class_names=list(FRUITS360_CLASSES),
                                            image_size=args.size).init_from_imagenet()
    model = model.float().to(device, memory_format=torch.channels_last)
    average = common.WeightAverage(model, args.average_decay) if args.average_decay > 0 else None
    body, head = model.parameter_groups()
    distillation = ImageNetDistillation(args.distill_temperature).to(device) if args.imagenet_distill > 0 else None
    if distillation is not None:
        head = head + list(distillation.head.parameters())
        if args.resume and (work_dir / "imagenet_head.safetensors").exists():
            distillation.head.load_state_dict(load_file(str(work_dir / "imagenet_head.safetensors")))
    optimizer = torch.optim.AdamW([{"params": body, "lr": args.lr * args.body_lr_scale}, {"params": head, "lr": args.lr}],
                                  weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / args.warmup)
                                                  * 0.5 * (1 + np.cos(np.pi * min(step, args.steps) / args.steps)))
    done, history = common.resume_if_asked(args, work_dir, model, optimizer, scheduler, dist, average)

    half = args.batch_size // 2
    # every crop is new (item i is a function of the seed and i); a resumed run draws new ones
    composites = CompositeCrops(train_bank, BackgroundBank(train_backgrounds), (args.steps - done) * half, args.size,
                                seed=args.seed * 100_003 + done, by_kind=args.sample_by == "kind")
    composite_batches = iter(torch.utils.data.DataLoader(composites, batch_size=half, num_workers=args.workers))
    photo_batches = common.endless_batches(photos, half, args.seed * 1000 + done)
    started = time.perf_counter()
    sums = np.zeros(5)  # loss, composite loss, photo loss, distillation loss, steps
    bar = tqdm(range(done + 1, args.steps + 1), desc="training", unit="step", initial=done, total=args.steps)
    for step in bar:
        model.train()
        (xc, yc), (xp, kp) = next(composite_batches), next(photo_batches)
        x = normalise(torch.cat([xc, xp]).to(device), model)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        logits = model.net.get_classifier()(pooled)
        loss_c = F.cross_entropy(logits[:half], yc.to(device), label_smoothing=args.label_smoothing)
        loss_p = kind_nll_loss(logits[half:], kp.to(device), membership)
        loss_d = distillation.loss(x, pooled) if distillation is not None else torch.zeros(())
        loss = loss_c + loss_p + args.imagenet_distill * loss_d
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if average is not None:
            average.update(model)
        sums += [loss.item(), loss_c.item(), loss_p.item(), loss_d.item(), 1]
        bar.set_postfix(loss=f"{sums[0] / sums[4]:.3f}")
        if step % args.eval_every == 0 or step == args.steps:
            scores = evaluate(average.module if average else model, val_composites, val_photos, membership, device)
            history.append({"epoch": step, "train_loss": round(float(sums[0] / sums[4]), 4),
                            "train_composite_loss": round(float(sums[1] / sums[4]), 4),
                            "train_photo_loss": round(float(sums[2] / sums[4]), 4),
                            "train_distill_loss": round(float(sums[3] / sums[4]), 4), **scores,
                            "minutes": round((time.perf_counter() - started) / 60, 1)})
            tqdm.write(str(history[-1]))
            sums[:] = 0
            common.save_state(work_dir, model, optimizer, scheduler, step, history, average)
            if distillation is not None:
                save_file(distillation.head.state_dict(), str(work_dir / "imagenet_head.safetensors"))
            common.export_model(average.module if average else model, Path(args.out), history, PANELS)
    print(f"saved {args.out}")
