"""The LMD explorer's numbers: every term of FedLMD's loss for ONE sample, as JSON-able values.

Built on ``fruitseg.losses`` (the loss the federated clients train with): CE, the LMD term and
the total are ``F.cross_entropy``, ``lmd_criterion`` and ``LMDLoss`` on the sample; KD and NTD
are ``kd_loss`` and ``ntd_loss`` on the same logits; the distributions are the softmax of
``lmd_logits``; the gradients come from autograd. Everything is computed in float64.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from fruitseg.losses import (
    LMDLoss,
    MajorLabels,
    kd_loss,
    lmd_criterion,
    lmd_logits,
    major_class_mask,
    ntd_loss,
)

__all__ = ["lmd_breakdown"]


def _as_logit_vector(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a 1-D sequence of numbers") from error
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite, got {array.tolist()}")
    return array


def lmd_breakdown(
    student_logits: Sequence[float] | np.ndarray,
    teacher_logits: Sequence[float] | np.ndarray,
    target: int,
    T: float,
    beta: float,
    major_labels: MajorLabels,
) -> dict[str, Any]:
    """Every term of the loss for ONE sample, as plain floats and lists (JSON-able).

    Args:
        student_logits, teacher_logits: C >= 2 finite numbers each.
        target: the true class id, in [0, C).
        T: temperature, finite and > 0.  beta: distillation weight, finite and >= 0.
        major_labels: class ids or a boolean mask of length C, as for ``lmd_criterion``.

    Returns a dict (computed in float64) with
        ``ce``, ``lmd`` (incl. T**2), ``total`` (ce + beta*lmd), ``kd``, ``ntd``,
        ``kd_total`` (ce + beta*kd), ``ntd_total`` (ce + beta*ntd);
        ``teacher_probs`` (the masked teacher distribution LMD uses), ``student_probs``
        (softmax of student_logits / T with the true class masked, as in the loss),
        ``teacher_probs_unmasked`` (softmax of teacher_logits / T, what KD uses),
        ``student_probs_plain`` (softmax of student_logits, T = 1);
        ``grad_total``, ``grad_ce``, ``grad_lmd`` (gradients w.r.t. the student logits, by
        autograd); ``major_mask`` (C bools).

    Raises:
        ValueError: lengths differ, C < 2, non-finite logits, target not an integer in [0, C),
            T or beta out of range, bad major_labels.
    """
    student_np = _as_logit_vector("student_logits", student_logits)
    teacher_np = _as_logit_vector("teacher_logits", teacher_logits)
    if student_np.shape != teacher_np.shape:
        raise ValueError(
            f"student_logits and teacher_logits differ in length: "
            f"{student_np.size} != {teacher_np.size}"
        )
    num_classes = student_np.size
    if num_classes < 2:
        raise ValueError(f"need at least 2 classes, got {num_classes}")
    if isinstance(target, (bool, np.bool_)) or not isinstance(target, (int, np.integer)):
        raise ValueError(f"target must be an integer class id, got {target!r}")
    if not 0 <= target < num_classes:
        raise ValueError(f"target must be in [0, {num_classes}), got {target}")
    loss = LMDLoss(num_classes, tau=T, beta=beta)  # checks T and beta
    T, beta = loss.tau, loss.beta

    student = torch.tensor(student_np).unsqueeze(0).requires_grad_()
    teacher = torch.tensor(teacher_np).unsqueeze(0)
    target_t = torch.tensor([int(target)])
    major_mask = major_class_mask(major_labels, num_classes)

    ce = F.cross_entropy(student, target_t)
    lmd = lmd_criterion(student, teacher, target_t, T, major_labels)
    total = loss(student, target_t, teacher, major_labels)
    grad_ce, grad_lmd, grad_total = (
        torch.autograd.grad(term, student, retain_graph=True)[0] for term in (ce, lmd, total)
    )
    with torch.no_grad():
        student_scaled, teacher_scaled = lmd_logits(student, teacher, target_t, T, major_labels)
        kd = float(kd_loss(student, teacher, T))
        ntd = float(ntd_loss(student, teacher, target_t, T))
        probs = {
            "teacher_probs": F.softmax(teacher_scaled, dim=1),
            "student_probs": F.log_softmax(student_scaled, dim=1).exp(),
            "teacher_probs_unmasked": F.softmax(teacher / T, dim=1),
            "student_probs_plain": F.softmax(student, dim=1),
        }

    def as_list(x: Tensor) -> list[float]:
        return x.detach().reshape(-1).tolist()

    ce_value, lmd_value, total_value = (float(x.detach()) for x in (ce, lmd, total))
    return {
        "ce": ce_value,
        "lmd": lmd_value,
        "total": total_value,
        "kd": kd,
        "ntd": ntd,
        "kd_total": ce_value + beta * kd,
        "ntd_total": ce_value + beta * ntd,
        **{name: as_list(p) for name, p in probs.items()},
        "grad_total": as_list(grad_total),
        "grad_ce": as_list(grad_ce),
        "grad_lmd": as_list(grad_lmd),
        "major_mask": major_mask.tolist(),
    }
