"""``edgevit validate ARTIFACT --bisect``: the first value where the artifact's program leaves the original's.

Both sides are run value by value on one input (the first photo) and matched by name: coremltools and
``torch.onnx`` name every value after the ``torch.export`` node it came from (``conv2d_6`` becomes the MIL op
``conv2d_6_cast_fp16`` or the ONNX value ``conv2d_6``), and the export's nodes carry the PyTorch module they were
traced from (``nn_module_stack``). The reference is the same prepared model the fidelity check uses, carrying the
artifact's stored values where they pass their storage rule and the original's where they do not (a CoreML
package), or edgevit's re-quantization (an int8 ``.onnx``: both sides emulated by
onnxruntime without optimisations). A value diverges when its relative L2 against the reference's exceeds the
fidelity bound; the report gives the first such value in program order, its error, and the ten worst values.

A ``.pte``'s XNNPACK delegate runs as one opaque graph and ExecuTorch exposes no values from inside it, so its program
is bisected instead (edgevit.validate.pte_bisect): the original is lowered again with the conversion's recorded
settings and the two XNNPACK graphs are compared node by node: op, attributes, wiring and every stored constant. A
CoreML-delegated ``.pte`` says to bisect the ``.mlpackage`` of the same conversion.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from edgevit.base.errors import ArtifactError
from edgevit.export.mil_inspect import node_of_value
from edgevit.validate.metrics import rel_l2


@dataclass
class Divergence:
    value: str  # the artifact's name for it (MIL op output / ONNX value)
    op: str  # the artifact's op type
    node: str  # the torch.export node it came from
    module: str  # the PyTorch module path
    rel_l2: float
    max_abs: float


@dataclass
class BisectReport:
    artifact: str
    input: str
    bound: float
    compared: int  # values matched by name and compared
    first: Divergence | None
    worst: list[Divergence] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict:
        return asdict(self)


def bisect(subject, artifact: Path, manifest: dict, top: int = 10) -> BisectReport:
    from edgevit.base.naming import target_of

    target = target_of(artifact)
    if target == "executorch":
        from edgevit.validate.pte_bisect import bisect_pte

        return bisect_pte(subject, artifact, manifest, top)
    item = next((i for i in subject.inputs if i.kind == "photo"), subject.inputs[0])
    if target == "coreml":
        return _bisect_mil(subject, artifact, manifest, item, top)
    return _bisect_onnx(subject, artifact, manifest, item, top)


def _export_values(module: torch.nn.Module, example: torch.Tensor) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every node's output (by node name) of ``module``'s torch.export program on ``example``, and its module."""
    from edgevit.export.mil_inspect import module_of, to_exported_program

    program = to_exported_program(module, example)
    graph_module = program.module()
    values: dict[str, np.ndarray] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            out = super().run_node(node)
            if isinstance(out, torch.Tensor) and out.is_floating_point():
                values[node.name] = out.detach().float().numpy()
            return out

    with torch.no_grad():
        Recorder(graph_module).run(example)
    return values, {node.name: module_of(node) for node in program.graph.nodes}


def _report(artifact: Path, item, bound: float, artifact_values: dict[str, tuple[str, np.ndarray]],
            reference: dict[str, np.ndarray], modules: dict[str, str], top: int, note: str = "") -> BisectReport:
    """Compare the artifact's values (name -> (op type, value), in program order) with the reference's by name."""
    found, compared = [], 0
    for name, (op_type, value) in artifact_values.items():
        node = node_of_value(name)
        expected = reference.get(name, reference.get(node))
        if expected is None or expected.shape != np.shape(value):
            continue
        compared += 1
        value = np.asarray(value, dtype=np.float32)
        found.append(Divergence(name, op_type, node, modules.get(node, "?"), rel_l2(expected, value),
                                float(np.max(np.abs(expected - value))) if value.size else 0.0))
    first = next((d for d in found if not d.rel_l2 <= bound), None)
    worst = sorted(found, key=lambda d: -d.rel_l2 if np.isfinite(d.rel_l2) else -np.inf)[:top]
    return BisectReport(artifact.name, item.name, bound, compared, first, worst, note)


def _bisect_mil(subject, artifact: Path, manifest: dict, item, top: int) -> BisectReport:
    from edgevit.export.coreml import ImageClassifier
    from edgevit.mil import MilModel, load_program
    from edgevit.validate.fidelity import MIL_BOUND, with_values
    from edgevit.validate.mil_fidelity import check_programs

    loaded = load_program(artifact)
    model = MilModel(loaded, precision="fp32")
    missing = model.unsupported()
    if missing is not None:
        raise ArtifactError(f"{artifact.name}: cannot bisect: {missing}")
    image = manifest["input"]["kind"] == "image"
    module = ImageClassifier(subject.prepared, subject.spec.mean, subject.spec.std).eval() if image \
        else subject.prepared
    example = (torch.from_numpy(np.asarray(item.image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()
               if image else item.tensor)
    check, carried, fp16 = check_programs([loaded.main], module, lambda reference: reference(example))
    for broken in check.broken:  # a stored value its rule rejects is compared with the original's, not carried
        carried.pop(broken["parameter"], None)
    reference_module = with_values(module, carried, round_fp16=fp16)
    reference, modules = _export_values(reference_module, example)
    seen: dict[str, tuple[str, np.ndarray]] = {}

    def observe(op, var, value):
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            seen[var.name] = (op.op_type, value)

    feed = {model.input_names[0]: item.image if image else item.tensor.numpy()}
    model.predict(feed, observe=observe)
    return _report(artifact, item, MIL_BOUND, seen, reference, modules, top,
                   "edgevit's MIL interpreter at fp32 vs the prepared model carrying the program's stored values")


def _bisect_onnx(subject, artifact: Path, manifest: dict, item, top: int) -> BisectReport:
    import onnx

    from edgevit.validate.fidelity import FP32_BOUND
    from edgevit.validate.program_precision import onnx_precision

    int8 = onnx_precision(artifact) == "int8"
    mine = _onnx_values(onnx.load(str(artifact)), item)
    _, modules = _export_values(subject.prepared, item.tensor)
    if not int8:
        reference, _ = _export_values(subject.prepared, item.tensor)
        return _report(artifact, item, FP32_BOUND, mine, reference, modules, top,
                       "onnxruntime (optimisations off) vs the original's torch.export values")
    from edgevit.validate.quantized_reference import EMULATION_BOUND, calibration_for, rebuild_onnx_int8

    calibration = calibration_for(subject, manifest)
    example = torch.randn((1, *subject.spec.input_size), generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(prefix="edgevit-bisect-") as tmp:
        path = Path(tmp) / "reference.int8.onnx"
        rebuild_onnx_int8(subject.prepared, manifest, calibration, example, path)
        theirs = _onnx_values(onnx.load(str(path)), item)
    reference = {name: value for name, (_, value) in theirs.items()}
    return _report(artifact, item, EMULATION_BOUND, mine, reference, modules, top,
                   "both QDQ programs emulated by onnxruntime (optimisations off): the artifact vs edgevit's "
                   "re-quantization of the original")


def _onnx_values(model, item) -> dict[str, tuple[str, np.ndarray]]:
    """Every float value of ``model`` on ``item`` (name -> (op type, value)) in node order, via extra outputs."""
    import onnx
    import onnxruntime as ort

    outputs = {o.name for o in model.graph.output}
    kinds = {}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in outputs:
                model.graph.output.append(onnx.ValueInfoProto(name=name))
            kinds[name] = node.op_type
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    values = session.run(names, {session.get_inputs()[0].name: item.tensor.numpy()})
    return {name: (kinds.get(name, "?"), value) for name, value in zip(names, values, strict=True)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f" and name in kinds}
