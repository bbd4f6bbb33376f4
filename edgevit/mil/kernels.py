"""The op table of the MIL reference interpreter: op type -> kernel, and what a kernel sees of its op.

A kernel is a small function ``kernel(args: OpArgs) -> value | tuple[value, ...]`` over numpy arrays (heavy
ops call torch's CPU kernels on zero-copy views). Values are numpy arrays in the op's MIL dtype, except
fp16-typed values, which are float32 arrays holding fp16-representable numbers (the interpreter rounds them
after each op), plus Python strings and lists for string/list inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgevit.base.errors import EdgevitError

Kernel = Callable[["OpArgs"], Any]
TORCH_CACHE = "\0torch"  # env key of the per-program cache of constants as torch tensors
# The environment maps Var objects (not names) to values: the milproto loader can give an unnamed const
# (a classifier's label list) an auto-generated name that another const of the same program already has.
KERNELS: dict[str, Kernel] = {}


class MilInterpreterError(EdgevitError):
    """The MIL reference interpreter cannot run a program: the message names the op type and the layer."""

    def __init__(self, message: str, op_type: str | None = None, layer: str | None = None):
        super().__init__(message)
        self.op_type = op_type
        self.layer = layer


class UnsupportedOpError(MilInterpreterError):
    """The program holds an op type the interpreter does not implement."""


def kernel(*op_types: str) -> Callable[[Kernel], Kernel]:
    """Register ``fn`` as the kernel of each MIL op type named."""

    def register(fn: Kernel) -> Kernel:
        for name in op_types:
            if name in KERNELS:
                raise RuntimeError(f"two kernels for MIL op {name!r}")
            KERNELS[name] = fn
        return fn

    return register


def numpy_dtype(mil_dtype) -> np.dtype:
    """The numpy dtype a MIL scalar type is held in (fp16 values are held as float32, rounded)."""
    from coremltools.converters.mil.mil import types

    table = {types.fp16: np.float32, types.fp32: np.float32, types.fp64: np.float64, types.bool: np.bool_,
             types.int8: np.int8, types.uint8: np.uint8, types.int16: np.int16, types.uint16: np.uint16,
             types.int32: np.int32, types.uint32: np.uint32, types.int64: np.int64, types.uint64: np.uint64}
    if mil_dtype in table:
        return np.dtype(table[mil_dtype])
    if types.is_int(mil_dtype):  # sub-byte ints (int4, uint1 ... of compressed weights), held unpacked
        return np.dtype(np.int32)
    raise TypeError(f"no numpy dtype for MIL type {types.builtin_to_string(mil_dtype)}")


class OpArgs:
    """One op's inputs, resolved to values, with typed accessors for its parameters."""

    def __init__(self, op, env: dict[str, Any], precision: str = "auto",
                 run_block: Callable[[Any, dict[str, Any]], None] | None = None):
        self.op = op
        self._env = env
        self.precision = precision
        self._run_block = run_block  # the interpreter's block runner, for control-flow ops (no import back)

    def run_nested(self, block, bindings: dict) -> list:
        """Run a nested block of this op (cond / while_loop) on a copy of the environment plus ``bindings``."""
        if self._run_block is None:
            raise self.fail("a nested block needs the interpreter's block runner")
        env = dict(self._env)
        env.update(bindings)
        self._run_block(block, env)
        return [env[var] if var in env else var.val for var in block.outputs]

    def _value(self, var) -> Any:
        if isinstance(var, (list, tuple)):
            return [self._value(v) for v in var]
        if var in self._env:
            return self._env[var]
        if var.val is not None:  # a constant the loader folded into the input itself
            return _const_value(var)
        raise MilInterpreterError(f"{self.op.op_type} {self.op.name!r}: input {var.name!r} has no value yet",
                                  self.op.op_type, self.op.name)

    def has(self, name: str) -> bool:
        return name in self.op.inputs

    def __getitem__(self, name: str) -> Any:
        if name not in self.op.inputs:
            raise MilInterpreterError(f"{self.op.op_type} {self.op.name!r}: required input {name!r} is missing",
                                      self.op.op_type, self.op.name)
        return self._value(self.op.inputs[name])

    def opt(self, name: str, default: Any = None) -> Any:
        return self._value(self.op.inputs[name]) if name in self.op.inputs else default

    def array(self, name: str) -> np.ndarray:
        return np.asarray(self[name])

    def tensor(self, name: str):
        """Input ``name`` as a torch tensor; a constant's tensor is made once and reused across runs
        (oneDNN caches its weight layout per tensor, so a fresh tensor per call is many times slower)."""
        import torch

        var = self.op.inputs[name]
        cache = self._env.get(TORCH_CACHE)
        if cache is not None and var.op is not None and var.op.op_type == "const":
            if var not in cache:
                cache[var] = torch.from_numpy(np.ascontiguousarray(self[name]))
            return cache[var]
        return torch.from_numpy(np.ascontiguousarray(self[name]))

    def ints(self, name: str, default: Any = None) -> list[int] | None:
        value = self.opt(name)
        return default if value is None else [int(v) for v in np.asarray(value).reshape(-1)]

    def int(self, name: str, default: int | None = None) -> int | None:
        value = self.opt(name)
        return default if value is None else int(np.asarray(value).reshape(-1)[0])

    def float(self, name: str, default: float | None = None) -> float | None:
        value = self.opt(name)
        return default if value is None else float(np.asarray(value).reshape(-1)[0])

    def bool(self, name: str, default: bool = False) -> bool:
        value = self.opt(name)
        return default if value is None else bool(np.asarray(value).reshape(-1)[0])

    def str(self, name: str, default: str | None = None) -> str | None:
        value = self.opt(name)
        return default if value is None else str(value)

    def out_dtype(self, index: int = 0) -> np.dtype:
        return numpy_dtype(self.op.outputs[index].dtype)

    def out_shape(self, index: int = 0) -> tuple:
        return tuple(self.op.outputs[index].shape)

    def fail(self, message: str) -> MilInterpreterError:
        return MilInterpreterError(f"{self.op.op_type} {self.op.name!r}: {message}", self.op.op_type, self.op.name)


def _const_value(var) -> Any:
    """A const var's value in the interpreter's representation."""
    from coremltools.converters.mil.mil import types

    val = var.val
    if isinstance(val, (list, tuple)) or not hasattr(var, "sym_type") or types.is_list(var.sym_type):
        return list(val)
    if isinstance(val, (str, bytes)) or types.is_str(var.dtype):
        return val
    if isinstance(val, (list, tuple)):
        return list(val)
    arr = np.asarray(val)
    if arr.dtype.kind in "OUS":
        return arr.tolist()
    try:
        return arr.astype(numpy_dtype(var.dtype), copy=False)
    except TypeError:
        return arr


const_value = _const_value
