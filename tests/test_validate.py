"""Parity metrics, thresholds, and proof that validation fails a wrong artifact."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgevit.validate import judge, parity_metrics


def test_metrics_on_hand_checked_values():
    ref = np.array([[1.0, 2.0, 3.0, 0.0, -1.0, 4.0]])
    act = ref + np.array([[0.0, 0.0, 0.0, 0.0, 0.0, 0.6]])
    m = parity_metrics(ref, act)
    assert m.max_abs == pytest.approx(0.6)
    assert m.rel_l2 == pytest.approx(0.6 / math.sqrt(31))
    assert m.psnr_db == pytest.approx(20 * math.log10(4.0 / math.sqrt(0.36 / 6)))
    assert m.top1_agreement == 1.0
    assert m.top5_agreement == 1.0
    assert m.distinct_top1 == 1


def test_top_k_agreement_counts_disagreements():
    ref = np.array([[5.0, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    act = np.array([[4.0, 5, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5]])
    m = parity_metrics(ref, act)
    assert m.top1_agreement == 0.5
    assert m.top5_agreement == 1.0
    act2 = np.array([[0.0, 4, 3, 2, 1, 5], [0, 1, 2, 3, 4, 5]])  # row 0 top-5 loses class 0 for class 5
    assert parity_metrics(ref, act2).top5_agreement == pytest.approx((4 / 5 + 1) / 2)


def test_identical_outputs():
    ref = np.random.default_rng(0).normal(size=(3, 10))
    m = parity_metrics(ref, ref.copy())
    assert m.max_abs == 0 and m.rel_l2 == 0 and math.isinf(m.psnr_db) and m.cosine == pytest.approx(1.0)


def test_thresholds():
    ref = np.random.default_rng(0).normal(size=(4, 1000))
    near = ref + 1e-6 * np.random.default_rng(1).normal(size=ref.shape)
    far = ref + 1e-2 * np.random.default_rng(1).normal(size=ref.shape)
    assert judge(parity_metrics(ref, near), "fp32")[0] == "pass"
    status, reason = judge(parity_metrics(ref, far), "fp32")
    assert status == "fail" and "relative L2" in reason
    assert judge(parity_metrics(ref, far), "fp16")[0] == "pass"  # ~40+ dB: fine for fp16
    status, reason = judge(parity_metrics(ref, ref + 0.3), "fp16")
    assert status == "fail" and "PSNR" in reason


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shapes differ"):
        parity_metrics(np.zeros((1, 10)), np.zeros((1, 11)))
