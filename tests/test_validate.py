"""Parity metrics, thresholds, and proof that validation fails a wrong artifact."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn

from edgevit.validate.device_outputs import judge
from edgevit.validate.metrics import parity_metrics


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


class LogisticMap(nn.Module):
    """The logistic map at r=3.99, iterated: chaotic, so fp32 rounding grows to O(1) within ~30 steps."""

    def __init__(self, steps: int):
        super().__init__()
        self.steps = steps
        self.head = nn.Linear(48, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(x.flatten(1)[:, :48])
        for _ in range(self.steps):
            z = 3.99 * z * (1 - z)
        return self.head(z)


def _onnx_parity(original: nn.Module, exported: nn.Module, tmp_path):
    """Export ``exported`` to a real .onnx and judge it against ``original`` in onnxruntime."""
    from edgevit.export.onnx import export_onnx
    from edgevit.validate.inputs import ValidationInput
    from edgevit.validate.parity import Subject, run_parity

    gen = torch.Generator().manual_seed(0)
    inputs = [ValidationInput(f"random_{i}", torch.randn(1, 3, 4, 4, generator=gen), None) for i in range(6)]
    path = tmp_path / "m.onnx.fp32.onnx"
    info = export_onnx(exported, inputs[0].tensor, path)
    manifest = {"target": "onnx", "precision": "fp32", "input": info["input"], "output": info["output"]}
    return run_parity(Subject(original, original, None, inputs), path, manifest)


def test_unstable_original_makes_a_failed_check_inconclusive_not_a_pass(tmp_path):
    torch.manual_seed(0)
    chaotic = LogisticMap(steps=30).eval()
    result = _onnx_parity(chaotic, chaotic, tmp_path)  # the same function, rounded differently by onnxruntime
    assert result.fidelity.error > 1e-4  # fp32 rounding alone fails the bound...
    assert result.status == "inconclusive" and not result.failed  # ...so nothing is proven either way
    assert result.original_fp32_vs_fp64.rel_l2 > 1e-4 and "float64" in result.reason
    assert result.to_json()["original_fp32_vs_fp64"]["rel_l2"] > 1e-4


def test_stable_original_keeps_a_real_failure(tmp_path):
    torch.manual_seed(0)
    stable = LogisticMap(steps=2).eval()
    broken = copy.deepcopy(stable)
    with torch.no_grad():
        broken.head.weight[0] += 0.5  # a real conversion bug: one output row wrong
    result = _onnx_parity(stable, broken, tmp_path)
    assert result.status == "fail" and result.failed and result.failed_part == "fidelity"
    assert "--bisect" in result.reason  # a failed fidelity check says how to find the layer
    assert result.original_fp32_vs_fp64.rel_l2 < 1e-6  # measured, and it clears the original
    good = _onnx_parity(stable, stable, tmp_path)
    assert good.status == "pass" and good.original_fp32_vs_fp64 is None  # only measured on a failure


def test_the_reference_copy_handles_models_with_attention_bias_caches():
    """timm's LeViT/EfficientViT-M cache their attention biases in eval mode; a forward with autograd on leaves a
    non-leaf tensor there, which deepcopy refuses (the crash of `convert efficientvit-m0 --target coreml`)."""
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec
    from edgevit.validate.fidelity import with_values
    from edgevit.validate.inputs import photo_inputs

    spec = get_spec("efficientvit-m0")
    original, _ = build_model(spec, seed=1)
    inputs = photo_inputs(spec)[:2]
    reference = torch.cat([original(item.tensor) for item in inputs])  # autograd on: fills the caches
    assert any(getattr(m, "attention_bias_cache", None) for m in original.modules())
    rounded = with_values(original, {}, round_fp16=True)
    with torch.no_grad():
        again = torch.cat([rounded(item.tensor) for item in inputs])
    error = float((again - reference).norm() / reference.norm())
    assert 0 < error < 1  # rounded weights: close, not identical
