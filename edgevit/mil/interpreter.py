"""Execute a MIL function op by op on the CPU: edgevit's reference interpreter, not the CoreML runtime.

Precision: an fp32 program runs in fp32. In an fp16 program every fp16-typed value is rounded to fp16 after
the op that produces it (``precision="auto"``), which is how CoreML stores it between ops. Kernels compute
in fp32, so what this does not model is the device's accumulation order inside an op and the
compute-unit-specific kernels (Neural Engine, GPU): the iOS harness measures those. ``precision="fp32"``
skips the rounding, which shows how much of a difference fp16 storage alone makes.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

import numpy as np

from edgevit.mil import ops  # noqa: F401 - registers every kernel
from edgevit.mil.kernels import (
    KERNELS,
    TORCH_CACHE,
    MilInterpreterError,
    OpArgs,
    UnsupportedOpError,
    const_value,
    numpy_dtype,
)

PRECISIONS = ("auto", "fp32")
OVERFLOW = "\0fp16-overflow"  # env key: the first op whose fp16 storage overflowed
_CONST_OPS = frozenset({"const"})
# observe(op, var, value): called with every op output as stored (after fp16 rounding, where it applies)
Observer = Callable[[Any, Any, Any], None]
# rewrite(var, value) -> value stored instead: an emulation that perturbs chosen values (a fake-quantized activation,
# edgevit.export.coreml_sensitivity) runs the program's own kernels everywhere else; program inputs pass through it too
Rewrite = Callable[[Any, Any], Any]
# read(op, env) -> {var: value} the op reads instead of env's, or None: a per-edge perturbation (coremltools'
# activation passes put a quantize/dequantize pair on one consumer's input; other readers see the raw tensor)
Read = Callable[[Any, Any], Any]


def is_fp16(mil_dtype) -> bool:
    from coremltools.converters.mil.mil import types

    return mil_dtype == types.fp16


def op_types_of(function) -> set[str]:
    """Every op type in a function, nested blocks included."""
    return {op.op_type for op in walk(function.operations)}


def walk(operations: Iterable) -> Iterable:
    for op in operations:
        yield op
        for block in getattr(op, "blocks", ()):
            yield from walk(block.operations)


def missing_ops(function) -> list[str]:
    """Op types of ``function`` the interpreter has no kernel for, sorted."""
    return sorted(t for t in op_types_of(function) if t not in KERNELS and t not in _CONST_OPS)


def first_unsupported(function) -> UnsupportedOpError | None:
    """The error for the first op the interpreter lacks, naming the op type and the layer; None if all run."""
    for op in walk(function.operations):
        if op.op_type not in KERNELS and op.op_type not in _CONST_OPS:
            return UnsupportedOpError(
                f"MIL reference interpreter has no {op.op_type} (layer {op.name!r})", op.op_type, op.name)
    return None


def constants_of(function) -> dict[str, Any]:
    """The values of a function's top-level const ops (and an empty torch cache), computed once per program."""
    consts: dict[Any, Any] = {TORCH_CACHE: {}}
    for op in function.operations:
        if op.op_type in _CONST_OPS:
            consts[op.outputs[0]] = const_value(op.outputs[0])
    return consts


def run_function(function, feeds: dict[str, np.ndarray], *, precision: str = "auto",
                 constants: dict[str, Any] | None = None, report: dict[str, Any] | None = None,
                 observe: Observer | None = None, extra_outputs: Iterable[str] = (),
                 rewrite: Rewrite | None = None, read: Read | None = None) -> dict[str, Any]:
    """Run ``function`` on ``feeds`` (input name -> array in the input's dtype); output var name -> value.

    ``constants`` (from ``constants_of``) lets repeated runs of one program share its decoded weights.
    ``report`` receives ``fp16_overflow``: the first op whose finite result became infinite in fp16 storage.
    ``observe`` sees every op output as it is stored (for bisecting, or activation ranges for calibration);
    ``extra_outputs`` names inner values to return beside the function's outputs (a classifier's logits);
    ``rewrite`` replaces values as they are stored (inputs included), before ``observe`` sees them; ``read``
    replaces what one op reads (edgevit.mil.interpreter.Read).
    """
    if precision not in PRECISIONS:
        raise MilInterpreterError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    error = first_unsupported(function)
    if error is not None:
        raise error
    env: dict[str, Any] = dict(constants if constants is not None else constants_of(function))
    for name, var in function.inputs.items():
        if name not in feeds:
            raise MilInterpreterError(f"no value for program input {name!r}")
        env[var] = _store(np.asarray(feeds[name], dtype=numpy_dtype(var.dtype)), var, precision)
        if rewrite is not None:
            env[var] = rewrite(var, env[var])
    import torch

    wanted = set(extra_outputs)
    with torch.inference_mode():  # no autograd bookkeeping: the kernels are pure functions of their inputs
        run_block(function, env, precision, observe, rewrite, read)
    if report is not None:
        report["fp16_overflow"] = env.get(OVERFLOW)
    values = {var.name: env[var] for var in function.outputs}
    if wanted:
        found = {var.name: value for var, value in env.items() if getattr(var, "name", None) in wanted}
        missing = sorted(wanted - set(found))
        if missing:
            raise MilInterpreterError(f"the program has no value named {', '.join(missing)}")
        values.update(found)
    return values


def run_block(block, env: dict[str, Any], precision: str, observe: Observer | None = None,
              rewrite: Rewrite | None = None, read: Read | None = None) -> None:
    """Run every op of ``block`` in order, writing each output into ``env`` (and showing it to ``observe``)."""
    nested = partial(run_block, precision=precision, observe=observe, rewrite=rewrite, read=read)
    for op in block.operations:
        if op.op_type in _CONST_OPS:
            if op.outputs[0] not in env:
                env[op.outputs[0]] = const_value(op.outputs[0])
            continue
        try:
            overlay = read(op, env) if read is not None else None
            result = KERNELS[op.op_type](OpArgs(op, ChainMap(overlay, env) if overlay else env, precision, nested))
        except MilInterpreterError:
            raise
        except Exception as exc:  # noqa: BLE001 - a kernel bug or bad program: name the op, keep the cause
            raise MilInterpreterError(f"{op.op_type} {op.name!r} failed: {type(exc).__name__}: {exc}",
                                      op.op_type, op.name) from exc
        outputs = result if isinstance(result, tuple) else (result,)
        if len(outputs) != len(op.outputs):
            raise MilInterpreterError(f"{op.op_type} {op.name!r}: kernel gave {len(outputs)} outputs, "
                                      f"the op has {len(op.outputs)}", op.op_type, op.name)
        for var, value in zip(op.outputs, outputs, strict=True):
            env[var] = _store(value, var, precision)
            if rewrite is not None:
                env[var] = rewrite(var, env[var])
            if OVERFLOW not in env and _overflowed(value, env[var]):
                env[OVERFLOW] = f"{op.op_type} {op.name!r}"
            if observe is not None:
                observe(op, var, env[var])


def _overflowed(computed: Any, stored: Any) -> bool:
    """True when fp16 storage turned finite values into infinities (|x| > 65504)."""
    if not isinstance(stored, np.ndarray) or stored.dtype != np.float32 or stored is computed:
        return False
    return bool(np.isinf(stored).any() and not np.isinf(np.asarray(computed)).any())


def _store(value: Any, var, precision: str) -> Any:
    """A kernel's output in the var's representation: its numpy dtype, fp16 values rounded to fp16."""
    if isinstance(value, (str, list, dict)):
        return value
    try:
        dtype = numpy_dtype(var.dtype)
    except TypeError:  # strings, lists, dicts
        return value
    arr = np.asarray(value)
    if is_fp16(var.dtype) and precision == "auto":
        return arr.astype(np.float16).astype(np.float32)
    return arr.astype(dtype, copy=False)
