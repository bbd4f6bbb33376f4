"""Large-kernel depthwise conv -> one pad + shifted 5x5 depthwise convs on slices, summed (exact).

Why: XNNPACK has fast depthwise microkernels for 3, 4, 9 and 25 taps only; a 7x7 depthwise conv (49 taps) takes
its slow multipass path. Measured on this host (8 stacked 7x7 dw convs, 96 channels, 56x56, 1 thread): 135 ms
as 7x7, 30.5 ms as four 5x5 pieces, 51.7 ms as nine 3x3 pieces. So a k x k kernel (k > 5) is tiled by 5x5
pieces placed at offsets spread over [0, k-5] on each axis (for k=7: 0 and 2); each tap belongs to exactly one
piece (zeros elsewhere), so the sum of the pieces is the original conv up to fp32 summation order.

Piece (a, b) of a conv with stride s reads the padded input from row a, column b: ``y_ab[i, j] = sum_{u,v<5}
w[a+u, b+v] * xp[s*i + a + u, s*j + b + v]``, a valid strided 5x5 conv on ``xp[..., a:, b:]``. Any stride works.

Grouped convs with one input channel per group and m > 1 outputs per group (FastViT's patch embeddings:
``groups=C``, ``2C`` outputs) are not depthwise to XNNPACK either. The rewrite runs them as m depthwise convs
(output j of every group) over the same slices, concatenated: the outputs come in grouped order ``[j*C + c]``
instead of ``[c*m + j]``. (One depthwise conv over ``cat([x] * m)`` would need fewer ops, but ExecuTorch 1.5.1's
XNNPACK partitioner leaves a cat of one tensor with itself undelegated.) When the next op is a plain conv (possibly
after per-element activations), that permutation is absorbed into its input channels; otherwise the module
interleaves the channels back itself.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

PIECE = 5  # XNNPACK's 25-tap depthwise microkernel
MAX_MULTIPLIER = 2  # outputs per group handled (FastViT's patch embeddings); more would repeat the input more
# modules that act on each element alone: a channel permutation passes through them unchanged
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.Tanh,
                nn.LeakyReLU, nn.Identity, nn.Dropout)


def _offsets(k: int, piece: int = PIECE) -> list[int]:
    """Start of each piece along an axis of length ``k``: ceil(k / piece) pieces spread evenly over [0, k-piece]."""
    n = math.ceil(k / piece)
    if n == 1:
        return [0]
    return [round(i * (k - piece) / (n - 1)) for i in range(n)]


def _owner(k: int, offsets: list[int], piece: int = PIECE) -> list[int]:
    """For each tap along an axis, the index of the (first) piece that covers it."""
    return [next(i for i, o in enumerate(offsets) if o <= t < o + piece) for t in range(k)]


def _padding(conv: nn.Conv2d) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding of ``conv``, also for padding='same'/'valid'."""
    if conv.padding == "valid":
        return (0, 0, 0, 0)
    if conv.padding == "same":
        (kh, kw), (dh, dw) = conv.kernel_size, conv.dilation
        th, tw = dh * (kh - 1), dw * (kw - 1)
        return (tw // 2, tw - tw // 2, th // 2, th - th // 2)
    ph, pw = conv.padding
    return (pw, pw, ph, ph)


def splittable(conv: nn.Module) -> bool:
    """A conv this rewrite handles: one input channel per group, <= 2 outputs each, kernel sides >= 5, not 5x5."""
    if type(conv) is not nn.Conv2d:
        return False
    kh, kw = conv.kernel_size
    return (conv.groups == conv.in_channels > 1 and conv.out_channels <= MAX_MULTIPLIER * conv.groups
            and conv.out_channels % conv.groups == 0 and conv.dilation == (1, 1)
            and conv.padding_mode == "zeros" and min(kh, kw) >= PIECE and (kh, kw) != (PIECE, PIECE))


class SplitDepthwiseConv2d(nn.Module):
    """A depthwise (or channel-multiplier) conv as pad + 5x5 depthwise pieces on shifted slices, summed.

    ``grouped_order``: outputs come as ``[j*C + c]`` (set when the next conv absorbed the permutation); else
    they are interleaved back to the original ``[c*m + j]``.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        if not splittable(conv):
            raise ValueError(f"not a large-kernel depthwise conv: {conv}")
        c, m = conv.in_channels, conv.out_channels // conv.in_channels
        (kh, kw), self.stride = conv.kernel_size, tuple(conv.stride)
        self.channels, self.multiplier, self.kernel_size = c, m, (kh, kw)
        self.pad = _padding(conv)
        self.grouped_order = False
        # original out channel c*m + j -> position j*C + c
        weight = conv.weight.detach().reshape(c, m, kh, kw).transpose(0, 1).reshape(c * m, kh, kw)
        bias = None
        if conv.bias is not None:
            bias = conv.bias.detach().reshape(c, m).transpose(0, 1).reshape(c * m)
        rows, cols = _offsets(kh), _offsets(kw)
        row_owner, col_owner = _owner(kh, rows), _owner(kw, cols)
        self.offsets = [(a, b) for a in rows for b in cols]
        # pieces[j * len(offsets) + p]: piece p of the depthwise conv making output j of every group
        self.pieces = nn.ModuleList()
        for j in range(m):
            w_j = weight[j * c : (j + 1) * c]
            for p, (a, b) in enumerate(self.offsets):
                piece = nn.Conv2d(c, c, PIECE, stride=self.stride, groups=c, bias=p == 0 and bias is not None)
                piece = piece.to(dtype=weight.dtype, device=weight.device)
                w = torch.zeros(c, PIECE, PIECE, dtype=weight.dtype, device=weight.device)
                i_row, i_col = rows.index(a), cols.index(b)
                for u in range(PIECE):
                    for v in range(PIECE):
                        if row_owner[a + u] == i_row and col_owner[b + v] == i_col:
                            w[:, u, v] = w_j[:, a + u, b + v]
                piece.weight.data = w.unsqueeze(1)
                if piece.bias is not None:
                    piece.bias.data = bias[j * c : (j + 1) * c].clone()
                piece.requires_grad_(conv.weight.requires_grad)
                self.pieces.append(piece)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.pad):
            x = F.pad(x, self.pad)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        out_h, out_w = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
        span_h, span_w = sh * (out_h - 1) + PIECE, sw * (out_w - 1) + PIECE
        slices = [x[:, :, a : a + span_h, b : b + span_w] for a, b in self.offsets]
        outs = []
        for j in range(self.multiplier):
            pieces = self.pieces[j * len(slices) : (j + 1) * len(slices)]
            out = pieces[0](slices[0])
            for piece, part in zip(pieces[1:], slices[1:], strict=True):
                out = out + piece(part)
            outs.append(out)
        if self.multiplier == 1:
            return outs[0]
        if self.grouped_order:
            return torch.cat(outs, dim=1)
        return torch.stack(outs, dim=2).flatten(1, 2)  # back to [c*m + j]

    def extra_repr(self) -> str:
        return (f"{self.channels}x{self.multiplier}, kernel={self.kernel_size}, stride={self.stride}, "
                f"pad={self.pad}, pieces={len(self.pieces)}x{PIECE}x{PIECE}, grouped_order={self.grouped_order}")


def _absorb_permutation(split: SplitDepthwiseConv2d, following: list[nn.Module]) -> bool:
    """Permute the input channels of the next plain conv so it reads the grouped order; False if there is none."""
    for module in following:
        if isinstance(module, _ELEMENTWISE):
            continue
        if type(module) is nn.Conv2d and module.groups == 1:
            c, m = split.channels, split.multiplier
            # position p = j*C + c holds original channel c*m + j
            order = torch.arange(c * m).reshape(c, m).t().reshape(-1)
            module.weight.data = module.weight.data[:, order].contiguous()
            split.grouped_order = True
            return True
        return False
    return False


def split_large_depthwise(model: nn.Module) -> list[str]:
    """Replace every large-kernel depthwise conv in ``model`` (in place); returns the names of those replaced.

    A channel-multiplier conv inside an ``nn.Sequential`` whose next op is a plain conv hands that conv its
    output permutation; anywhere else it interleaves its outputs itself. The function is unchanged (fp32).
    """
    replaced: list[str] = []
    for parent_name, parent in list(model.named_modules()):
        children = list(parent.named_children())
        for index, (name, child) in enumerate(children):
            if not splittable(child):
                continue
            split = SplitDepthwiseConv2d(child)
            if split.multiplier > 1 and isinstance(parent, nn.Sequential):
                _absorb_permutation(split, [m for _, m in children[index + 1 :]])
            setattr(parent, name, split)
            replaced.append(f"{parent_name}.{name}" if parent_name else name)
    return replaced
