"""``nn.LayerNorm`` over the last axis as its statistics (mean, centred square mean, rsqrt): measured, not applied.

ExecuTorch 1.5.1's XNNPACK partitioner does not take ``aten.native_layer_norm``, so every LayerNorm of a
token-layout model (DeiT-T: 25, Swin-T: 29) leaves the delegate: a subgraph boundary, a copy and a portable
kernel each. The same function as ``mean``/``sub``/``mul``/``rsqrt``, the means taken over a (N, 1, C, 1) view
(XNNPACK's global average pool; a mean over the last axis of a rank-3 tensor is not delegated either), is.
It is exact in fp32 up to summation order; it stays out of the shared prepared form because in fp16 (CoreML)
squaring before the mean can overflow where a fused layer_norm does not.

Measured (docs/bench_layer_norm.py, 1 thread, interleaved): fewer subgraphs (DeiT-T 26 -> 2, Swin-T 29 -> 2) but
slower .pte (DeiT-T 12.66 -> 13.50 ms, Swin-T 47.87 -> 52.25 ms): XNNPACK's mean/mul chain costs more than the
subgraph boundaries it removes. So ``converters.backends`` does not apply it; it stays for that measurement.
"""

from __future__ import annotations

import torch
from timm.layers import LayerNorm as TimmLayerNorm
from torch import nn

# last-axis LayerNorms only: timm's LayerNorm2d/LayerNormAct subclass nn.LayerNorm but normalise other axes
LAST_AXIS_LAYER_NORMS = (nn.LayerNorm, TimmLayerNorm)


class StatsLayerNorm(nn.Module):
    """(x - mean) * rsqrt(mean((x - mean)^2) + eps) * weight + bias over the last axis, as LayerNorm defines it."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.eps = norm.eps
        self.weight = None if norm.weight is None else nn.Parameter(norm.weight.detach().clone())
        self.bias = None if norm.bias is None else nn.Parameter(norm.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the means as XNNPACK's global average pool: over the last two axes of a rank-4 view (C, 1)
        x4 = x.reshape(-1, 1, x.shape[-1], 1)
        centred = x4 - x4.mean(dim=(-2, -1), keepdim=True)
        var = (centred * centred).mean(dim=(-2, -1), keepdim=True)
        out = (centred * torch.rsqrt(var + self.eps)).reshape(x.shape)
        if self.weight is not None:
            out = out * self.weight
        return out + self.bias if self.bias is not None else out


def replace_layer_norms(model: nn.Module) -> list[str]:
    """Swap every last-axis ``nn.LayerNorm`` (one normalised dim) for ``StatsLayerNorm``; returns their names."""
    replaced = []
    for name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if type(child) in LAST_AXIS_LAYER_NORMS and len(child.normalized_shape) == 1:
                setattr(parent, child_name, StatsLayerNorm(child))
                replaced.append(f"{name}.{child_name}" if name else child_name)
    return replaced
