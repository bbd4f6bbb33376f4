"""SwiftFormer -> a plain inference graph: BatchNorm and layer scales folded, attention in 4D channels-first form.

timm's ``EfficientAdditiveAttention`` flattens the (B,C,H,W) map to tokens, permutes, applies ``nn.Linear``
layers and reshapes back: four layout ops per block in CoreML's MIL, and the layout shuffles are what mobile
accelerators handle worst. The rewrite keeps every tensor (B,C,H,W):

* query/key projections, ``proj`` and ``final`` become 1x1 convs;
* L2 normalisation of each token becomes normalisation over the channel axis (channel sum as a 1x1 conv);
* ``q @ w_g * scale`` becomes a 1x1 conv to one channel (scale folded into its weights);
* normalising the attention over tokens becomes a norm over H and W; the global query is a sum over H and W,
  and its broadcast over tokens is a plain broadcast multiply.

Everything else is folded: each BatchNorm into the conv before it (or the 1x1 conv / head after it), each
layer scale into the conv that produces its input, the two distilled heads into one linear.
"""

from __future__ import annotations

import torch
from timm.models import swiftformer as tsf
from torch import nn

from converters.base import Converter
from converters.rewrites import (
    ChannelL2Normalize,
    average_linears,
    column_to_conv1x1,
    fold_bn_after_conv,
    fold_bn_before_conv1x1,
    fold_bn_before_linear,
    fold_layer_scale,
    layer_scale_of,
    linear_to_conv1x1,
)
from converters.rewrites.channel_norms import L2_NORM_EPS
from edgevit.models.swiftformer import SoftmaxAdditiveAttention


class ResidualConvMixer(nn.Module):
    """ConvEncoder / LocalRepresentation after folding: x + pw2(act(pw1(dw(x)))), BN and layer scale folded."""

    def __init__(self, dwconv: nn.Conv2d, pwconv1: nn.Conv2d, act: nn.Module, pwconv2: nn.Conv2d):
        super().__init__()
        self.dwconv, self.pwconv1, self.act, self.pwconv2 = dwconv, pwconv1, act, pwconv2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pwconv2(self.act(self.pwconv1(self.dwconv(x))))


class ChannelsFirstAdditiveAttention(nn.Module):
    """Efficient additive attention on (B,C,H,W) with no reshape, permute, transpose, flatten or view.

    Sums over tokens are written as means (keepdim) times the token count, the form XNNPACK delegates:
    with attention a (B,1,H,W), sum_hw(a/||a|| * q) = sqrt(HW) * mean_hw(a*q) * rsqrt(max(mean_hw(a^2), eps^2/HW)).
    """

    def __init__(self, to_query: nn.Conv2d, to_key: nn.Conv2d, w_g: nn.Conv2d | None, proj: nn.Conv2d,
                 final: nn.Conv2d):
        super().__init__()
        self.to_query, self.to_key, self.w_g, self.proj, self.final = to_query, to_key, w_g, proj, final
        self.normalize = ChannelL2Normalize(to_query.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        query = self.normalize(self.to_query(x))
        key = self.normalize(self.to_key(x))
        tokens = float(x.shape[2] * x.shape[3])  # a float: an int scalar makes export insert a dtype copy
        if self.w_g is None:  # softmax form: every token weight is exactly 1
            global_query = query.mean(dim=(2, 3), keepdim=True) * tokens
        else:
            attn = self.w_g(query)  # (B,1,H,W); its normalisation over tokens is folded into the scale below
            inv_norm = torch.rsqrt((attn * attn).mean(dim=(2, 3), keepdim=True).clamp_min(L2_NORM_EPS**2 / tokens))
            global_query = (attn * query).mean(dim=(2, 3), keepdim=True) * inv_norm * tokens**0.5  # (B,D,1,1)
        return self.final(self.proj(global_query * key) + query)


class SwiftFormerEncoder(nn.Module):
    """One SwiftFormer encoder: local representation, attention, MLP; layer scales live in the convs."""

    def __init__(self, local: ResidualConvMixer, attn: ChannelsFirstAdditiveAttention, mlp: nn.Sequential):
        super().__init__()
        self.local_representation, self.attn, self.mlp = local, attn, mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.local_representation(x)
        x = x + self.attn(x)
        return x + self.mlp(x)


class PreparedSwiftFormer(nn.Module):
    """stem -> stages -> mean over H,W -> one linear head."""

    def __init__(self, stem: nn.Sequential, stages: nn.Sequential, head: nn.Linear):
        super().__init__()
        self.stem, self.stages, self.head = stem, stages, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        # keepdim + flatten: XNNPACK delegates this global pool; the flatten is the model's one layout op
        return self.head(x.mean(dim=(2, 3), keepdim=True).flatten(1))


def _mixer(block: tsf.ConvEncoder | tsf.LocalRepresentation, counts: dict[str, int]) -> ResidualConvMixer:
    counts["bn"] += 1
    counts["layer_scale"] += layer_scale_of(block.layer_scale) is not None
    return ResidualConvMixer(
        fold_bn_after_conv(block.dwconv, block.norm),
        block.pwconv1,
        block.act,
        fold_layer_scale(block.pwconv2, block.layer_scale),
    )


def _attention(attn: tsf.EfficientAdditiveAttention, layer_scale: nn.Module, counts: dict[str, int]):
    counts["attention"] += 1
    counts["linear"] += 4
    counts["layer_scale"] += layer_scale_of(layer_scale) is not None
    w_g = None if isinstance(attn, SoftmaxAdditiveAttention) else column_to_conv1x1(attn.w_g * attn.scale_factor)
    return ChannelsFirstAdditiveAttention(
        linear_to_conv1x1(attn.to_query),
        linear_to_conv1x1(attn.to_key),
        w_g,
        linear_to_conv1x1(attn.proj),
        fold_layer_scale(linear_to_conv1x1(attn.final), layer_scale),
    )


def _encoder(block: tsf.Block, counts: dict[str, int]) -> SwiftFormerEncoder:
    mlp = block.linear
    counts["bn"] += 1
    counts["layer_scale"] += layer_scale_of(block.layer_scale_2) is not None
    folded_mlp = nn.Sequential(
        fold_bn_before_conv1x1(mlp.norm1, mlp.fc1), mlp.act, fold_layer_scale(mlp.fc2, block.layer_scale_2)
    )
    local = _mixer(block.local_representation, counts)
    return SwiftFormerEncoder(local, _attention(block.attn, block.layer_scale_1, counts), folded_mlp)


def _stem(stem: nn.Sequential, counts: dict[str, int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    modules = list(stem)
    i = 0
    while i < len(modules):
        m = modules[i]
        if isinstance(m, nn.Conv2d) and i + 1 < len(modules) and isinstance(modules[i + 1], nn.BatchNorm2d):
            layers.append(fold_bn_after_conv(m, modules[i + 1]))
            counts["bn"] += 1
            i += 2
        else:
            layers.append(m)
            i += 1
    return nn.Sequential(*layers)


class SwiftFormerConverter(Converter):
    name = "swiftformer"

    def _rewrite(self, model: nn.Module, applied: list[str]) -> nn.Module:
        if not isinstance(model, tsf.SwiftFormer):
            raise TypeError(f"SwiftFormerConverter expects timm's SwiftFormer, got {type(model).__name__}")
        if model.global_pool != "avg":
            raise ValueError("only the classifier form (global_pool='avg') is supported")
        counts = {"bn": 0, "layer_scale": 0, "attention": 0, "linear": 0}
        stages = []
        for stage in model.stages:
            layers: list[nn.Module] = []
            if isinstance(stage.downsample, tsf.Embedding):
                layers.append(fold_bn_after_conv(stage.downsample.proj, stage.downsample.norm))
                counts["bn"] += 1
            for block in stage.blocks:
                if isinstance(block, tsf.Block):
                    layers.append(_encoder(block, counts))
                elif isinstance(block, tsf.ConvEncoder):
                    layers.append(_mixer(block, counts))
                else:
                    raise TypeError(f"unexpected SwiftFormer block {type(block).__name__}")
            stages.append(nn.Sequential(*layers))
        head = average_linears(model.head, model.head_dist)
        head = fold_bn_before_linear(model.norm, head)
        counts["bn"] += 1
        prepared = PreparedSwiftFormer(_stem(model.stem, counts), nn.Sequential(*stages), head)
        applied += [
            f"fold BatchNorm into neighbouring conv/linear: {counts['bn']}",
            f"fold layer scale into conv: {counts['layer_scale']}",
            f"additive attention -> 4D channels-first (no reshape/transpose): {counts['attention']}",
            f"nn.Linear on tokens -> 1x1 conv: {counts['linear']}",
            "distilled heads (head + head_dist) / 2 -> one linear: 1",
        ]
        return prepared
