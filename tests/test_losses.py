"""Tests of fruitseg.losses: FedLMD's label-masking distillation and the KD / NTD baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fruitseg.losses import (
    LMDLoss,
    kd_loss,
    lmd_criterion,
    lmd_logits,
    major_class_mask,
    major_labels_from_counts,
    ntd_loss,
)


def reference_lmd_criterion(logits_student, logits_teacher, target, T, major_labels):
    """Literal copy of the FedLMD reference (major_labels: 1-D LongTensor of class ids)."""
    C = logits_student.shape[1]
    gt_mask = F.one_hot(target, C)
    major_mask = torch.zeros(C, device=logits_student.device)
    major_mask[major_labels] = 1
    pred_teacher = F.softmax(logits_teacher / T - 1000.0 * major_mask - 1000.0 * gt_mask, dim=1)
    log_pred_student = F.log_softmax(logits_student / T - 1000.0 * gt_mask, dim=1)
    return nn.KLDivLoss(reduction="batchmean")(log_pred_student, pred_teacher) * T**2


def random_batch(batch=16, num_classes=10, dtype=torch.float64, seed=0, scale=3.0):
    generator = torch.Generator().manual_seed(seed)
    student = torch.randn(batch, num_classes, generator=generator, dtype=torch.float64) * scale
    teacher = torch.randn(batch, num_classes, generator=generator, dtype=torch.float64) * scale
    target = torch.randint(0, num_classes, (batch,), generator=generator)
    return student.to(dtype), teacher.to(dtype), target


def lse(*xs: float) -> float:
    return math.log(sum(math.exp(x) for x in xs))


# --------------------------------------------------------------------------- hand-worked


def test_hand_worked_three_classes():
    # student [1, 2, 3], teacher [3, 1, 0], target 0, T = 1, major {1}.
    # Teacher: class 0 (true) and 1 (major) masked -> all mass on class 2: p = [0, 0, 1].
    # Student: class 0 masked -> q = softmax over {1, 2}, q_2 = e^3 / (e^2 + e^3).
    # KL(p || q) = 1 * log(1 / q_2) = log(e^2 + e^3) - 3;  times T^2 = 1.
    expected_lmd = math.log(math.exp(2) + math.exp(3)) - 3
    expected_ce = math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 1

    student = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    teacher = torch.tensor([[3.0, 1.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0])
    lmd = lmd_criterion(student, teacher, target, 1.0, [1])
    assert lmd.item() == pytest.approx(expected_lmd, abs=1e-6)
    total = LMDLoss(3, tau=1.0, beta=0.5)(student, target, teacher, [1])
    assert total.item() == pytest.approx(expected_ce + 0.5 * expected_lmd, abs=1e-6)

    student_scaled, teacher_scaled = lmd_logits(student, teacher, target, 1.0, [1])
    assert F.softmax(teacher_scaled, 1)[0].tolist() == pytest.approx([0.0, 0.0, 1.0], abs=1e-12)
    q = F.softmax(student_scaled, 1)[0].tolist()
    assert q == pytest.approx([0.0, math.exp(2) / (math.exp(2) + math.exp(3)), math.exp(3) / (math.exp(2) + math.exp(3))])


def test_hand_worked_four_classes_with_temperature():
    # student [1, 2, 3, 0], teacher [3, 1, 0, 2], target 0, T = 2, major {1}.
    # Teacher logits / T = [1.5, 0.5, 0, 1]; classes 0, 1 masked -> p over {2, 3} from [0, 1].
    log_p2, log_p3 = 0 - lse(0, 1), 1 - lse(0, 1)
    # Student logits / T = [0.5, 1, 1.5, 0]; class 0 masked -> q over {1, 2, 3}.
    log_q2, log_q3 = 1.5 - lse(1, 1.5, 0), 0 - lse(1, 1.5, 0)
    kl = math.exp(log_p2) * (log_p2 - log_q2) + math.exp(log_p3) * (log_p3 - log_q3)
    expected = kl * 2**2

    student = torch.tensor([[1.0, 2.0, 3.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[3.0, 1.0, 0.0, 2.0]], dtype=torch.float64)
    assert lmd_criterion(student, teacher, torch.tensor([0]), 2.0, [1]).item() == pytest.approx(
        expected, abs=1e-6
    )


# --------------------------------------------------------------------------- reference equivalence

MAJOR_FORMS = {
    "long_tensor": lambda ids, C: torch.tensor(ids, dtype=torch.long),
    "int32_tensor": lambda ids, C: torch.tensor(ids, dtype=torch.int32),
    "list": lambda ids, C: list(ids),
    "tuple": lambda ids, C: tuple(ids),
    "numpy_ids": lambda ids, C: np.array(ids, dtype=np.int64),
    "bool_tensor": lambda ids, C: torch.isin(torch.arange(C), torch.tensor(ids, dtype=torch.long)),
    "bool_list": lambda ids, C: [c in ids for c in range(C)],
    "numpy_bool": lambda ids, C: np.isin(np.arange(C), ids),
}
MAJOR_SETS = [[], [3], [0, 4, 7], [1, 1, 2], list(range(9)), list(range(10))]


@pytest.mark.parametrize("form", MAJOR_FORMS)
@pytest.mark.parametrize("ids", MAJOR_SETS, ids=str)
@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-6), (torch.float32, 1e-5)])
@pytest.mark.parametrize("T", [0.5, 1.0, 4.0])
def test_matches_reference(form, ids, dtype, rtol, T):
    student, teacher, target = random_batch(dtype=dtype, seed=len(ids))
    expected = reference_lmd_criterion(student, teacher, target, T, torch.tensor(ids, dtype=torch.long))
    actual = lmd_criterion(student, teacher, target, T, MAJOR_FORMS[form](ids, 10))
    assert actual.dtype == dtype
    torch.testing.assert_close(actual, expected.to(dtype), rtol=rtol, atol=1e-7)


def test_lmd_loss_is_ce_plus_beta_lmd():
    student, teacher, target = random_batch(dtype=torch.float32)
    major = torch.tensor([2, 5])
    loss = LMDLoss(10, tau=3.0, beta=0.7)(student, target, teacher, major)
    expected = F.cross_entropy(student, target) + 0.7 * reference_lmd_criterion(
        student, teacher, target, 3.0, major
    )
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)
    assert "num_classes=10, tau=3.0, beta=0.7" in repr(LMDLoss(10, tau=3.0, beta=0.7))


def test_gradients_reach_the_student():
    student, teacher, target = random_batch(dtype=torch.float32)
    student.requires_grad_()
    teacher.requires_grad_()
    LMDLoss(10, tau=2.0)(student, target, teacher, [1, 2]).backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert student.grad.abs().sum() > 0
    assert teacher.grad is None  # the teacher is a detached target


def test_baselines():
    student, teacher, target = random_batch()
    T = 2.0
    # KD: KL(softmax(t/T) || softmax(s/T)) * T^2, written out.
    p, log_q = F.softmax(teacher / T, 1), F.log_softmax(student / T, 1)
    expected_kd = (p * (p.log() - log_q)).sum(1).mean() * T**2
    torch.testing.assert_close(kd_loss(student, teacher, T), expected_kd)
    # NTD: the true class removed exactly (FedNTD's way) gives the same numbers.
    keep = ~F.one_hot(target, 10).bool()
    p = F.softmax((teacher / T)[keep].view(16, 9), 1)
    log_q = F.log_softmax((student / T)[keep].view(16, 9), 1)
    expected_ntd = (p * (p.log() - log_q)).sum(1).mean() * T**2
    torch.testing.assert_close(ntd_loss(student, teacher, target, T), expected_ntd)


# --------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("empty", [[], (), torch.tensor([], dtype=torch.long), [False] * 10])
def test_empty_major_set_equals_ntd_exactly(dtype, empty):
    student, teacher, target = random_batch(dtype=dtype)
    lmd = lmd_criterion(student, teacher, target, 2.0, empty)
    assert torch.equal(lmd, ntd_loss(student, teacher, target, 2.0))


@pytest.mark.parametrize("dtype, rtol", [(torch.float64, 1e-9), (torch.float32, 1e-3)])
def test_every_class_major_gives_the_ntd_teacher(dtype, rtol):
    # All logits -1000, the true class a further -1000: the teacher is NTD's (up to the rounding
    # of the -1000 shift, ~1e-4 relative in float32).
    student, teacher, target = random_batch(dtype=dtype)
    lmd = lmd_criterion(student, teacher, target, 2.0, list(range(10)))
    torch.testing.assert_close(lmd, ntd_loss(student, teacher, target, 2.0), rtol=rtol, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_class_but_the_true_one_major_gives_the_unmasked_teacher(dtype):
    # Every teacher logit moves by -1000 alike, so the teacher is the plain softmax(t / T); the
    # student's true class is masked, so the term is about 1000 * p_teacher(true) * T^2: large,
    # finite, and the reference's number.
    T, target = 1.5, torch.tensor([0, 2])
    student = torch.tensor([[1.0, 0.5, -1.0, 2.0], [0.0, 1.0, 3.0, -2.0]], dtype=dtype)
    teacher = torch.tensor([[2.0, 0.0, 1.0, -1.0], [1.0, 1.0, 0.0, 0.5]], dtype=dtype)
    major_per_row = [[1, 2, 3], [0, 1, 3]]
    for row, major in enumerate(major_per_row):
        s, t, y = student[row : row + 1], teacher[row : row + 1], target[row : row + 1]
        lmd = lmd_criterion(s, t, y, T, major)
        assert torch.isfinite(lmd)
        torch.testing.assert_close(lmd, reference_lmd_criterion(s, t, y, T, torch.tensor(major)))
        p_true = F.softmax(t.double() / T, 1)[0, y].item()
        assert lmd.item() == pytest.approx(1000 * p_true * T**2, rel=0.05)

    _, masked_teacher = lmd_logits(student[:1].double(), teacher[:1].double(), target[:1], T, [1, 2, 3])
    unmasked = F.softmax(teacher[:1].double() / T, 1)
    torch.testing.assert_close(F.softmax(masked_teacher, 1), unmasked, rtol=1e-9, atol=0)


def test_true_class_in_major_set_is_the_same_as_masking_it_once():
    # The reference subtracts 2000 from a true class that is also major; with some class left
    # unmasked its probability is exactly 0 either way.
    student, teacher, target = random_batch(batch=1, seed=3)
    y = int(target)
    others = [c for c in (1, 4) if c != y]
    assert torch.equal(
        lmd_criterion(student, teacher, target, 2.0, others + [y]),
        lmd_criterion(student, teacher, target, 2.0, others),
    )


# --------------------------------------------------------------------------- dtypes, devices


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("loss", ["lmd", "ntd", "kd", "LMDLoss"])
def test_half_precision_is_upcast(dtype, loss):
    student, teacher, target = random_batch(dtype=torch.float32)
    major = [1, 5]
    functions = {
        "lmd": lambda s, t: lmd_criterion(s, t, target, 2.0, major),
        "ntd": lambda s, t: ntd_loss(s, t, target, 2.0),
        "kd": lambda s, t: kd_loss(s, t, 2.0),
        "LMDLoss": lambda s, t: LMDLoss(10, tau=2.0)(s, target, t, major),
    }
    fn = functions[loss]
    half_student = student.to(dtype).requires_grad_()
    half_loss = fn(half_student, teacher.to(dtype))
    assert half_loss.dtype == torch.float32 and torch.isfinite(half_loss)
    # Exactly the float32 loss of the rounded inputs, and close to the unrounded one.
    assert torch.equal(half_loss.detach(), fn(student.to(dtype).float(), teacher.to(dtype).float()))
    torch.testing.assert_close(half_loss.detach(), fn(student, teacher), rtol=2e-2, atol=1e-2)
    half_loss.backward()
    assert half_student.grad.dtype == dtype and torch.isfinite(half_student.grad).all()


def test_float16_extreme_logits_stay_finite():
    student = torch.tensor([[65000.0, -65000.0, 0.0], [-1.0, 0.0, 65504.0]], dtype=torch.float16)
    teacher = torch.tensor([[-65000.0, 65000.0, 1.0], [65504.0, 0.0, -65504.0]], dtype=torch.float16)
    for T in (0.05, 1.0, 20.0):
        for major in ([], [1], [0, 1, 2]):
            assert torch.isfinite(lmd_criterion(student, teacher, torch.tensor([0, 2]), T, major))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    student, teacher, target = random_batch(dtype=dtype)
    majors = ([2, 7], torch.tensor([2, 7]), torch.tensor([2, 7], device="cuda"), [True] * 3 + [False] * 7)
    for major in majors:  # ids and masks are moved to the logits' device
        cpu = lmd_criterion(student, teacher, target, 2.0, major)
        gpu = lmd_criterion(student.cuda(), teacher.cuda(), target.cuda(), 2.0, major)
        assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-4, atol=1e-5)
    loss = LMDLoss(10, tau=2.0)(student.cuda().float().requires_grad_(), target.cuda(), teacher.cuda(), [1])
    loss.backward()
    assert torch.isfinite(loss)


# --------------------------------------------------------------------------- errors

S3, T3, Y3 = torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 2])
ALL_LOSSES = {
    "lmd": lambda s, t, y, T: lmd_criterion(s, t, y, T, [1]),
    "ntd": ntd_loss,
    "LMDLoss": lambda s, t, y, T: LMDLoss(s.shape[-1], tau=T)(s, y, t, [1]),
}


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("T", [0.0, -1.0, math.inf, math.nan])
def test_bad_temperature(loss, T):
    with pytest.raises(ValueError, match="temperature T must be a finite number > 0"):
        ALL_LOSSES[loss](S3, T3, Y3, T)
    with pytest.raises(ValueError, match="temperature T"):
        kd_loss(S3, T3, T)


@pytest.mark.parametrize("loss", ALL_LOSSES)
@pytest.mark.parametrize("bad", [[0, 3], [-1, 0]])
def test_target_out_of_range(loss, bad):
    with pytest.raises(ValueError, match=r"target class ids must be in \[0, 3\)"):
        ALL_LOSSES[loss](S3, T3, torch.tensor(bad), 1.0)


@pytest.mark.parametrize("loss", ALL_LOSSES)
def test_shape_errors(loss):
    fn = ALL_LOSSES[loss]
    mismatch = r"student logits shape \(2, 3\) does not match teacher logits shape \(2, 4\)"
    with pytest.raises(ValueError, match=mismatch):
        fn(S3, torch.zeros(2, 4), Y3, 1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\).*got \(3,\)"):
        fn(S3, T3, torch.tensor([0, 1, 2]), 1.0)
    with pytest.raises(ValueError, match=r"target must have shape \(2,\).*got \(2, 1\)"):
        fn(S3, T3, Y3[:, None], 1.0)
    with pytest.raises(ValueError, match=r"logits must be 2-D.*\(3,\).*\(3,\)"):
        fn(torch.zeros(3), torch.zeros(3), torch.tensor(0), 1.0)
    with pytest.raises(ValueError, match=r"logits must be 2-D.*\(2, 3, 1\)"):
        fn(torch.zeros(2, 3, 1), torch.zeros(2, 3, 1), Y3, 1.0)
    with pytest.raises(ValueError, match="empty batch"):
        fn(torch.zeros(0, 3), torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match="integer class ids"):
        fn(S3, T3, Y3.float(), 1.0)


def test_kd_shape_errors():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        kd_loss(S3, torch.zeros(2, 4), 1.0)
    with pytest.raises(ValueError, match="2-D"):
        kd_loss(torch.zeros(3), torch.zeros(3), 1.0)


@pytest.mark.parametrize(
    "major, message",
    [
        ([3], r"major_labels ids must be in \[0, 3\), got \[3\]"),
        (torch.tensor([0, -1]), r"major_labels ids must be in \[0, 3\)"),
        ([True, False], r"boolean major_labels mask must have shape \(3,\), got \(2,\)"),
        (torch.ones(4, dtype=torch.bool), r"boolean major_labels mask must have shape \(3,\)"),
        ([0.5], "integer class ids"),
        (torch.tensor([[0, 1]]), "integer class ids"),
    ],
)
def test_bad_major_labels(major, message):
    with pytest.raises(ValueError, match=message):
        lmd_criterion(S3, T3, Y3, 1.0, major)


def test_lmd_loss_errors():
    with pytest.raises(ValueError, match="LMDLoss was built for 4 classes but the logits have 3"):
        LMDLoss(4)(S3, Y3, T3, [1])
    with pytest.raises(ValueError, match="num_classes must be a positive integer"):
        LMDLoss(0)
    with pytest.raises(ValueError, match="beta must be a finite number >= 0"):
        LMDLoss(3, beta=-0.1)
    with pytest.raises(ValueError, match="temperature T"):
        LMDLoss(3, tau=0.0)


# --------------------------------------------------------------------------- major labels


@pytest.mark.parametrize(
    "counts, expected",
    [
        ([10, 2, 3, 9], [0, 3]),
        (np.array([10, 2, 3, 9]), [0, 3]),
        (torch.tensor([10, 2, 3, 9]), [0, 3]),
        ([5, 5, 5], []),
        ([0, 0, 7, 0], [2]),
        ([1, 5, 5, 5], [1, 2, 3]),
        ([0.5, 0.25, 0.75], [2]),
    ],
)
def test_major_labels_from_counts(counts, expected):
    major = major_labels_from_counts(counts)
    assert major.dtype == torch.long and major.tolist() == expected


@pytest.mark.parametrize(
    "counts, message",
    [([], "non-empty 1-D"), ([[1, 2]], "non-empty 1-D"), ([1, -1], ">= 0"), ([1, math.nan], "finite")],
)
def test_major_labels_from_counts_errors(counts, message):
    with pytest.raises(ValueError, match=message):
        major_labels_from_counts(counts)


@pytest.mark.parametrize(
    "major, expected",
    [
        ([], [False] * 4),
        ([3, 1], [False, True, False, True]),
        (np.array([2]), [False, False, True, False]),
        (torch.tensor([0, 0]), [True, False, False, False]),
        ([True, False, False, True], [True, False, False, True]),
    ],
)
def test_major_class_mask(major, expected):
    mask = major_class_mask(major, 4)
    assert mask.dtype == torch.bool and mask.tolist() == expected


@pytest.mark.parametrize(
    "major, message",
    [([4], r"ids must be in \[0, 4\)"), ([-1], r"ids must be in \[0, 4\)"), ([True, False], r"shape \(4,\)"), ([0.5], "integer")],
)
def test_major_class_mask_errors(major, message):
    with pytest.raises(ValueError, match=message):
        major_class_mask(major, 4)
