"""Hiera and TurboViT -> a channels-first feature-map model whose tensors never exceed rank 4.

timm's Hiera keeps tokens as (B, N, C) in an "unrolled" order (``Unroll``: rank-6 view/permute at the
stem) so that Q-pooling is a max over a leading view and a mask unit is a contiguous run of tokens; its
mask-unit attention reshapes qkv to rank 6. CoreML handles rank <= 5 only, and the layout shuffles are
what mobile accelerators run worst. The rewrite computes the same function on (B, C, H, W) maps:

* the unrolled order is traced once at prepare time (``plan_blocks``): every Q-pool is checked to be an
  aligned 2-D max-pool and every mask unit an aligned rectangle of the current grid, so Q-pooling becomes
  ``MaxPool2d`` and mask-unit attention becomes windowed attention (anything else raises);
* mask-unit blocks run on windows moved into the batch, (B*nW, C, h, w): the windows are a fixed grid
  across the mask-unit blocks (Q-pooling shrinks each window, it never mixes them), so the partition is
  done once before the first such block and undone once before the first global block, each with three
  rank-4 reshapes and two transposes; inside, a window is just a small feature map;
* attention (global, or per window) is channels-first: qkv is a 1x1 conv, heads are one reshape to
  (B, heads, head_dim, HW), scores are ``q^T k`` softmaxed over the last axis (keys) and the output is
  ``v @ scores^T``, (B, heads, head_dim, HW), one reshape back to a map; coremltools folds both transposes
  into ``matmul``'s transpose flags, so a block costs 2 reshapes (3 with Q-pooling, whose q is pooled as a
  map first) and no transposes. The attention scale is folded into the q rows of the qkv conv
  (max-pooling commutes with a positive scale);
* every ``nn.Linear`` in the blocks is a 1x1 conv, LayerNorm is a mean/var over channels computed with
  all-ones 1x1 convs (so XNNPACK takes it), layer scales are folded into the conv before them, and the absolute
  position embedding (whatever its kind) is evaluated once and stored as a (1, C, H, W) constant.

Measured with ``mil_before_after`` in tests/test_hiera.py (coremltools 9, iOS17 target, batch 1, 224x224; the
counts do not depend on the weights). Layout ops = reshape + transpose; the original also has 36 ``squeeze`` (unbind):

=================  =========  ====================  ========  ==========================
model              program    max rank              layout    other
=================  =========  ====================  ========  ==========================
hiera_tiny_224     original   6 (CoreML max is 5)   93        50 reshape, 43 transpose
hiera_tiny_224     prepared   4                     59        55 reshape, 4 transpose
turbovit           original   6                     93        50 reshape, 43 transpose
turbovit           prepared   4                     59        55 reshape, 4 transpose
=================  =========  ====================  ========  ==========================

Trade-off: attention uses rank-3 ``bmm`` on per-tensor reshapes of q, k and v. A single rank-4 reshape of
qkv gave 37 layout ops here, but rank-4 matmuls export with expand copies and ``chunk`` with
split_with_sizes, which XNNPACK does not take: the TurboViT .pte was 83 delegated pieces. Now it is one.

The original's MIL program cannot become an ML program: ``ct.convert(..., convert_to="mlprogram")`` stops
with "Core ML only supports tensors with rank <= 5" at its first rank-6 reshape. The prepared one converts.

ExecuTorch (``to_edge_transform_and_lower`` with ``XnnpackPartitioner``, fp32, run by
``executorch.runtime``), random weights as in tests/test_hiera.py, one 224x224 input, relative L2 of the
.pte output against the original eager model: hiera_tiny_224 5.7e-7, turbovit 5.2e-7 (eager prepared vs
original: 2.5e-7, 2.8e-7); top-1 agrees. The whole prepared graph is one XNNPACK subgraph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from timm.layers import ConvMlp
from timm.models.hiera import Hiera, HieraBlock, MaskUnitAttention
from torch import nn

from converters.base import Converter
from converters.rewrites import ChannelsFirstLayerNorm, fold_layer_scale, fold_scale_into_conv, linear_to_conv1x1
from edgevit.base.errors import EdgevitError


class UnsupportedHieraError(EdgevitError):
    """A Hiera configuration whose token order does not map to spatial pooling and windows."""


@dataclass(frozen=True)
class BlockPlan:
    """What one block does spatially: its Q-pool stride and, for mask-unit attention, the window grid."""

    stride: tuple[int, int]  # (1, 1): no Q-pooling
    windows: tuple[int, int] | None  # (rows, cols) of windows; None: global attention


def plan_blocks(model: Hiera) -> list[BlockPlan]:
    """Read each block's pooling and windows off timm's unrolled token order, verifying they are spatial."""
    if len(model.tokens_spatial_shape) != 2 or model.pos_embed_spatial is not None:
        raise UnsupportedHieraError("only 2-D (image) Hiera is supported, not the video variants")
    height, width = model.tokens_spatial_shape
    n = height * width
    pos = model.unroll(torch.arange(n).view(1, n, 1)).flatten()  # raster position of each unrolled token
    rows, cols = pos // width, pos % width
    sy, sx = model.q_stride
    plans = []
    for i, block in enumerate(model.blocks):
        attn = block.attn
        windows = None
        if attn.use_mask_unit_attn:
            num_windows = n // (attn.q_stride * attn.window_size)
            windows = _window_grid(rows.view(-1, num_windows), cols.view(-1, num_windows), height, width, i)
        stride = (1, 1)
        if attn.q_stride > 1:
            if not block.do_expand:  # timm pools the residual only where the width changes
                raise UnsupportedHieraError(f"block {i}: Q-pooling without a width change (dim_mul=1)")
            if attn.q_stride != sy * sx:
                raise UnsupportedHieraError(f"block {i}: q_stride {attn.q_stride} is not {sy}x{sx}")
            group_rows, group_cols = rows.view(attn.q_stride, -1) // sy, cols.view(attn.q_stride, -1) // sx
            if not ((group_rows == group_rows[0]).all() and (group_cols == group_cols[0]).all()):
                raise UnsupportedHieraError(f"block {i}: Q-pooling is not an aligned {sy}x{sx} max-pool")
            if windows is not None and ((height // windows[0]) % sy or (width // windows[1]) % sx):
                raise UnsupportedHieraError(f"block {i}: windows are not divisible by the Q-pool stride")
            rows, cols, stride = group_rows[0], group_cols[0], (sy, sx)
            height, width, n = height // sy, width // sx, n // attn.q_stride
        plans.append(BlockPlan(stride, windows))
    return plans


def _window_grid(rows: torch.Tensor, cols: torch.Tensor, height: int, width: int, index: int):
    """Columns of ``rows``/``cols`` are the windows; check they tile the grid as aligned rectangles."""
    if rows.shape[1] == 1:
        return None  # one window covering the map: global attention
    top, left = rows.min(0).values, cols.min(0).values
    span_h, span_w = rows.max(0).values - top + 1, cols.max(0).values - left + 1
    win_h, win_w = int(span_h[0]), int(span_w[0])
    ok = (
        (span_h == win_h).all()
        and (span_w == win_w).all()
        and win_h * win_w == rows.shape[0]
        and (top % win_h == 0).all()
        and (left % win_w == 0).all()
        and height % win_h == 0
        and width % win_w == 0
    )
    if not ok:
        raise UnsupportedHieraError(f"block {index}: mask units are not aligned rectangles of the token grid")
    return height // win_h, width // win_w


class WindowPartition(nn.Module):
    """(B, C, H, W) -> (B*rows*cols, C, H/rows, W/cols): windows into the batch, rank-4 tensors only."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.rows, self.cols = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        wh, ww = h // self.rows, w // self.cols
        x = x.reshape(b * c * self.rows, wh, self.cols, ww).transpose(1, 2)
        x = x.reshape(b, c, self.rows * self.cols, wh * ww).transpose(1, 2)
        return x.reshape(b * self.rows * self.cols, c, wh, ww)


class WindowMerge(nn.Module):
    """Inverse of ``WindowPartition``."""

    def __init__(self, grid: tuple[int, int]):
        super().__init__()
        self.rows, self.cols = grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bw, c, wh, ww = x.shape
        b = bw // (self.rows * self.cols)
        x = x.reshape(b, self.rows * self.cols, c, wh * ww).transpose(1, 2)
        x = x.reshape(b * c * self.rows, self.cols, wh, ww).transpose(1, 2)
        return x.reshape(b, c, self.rows * wh, self.cols * ww)


class ChannelsFirstMaskUnitAttention(nn.Module):
    """timm's MaskUnitAttention on a (B, C, H, W) map (a window batch for mask-unit attention)."""

    def __init__(self, attn: MaskUnitAttention, stride: tuple[int, int], layer_scale: nn.Module):
        super().__init__()
        self.heads, self.head_dim, self.dim_out = attn.heads, attn.head_dim, attn.dim_out
        scale = torch.ones(3 * attn.dim_out, dtype=attn.qkv.weight.dtype)
        scale[: attn.dim_out] = attn.head_dim**-0.5
        self.qkv = fold_scale_into_conv(linear_to_conv1x1(attn.qkv), scale)
        self.proj = fold_layer_scale(linear_to_conv1x1(attn.proj), layer_scale)
        self.pool = nn.MaxPool2d(stride, stride) if stride != (1, 1) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        d = self.dim_out
        qkv = self.qkv(x)
        # static channel slices, not chunk(): XNNPACK delegates slices but not split_with_sizes
        q, k, v = qkv[:, :d], qkv[:, d : 2 * d], qkv[:, 2 * d :]
        if self.pool is not None:
            q = self.pool(q)
            h, w = q.shape[-2:]
        # rank-3 batched matmuls (batch x heads folded): rank-4 matmuls export with expand copies
        bh = b * self.heads
        q, k, v = (t.reshape(bh, self.head_dim, -1) for t in (q, k, v))
        scores = torch.bmm(q.transpose(1, 2), k).softmax(dim=-1)  # (b*heads, queries, keys)
        return self.proj(torch.bmm(v, scores.transpose(1, 2)).reshape(b, self.dim_out, h, w))


class ChannelsFirstHieraBlock(nn.Module):
    """timm's HieraBlock on (B, C, H, W): Q-pooling as MaxPool2d, linears as 1x1 convs."""

    def __init__(self, block: HieraBlock, stride: tuple[int, int]):
        super().__init__()
        mlp = block.mlp
        if not (isinstance(block.norm1, nn.LayerNorm) and isinstance(mlp.norm, nn.Identity)):
            raise UnsupportedHieraError("HieraBlock with a norm other than LayerNorm is not supported")
        self.norm1 = ChannelsFirstLayerNorm(block.norm1)
        self.expand = linear_to_conv1x1(block.proj) if block.proj is not None else None
        self.concat_pool = block.do_expand and block.proj is None  # use_expand_proj=False: [max, avg]
        self.pool = nn.MaxPool2d(stride, stride) if stride != (1, 1) else None  # plan: only if do_expand
        self.attn = ChannelsFirstMaskUnitAttention(block.attn, stride, block.ls1)
        self.norm2 = ChannelsFirstLayerNorm(block.norm2)
        self.mlp = ConvMlp(mlp.fc1.in_features, mlp.fc1.out_features, mlp.fc2.out_features)
        self.mlp.fc1, self.mlp.act = linear_to_conv1x1(mlp.fc1), mlp.act
        self.mlp.fc2 = fold_layer_scale(linear_to_conv1x1(mlp.fc2), block.ls2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_norm = self.norm1(x)
        if self.expand is not None:
            x = self.expand(x_norm)
            x = self.pool(x) if self.pool is not None else x
        elif self.concat_pool:
            avg = F.avg_pool2d(x, self.pool.kernel_size) if self.pool is not None else x
            x = torch.cat([self.pool(x) if self.pool is not None else x, avg], 1)
        x = x + self.attn(x_norm)
        return x + self.mlp(self.norm2(x))


class ChannelsFirstHiera(nn.Module):
    """The prepared model: stem conv + position map, blocks (with window partition/merge), pooled head."""

    def __init__(self, model: Hiera, plans: list[BlockPlan]):
        super().__init__()
        pool_type = model.head.pool_type
        if pool_type not in ("avg", "max", "avgmax"):
            raise UnsupportedHieraError(f"head pooling {pool_type!r} is not supported (avg, max or avgmax)")
        self.patch_embed = model.patch_embed.proj
        height, width = model.tokens_spatial_shape
        with torch.no_grad():
            pos = model._pos_embed(torch.zeros(1, height * width, self.patch_embed.out_channels))
        self.register_buffer("pos_embed", pos.transpose(1, 2).reshape(1, -1, height, width).contiguous())
        layers, grid = [], None
        for block, plan in zip(model.blocks, plans, strict=True):
            if plan.windows != grid:
                layers += [WindowMerge(grid)] if grid else []
                layers += [WindowPartition(plan.windows)] if plan.windows else []
                grid = plan.windows
            layers.append(ChannelsFirstHieraBlock(block, plan.stride))
        layers += [WindowMerge(grid)] if grid else []
        self.blocks = nn.Sequential(*layers)
        self.pool_type = pool_type
        self.head = model.head
        # the head's LayerNorm on the pooled (B, C, 1, 1) map, so XNNPACK takes it with the rest
        norm = model.head.norm
        self.head_norm = ChannelsFirstLayerNorm(norm) if isinstance(norm, nn.LayerNorm) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.patch_embed(x) + self.pos_embed)
        if self.pool_type == "avg":
            x = x.mean((2, 3), keepdim=True)  # keepdim: the global pool XNNPACK delegates
        elif self.pool_type == "max":
            x = x.amax((2, 3), keepdim=True)
        else:
            x = 0.5 * (x.amax((2, 3), keepdim=True) + x.mean((2, 3), keepdim=True))
        head = self.head
        if self.head_norm is not None:
            x = self.head_norm(x).flatten(1)
        else:
            x = head.norm(x.flatten(1))
        return head.fc(head.drop(head.pre_logits(x)))


class HieraConverter(Converter):
    """timm Hiera (hiera_tiny_224, ...) and TurboViT -> ``ChannelsFirstHiera``."""

    name = "hiera"

    def _rewrite(self, model: nn.Module, applied: list[str]) -> nn.Module:
        if not isinstance(model, Hiera):
            raise UnsupportedHieraError(f"the hiera converter needs a timm Hiera, got {type(model).__name__}")
        plans = plan_blocks(model)
        prepared = ChannelsFirstHiera(model, plans)
        pools = sum(p.stride != (1, 1) for p in plans)
        windowed = sum(p.windows is not None for p in plans)
        applied += [
            "unrolled (B, N, C) tokens -> (B, C, H, W) maps; position embedding stored as a (1, C, H, W) constant",
            f"Q-pooling -> MaxPool2d in {pools} blocks",
            f"mask-unit attention -> window attention on a (B*windows, C, h, w) batch in {windowed} blocks",
            "attention channels-first (heads by reshape, q^T k scores softmaxed over keys), scale folded into qkv",
            "nn.Linear -> 1x1 conv, LayerNorm over channels, layer scales folded",
        ]
        return prepared
