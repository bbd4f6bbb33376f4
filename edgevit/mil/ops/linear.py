"""linear, matmul (transpose flags, numpy broadcasting) and einsum, on torch's CPU GEMM."""

from __future__ import annotations

import numpy as np
import torch

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.activation import tensor


@kernel("linear")
def linear(args: OpArgs) -> np.ndarray:
    """x @ weightᵀ + bias, weight [D_out, D_in]."""
    out = torch.nn.functional.linear(tensor(args.array("x")), args.tensor("weight"))
    return (out + args.tensor("bias")).numpy() if args.has("bias") else out.numpy()


@kernel("matmul")
def matmul(args: OpArgs) -> np.ndarray:
    x, y = tensor(args.array("x")), tensor(args.array("y"))
    if args.bool("transpose_x") and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if args.bool("transpose_y") and y.dim() >= 2:
        y = y.transpose(-1, -2)
    return torch.matmul(x, y).numpy()


@kernel("einsum")
def einsum(args: OpArgs) -> np.ndarray:
    values = [tensor(v) for v in args["values"]]
    return torch.einsum(args.str("equation"), *values).numpy()
