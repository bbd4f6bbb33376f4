"""The XNNPACK-only LayerNorm decomposition: the same function, and it keeps a token model in one subgraph."""

from __future__ import annotations

import timm
import torch
from support.numerics import rel_l2
from torch import nn

from converters.backends import backend_copy, for_backend
from converters.rewrites.layer_norm import StatsLayerNorm, replace_layer_norms


def test_stats_layer_norm_equals_layer_norm():
    g = torch.Generator().manual_seed(0)
    norm = nn.LayerNorm(24, eps=1e-6)
    norm.weight.data = torch.rand(24, generator=g) + 0.5
    norm.bias.data = torch.randn(24, generator=g)
    x = torch.randn(2, 50, 24, generator=g) * 4 + 2
    with torch.no_grad():
        assert rel_l2(StatsLayerNorm(norm)(x), norm(x)) < 1e-6


def test_only_last_axis_layer_norms_are_replaced_and_only_for_xnnpack():
    model = nn.Sequential(nn.LayerNorm(8), nn.Linear(8, 8), nn.LayerNorm([4, 8]))
    assert replace_layer_norms(model) == ["0"] and isinstance(model[0], StatsLayerNorm)
    assert type(model[2]) is nn.LayerNorm
    other = nn.Sequential(nn.LayerNorm(8))
    assert for_backend(other, "coreml") == [] and type(other[0]) is nn.LayerNorm
    copy, applied = backend_copy(other, "xnnpack")
    assert type(other[0]) is nn.LayerNorm and isinstance(copy[0], StatsLayerNorm)
    assert any("LayerNorm" in line for line in applied)


def test_tiny_vit_keeps_its_function_and_xnnpack_takes_it_whole():
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from converters import get_converter

    torch.manual_seed(0)
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, depth=2, img_size=64, num_classes=10).eval()
    prepared = get_converter("generic").prepare(vit).module
    module, applied = backend_copy(prepared, "xnnpack")
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert rel_l2(module(x), vit(x)) < 1e-5
    assert any("LayerNorm" in line for line in applied)

    def subgraphs(m: nn.Module) -> int:
        program = torch.export.export(m, (x[:1],))
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).exported_program()
        return sum(1 for n in lowered.graph.nodes if n.op == "call_function" and "call_delegate" in str(n.target))

    assert subgraphs(module) < subgraphs(prepared)
