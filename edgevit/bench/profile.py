"""Where the time goes inside one artifact: per-op times from the runtime's own profiler.

* ``.pte``: ExecuTorch's ETDump (``_load_for_executorch(..., enable_etdump=True)``, read back with
  ``executorch.devtools.Inspector``). The 1.5.1 wheel records XNNPACK's per-operator events inside the delegate,
  named by XNNPACK's operator and microkernel family (``Convolution (NHWC, F32) IGEMM #1``), at microsecond
  resolution; ops left outside the delegate appear as ``native_call_<op>``: the portable (fallback) kernels. A
  build without XNNPACK's per-op events would leave only ``DELEGATE_CALL``: that is then the row, and a note says
  so.
* ``.onnx``: onnxruntime's profiler (``SessionOptions.enable_profiling``), its JSON trace parsed per node: the
  node of the optimised graph that ran (fused nodes such as ``relu_nchwc``), its op type and execution provider,
  marked ``(NCHWc)`` where onnxruntime moved the node to MLAS's blocked-layout kernels.

Times are means per iteration over the timed runs (warm-ups dropped); percents are of the sum of op times.
``run_ms`` is the runtime's own time per run (``Method::execute`` / ``model_run``); what is not in any op
(dispatch, the delegate's own bookkeeping, profiling itself) is the difference.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import warnings
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgevit.base.errors import ArtifactError, UsageError
from edgevit.base.native_output import native_stderr_to_log
from edgevit.bench.profile_files import PROFILE_KIND
from edgevit.export.pte_check import MAX_INPUT_ELEMENTS, check_pte
from edgevit.validate.runtimes import runtime_errors
from edgevit.validate.threads import check_threads, onnxruntime_options, set_executorch_threads

# ETDump events of the runtime itself, not of an op.
_FRAMEWORK_EVENTS = {"Method::execute", "Method::init", "Program::load_method", "OPERATOR_CALL", "DELEGATE_CALL"}


@dataclass(frozen=True)
class OpTime:
    """One op (an XNNPACK operator instance, a portable kernel call, an onnxruntime node)."""

    name: str
    op_type: str
    kernel: str | None  # the microkernel family / execution provider / fallback path the backend reports
    ms: float  # mean per iteration
    calls: int  # per iteration
    percent: float = 0.0  # of the sum of all op times


@dataclass(frozen=True)
class Profile:
    artifact: str
    runtime: str
    threads: int
    warmup: int
    iterations: int
    source: str  # how the times were recorded, in words
    run_ms: float | None  # the runtime's own time per run; None where it does not report one
    ops: list[OpTime]
    notes: list[str] = field(default_factory=list)

    @property
    def total_ms(self) -> float:
        """The sum of the op times per iteration (what the percents are of)."""
        return sum(op.ms for op in self.ops)

    def by_type(self) -> list[dict]:
        """Time per (op type, kernel path), largest first."""
        groups: dict[tuple[str, str | None], list[OpTime]] = defaultdict(list)
        for op in self.ops:
            groups[(op.op_type, op.kernel)].append(op)
        total = self.total_ms or 1.0
        rows = [{"op_type": t, "kernel": k, "ops": len(v), "ms": sum(o.ms for o in v),
                 "percent": 100 * sum(o.ms for o in v) / total} for (t, k), v in groups.items()]
        return sorted(rows, key=lambda r: -r["ms"])

    def top(self, n: int) -> list[OpTime]:
        return sorted(self.ops, key=lambda o: -o.ms)[:n]

    def to_dict(self) -> dict:
        return {"kind": PROFILE_KIND, **asdict(self), "total_ms": self.total_ms, "by_type": self.by_type()}


def _with_percents(ops: list[OpTime]) -> list[OpTime]:
    total = sum(op.ms for op in ops) or 1.0
    return [OpTime(op.name, op.op_type, op.kernel, op.ms, op.calls, 100 * op.ms / total) for op in ops]


def profile_artifact(path: Path, *, threads: int | None = None, iterations: int = 10, warmup: int = 2) -> Profile:
    """Per-op times of a ``.pte`` or ``.onnx`` at ``threads`` (None: default_threads()), on random input."""
    path = Path(path)
    threads = check_threads(threads)
    if iterations < 1 or warmup < 0:
        raise UsageError(f"profile needs iterations >= 1 and warmup >= 0, got {iterations} and {warmup}")
    if path.suffix == ".pte":
        return _profile_pte(path, threads, iterations, warmup)
    if path.suffix == ".onnx":
        return _profile_onnx(path, threads, iterations, warmup)
    raise ArtifactError(f"{path.name}: per-op profiles are for .pte (ExecuTorch) and .onnx (onnxruntime) artifacts")


# --------------------------------------------------------------------------------------------- ExecuTorch / ETDump
def _xnnpack_op(name: str) -> tuple[str, str]:
    """'Convolution (NHWC, F32) IGEMM #1' -> ('Convolution', 'xnnpack (NHWC, F32) IGEMM')."""
    base = re.sub(r" #\d+$", "", name)
    op_type, _, rest = base.partition(" (")
    return op_type, f"xnnpack ({rest}" if rest else "xnnpack"


def _timed(raw: list[float], runs: int, iterations: int) -> tuple[float, int]:
    """(mean ms per timed iteration, calls per iteration) from one event's samples over all runs."""
    calls = max(1, round(len(raw) / runs))
    timed = raw[-iterations * calls:]
    return float(sum(timed)) / iterations, calls


def _check_input_sizes(path: Path, shapes: list[tuple[int, ...]]) -> None:
    """The graph's declared inputs, before any is allocated: no larger than any model edgevit converts."""
    for shape in shapes:
        if any(d < 0 for d in shape) or math.prod(shape) > MAX_INPUT_ELEMENTS:
            raise ArtifactError(f"{path.name} declares an input of shape {list(shape)} ({math.prod(shape):,} "
                                f"elements), over the limit of {MAX_INPUT_ELEMENTS:,} (a batch of 64 at 512x512): "
                                "larger than any model edgevit converts, refused before anything is allocated.")


def _profile_pte(path: Path, threads: int, iterations: int, warmup: int) -> Profile:
    import torch
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    check_pte(path)  # header, then a child-process load: a malformed program cannot crash this process
    set_executorch_threads(threads)
    with native_stderr_to_log():
        try:  # a file that is no program can still "load": its forward's metadata is then what fails
            module = _load_for_executorch(str(path), enable_etdump=True)
            meta = module.method_meta("forward")
        except RuntimeError as exc:
            raise ArtifactError(f"{path}: ExecuTorch cannot load it as a program with a forward method "
                                f"({exc})") from None
    shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
    _check_input_sizes(path, shapes)
    with runtime_errors("ExecuTorch", "running", path):
        inputs = [torch.randn(shape) for shape in shapes]
        runs = warmup + iterations
        for _ in range(runs):
            module.forward(inputs)
    with tempfile.TemporaryDirectory(prefix="edgevit-etdump-") as tmp:
        etdump = Path(tmp) / "run.etdp"
        module.write_etdump_result_to_file(str(etdump))
        from executorch.devtools import Inspector

        with warnings.catch_warnings(), native_stderr_to_log():
            warnings.simplefilter("ignore")  # "no ETRecord": the op names come from the ETDump itself
            events = [e for block in Inspector(etdump_path=str(etdump)).event_blocks for e in block.events
                      if e.perf_data is not None]
    ops, delegate_calls, run_ms = [], [], None
    for e in events:
        ms, calls = _timed(list(e.perf_data.raw), runs, iterations)
        if e.name == "Method::execute":
            run_ms = ms
        elif e.name == "DELEGATE_CALL":
            delegate_calls.append(OpTime("DELEGATE_CALL", "DELEGATE_CALL", "delegate (no per-op events)", ms, calls))
        elif e.is_delegated_op:
            op_type, kernel = _xnnpack_op(e.name)
            ops.append(OpTime(e.name, op_type, kernel, ms, calls))
        elif e.name.startswith("native_call_"):
            ops.append(OpTime(e.name, e.name.removeprefix("native_call_"), "portable kernel (not delegated)", ms,
                              calls))
        elif e.name not in _FRAMEWORK_EVENTS:
            ops.append(OpTime(e.name, e.name, None, ms, calls))
    notes = []
    delegated = [op for op in ops if op.kernel and op.kernel.startswith("xnnpack")]
    if delegate_calls and not delegated:
        ops += delegate_calls
        notes.append("this ExecuTorch build records no per-op events inside the delegate: its time is one "
                     "DELEGATE_CALL row per delegate call")
    if delegated:
        notes.append("XNNPACK reports its operator times at 1 us resolution: ops under a microsecond show as 0")
    if any(op.kernel == "portable kernel (not delegated)" for op in ops):
        notes.append("ops on portable kernels ran outside XNNPACK (the fallback path)")
    return Profile(path.name, "executorch", threads, warmup, iterations,
                   "ETDump (executorch.devtools Inspector): XNNPACK per-operator delegate events and portable "
                   "kernel calls", run_ms, _with_percents(ops), notes)


# ------------------------------------------------------------------------------------------- onnxruntime profiler
def _profile_onnx(path: Path, threads: int, iterations: int, warmup: int) -> Profile:
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="edgevit-ort-profile-") as tmp:
        options = onnxruntime_options(threads)
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types for a bad file
            raise ArtifactError(f"{path}: onnxruntime cannot load it ({exc})") from None
        feeds = {}
        for arg in session.get_inputs():
            if not all(isinstance(d, int) for d in arg.shape):
                raise ArtifactError(f"{path.name}: input {arg.name} has a symbolic shape {arg.shape}; profile "
                                    "needs a static one (edgevit convert exports static shapes)")
        _check_input_sizes(path, [tuple(arg.shape) for arg in session.get_inputs()])
        with runtime_errors("onnxruntime", "running", path):
            for arg in session.get_inputs():
                feeds[arg.name] = np.random.default_rng(0).standard_normal(arg.shape).astype(np.float32)
            for _ in range(warmup + iterations):
                session.run(None, feeds)
        trace = json.loads(Path(session.end_profiling()).read_text(encoding="utf-8"))
    return _parse_ort_trace(path.name, trace, threads, warmup, iterations)


def _parse_ort_trace(artifact: str, trace: list[dict], threads: int, warmup: int, iterations: int) -> Profile:
    """Node events (``*_kernel_time``) of the timed runs, each assigned to the ``model_run`` that contains it."""
    runs = sorted((e["ts"], e["ts"] + e["dur"]) for e in trace if e.get("cat") == "Session"
                  and e.get("name") == "model_run")
    timed = runs[warmup:]
    if not timed:
        raise ArtifactError(f"{artifact}: onnxruntime's trace has no timed run (saw {len(runs)} model_run events)")
    start = timed[0][0]
    per_node: dict[str, dict] = {}
    for e in trace:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time") or e["ts"] < start:
            continue
        args = e.get("args", {})
        name = e["name"].removesuffix("_kernel_time")
        kernel = args.get("provider")
        if kernel and name.endswith("_nchwc"):  # onnxruntime's NCHWc transformer names the nodes it moved to MLAS's
            kernel += " (NCHWc)"                # blocked-layout kernels (with ReorderInput/ReorderOutput around them)
        node = per_node.setdefault(name, {"op_type": args.get("op_name", "?"), "kernel": kernel, "us": 0, "n": 0})
        node["us"] += e["dur"]
        node["n"] += 1
    n = len(timed)
    ops = [OpTime(name, v["op_type"], v["kernel"], v["us"] / 1e3 / n, max(1, round(v["n"] / n)))
           for name, v in per_node.items()]
    run_ms = sum(end - begin for begin, end in timed) / 1e3 / n
    notes = ["node names are those of onnxruntime's optimised graph (fused nodes such as Conv+Relu keep one name)"]
    return Profile(artifact, "onnxruntime", threads, warmup, iterations,
                   "onnxruntime profiler (SessionOptions.enable_profiling): per-node kernel time", run_ms,
                   _with_percents(ops), notes)
