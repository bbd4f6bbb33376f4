"""Fold eval-mode BatchNorm into a neighbouring conv or linear layer.

A BatchNorm in eval mode is a per-channel affine map y = s*x + t, so it can be absorbed exactly by the
layer before it (conv -> BN) or, for 1x1 convs and linears, by the layer after it (BN -> conv).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def bn_affine(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The (scale, shift) pair an eval-mode BatchNorm applies per channel."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else 1 / torch.sqrt(bn.running_var + bn.eps)
    bias = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    return scale, bias - bn.running_mean * scale


def fold_bn_after_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """conv -> BN  ==>  one conv (torch's own fusion helper)."""
    return fuse_conv_bn_eval(conv.eval(), bn.eval())


def fold_bn_before_conv1x1(bn: nn.BatchNorm2d, conv: nn.Conv2d) -> nn.Conv2d:
    """BN -> 1x1 conv  ==>  one conv. Only exact for 1x1, unpadded, ungrouped convs (no border effects)."""
    if conv.kernel_size != (1, 1) or conv.padding not in ((0, 0), "valid") or conv.groups != 1:
        raise ValueError(f"BN can only be folded forward into an ungrouped, unpadded 1x1 conv, got {conv}")
    scale, shift = bn_affine(bn)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, 1, stride=conv.stride, bias=True)
    w = conv.weight  # (out, in, 1, 1)
    fused.weight.data = w * scale.view(1, -1, 1, 1)
    b = conv.bias if conv.bias is not None else torch.zeros(conv.out_channels)
    fused.bias.data = b + (w[:, :, 0, 0] @ shift)
    return fused


def fold_bn_before_linear(bn: nn.BatchNorm2d | nn.BatchNorm1d, linear: nn.Linear) -> nn.Linear:
    """BN -> (global average pool) -> linear  ==>  pool -> one linear: the pool commutes with the affine map."""
    scale, shift = bn_affine(bn)
    fused = nn.Linear(linear.in_features, linear.out_features, bias=True)
    fused.weight.data = linear.weight * scale.view(1, -1)
    b = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
    fused.bias.data = b + linear.weight @ shift
    return fused
