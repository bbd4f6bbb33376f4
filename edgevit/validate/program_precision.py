"""An artifact's precision, read from its program: what it stores and computes, never what its name or manifest says.

Why: the precision picks the verdict's bounds and floors, so an artifact that could declare its own precision
could choose how it is judged (an fp32 ``.onnx`` renamed ``*.int8.onnx`` was once judged as int8). The program
says it instead:

- ML program: activation ``quantize``/``dequantize`` ops -> w8a8; ``constexpr_lut_to_dense`` -> palette<bits>;
  ``constexpr_affine_dequantize`` / ``constexpr_blockwise_shift_scale`` -> w8 or w4 by the stored int width;
  otherwise fp16 or fp32 by the stored weights' type;
- ONNX: ``QuantizeLinear``/``DequantizeLinear``/``QLinear*`` nodes -> int8, else fp16 or fp32 by the initializers;
- ``.pte``: an XNNPACK graph with quantized datatypes -> int8; CoreML partitions -> their programs' precision;
  otherwise fp32.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgevit.base.errors import ArtifactError, PteError
from edgevit.base.naming import target_of


def mil_precision(functions) -> str:
    """The storage/compute precision of one or more pymil functions (see the module docstring)."""
    from edgevit.mil.interpreter import walk

    ops = [op for function in functions for op in walk(function.operations)]
    types = Counter(op.op_type for op in ops)
    if types.get("quantize") or types.get("dequantize"):
        return "w8a8"
    for op in ops:
        if op.op_type == "constexpr_lut_to_dense":
            lut = np.asarray(op.inputs["lut"].val)
            entries = lut.size if "shape" in op.inputs else lut.shape[-2]
            return f"palette{int(round(np.log2(entries)))}"
    for op in ops:
        if op.op_type in ("constexpr_affine_dequantize", "constexpr_blockwise_shift_scale"):
            from coremltools.converters.mil.mil import types

            data = op.inputs["quantized_data" if "quantized_data" in op.inputs else "data"]
            return "w4" if "4" in types.builtin_to_string(data.dtype) else "w8"
    for op in ops:
        if op.op_type == "const":
            value = op.outputs[0].val
            if isinstance(value, np.ndarray) and value.dtype == np.float16 and value.size > 1:
                return "fp16"
    return "fp32"


def onnx_precision(path: Path) -> str:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    types = {node.op_type for node in model.graph.node}
    if types & {"QuantizeLinear", "DequantizeLinear"} or any(t.startswith("QLinear") for t in types):
        return "int8"
    if any(init.data_type == onnx.TensorProto.FLOAT16 for init in model.graph.initializer):
        return "fp16"
    return "fp32"


def pte_precision(path: Path, coreml_programs=None) -> str:
    """``coreml_programs``: the pymil functions of a CoreML-delegated ``.pte``'s partitions, when the caller has
    them; otherwise the XNNPACK graphs decide."""
    import tempfile

    from edgevit.base.errors import NoCoreMLDelegateError
    from edgevit.export.pte_coreml import extract_coreml_delegates
    from edgevit.export.pte_xnnpack import xnnpack_graphs

    if coreml_programs:
        return mil_precision(coreml_programs)
    with tempfile.TemporaryDirectory(prefix="edgevit-precision-") as tmp:
        try:
            packages = extract_coreml_delegates(path, Path(tmp))
        except NoCoreMLDelegateError:
            packages = []
        if packages:
            from edgevit.mil.load import load_program

            return mil_precision([load_program(package).main for package in packages])
    graphs = xnnpack_graphs(path)
    return "int8" if any(g.quantized for g in graphs) else "fp32"


def program_precision(artifact: Path, functions=None) -> str:
    """The precision ``artifact``'s program stores (``functions``: its ML program(s), when already loaded)."""
    target = target_of(artifact)
    try:
        if target == "onnx":
            return onnx_precision(artifact)
        if target == "executorch":
            return pte_precision(artifact, functions)
        if functions is None:
            from edgevit.mil.load import load_program

            functions = [load_program(artifact).main]
        return mil_precision(functions)
    except (ArtifactError, PteError):
        raise
    except Exception as exc:  # noqa: BLE001 - an unreadable program cannot have its precision established
        raise ArtifactError(f"cannot read the precision of {artifact.name}'s program ({type(exc).__name__}: "
                            f"{exc}); is it corrupt? Re-run edgevit convert.") from None
