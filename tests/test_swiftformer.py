"""The SwiftFormer converter: same function, and no layout ops in the attention."""

from __future__ import annotations

import pytest
import torch
from support.numerics import rel_l2

from converters import get_converter
from converters.swiftformer import ChannelsFirstAdditiveAttention
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec
from edgevit.validate.inputs import photo_inputs

VARIANTS = ["swiftformer-xs", "swiftformer-s", "swiftformer-l1", "swiftformer-l3"]
LAYOUT_ATEN_OPS = {"view", "reshape", "permute", "transpose", "flatten", "_unsafe_view", "expand", "t"}


@pytest.mark.parametrize("form", ["normalize", "softmax"])
@pytest.mark.parametrize("name", VARIANTS)
def test_prepared_equals_original(name, form):
    spec = get_spec(name)
    original, _ = build_model(spec, {"attention_form": form}, seed=1)
    prepared = get_converter("swiftformer").prepare(original)
    photos = [item.tensor for item in photo_inputs(spec)[::3]]  # each photo, whole
    x = torch.cat([torch.randn(2, *spec.input_size), *photos])
    with torch.no_grad():
        ref, out = original(x), prepared.module(x)
    assert ref.argmax(1).unique().numel() > 1, "exercised weights must separate inputs"
    assert rel_l2(out, ref) <= 1e-5
    assert any("4D channels-first" in r for r in prepared.rewrites)


def test_exercised_weights_make_attention_count():
    """Breaking one attention block must break parity; with timm's 1e-5 layer scales it would not."""
    spec = get_spec("swiftformer-xs")
    original, _ = build_model(spec)
    prepared = get_converter("swiftformer").prepare(original).module
    attn = next(m for m in prepared.modules() if isinstance(m, ChannelsFirstAdditiveAttention))
    attn.w_g = None  # silently switch one block to the softmax form
    x = torch.randn(2, *spec.input_size)
    with torch.no_grad():
        assert rel_l2(prepared(x), original(x)) > 1e-3


def test_softmax_form_differs_from_normalize_form():
    spec = get_spec("swiftformer-xs")
    a, _ = build_model(spec, {"attention_form": "normalize"})
    b, _ = build_model(spec, {"attention_form": "softmax"})
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        assert rel_l2(a(x), b(x)) > 1e-3  # same weights, different math: the choice matters


def test_prepared_graph_has_no_batchnorm_and_attention_has_no_layout_ops():
    spec = get_spec("swiftformer-xs")
    original, _ = build_model(spec)
    prepared = get_converter("swiftformer").prepare(original).module
    assert not [m for m in prepared.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    attn = next(m for m in prepared.modules() if isinstance(m, ChannelsFirstAdditiveAttention))
    graph = torch.export.export(attn, (torch.randn(1, attn.to_query.in_channels, 7, 7),)).run_decompositions().graph
    ops = {getattr(n.target, "__name__", str(n.target)).split(".")[0] for n in graph.nodes if n.op == "call_function"}
    assert not ops & LAYOUT_ATEN_OPS, ops


def test_mil_layout_ops_removed():
    """CoreML MIL: 4 reshape/transpose per attention block before, 0 after; only the classifier flatten is left."""
    from edgevit.export.mil_inspect import mil_layout_report

    spec = get_spec("swiftformer-xs")
    original, _ = build_model(spec)
    prepared = get_converter("swiftformer").prepare(original).module
    report = mil_layout_report(original, prepared, spec)
    assert report["model"]["before"] > 0
    assert report["model"]["after"] == 1 and report["model"]["after_ops"] == {"reshape": 1}
    assert set(report["attention_blocks"]["before"].values()) == {4}
    assert set(report["attention_blocks"]["after"].values()) == {0}
    assert len(report["attention_blocks"]["after"]) == 4  # one encoder per stage
