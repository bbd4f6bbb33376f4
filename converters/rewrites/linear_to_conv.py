"""nn.Linear over channels as a 1x1 conv: the same map, but on (B,C,H,W) with no reshape/transpose around it."""

from __future__ import annotations

from torch import nn


def linear_to_conv1x1(linear: nn.Linear) -> nn.Conv2d:
    conv = nn.Conv2d(linear.in_features, linear.out_features, 1, bias=linear.bias is not None)
    conv.weight.data = linear.weight.detach().clone()[:, :, None, None]
    if linear.bias is not None:
        conv.bias.data = linear.bias.detach().clone()
    return conv


def column_to_conv1x1(weight_column) -> nn.Conv2d:
    """A (D, 1) matrix applied as ``tokens @ w`` becomes a 1x1 conv from D channels to one."""
    d = weight_column.shape[0]
    conv = nn.Conv2d(d, 1, 1, bias=False)
    conv.weight.data = weight_column.detach().clone().reshape(1, d, 1, 1)
    return conv
