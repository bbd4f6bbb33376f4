"""The FastViT converter: every train-time branch folded, same function, channels-first attention, checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
import torch
from support.numerics import rel_l2
from timm.models import fastvit as tfv
from timm.models import reparameterize_model

from converters import get_converter
from converters.fastvit import (
    ChannelsFirstTokenAttention,
    channels_first_attention,
    layout_modules,
    unfused_modules,
)
from edgevit.base.errors import WeightsError
from edgevit.models.build import build_model
from edgevit.models.catalog import fastvit_specs
from edgevit.models.fastvit import fastvit_checkpoint_filter, is_reparameterized_checkpoint, unfused_modules_of_kind
from edgevit.validate.inputs import photo_inputs

SPECS = {s.name: s for s in fastvit_specs()}
VARIANTS = list(SPECS)
ATTENTION_VARIANTS = {"fastvit-sa12", "fastvit-sa24", "fastvit-sa36", "fastvit-ma36"}


def _kinds(found: list[str]) -> set[str]:
    return {re.search(r"\((\w+)", f).group(1) for f in found}


def test_specs():
    assert VARIANTS == [f"fastvit-{v}" for v in ("t8", "t12", "s12", "sa12", "sa24", "sa36", "ma36")]
    for spec in SPECS.values():
        assert spec.converter == "fastvit" and spec.input_size == (3, 256, 256) and spec.interpolation == "bicubic"
        assert spec.published_top1 is not None and "ImageNet-1K" in spec.top1_source
        assert spec.checkpoint_filter is fastvit_checkpoint_filter
    assert SPECS["fastvit-ma36"].crop_pct == 0.95 and SPECS["fastvit-t8"].crop_pct == 0.9


def at(spec, size: int):
    """The same network at another input size: cheaper calibration and forward passes, and the fusions do not
    depend on the resolution (160 also gives a 5x5 stage-4 map: no power of two). The slow test converts every
    variant at its real 256x256."""
    return dataclasses.replace(spec, input_size=(3, size, size))


@pytest.mark.parametrize("name", VARIANTS)
def test_every_branch_folded_and_same_function(name):
    spec = at(SPECS[name], 256 if name in ("fastvit-t8", "fastvit-sa12") else 160 if "12" in name else 128)
    original, _ = build_model(spec, seed=1)
    before = _kinds(unfused_modules(original))
    expected = {"BatchNorm2d", "MobileOneBlock", "RepMixer", "ReparamLargeKernelConv", "LayerScale2d", "ConvNormAct"}
    if name in ATTENTION_VARIANTS:
        expected.add("RepConditionalPosEnc")
        assert len(layout_modules(original)) == len(original.stages[3].blocks)
    assert expected <= before, before
    prepared = get_converter("fastvit").prepare(original)
    assert unfused_modules(prepared.module) == []
    assert layout_modules(prepared.module) == []
    assert unfused_modules(original), "prepare must not touch the original"
    photos = [item.tensor for item in photo_inputs(spec)[::3]]  # each photo, whole
    x = torch.cat([torch.randn(1, *spec.input_size, generator=torch.Generator().manual_seed(2)), *photos])
    with torch.no_grad():
        ref, out = original(x), prepared.module(x)
    centered_ref, centered_out = ref - ref.mean(0), out - out.mean(0)
    assert centered_ref.norm() / ref.norm() > 0.05, "exercised weights must make the output depend on the input"
    assert rel_l2(out, ref) <= 1e-5
    assert rel_l2(centered_out, centered_ref) <= 1e-4  # the input-dependent part matches too
    n_attn = sum(isinstance(m, ChannelsFirstTokenAttention) for m in prepared.module.modules())
    assert n_attn == (len(original.stages[3].blocks) if name in ATTENTION_VARIANTS else 0)


def _exported_ops(module, shape) -> list[str]:
    graph = torch.export.export(module, (torch.randn(shape),)).run_decompositions().graph
    return [getattr(n.target, "__name__", str(n.target)).split(".")[0] for n in graph.nodes if n.op == "call_function"]


def test_exported_graph_is_single_convs_and_one_residual_add_per_branch():
    """In the exported graph: no BatchNorm, and an add only for the residuals that remain (no branch sums)."""
    spec = at(SPECS["fastvit-sa12"], 128)
    original, _ = build_model(spec)
    prepared = get_converter("fastvit").prepare(original).module
    ops = _exported_ops(prepared, (1, 3, 128, 128))
    assert not [o for o in ops if "batch_norm" in o]
    blocks = [b for s in original.stages for b in s.blocks]
    repmixer = sum(isinstance(b, tfv.RepMixerBlock) for b in blocks)
    attention = sum(isinstance(b, tfv.AttentionBlock) for b in blocks)
    # RepMixer block: mixer + skip is one conv, one add for the MLP residual; attention block: two residuals
    assert ops.count("add") == repmixer + 2 * attention
    assert ops.count("sub") == 0 and ops.count("convolution") == sum(
        isinstance(m, torch.nn.Conv2d) for m in prepared.modules())


def _attention_case(dim=128, heads_dim=32, h=5, w=7, fused=True):
    torch.manual_seed(0)
    attn = tfv.Attention(dim, head_dim=heads_dim).eval()
    attn.fused_attn = fused
    norm = torch.nn.BatchNorm2d(dim).eval()
    norm.running_mean.normal_()
    norm.running_var.uniform_(0.5, 2)
    norm.weight.data.uniform_(0.5, 1.5)
    norm.bias.data.normal_()
    scale = tfv.LayerScale2d(dim, 1.0)
    scale.gamma.data.uniform_(0.5, 1)
    return attn, norm, scale, torch.randn(2, dim, h, w)


@pytest.mark.parametrize("fused", [True, False])
def test_attention_rewrite_equals_timm_attention(fused):
    attn, norm, scale, x = _attention_case(fused=fused)
    rewritten = channels_first_attention(attn, norm, scale).eval()
    with torch.no_grad():
        ref = scale(attn(norm(x)))
        out = rewritten(x)
        assert rel_l2(out, ref) <= 1e-6
        # without norm and layer scale, and a non-square map
        bare = channels_first_attention(attn).eval()
        assert rel_l2(bare(x), attn(x)) <= 1e-6
        # the attention matters: the same block with two heads swapped does not match
        broken = copy.deepcopy(bare)
        d = attn.head_dim
        w = broken.qkv.weight.data
        w[:d], w[d : 2 * d] = w[d : 2 * d].clone(), w[:d].clone()
        assert rel_l2(broken(x), attn(x)) > 1e-3


def test_attention_layout_ops_and_xnnpack_delegation():
    """MIL: 8 reshape/transpose per attention block before, 2 after; XNNPACK takes the whole graph."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    from edgevit.export.mil_inspect import attention_layout_counts

    spec = at(SPECS["fastvit-sa12"], 128)
    original, _ = build_model(spec)
    prepared = get_converter("fastvit").prepare(original).module
    x = torch.randn(1, 3, 128, 128)
    assert set(attention_layout_counts(original, x).values()) == {8}
    after = attention_layout_counts(prepared, x)
    assert len(after) == 2 and set(after.values()) == {2}
    # the attention stage (patch embedding, RepCPE, both attention blocks) on its own: lowering the whole model
    # takes ~30 s here; the slow test checks the whole model's .pte is one XNNPACK subgraph
    stage = prepared.stages[3]
    with torch.no_grad():
        stage_input = prepared.stages[:3](prepared.stem(x))
    edge = to_edge_transform_and_lower(torch.export.export(stage, (stage_input,)), partitioner=[XnnpackPartitioner()])
    info = get_delegation_info(edge.exported_program().graph_module)
    undelegated = {op: b.non_delegated for op, b in info.delegation_by_operator.items()
                   if b.non_delegated and op != "getitem"}
    assert info.num_delegated_subgraphs == 1 and undelegated == {}


# ------------------------------------------------------------------------------------------- checkpoints
# Apple's ml-fastvit (models/fastvit.py, models/modules/{mobileone,replknet}.py) keeps the stem as
# ``patch_embed``, a flat ``network`` list (per stage: [RepCPE], blocks, then the next stage's PatchEmbed),
# MobileOne branches ``rbr_conv``/``rbr_scale``/``rbr_skip``, large-kernel ``lkb_origin``/``small_conv``
# (fused: ``lkb_reparam``), RepCPE ``pe`` (fused: the module's own ``reparam_conv``), ``convffn``,
# ``conv_exp``, SE ``reduce``/``expand``, layer scales as bare parameters and ``head`` as the Linear.


def to_apple_layout(state: dict, model: tfv.FastVit) -> dict:
    """timm keys -> Apple's ml-fastvit keys (train-time or fused, whichever ``state`` is)."""
    network: dict[tuple[int, str], int] = {}
    idx = 0
    for s, stage in enumerate(model.stages):
        if s > 0:
            network[(s, "downsample")] = idx
            idx += 1
        if not isinstance(stage.pos_emb, torch.nn.Identity):
            network[(s, "pos_emb")] = idx
            idx += 1
        network[(s, "blocks")] = idx
        idx += 1
    out = {}
    for key, value in state.items():
        k = key
        m = re.match(r"stages\.(\d+)\.(downsample|pos_emb|blocks)\.(.*)", k)
        if m:
            s, part, rest = int(m.group(1)), m.group(2), m.group(3)
            n = network[(s, part)]
            if part == "pos_emb":
                rest = rest.replace("pos_enc.", "pe.")  # fused: network.N.reparam_conv
            elif part == "downsample":
                rest = re.sub(r"^proj\.0\.reparam_conv\.", "proj.0.lkb_reparam.", rest)
            k = f"network.{n}.{rest}"
        k = k.replace("stem.", "patch_embed.").replace("final_conv.", "conv_exp.")
        k = k.replace("conv_kxk", "rbr_conv").replace("conv_scale", "rbr_scale").replace(".identity.", ".rbr_skip.")
        k = k.replace("large_conv", "lkb_origin").replace(".mlp.", ".convffn.")
        k = k.replace("se.fc1", "se.reduce").replace("se.fc2", "se.expand")
        k = re.sub(r"(layer_scale(_\d)?)\.gamma$", r"\1", k)
        k = k.replace("head.fc.", "head.")
        out[k] = value
    return out


@pytest.fixture(scope="module")
def sa12():
    spec = at(SPECS["fastvit-sa12"], 160)
    original, _ = build_model(spec, seed=3)
    x = torch.randn(2, *spec.input_size, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        ref = original(x)
    return spec, original, x, ref


def test_apple_train_layout_loads(sa12, tmp_path):
    spec, original, x, ref = sa12
    apple = to_apple_layout(original.state_dict(), original)
    for key in ("patch_embed.0.rbr_conv.0.bn.running_mean", "patch_embed.0.rbr_scale.conv.weight",
                "patch_embed.2.rbr_skip.weight", "network.0.0.token_mixer.norm.rbr_skip.running_var",
                "network.0.0.token_mixer.mixer.rbr_conv.0.conv.weight", "network.0.0.token_mixer.layer_scale",
                "network.0.0.convffn.conv.bn.weight", "network.0.0.layer_scale",
                "network.1.proj.0.lkb_origin.conv.weight",
                "network.1.proj.0.small_conv.bn.bias", "network.6.pe.weight", "network.7.0.norm.running_mean",
                "network.7.0.token_mixer.qkv.weight", "network.7.1.layer_scale_2", "conv_exp.se.reduce.weight",
                "head.weight"):
        assert key in apple, key
    assert not is_reparameterized_checkpoint(apple)
    path = tmp_path / "fastvit_sa12.pth.tar"
    torch.save({"state_dict": apple}, path)
    loaded, info = build_model(spec, weights=path)
    assert info.source == "checkpoint" and unfused_modules_of_kind(loaded)
    with torch.no_grad():
        assert torch.equal(loaded(x), ref)


def test_timm_train_layout_loads(sa12, tmp_path):
    spec, original, x, ref = sa12
    path = tmp_path / "timm.pth"
    torch.save(original.state_dict(), path)
    loaded, _ = build_model(spec, weights=path)
    with torch.no_grad():
        assert torch.equal(loaded(x), ref)


@pytest.mark.parametrize("layout", ["apple", "timm"])
def test_reparam_checkpoint_builds_fused_model_and_converts(sa12, tmp_path, layout):
    """A ``_reparam`` checkpoint: detected, loaded into a model fused first, and the converter skips fusing."""
    spec, original, x, ref = sa12
    fused = reparameterize_model(copy.deepcopy(original))
    state = fused.state_dict()
    if layout == "apple":
        state = to_apple_layout(state, original)
        for key in ("patch_embed.0.reparam_conv.weight", "network.1.proj.0.lkb_reparam.weight",
                    "network.1.proj.1.reparam_conv.bias", "network.0.0.token_mixer.reparam_conv.weight",
                    "network.6.reparam_conv.weight", "network.7.0.norm.running_mean", "conv_exp.reparam_conv.weight",
                    "network.0.0.convffn.conv.bn.running_var"):
            assert key in state, key
    assert is_reparameterized_checkpoint(state)
    path = tmp_path / f"fastvit_sa12_reparam.{layout}.pth.tar"
    torch.save({"state_dict": state}, path)
    loaded, _ = build_model(spec, weights=path)
    assert unfused_modules_of_kind(loaded) == []  # built fused, as the checkpoint is
    with torch.no_grad():
        assert rel_l2(loaded(x), ref) <= 1e-5
    prepared = get_converter("fastvit").prepare(loaded)
    assert "already fused" in prepared.rewrites[0]
    assert unfused_modules(prepared.module) == []
    with torch.no_grad():
        assert rel_l2(prepared.module(x), ref) <= 1e-5


def test_reparam_detection_and_refusals(sa12):
    spec, original, _, _ = sa12
    train = original.state_dict()
    fused = reparameterize_model(copy.deepcopy(original)).state_dict()
    assert not is_reparameterized_checkpoint(train) and is_reparameterized_checkpoint(fused)
    assert is_reparameterized_checkpoint({"model": fused})  # wrapped
    with pytest.raises(ValueError, match="mixes"):
        is_reparameterized_checkpoint({**train, "stem.0.reparam_conv.weight": torch.zeros(1)})
    model = reparameterize_model(copy.deepcopy(original))
    with pytest.raises(ValueError, match="already reparameterized"):
        fastvit_checkpoint_filter(train, model)


def test_wrong_variant_checkpoint_is_refused(sa12, tmp_path):
    spec, original, _, _ = sa12
    path = tmp_path / "sa12.pth"
    torch.save(to_apple_layout(original.state_dict(), original), path)
    with pytest.raises(WeightsError, match="does not fit fastvit-t8"):
        build_model(SPECS["fastvit-t8"], weights=path)


def test_timm_filter_alone_misses_the_reparam_layouts(sa12):
    """Why fastvit_checkpoint_filter exists: timm's filter mangles fused checkpoints of both layouts."""
    _, original, _, _ = sa12
    fused = reparameterize_model(copy.deepcopy(original))
    expected = set(fused.state_dict())
    apple = to_apple_layout(fused.state_dict(), original)
    assert set(tfv.checkpoint_filter_fn(dict(apple), fused)) != expected
    assert set(tfv.checkpoint_filter_fn(dict(fused.state_dict()), fused)) != expected  # head.fc -> head.fc.fc
    assert set(fastvit_checkpoint_filter(apple, copy.deepcopy(original))) == expected


@pytest.mark.slow
@pytest.mark.parametrize("name", VARIANTS)
def test_convert_every_variant_to_every_target(name, tmp_path):
    """All 7 variants x CoreML / ExecuTorch / ONNX through edgevit.api.convert, validated against the original."""
    from edgevit.api import convert

    result = convert(name, ["coreml", "executorch", "onnx"], tmp_path)
    assert result.prepared_rel_l2 <= 1e-5
    attention_blocks = 2 * (name in ATTENTION_VARIANTS) * (3 if "36" in name else 2 if "24" in name else 1)
    assert result.mil_layout["model"]["after"] == 1 + 2 * attention_blocks  # classifier flatten + 2 per block
    for art in result.artifacts:
        if art.target in ("executorch", "onnx"):
            assert art.parity.status == "pass", art.parity.reason
        if art.target == "executorch":
            assert art.export_info["delegation"]["delegated_subgraphs"] == 1
            assert art.export_info["delegation"]["non_delegated_ops"] == {}


def test_fastvit_report_measures_every_form():
    """The per-variant report on T8: counts from the real models, latencies measured (never filled in)."""
    from edgevit.studies.zoo import fastvit_report, fastvit_report_markdown

    (row,) = fastvit_report(["fastvit-t8"], iterations=18, warmup=1, mil=False)  # the fair protocol's minimum
    assert row["params_prepared"] < row["params_original"]  # the folded branches are gone
    assert 0 < row["flops_prepared"] < row["flops_original"]
    assert row["prepared_rel_l2"] < 1e-5 and row["unfused_modules"] == 0
    for form in ("original-eager", "prepared-eager", "executorch", "executorch-unfused", "onnx"):
        assert row["latency_ms"][form] > 0, form
    assert all(v > 0 for v in row["paired_ms"].values()) and len(row["paired_ms"]) == 4
    for pair in ("eager", "pte"):  # unfused / fused time with its interval, by the fair protocol
        fair = row["paired_ratio"][pair]
        assert 0 < fair["ci_low"] <= fair["ratio"] <= fair["ci_high"] and fair["rounds"] == 6
    assert "| fastvit-t8 |" in fastvit_report_markdown([row])
