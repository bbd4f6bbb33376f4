"""linear, matmul (transpose flags, numpy broadcasting), einsum and iOS18 scaled_dot_product_attention, on
torch's CPU GEMM.

iOS17 lets ``linear``'s weight/bias and one const side of ``matmul`` have another dtype than the input
(e.g. fp32 activations times int32 weights); the product is then computed in a common type (fp32 if either
side is a float, int64 for two ints) and returned in the op's output dtype.
"""

from __future__ import annotations

import numpy as np
import torch

from edgevit.mil.kernels import OpArgs, kernel
from edgevit.mil.ops.activation import tensor


def _common(*values: torch.Tensor) -> list[torch.Tensor]:
    """The operands in one compute dtype (they may differ from iOS17 on)."""
    if all(v.dtype == values[0].dtype for v in values):
        return list(values)
    floats = [v.dtype for v in values if v.dtype.is_floating_point]
    target = (torch.float64 if torch.float64 in floats else torch.float32) if floats else torch.int64
    return [v.to(target) for v in values]


def _in_dtype(out: torch.Tensor, args: OpArgs) -> np.ndarray:
    result = out.numpy()
    dtype = args.out_dtype()
    if dtype.kind in "iu" and result.dtype.kind == "f":  # float product into an int output: C truncation
        result = np.trunc(result)
    return result.astype(dtype, copy=False)


@kernel("linear")
def linear(args: OpArgs) -> np.ndarray:
    """x @ weightᵀ + bias, weight [D_out, D_in]."""
    x, weight = tensor(args.array("x")), args.tensor("weight")
    if x.dtype != weight.dtype or not x.dtype.is_floating_point:
        operands = _common(x, weight, *([args.tensor("bias")] if args.has("bias") else []))
        out = torch.matmul(operands[0], operands[1].transpose(-1, -2))
        if len(operands) == 3:
            out = out + operands[2]
        return _in_dtype(out, args)
    out = torch.nn.functional.linear(x, weight)
    return (out + args.tensor("bias")).numpy() if args.has("bias") else out.numpy()


@kernel("matmul")
def matmul(args: OpArgs) -> np.ndarray:
    x, y = _common(tensor(args.array("x")), tensor(args.array("y")))
    if args.bool("transpose_x") and x.dim() >= 2:
        x = x.transpose(-1, -2)
    if args.bool("transpose_y") and y.dim() >= 2:
        y = y.transpose(-1, -2)
    if not x.dtype.is_floating_point:  # torch's integer GEMM: widen so int32 products cannot overflow
        x, y = x.to(torch.int64), y.to(torch.int64)
    return _in_dtype(torch.matmul(x, y), args)


@kernel("einsum")
def einsum(args: OpArgs) -> np.ndarray:
    values = _common(*[tensor(v) for v in args["values"]])
    return _in_dtype(torch.einsum(args.str("equation"), *values), args)


@kernel("scaled_dot_product_attention")
def scaled_dot_product_attention(args: OpArgs) -> np.ndarray:
    """softmax(Q·Kᵀ/√E + mask)·V; a bool mask keeps the True positions (the others get -inf)."""
    q, k, v = (tensor(args.array(n)) for n in ("query", "key", "value"))
    scores = torch.matmul(q, k.transpose(-1, -2)) / float(np.sqrt(q.shape[-1]))
    if args.has("attn_mask"):
        mask = tensor(args.array("attn_mask"))
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, float("-inf"))
        else:
            scores = scores + mask.to(scores.dtype)
    return torch.matmul(torch.softmax(scores, dim=-1), v).numpy()
