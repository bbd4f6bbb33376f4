"""iOS17 activation quantization: ``quantize`` (float -> int8/uint8) and ``dequantize`` (back to float).

quantize: clip(round(x / scale) + zero_point) to the output int range, rounding half to even;
dequantize: scale · (x - zero_point). scale / zero_point are scalars or vectors along ``axis``.
"""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.constexpr import along_axis

_INT_TYPES = {"int8": np.int8, "uint8": np.uint8}


def _params(args: OpArgs, rank: int) -> tuple[np.ndarray, np.ndarray]:
    scale = args.array("scale").astype(np.float32)
    zero_point = args.array("zero_point").astype(np.float32) if args.has("zero_point") else np.float32(0)
    axis = args.int("axis")
    if axis is not None:
        axis %= rank
        scale = along_axis(scale.reshape(-1) if scale.size > 1 else scale.reshape(()), rank, axis)
        if np.ndim(zero_point) and np.size(zero_point) > 1:
            zero_point = along_axis(zero_point.reshape(-1), rank, axis)
    return scale, np.asarray(zero_point).reshape(()) if np.size(zero_point) == 1 else zero_point


@kernel("quantize")
def quantize(args: OpArgs) -> np.ndarray:
    x = args.array("input").astype(np.float32)
    target = args.str("output_dtype")
    if target not in _INT_TYPES:
        raise args.fail(f"unknown output_dtype {target!r}")
    scale, zero_point = _params(args, x.ndim)
    info = np.iinfo(_INT_TYPES[target])
    return np.clip(np.round(x / scale) + zero_point, info.min, info.max).astype(_INT_TYPES[target])


@kernel("dequantize")
def dequantize(args: OpArgs) -> np.ndarray:
    x = args.array("input").astype(np.float32)
    scale, zero_point = _params(args, x.ndim)
    return scale * (x - zero_point)
