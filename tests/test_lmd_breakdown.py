"""Tests of fruitseg.ui.lmd_breakdown: the LMD explorer's (and /lmd's) numbers for one sample,
against the loss module's tensor API, hand-worked values and finite differences."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fruitseg.losses import kd_loss, lmd_criterion, ntd_loss
from fruitseg.ui.lmd_breakdown import lmd_breakdown


def test_hand_worked_three_classes():
    # student [1, 2, 3], teacher [3, 1, 0], target 0, T = 1, major {1}: the teacher's mass all on
    # class 2; the student masks class 0 (see tests/test_losses.py for the derivation).
    expected_lmd = math.log(math.exp(2) + math.exp(3)) - 3
    expected_ce = math.log(math.exp(1) + math.exp(2) + math.exp(3)) - 1
    result = lmd_breakdown([1, 2, 3], [3, 1, 0], 0, 1.0, 0.5, [1])
    assert result["lmd"] == pytest.approx(expected_lmd, abs=1e-12)
    assert result["ce"] == pytest.approx(expected_ce, abs=1e-12)
    assert result["total"] == pytest.approx(expected_ce + 0.5 * expected_lmd, abs=1e-12)
    assert result["teacher_probs"] == pytest.approx([0.0, 0.0, 1.0], abs=1e-12)
    assert result["major_mask"] == [False, True, False]


def test_every_class_but_the_true_one_major_gives_the_unmasked_teacher():
    result = lmd_breakdown([1.0, 0.5, -1.0, 2.0], [2.0, 0.0, 1.0, -1.0], 0, 1.5, 1.0, [1, 2, 3])
    assert result["teacher_probs"] == pytest.approx(result["teacher_probs_unmasked"], rel=1e-9)


def breakdown_example(C=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=C) * 2, rng.normal(size=C) * 2


def test_breakdown_agrees_with_the_tensor_api_and_is_json():
    s, t = breakdown_example()
    T, beta, target, major = 1.7, 0.6, 2, [0, 2, 5]
    result = lmd_breakdown(s, t, target, T, beta, major)
    json.dumps(result)
    assert all(type(v) in (float, list) for v in result.values())

    st, tt, y = torch.tensor(s)[None], torch.tensor(t)[None], torch.tensor([target])
    assert result["ce"] == pytest.approx(F.cross_entropy(st, y).item(), rel=1e-12)
    assert result["lmd"] == pytest.approx(lmd_criterion(st, tt, y, T, major).item(), rel=1e-12)
    assert result["kd"] == pytest.approx(kd_loss(st, tt, T).item(), rel=1e-12)
    assert result["ntd"] == pytest.approx(ntd_loss(st, tt, y, T).item(), rel=1e-12)
    assert result["total"] == pytest.approx(result["ce"] + beta * result["lmd"], rel=1e-12)
    assert result["kd_total"] == pytest.approx(result["ce"] + beta * result["kd"], rel=1e-12)
    assert result["ntd_total"] == pytest.approx(result["ce"] + beta * result["ntd"], rel=1e-12)
    assert result["major_mask"] == [True, False, True, False, False, True]

    teacher, student = np.array(result["teacher_probs"]), np.array(result["student_probs"])
    assert teacher.sum() == pytest.approx(1) and student.sum() == pytest.approx(1)
    assert teacher[major].max() == 0 and student[target] == 0 and student[[0, 5]].min() > 0
    assert result["teacher_probs_unmasked"] == pytest.approx((np.exp(t / T) / np.exp(t / T).sum()).tolist())
    assert result["student_probs_plain"] == pytest.approx((np.exp(s) / np.exp(s).sum()).tolist())


@pytest.mark.parametrize("major", [[], [1, 3], [0, 1, 2, 3, 4, 5], [False, True, True, True, True, True]])
@pytest.mark.parametrize("T", [0.5, 2.0])
def test_breakdown_gradients_match_finite_differences(major, T):
    s, t = breakdown_example()
    beta, target, h = 0.8, 0, 1e-6
    result = lmd_breakdown(s, t, target, T, beta, major)
    for key in ("total", "ce", "lmd"):
        numeric = []
        for c in range(len(s)):
            up, down = s.copy(), s.copy()
            up[c] += h
            down[c] -= h
            f = lambda x: lmd_breakdown(x, t, target, T, beta, major)[key]
            numeric.append((f(up) - f(down)) / (2 * h))
        np.testing.assert_allclose(result[f"grad_{key}"], numeric, rtol=1e-5, atol=1e-6)
    grad_sum = np.add(result["grad_ce"], beta * np.array(result["grad_lmd"]))
    np.testing.assert_allclose(result["grad_total"], grad_sum, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(teacher_logits=[1.0, 2.0]), "differ in length: 3 != 2"),
        (dict(student_logits=[1.0, math.nan, 0.0]), "student_logits must be finite"),
        (dict(teacher_logits=[1.0, 0.0, math.inf]), "teacher_logits must be finite"),
        (dict(student_logits=[[1.0, 2.0, 3.0]]), "student_logits must be 1-D"),
        (dict(student_logits=["a", "b", "c"]), "student_logits must be a 1-D sequence of numbers"),
        (dict(student_logits=[1.0], teacher_logits=[1.0], target=0), "at least 2 classes"),
        (dict(target=3), r"target must be in \[0, 3\), got 3"),
        (dict(target=-1), r"target must be in \[0, 3\)"),
        (dict(target=1.0), "target must be an integer class id"),
        (dict(T=0.0), "temperature T must be a finite number > 0"),
        (dict(T=math.nan), "temperature T must be a finite number > 0"),
        (dict(beta=-1.0), "beta must be a finite number >= 0"),
        (dict(beta=math.inf), "beta must be a finite number >= 0"),
        (dict(major_labels=[7]), r"major_labels ids must be in \[0, 3\)"),
    ],
)
def test_breakdown_errors(kwargs, message):
    arguments = dict(
        student_logits=[1.0, 2.0, 3.0],
        teacher_logits=[3.0, 1.0, 0.0],
        target=0,
        T=1.0,
        beta=1.0,
        major_labels=[1],
    )
    with pytest.raises(ValueError, match=message):
        lmd_breakdown(**{**arguments, **kwargs})


def test_breakdown_accepts_numpy_scalars():
    result = lmd_breakdown(
        np.arange(4.0), np.ones(4), np.int64(1), np.float32(2.0), np.float64(0.5), np.array([2])
    )
    assert math.isfinite(result["total"])
