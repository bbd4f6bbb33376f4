"""TurboViT: the paper's architectural constraints, the compute budget, and the documented comparison table."""

from __future__ import annotations

import re

import pytest
import timm
import torch
from timm.models.hiera import Hiera

import edgevit.models.turbovit as turbovit_module
from converters.hiera import plan_blocks
from edgevit.models.turbovit import TURBOVIT_CFG, model_complexity, seed_comparison, turbovit


@pytest.fixture(scope="module")
def model() -> Hiera:
    return turbovit().eval()


def block_dims(model: Hiera) -> list[int]:
    return [block.dim_out for block in model.blocks]


def pool_blocks(model: Hiera) -> list[int]:
    return [i for i, block in enumerate(model.blocks) if block.attn.q_stride > 1]


def test_forward_shape_and_num_classes():
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert turbovit().eval()(x).shape == (2, 1000)
        assert turbovit(num_classes=10).eval()(x).shape == (2, 10)


def test_compute_budget_at_224(model):
    stats = model_complexity(model, 224)
    assert stats["macs"] <= 2.5e9  # the paper's "FLOPs" are multiply-adds
    assert stats["flops"] == 2 * stats["macs"]
    assert stats["params"] <= 12.7e6  # ">2.47x smaller than FasterViT-0" (31.4M)


def test_flop_count_includes_attention():
    """Fused CPU SDPA reports 0 FLOPs; model_complexity must count attention like the unfused path does."""
    small = dict(img_size=64, embed_dim=16, stages=(1, 1, 1, 1), mask_unit_size=(4, 4))
    fused, unfused = Hiera(**small), Hiera(**small)
    for module in unfused.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = False
    assert model_complexity(fused, 64)["flops"] == model_complexity(unfused, 64)["flops"]


def test_condensation_after_the_first_block(model):
    dims = block_dims(model)
    assert dims[1] <= dims[0] // 2  # the 2nd block is much narrower than the 1st
    later = dims[1:]
    assert later == sorted(later) and later[-1] > dims[0]  # then widths grow again


def test_three_q_pools(model):
    pools = pool_blocks(model)
    assert len(pools) == 3
    plans = plan_blocks(model)
    assert [plans[i].stride for i in pools] == [(2, 2)] * 3  # spatial query reduction, 56 -> 28 -> 14 -> 7
    grid = model.forward_intermediates(torch.zeros(1, 3, 224, 224), intermediates_only=True)
    assert [g.shape[-1] for g in grid] == [56, 28, 14, 7]


def test_mask_unit_attention_then_global(model):
    kinds = [block.attn.use_mask_unit_attn for block in model.blocks]
    first_global = kinds.index(False)
    assert first_global > 0 and not any(kinds[first_global:])
    assert all(plan.windows == (7, 7) for plan in plan_blocks(model)[:first_global])


def test_most_layers_after_the_second_q_pool(model):
    second = pool_blocks(model)[1]
    assert len(model.blocks) - second > len(model.blocks) / 2


def test_low_head_counts(model):
    heads = [block.attn.heads for block in model.blocks]
    hiera_heads = [block.attn.heads for block in timm.create_model("hiera_tiny_224").blocks]
    assert max(heads) <= 4 and sum(heads) < sum(hiera_heads)


def test_config_overrides_reach_hiera():
    small = turbovit(img_size=64, stage_dims=(32, 8, 16, 32), stage_heads=(1, 1, 2, 2), stages=(1, 1, 2, 1))
    assert block_dims(small) == [32, 8, 16, 16, 32] and small.tokens_spatial_shape == [16, 16]
    with pytest.raises(ValueError):
        turbovit(stage_dims=(96, 96, 256, 512))  # a Q-pool without a width change: timm would not pool


def test_docstring_table_row_for_turbovit(model):
    stats = model_complexity(model)
    row = _docstring_rows()["turbovit"]
    assert row == (round(stats["params"] / 1e6, 2), round(stats["flops"] / 1e9, 2), round(stats["macs"] / 1e9, 2))
    assert TURBOVIT_CFG["stages"] == (1, 2, 7, 2)


@pytest.mark.slow
def test_seed_comparison_matches_docstring():
    rows = seed_comparison()
    documented = _docstring_rows()
    assert [r["model"] for r in rows] == list(documented)
    for r in rows:
        assert documented[r["model"]] == (
            round(r["params"] / 1e6, 2),
            round(r["flops"] / 1e9, 2),
            round(r["macs"] / 1e9, 2),
        )


def _docstring_rows() -> dict[str, tuple[float, float, float]]:
    table = turbovit_module.__doc__.split("seed_comparison()")[1]
    rows = re.findall(r"^(\w+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", table, flags=re.M)
    return {name: (float(p), float(f), float(m)) for name, p, f, m in rows}
