"""Tampers for the parity matrix: change one stored tensor (or drop one residual add) in a copy of an artifact, and
re-hash its manifest as if it had been published so, so that only the numbers can catch it.

A stored tensor is changed where its bytes are: found by content in the file that holds them (``weight.bin`` of a
package, the ``.onnx``, the ``.pte`` with its XNNPACK named data or its embedded CoreML packages) and replaced by
bytes of the same length. Each tamper is a function of the stored array (in its stored dtype).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit.base.digest import sha256_of
from edgevit.base.naming import bundle_path, manifest_path

WEIGHT_BIN = Path("Data/com.apple.CoreML/weights/weight.bin")


@dataclass
class Stored:
    name: str
    array: np.ndarray  # as stored (fp16, fp32, int8, uint8 ...)
    role: str  # "weight", "bias", "scale", "palette", "other"


def copy_artifact(src: Path, folder: Path) -> Path:
    """The artifact, its manifest and its bundle copied into ``folder``; the copy's path."""
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name
    (shutil.copytree if src.is_dir() else shutil.copy2)(src, dst)
    shutil.copy2(manifest_path(src), manifest_path(dst))
    if bundle_path(src).exists():
        shutil.copytree(bundle_path(src), bundle_path(dst))
    return dst


def rehash(artifact: Path) -> None:
    """The manifest's sha256 set to the (tampered) artifact's: it looks published like this."""
    path = manifest_path(artifact)
    manifest = json.loads(path.read_text())
    manifest["sha256"] = sha256_of(artifact)
    path.write_text(json.dumps(manifest, indent=2))


def holder(artifact: Path) -> Path:
    """The file whose bytes hold the stored tensors."""
    return artifact / WEIGHT_BIN if artifact.suffix == ".mlpackage" else artifact


def replace_bytes(path: Path, old: bytes, new: bytes) -> None:
    data = path.read_bytes()
    assert len(old) == len(new) and len(old) >= 16, "a tamper keeps the tensor's size"
    at = data.find(old)
    assert at >= 0, f"the tensor's bytes are not in {path.name}"
    assert data.find(old, at + 1) < 0, f"the tensor's bytes occur twice in {path.name}: pick another"
    path.write_bytes(data[:at] + new + data[at + len(old):])


def _role(name: str, array: np.ndarray, consumers: set[str] | None = None) -> str:
    lower = name.lower()
    if "lut" in lower or "palett" in lower and array.ndim <= 2:
        return "palette"
    if "scale" in lower:
        return "scale"
    if "bias" in lower:
        return "bias"
    if "weight" in lower or array.ndim >= 2:
        return "weight"
    return "other"


def stored_tensors(artifact: Path) -> list[Stored]:
    """The tensors an artifact stores, in its own dtypes, each with a guess at its role from its name or shape."""
    if artifact.suffix == ".onnx":
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(artifact))
        return [Stored(t.name, numpy_helper.to_array(t), _role(t.name, numpy_helper.to_array(t)))
                for t in model.graph.initializer]
    if artifact.suffix == ".mlpackage":
        from edgevit.mil import load_program

        return _mil_tensors(load_program(artifact).main)
    from edgevit.export.pte_xnnpack import constant_buffers

    found = []
    for key, data, meta in constant_buffers(artifact):
        kind = meta.split(" ")[0]
        dtype = {"xnn_datatype_fp32": np.float32, "xnn_datatype_qcint8": np.int8, "xnn_datatype_qint8": np.int8,
                 "xnn_datatype_qcint32": np.int32, "xnn_datatype_qint32": np.int32, "scales": np.float32}.get(kind)
        if dtype is None:
            continue
        dims = json.loads(meta.split(" ", 1)[1]) if " " in meta else [len(data) // np.dtype(dtype).itemsize]
        array = np.frombuffer(data, dtype=dtype).reshape(dims)
        role = "scale" if kind == "scales" else "bias" if array.ndim == 1 else "weight"
        found.append(Stored(key, array.copy(), role))
    return found


def _mil_tensors(function) -> list[Stored]:
    found = []
    for op in function.operations:
        if op.op_type != "const":
            continue
        value = op.outputs[0].val
        if isinstance(value, np.ndarray) and value.size >= 16 and value.dtype.kind in "fiu":
            found.append(Stored(op.outputs[0].name, value, _role(op.outputs[0].name, value)))
    return found


def coreml_pte_tensors(artifact: Path) -> list[Stored]:
    from edgevit.export.pte_coreml import extract_coreml_delegates
    from edgevit.mil import load_program

    with tempfile.TemporaryDirectory() as tmp:
        return [t for package in extract_coreml_delegates(artifact, Path(tmp))
                for t in _mil_tensors(load_program(package).main)]


def tamper_tensor(artifact: Path, tensor: Stored, change: Callable[[np.ndarray], np.ndarray]) -> None:
    """Replace ``tensor``'s bytes in the artifact by ``change(array)``'s, then re-hash the manifest."""
    new = np.ascontiguousarray(change(tensor.array.copy())).astype(tensor.array.dtype)
    assert new.shape == tensor.array.shape
    assert not np.array_equal(new, tensor.array), f"the tamper leaves {tensor.name} unchanged"
    replace_bytes(holder(artifact), tensor.array.tobytes(), new.tobytes())
    rehash(artifact)


# --- the changes ---------------------------------------------------------------------------------------------

def negate(a: np.ndarray) -> np.ndarray:
    return -a


def swap_channels(a: np.ndarray) -> np.ndarray:
    """Output channels 0 and the first one that differs from it swapped (axis 0)."""
    other = next(i for i in range(1, a.shape[0]) if not np.array_equal(a[i], a[0]))
    a[[0, other]] = a[[other, 0]]
    return a


def zero(a: np.ndarray) -> np.ndarray:
    return np.zeros_like(a)


def scale_by(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    def change(a: np.ndarray) -> np.ndarray:
        return (a.astype(np.float64) * factor).astype(a.dtype)

    return change


def scale_one(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    """One element (the largest, a per-channel scale or one activation's) multiplied by ``factor``."""
    def change(a: np.ndarray) -> np.ndarray:
        flat = a.reshape(-1)
        i = int(np.argmax(np.abs(flat)))
        flat[i] = flat[i] * factor
        return a

    return change


# --- dropping one residual add -------------------------------------------------------------------------------

def drop_mil_add(package: Path) -> str:
    """Remove one ``add`` of two computed values from the package's program: its users read its first input.
    Returns the op's name."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    consts = {op.outputs[0].name for op in block.operations if op.type == "const"}
    adds = [op for op in block.operations if op.type == "add" and
            all(a.arguments[0].name not in consts for a in (op.inputs["x"], op.inputs["y"]))]
    assert adds, "no residual add in the program"
    op = adds[len(adds) // 2]
    dropped, keep = op.outputs[0].name, op.inputs["x"].arguments[0].name
    for other in block.operations:
        for argument in other.inputs.values():
            for binding in argument.arguments:
                if binding.name == dropped:
                    binding.name = keep
    block.operations.remove(op)
    model_file = package / "Data/com.apple.CoreML/model.mlmodel"
    model_file.write_bytes(spec.SerializeToString())
    rehash(package)
    return dropped


def scale_mil_activation(package: Path, factor: float, index: int | None = None) -> str:
    """Multiply one activation ``quantize`` op's scale (an fp16 or fp32 immediate in the program) by ``factor``:
    a W8A8 package quantizing one tensor with another scale than its calibration gave. Returns the op's name."""
    import coremltools as ct

    spec = ct.utils.load_spec(str(package))
    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    consts = {op.outputs[0].name: op for op in block.operations if op.type == "const"}
    quantizes = [op for op in block.operations if op.type == "quantize"]
    assert quantizes, "no activation quantize op in the program"
    op = quantizes[len(quantizes) // 2 if index is None else index]
    tensor = consts[op.inputs["scale"].arguments[0].name].attributes["val"].immediateValue.tensor
    if tensor.bytes.values:  # fp16 immediates are stored as raw bytes
        value = np.frombuffer(tensor.bytes.values, np.float16)
        changed = (value.astype(np.float32) * factor).astype(np.float16)
        assert not np.array_equal(changed, value), "the change is a no-op at fp16"
        tensor.bytes.values = changed.tobytes()
    else:
        tensor.floats.values[:] = [v * factor for v in tensor.floats.values]
    (package / "Data/com.apple.CoreML/model.mlmodel").write_bytes(spec.SerializeToString())
    rehash(package)
    return op.attributes["name"].immediateValue.tensor.strings.values[0]


def drop_onnx_add(path: Path) -> str:
    import onnx

    model = onnx.load(str(path))
    initializers = {t.name for t in model.graph.initializer}
    producers = {o for n in model.graph.node for o in n.output}
    adds = [n for n in model.graph.node if n.op_type == "Add" and all(i in producers and i not in initializers
                                                                     for i in n.input)]
    assert adds, "no residual Add in the graph"
    node = adds[len(adds) // 2]
    dropped, keep = node.output[0], node.input[0]
    for other in model.graph.node:
        for i, name in enumerate(other.input):
            if name == dropped:
                other.input[i] = keep
    for output in model.graph.output:
        assert output.name != dropped
    model.graph.node.remove(node)
    onnx.save(model, str(path))
    rehash(path)
    return dropped
