"""Elementwise MIL ops: binary arithmetic and comparisons (numpy broadcasting), unary maths, clip, cast."""

from __future__ import annotations

import numpy as np
import torch

from edgevit.mil.kernels import OpArgs, kernel

_BINARY = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "maximum": np.maximum,
    "minimum": np.minimum,
    "equal": np.equal,
    "not_equal": np.not_equal,
    "greater": np.greater,
    "greater_equal": np.greater_equal,
    "less": np.less,
    "less_equal": np.less_equal,
    "logical_and": np.logical_and,
    "logical_or": np.logical_or,
    "logical_xor": np.logical_xor,
}


def _binary(fn):
    def run(args: OpArgs) -> np.ndarray:
        return fn(args.array("x"), args.array("y")).astype(args.out_dtype(), copy=False)

    return run


for _name, _fn in _BINARY.items():
    kernel(_name)(_binary(_fn))


@kernel("real_div")
def real_div(args: OpArgs) -> np.ndarray:
    x, y = args.array("x"), args.array("y")
    if args.out_dtype().kind in "iu":  # integer real_div truncates toward zero after a float divide
        return np.trunc(x.astype(np.float64) / y).astype(args.out_dtype())
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.true_divide(x, y)


@kernel("floor_div")
def floor_div(args: OpArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.floor_divide(args.array("x"), args.array("y"))


@kernel("mod")
def mod(args: OpArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.mod(args.array("x"), args.array("y"))


@kernel("pow")
def power(args: OpArgs) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        return np.power(args.array("x"), args.array("y"))


def _erf(x: np.ndarray) -> np.ndarray:
    return torch.special.erf(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()


_UNARY = {
    "abs": np.abs,
    "acos": np.arccos,
    "asin": np.arcsin,
    "atan": np.arctan,
    "atanh": np.arctanh,
    "ceil": np.ceil,
    "cos": np.cos,
    "cosh": np.cosh,
    "erf": _erf,
    "exp": np.exp,
    "exp2": np.exp2,
    "floor": np.floor,
    "round": np.round,  # MIL rounds half to even, as numpy does
    "sign": np.sign,
    "sin": np.sin,
    "sinh": np.sinh,
    "sqrt": np.sqrt,
    "square": np.square,
    "tan": np.tan,
    "tanh": np.tanh,
    "logical_not": np.logical_not,
}


def _unary(fn):
    def run(args: OpArgs) -> np.ndarray:
        with np.errstate(all="ignore"):
            return np.asarray(fn(args.array("x"))).astype(args.out_dtype(), copy=False)

    return run


for _name, _fn in _UNARY.items():
    kernel(_name)(_unary(_fn))


@kernel("rsqrt")
def rsqrt(args: OpArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / np.sqrt(args.array("x") + args.float("epsilon", 1e-12))


@kernel("inverse")
def inverse(args: OpArgs) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return 1.0 / (args.array("x") + args.float("epsilon", 1e-4))


@kernel("log")
def log(args: OpArgs) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(args.array("x") + args.float("epsilon", 1e-45))


@kernel("clip")
def clip(args: OpArgs) -> np.ndarray:
    return np.minimum(np.maximum(args.array("x"), args.array("alpha")), args.array("beta"))


@kernel("threshold")
def threshold(args: OpArgs) -> np.ndarray:
    return np.maximum(args.array("x"), args.array("alpha"))


_CAST_TYPES = {"fp16": np.float16, "fp32": np.float32, "fp64": np.float64, "int32": np.int32, "int16": np.int16,
               "int8": np.int8, "uint8": np.uint8, "uint16": np.uint16, "bool": np.bool_, "int64": np.int64}


@kernel("cast")
def cast(args: OpArgs) -> np.ndarray:
    """Float to int casts truncate toward zero (C semantics); to fp16 rounds to nearest even."""
    x, target = args.array("x"), args.str("dtype")
    if target not in _CAST_TYPES:
        raise args.fail(f"unknown cast dtype {target!r}")
    np_type = _CAST_TYPES[target]
    if np.dtype(np_type).kind in "iu" and x.dtype.kind == "f":
        info = np.iinfo(np_type)
        return np.clip(np.trunc(x), info.min, info.max).astype(np_type)
    return x.astype(np_type)


@kernel("identity")
def identity(args: OpArgs) -> np.ndarray:
    return args["x"]


