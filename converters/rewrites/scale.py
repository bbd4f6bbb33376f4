"""Fold per-channel multiplies (layer scale) and parallel linear heads into the weights that produce them."""

from __future__ import annotations

import copy

import torch
from torch import nn


def fold_scale_into_conv(conv: nn.Conv2d, scale: torch.Tensor) -> nn.Conv2d:
    """conv(x) * scale[c]  ==>  one conv with each output channel's weights and bias scaled."""
    scale = scale.reshape(-1)
    if scale.numel() != conv.out_channels:
        raise ValueError(f"scale has {scale.numel()} channels, conv has {conv.out_channels}")
    fused = copy.deepcopy(conv)
    fused.weight.data = conv.weight * scale.view(-1, 1, 1, 1)
    if conv.bias is not None:
        fused.bias.data = conv.bias * scale
    else:
        fused.bias = None
    return fused


def layer_scale_of(module: nn.Module | None) -> torch.Tensor | None:
    """The per-channel factor of a layer-scale module (timm ``LayerScale``/``LayerScale2d``, SwiftFormer's),
    or None for an identity (layer scale disabled)."""
    return getattr(module, "gamma", None) if module is not None else None


def fold_layer_scale(conv: nn.Conv2d, layer_scale: nn.Module | None) -> nn.Conv2d:
    """conv followed by a layer-scale module ==> one conv; the conv itself when there is no layer scale."""
    gamma = layer_scale_of(layer_scale)
    return conv if gamma is None else fold_scale_into_conv(conv, gamma)


def average_linears(a: nn.Linear, b: nn.Linear) -> nn.Linear:
    """(a(x) + b(x)) / 2  ==>  one linear: how distilled models (DeiT, SwiftFormer) average their two heads."""
    fused = nn.Linear(a.in_features, a.out_features, bias=True)
    fused.weight.data = (a.weight + b.weight) / 2
    bias_a = a.bias if a.bias is not None else torch.zeros(a.out_features)
    bias_b = b.bias if b.bias is not None else torch.zeros(b.out_features)
    fused.bias.data = (bias_a + bias_b) / 2
    return fused
