"""Read the XNNPACK graphs inside an ExecuTorch ``.pte``: their values' datatypes, quantization parameters and where
each constant tensor's bytes are.

Why: a ``.pte``'s precision must come from the program, not from its file name or manifest (an fp32 program
renamed ``*.int8.pte`` must not be judged as int8), and the tamper tests need to find one weight's bytes to change.
The program is read with ExecuTorch's own deserialiser (``deserialize_pte_binary``); each XNNPACK delegate payload is
``XNNHeader`` + an ``XNNGraph`` flatbuffer + constant data, and the flatbuffer is turned into JSON by the ``flatc``
ExecuTorch ships with the schema ExecuTorch ships (``backends/xnnpack/serialization/schema.fbs``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgevit.base.errors import PteError

XNNPACK_BACKEND_ID = "XnnpackBackend"
# XNNDatatype (schema.fbs): which datatypes make a graph quantized
QUANTIZED_DATATYPES = {"xnn_datatype_qint8", "xnn_datatype_quint8", "xnn_datatype_qint32", "xnn_datatype_qcint8",
                       "xnn_datatype_qcint32", "xnn_datatype_qcint4", "xnn_datatype_qdint8", "xnn_datatype_qbint4",
                       "xnn_datatype_qpint8"}
_HEADER_MAGIC = b"XH00"


@dataclass
class XnnpackGraph:
    """One XNNPACK delegate: its graph as JSON and its payload (header, flatbuffer, constant data)."""

    delegate_index: int
    graph: dict
    payload: bytes
    constant_data_offset: int  # within the payload

    def datatypes(self) -> set[str]:
        found = set()
        for value in self.graph.get("xvalues", []):
            body = value.get("xvalue_union") or {}
            tensor = body.get("tensor_value", body)
            if "datatype" in tensor:
                found.add(str(tensor["datatype"]))
        return found

    @property
    def quantized(self) -> bool:
        return bool(self.datatypes() & QUANTIZED_DATATYPES)


def read_pte(path: Path):
    """The deserialised PTEFile (ExecuTorch's own reader); PteError for anything that is not one."""
    from edgevit.export.pte_coreml import _read

    return _read(Path(path))


def xnnpack_graphs(path: Path, method: str = "forward") -> list[XnnpackGraph]:
    """Every XNNPACK delegate of ``method``, parsed."""
    pte = read_pte(path)
    program = pte.program
    plans = {p.name: p for p in program.execution_plan}
    if method not in plans:
        raise PteError(f"{Path(path).name} has no method {method!r}")
    graphs = []
    for index, delegate in enumerate(plans[method].delegates):
        if delegate.id != XNNPACK_BACKEND_ID:
            continue
        if delegate.processed.location != 0:
            raise PteError(f"{Path(path).name}: XNNPACK delegate {index}'s payload is not inline")
        payload = bytes(program.backend_delegate_data[delegate.processed.index].data)
        graphs.append(_parse(payload, index, Path(path)))
    return graphs


def _parse(payload: bytes, index: int, path: Path) -> XnnpackGraph:
    if payload[4:8] == _HEADER_MAGIC:
        flat_offset = int.from_bytes(payload[10:14], "little")
        flat_size = int.from_bytes(payload[14:18], "little")
        const_offset = int.from_bytes(payload[18:22], "little")
        if flat_offset + flat_size > len(payload) or const_offset > len(payload):
            raise PteError(f"{path.name}: XNNPACK delegate {index} has a header pointing outside its payload")
        flatbuffer = payload[flat_offset: flat_offset + flat_size]
    else:
        flatbuffer, const_offset = payload, len(payload)
    return XnnpackGraph(index, _to_json(flatbuffer, path, index), payload, const_offset)


def _to_json(flatbuffer: bytes, path: Path, index: int) -> dict:
    from importlib import resources

    from executorch.backends.xnnpack import serialization
    from executorch.exir._serialize._flatbuffer import _get_flatc_path

    with tempfile.TemporaryDirectory(prefix="edgevit-xnn-") as tmp:
        schema = Path(tmp) / "schema.fbs"
        schema.write_bytes(resources.files(serialization).joinpath("schema.fbs").read_bytes())
        data = Path(tmp) / "graph.bin"
        data.write_bytes(flatbuffer)
        try:
            subprocess.run([_get_flatc_path(), "--json", "--strict-json", "--raw-binary", "-o", tmp, str(schema),
                            "--", str(data)], check=True, capture_output=True, timeout=120,
                           env={**os.environ, "LC_ALL": "C"})
            text = (Path(tmp) / "graph.json").read_text()
            return json.loads(re.sub(r":\s*(-?)(inf|nan)\b", r': "\1\2"', text))  # flatc writes bare inf/nan
        except (subprocess.SubprocessError, OSError, ValueError) as exc:
            raise PteError(f"{path.name}: XNNPACK delegate {index}'s graph does not parse ({type(exc).__name__})") \
                from None


def _tensor_of(value: dict) -> tuple[dict, dict | None]:
    body = value.get("xvalue_union") or {}
    return body.get("tensor_value", body), body if "quant_params" in body else None


def constant_buffers(path: Path, method: str = "forward") -> list[tuple[str, bytes, str]]:
    """(named-data key, bytes, "datatype [dims]") of every constant tensor the XNNPACK graphs of ``method`` keep in
    the program's named data (what a tamper test finds and rewrites by content)."""
    found = []
    for program in xnnpack_programs(path, method):
        entries = program.graph.graph.get("constant_data", [])
        described = {tensor["constant_buffer_idx"]: f"{tensor.get('datatype')} {tensor.get('dims')}"
                     for tensor, _ in program.values.values() if tensor.get("constant_buffer_idx")}
        for index, data in program.constants.items():
            key = entries[index].get("named_key") or ""
            if key:
                found.append((key, data, described.get(index, "scales")))
    return found


def per_tensor_quant_params(path: Path, method: str = "forward") -> list[tuple[float, int, str]]:
    """(scale, zero point, "value <id> [dims]") of every per-tensor quantized value of the XNNPACK graphs. The
    scales are flatc's JSON rendering of the stored float32 (six significant digits)."""
    found = []
    for graph in xnnpack_graphs(path, method):
        for value in graph.graph.get("xvalues", []):
            tensor, quantized = _tensor_of(value)
            if quantized and quantized.get("quant_params_type") == "PerTensorQuant":
                params = quantized.get("quant_params") or {}
                found.append((float(params.get("scale", 0.0)), int(params.get("zero_point", 0)),
                              f"value {tensor.get('id_out')} {tensor.get('dims')}"))
    return found


@dataclass
class XnnpackProgram:
    """One XNNPACK delegate with its values by id and each constant's bytes: what a node-by-node comparison needs."""

    graph: XnnpackGraph
    values: dict[int, tuple[dict, dict | None]]  # value id -> (tensor, quantized wrapper or None)
    constants: dict[int, bytes]  # constant_buffer_idx -> bytes

    @property
    def nodes(self) -> list[dict]:
        return self.graph.graph.get("xnodes", [])

    def constant_of(self, value_id: int) -> bytes | None:
        tensor, _ = self.values.get(value_id, ({}, None))
        return self.constants.get(tensor.get("constant_buffer_idx", 0))


def xnnpack_programs(path: Path, method: str = "forward") -> list[XnnpackProgram]:
    """Every XNNPACK delegate of ``method`` with its values and constant bytes (named data or inline)."""
    pte = read_pte(path)
    named = {}
    if pte.named_data is not None:
        buffers = pte.named_data.buffers
        named = {key: buffers[entry.buffer_index] for key, entry in pte.named_data.pte_data.items()}
    programs = []
    for graph in xnnpack_graphs(path, method):
        values = {}
        for value in graph.graph.get("xvalues", []):
            tensor, quantized = _tensor_of(value)
            values[int(tensor.get("id_out", 0))] = (tensor, quantized)
        constants = {}
        for index, entry in enumerate(graph.graph.get("constant_data", [])):
            key = entry.get("named_key") or ""
            if key:
                data = named.get(key)
                if data is None:
                    raise PteError(f"{Path(path).name}: XNNPACK constant {key[:16]}… is not in the program's named "
                                   "data")
                constants[index] = data if isinstance(data, bytes) else data.to_bytes()
            elif index and int(entry.get("size", 0)):
                start = graph.constant_data_offset + int(entry.get("offset", 0))
                end = start + int(entry["size"])
                if end > len(graph.payload):
                    raise PteError(f"{Path(path).name}: XNNPACK constant {index} lies outside its delegate's payload")
                constants[index] = graph.payload[start:end]
        programs.append(XnnpackProgram(graph, values, constants))
    return programs
