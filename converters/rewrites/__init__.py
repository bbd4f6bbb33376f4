"""Shared module rewrites; each computes exactly what it replaces (tests/test_rewrites.py shows it)."""

from converters.rewrites.attention import rewrite_attention
from converters.rewrites.channel_norms import ChannelL2Normalize, ChannelsFirstLayerNorm
from converters.rewrites.fold_bn import (
    bn_affine,
    fold_bn_after_conv,
    fold_bn_before_conv1x1,
    fold_bn_before_linear,
)
from converters.rewrites.group_norm import TwoLevelGroupNorm1, replace_single_group_norms
from converters.rewrites.linear_to_conv import column_to_conv1x1, linear_to_conv1x1
from converters.rewrites.scale import average_linears, fold_layer_scale, fold_scale_into_conv, layer_scale_of
from converters.rewrites.split_depthwise import SplitDepthwiseConv2d, split_large_depthwise

__all__ = [
    "ChannelL2Normalize",
    "ChannelsFirstLayerNorm",
    "SplitDepthwiseConv2d",
    "TwoLevelGroupNorm1",
    "average_linears",
    "bn_affine",
    "column_to_conv1x1",
    "fold_bn_after_conv",
    "fold_bn_before_conv1x1",
    "fold_bn_before_linear",
    "fold_layer_scale",
    "fold_scale_into_conv",
    "layer_scale_of",
    "linear_to_conv1x1",
    "replace_single_group_norms",
    "rewrite_attention",
    "split_large_depthwise",
]
