"""Each shared rewrite computes exactly what it replaces."""

from __future__ import annotations

import pytest
import torch
from support.numerics import rel_l2
from torch import nn

from converters.rewrites import (
    ChannelL2Normalize,
    ChannelsFirstLayerNorm,
    TwoLevelGroupNorm1,
    average_linears,
    column_to_conv1x1,
    fold_bn_after_conv,
    fold_bn_before_conv1x1,
    fold_bn_before_linear,
    fold_layer_scale,
    fold_scale_into_conv,
    linear_to_conv1x1,
    replace_single_group_norms,
)


def random_bn(c: int, seed: int = 0) -> nn.BatchNorm2d:
    g = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(c).eval()
    bn.running_mean.copy_(torch.randn(c, generator=g))
    bn.running_var.copy_(torch.rand(c, generator=g) + 0.5)
    bn.weight.data = torch.rand(c, generator=g) + 0.5
    bn.bias.data = torch.randn(c, generator=g)
    return bn


@pytest.mark.parametrize("groups,kernel,padding", [(1, 3, 1), (8, 3, 1), (1, 1, 0)])
def test_fold_bn_after_conv(groups, kernel, padding):
    conv = nn.Conv2d(8, 16, kernel, padding=padding, groups=groups).eval()
    bn = random_bn(16)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        assert rel_l2(fold_bn_after_conv(conv, bn)(x), bn(conv(x))) < 1e-6


def test_fold_bn_before_conv1x1():
    bn, conv = random_bn(8), nn.Conv2d(8, 12, 1)
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        assert rel_l2(fold_bn_before_conv1x1(bn, conv)(x), conv(bn(x))) < 1e-6


def test_fold_bn_before_conv_refuses_padded_kernels():
    with pytest.raises(ValueError, match="1x1"):
        fold_bn_before_conv1x1(random_bn(8), nn.Conv2d(8, 8, 3, padding=1))


def test_fold_bn_before_linear_through_global_pool():
    bn, linear = random_bn(8), nn.Linear(8, 10)
    x = torch.randn(3, 8, 4, 4)
    with torch.no_grad():
        expected = linear(bn(x).mean(dim=(2, 3)))
        assert rel_l2(fold_bn_before_linear(bn, linear)(x.mean(dim=(2, 3))), expected) < 1e-6


def test_fold_scale_into_conv():
    conv, scale = nn.Conv2d(4, 6, 3, padding=1), torch.rand(6, 1, 1) + 0.5
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        assert rel_l2(fold_scale_into_conv(conv, scale)(x), conv(x) * scale) < 1e-6


def test_average_linears():
    a, b = nn.Linear(8, 5), nn.Linear(8, 5)
    x = torch.randn(3, 8)
    with torch.no_grad():
        assert rel_l2(average_linears(a, b)(x), (a(x) + b(x)) / 2) < 1e-6


def test_linear_to_conv1x1_matches_linear_on_tokens():
    linear = nn.Linear(8, 12)
    x = torch.randn(2, 8, 5, 6)
    tokens = x.flatten(2).transpose(1, 2)  # (B, N, C): how the original applies it
    with torch.no_grad():
        expected = linear(tokens).transpose(1, 2).reshape(2, 12, 5, 6)
        assert rel_l2(linear_to_conv1x1(linear)(x), expected) < 1e-6


def test_column_to_conv1x1():
    w = torch.randn(8, 1)
    x = torch.randn(2, 8, 3, 3)
    expected = (x.flatten(2).transpose(1, 2) @ w).transpose(1, 2).reshape(2, 1, 3, 3)
    with torch.no_grad():
        assert rel_l2(column_to_conv1x1(w)(x), expected) < 1e-6


@pytest.mark.parametrize("affine", [True, False])
def test_two_level_group_norm_equals_group_norm(affine):
    from timm.layers import GroupNorm1

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 16, 3), GroupNorm1(16, affine=affine), nn.GroupNorm(4, 16))
    if affine:
        nn.init.uniform_(model[1].weight, 0.5, 1.5)
        nn.init.normal_(model[1].bias)
    x = torch.randn(2, 3, 9, 7) * 3 + 1
    with torch.no_grad():
        ref = model(x)
        assert replace_single_group_norms(model) == 1  # the 4-group norm is not a LayerNorm: left alone
        assert isinstance(model[1], TwoLevelGroupNorm1) and isinstance(model[2], nn.GroupNorm)
        assert rel_l2(model(x), ref) <= 1e-6


@pytest.mark.parametrize("kind", ["LayerScale", "LayerScale2d", "none"])
def test_fold_layer_scale_accepts_timm_layer_scales_and_identity(kind):
    from timm.layers import LayerScale, LayerScale2d

    conv = nn.Conv2d(6, 8, 1).eval()
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 5, 5, generator=g)
    if kind == "none":
        assert fold_layer_scale(conv, nn.Identity()) is conv
        return
    ls = LayerScale(8) if kind == "LayerScale" else LayerScale2d(8)
    ls.gamma.data = torch.rand(8, generator=g) + 0.5
    with torch.no_grad():
        want = conv(x) * ls.gamma.view(1, -1, 1, 1)
        assert rel_l2(fold_layer_scale(conv, ls)(x), want) < 1e-6


def test_channels_first_layer_norm_equals_layer_norm_on_tokens():
    g = torch.Generator().manual_seed(4)
    norm = nn.LayerNorm(12, eps=1e-6)
    norm.weight.data = torch.rand(12, generator=g) + 0.5
    norm.bias.data = torch.randn(12, generator=g)
    x = torch.randn(2, 12, 5, 7, generator=g) * 3 + 1
    with torch.no_grad():
        want = norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        assert rel_l2(ChannelsFirstLayerNorm(norm)(x), want) < 1e-6


def test_channel_l2_normalize_equals_f_normalize():
    x = torch.randn(2, 10, 4, 4, generator=torch.Generator().manual_seed(5))
    x[0, :, 0, 0] = 0  # the eps branch
    with torch.no_grad():
        assert rel_l2(ChannelL2Normalize(10)(x), torch.nn.functional.normalize(x, dim=1)) < 1e-6
