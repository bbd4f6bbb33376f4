"""TurboViT (Wong, Abbasi, Nair, "TurboViT: Generating Fast Vision Transformers via Generative Architecture
Search", arXiv:2308.11421, 2023), built from timm's Hiera.

No official code or configuration is public. The paper describes the generated design only qualitatively:
a hierarchical ViT around Hiera's mask-unit attention and Q-pooling, with mask-unit attention early and
global attention late, Q-pooling at three places, a hidden-dimension condensation right after the first
block, low head counts, most layers after the second Q-pooling, and <= 2.5 GFLOPs at 224x224. Its abstract
gives two ratios that bound the size: ">2.47x smaller than FasterViT-0" (31.4M params -> <= 12.7M) and
">3.4x fewer FLOPs than MobileViTv2-2.0" (7.5 GFLOPs, a multiply-add counted once -> <= 2.2 GMACs).

Configuration (``TURBOVIT_CFG``) and the constraint each choice meets:

=====================  ============================  ================================================
knob                   value                         why
=====================  ============================  ================================================
patch embed            7x7 conv, stride 4            Hiera's stem: 56x56 tokens at 224
stages (blocks)        (1, 2, 7, 2) = 12 blocks      stage 0 is the single block before condensation;
                                                     9 of 12 blocks come after the 2nd Q-pool ("most
                                                     layers after the 2nd Q-pooling")
stage_dims             (96, 48, 256, 512)            block 2 (48) is half as wide as block 1 (96): the
                                                     condensation; then widths grow again (256, 512)
stage_heads            (1, 1, 2, 4)                  low head counts (Hiera-T: 1, 2, 4, 8)
q_pool, q_stride       3, (2, 2)                     Q-pooling at 3 places: blocks 1, 3 and 10 (the
                                                     first block of stages 1-3), 56->28->14->7 tokens
mask_unit_size         (8, 8)                        7x7 mask units of 8x8 tokens at 56x56
mask_unit_attn         (True, True, False, False)    mask-unit attention in blocks 0-3 (timm lags the
                                                     switch by one block), global in blocks 4-11
mlp_ratio              4                             Hiera default
=====================  ============================  ================================================

timm's Hiera scales widths and heads by a constant ``dim_mul``/``head_mul`` at every stage, so it cannot
shrink and then grow. ``TurboViT`` therefore lets timm build the whole network (strides, mask units,
Q-pool placement, unroll/reroll, head) with constant widths, then swaps each block for a ``HieraBlock``
with the per-stage width and heads, keeping timm's attention type, window size and Q-stride for it.
That is the only custom code: every layer is timm's, and converters/hiera.py sees a plain ``Hiera``.

Complexity is counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls, convolutions and
attention; norms, softmax and activations are not counted, as in fvcore/the papers). FlopCounterMode
counts a multiply-add as 2 FLOPs; papers quote multiply-adds as "FLOPs", so the budget is checked on
GMACs = FLOPs / 2 <= 2.5 (both are reported). On CPU, fused SDPA reports 0 FLOPs to FlopCounterMode, so
counting runs with the math SDPA backend, which shows attention as counted matmuls.

Measured by ``seed_comparison()`` (random weights, batch 1, 224x224 for every model so the rows compare;
FastViT counted after reparameterisation, SwiftFormer/EfficientFormerV2 with both heads timm evaluates;
mobilevitv2_200's own resolution is 256, where it costs 7.16 GMACs). "smaller"/"cheaper": TurboViT has
fewer params/MACs than that model.

=====================  ========  ======  =====  ====================
model                  params M  GFLOPs  GMACs  TurboViT is
=====================  ========  ======  =====  ====================
turbovit               12.43     4.23    2.12   -
hiera_tiny_224         27.91     9.80    4.90   smaller, cheaper
fastvit_sa24           21.50     5.76    2.88   smaller, cheaper
fastvit_sa12           11.55     2.96    1.48   larger, costlier
swiftformer_l1         12.06     3.19    1.60   larger, costlier
efficientformerv2_s2   12.71     2.49    1.25   smaller, costlier
mobilevitv2_200        18.45     11.15   5.58   smaller, cheaper
=====================  ========  ======  =====  ====================

TurboViT meets the budget (2.12 GMACs <= 2.5) and the paper-implied bounds (12.43M <= 12.7M params,
2.12 <= 2.2 GMACs). The numbers are architecture only: no TurboViT weights exist, so no accuracy is claimed.
"""

from __future__ import annotations

from functools import partial

from timm.layers import ClNormMlpClassifierHead, get_norm_layer, init_weight_vit
from timm.models import create_model, reparameterize_model
from timm.models._manipulate import named_apply
from timm.models.hiera import Hiera, HieraBlock
from torch import nn

TURBOVIT_CFG = dict(
    stages=(1, 2, 7, 2),
    stage_dims=(96, 48, 256, 512),
    stage_heads=(1, 1, 2, 4),
    q_pool=3,
    q_stride=(2, 2),
    mask_unit_size=(8, 8),
    mask_unit_attn=(True, True, False, False),
    mlp_ratio=4.0,
)

# timm seeds compared in the TurboViT paper's setting (efficient ViTs of similar accuracy) that timm has.
SEED_MODELS = (
    "hiera_tiny_224",
    "fastvit_sa24",
    "fastvit_sa12",
    "swiftformer_l1",
    "efficientformerv2_s2",
    "mobilevitv2_200",
)


class TurboViT(Hiera):
    """Hiera with a width and head count per stage (timm's Hiera only multiplies by a constant)."""

    def __init__(
        self,
        stage_dims: tuple[int, ...] = TURBOVIT_CFG["stage_dims"],
        stage_heads: tuple[int, ...] = TURBOVIT_CFG["stage_heads"],
        stages: tuple[int, ...] = TURBOVIT_CFG["stages"],
        q_pool: int = 3,
        mlp_ratio: float = 4.0,
        init_values: float | None = None,
        norm_layer: str | type[nn.Module] = "LayerNorm",
        use_expand_proj: bool = True,
        num_classes: int = 1000,
        global_pool: str = "avg",
        drop_rate: float = 0.0,
        head_init_scale: float = 0.001,
        **kwargs,
    ):
        if not len(stage_dims) == len(stage_heads) == len(stages):
            raise ValueError("stage_dims, stage_heads and stages need one entry per stage")
        super().__init__(
            embed_dim=stage_dims[0],
            num_heads=stage_heads[0],
            stages=stages,
            q_pool=q_pool,
            dim_mul=1.0,
            head_mul=1.0,
            mlp_ratio=mlp_ratio,
            init_values=init_values,
            norm_layer=norm_layer,
            use_expand_proj=use_expand_proj,
            num_classes=num_classes,
            global_pool=global_pool,
            drop_rate=drop_rate,
            **kwargs,
        )
        if any(stage_dims[s] == stage_dims[s + 1] for s in range(q_pool)):
            raise ValueError(
                "timm's HieraBlock pools the residual only where the width changes: "
                "give every Q-pooled stage a different width from the stage before"
            )
        norm = get_norm_layer(norm_layer)
        stage_of = [sum(end < i for end in self.stage_ends) for i in range(len(self.blocks))]
        for i, old in enumerate(self.blocks):
            stage, stage_in = stage_of[i], stage_of[max(i - 1, 0)]
            self.blocks[i] = HieraBlock(
                dim=stage_dims[stage_in],
                dim_out=stage_dims[stage],
                heads=stage_heads[stage],
                mlp_ratio=mlp_ratio,
                drop_path=getattr(old.drop_path1, "drop_prob", 0.0),
                init_values=init_values,
                norm_layer=norm,
                q_stride=old.attn.q_stride,
                window_size=old.attn.window_size,
                use_expand_proj=use_expand_proj,
                use_mask_unit_attn=old.attn.use_mask_unit_attn,
            )
        for info, dim in zip(self.feature_info, stage_dims, strict=True):
            info["num_chs"] = dim
        self.num_features = self.head_hidden_size = stage_dims[-1]
        self.head = ClNormMlpClassifierHead(
            stage_dims[-1], num_classes, pool_type=global_pool, drop_rate=drop_rate, norm_layer=norm, input_fmt="NLC"
        )
        # timm's Hiera initialisation, re-run for the swapped blocks and head.
        named_apply(partial(init_weight_vit, classifier_name="head.fc"), self)
        self.fix_init_weight()
        if isinstance(self.head.fc, nn.Linear):
            self.head.fc.weight.data.mul_(head_init_scale)
            self.head.fc.bias.data.mul_(head_init_scale)


def turbovit(num_classes: int = 1000, **kwargs) -> nn.Module:
    """TurboViT with ``TURBOVIT_CFG``; keyword arguments override it (and reach timm's Hiera)."""
    return TurboViT(num_classes=num_classes, **{**TURBOVIT_CFG, **kwargs})


def model_complexity(model: nn.Module, img_size: int = 224) -> dict:
    """Params and FLOPs of one 3x``img_size``^2 image; ``flops`` counts a multiply-add as 2, ``macs`` as 1."""
    from edgevit.models.complexity import count_flops

    flops = count_flops(model, (3, img_size, img_size))
    return dict(params=sum(p.numel() for p in model.parameters()), flops=flops, macs=flops // 2)


def seed_comparison(img_size: int = 224, seeds: tuple[str, ...] = SEED_MODELS) -> list[dict]:
    """Params/FLOPs of TurboViT and the timm seed models (random weights, no download), first row TurboViT.

    FastViT and other reparameterisable models are counted in their inference form.
    """
    ours = model_complexity(turbovit(), img_size)
    rows = [dict(model="turbovit", **ours, turbovit_smaller=None, turbovit_cheaper=None)]
    for name in seeds:
        model = reparameterize_model(create_model(name, pretrained=False).eval())
        stats = model_complexity(model, img_size)
        rows.append(
            dict(
                model=name,
                **stats,
                turbovit_smaller=ours["params"] < stats["params"],
                turbovit_cheaper=ours["macs"] < stats["macs"],
            )
        )
    return rows
