"""timm's token-layout attentions in a form the ExecuTorch XNNPACK delegate takes whole.

Why: lowered as they are, each of these attentions splits the XNNPACK partition several times, and every
boundary costs a copy plus an op on ExecuTorch's portable kernels. Measured on the registry models before
these rewrites: DeiT-T 62 delegated subgraphs, Swin-T 77, EfficientViT-M0 80. What breaks the partition:

- ``F.scaled_dot_product_attention`` (timm's ``fused_attn``): it decomposes into mask logic
  (``logical_not``, ``any``, ``where``, ``full_like``) and rank-5 expands that XNNPACK does not take;
- the rank-5 ``reshape``/``permute``/``unbind`` of the fused qkv projection;
- Swin's ``torch.roll`` (shifted windows) and its rank-6 window partition / reverse / patch-merging permutes;
- relative-position-bias gathers (a table indexed with a buffer), in Swin and EfficientViT.

The replacements compute the same function with explicit ``bmm`` + ``softmax`` (no SDPA; ``bmm``, not ``@``,
whose decomposition leaves an ``expand_copy`` outside the delegate), one q, k, v Linear per head (rank-3
tensors, no head reshapes), at most rank-4 window reshapes and permutes, slices + ``cat`` instead of ``roll``,
and position biases (with Swin's shift mask) precomputed as constants. They are exact up to fp32 rounding
(tests/test_attention_rewrites.py) and use only ops every exporter here maps (CoreML, ExecuTorch, ONNX); the
CoreML program gets fewer reshape/transpose ops too (DeiT-T 50 -> 2, Swin-T 161 -> 109). After them the
breaks left are LayerNorms (``native_layer_norm`` is not delegated): DeiT-T 26 subgraphs, Swin-T 29,
EfficientViT-M0 1.

The precomputed bias is a frozen copy: the rewritten model is an inference graph for one input size, as
every converter output is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

__all__ = [
    "CascadedGroupAttentionXnn",
    "LocalWindowAttentionXnn",
    "PatchMergingXnn",
    "SwinBlockXnn",
    "TokenAttentionXnn",
    "WindowAttentionXnn",
    "rewrite_attention",
]


def _split_linear(linear: nn.Linear, parts: int) -> list[nn.Linear]:
    """A fused projection (out = parts * d) as ``parts`` Linears of d outputs each, weights copied."""
    d = linear.out_features // parts
    out = []
    for i in range(parts):
        piece = nn.Linear(linear.in_features, d, bias=linear.bias is not None)
        piece.weight = nn.Parameter(linear.weight.detach()[i * d:(i + 1) * d].clone(), requires_grad=False)
        if linear.bias is not None:
            piece.bias = nn.Parameter(linear.bias.detach()[i * d:(i + 1) * d].clone(), requires_grad=False)
        out.append(piece)
    return out


class _PerHeadProjections(nn.Module):
    """An attention's fused qkv Linear as one q, k and v Linear per head (rank-3 tensors, no head reshapes),
    with its scale and output projection: what the token and window forms below share."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        heads = attn.num_heads
        self.scale = attn.scale
        q, k, v = _split_linear(attn.qkv, 3)
        self.q = nn.ModuleList(_split_linear(q, heads))
        self.k = nn.ModuleList(_split_linear(k, heads))
        self.v = nn.ModuleList(_split_linear(v, heads))
        self.proj = attn.proj


class TokenAttentionXnn(_PerHeadProjections):
    """timm's ViT/DeiT ``Attention`` (``timm.layers.Attention``) with one q, k, v Linear per head.

    Per-head projections make every tensor rank 3 with no head reshapes at all: per head one transpose (k),
    two ``bmm`` and a softmax, then one ``cat`` of the heads before ``proj``. That suits both delegates: XNNPACK
    takes it whole, and the CoreML program has fewer reshape/transpose ops than timm's form (DeiT-T: 2 against
    50; the rank-4 head-batched form had 146). Only the plain form is taken (no qk-norm, scale-norm or gate;
    ``rewrite_attention`` checks).
    """

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:
        if attn_mask is not None or is_causal:
            raise NotImplementedError("TokenAttentionXnn is the unmasked inference form")
        outs = []
        for q, k, v in zip(self.q, self.k, self.v, strict=True):
            attn = torch.bmm(q(x) * self.scale, k(x).transpose(1, 2)).softmax(dim=-1)
            outs.append(torch.bmm(attn, v(x)))
        return self.proj(torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0])


class WindowAttentionXnn(_PerHeadProjections):
    """Swin's ``WindowAttention``, per-head Linears like ``TokenAttentionXnn``, with its relative position bias
    (and the block's shift mask) as constants, one (nW, N, N) per head (nW = 1 without a mask).

    Input (B * nW, N, C) windows. Where B = 1 (the exported graph) each head's bias adds straight to its
    (nW, N, N) scores; otherwise the scores are viewed as (B, nW, N, N) for the add.
    """

    def __init__(self, attn: nn.Module, mask: torch.Tensor | None):
        super().__init__(attn)
        with torch.no_grad():
            bias = attn._get_rel_pos_bias()[0].unsqueeze(1)  # (heads, 1, N, N)
            if mask is not None:  # (nW, N, N) of 0 / -100
                bias = bias + mask.to(bias.dtype).unsqueeze(0)  # (heads, nW, N, N)
        self.windows = bias.shape[1]
        for i in range(attn.num_heads):
            self.register_buffer(f"bias{i}", bias[i].detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bw, n, _ = x.shape
        outs = []
        for i, (q, k, v) in enumerate(zip(self.q, self.k, self.v, strict=True)):
            attn = torch.bmm(q(x) * self.scale, k(x).transpose(1, 2))  # (B*nW, N, N)
            bias = getattr(self, f"bias{i}")
            if bw == self.windows or self.windows == 1:
                attn = attn + bias
            else:
                attn = (attn.reshape(bw // self.windows, self.windows, n, n) + bias).reshape(bw, n, n)
            outs.append(torch.bmm(attn.softmax(dim=-1), v(x)))
        return self.proj(torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0])


def _roll2d(x: torch.Tensor, sh: int, sw: int) -> torch.Tensor:
    """``torch.roll(x, (sh, sw), dims=(1, 2))`` on (B, H, W, C) with slices and a cat per axis."""
    h, w = x.shape[1], x.shape[2]
    sh, sw = sh % h, sw % w
    if sh:
        x = torch.cat([x[:, h - sh:], x[:, :h - sh]], dim=1)
    if sw:
        x = torch.cat([x[:, :, w - sw:], x[:, :, :w - sw]], dim=2)
    return x


def _window_partition(x: torch.Tensor, wh: int, ww: int) -> torch.Tensor:
    """(B, H, W, C) -> (B * nH * nW, wh * ww, C), windows in timm's order, through rank-4 views only."""
    b, h, w, c = x.shape
    x = x.reshape(b * (h // wh), wh, w // ww, ww * c).permute(0, 2, 1, 3)  # (B*nH, nW, wh, ww*C)
    return x.reshape(-1, wh * ww, c)


def _window_reverse(x: torch.Tensor, wh: int, ww: int, h: int, w: int) -> torch.Tensor:
    """Inverse of ``_window_partition``: (B * nH * nW, wh * ww, C) -> (B, H, W, C)."""
    c = x.shape[-1]
    x = x.reshape(-1, w // ww, wh, ww * c).permute(0, 2, 1, 3)  # (B*nH, wh, nW, ww*C)
    return x.reshape(-1, h, w, c)


class SwinBlockXnn(nn.Module):
    """timm's ``SwinTransformerBlock`` (v1) for one input resolution that the windows tile exactly.

    Shifted windows by slices + cat instead of ``roll``; partition and reverse by rank-4 views; the attention is
    ``WindowAttentionXnn`` with the shift mask folded into its bias constant.
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.window_size = tuple(block.window_size)
        self.shift_size = tuple(block.shift_size)
        self.norm1 = block.norm1
        self.attn = WindowAttentionXnn(block.attn, block.attn_mask if any(self.shift_size) else None)
        self.drop_path1 = block.drop_path1
        self.norm2 = block.norm2
        self.mlp = block.mlp
        self.drop_path2 = block.drop_path2

    def _attn(self, x: torch.Tensor) -> torch.Tensor:
        _, h, w, c = x.shape
        (wh, ww), (sh, sw) = self.window_size, self.shift_size
        shifted = _roll2d(x, -sh, -sw)
        windows = self.attn(_window_partition(shifted, wh, ww))
        return _roll2d(_window_reverse(windows, wh, ww, h, w), sh, sw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        x = x + self.drop_path1(self._attn(self.norm1(x)))
        x = x.reshape(b, -1, c)
        x = x + self.drop_path2(self.mlp(self.norm2(x)))
        return x.reshape(b, h, w, c)


class PatchMergingXnn(nn.Module):
    """timm's Swin ``PatchMerging``: the 2x2 neighbourhood gather by two rank-4 permutes instead of one rank-6.

    Channel order as timm's: for each (w offset, h offset) in row-major order, the C channels.
    """

    def __init__(self, merge: nn.Module):
        super().__init__()
        self.norm = merge.norm
        self.reduction = merge.reduction

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, h, w, c = x.shape
        if h % 2 or w % 2:
            x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2))
            b, h, w, c = x.shape
        x = x.reshape(b * h // 2, 2, w // 2, 2 * c).permute(0, 2, 1, 3)  # (B*H/2, W/2, hoff, woff*C)
        x = x.reshape(-1, 2, 2, c).permute(0, 2, 1, 3)  # (B*H/2*W/2, woff, hoff, C)
        x = x.reshape(b, h // 2, w // 2, 4 * c)
        return self.reduction(self.norm(x))


class CascadedGroupAttentionXnn(nn.Module):
    """EfficientViT (MSRA) ``CascadedGroupAttention`` with its attention biases gathered once, as a constant."""

    def __init__(self, attn: nn.Module):
        super().__init__()
        self.scale = attn.scale
        self.key_dim = attn.key_dim
        self.val_dim = attn.val_dim
        self.qkvs = attn.qkvs
        self.dws = attn.dws
        self.proj = attn.proj
        self.heads = len(attn.qkvs)
        with torch.no_grad():
            bias = attn.attention_biases[:, attn.attention_bias_idxs]  # (heads, N, N)
        for i in range(self.heads):  # one constant per head: no select at run time
            self.register_buffer(f"bias{i}", bias[i].detach().clone(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        step = c // self.heads
        kd, vd = self.key_dim, self.val_dim
        feats_out = []
        feat = x[:, :step]
        for i, (qkv, dw) in enumerate(zip(self.qkvs, self.dws, strict=True)):
            if i > 0:  # slices, not chunk/split: split_with_sizes is not delegated
                feat = feat + x[:, i * step:(i + 1) * step]
            feat = qkv(feat)
            q, k, v = feat[:, :kd], feat[:, kd:2 * kd], feat[:, 2 * kd:2 * kd + vd]
            q = dw(q)
            q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
            attn = torch.bmm((q * self.scale).transpose(-2, -1), k)
            attn = (attn + getattr(self, f"bias{i}")).softmax(dim=-1)
            feat = torch.bmm(v, attn.transpose(-2, -1)).reshape(b, vd, h, w)
            feats_out.append(feat)
        return self.proj(torch.cat(feats_out, 1))


class LocalWindowAttentionXnn(nn.Module):
    """EfficientViT (MSRA) ``LocalWindowAttention``: window partition / reverse through rank-4 views."""

    def __init__(self, lwa: nn.Module):
        super().__init__()
        self.attn = CascadedGroupAttentionXnn(lwa.attn)
        self.ws = lwa.attn.resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        ws = self.ws
        if h == ws and w == ws:
            return self.attn(x)
        x = x.permute(0, 2, 3, 1)
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        if pad_b or pad_r:
            x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        ph, pw = h + pad_b, w + pad_r
        windows = _window_partition(x, ws, ws).reshape(-1, ws, ws, c).permute(0, 3, 1, 2)
        out = self.attn(windows).permute(0, 2, 3, 1).reshape(-1, ws * ws, c)
        out = _window_reverse(out, ws, ws, ph, pw)
        if pad_b or pad_r:
            out = out[:, :h, :w]
        return out.permute(0, 3, 1, 2)


def _plain_vit_attention(m: nn.Module) -> bool:
    from timm.layers.attention import Attention

    return (type(m) is Attention and isinstance(m.q_norm, nn.Identity) and isinstance(m.k_norm, nn.Identity)
            and isinstance(m.norm, nn.Identity) and getattr(m, "gate", None) is None)


def _tiled_swin_block(m: nn.Module) -> bool:
    from timm.models.swin_transformer import SwinTransformerBlock, WindowAttention

    if type(m) is not SwinTransformerBlock or type(m.attn) is not WindowAttention or m.dynamic_mask:
        return False
    (h, w), (wh, ww) = m.input_resolution, m.window_size
    return h % wh == 0 and w % ww == 0 and (m.attn_mask is not None or not any(m.shift_size))


def _replacement(m: nn.Module) -> nn.Module | None:
    from timm.models.efficientvit_msra import CascadedGroupAttention, LocalWindowAttention
    from timm.models.swin_transformer import PatchMerging

    if _plain_vit_attention(m):
        return TokenAttentionXnn(m)
    if _tiled_swin_block(m):
        return SwinBlockXnn(m)
    if type(m) is PatchMerging:
        return PatchMergingXnn(m)
    if type(m) is LocalWindowAttention:
        return LocalWindowAttentionXnn(m)
    if type(m) is CascadedGroupAttention:
        return CascadedGroupAttentionXnn(m)
    return None


def rewrite_attention(model: nn.Module) -> int:
    """Swap the attentions above in place (weights shared with the originals' modules); returns the count.

    Modules of other classes, or in a form not covered (qk-norm, Swin windows that do not tile the map), stay.
    """
    count = 0
    for name, child in list(model.named_children()):
        new = _replacement(child)
        if new is None:
            count += rewrite_attention(child)
        else:
            setattr(model, name, new)
            count += 1
    return count
