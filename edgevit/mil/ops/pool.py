"""avg_pool, max_pool and l2_pool with MIL's padding, ``ceil_mode`` and ``exclude_padding_from_average``.

The output size is the op's inferred output shape (MIL's own shape rule, ceil_mode included); windows that
run past the padded input (ceil mode) see nothing there: they are never counted in an average.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.activation import tensor
from edgevit.mil.ops.conv import pad_input, spatial_padding

_AVG = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}
_MAX = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}


def _windows(args: OpArgs, x: torch.Tensor) -> tuple[list[int], list[int], list[tuple[int, int]], list[int]]:
    """kernel sizes, strides, explicit padding, and the overhang each dim needs to give the output size."""
    n = x.dim() - 2
    kernel_sizes = args.ints("kernel_sizes")
    strides = args.ints("strides", [1] * n)
    padding = spatial_padding(args, list(x.shape[2:]), kernel_sizes, strides, [1] * n)
    out_sizes = args.out_shape()[2:]
    overhang = []
    for size, (b, e), k, s, out in zip(x.shape[2:], padding, kernel_sizes, strides, out_sizes, strict=True):
        overhang.append(max((int(out) - 1) * s + k - (size + b + e), 0))
    return kernel_sizes, strides, padding, overhang


def _sum_pool(x: torch.Tensor, kernel_sizes: list[int], strides: list[int]) -> torch.Tensor:
    n = x.dim() - 2
    area = int(np.prod(kernel_sizes))
    return _AVG[n](x, kernel_sizes, strides) * area


@kernel("avg_pool")
def avg_pool(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    kernel_sizes, strides, padding, overhang = _windows(args, x)
    exclude = args.bool("exclude_padding_from_average", False)
    full = [(b, e + o) for (b, e), o in zip(padding, overhang, strict=True)]
    sums = _sum_pool(pad_input(x, full), kernel_sizes, strides)
    ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
    if exclude:
        counted = pad_input(ones, full)
    else:  # explicit padding counts, the ceil-mode overhang does not
        counted = pad_input(pad_input(ones, padding, value=1.0), [(0, o) for o in overhang])
    counts = _sum_pool(counted, kernel_sizes, strides)
    return (sums / counts).numpy()


@kernel("max_pool")
def max_pool(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    kernel_sizes, strides, padding, overhang = _windows(args, x)
    full = [(b, e + o) for (b, e), o in zip(padding, overhang, strict=True)]
    return _MAX[x.dim() - 2](pad_input(x, full, value=-np.inf), kernel_sizes, strides).numpy()


@kernel("l2_pool")
def l2_pool(args: OpArgs) -> np.ndarray:
    x = tensor(args.array("x"))
    kernel_sizes, strides, padding, overhang = _windows(args, x)
    full = [(b, e + o) for (b, e), o in zip(padding, overhang, strict=True)]
    return torch.sqrt(_sum_pool(pad_input(x * x, full), kernel_sizes, strides)).numpy()
