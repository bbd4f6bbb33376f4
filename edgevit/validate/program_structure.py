"""The compute graph of a W8A8 ML program against the one edgevit rebuilds from the original
(edgevit.validate.w8a8_reference).

Why: a W8A8 program rounds its activations to int8, and a dropped op can hide in that rounding (measured: on
fastvit-t8 the clean package and the one with a residual add removed are both 41% relative L2 from the float logits).
Activation quantization only inserts ``quantize``/``dequantize`` pairs and weight compression only replaces
constants, so every compute op of the package must be one of the rebuilt program: same op type, same name
(coremltools names values after the torch.export nodes), same inputs (read through the quantize/dequantize pairs).
A dropped, added or rewired op is named, whatever its numeric effect."""

from __future__ import annotations

import re

_SUFFIX = re.compile(r"(_cast_fp16|_cast_fp32|_to_fp16|_to_fp32)+$")
_TRANSPARENT = {"quantize", "dequantize"}  # what activation quantization inserts
_STORAGE = ("const", "constexpr_")  # what weight compression replaces


def compute_ops(function) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Output name -> (op type, input names) of every compute op, names without precision suffixes and inputs read
    through quantize/dequantize; constants (compressed or not) are named by kind only, not by value."""
    producers = {var.name: op for op in function.operations for var in op.outputs}

    def source(name: str) -> str:
        op = producers.get(name)
        while op is not None and op.op_type in _TRANSPARENT:
            name = op.input.name
            op = producers.get(name)
        if op is not None and op.op_type.startswith(_STORAGE):
            return "<constant>"
        return _SUFFIX.sub("", name)

    found = {}
    for op in function.operations:
        if op.op_type in _TRANSPARENT or op.op_type.startswith(_STORAGE):
            continue
        inputs = []
        for value in op.inputs.values():
            for var in value if isinstance(value, list | tuple) else [value]:
                if hasattr(var, "name"):
                    inputs.append(source(var.name))
        for out in op.outputs:
            found[_SUFFIX.sub("", out.name)] = (op.op_type, tuple(inputs))
    return found


def _show(inputs: tuple[str, ...]) -> str:
    return ", ".join(i for i in inputs if i != "<constant>") or "constants only"


def structure_differences(artifact_function, reference_function, limit: int = 5) -> list[str]:
    """What differs between the two programs' compute graphs, at most ``limit`` items, in the artifact's op order."""
    mine, theirs = compute_ops(artifact_function), compute_ops(reference_function)
    found = []
    for name, (op_type, inputs) in mine.items():
        if name not in theirs:
            found.append(f"{op_type} {name!r} is not in coremltools' conversion of the original")
        elif theirs[name] != (op_type, inputs):
            want = theirs[name]
            found.append(f"{op_type} {name!r} reads {_show(inputs)}; coremltools' conversion has {want[0]} reading "
                         f"{_show(want[1])}")
    found += [f"{op_type} {name!r} of coremltools' conversion of the original is missing"
              for name, (op_type, _) in theirs.items() if name not in mine]
    return found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else [])
