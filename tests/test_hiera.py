"""HieraConverter: the prepared model computes the original's function with rank<=4 tensors and fewer layout ops."""

from __future__ import annotations

import math

import pytest
import timm
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from timm.layers import LayerScale
from timm.models.hiera import Hiera
from torch import nn

from converters.hiera import HieraConverter, UnsupportedHieraError, plan_blocks
from edgevit.export.mil_inspect import inspect_mil
from edgevit.models.turbovit import TurboViT, turbovit


def mil_before_after(model: nn.Module, example: torch.Tensor) -> dict:
    """MIL max rank, layout-op count and op histogram of ``model`` and of its prepared form."""
    prepared = HieraConverter().prepare(model).module
    return {
        "original": inspect_mil(model.eval(), example).to_json(),
        "prepared": inspect_mil(prepared, example).to_json(),
    }


@torch.no_grad()
def nontrivial_(model: Hiera, seed: int = 0) -> Hiera:
    """Weights under which every block, head and position counts (timm's init makes all of them near-trivial).

    Linears get std 1/sqrt(fan_in) so attention logits are O(1) (q-pooling and windows change the output),
    norms and layer scales are far from identity/zero, the position embedding is large, the head has std ~1.
    """
    gen = torch.Generator().manual_seed(seed)

    def draw(t: torch.Tensor, std: float, mean: float = 0.0) -> None:
        t.copy_(mean + std * torch.randn(t.shape, generator=gen, dtype=t.dtype))

    for name, module in model.named_modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)):
            fan_in = module.weight[0].numel()
            draw(module.weight, 1.0 if name.startswith("head") else fan_in**-0.5)
            draw(module.bias, 0.1)
        elif isinstance(module, nn.LayerNorm):
            draw(module.weight, 0.2, 1.0)
            draw(module.bias, 0.2)
        elif isinstance(module, LayerScale):
            draw(module.gamma, 0.2, 1.0)
    for name in ("pos_embed", "pos_embed_win"):
        if getattr(model, name, None) is not None:
            draw(getattr(model, name), 0.5)
    return model.eval()


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def assert_same_function(model: Hiera, batch: int = 2, seed: int = 0, exact: bool = True) -> None:
    """fp32 within 1e-5 relative L2 (the contract); with ``exact``, fp64 to rounding (the rewrite is exact)."""
    size = [s * p for s, p in zip(model.tokens_spatial_shape, model.patch_stride, strict=True)]
    x = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(seed))
    prepared = HieraConverter().prepare(model).module
    with torch.no_grad():
        assert rel_l2(prepared(x), model(x)) < 1e-5
        if not exact:
            return
        model64 = model.double()
        try:
            prepared64 = HieraConverter().prepare(model64).module
            assert rel_l2(prepared64(x.double()), model64(x.double())) < 1e-10
        finally:
            model.float()


def small_hiera(**kwargs) -> Hiera:
    cfg = dict(img_size=(64, 64), embed_dim=16, num_heads=1, stages=(1, 2, 2, 1), mask_unit_size=(4, 4))
    return Hiera(**{**cfg, **kwargs}).eval()


def small_turbovit(**kwargs) -> TurboViT:
    cfg = dict(img_size=(64, 64), stages=(1, 1, 3, 1), stage_dims=(32, 8, 16, 32), stage_heads=(1, 1, 2, 2))
    return turbovit(**{**cfg, **kwargs}).eval()


# --- the two real models -------------------------------------------------------------------------------


def test_plan_of_hiera_tiny_is_spatial():
    plans = plan_blocks(timm.create_model("hiera_tiny_224"))
    assert [i for i, p in enumerate(plans) if p.stride != (1, 1)] == [1, 3, 10]
    assert all(p.stride == (2, 2) for p in plans if p.stride != (1, 1))
    assert [p.windows for p in plans[:4]] == [(7, 7)] * 4  # 7x7 mask units, through two Q-pools
    assert all(p.windows is None for p in plans[4:])


@pytest.mark.parametrize(
    "build", [lambda **kw: timm.create_model("hiera_tiny_224", **kw), turbovit], ids=["hiera_tiny_224", "turbovit"]
)
def test_prepared_equals_original_at_224(build):
    assert_same_function(nontrivial_(build()), exact=build is turbovit)


@pytest.mark.parametrize("img_size", [256, (224, 288), pytest.param(192, marks=pytest.mark.slow)])
def test_prepared_equals_original_at_other_built_sizes(img_size):
    """Hiera's absolute position embedding fixes the input size at build time; each built size converts."""
    model = nontrivial_(timm.create_model("hiera_tiny_224", img_size=img_size))
    assert_same_function(model, batch=1, exact=False)


def test_a_hiera_accepts_only_its_built_size():
    with pytest.raises(RuntimeError):
        timm.create_model("hiera_tiny_224").eval()(torch.zeros(1, 3, 256, 256))


def test_turbovit_at_256_converts():
    assert_same_function(nontrivial_(turbovit(img_size=256)), batch=1, exact=False)


def test_rewrites_are_listed_and_the_original_is_untouched():
    model = nontrivial_(small_hiera())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    prepared = HieraConverter().prepare(model)
    assert any("MaxPool2d" in r for r in prepared.rewrites) and any("window" in r for r in prepared.rewrites)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(isinstance(m, nn.Linear) for m in prepared.module.blocks.modules())


# --- what the converter refuses ---------------------------------------------------------------------------


def test_refuses_non_hiera_and_non_spatial_orders():
    with pytest.raises(UnsupportedHieraError):
        HieraConverter().prepare(nn.Linear(2, 2))
    model = small_hiera()
    model.unroll = nn.Identity()  # raster order: timm's "mask units" would be strided, not rectangles
    with pytest.raises(UnsupportedHieraError):
        plan_blocks(model)


# --- random configurations --------------------------------------------------------------------------------


@st.composite
def hiera_configs(draw):
    """Small image Hiera configurations timm accepts: strides, mask units, Q-pools, widths, heads, options."""
    q_stride = draw(st.sampled_from([(2, 2), (1, 2), (2, 1), (3, 3)]))
    num_stages = draw(st.integers(2, 4))
    unrolls = num_stages - 1
    mask_unit = tuple(s ** draw(st.integers(0, unrolls)) for s in q_stride)
    grid = tuple(s**unrolls * draw(st.integers(1, 2)) for s in q_stride)
    assume(math.prod(grid) <= 256)
    patch = draw(st.sampled_from([2, 4]))
    heads, head_dim = draw(st.sampled_from([1, 2])), draw(st.sampled_from([4, 8]))
    dim_mul, head_mul = draw(st.sampled_from([1.0, 2.0])), draw(st.sampled_from([1.0, 2.0]))
    assume(all(head_dim * dim_mul**t % head_mul**t == 0 for t in range(num_stages)))  # whole head dims
    return dict(
        img_size=tuple(g * patch for g in grid),
        patch_kernel=(2 * patch - 1,) * 2,
        patch_stride=(patch,) * 2,
        patch_padding=(patch - 1,) * 2,
        embed_dim=heads * head_dim,
        num_heads=heads,
        dim_mul=dim_mul,
        head_mul=head_mul,
        stages=tuple(draw(st.integers(1, 2)) for _ in range(num_stages)),
        q_pool=draw(st.integers(0, unrolls)),
        q_stride=q_stride,
        mask_unit_size=mask_unit,
        mask_unit_attn=tuple(draw(st.booleans()) for _ in range(num_stages)),
        use_expand_proj=draw(st.booleans()) or dim_mul != 2.0,
        mlp_ratio=draw(st.sampled_from([1.0, 2.0, 4.0])),
        init_values=draw(st.sampled_from([None, 0.5])),
        global_pool=draw(st.sampled_from(["avg", "max", "avgmax"])),
        abs_win_pos_embed=draw(st.booleans()),
        num_classes=draw(st.sampled_from([0, 7])),
    )


def _runs(model: Hiera) -> bool:
    """timm builds configurations it cannot run (mask units pooled below one token, Q-pooling without a
    width change, which only broadcasts when one token is left); those are not conversions to check."""
    if any(b.attn.q_stride > 1 and not b.do_expand for b in model.blocks):
        return False
    size = [s * p for s, p in zip(model.tokens_spatial_shape, model.patch_stride, strict=True)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *size))
    except (RuntimeError, ZeroDivisionError):
        return False
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cfg=hiera_configs(), seed=st.integers(0, 2**16))
def test_random_hiera_configurations_convert_exactly(cfg, seed):
    model = Hiera(**cfg)
    assume(_runs(model))
    assert_same_function(nontrivial_(model, seed), seed=seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(
    dims=st.lists(st.sampled_from([4, 8, 16, 32]), min_size=4, max_size=4),
    heads=st.lists(st.sampled_from([1, 2]), min_size=4, max_size=4),
    stages=st.lists(st.integers(1, 2), min_size=4, max_size=4),
    mask_unit_attn=st.lists(st.booleans(), min_size=4, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_random_turbovit_configurations_convert_exactly(dims, heads, stages, mask_unit_attn, seed):
    """Per-stage widths (condensation included) and heads, as TurboViT uses them."""
    widths = [d * h for d, h in zip(dims, heads, strict=True)]
    assume(all(a != b for a, b in zip(widths, widths[1:], strict=False)))  # Q-pooled stages change width (timm)
    model = small_turbovit(
        stage_dims=tuple(widths),
        stage_heads=tuple(heads),
        stages=tuple(stages),
        mask_unit_attn=tuple(mask_unit_attn),
    )
    assert_same_function(nontrivial_(model, seed), seed=seed)


# --- CoreML MIL: rank and layout ops --------------------------------------------------------------------


@pytest.mark.parametrize("build", [small_hiera, small_turbovit], ids=["hiera", "turbovit"])
def test_prepared_mil_has_rank_at_most_4_and_fewer_layout_ops(build):
    model = build()
    stats = mil_before_after(model, torch.randn(1, 3, 64, 64))
    original, prepared = stats["original"], stats["prepared"]
    assert prepared["error"] is None
    assert prepared["max_rank"] <= 4
    assert original["error"] is not None or original["max_rank"] > 5
    assert original["error"] is not None or prepared["layout_ops"] < original["layout_ops"]


def test_original_cannot_become_an_ml_program_but_prepared_can():
    """CoreML's rank limit (5) rejects timm's unroll; the prepared model converts to an ML program."""
    import coremltools as ct

    from edgevit.export.mil_inspect import to_exported_program

    model, x = small_hiera(), torch.randn(1, 3, 64, 64)

    def convert(module: nn.Module):
        return ct.convert(
            to_exported_program(module, x),
            inputs=[ct.TensorType(name="x", shape=tuple(x.shape))],
            convert_to="mlprogram",
            minimum_deployment_target=ct.target.iOS17,
            skip_model_load=True,
        )

    with pytest.raises(ValueError, match="rank <= 5"):
        convert(model)
    convert(HieraConverter().prepare(model).module)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(cfg=hiera_configs())
def test_random_configurations_lower_to_rank_4_mil(cfg):
    model = Hiera(**cfg).eval()
    assume(_runs(model))
    size = [s * p for s, p in zip(model.tokens_spatial_shape, model.patch_stride, strict=True)]
    stats = mil_before_after(model, torch.randn(1, 3, *size))
    original, prepared = stats["original"], stats["prepared"]
    assert prepared["error"] is None and prepared["max_rank"] <= 4
    event(f"original rank {original['max_rank']}")
    if original["max_rank"] > 5:  # degenerate grids (a few tokens) lose their no-op unroll in coremltools
        assert prepared["layout_ops"] < original["layout_ops"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "build", [lambda: timm.create_model("hiera_tiny_224"), turbovit], ids=["hiera_tiny_224", "turbovit"]
)
def test_full_models_mil_numbers_in_docstring(build):
    stats = mil_before_after(build(), torch.randn(1, 3, 224, 224))
    assert (stats["original"]["max_rank"], stats["original"]["layout_ops"]) == (6, 93)
    assert (stats["prepared"]["max_rank"], stats["prepared"]["layout_ops"]) == (4, 59)


# --- ExecuTorch XNNPACK -----------------------------------------------------------------------------------


def _executorch_output(module: nn.Module, x: torch.Tensor, path) -> torch.Tensor:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    program = to_edge_transform_and_lower(
        torch.export.export(module, (x,)), partitioner=[XnnpackPartitioner()]
    ).to_executorch()
    path.write_bytes(program.buffer)
    return Runtime.get().load_program(str(path)).load_method("forward").execute([x])[0]


def test_prepared_small_turbovit_runs_on_executorch_xnnpack(tmp_path):
    model = nontrivial_(small_turbovit())
    x = torch.randn(1, 3, 64, 64)
    out = _executorch_output(HieraConverter().prepare(model).module, x, tmp_path / "m.pte")
    with torch.no_grad():
        assert rel_l2(out, model(x)) < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize(
    "build", [lambda: timm.create_model("hiera_tiny_224"), turbovit], ids=["hiera_tiny_224", "turbovit"]
)
def test_prepared_full_models_run_on_executorch_xnnpack(build, tmp_path):
    model = nontrivial_(build())
    x = torch.randn(1, 3, 224, 224)
    out = _executorch_output(HieraConverter().prepare(model).module, x, tmp_path / "m.pte")
    with torch.no_grad():
        assert rel_l2(out, model(x)) < 1e-4
