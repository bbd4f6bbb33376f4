"""Resampling MIL ops: upsample_nearest_neighbor, upsample_bilinear, resize_bilinear, resize_nearest_neighbor,
crop, on torch's interpolation kernels where their conventions match MIL's."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.activation import tensor


def _out_hw(args: OpArgs) -> tuple[int, int]:
    shape = args.out_shape()
    return int(shape[-2]), int(shape[-1])


@kernel("upsample_nearest_neighbor")
def upsample_nearest_neighbor(args: OpArgs) -> np.ndarray:
    """out[i] = in[floor(i / scale)] (PyTorch's 'nearest' rule with the given scale)."""
    x = tensor(args.array("x"))
    sh, sw = args.float("scale_factor_height", 1.0), args.float("scale_factor_width", 1.0)
    h, w = _out_hw(args)
    rows = torch.clamp((torch.arange(h) / sh).floor().long(), max=x.shape[-2] - 1)
    cols = torch.clamp((torch.arange(w) / sw).floor().long(), max=x.shape[-1] - 1)
    return x[..., rows, :][..., cols].contiguous().numpy()


def _bilinear(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Bilinear sampling with MIL's coordinate conventions (align_corners, half pixel, strict/default)."""
    in_h, in_w = x.shape[-2:]

    def grid(out: int, size_in: int) -> torch.Tensor:
        i = torch.arange(out, dtype=torch.float64)
        if mode == "ALIGN_CORNERS":
            return i * ((size_in - 1) / (out - 1)) if out > 1 else torch.zeros(out, dtype=torch.float64)
        if mode in ("HALF_PIXEL_CENTERS", "OFFSET_CORNERS"):
            return ((i + 0.5) * (size_in / out) - 0.5).clamp(min=0)
        if mode == "STRICT_ALIGN_CORNERS":
            return i * ((size_in - 1) / (out - 1)) if out > 1 else torch.zeros(out, dtype=torch.float64)
        return i * (size_in / out)  # DEFAULT

    def weights(coords: torch.Tensor, size_in: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        coords = coords.clamp(max=size_in - 1)
        lo = coords.floor().long()
        hi = torch.clamp(lo + 1, max=size_in - 1)
        return lo, hi, (coords - lo).to(x.dtype)

    r0, r1, wr = weights(grid(size[0], in_h), in_h)
    c0, c1, wc = weights(grid(size[1], in_w), in_w)
    top = x[..., r0, :] * (1 - wr)[:, None] + x[..., r1, :] * wr[:, None]
    return top[..., c0] * (1 - wc) + top[..., c1] * wc


@kernel("upsample_bilinear")
def upsample_bilinear(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    align = args.bool("align_corners", True)
    half = args.bool("half_pixel_centers", not align)
    mode = "ALIGN_CORNERS" if align else "HALF_PIXEL_CENTERS" if half else "DEFAULT"
    return _bilinear(x, _out_hw(args), mode).contiguous().numpy()


@kernel("resize_bilinear")
def resize_bilinear(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    mode = args.str("sampling_mode", "DEFAULT").upper()
    return _bilinear(x, _out_hw(args), mode).contiguous().numpy()


@kernel("resize_nearest_neighbor")
def resize_nearest_neighbor(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    return F.interpolate(x, size=_out_hw(args), mode="nearest").numpy()


@kernel("crop")
def crop(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    (top, bottom), (left, right) = np.asarray(args.ints("crop_height")), np.asarray(args.ints("crop_width"))
    h, w = x.shape[-2:]
    return np.ascontiguousarray(x[..., top:h - bottom, left:w - right])
