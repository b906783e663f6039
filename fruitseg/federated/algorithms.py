"""What a client does in a round: local SGD on its own data with one of three losses.

All three start from the global model the server sent and differ only in the loss:

* ``fedavg``: cross-entropy (McMahan et al., 2017);
* ``fedntd``: cross-entropy + beta * not-true distillation from the received global model
  (Lee et al., NeurIPS 2022): :func:`fruitseg.losses.ntd_loss`, KL between the teacher's and
  the student's softmax(logits / tau) with the true class removed from both, times tau**2;
* ``fedlmd``: :class:`fruitseg.losses.LMDLoss`, cross-entropy + beta * label-masking
  distillation (Lu et al., ACM MM 2023): as NTD, and the client's *major* classes (count above
  the mean count over all classes, :func:`fruitseg.losses.major_labels_from_counts` on the
  client's own label counts) are also masked in the teacher.

The teacher of FedNTD and FedLMD is a frozen copy of the global model received this round.
Same optimiser for all (the FedLMD and FedNTD papers' SGD: momentum 0.9, weight decay 1e-5),
same batch order for a given seed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fruitseg.losses import LMDLoss, major_labels_from_counts, ntd_loss

ALGORITHMS = ("fedavg", "fedntd", "fedlmd")


@dataclass(frozen=True)
class LocalConfig:
    epochs: int = 2
    batch_size: int = 50
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-5
    tau: float = 1.0
    beta: float = 1.0


def client_criterion(algorithm: str, num_classes: int, counts: np.ndarray, tau: float, beta: float):
    """``loss(logits, targets, teacher_logits)`` for ``algorithm`` on a client with these label counts."""
    if algorithm == "fedavg":
        return lambda logits, targets, teacher_logits: F.cross_entropy(logits, targets)
    if algorithm == "fedntd":
        return lambda logits, targets, teacher_logits: F.cross_entropy(logits, targets) + beta * ntd_loss(
            logits, teacher_logits, targets, tau
        )
    if algorithm == "fedlmd":
        lmd, majors = LMDLoss(num_classes, tau=tau, beta=beta), major_labels_from_counts(counts)
        return lambda logits, targets, teacher_logits: lmd(logits, targets, teacher_logits, majors)
    raise ValueError(f"unknown algorithm {algorithm!r}; expected one of {ALGORITHMS}")


def train_local(
    model: nn.Module, x: Tensor, y: Tensor, num_classes: int, algorithm: str, config: LocalConfig, seed: int
) -> float:
    """Train ``model`` (holding the received global weights) in place; returns the mean loss."""
    counts = np.bincount(y.numpy(), minlength=num_classes)
    criterion = client_criterion(algorithm, num_classes, counts, config.tau, config.beta)
    teacher = copy.deepcopy(model).eval().requires_grad_(False) if algorithm != "fedavg" else None
    optimiser = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(seed)
    model.train()
    total, steps = 0.0, 0
    for _ in range(config.epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), config.batch_size):
            batch = order[start : start + config.batch_size]
            inputs, targets = x[batch], y[batch]
            teacher_logits = None
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(inputs)
            loss = criterion(model(inputs), targets, teacher_logits)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, steps = total + float(loss.detach()), steps + 1
    return total / max(steps, 1)


@torch.no_grad()
def predict(model: nn.Module, x: Tensor, batch_size: int = 512) -> Tensor:
    """Predicted class ids."""
    model.eval()
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def accuracy(model: nn.Module, x: Tensor, y: Tensor, mask: Tensor | None = None) -> float:
    """Top-1 accuracy on (x, y), or on the rows where ``mask`` is true (NaN if none)."""
    if mask is not None:
        x, y = x[mask], y[mask]
    if len(y) == 0:
        return float("nan")
    return float((predict(model, x) == y).float().mean())
