"""``edgevit validate ARTIFACT.pte --bisect``: the first XNNPACK node where the artifact's program leaves the
original's.

Why a program comparison and not values: ExecuTorch runs an XNNPACK delegate as one opaque graph (ETDump records its
operators' times, not their outputs), so no value inside it can be read. What can be read is the program itself. The
original is lowered again with the conversion's settings (the same prepared model, the recorded int8 configuration
and calibration set; the precision read from the program, not from the manifest) and the two XNNPACK graphs are
walked node by node: op type, attributes, which values feed it (the lowering is deterministic, so their ids agree),
each value's datatype, shape and quantization parameters, and every stored constant byte for byte (in an int8 program,
what calibration derives -- activation scales and zero points, bias scales, int32 biases -- within calibration
rounding: edgevit.validate.quantized_reference.CALIBRATION_RTOL). The bound is therefore 0: the first node where
anything differs is the divergence, named by the lowered graph's node and the PyTorch module its debug handle points
to in the re-lowering, with the relative L2 of the constant that differs (infinite for
a change of structure). Every constant compared is listed, worst first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import torch

from edgevit.base.errors import ArtifactError
from edgevit.validate.bisect import BisectReport, Divergence
from edgevit.validate.metrics import rel_l2

_NUMPY = {"xnn_datatype_fp32": np.float32, "xnn_datatype_fp16": np.float16, "xnn_datatype_qint8": np.int8,
          "xnn_datatype_qcint8": np.int8, "xnn_datatype_quint8": np.uint8, "xnn_datatype_qint32": np.int32,
          "xnn_datatype_qcint32": np.int32}
NOTE = ("program bisect: ExecuTorch exposes no values from inside an XNNPACK delegate, so its graph was compared "
        "node by node (op, attributes, wiring, stored constants byte for byte) with edgevit's re-lowering of the "
        "original")


def bisect_pte(subject, artifact: Path, manifest: dict, top: int = 10) -> BisectReport:
    from edgevit.export.pte_xnnpack import xnnpack_programs
    from edgevit.validate.program_precision import pte_precision

    mine = xnnpack_programs(artifact)
    if not mine:
        raise ArtifactError(
            f"{artifact.name}: --bisect of a .pte compares its XNNPACK graph with a re-lowering of the original, and "
            "this program has no XNNPACK delegate (a CoreML-delegated .pte?). Bisect the .mlpackage of the same "
            "conversion instead (`edgevit convert MODEL --target coreml`): the MIL interpreter shows every value")
    precision = pte_precision(artifact)
    with tempfile.TemporaryDirectory(prefix="edgevit-bisect-") as tmp:
        reference_path, sources = _relower(subject, manifest, precision, Path(tmp))
        theirs = xnnpack_programs(reference_path)
    found: list[Divergence] = []
    first: Divergence | None = None
    if len(mine) != len(theirs):
        first = _structural("program", f"{len(mine)} XNNPACK delegates", f"{len(theirs)}", "", "(program)")
    compared = 0
    for index, (a, b) in enumerate(zip(mine, theirs, strict=False)):
        for divergence, count in _walk(index, a, b, sources, precision == "int8"):
            compared += count
            found.append(divergence)
            if first is None and not divergence.rel_l2 <= 0.0:
                first = divergence
    worst = sorted(found, key=lambda d: -d.rel_l2 if np.isfinite(d.rel_l2) else -np.inf)[:top]
    return BisectReport(artifact.name, "(the program itself)", 0.0, compared, first, worst,
                        f"{NOTE} ({precision}; bound 0: a deterministic re-lowering is byte-identical)")


def _relower(subject, manifest: dict, precision: str, work: Path) -> tuple[Path, dict]:
    """The original lowered again as the conversion lowered it; (the .pte, debug handle -> (node, module))."""
    from edgevit.export.executorch import export_executorch

    example = torch.randn((1, *subject.spec.input_size), generator=torch.Generator().manual_seed(0))
    sources: dict = {}
    path = work / "reference.pte"
    options: dict = {}
    calibration = None
    from edgevit.validate.quantized_reference import backend_module, calibration_for, recorded_pt2e_options

    if precision == "int8":
        options = recorded_pt2e_options(manifest)
        calibration = calibration_for(subject, manifest).tensors
    export_executorch(backend_module(subject, manifest), example, path, precision=precision, calibration=calibration,
                      quantization=options or None, sources=sources)
    return path, sources


def _structural(where: str, mine: str, theirs: str, node: str, module: str) -> Divergence:
    return Divergence(where, f"{mine} (re-lowering: {theirs})", node, module, float("inf"), float("inf"))


def _walk(index: int, mine, theirs, sources: dict, calibrated: bool):
    """(divergence, nodes counted) for each node of one delegate: a 0-error entry per matching constant, one entry
    per difference; the walk stops at the first change of structure (after it the two graphs no longer align)."""
    label = f"delegate {index}"
    for key in ("input_ids", "output_ids", "num_externs"):
        if mine.graph.graph.get(key) != theirs.graph.graph.get(key):
            yield _structural(f"{label} {key}", str(mine.graph.graph.get(key)), str(theirs.graph.graph.get(key)),
                              "", "(graph)"), 0
            return
    for position, (a, b) in enumerate(zip(mine.nodes, theirs.nodes, strict=False)):
        op = str(b.get("xnode_union_type", "?")).removeprefix("XNN")
        node, module = sources.get(b.get("debug_handle"), ("", "(inserted by the lowering)"))
        where = f"{label} node {position}"
        if a.get("xnode_union_type") != b.get("xnode_union_type"):
            yield _structural(where, str(a.get("xnode_union_type")).removeprefix("XNN"), op, node, module), 1
            return
        fields_a, fields_b = a.get("xnode_union") or {}, b.get("xnode_union") or {}
        changed = sorted(k for k in set(fields_a) | set(fields_b) if fields_a.get(k) != fields_b.get(k))
        changed += ["output_min_max"] if a.get("output_min_max") != b.get("output_min_max") else []
        if changed:
            yield _structural(f"{where} {', '.join(changed)}", op, "different " + ", ".join(changed), node, module), 1
            return
        yield from _values(where, op, node, module, fields_b, mine, theirs, calibrated)
    if len(mine.nodes) != len(theirs.nodes):
        yield _structural(f"{label} node {min(len(mine.nodes), len(theirs.nodes))}", f"{len(mine.nodes)} nodes",
                          f"{len(theirs.nodes)} nodes", "", "(graph)"), 0


def _values(where: str, op: str, node: str, module: str, fields: dict, mine, theirs, calibrated: bool):
    """Each value the node reads or writes: same description and quantization, constants byte for byte (for an int8
    program, calibration-derived values within calibration rounding); one count for the node."""
    count = 1
    for field, value_id in sorted(fields.items()):
        if not field.endswith("_id") or not isinstance(value_id, int):
            continue
        error = _value_error(value_id, mine, theirs, calibrated)
        if error is None:
            continue
        yield Divergence(f"{where} {field.removesuffix('_id')} (value {value_id})", op, node, module, *error), count
        count = 0
    if count:
        yield Divergence(where, op, node, module, 0.0, 0.0), count


def _value_error(value_id: int, mine, theirs, calibrated: bool) -> tuple[float, float] | None:
    """None when the value is the same in both programs; else (relative error, max abs), infinite for structure."""
    from edgevit.validate.quantized_reference import same_qparams

    a, b = mine.values.get(value_id), theirs.values.get(value_id)
    if a is None or b is None or _describe(a[0]) != _describe(b[0]):
        return (float("inf"), float("inf")) if (a, b) != (None, None) else None
    quant_a, quant_b = a[1] or {}, b[1] or {}
    if quant_a.get("quant_params_type") != quant_b.get("quant_params_type"):
        return float("inf"), float("inf")
    params_a, params_b = quant_a.get("quant_params") or {}, quant_b.get("quant_params") or {}
    if "scale_buffer_idx" in params_a or "scale_buffer_idx" in params_b:  # per-channel: scales in a buffer
        error = _bytes_error(mine.constants.get(params_a.get("scale_buffer_idx", -1)),
                             theirs.constants.get(params_b.get("scale_buffer_idx", -1)), "xnn_datatype_fp32",
                             calibrated)
        if error is not None:
            return error
    elif params_a != params_b:
        pair_a = (float(params_a.get("scale", 0.0)), int(params_a.get("zero_point", 0)))
        pair_b = (float(params_b.get("scale", 0.0)), int(params_b.get("zero_point", 0)))
        if not (calibrated and same_qparams(pair_a, pair_b)):
            scale_error = abs(pair_a[0] - pair_b[0]) / abs(pair_b[0]) if pair_b[0] else float("inf")
            return max(scale_error, 1e-12), abs(pair_a[0] - pair_b[0]) + abs(pair_a[1] - pair_b[1])
    return _bytes_error(mine.constant_of(value_id), theirs.constant_of(value_id), str(b[0].get("datatype")),
                        calibrated)


def _describe(tensor: dict) -> tuple:
    return tensor.get("datatype"), tuple(tensor.get("dims") or ()), bool(tensor.get("constant_buffer_idx"))


def _bytes_error(a: bytes | None, b: bytes | None, datatype: str, calibrated: bool) -> tuple[float, float] | None:
    from edgevit.validate.quantized_reference import same_calibrated

    if a == b:
        return None
    if a is None or b is None or len(a) != len(b):
        return float("inf"), float("inf")
    dtype = _NUMPY.get(datatype, np.uint8)
    expected = np.frombuffer(b, dtype=dtype)
    if calibrated and same_calibrated(a, expected):
        return None
    x, y = expected.astype(np.float64), np.frombuffer(a, dtype=dtype).astype(np.float64)
    return max(rel_l2(x, y), 1e-12), float(np.max(np.abs(x - y)))
