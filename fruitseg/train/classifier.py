"""Train FruitsClassificationModel on a Fruits-360 ``Training`` folder.

    python -m fruitseg.train classifier --data ../shared/data/fruits360/Training \
        --out checkpoints/classifier --epochs 12

All images are decoded once into one uint8 tensor, with each frame's fruit mask;
augmentation runs batch-wise on tensors (`fruitseg.train.augment`): every image is
turned, scaled, shifted and flipped on white, and a share of them (``--cutout-fraction``)
is made to look like the pipeline's cut-outs of fruit from photos (scene colour changes,
an imperfect mask with a rim of background, lower resolution, noise). Dropout on the
flattened features and an exponential moving average of the weights (what is evaluated
and exported) counter the over-fitting of the large Linear layer.
Under ``torchrun --nproc_per_node=N`` every process trains on its shard of each epoch
with DistributedDataParallel. ``--distill-photos DIR`` adds to every batch the app's
cut-outs of fruits in real photos, labelled by the photo classifier
(`fruitseg.train.teacher_cutouts`; measured in the model card, not shipped).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fruitseg.data.fruits360 import list_images, load_rgb_array, split_by_frame_blocks
from fruitseg.labels import FRUITS360_CLASSES
from fruitseg.models.classifier import FruitsClassificationModel
from fruitseg.train import common
from fruitseg.train.augment import augment, fruit_masks, to_float
from fruitseg.train.calibrate import CALIBRATION_IMAGES, calibrate_classifier, write_calibration


class DistillationSet(NamedTuple):
    """The photo classifier's labelled cut-outs of real photos (``--distill-photos``)."""

    images: torch.Tensor  # (N, 100, 100, 3) uint8, fruit cut out on white
    masks: torch.Tensor  # (N, 100, 100) the fruit in each, for the augmentations
    targets: torch.Tensor  # (N, 131) the teacher's class probabilities, within the photo's kind


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Fruits-360 Training folder (<Class>/*.jpg)")
    parser.add_argument("--out", default="checkpoints/classifier", help="where the trained model is saved")
    parser.add_argument("--work-dir", default="runs/classifier", help="resumable state and logs")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64, help="per process")
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--weight-decay", type=float, default=5e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.05)
    parser.add_argument("--drop-rate", type=float, default=0.3, help="dropout on the flattened features")
    parser.add_argument("--cutout-fraction", type=float, default=0.5,
                        help="share of training images made to look like the pipeline's cut-outs of scene fruit")
    parser.add_argument("--average-decay", type=float, default=0.998,
                        help="decay of the weight average that is evaluated and exported (0: export the raw weights)")
    parser.add_argument("--amp", choices=["auto", "bf16", "none"], default="auto",
                        help="autocast dtype (auto: bf16 where the device runs it natively, else float32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch default)")
    parser.add_argument("--device", default=None, help="cuda, cpu, ... (default: cuda when available)")
    parser.add_argument("--resume", action="store_true", help="continue from --work-dir's last epoch")
    parser.add_argument("--init-from", default=None,
                        help="start from a saved classifier (folder) with a fresh schedule; keeps its mean/std")
    parser.add_argument("--limit", type=int, default=0, help="use only this many training images (smoke tests)")
    parser.add_argument("--distill-photos", default=None,
                        help="real photos in <kind>/*.jpg: the app's cut-outs of their fruits, labelled by the photo "
                             "classifier (fruitseg.train.teacher_cutouts), join every batch")
    parser.add_argument("--distill-per-batch", type=int, default=16, help="teacher-labelled cut-outs in each batch")
    parser.add_argument("--distill-weight", type=float, default=1.0, help="weight of their soft-target cross entropy")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES,
                        help="training frames the int8 calibration runs on after the last epoch")


@torch.inference_mode()
def evaluate(model, images: torch.Tensor, labels: torch.Tensor, transform, batch_size: int, autocast, dist) -> dict:
    """Top-1 on the validation frames; ``transform`` is the model's preprocessing
    (``model.transforms()``) on the device the model runs on."""
    model.eval()
    device = transform.mean.device
    correct = torch.zeros(2, dtype=torch.float64, device=device)  # top-1 hits, count
    shard = range(dist.rank * batch_size, len(images), batch_size * dist.world_size)
    for start in tqdm(shard, desc="val", leave=False, disable=not dist.is_main):
        x = transform(to_float(images[start : start + batch_size].to(device)))
        with autocast():
            logits = model(x)
        y = labels[start : start + batch_size].to(device)
        correct += torch.tensor([(logits.argmax(1) == y).sum().item(), len(y)], dtype=torch.float64, device=device)
    common.all_reduce_sum(correct, dist)
    return {"val_top1": float(correct[0] / correct[1])}


def run(args: argparse.Namespace) -> None:
    dist = common.setup_distributed()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = common.training_device(dist, args.device)
    generator = common.seed_everything(args.seed + dist.rank)

    items = list_images(args.data)
    train_items, val_items = split_by_frame_blocks(items)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        train_items = [train_items[i] for i in rng.permutation(len(train_items))[: args.limit]]
        val_items = [val_items[i] for i in rng.permutation(len(val_items))[: max(args.limit // 5, 1)]]
    if dist.is_main:
        print(f"{len(items)} images: {len(train_items)} train, {len(val_items)} validation (frame-block split)")
    train_x = torch.from_numpy(load_rgb_array(train_items, desc="train images"))
    val_x = torch.from_numpy(load_rgb_array(val_items, desc="val images"))
    train_masks = fruit_masks(train_x.numpy())
    train_y = torch.tensor([i.label for i in train_items])
    val_y = torch.tensor([i.label for i in val_items])
    pixels = train_x.reshape(-1, 3)[:: 97].float() / 255
    mean_values, std_values = pixels.mean(0).tolist(), pixels.std(0).tolist()
    if device.type == "cuda":
        train_x, val_x, train_masks = train_x.to(device), val_x.to(device), train_masks.to(device)

    distill = None
    if args.distill_photos:
        from fruitseg.train.teacher_cutouts import cached_teacher_cutouts

        distill_x, distill_p = cached_teacher_cutouts(args.distill_photos, Path(args.work_dir) / "teacher_cutouts.safetensors")
        distill = DistillationSet(distill_x.to(device), fruit_masks(distill_x.numpy()).to(device), distill_p.to(device))
        if dist.is_main:
            print(f"{len(distill_x)} teacher-labelled cut-outs of real photos")

    if args.init_from:
        # A new schedule changes the activations: the old int8 calibration must not travel on.
        model = FruitsClassificationModel.from_pretrained(args.init_from, drop_rate=args.drop_rate, int8_calibration=None)
    else:
        model = FruitsClassificationModel(
            num_classes=len(FRUITS360_CLASSES),
            class_names=list(FRUITS360_CLASSES),
            mean=[round(v, 4) for v in mean_values],
            std=[round(v, 4) for v in std_values],
            drop_rate=args.drop_rate,
        )
    model = model.to(device, memory_format=torch.channels_last)
    average = common.WeightAverage(model, args.average_decay) if args.average_decay > 0 else None
    transform = model.transforms().to(device)  # the config's mean / std, measured above
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model

    steps_per_epoch = math.ceil(len(train_x) / (args.batch_size * dist.world_size))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * steps_per_epoch, pct_start=0.15
    )
    autocast = common.autocast_context(device, args.amp)

    work_dir = Path(args.work_dir)
    start_epoch, history = common.resume_if_asked(args, work_dir, model, optimizer, scheduler, dist, average)

    for epoch in range(start_epoch + 1, args.epochs + 1):
        ddp_model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        order = order[dist.rank :: dist.world_size]
        totals = torch.zeros(4, dtype=torch.float64)  # loss sum, hits, count, distillation loss sum
        started = time.perf_counter()
        bar = tqdm(range(0, len(order), args.batch_size), desc=f"epoch {epoch}/{args.epochs}", disable=not dist.is_main)
        for start in bar:
            index = order[start : start + args.batch_size]
            x = to_float(train_x[index.to(train_x.device)])
            mask = train_masks[index.to(train_masks.device)].unsqueeze(1).float()
            x = augment(x, mask, generator, args.cutout_fraction)
            y = train_y[index].to(device)
            if distill is not None:  # already cut out on white by the pipeline: turned, scaled, recoloured only
                pick = torch.randint(len(distill.images), (args.distill_per_batch,), generator=generator).to(device)
                x = torch.cat([x, augment(to_float(distill.images[pick]), distill.masks[pick].unsqueeze(1).float(), generator)])
            with autocast():
                logits = ddp_model(transform(x)).float()
                loss = F.cross_entropy(logits[: len(y)], y, label_smoothing=args.label_smoothing)
                distill_loss = F.cross_entropy(logits[len(y):], distill.targets[pick]) if distill is not None else torch.zeros(())
                loss = loss + args.distill_weight * distill_loss
            logits = logits[: len(y)]
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler.last_epoch < scheduler.total_steps:
                scheduler.step()
            if average is not None:
                average.update(model)
            totals += torch.tensor([loss.item() * len(y), (logits.argmax(1) == y).sum().item(), len(y), distill_loss.item() * len(y)], dtype=torch.float64)
            bar.set_postfix(loss=f"{totals[0] / totals[2]:.3f}", acc=f"{totals[1] / totals[2]:.3f}")
        common.all_reduce_sum(totals.to(device), dist)
        metrics = {
            "epoch": epoch,
            "train_loss": round(float(totals[0] / totals[2]), 5),
            "train_top1": round(float(totals[1] / totals[2]), 5),
            **({"train_distill_loss": round(float(totals[3] / totals[2]), 5)} if distill is not None else {}),
            **{k: round(v, 5) for k, v in evaluate(ddp_model, val_x, val_y, transform, 256, autocast, dist).items()},
            **(
                {f"average_{k}": round(v, 5) for k, v in evaluate(average.module, val_x, val_y, transform, 256, autocast, dist).items()}
                if average is not None
                else {}
            ),
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        history.append(metrics)
        if dist.is_main:
            print(metrics)
            common.save_state(work_dir, model, optimizer, scheduler, epoch, history, average)
            common.write_history(work_dir, history)
            shipped = average.module if average is not None else model
            curves = ["train_top1", "val_top1"] + (["average_val_top1"] if average is not None else [])
            losses = ["train_loss"] + (["train_distill_loss"] if distill is not None else [])
            common.export_model(shipped, Path(args.out), history, {"loss": losses, "top-1": curves})
    if dist.is_main and start_epoch < args.epochs:  # int8 ranges of the exported weights, on training frames
        exported = FruitsClassificationModel.from_pretrained(args.out)
        sample = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(args.seed))[: args.calibration_images]
        calibration = calibrate_classifier(exported, train_x[sample.to(train_x.device)], train_masks[sample.to(train_x.device)], args.cutout_fraction, args.seed)
        write_calibration(args.out, calibration)
    if dist.enabled:
        torch.distributed.destroy_process_group()
