"""converters.rewrites.attention: each rewrite computes what it replaces, and the rewritten model lowers to
fewer XNNPACK subgraphs."""

from __future__ import annotations

import copy
import warnings

import pytest
import timm
import torch
from support.numerics import rel_l2
from timm.layers.attention import Attention
from timm.models.efficientvit_msra import CascadedGroupAttention, LocalWindowAttention
from torch import nn

from converters.rewrites.attention import (
    CascadedGroupAttentionXnn,
    LocalWindowAttentionXnn,
    PatchMergingXnn,
    SwinBlockXnn,
    TokenAttentionXnn,
    rewrite_attention,
)


def scramble(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial weights everywhere: projections, biases, position-bias tables, norms, BatchNorm statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() == 1:  # norm scales near 1
                p.copy_(0.5 + torch.rand(p.shape, generator=g))
            elif p.dim() >= 2 and "bias" not in name:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 / p[0].numel() ** 0.5))
            else:  # biases, relative-position tables, attention biases
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    model.eval()  # (timm's CascadedGroupAttention.train returns None)
    return model


def check(original: nn.Module, x: torch.Tensor, expect_class: type | None = None, count: int | None = None):
    work = copy.deepcopy(original)
    with torch.no_grad():
        n = rewrite_attention(work)
        if isinstance(expect_class, type):
            assert any(isinstance(m, expect_class) for m in work.modules()), expect_class
        if count is not None:
            assert n == count
        want, got = original(x), work(x)
    assert rel_l2(got, want) <= 1e-5, rel_l2(got, want)
    return work


@pytest.mark.parametrize("fused", [True, False])
def test_vit_attention(fused):
    attn = scramble(Attention(48, num_heads=4, qkv_bias=True))
    attn.fused_attn = fused
    rewritten = check(attn, torch.randn(2, 17, 48), count=0)  # a bare module is not its own child
    holder = nn.Sequential(attn)
    rewritten = check(holder, torch.randn(2, 17, 48), TokenAttentionXnn, count=1)
    assert not any(isinstance(m, Attention) for m in rewritten.modules())


def test_vit_attention_with_qk_norm_is_left_alone():
    holder = nn.Sequential(Attention(32, num_heads=2, qk_norm=True, norm_layer=nn.LayerNorm))
    assert rewrite_attention(holder) == 0


def tiny_vit() -> nn.Module:
    return scramble(timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, patch_size=8,
                                      embed_dim=32, depth=2, num_heads=2, init_values=0.9))


def test_tiny_vit_whole_model():
    check(tiny_vit(), torch.randn(2, 3, 32, 32), TokenAttentionXnn, count=2)


def tiny_swin() -> nn.Module:
    # stage 1: 8x8 tokens in 4x4 windows (a shifted block), stage 2: 4x4 = one window (no shift)
    return scramble(timm.create_model("swin_tiny_patch4_window7_224", pretrained=False, img_size=32,
                                      window_size=4, embed_dim=16, depths=(2, 2), num_heads=(2, 4)))


def test_tiny_swin_whole_model():
    model = tiny_swin()
    assert any(any(b.shift_size) for b in model.layers[0].blocks)
    # 4 blocks + 1 patch merging
    check(model, torch.randn(2, 3, 32, 32), SwinBlockXnn, count=5)
    check(model, torch.randn(1, 3, 32, 32), SwinBlockXnn, count=5)  # batch 1: the bias adds without a view


def test_swin_patch_merging():
    from timm.models.swin_transformer import PatchMerging

    merge = scramble(PatchMerging(8))
    work = PatchMergingXnn(merge)
    x = torch.randn(2, 6, 10, 8)
    with torch.no_grad():
        assert rel_l2(work(x), merge(x)) <= 1e-6
        odd = torch.randn(1, 5, 7, 8)
        assert rel_l2(work(odd), merge(odd)) <= 1e-6


def test_swin_untiled_block_is_left_alone():
    from timm.models.swin_transformer import SwinTransformerBlock

    block = SwinTransformerBlock(16, (10, 10), num_heads=2, window_size=4, shift_size=2)
    assert rewrite_attention(nn.Sequential(block)) == 0


def test_cascaded_group_attention():
    cga = scramble(CascadedGroupAttention(32, key_dim=8, num_heads=4, attn_ratio=1, resolution=5, kernels=(3, 5, 3, 5)))
    work = CascadedGroupAttentionXnn(cga)
    x = torch.randn(2, 32, 5, 5)
    with torch.no_grad():
        assert rel_l2(work(x), cga(x)) <= 1e-5


@pytest.mark.parametrize("resolution", [4, 8, 9])  # one window; 2x2 windows; padded windows
def test_local_window_attention(resolution):
    lwa = scramble(LocalWindowAttention(32, key_dim=8, num_heads=4, attn_ratio=1, resolution=resolution,
                                        window_resolution=4, kernels=(3, 3, 3, 3)))
    x = torch.randn(2, 32, resolution, resolution)
    check(nn.Sequential(lwa), x, LocalWindowAttentionXnn, count=1)


def test_efficientvit_m0_whole_model():
    model = scramble(timm.create_model("efficientvit_m0", pretrained=False, img_size=128))
    check(model, torch.randn(1, 3, 128, 128), LocalWindowAttentionXnn)


def subgraphs(model: nn.Module, x: torch.Tensor) -> int:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(torch.export.export(model, (x,)), partitioner=[XnnpackPartitioner()])
    graph = edge.exported_program().graph_module.graph
    return sum(1 for n in graph.nodes if n.op == "call_function" and "executorch_call_delegate" in str(n.target))


def test_tiny_vit_lowers_to_fewer_subgraphs():
    model, x = tiny_vit(), torch.randn(1, 3, 32, 32)
    work = copy.deepcopy(model)
    rewrite_attention(work)
    before, after = subgraphs(model, x), subgraphs(work, x)
    assert after < before, (before, after)


@pytest.mark.slow
def test_tiny_swin_and_efficientvit_lower_to_fewer_subgraphs():
    for model, x in ((tiny_swin(), torch.randn(1, 3, 32, 32)),
                     (scramble(timm.create_model("efficientvit_m0", pretrained=False, img_size=128)),
                      torch.randn(1, 3, 128, 128))):
        work = copy.deepcopy(model)
        rewrite_attention(work)
        before, after = subgraphs(model, x), subgraphs(work, x)
        assert after < before, (type(model).__name__, before, after)


def test_efficientvit_m0_registry_model_in_float64():
    """The registry's EfficientViT-M0 with exercised weights is chaotic in fp32 (its convert parity is
    "inconclusive", tests/test_mil_parity.py): in float64 the generic converter, attention rewrite included, is
    exact up to float64 rounding."""
    from converters import CONVERTERS
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    spec = get_spec("efficientvit-m0")
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        original, _ = build_model(spec, seed=1)
        with torch.no_grad():  # attention biases large enough to matter
            for m in original.modules():
                if isinstance(m, CascadedGroupAttention):
                    m.attention_biases.normal_(0, 1.0)
            original.eval()
        prepared = CONVERTERS["generic"]().prepare(original)
        x = torch.randn(2, *spec.input_size, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            ref, out = original(x), prepared.module(x)
    finally:
        torch.set_default_dtype(default)
    assert any("attention" in r for r in prepared.rewrites)
    assert not any(isinstance(m, CascadedGroupAttention) for m in prepared.module.modules())
    assert ref.dtype == torch.float64 and rel_l2(out, ref) <= 1e-7
