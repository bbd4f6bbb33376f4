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
    """out[i] = in[floor(i · in / out)], out = floor(in · scale): the scale is recomputed from the sizes
    (Apple's fractional-scale test: width 3 at scale 1.12 gives 3 columns, the identity, not in[floor(i / 1.12)])."""
    x = tensor(args.array("x"))
    h, w = _out_hw(args)
    rows = _nearest(h, x.shape[-2])
    cols = _nearest(w, x.shape[-1])
    return x[..., rows, :][..., cols].contiguous().numpy()


def _nearest(out: int, size_in: int, half_pixel: bool = False) -> torch.Tensor:
    i = torch.arange(out, dtype=torch.float64) + (0.5 if half_pixel else 0.0)
    return (i * (size_in / out)).floor().long().clamp(max=size_in - 1)


def grid_points(out: int, size_in: int, mode: str) -> torch.Tensor:
    """Where output sample i reads the input, per MIL's sampling modes (resize_bilinear's docstring), clamped
    to [0, size_in - 1]. HALF_PIXEL_CENTERS is upsample_bilinear's align_corners=False rule (= UNALIGN_CORNERS)."""
    i = torch.arange(out, dtype=torch.float64)
    if mode in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        if out == 1:
            coords = torch.full((1,), (size_in - 1) / 2 if mode == "ALIGN_CORNERS" else 0.0, dtype=torch.float64)
        else:
            coords = i * ((size_in - 1) / (out - 1))
    elif mode == "OFFSET_CORNERS":
        delta = max(1, size_in - 1) / out
        coords = 0.5 * delta + i * delta
    elif mode in ("HALF_PIXEL_CENTERS", "UNALIGN_CORNERS"):
        spacing = size_in / out
        coords = i * spacing + 0.5 * spacing - 0.5
    elif mode == "DEFAULT":
        coords = i * (size_in / out)
    else:
        raise ValueError(f"unknown sampling mode {mode!r}")
    return coords.clamp(0, size_in - 1)


def linear_along(x: torch.Tensor, dim: int, size: int, mode: str) -> torch.Tensor:
    """Linear interpolation of ``x`` along ``dim`` to ``size`` samples."""
    size_in = x.shape[dim]
    coords = grid_points(size, size_in, mode)
    lo = coords.floor().long().clamp(max=size_in - 1)
    hi = (lo + 1).clamp(max=size_in - 1)
    frac = (coords - lo).to(x.dtype if x.dtype.is_floating_point else torch.float32)
    shape = [1] * x.dim()
    shape[dim] = -1
    a, b = x.index_select(dim, lo), x.index_select(dim, hi)
    if not a.dtype.is_floating_point:
        a, b = a.to(torch.float32), b.to(torch.float32)
    return a * (1 - frac).reshape(shape) + b * frac.reshape(shape)


def _bilinear(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """Bilinear sampling of the last two dims with MIL's coordinate conventions (separable: rows, then columns)."""
    return linear_along(linear_along(x, x.dim() - 2, size[0], mode), x.dim() - 1, size[1], mode)


@kernel("upsample_bilinear")
def upsample_bilinear(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    align = args.bool("align_corners", True)
    half = args.bool("half_pixel_centers", not align)
    mode = "STRICT_ALIGN_CORNERS" if align else "HALF_PIXEL_CENTERS" if half else "DEFAULT"
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


@kernel("resize")
def resize(args: OpArgs) -> np.ndarray:
    """iOS17: the last ``resized_dims`` dims take their sizes from the end of ``shape`` (0 keeps x's size);
    LINEAR interpolates each resized dim in turn; NEAREST_NEIGHBOR (DEFAULT sampling) reads in[floor((i + 0.5)·in/out)],
    the pixel-centre rule Apple's iOS17 tests expect (2 -> 3 rows gives in[0], in[1], in[1])."""
    x = tensor(args.array("x"))
    target = args.ints("shape")
    count = args.int("resized_dims")
    interpolation = args.str("interpolation_mode", "LINEAR").upper()
    mode = args.str("sampling_mode", "DEFAULT").upper()
    out = x
    for j in range(count):
        dim = x.dim() - count + j
        size = target[len(target) - count + j] or x.shape[dim]
        if interpolation == "LINEAR":
            out = linear_along(out, dim, size, mode)
        elif interpolation == "NEAREST_NEIGHBOR" and mode == "DEFAULT":
            out = out.index_select(dim, _nearest(size, x.shape[dim], half_pixel=True))
        else:
            raise args.fail(f"{interpolation} interpolation with {mode} sampling is not implemented")
    return out.contiguous().numpy().astype(args.out_dtype(), copy=False)


def _box_axis(start: float, end: float, out: int) -> np.ndarray:
    """ALIGN_CORNERS sampling of [start, end] at ``out`` points (one point: the box centre)."""
    if out == 1:
        return np.array([(start + end) / 2.0])
    return start + np.arange(out) * ((end - start) / (out - 1))


def _sample(image: np.ndarray, rows: np.ndarray, cols: np.ndarray, pad: float) -> np.ndarray:
    """Bilinear samples of a [C, H, W] image at rows x cols; points outside the image get ``pad``."""
    h, w = image.shape[-2:]
    r0 = np.clip(np.floor(rows), 0, h - 1).astype(np.int64)
    c0 = np.clip(np.floor(cols), 0, w - 1).astype(np.int64)
    r1, c1 = np.minimum(r0 + 1, h - 1), np.minimum(c0 + 1, w - 1)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = image[:, r0][:, :, c0] * (1 - fc) + image[:, r0][:, :, c1] * fc
    bottom = image[:, r1][:, :, c0] * (1 - fc) + image[:, r1][:, :, c1] * fc
    out = top * (1 - fr) + bottom * fr
    inside = ((rows >= 0) & (rows <= h - 1))[:, None] & ((cols >= 0) & (cols <= w - 1))[None, :]
    return np.where(inside, out, pad)


@kernel("crop_resize")
def crop_resize(args: OpArgs) -> np.ndarray:
    """Bilinear crops of boxes, ALIGN_CORNERS sampling (the corners of a box are sampled exactly; other
    sampling modes are not implemented). iOS15/16: roi [N, 1, 4|5, 1, 1] (a 5th leading entry is the batch
    index), output [N, B|1, C, h, w]; iOS17: boxes [N, 4] + box_indices, output [N, C, h, w]."""
    x = args.array("x").astype(np.float64)
    mode = args.str("sampling_mode", "DEFAULT").upper()
    if mode not in ("ALIGN_CORNERS", "STRICT_ALIGN_CORNERS"):
        raise args.fail(f"crop_resize with {mode} sampling is not implemented")
    height, width = args.int("target_height", 1), args.int("target_width", 1)
    ios17 = args.has("boxes")
    if ios17:
        boxes = args.array("boxes").astype(np.float64).reshape(-1, 4)
        indices = (args.array("box_indices").astype(np.int64).reshape(-1) if args.has("box_indices")
                   else np.arange(boxes.shape[0]))
    else:
        roi = args.array("roi").astype(np.float64).reshape(args.array("roi").shape[0], -1)
        boxes, indices = (roi[:, 1:], roi[:, 0].astype(np.int64)) if roi.shape[1] == 5 else (roi, None)
    boxes = boxes * args.float("spatial_scale", 1.0)
    box_mode = args.str("box_coordinate_mode", "CORNERS_HEIGHT_FIRST").upper()
    if box_mode == "CORNERS_WIDTH_FIRST":
        boxes = boxes[:, [1, 0, 3, 2]]
    elif box_mode.startswith("CENTER_SIZE"):
        if box_mode == "CENTER_SIZE_WIDTH_FIRST":
            boxes = boxes[:, [1, 0, 3, 2]]
        centre, size = boxes[:, :2], boxes[:, 2:]
        boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    if args.bool("normalized_coordinates"):
        h_in, w_in = x.shape[-2:]
        boxes = boxes * np.array([h_in - 1, w_in - 1, h_in - 1, w_in - 1])
    pad = args.float("pad_value", 0.0)
    crops = []
    for n, (h0, w0, h1, w1) in enumerate(boxes):
        rows, cols = _box_axis(h0, h1, height), _box_axis(w0, w1, width)
        images = range(x.shape[0]) if indices is None else [int(indices[n])]
        crops.append(np.stack([_sample(x[b], rows, cols, pad) for b in images]))
    out = np.stack(crops)  # [N, B|1, C, h, w]
    return (out[:, 0] if ios17 else out).astype(np.float32)
