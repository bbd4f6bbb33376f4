"""conv and conv_transpose with MIL's padding rules, on torch's CPU convolution kernels.

MIL ``pad`` is ``[d0_begin, d0_end, d1_begin, d1_end, ...]`` over the spatial dims, used with
``pad_type="custom"``; ``valid`` pads nothing; ``same`` pads so that out = ceil(in / stride), putting the odd
element at the end, ``same_lower`` at the start.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.activation import tensor


def spatial_padding(args: OpArgs, in_sizes: list[int], kernel_sizes: list[int], strides: list[int],
                    dilations: list[int]) -> list[tuple[int, int]]:
    """(begin, end) padding per spatial dim, from pad_type and pad."""
    pad_type = args.str("pad_type", "valid").lower()
    n = len(in_sizes)
    if pad_type == "valid":
        return [(0, 0)] * n
    if pad_type == "custom":
        pad = args.ints("pad", [0] * (2 * n))
        return [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    if pad_type in ("same", "same_lower"):
        result = []
        for size, k, s, d in zip(in_sizes, kernel_sizes, strides, dilations, strict=True):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, large = total // 2, total - total // 2
            result.append((small, large) if pad_type == "same" else (large, small))
        return result
    raise args.fail(f"unknown pad_type {pad_type!r}")


def pad_input(x: torch.Tensor, padding: list[tuple[int, int]], value: float = 0.0) -> torch.Tensor:
    """Pad the trailing spatial dims of ``x`` (negative padding crops)."""
    flat = [p for pair in reversed(padding) for p in pair]
    return F.pad(x, flat, value=value) if any(flat) else x


_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}


def _operands(args: OpArgs) -> tuple:
    """What conv and conv_transpose both read: x, weight, spatial rank, strides, dilations, optional bias."""
    x, weight = tensor(args.array("x")), args.tensor("weight")
    n = x.dim() - 2
    bias = args.tensor("bias") if args.has("bias") else None
    return x, weight, n, args.ints("strides", [1] * n), args.ints("dilations", [1] * n), bias


@kernel("conv")
def conv(args: OpArgs) -> np.ndarray:
    x, weight, n, strides, dilations, bias = _operands(args)
    padding = spatial_padding(args, list(x.shape[2:]), list(weight.shape[2:]), strides, dilations)
    out = _CONV[n](pad_input(x, padding), weight, bias, stride=strides,
                   dilation=dilations, groups=args.int("groups", 1))
    return out.numpy()


@kernel("conv_transpose")
def conv_transpose(args: OpArgs) -> np.ndarray:
    """weight is [C_in, C_out / groups, *K]; ``pad`` crops the full output; ``output_shape`` sets its size."""
    x, weight, n, strides, dilations, bias = _operands(args)
    full = _CONV_T[n](x, weight, None, stride=strides, dilation=dilations, groups=args.int("groups", 1))
    k = [(ks - 1) * d + 1 for ks, d in zip(weight.shape[2:], dilations, strict=True)]
    pad_type = args.str("pad_type", "valid").lower()
    target = args.out_shape()[2:]
    if pad_type == "custom":
        pad = args.ints("pad", [0] * (2 * n))
        crops = [(pad[2 * i], pad[2 * i + 1]) for i in range(n)]
    elif pad_type == "valid":
        crops = [(0, 0)] * n
    else:  # same: out = in * stride, cropping the surplus (odd element at the end, or the start for same_lower)
        crops = []
        for _size, s, kk in zip(x.shape[2:], strides, k, strict=True):
            total = max(kk - s, 0)
            small, large = total // 2, total - total // 2
            crops.append((small, large) if pad_type == "same" else (large, small))
    out = pad_input(full, [(-b, -e) for b, e in crops])
    if all(isinstance(t, (int, np.integer)) for t in target) and tuple(out.shape[2:]) != tuple(target):
        # output_shape larger than the cropped result: MIL pads the end with zeros (PyTorch's output_padding)
        out = pad_input(out, [(0, int(t) - s) for t, s in zip(target, out.shape[2:], strict=True)])
    if bias is not None:
        out = out + bias.reshape(1, -1, *([1] * n))
    return out.numpy()
