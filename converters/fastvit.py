"""FastViT -> a plain inference graph: one conv per layer, no BatchNorm, channels-first attention.

FastViT (Vasu et al., ICCV 2023) trains with branches that exist only to be folded away:

* MobileOne blocks (stem, patch embeddings, ``final_conv``): k x k conv+BN branches, a 1x1 conv+BN "scale"
  branch and a BatchNorm "identity" branch, summed;
* RepMixer: ``x + gamma * (mixer(x) - norm(x))`` with two MobileOne blocks, i.e. a depthwise conv with a skip;
* the large-kernel convs of the patch embeddings (7x7 conv+BN plus 3x3 conv+BN);
* RepCPE (SA/MA stage 4): ``x + depthwise_conv(x)``;
* the ConvMlp's depthwise 7x7 conv+BN, the attention blocks' BatchNorm, and the layer scales.

timm's own ``reparameterize`` methods do the first four (the same algebra as Apple's ml-fastvit); this
converter runs them, then folds what they leave: the ConvMlp BatchNorm into its conv, each layer scale into
the 1x1 conv that produces its input, and the attention BatchNorm into the qkv projection. ``unfused_modules``
lists anything that survived; the converter refuses to return a model for which it is not empty.

The SA/MA stage-4 attention (timm ``Attention``: flatten, transpose, Linear qkv, reshape+permute into heads,
SDPA, transpose+reshape back, Linear, transpose+reshape to the map: seven layout ops per block) becomes
``ChannelsFirstTokenAttention``, following Apple's "Deploying Transformers on the Apple Neural Engine" principles:
qkv and proj are 1x1 convs on the (B,C,H,W) map; the only layout ops are one reshape that splits the qkv
channels into (3*heads, head_dim) with tokens on the last axis, and one reshape back to (B,C,H,W); all heads are
attended at once by two batched matmuls in rank-4 tensors (the transposes they need are matmul operand flags
in CoreML's MIL, not separate ops); XNNPACK delegates the whole prepared graph.
"""

from __future__ import annotations

import torch
from timm.layers import ConvNormAct
from timm.models import fastvit as tfv
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from converters.base import Converter
from converters.rewrites import (
    fold_bn_after_conv,
    fold_bn_before_conv1x1,
    fold_layer_scale,
    layer_scale_of,
    linear_to_conv1x1,
)
from edgevit.models.fastvit import TRAIN_TIME_MODULES, is_fused, reparameterize_fastvit

# --------------------------------------------------------------------------------------------------- checks


def unfused_modules(model: nn.Module) -> list[str]:
    """Every module of ``model`` that is not a single inference op yet, as ``"path (reason)"``.

    Flags BatchNorm layers (folded nowhere), train-time branches (MobileOne / RepMixer / large-kernel /
    RepCPE modules not reparameterized), ConvNormAct with a norm, and layer scales left as multiplies.
    Empty for a fully prepared FastViT.
    """
    found: list[str] = []
    for name, module in model.named_modules():
        path = name or "<root>"
        if isinstance(module, _BatchNorm):
            found.append(f"{path} ({type(module).__name__}: BatchNorm not folded)")
        elif isinstance(module, TRAIN_TIME_MODULES) and not is_fused(module):
            found.append(f"{path} ({type(module).__name__}: train-time branches not reparameterized)")
        elif isinstance(module, tfv.LayerScale2d):
            found.append(f"{path} (LayerScale2d: layer scale not folded)")
        elif isinstance(module, ConvNormAct) and not isinstance(module.bn, nn.Identity):
            found.append(f"{path} (ConvNormAct: norm not folded)")
    return found


def layout_modules(model: nn.Module) -> list[str]:
    """Token-layout attention blocks (timm's flatten/transpose ``Attention``) left in ``model``."""
    return [name for name, m in model.named_modules() if isinstance(m, tfv.Attention)]


# ------------------------------------------------------------------------------------- prepared modules


class ChannelsFirstTokenAttention(nn.Module):
    """timm FastViT ``Attention`` on the (B,C,H,W) map: 1x1-conv projections, heads batched in rank 4.

    qkv: (B,3C,H,W) -> reshape (B, 3*heads, head_dim, N) -> q, k, v (B, heads, head_dim, N) as channel slices;
    attn = softmax(q^T k) over keys (B, heads, N, N); out = v attn^T (B, heads, head_dim, N) -> reshape (B,C,H,W).
    The softmax scale is folded into the q rows of the qkv conv, a preceding BatchNorm into all of it.

    Why einsum and channel slices: in CoreML's MIL both become plain ``matmul`` (transposes as operand flags)
    and ``slice_by_index``, 2 reshapes per block in all; ``torch.matmul`` on rank-4 operands exports as
    ``expand`` + ``bmm``, and the expand copies stay off XNNPACK (measured: 3 delegate subgraphs per block
    instead of 1), as does ``chunk``'s ``split_with_sizes``. Per-head loops (Apple's ANE reference) give the
    same 2 reshapes but 16x the matmul/softmax ops.
    """

    def __init__(self, qkv: nn.Conv2d, proj: nn.Conv2d, num_heads: int, head_dim: int):
        super().__init__()
        self.qkv, self.proj = qkv, proj
        self.num_heads, self.head_dim = num_heads, head_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        heads = self.num_heads
        qkv = self.qkv(x).reshape(b, 3 * heads, self.head_dim, h * w)
        q, k, v = qkv[:, :heads], qkv[:, heads : 2 * heads], qkv[:, 2 * heads :]
        attn = torch.einsum("bhdq,bhdk->bhqk", q, k).softmax(dim=-1)  # (B, heads, N_q, N_k)
        out = torch.einsum("bhdk,bhqk->bhdq", v, attn)  # (B, heads, head_dim, N_q)
        return self.proj(out.reshape(b, c, h, w))


class FusedRepMixerBlock(nn.Module):
    """RepMixerBlock after folding: the RepMixer is one depthwise conv (its skip inside), then x + mlp(x)."""

    def __init__(self, token_mixer: nn.Conv2d, mlp: nn.Sequential):
        super().__init__()
        self.token_mixer, self.mlp = token_mixer, mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.token_mixer(x)
        return x + self.mlp(x)


class FusedAttentionBlock(nn.Module):
    """AttentionBlock after folding: x + attn(x), then x + mlp(x); BatchNorm and layer scales in the convs."""

    def __init__(self, token_mixer: ChannelsFirstTokenAttention, mlp: nn.Sequential):
        super().__init__()
        self.token_mixer, self.mlp = token_mixer, mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.token_mixer(x)
        return x + self.mlp(x)


class PreparedFastViT(nn.Module):
    """stem -> stages -> final conv -> mean over H,W -> linear."""

    def __init__(self, stem: nn.Sequential, stages: nn.Sequential, final_conv: nn.Sequential, head: nn.Linear):
        super().__init__()
        self.stem, self.stages, self.final_conv, self.head = stem, stages, final_conv, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_conv(self.stages(self.stem(x)))
        # keepdim + flatten: the global pool form XNNPACK delegates; the flatten is the classifier's one layout op
        return self.head(x.mean(dim=(2, 3), keepdim=True).flatten(1))


# ------------------------------------------------------------------------------------------------ glue


def _plain(*modules: nn.Module) -> list[nn.Module]:
    return [m for m in modules if not isinstance(m, (nn.Identity, nn.Dropout))]


def _conv_block(block: nn.Module) -> list[nn.Module]:
    """A fused MobileOneBlock / ReparamLargeKernelConv as its ops: conv, squeeze-excite, activation."""
    if not is_fused(block):
        raise RuntimeError(f"{type(block).__name__} was not reparameterized")
    return _plain(block.reparam_conv, block.se, block.act)


def _mlp(mlp: tfv.ConvMlp, layer_scale: nn.Module, counts: dict[str, int]) -> nn.Sequential:
    """ConvMlp: depthwise conv + BN folded, fc1, act, fc2 with the block's layer scale folded in."""
    conv = mlp.conv
    dw = fold_bn_after_conv(conv.conv, conv.bn) if isinstance(conv.bn, _BatchNorm) else conv.conv
    counts["bn"] += isinstance(conv.bn, _BatchNorm)
    if not isinstance(getattr(conv.bn, "act", nn.Identity()), nn.Identity):
        raise ValueError("ConvMlp with an activation after its norm is not a FastViT classifier variant")
    counts["layer_scale"] += layer_scale_of(layer_scale) is not None
    fc2 = fold_layer_scale(mlp.fc2, layer_scale)
    return nn.Sequential(*_plain(dw, mlp.fc1, mlp.act, fc2))


def channels_first_attention(attn: tfv.Attention, norm: nn.Module | None = None,
                             layer_scale: nn.Module | None = None) -> ChannelsFirstTokenAttention:
    """timm ``Attention`` (with the BatchNorm before it and the layer scale after it) -> ChannelsFirstTokenAttention."""
    dim = attn.qkv.in_features
    qkv = linear_to_conv1x1(attn.qkv)
    if norm is not None and not isinstance(norm, nn.Identity):
        if not isinstance(norm, nn.BatchNorm2d):
            raise ValueError(f"only a BatchNorm before the attention can be folded, got {type(norm).__name__}")
        qkv = fold_bn_before_conv1x1(norm, qkv)
    if qkv.bias is None:
        qkv.bias = nn.Parameter(torch.zeros(qkv.out_channels))
    qkv.weight.data[:dim] *= attn.scale  # q * scale, as SDPA applies it
    qkv.bias.data[:dim] *= attn.scale
    proj = linear_to_conv1x1(attn.proj)
    proj = fold_layer_scale(proj, layer_scale)
    return ChannelsFirstTokenAttention(qkv, proj, attn.num_heads, attn.head_dim)


def _block(block: nn.Module, counts: dict[str, int]) -> nn.Module:
    if isinstance(block, tfv.RepMixerBlock):
        if not is_fused(block.token_mixer):
            raise RuntimeError("RepMixer was not reparameterized")
        counts["repmixer"] += 1
        return FusedRepMixerBlock(block.token_mixer.reparam_conv, _mlp(block.mlp, block.layer_scale, counts))
    if isinstance(block, tfv.AttentionBlock):
        counts["attention"] += 1
        counts["bn"] += isinstance(block.norm, _BatchNorm)
        counts["layer_scale"] += layer_scale_of(block.layer_scale_1) is not None
        attn = channels_first_attention(block.token_mixer, block.norm, block.layer_scale_1)
        return FusedAttentionBlock(attn, _mlp(block.mlp, block.layer_scale_2, counts))
    raise TypeError(f"unexpected FastViT block {type(block).__name__}")


def _stage(stage: tfv.FastVitStage, counts: dict[str, int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    if isinstance(stage.downsample, tfv.PatchEmbed):
        for m in stage.downsample.proj:
            layers += _conv_block(m)
    if isinstance(stage.pos_emb, tfv.RepConditionalPosEnc):
        layers.append(stage.pos_emb.reparam_conv)
        counts["repcpe"] += 1
    layers += [_block(b, counts) for b in stage.blocks]
    return nn.Sequential(*layers)


class FastViTConverter(Converter):
    name = "fastvit"

    def _rewrite(self, model: nn.Module, applied: list[str]) -> nn.Module:
        if not isinstance(model, tfv.FastVit):
            raise TypeError(f"FastViTConverter expects timm's FastVit, got {type(model).__name__}")
        if model.fork_feat or not isinstance(model.head, tfv.ClassifierHead) or model.global_pool != "avg":
            raise ValueError("only the classifier form (global_pool='avg', fork_feat=False) is supported")
        reparam = reparameterize_fastvit(model)
        counts = {"bn": 0, "layer_scale": 0, "attention": 0, "repmixer": 0, "repcpe": 0}
        stem = nn.Sequential(*[op for m in model.stem for op in _conv_block(m)])
        stages = nn.Sequential(*[_stage(s, counts) for s in model.stages])
        final_conv = nn.Sequential(*_conv_block(model.final_conv))
        prepared = PreparedFastViT(stem, stages, final_conv, model.head.fc)
        left = unfused_modules(prepared)
        if left:
            raise RuntimeError(f"FastViT modules left unfused: {left}")
        applied += [
            f"reparameterize train-time branches (MobileOne, RepMixer, large-kernel conv, RepCPE): {reparam}"
            + (" (checkpoint was already fused)" if reparam == 0 else ""),
            f"RepMixer blocks -> one depthwise conv + MLP: {counts['repmixer']}",
            f"fold BatchNorm into neighbouring conv (ConvMlp, attention qkv): {counts['bn']}",
            f"fold layer scale into conv: {counts['layer_scale']}",
            f"attention -> 4D channels-first (1x1 convs, heads batched, 2 reshapes): {counts['attention']}",
        ]
        return prepared
