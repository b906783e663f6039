"""Property-based tests of fruitseg.losses on random batches (hypothesis)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fruitseg.losses import kd_loss, lmd_criterion, ntd_loss

SETTINGS = settings(max_examples=50, deadline=None)
LOGIT = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
TEMPERATURE = st.floats(0.1, 20)


@st.composite
def batches(draw, dtype=None):
    """(student, teacher, target, T, major mask) with C in 2..20 and batch 1..8."""
    num_classes = draw(st.integers(2, 20))
    batch = draw(st.integers(1, 8))
    dtype = dtype or draw(st.sampled_from([torch.float32, torch.float64]))
    logits = hnp.arrays("float64", (batch, num_classes), elements=LOGIT)
    student = torch.tensor(draw(logits), dtype=dtype)
    teacher = torch.tensor(draw(logits), dtype=dtype)
    target = torch.tensor(draw(st.lists(st.integers(0, num_classes - 1), min_size=batch, max_size=batch)))
    major = torch.tensor(draw(st.lists(st.booleans(), min_size=num_classes, max_size=num_classes)))
    return student, teacher, target, draw(TEMPERATURE), major


def all_losses(student, teacher, target, T, major):
    return {
        "lmd": lmd_criterion(student, teacher, target, T, major),
        "ntd": ntd_loss(student, teacher, target, T),
        "kd": kd_loss(student, teacher, T),
    }


@SETTINGS
@given(batches())
def test_finite_and_non_negative(batch):
    for name, loss in all_losses(*batch).items():
        assert torch.isfinite(loss), name
        # A KL divergence between two distributions; exact arithmetic gives >= 0. The float64 bound
        # is the brief's -1e-6; float32 rounding of log-probabilities is scaled by T**2.
        T = batch[3]
        tolerance = 1e-6 if loss.dtype == torch.float64 else 1e-5 * max(1.0, T**2)
        assert loss.item() >= -tolerance, (name, loss.item())


@SETTINGS
@given(batches(dtype=torch.float64), st.floats(-50, 50), st.data())
def test_invariant_to_a_constant_added_to_a_row(batch, shift, data):
    student, teacher, target, T, major = batch
    row = data.draw(st.integers(0, student.shape[0] - 1))
    shifted_student, shifted_teacher = student.clone(), teacher.clone()
    shifted_student[row] += shift
    shifted_teacher[row] += shift
    expected = all_losses(student, teacher, target, T, major)
    for moved in (
        all_losses(shifted_student, teacher, target, T, major),
        all_losses(student, shifted_teacher, target, T, major),
    ):
        for name, loss in moved.items():
            torch.testing.assert_close(loss, expected[name], rtol=1e-7, atol=1e-8, msg=name)


@SETTINGS
@given(batches())
def test_lmd_equals_ntd_without_major_labels(batch):
    student, teacher, target, T, _ = batch
    ntd = ntd_loss(student, teacher, target, T)
    no_major = torch.zeros(student.shape[1], dtype=torch.bool)
    assert torch.equal(lmd_criterion(student, teacher, target, T, []), ntd)
    assert torch.equal(lmd_criterion(student, teacher, target, T, no_major), ntd)


@SETTINGS
@given(batches())
def test_gradients_are_finite(batch):
    student, teacher, target, T, major = batch
    student.requires_grad_()
    teacher.requires_grad_()  # the losses detach the teacher: it gets no gradient at all
    for name, loss in all_losses(student, teacher, target, T, major).items():
        grad_student, grad_teacher = torch.autograd.grad(loss, (student, teacher), allow_unused=True)
        assert torch.isfinite(grad_student).all(), name
        assert grad_teacher is None, name
