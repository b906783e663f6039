"""Label-masking distillation (FedLMD) and the two distillation losses it is compared with.

FedLMD comes from "Federated Learning with Label-Masking Distillation" (Lu, Li, Bao, Wang, Qian
and Ge, ACM Multimedia 2023; arXiv:2409.13136; code at https://github.com/wnma3mz/FedLMD).
In federated learning each client trains on a skewed local label distribution: a few *major*
classes dominate its data (FedLMD's rule: the classes whose local count is strictly above the
mean count over all C classes, see :func:`major_labels_from_counts`). Fine-tuning the global
model on such data makes it forget the classes the client rarely sees.

FedLMD adds a distillation term to the cross-entropy. The teacher is the global model
(``teacher_logits``), the student is the local model being trained. Both distributions are
softened by a temperature T, and some classes are *masked* (switched off) before the softmax:

* the true class is masked in both the teacher and the student, because the cross-entropy
  already teaches it (this alone is FedNTD's "not-true distillation", :func:`ntd_loss`);
* the client's major classes are also masked in the teacher. The local data already covers
  them well, so the teacher's opinion about them is suppressed and its probability mass goes to
  the minority classes: the student learns the "dark knowledge" about the classes its own
  data lacks. The student keeps its major classes, so putting mass there is penalised.

The loss is ``CE(logits, target) + beta * KL(teacher || student) * T**2`` (KL averaged over the
batch), see :class:`LMDLoss`. :func:`kd_loss` is plain Hinton distillation (nothing masked).

Masking follows the reference code exactly: a masked class gets ``-1000`` added to its
temperature-scaled logit, which makes its probability ``exp(-1000) == 0`` in floating point.
This is exact removal as long as the spread of ``logits / T`` within a row stays well below
1000; beyond that a masked class leaks back in (still finite). Masks add up: a true class that
is also major gets ``-2000`` in the teacher, as in the reference. Consequences:

* empty major set: LMD equals NTD exactly (same numbers, bit for bit);
* the true class is major, some other class is not: same as masking it once (its probability
  is 0 either way);
* every class is major: every teacher logit moves by -1000 and the true class by a further
  -1000, so (softmax being shift-invariant) the teacher is the NTD teacher and LMD ~= NTD;
* every class except the true one is major: every teacher logit moves by -1000 alike, so the
  teacher is the *unmasked* ``softmax(teacher_logits / T)`` and still gives the true class
  probability p, which the student has masked out. The KL term is then about
  ``1000 * p * T**2``: large but finite. The FedLMD rule can produce this (with C = 2 it does
  for every minority-class sample); we keep the reference's numbers.

Everything is computed in float32 (float64 if a logit tensor is float64): float16 and bfloat16
logits are upcast first, since ``logits / T - 1000`` would lose all precision in half
precision. Masks are built on the logits' device, so the code runs on CPU and CUDA alike.
The teacher is a fixed target: its logits are detached, so no gradient reaches them (in the
reference code the gradient into a masked teacher logit is NaN, from ``0 * log 0``).

:func:`lmd_logits` returns the masked, temperature-scaled logits LMD compares (the app's
"LMD loss explorer" draws their softmax); :func:`kind_nll_loss` trains a class-level model on
images labelled by kind only.
"""

from __future__ import annotations

import math
import operator
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "MASK_OFFSET",
    "LMDLoss",
    "MajorLabels",
    "kd_loss",
    "kind_log_softmax",
    "kind_membership",
    "kind_nll_loss",
    "lmd_criterion",
    "lmd_logits",
    "major_class_mask",
    "major_labels_from_counts",
    "ntd_loss",
]

# What the reference subtracts from a masked class's temperature-scaled logit.
MASK_OFFSET = 1000.0

# Class ids (1-D integer tensor/array, list or tuple of ints) or a boolean mask of length C.
MajorLabels = Union[Tensor, np.ndarray, Sequence[int], Sequence[bool]]


# --------------------------------------------------------------------------- validation


def _check_temperature(T: float) -> float:
    T = float(T)
    if not (math.isfinite(T) and T > 0):
        raise ValueError(f"temperature T must be a finite number > 0, got {T}")
    return T


def _check_beta(beta: float) -> float:
    beta = float(beta)
    if not (math.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta}")
    return beta


def _upcast_logits(logits_student: Tensor, logits_teacher: Tensor) -> tuple[Tensor, Tensor]:
    """Check the (B, C) shapes; return both logits in float32 (float64 if either is float64)."""
    if not (isinstance(logits_student, Tensor) and isinstance(logits_teacher, Tensor)):
        raise TypeError("logits_student and logits_teacher must be torch tensors")
    student_shape, teacher_shape = tuple(logits_student.shape), tuple(logits_teacher.shape)
    if logits_student.ndim != 2 or logits_teacher.ndim != 2:
        raise ValueError(
            "logits must be 2-D (batch, classes); got student logits of shape "
            f"{student_shape} and teacher logits of shape {teacher_shape}"
        )
    if student_shape != teacher_shape:
        raise ValueError(
            f"student logits shape {student_shape} does not match "
            f"teacher logits shape {teacher_shape}"
        )
    if student_shape[0] == 0:
        raise ValueError("logits hold an empty batch (batch size 0)")
    dtype = torch.promote_types(
        torch.promote_types(logits_student.dtype, logits_teacher.dtype), torch.float32
    )
    return logits_student.to(dtype), logits_teacher.to(dtype)


def _true_class_mask(target: Tensor, like: Tensor) -> Tensor:
    """Check ``target`` against the (B, C) logits ``like``; return its one-hot mask like them."""
    batch, num_classes = like.shape
    target = torch.as_tensor(target, device=like.device)
    if tuple(target.shape) != (batch,):
        raise ValueError(
            f"target must have shape ({batch},) to match logits of shape {tuple(like.shape)}, "
            f"got {tuple(target.shape)}"
        )
    if target.dtype == torch.bool or target.is_floating_point() or target.is_complex():
        raise ValueError(f"target must hold integer class ids, got dtype {target.dtype}")
    if bool(((target < 0) | (target >= num_classes)).any()):
        raise ValueError(
            f"target class ids must be in [0, {num_classes}), got values from "
            f"{int(target.min())} to {int(target.max())}"
        )
    return F.one_hot(target.long(), num_classes).to(like.dtype)


def major_class_mask(major_labels: MajorLabels, num_classes: int) -> Tensor:
    """The client's major classes as a boolean mask of shape (C,).

    ``major_labels`` are class ids (1-D integer tensor/array, list or tuple; possibly empty) or
    a boolean mask of length C; a boolean tensor is a mask, an integer tensor holds ids. The
    mask is on the device of a tensor input. ``ValueError`` for ids outside [0, C), a boolean
    mask of the wrong length, or anything else.
    """
    labels = major_labels
    if not isinstance(labels, Tensor):
        labels = torch.as_tensor(np.asarray(labels))
    if labels.dtype == torch.bool:
        if tuple(labels.shape) != (num_classes,):
            raise ValueError(
                f"a boolean major_labels mask must have shape ({num_classes},), "
                f"got {tuple(labels.shape)}"
            )
        return labels

    mask = torch.zeros(num_classes, dtype=torch.bool, device=labels.device)
    if labels.numel() == 0:
        return mask
    if labels.ndim > 1 or labels.is_floating_point() or labels.is_complex():
        raise ValueError(
            "major_labels must be integer class ids (1-D) or a boolean mask of length "
            f"{num_classes}; got dtype {labels.dtype} and shape {tuple(labels.shape)}"
        )
    ids = labels.reshape(-1).long()
    if bool(((ids < 0) | (ids >= num_classes)).any()):
        raise ValueError(f"major_labels ids must be in [0, {num_classes}), got {ids.tolist()}")
    mask[ids] = True
    return mask


def _major_mask(major_labels: MajorLabels, num_classes: int, like: Tensor) -> Tensor:
    """:func:`major_class_mask` as a 0/1 vector with ``like``'s dtype and device."""
    return major_class_mask(major_labels, num_classes).to(device=like.device, dtype=like.dtype)


# --------------------------------------------------------------------------- the losses


def _masked(logits: Tensor, T: float, *masks: Tensor) -> Tensor:
    """``logits / T - 1000 * mask`` for each mask, in order: the reference's class masking."""
    scaled = logits / T
    for mask in masks:
        scaled = scaled - MASK_OFFSET * mask
    return scaled




def _distill(student_scaled: Tensor, teacher_scaled: Tensor, T: float) -> Tensor:
    """KL(softmax(teacher_scaled) || softmax(student_scaled)), averaged over the batch, times T**2.

    The teacher is detached: it is a target, and the gradient of ``p log p`` at a masked
    ``p == 0`` would be NaN.
    """
    log_p_student = F.log_softmax(student_scaled, dim=1)
    p_teacher = F.softmax(teacher_scaled.detach(), dim=1)
    return F.kl_div(log_p_student, p_teacher, reduction="batchmean") * T**2


def lmd_criterion(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    T: float,
    major_labels: MajorLabels,
) -> Tensor:
    """FedLMD's label-masking distillation term (numerically the reference ``lmd_criterion``).

    Args:
        logits_student: (B, C) logits of the local model.
        logits_teacher: (B, C) logits of the global model, same shape.
        target: (B,) integer class ids in [0, C).
        T: temperature, finite and > 0.
        major_labels: the client's major classes, the same for every row: class ids (1-D
            integer tensor/array, list or tuple; possibly empty) or a boolean mask of length C.
            A boolean tensor is a mask, an integer tensor holds ids.

    Returns:
        ``KL(teacher || student) * T**2`` averaged over the batch, a scalar in float32 (float64
        for float64 logits). See the module docstring for the masking and its edge cases.

    Raises:
        ValueError: bad shapes, target ids outside [0, C), major ids outside [0, C), a boolean
            mask of the wrong length, or T not finite and > 0.
    """
    T = _check_temperature(T)
    return _distill(*lmd_logits(logits_student, logits_teacher, target, T, major_labels), T)


def lmd_logits(
    logits_student: Tensor,
    logits_teacher: Tensor,
    target: Tensor,
    T: float,
    major_labels: MajorLabels,
) -> tuple[Tensor, Tensor]:
    """What LMD compares: ``(student, teacher)`` logits divided by T, with the true class masked
    in both and the major classes also masked in the teacher (``-1000`` each, as in the reference).

    Their softmaxes are the distributions of :func:`lmd_criterion`'s KL term. Arguments, dtype
    and errors as for :func:`lmd_criterion`; the teacher keeps its autograd graph (the loss
    detaches it).
    """
    T = _check_temperature(T)
    student, teacher = _upcast_logits(logits_student, logits_teacher)
    gt_mask = _true_class_mask(target, like=student)
    major_mask = _major_mask(major_labels, student.shape[1], like=student)
    return _masked(student, T, gt_mask), _masked(teacher, T, major_mask, gt_mask)


def ntd_loss(logits_student: Tensor, logits_teacher: Tensor, target: Tensor, T: float) -> Tensor:
    """FedNTD's not-true distillation: the true class is masked in both teacher and student.

    This is :func:`lmd_criterion` with no major classes, so the two agree exactly there. The
    true class is masked with the same ``-1000`` trick, not removed as in FedNTD's code; the two
    agree (the masked probability is ``exp(-1000) == 0``) unless ``logits / T`` spreads over
    ~1000. Arguments, return value and errors as for :func:`lmd_criterion`.
    """
    return lmd_criterion(logits_student, logits_teacher, target, T, major_labels=[])


def kd_loss(logits_student: Tensor, logits_teacher: Tensor, T: float) -> Tensor:
    """Hinton distillation ``KL(softmax(t/T) || softmax(s/T))``, batch mean, times ``T**2``.

    Nothing is masked. Logits as for :func:`lmd_criterion`; returns a float32 (or float64)
    scalar; ``ValueError`` for bad shapes or a T that is not finite and > 0.
    """
    T = _check_temperature(T)
    student, teacher = _upcast_logits(logits_student, logits_teacher)
    return _distill(_masked(student, T), _masked(teacher, T), T)


class LMDLoss(nn.Module):
    """FedLMD's training loss: ``CE(logits, targets) + beta * lmd_criterion(..., tau, major_labels)``.

    Args:
        num_classes: C; the logits must have C columns.
        tau: the distillation temperature, finite and > 0.
        beta: weight of the distillation term, finite and >= 0.
    """

    def __init__(self, num_classes: int, tau: float = 1.0, beta: float = 1.0) -> None:
        super().__init__()
        if isinstance(num_classes, bool) or operator.index(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.num_classes = operator.index(num_classes)
        self.tau = _check_temperature(tau)
        self.beta = _check_beta(beta)

    def forward(
        self, logits: Tensor, targets: Tensor, teacher_logits: Tensor, major_labels: MajorLabels
    ) -> Tensor:
        """Scalar loss (float32, float64 for float64 logits); errors as for :func:`lmd_criterion`."""
        if logits.ndim == 2 and logits.shape[1] != self.num_classes:
            raise ValueError(
                f"LMDLoss was built for {self.num_classes} classes but the logits have "
                f"{logits.shape[1]} (shape {tuple(logits.shape)})"
            )
        lmd = lmd_criterion(logits, teacher_logits, targets, self.tau, major_labels)
        ce = F.cross_entropy(logits.to(lmd.dtype), targets.to(logits.device).long())
        return ce + self.beta * lmd

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, tau={self.tau}, beta={self.beta}"


def major_labels_from_counts(counts: Sequence[float] | np.ndarray | Tensor) -> Tensor:
    """FedLMD's major classes: the sorted ids whose count is strictly above the mean count.

    ``counts[c]`` is the client's number of samples of class c (all C classes, zeros
    included). Equal counts give an empty set. Returns a LongTensor (on the device of a tensor
    input). ``ValueError`` for counts that are not 1-D, empty, negative or not finite.
    """
    counts = counts if isinstance(counts, Tensor) else torch.as_tensor(np.asarray(counts))
    if counts.ndim != 1 or counts.numel() == 0:
        raise ValueError(f"counts must be a non-empty 1-D sequence, got shape {tuple(counts.shape)}")
    if counts.dtype == torch.bool or counts.is_complex():
        raise ValueError(f"counts must be numbers, got dtype {counts.dtype}")
    if not bool(torch.isfinite(counts).all()) or bool((counts < 0).any()):
        raise ValueError(f"counts must be finite and >= 0, got {counts.tolist()}")
    # count > mean  <=>  count * C > sum, which is exact for integer counts.
    return torch.nonzero(counts * counts.numel() > counts.sum()).flatten()


# --------------------------------------------------------------------------- kinds


def kind_membership(kind_index: Sequence[int], num_kinds: int | None = None) -> Tensor:
    """(K, C) bool: row k marks the classes of kind k (``kind_index[c]`` is class c's kind)."""
    index = torch.as_tensor(list(kind_index), dtype=torch.long)
    num_kinds = int(index.max()) + 1 if num_kinds is None else num_kinds
    return torch.arange(num_kinds)[:, None] == index[None, :]


def kind_log_softmax(logits: Tensor, membership: Tensor) -> Tensor:
    """(B, C) class logits -> (B, K) log-probabilities of the kinds: log of the summed
    class probabilities of each kind (``membership`` from :func:`kind_membership`)."""
    log_p = F.log_softmax(logits.float(), dim=1)
    masked = log_p[:, None, :].masked_fill(~membership.to(log_p.device)[None], float("-inf"))
    return torch.logsumexp(masked, dim=2)


def kind_nll_loss(logits: Tensor, kind_target: Tensor, membership: Tensor) -> Tensor:
    """-log of the summed probability of the true kind's classes, averaged over the batch:
    trains a class-level model on photos labelled by kind only.

    ``kind_target``: (B,) kind indices, or (B, K) bool, the kinds a photo shows (a fruit bowl
    of apples and bananas): then -log of the summed probability of all of them, so any kind
    in the photo is a right answer."""
    log_p = kind_log_softmax(logits, membership)
    if kind_target.dtype == torch.bool:
        return -torch.logsumexp(log_p.masked_fill(~kind_target.to(log_p.device), float("-inf")), dim=1).mean()
    return F.nll_loss(log_p, kind_target)
