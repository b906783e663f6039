"""What both training loops share: seeding, devices, DDP under torchrun, resumable state, logs.

The resumable state is written without pickle: tensors (model weights and optimizer
moments) go to ``state.safetensors`` and everything else (epoch, optimizer hyper-parameters,
scheduler, metrics history) to ``state.json``.
"""

from __future__ import annotations

import copy
import csv
import itertools
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader

from fruitseg.device import has_fast_bfloat16
from fruitseg.provenance import git_commit


def seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


@dataclass
class Distributed:
    """Rank information; a single process is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed() -> Distributed:
    """Join the process group when launched by ``torchrun`` (WORLD_SIZE > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend=backend)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
    return Distributed(torch.distributed.get_rank(), world_size, local_rank)


def training_device(dist: Distributed, requested: str | None = None) -> torch.device:
    if requested:
        return torch.device(requested)
    if torch.cuda.is_available():
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def all_reduce_sum(values: torch.Tensor, dist: Distributed) -> torch.Tensor:
    if dist.enabled:
        torch.distributed.all_reduce(values)
    return values


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def autocast_context(device: torch.device, amp: str):
    """A factory of autocast contexts: ``amp`` is "bf16", "none" (float32) or "auto"
    (bf16 where ``device`` runs it natively, see :func:`fruitseg.device.has_fast_bfloat16`)."""
    if amp == "auto":
        amp = "bf16" if has_fast_bfloat16(device) else "none"
    dtype = torch.bfloat16 if amp == "bf16" else None

    def autocast():
        return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)

    return autocast


class WeightAverage:
    """An exponential moving average of a model's weights and buffers (as timm's ModelEmaV2).

    ``module`` is a copy of the model whose every float tensor follows
    ``average = decay * average + (1 - decay) * current`` after each optimizer step; the
    decay ramps up from 0 over the first steps, so early weights do not linger.
    """

    def __init__(self, model: nn.Module, decay: float = 0.998) -> None:
        self.module = copy.deepcopy(unwrap(model)).eval()
        self.module.requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        current = unwrap(model).state_dict()
        for name, value in self.module.state_dict().items():
            if value.is_floating_point():
                value.lerp_(current[name].detach(), 1 - decay)
            else:
                value.copy_(current[name])


def endless_batches(dataset: torch.utils.data.Dataset, batch_size: int, seed: int):
    """Shuffled batches of ``dataset``, reshuffled (seed, seed + 1, ...) every pass, without end."""
    return itertools.chain.from_iterable(
        DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True,
                   generator=torch.Generator().manual_seed(seed + cycle))
        for cycle in itertools.count())


def load_matching_weights(model: nn.Module, directory: str | Path) -> tuple[list[str], list[str]]:
    """Copy into ``model`` every tensor of ``directory/model.safetensors`` whose name and shape match.

    For starting a model of another shape (a deeper encoder, say) from a trained one: what
    both share is copied, the rest keeps its initialisation. Returns (copied, kept) names.
    """
    saved = load_file(str(Path(directory) / "model.safetensors"))
    own = model.state_dict()
    matching = {k: v for k, v in saved.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matching, strict=False)
    return sorted(matching), sorted(k for k in own if k not in matching)


def resume_if_asked(
    args, work_dir: Path, model: nn.Module, optimizer, scheduler, dist: Distributed, average: WeightAverage | None = None
) -> tuple[int, list[dict]]:
    """(last finished epoch, history): from ``work_dir`` with ``--resume``, else (0, [])."""
    if not (args.resume and (work_dir / "state.json").exists()):
        return 0, []
    start_epoch, history = load_state(work_dir, model, optimizer, scheduler, average)
    if dist.is_main:
        print(f"resuming after epoch {start_epoch}")
    return start_epoch, history


def save_state(
    directory: Path, model: nn.Module, optimizer, scheduler, epoch: int, history: list[dict], average: WeightAverage | None = None
) -> None:
    """Write ``state.safetensors`` + ``state.json`` so training can resume after ``epoch``."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    if average is not None:
        tensors.update({f"average.{k}": v.detach().cpu().contiguous() for k, v in average.module.state_dict().items()})
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{index}.{key}"] = value.detach().cpu().contiguous()
    meta = {
        "epoch": epoch,
        "param_groups": opt_state["param_groups"],
        "optimizer_scalars": {
            str(i): {k: v for k, v in s.items() if not torch.is_tensor(v)} for i, s in opt_state["state"].items()
        },
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "average_updates": average.updates if average is not None else None,
        "history": stamp_commit(history),
    }
    save_file(tensors, str(directory / "state.safetensors"))
    (directory / "state.json").write_text(json.dumps(meta, indent=1))


def load_state(
    directory: Path, model: nn.Module, optimizer, scheduler, average: WeightAverage | None = None
) -> tuple[int, list[dict]]:
    """Restore what :func:`save_state` wrote; returns (last finished epoch, history)."""
    tensors = load_file(str(directory / "state.safetensors"))
    meta = json.loads((directory / "state.json").read_text())
    unwrap(model).load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    if average is not None:
        average.module.load_state_dict({k[8:]: v for k, v in tensors.items() if k.startswith("average.")}, strict=True)
        average.updates = meta.get("average_updates") or 0
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for index, scalars in meta["optimizer_scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None and meta["scheduler"] is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return meta["epoch"], meta["history"]


def stamp_commit(history: list[dict]) -> list[dict]:
    """Give each epoch's record that has none the commit it is trained at (resumed epochs keep theirs)."""
    if any("commit" not in record for record in history):
        commit = git_commit()
        for record in history:
            record.setdefault("commit", commit)
    return history


def write_history(directory: Path, history: list[dict]) -> None:
    """Per-epoch metrics as ``metrics.csv`` and ``metrics.json``, each epoch with its commit."""
    if not history:
        return
    stamp_commit(history)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "metrics.json").write_text(json.dumps(history, indent=1))
    with open(directory / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[-1]))
        writer.writeheader()
        writer.writerows(history)


def plot_history(path: Path, history: list[dict], panels: dict[str, list[str]]) -> None:
    """One subplot per panel title, one line per metric key; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6))
    axes = np.atleast_1d(axes)
    epochs = [h["epoch"] for h in history]
    for ax, (title, keys) in zip(axes, panels.items()):
        for key in keys:
            ax.plot(epochs, [h[key] for h in history], marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def export_model(model: nn.Module, out: Path, history: list[dict], panels: dict[str, list[str]]) -> None:
    """Save a float16 copy of ``model`` with its config, plus the metrics and their curves.

    float16 halves the files (the Hub's limit without Git LFS is 10 MB) and loads exactly
    into a float32 model, so what is evaluated after loading is what ships.
    """
    model = unwrap(model)
    export = type(model)(**model._hub_mixin_config)
    export.load_state_dict(model.state_dict())
    export.half().save_pretrained(out)
    write_history(out, history)
    plot_history(out / "training_curves.png", history, panels)
