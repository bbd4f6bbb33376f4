"""Large-kernel depthwise conv -> a sum of depthwise convs XNNPACK has fast kernels for (25/9/4 taps, exact).

Why: XNNPACK has depthwise microkernels for 3, 4, 9 and 25 taps only; ExecuTorch 1.5.1's XNNPACK runs a 7x7
depthwise conv (49 taps) as a grouped IGEMM instead (its own per-op profile says so; tests/test_split_depthwise.py).
Measured on this host, loaded, 1 thread, 8 stacked 7x7 depthwise convs as .pte (96 channels, 32x32): 10.8 ms as
7x7, 1.5 ms split as below (docs/bench_split_depthwise.py measures FastViT as a whole).

Two plans; each tap of the original kernel goes to exactly one piece (zeros elsewhere), so the sum of the pieces
is the original conv up to fp32 summation order, for any stride:

* centred padding (``k // 2``, odd sides <= 7, FastViT's case): a dense centred 5x5, a 3x3 lattice of
  dilation 3 and four 2x2 lattices for the rest of the ring (``_centred_plan``): 50 taps in 6 convs (25, 9
  and 4 taps). Every piece is centred, so with its own symmetric padding it reads the input itself: no pad
  op, no slices (XNNPACK copies slices; the pad-and-slice form measured 14.2 ms vs 9.8 ms centred with 3x3
  lattices only, 96 channels at 56x56; the 2x2 lattices then took 1.87 -> 1.54 ms at 96x32x32).
* otherwise (other padding, larger or even kernels): pad once, then 5x5 pieces at offsets spread over
  [0, k-5] on each axis (7: 0 and 2), piece (a, b) a valid strided conv on ``xp[..., a:, b:]``.

Grouped convs with one input channel per group and m > 1 outputs per group (FastViT's patch embeddings:
``groups=C``, ``2C`` outputs) are not depthwise to XNNPACK either. The rewrite runs them as m depthwise convs
(output j of every group) on the same input, concatenated: the outputs come in grouped order ``[j*C + c]``
instead of ``[c*m + j]``. (One depthwise conv over ``cat([x] * m)`` would need fewer ops, but ExecuTorch 1.5.1's
XNNPACK partitioner leaves a cat of one tensor with itself undelegated.) When the next op is a plain conv
(possibly after per-element activations), that permutation is absorbed into its input channels; otherwise the
module interleaves the channels back itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class _Piece:
    """One depthwise piece: a ``size`` x ``size`` kernel whose tap (u, v) is the original tap
    ``origin + dilation * (u, v)``; ``padding`` is its own (symmetric) zero padding."""

    size: int
    origin: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)

    def taps(self) -> list[tuple[int, int, int, int]]:
        (a, b), (dy, dx) = self.origin, self.dilation
        return [(u, v, a + dy * u, b + dx * v) for u in range(self.size) for v in range(self.size)]


def _centred_plan(kh: int, kw: int) -> list[_Piece]:
    """Centred pieces for odd sides <= 7: a dense 5x5, one 3x3 lattice, 2x2 lattices for the rest of the ring.

    Relative to the centre (half sides rh, rw), the 3x3 lattice of dilation (rh, rw) takes the ring's taps on
    the axes and at (+-rh, +-rw); every other ring tap pair (|p|, |q|) is the 2x2 lattice {-p, p} x {-q, q},
    dilation (2p, 2q), padding (p, q): XNNPACK's 4-tap kernel, no tap wasted. Every piece is centred, so with
    its own symmetric padding it gives the original output size (any stride) and reads the unpadded input.
    """
    rh, rw = kh // 2, kw // 2
    half = PIECE // 2
    plan = [_Piece(PIECE, (rh - half, rw - half), padding=(half, half)), _Piece(3, (0, 0), (rh, rw), (rh, rw))]
    for p in range(1, rh + 1):
        for q in range(1, rw + 1):
            if max(p, q) > half and (p, q) != (rh, rw):
                plan.append(_Piece(2, (rh - p, rw - q), (2 * p, 2 * q), (p, q)))
    return plan


def _sliced_plan(kh: int, kw: int) -> list[_Piece]:
    """5x5 pieces at offsets spread over [0, k-5] on each axis, each read from a slice of the padded input."""
    return [_Piece(PIECE, (a, b)) for a in _offsets(kh) for b in _offsets(kw)]


class SplitDepthwiseConv2d(nn.Module):
    """A depthwise (or channel-multiplier) conv as a sum of 5x5 / 3x3 / 2x2 depthwise pieces.

    Centred padding (``k // 2``, odd sides <= 7, e.g. FastViT's 7x7): ``_centred_plan``, every piece on the input
    itself. Otherwise: pad once, ``_sliced_plan``'s 5x5 pieces on shifted slices. ``grouped_order``: outputs come
    as ``[j*C + c]`` (set when the next conv absorbed the permutation); else in the original ``[c*m + j]``.
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
        centred = self.pad == (kw // 2, kw // 2, kh // 2, kh // 2) and kh % 2 == kw % 2 == 1 and max(kh, kw) <= 7
        self.plan = _centred_plan(kh, kw) if centred else _sliced_plan(kh, kw)
        self.sliced = not centred
        # original out channel c*m + j -> position j*C + c
        weight = conv.weight.detach().reshape(c, m, kh, kw).transpose(0, 1).reshape(c * m, kh, kw)
        bias = None
        if conv.bias is not None:
            bias = conv.bias.detach().reshape(c, m).transpose(0, 1).reshape(c * m)
        owner: dict[tuple[int, int], int] = {}  # each original tap goes to the first piece that has it
        for index, piece in enumerate(self.plan):
            for _, _, r, t in piece.taps():
                if 0 <= r < kh and 0 <= t < kw:
                    owner.setdefault((r, t), index)
        if len(owner) != kh * kw:
            raise AssertionError(f"plan misses taps of a {kh}x{kw} kernel")
        # pieces[j * len(plan) + i]: piece i of the depthwise conv making output j of every group
        self.pieces = nn.ModuleList()
        for j in range(m):
            w_j = weight[j * c : (j + 1) * c]
            for index, spec in enumerate(self.plan):
                piece = nn.Conv2d(c, c, spec.size, stride=self.stride, padding=spec.padding, dilation=spec.dilation,
                                  groups=c, bias=index == 0 and bias is not None)
                piece = piece.to(dtype=weight.dtype, device=weight.device)
                w = torch.zeros(c, spec.size, spec.size, dtype=weight.dtype, device=weight.device)
                for u, v, r, t in spec.taps():
                    if owner.get((r, t)) == index:
                        w[:, u, v] = w_j[:, r, t]
                piece.weight.data = w.unsqueeze(1)
                if piece.bias is not None:
                    piece.bias.data = bias[j * c : (j + 1) * c].clone()
                piece.requires_grad_(conv.weight.requires_grad)
                self.pieces.append(piece)

    def _inputs(self, x: torch.Tensor) -> list[torch.Tensor]:
        if not self.sliced:
            return [x] * len(self.plan)
        if any(self.pad):
            x = F.pad(x, self.pad)
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        out_h, out_w = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
        span_h, span_w = sh * (out_h - 1) + PIECE, sw * (out_w - 1) + PIECE
        return [x[:, :, a : a + span_h, b : b + span_w] for a, b in (p.origin for p in self.plan)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self._inputs(x)
        n = len(inputs)
        outs = []
        for j in range(self.multiplier):
            pieces = self.pieces[j * n : (j + 1) * n]
            out = pieces[0](inputs[0])
            for piece, part in zip(pieces[1:], inputs[1:], strict=True):
                out = out + piece(part)
            outs.append(out)
        if self.multiplier == 1:
            return outs[0]
        if self.grouped_order:
            return torch.cat(outs, dim=1)
        return torch.stack(outs, dim=2).flatten(1, 2)  # back to [c*m + j]

    def extra_repr(self) -> str:
        form = "pad + 5x5 on slices" if self.sliced else "centred 5x5 + dilated 3x3 / 2x2"
        return (f"{self.channels}x{self.multiplier}, kernel={self.kernel_size}, stride={self.stride}, {form}, "
                f"{len(self.plan)} pieces, grouped_order={self.grouped_order}")


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
