"""Norms over the channel axis of a (B, C, H, W) map, written with all-ones 1x1 convs so XNNPACK takes them.

A mean or sum over the channel axis stays on ExecuTorch's portable kernels and splits the delegated graph
(TurboViT: 83 subgraphs -> 14 with these and the channels-first attention); a 1x1 conv with all-ones
weights computes the same sum and is delegated. Both are exact: ones are exact in any dtype and 1/C is a
Python float. Used by the SwiftFormer (L2 normalisation) and Hiera/TurboViT (LayerNorm) converters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

L2_NORM_EPS = 1e-12  # F.normalize's eps: results match the original up to rounding


class ChannelL2Normalize(nn.Module):
    """F.normalize over channels, as q * rsqrt(max(sum_c q^2, eps^2)) with the channel sum as a 1x1 conv.

    max(sqrt(s), eps) == sqrt(max(s, eps^2)), so this is exact.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.sum_channels = nn.Conv2d(channels, 1, 1, bias=False)
        nn.init.ones_(self.sum_channels.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(self.sum_channels(x * x).clamp_min(L2_NORM_EPS**2))


class ChannelsFirstLayerNorm(nn.Module):
    """``nn.LayerNorm`` over the channels of (B, C, H, W) without permutes: channel means as 1x1 convs."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.eps = norm.eps
        channels = norm.weight.numel()
        self.weight = nn.Parameter(norm.weight.detach().clone()[:, None, None])
        self.bias = nn.Parameter(norm.bias.detach().clone()[:, None, None])
        # all-ones weights (exact in any dtype) and a Python-float 1/C: float64 runs stay exact too
        self.register_buffer("ones", torch.ones(1, channels, 1, 1, dtype=norm.weight.dtype))
        self.inv_channels = 1.0 / channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        centred = x - F.conv2d(x, self.ones) * self.inv_channels
        var = F.conv2d(centred * centred, self.ones) * self.inv_channels
        return centred * torch.rsqrt(var + self.eps) * self.weight + self.bias
