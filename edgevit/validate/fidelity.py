"""Fidelity: is this artifact the same program as the original? The first half of every parity verdict.

The artifact's own program runs at wide precision and is compared with a reference that carries exactly the
values the artifact stores, so what is left is the arithmetic order of two correct executions — a bound that is
derived and small — never the precision's own noise, which can hide a broken layer (a negated convolution
scores 63 dB PSNR on fp16 probabilities). Per kind of artifact:

- **ML program** (``.mlpackage``, and each CoreML partition of a CoreML-delegated ``.pte``): two checks.
  *Stored values*: every stored weight, read back from the program and dequantized or de-palettized, must be
  what its storage rule makes of the original's parameter (edgevit.validate.stored_values: fp16 rounding, the
  nearest point of an int8/int4 grid, the nearest palette entry). *Program*: edgevit's MIL interpreter at fp32
  (no fp16 storage rounding) against the prepared model with every float rounded as the program stores it and
  the stored values carried in; compared on logits (the softmax's input in a classifier package).
  Bound (relative L2 on logits): ``MIL_BOUND`` for the fp32 summation order (interpreter vs torch), plus, in a
  program that stores fp16, the measured effect of rounding every weight of the model to fp16 — coremltools rounds
  constants it computes itself (the input normalisation as a ``batch_norm``, fused norms, folded scales, immediate
  values inside ops) that the reference cannot carry; measured 1.4e-5 against a bound of 7.6e-4 on swiftformer-xs.
- **fp32 ``.pte`` / ``.onnx``**: the runtime's output against the original's, relative L2 on logits within
  ``FP32_BOUND`` and the same top-1 on every input (summation order and fused kernels only; measured ~4e-7).
- **int8 ``.pte`` / ``.onnx``**: the runtime against the quantized reference the quantizer produces from the
  original (edgevit.validate.quantized_reference), bound in edgevit.validate.quantized_reference.

A failed fidelity check names what differs and suggests ``edgevit validate ARTIFACT --bisect``.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from edgevit.validate.metrics import rel_l2

FP32_BOUND = 1e-4
MIL_BOUND = 1e-4
BISECT_HINT = "`edgevit validate ARTIFACT --bisect` names the first value that diverges"


@dataclass
class Fidelity:
    """The verdict's first half. ``error`` and ``bound`` are in ``metric``; ``margin`` is error / bound."""

    status: str  # "pass", "fail", "inconclusive" or "not run"
    compared: str  # what ran against what
    metric: str = "relative L2 on logits"
    error: float | None = None
    bound: float | None = None
    bound_derivation: str = ""
    top1_agreement: float | None = None
    values: dict | None = None  # the stored-values check (edgevit.validate.stored_values.ValueCheck.to_json())
    reason: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def margin(self) -> float | None:
        if self.error is None or not self.bound:
            return None
        return self.error / self.bound

    def to_json(self) -> dict:
        return {**asdict(self), "margin": self.margin}


def judge_outputs(reference: np.ndarray, actual: np.ndarray, bound: float, compared: str, derivation: str,
                  require_top1: bool = True) -> Fidelity:
    """Relative L2 of ``actual`` against ``reference`` (logits) within ``bound``, top-1 equal on every input."""
    error = rel_l2(reference, actual)
    ref, act = reference.reshape(len(reference), -1), actual.reshape(len(actual), -1)
    top1 = float(np.mean(ref.argmax(1) == act.argmax(1)))
    problems = []
    if not error <= bound:
        problems.append(f"relative L2 on logits {error:.3g} > {bound:g} ({error / bound:.3g}× the bound)")
    if require_top1 and top1 < 1.0:
        problems.append(f"top-1 differs on {1 - top1:.0%} of the inputs")
    status = "fail" if problems else "pass"
    reason = "; ".join(problems) + (f"; {BISECT_HINT}" if problems else "")
    return Fidelity(status, compared, error=error, bound=bound, bound_derivation=derivation, top1_agreement=top1,
                    reason=reason)


def with_values(module: nn.Module, carried: dict[str, np.ndarray], round_fp16: bool) -> nn.Module:
    """A copy of ``module`` holding what the artifact stores: every float rounded to fp16 when the program keeps
    its weights in fp16 (or compressed from fp16), then the stored tensors matched to parameters put in."""
    for sub in module.modules():  # timm's attention-bias caches hold non-leaf tensors that deepcopy refuses
        if isinstance(getattr(sub, "attention_bias_cache", None), dict):
            sub.attention_bias_cache.clear()
    copied = copy.deepcopy(module).eval()
    with torch.no_grad():
        for key, tensor in copied.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if round_fp16:
                tensor.copy_(tensor.half().float())
            if key in carried:
                tensor.copy_(torch.from_numpy(np.asarray(carried[key], dtype=np.float32)).reshape(tensor.shape))
    return copied


def state_of(module: nn.Module) -> dict[str, np.ndarray]:
    """The float parameters and buffers of ``module`` as fp32 numpy, by state-dict key."""
    return {k: v.detach().float().numpy() for k, v in module.state_dict().items() if v.is_floating_point()}
