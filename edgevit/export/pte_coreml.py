"""Read a CoreML-delegated ExecuTorch ``.pte`` back into the ML program(s) it carries, and how they compose.

Why: the ExecuTorch CoreML delegate runs only on macOS/iOS, so on Linux the ``.pte`` would go unchecked. Its
partitions, though, are ordinary ML programs: ExecuTorch 1.5.1's CoreML backend saves each one as
``lowered_module/{model.mlpackage, metadata.json}`` and flattens that folder (``executorchcoreml``) into the
delegate's payload. The payload is inline in the program's delegate data, or, for a multi-method program, in
its named data, pointed at by ``b"CMJR" + JSON`` in the inline data. ``metadata.json`` lists the package's
inputs and outputs in the order of the delegate call's arguments, which is what wires a partition into the
method's value table. The file is read with ExecuTorch's own deserialiser, never by hand.

    packages = extract_coreml_delegates("m.executorch.coreml.fp16.pte", "out/")      # inspect them
    forward = read_delegated_forward("m.executorch.coreml.fp16.pte", "out/")         # or run the method
    logits, = forward.run([x], predict=lambda partition, feeds: ...)

A method is composable when its instructions are CoreML delegate calls (plus moves and frees): then running
the packages in instruction order on the value table computes the method. An ExecuTorch kernel anywhere in
it makes it uncomposable: the partitions alone are not the artifact's function.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit.base.errors import (
    CompiledCoreMLModelError,
    NoCoreMLDelegateError,
    NotAPteError,
    PteError,
    UncomposablePartitionsError,
    UsageError,
)

COREML_BACKEND_ID = "CoreMLBackend"
_REFERENCE_MAGIC = b"CMJR"  # coreml_preprocess.preprocess_multimethod: the payload lives in named data
_COMPILED = b"compiled_model"  # CoreMLBackend.MODEL_TYPE.COMPILED_MODEL, as stored in the compile specs
_NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "DOUBLE": np.float64, "INT": np.int32,
                 "LONG": np.int64, "BOOL": np.bool_, "BYTE": np.uint8, "CHAR": np.int8, "SHORT": np.int16}


@dataclass(frozen=True)
class CoreMLPartition:
    """One CoreML delegate of the method, extracted: its package and its I/O names in delegate-argument order."""

    delegate_index: int
    package: Path
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    function: str | None = None  # a multifunction package's function for this method; None: "main"


@dataclass(frozen=True)
class DelegateStep:
    """A delegate call: ``partition`` reads plan values ``inputs`` and writes plan values ``outputs``."""

    partition: CoreMLPartition
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


@dataclass(frozen=True)
class MoveStep:
    source: int
    target: int


Predict = Callable[[CoreMLPartition, dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass(frozen=True)
class DelegatedForward:
    """A method that is CoreML partitions only, as a program over the ``.pte``'s value table."""

    method: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    steps: tuple[DelegateStep | MoveStep, ...]
    shapes: dict[int, tuple[int, ...]]  # plan value index -> static tensor shape
    dtypes: dict[int, type]  # plan value index -> numpy dtype of the .pte's tensor

    @property
    def partitions(self) -> list[CoreMLPartition]:
        return [s.partition for s in self.steps if isinstance(s, DelegateStep)]

    def run(self, inputs: Sequence[np.ndarray], predict: Predict) -> list[np.ndarray]:
        """The method's outputs, each in the ``.pte``'s dtype (as the ExecuTorch runtime copies them out)."""
        if len(inputs) != len(self.inputs):
            raise UsageError(f"the .pte's {self.method} takes {len(self.inputs)} inputs, got {len(inputs)}")
        values: dict[int, np.ndarray] = {}
        for index, array in zip(self.inputs, inputs, strict=True):
            array = np.asarray(array, dtype=self.dtypes[index])
            if tuple(array.shape) != self.shapes[index]:
                raise UsageError(f"the .pte's {self.method} takes shape {self.shapes[index]}, got {array.shape}")
            values[index] = array
        for step in self.steps:
            if isinstance(step, MoveStep):
                values[step.target] = values[step.source]
                continue
            partition = step.partition
            feeds = {name: values[i] for name, i in zip(partition.input_names, step.inputs, strict=True)}
            produced = predict(partition, feeds)
            for name, i in zip(partition.output_names, step.outputs, strict=True):
                values[i] = np.asarray(produced[name]).astype(self.dtypes[i]).reshape(self.shapes[i])
        return [values[i] for i in self.outputs]


def extract_coreml_delegates(pte_path: str | Path, out_dir: str | Path, method: str = "forward") -> list[Path]:
    """Unflatten every CoreML delegate of ``method`` into ``out_dir``; the ``.mlpackage`` folders, in delegate order."""
    return [p.package for p in _extract(_read(Path(pte_path)), Path(pte_path), Path(out_dir), method)[1]]


def read_delegated_forward(pte_path: str | Path, out_dir: str | Path, method: str = "forward") -> DelegatedForward:
    """Extract ``method``'s CoreML partitions into ``out_dir`` and say how they compose.

    Raises UncomposablePartitionsError when the method runs any ExecuTorch kernel (or control flow): running its
    partitions alone would check something other than the artifact.
    """
    path = Path(pte_path)
    pte = _read(path)
    plan, partitions = _extract(pte, path, Path(out_dir), method)
    by_delegate = {p.delegate_index: p for p in partitions}
    steps: list[DelegateStep | MoveStep] = []
    kernels: list[str] = []
    other: list[str] = []
    for chain in plan.chains:
        for instruction in chain.instructions:
            args = instruction.instr_args
            kind = type(args).__name__
            if kind == "DelegateCall":
                partition = by_delegate.get(args.delegate_index)
                if partition is None:
                    other.append(f"a call to the {plan.delegates[args.delegate_index].id} delegate")
                    continue
                n_in = len(partition.input_names)
                if len(args.args) != n_in + len(partition.output_names):
                    raise PteError(f"{path.name}: CoreML delegate {partition.delegate_index} is called with "
                                   f"{len(args.args)} values, but its package has {n_in} inputs and "
                                   f"{len(partition.output_names)} outputs")
                steps.append(DelegateStep(partition, tuple(args.args[:n_in]), tuple(args.args[n_in:])))
            elif kind == "KernelCall":
                op = plan.operators[args.op_index]
                kernels.append(f"{op.name}.{op.overload}" if op.overload else op.name)
            elif kind == "MoveCall":
                steps.append(MoveStep(args.move_from, args.move_to))
            elif kind != "FreeCall":
                other.append(kind)
    if kernels or other or len(plan.chains) != 1:
        found = sorted(set(kernels)) + sorted(set(other))
        raise UncomposablePartitionsError(
            f"{path.name}: its {method} runs {len(partitions)} CoreML partition(s) with "
            f"{len(kernels) + len(other)} non-delegated instruction(s) between or around them "
            f"({', '.join(found) or f'{len(plan.chains)} chains'}); checking the partitions alone would not check "
            "the artifact's function, and the ExecuTorch runtime here cannot run the CoreML partitions between "
            "its kernels: validate this .pte on macOS/iOS")
    tensors = {i: plan.values[i].val for s in steps if isinstance(s, DelegateStep) for i in s.inputs + s.outputs}
    tensors |= {i: plan.values[i].val for i in (*plan.inputs, *plan.outputs)}
    not_tensors = sorted(i for i, v in tensors.items() if type(v).__name__ != "Tensor")
    if not_tensors:
        raise UncomposablePartitionsError(f"{path.name}: values {not_tensors} of {method} are not tensors; only "
                                          "tensor inputs and outputs can be fed to the extracted ML programs")
    produced = set(plan.inputs) | {i for s in steps for i in (s.outputs if isinstance(s, DelegateStep)
                                                              else (s.target,))}
    missing = [i for i in plan.outputs if i not in produced]
    if missing:
        raise UncomposablePartitionsError(f"{path.name}: outputs {missing} of {method} come from no CoreML partition "
                                          "(constants the .pte returns as they are)")
    return DelegatedForward(
        method, tuple(plan.inputs), tuple(plan.outputs), tuple(steps),
        shapes={i: tuple(t.sizes) for i, t in tensors.items()},
        dtypes={i: _numpy_dtype(t.scalar_type, path) for i, t in tensors.items()},
    )


def _numpy_dtype(scalar_type, path: Path) -> type:
    name = getattr(scalar_type, "name", str(scalar_type))
    if name not in _NUMPY_DTYPES:
        raise UncomposablePartitionsError(f"{path.name}: a {name} tensor has no numpy form to feed an ML program")
    return _NUMPY_DTYPES[name]


def _read(path: Path):
    """The deserialised PTEFile; NotAPteError for anything that is not an ExecuTorch program."""
    if not path.is_file():
        raise NotAPteError(f"{path} is not a file; expected an ExecuTorch .pte")
    data = path.read_bytes()
    if len(data) < 8 or data[4:6] != b"ET" or not data[6:8].isdigit():
        raise NotAPteError(f"{path.name} is not an ExecuTorch program (no ET flatbuffer identifier at byte 4)")
    from executorch.exir._serialize._program import deserialize_pte_binary

    try:
        return deserialize_pte_binary(data)
    except Exception as exc:  # noqa: BLE001 - a truncated or corrupt program: say so, with the cause
        raise NotAPteError(f"{path.name} is not a readable ExecuTorch program: {type(exc).__name__}: {exc}") from None


def _extract(pte, path: Path, out_dir: Path, method: str):
    """(plan, partitions) of ``method``, each CoreML delegate unflattened under ``out_dir/partition_<i>``."""
    program = pte.program
    plans = {p.name: p for p in program.execution_plan}
    if method not in plans:
        raise PteError(f"{path.name} has no method {method!r} (it has {', '.join(plans) or 'none'})")
    plan = plans[method]
    named = {}
    if pte.named_data is not None:
        buffers = pte.named_data.buffers  # bytes, or FileBackedData (to_bytes) for data kept on disk
        named = {key: buffers[entry.buffer_index] for key, entry in pte.named_data.pte_data.items()}
    coreml = [(i, d) for i, d in enumerate(plan.delegates) if d.id == COREML_BACKEND_ID]
    if not coreml:
        ids = sorted({d.id for d in plan.delegates})
        raise NoCoreMLDelegateError(f"{path.name} has no CoreML delegate in {method} (delegates: "
                                    f"{', '.join(ids) or 'none, it runs on portable kernels'})")
    out_dir.mkdir(parents=True, exist_ok=True)
    return plan, [_unflatten(program, named, index, delegate, path, out_dir) for index, delegate in coreml]


def _unflatten(program, named: dict, index: int, delegate, path: Path, out_dir: Path) -> CoreMLPartition:
    from executorch.backends.apple.coreml import executorchcoreml

    specs = {spec.key: bytes(spec.value) for spec in delegate.compile_specs}
    if specs.get("model_type") == _COMPILED:
        raise CompiledCoreMLModelError(
            f"{path.name}: CoreML delegate {index} was lowered as a compiled model (.mlmodelc, model_type "
            "COMPILED_MODEL), which cannot be read back into a MIL program; re-export with the default model_type "
            "to check it on Linux, or validate it on macOS/iOS")
    if delegate.processed.location != 0:  # deserialize_pte_binary inlines segments; anything else is unreadable
        raise PteError(f"{path.name}: CoreML delegate {index}'s payload is not inline after deserialisation")
    payload = bytes(program.backend_delegate_data[delegate.processed.index].data)
    function = None
    if payload.startswith(_REFERENCE_MAGIC):
        try:
            reference = json.loads(payload[len(_REFERENCE_MAGIC):].decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PteError(f"{path.name}: CoreML delegate {index} has an unreadable named-data reference: {exc}") \
                from None
        key, function = reference.get("key"), reference.get("functionName")
        if key not in named:
            raise PteError(f"{path.name}: CoreML delegate {index} refers to named data {key!r}, which is not in it")
        data = named[key]
        payload = data if isinstance(data, bytes) else data.to_bytes()
    folder = out_dir / f"partition_{index}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir()
    try:
        unflattened = bool(payload) and executorchcoreml.unflatten_directory_contents(payload, str(folder.resolve()))
    except RuntimeError as exc:  # "Failed to de-serialize bytes object!"
        unflattened, cause = False, f": {exc}"
    else:
        cause = ""
    if not unflattened:
        raise PteError(f"{path.name}: CoreML delegate {index}'s payload is not a flattened model folder{cause}")
    packages = sorted(folder.rglob("*.mlpackage"))
    if not packages:
        if any(folder.rglob("*.mlmodelc")):
            raise CompiledCoreMLModelError(
                f"{path.name}: CoreML delegate {index} holds a compiled model (.mlmodelc), which cannot be read back "
                "into a MIL program; validate it on macOS/iOS")
        raise PteError(f"{path.name}: CoreML delegate {index}'s payload holds no .mlpackage")
    package = packages[0]
    metadata_file = package.parent / "metadata.json"
    try:
        metadata = json.loads(metadata_file.read_text())
        inputs, outputs = tuple(metadata["inputNames"]), tuple(metadata["outputNames"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PteError(f"{path.name}: CoreML delegate {index} has no readable metadata.json (the order of its "
                       f"inputs and outputs): {type(exc).__name__}: {exc}") from None
    return CoreMLPartition(index, package, inputs, outputs, function)
