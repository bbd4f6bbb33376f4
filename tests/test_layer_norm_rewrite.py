"""LayerNorm as its statistics: the same function, fewer XNNPACK subgraphs, and not applied (measured slower)."""

from __future__ import annotations

import copy

import timm
import torch
from support.numerics import rel_l2
from torch import nn

from converters.backends import for_backend
from converters.rewrites.layer_norm import StatsLayerNorm, replace_layer_norms


def test_stats_layer_norm_equals_layer_norm():
    g = torch.Generator().manual_seed(0)
    norm = nn.LayerNorm(24, eps=1e-6)
    norm.weight.data = torch.rand(24, generator=g) + 0.5
    norm.bias.data = torch.randn(24, generator=g)
    x = torch.randn(2, 50, 24, generator=g) * 4 + 2
    with torch.no_grad():
        assert rel_l2(StatsLayerNorm(norm)(x), norm(x)) < 1e-6


def test_only_last_axis_layer_norms_are_replaced_and_the_xnnpack_step_leaves_them():
    model = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.LayerNorm([4, 8]))
    assert replace_layer_norms(model) == ["0"] and isinstance(model[0], StatsLayerNorm)
    assert type(model[2]) is nn.LayerNorm
    other = nn.Sequential(nn.LayerNorm(8))  # measured slower on XNNPACK (module docstring): not applied
    assert for_backend(other, "xnnpack") == [] and type(other[0]) is nn.LayerNorm


def test_tiny_vit_keeps_its_function_and_xnnpack_takes_it_whole():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from converters import get_converter

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, img_size=64, num_classes=10).eval()
    prepared = get_converter("generic").prepare(vit).module
    module = copy.deepcopy(prepared)
    assert len(replace_layer_norms(module)) == 5  # 2 blocks x 2, and the final norm
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_l2(module(x), vit(x)) < 1e-5

    def subgraphs(m: nn.Module) -> int:
        program = torch.export.export(m, (x[:1],))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).exported_program()
        return sum(1 for n in lowered.graph.nodes if n.op == "call_function" and "call_delegate" in str(n.target))

    assert subgraphs(module) < subgraphs(prepared)
