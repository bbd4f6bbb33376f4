"""Any timm model -> inference graph: timm's own reparameterization, then conv->BatchNorm folding.

Only patterns whose order is certain are folded: conv followed by BatchNorm inside an ``nn.Sequential``,
and timm's ``ConvNormAct`` (conv, then norm-plus-activation). Single-group GroupNorms get their statistics
in two short reductions (``converters.rewrites.group_norm``: the one-pass sum of the XNNPACK lowering misses
fp32 parity on MobileViTv2-200). timm's ViT, Swin and EfficientViT (MSRA) attentions get a form with explicit
matmul + softmax, rank <= 4 tensors and constant position biases (``converters.rewrites.attention``: the
XNNPACK delegate takes them whole). Anything else is left as it is, so the
function never changes; per-model converters do the model-specific rewrites.
"""

from __future__ import annotations

from timm.layers import BatchNormAct2d, ConvNormAct
from timm.models import reparameterize_model
from torch import nn

from converters.base import Converter
from converters.rewrites import fold_bn_after_conv, replace_single_group_norms
from converters.rewrites.attention import rewrite_attention


def fold_sequential_conv_bn(model: nn.Module) -> int:
    """Fold every (Conv2d, BatchNorm2d) pair of consecutive children of an nn.Sequential; returns the count."""
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
            continue
        names = list(module._modules)
        for first, second in zip(names, names[1:], strict=False):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and type(bn) is nn.BatchNorm2d:
                module._modules[first] = fold_bn_after_conv(conv, bn)
                module._modules[second] = nn.Identity()
                folded += 1
    return folded


def fold_conv_norm_act(model: nn.Module) -> int:
    """timm's ConvNormAct: fold the BatchNorm into the conv, keep the activation (and drop layer)."""
    folded = 0
    for module in model.modules():
        if isinstance(module, ConvNormAct) and isinstance(module.bn, nn.BatchNorm2d):
            bn = module.bn
            module.conv = fold_bn_after_conv(module.conv, bn)
            if isinstance(bn, BatchNormAct2d):
                module.bn = nn.Sequential(bn.drop, bn.act)
            else:
                module.bn = nn.Identity()
            folded += 1
    return folded


class GenericConverter(Converter):
    name = "generic"
    # converters.rewrites.attention; off only to measure what it buys (docs/bench_attention_rewrites.py)
    attention = True

    def _rewrite(self, model: nn.Module, applied: list[str]) -> nn.Module:
        before = sum(1 for _ in model.modules())
        model = reparameterize_model(model, inplace=True)
        after = sum(1 for _ in model.modules())
        if after != before:
            applied.append(f"timm reparameterize_model: {before - after} modules fused away")
        seq = fold_sequential_conv_bn(model)
        cna = fold_conv_norm_act(model)
        if seq or cna:
            applied.append(f"fold BatchNorm into preceding conv: {seq + cna}")
        norms = replace_single_group_norms(model)
        if norms:
            applied.append(f"single-group GroupNorm -> two-level reductions (exact in fp32 on XNNPACK): {norms}")
        attentions = rewrite_attention(model) if self.attention else 0
        if attentions:
            applied.append(f"timm attention -> rank-4 matmul/softmax form, constant position bias (fewer XNNPACK "
                           f"partitions): {attentions}")
        return model
