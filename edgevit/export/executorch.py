"""Prepared module -> ExecuTorch ``.pte``, lowered with ``to_edge_transform_and_lower``.

XNNPACK (Android / CPU, fp32) by default; ``backend="coreml"`` gives the CoreML-delegated ``.pte`` for iOS.
The delegation summary (how many nodes the backend took) goes into the manifest: nodes left behind run
on ExecuTorch's portable kernels, which is usually where the time goes.
"""

from __future__ import annotations

import time
import warnings
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from torch import nn

from edgevit.base.arguments import BACKENDS
from edgevit.base.atomic import atomic_path
from edgevit.base.errors import ExportError
from edgevit.export.failures import export_error
from edgevit.export.mil_inspect import in_eval, module_of


def _partitioner(backend: str, precision: str, deployment_target: str):
    if backend == "xnnpack":
        if precision not in ("fp32", "int8"):
            raise ExportError("the XNNPACK .pte is fp32; use --precision fp32, or --backend coreml for fp16")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return XnnpackPartitioner()
    if backend == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        specs = CoreMLBackend.generate_compile_specs(
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, deployment_target),
        )
        return CoreMLPartitioner(compile_specs=specs)
    raise ExportError(f"unknown ExecuTorch backend {backend!r}; choose one of {', '.join(BACKENDS)}")


_SOFTMAX = (torch.ops.aten.softmax.int, torch.ops.aten._softmax.default)
_CONV = (torch.ops.aten.conv2d.default, torch.ops.aten.convolution.default)
# ops that keep a conv output's (channels-last, inside XNNPACK) layout on the way to a softmax
_POINTWISE = {getattr(torch.ops.aten, n).default for n in ("relu", "gelu", "hardswish", "sigmoid", "silu", "neg")} | {
    getattr(torch.ops.aten, n).Tensor for n in ("add", "mul", "sub", "div")} | {
    torch.ops.aten.add.Scalar, torch.ops.aten.mul.Scalar, torch.ops.aten.div.Scalar}


def _fed_by_conv(node: torch.fx.Node) -> bool:
    while node.op == "call_function" and node.target in _POINTWISE:
        node = next(a for a in node.args if isinstance(a, torch.fx.Node))
    return node.op == "call_function" and node.target in _CONV


def isolate_softmax_after_conv(program: torch.export.ExportedProgram,
                               example: torch.Tensor) -> tuple[torch.export.ExportedProgram, int]:
    """Wrap each last-axis softmax of a conv's rank-4 output in a rank-3 view; returns (program, count).

    Why: ExecuTorch 1.5.1's XNNPACK delegate computes ``softmax(conv(x), dim=-1)`` wrongly (measured: relative
    L2 3.5 on a 1x1 conv over 8 channels of a 49x49 map; dims 1 and 2 are exact). Inside the delegate a conv's
    output is channels-last, where W is no longer the innermost axis, yet the softmax is applied as if it were.
    EfficientFormerV2's talking-head attention (a 1x1 conv over the heads, then a softmax over keys) hits it:
    its .pte was off by relative L2 0.64. A view to (B*C, H, W) makes the delegate restore the NCHW layout
    first; the function is unchanged (tests/test_export.py).
    """
    graph_module = program.module()
    graph = graph_module.graph
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_function" or node.target not in _SOFTMAX:
            continue
        source, dim = node.args[0], node.args[1]
        shape = tuple(source.meta["val"].shape) if "val" in source.meta else ()
        if len(shape) != 4 or dim % 4 != 3 or not _fed_by_conv(source):
            continue
        b, c, h, w = shape
        with graph.inserting_before(node):
            flat = graph.call_function(torch.ops.aten.reshape.default, (source, [b * c, h, w]))
            soft = graph.call_function(node.target, (flat, 2, *node.args[2:]))
            back = graph.call_function(torch.ops.aten.reshape.default, (soft, list(shape)))
        node.replace_all_uses_with(back)
        graph.erase_node(node)
        count += 1
    if not count:
        return program, 0
    graph_module.recompile()
    return torch.export.export(graph_module, (example,)), count


def delegated_sources(graph_module: torch.fx.GraphModule) -> dict[int, tuple[str, str]]:
    """Debug handle -> (node name, innermost PyTorch module) of every node inside the lowered delegates."""
    found: dict[int, tuple[str, str]] = {}
    for _, child in graph_module.named_children():
        original = getattr(child, "original_module", None)
        if original is None:
            continue
        for node in original.graph.nodes:
            handle = node.meta.get("debug_handle")
            if isinstance(handle, int) and node.op == "call_function":
                found[handle] = (node.name, _module_of(node))
    return found


def _module_of(node: torch.fx.Node) -> str:
    """The innermost PyTorch module a node was traced from. PT2E keeps no module for quantize/dequantize nodes, and
    XNNPACK gives a quantized op the handle of the quantize/dequantize pair after it: walk up that chain to the op."""
    while "quantize_per" in str(node.target) and node.args and isinstance(node.args[0], torch.fx.Node):
        node = node.args[0]
    for candidate in (node, *(a for a in node.args if isinstance(a, torch.fx.Node)), *node.users):
        path = module_of(candidate)
        if path not in ("(top level)", "L['self']"):
            return path
    return "(top level)"


@contextmanager
def shared_provenance():
    """While lowering, each FX pass's provenance record shares its node's history instead of deep-copying it.

    Why: every pass that re-runs the graph (ExecuTorch's edge passes, the XNNPACK delegate's 17 preprocess passes,
    each ``run_decompositions``) gives each node a ``NodeSource`` whose ``__init__`` deep-copies the node's whole
    ``from_node`` history, which is one level deeper after every pass: quadratic in the number of passes. On
    swiftformer-l1's int8 graph that was 44k deep copies, 6.3 of the 44 s of ``to_edge_transform_and_lower``
    (README). Nothing mutates a ``NodeSource`` once made (torch and ExecuTorch only read the history; the debug
    handles come from its oldest ancestor), so sharing it gives the same tree and a byte-identical ``.pte``
    (tests/test_export.py). Only for the torch release whose ``NodeSource`` was read (2.14); any other deep-copies
    as it always does. Process-wide while active: lower in one thread at a time.
    """
    from torch.fx import traceback as fx_traceback

    if not torch.__version__.startswith("2.14."):
        yield
        return

    source = fx_traceback.NodeSource
    original = source.__init__

    def init(self, node=None, pass_name="", action=None):
        history = node.meta.pop("from_node", None) if node is not None and node.meta else None
        try:
            original(self, node, pass_name, action)
        finally:
            if history is not None:
                node.meta["from_node"] = history
        if history is not None:
            self.from_node = list(history)

    source.__init__ = init
    try:
        yield
    finally:
        source.__init__ = original


_BATCH_NORM = ("aten.native_batch_norm.default", "aten._native_batch_norm_legit_no_training.default")
# XNNPACK preprocess passes of ExecuTorch 1.5 that act only on these (edge) ops; each one costs a re-trace of the
# whole delegate graph under fake tensors even when it finds nothing to do
_XNNPACK_PASS_OPS = {
    "ConvertToUpsampleBilinear2d": ("aten.upsample_bilinear2d.vec",),  # its patterns are that one op
    "ConvertToSDPAPass": ("aten._softmax.default",),  # its patterns are bmm, softmax, bmm
    "FuseBatchNormPass": _BATCH_NORM,
    "DecomposeBatchNorm": _BATCH_NORM,
    "DecomposeConcatenate": ("aten.cat.default",),
    "PReLUReshapePass": ("aten._prelu_kernel.default",),
    "Conv1dUnsqueezePass": ("aten.convolution.default",),  # acts on rank-3 weights only: see _acts_on
}


def _acts_on(pass_name: str, graph: torch.fx.Graph) -> bool:
    """Whether an XNNPACK pass can change this graph: unknown passes always can."""
    ops = _XNNPACK_PASS_OPS.get(pass_name)
    if ops is None:
        return True
    for node in graph.nodes:
        if node.op != "call_function" or getattr(node.target, "__name__", None) not in ops:
            continue
        if pass_name != "Conv1dUnsqueezePass":
            return True
        weight = node.args[1]  # through a dequantize to the int8 weight, as the pass does
        while isinstance(weight, torch.fx.Node) and "quantize_per" in str(weight.target):
            weight = weight.args[0]
        value = weight.meta.get("val") if isinstance(weight, torch.fx.Node) else None
        if value is None or value.dim() == 3:
            return True
    return False


@contextmanager
def skip_idle_xnnpack_passes():
    """While lowering, the XNNPACK delegate skips those of its preprocess passes with nothing to act on.

    Why: each of its 17 passes re-traces the whole delegate graph (0.6 s apiece on swiftformer-l1's int8 graph);
    seven act only on ops a model may not have (upsample, softmax-attention, batch norm, concatenation, PReLU,
    1-D convolution: _XNNPACK_PASS_OPS, the conditions the passes themselves test) and otherwise re-trace it
    unchanged. Skipping those cut about 8 s of ``to_edge_transform_and_lower`` there (README), the ``.pte``
    byte-identical (tests/test_export.py). Only for the ExecuTorch release whose passes were read (1.5); any
    other runs every pass. Process-wide while active: lower in one thread at a time.
    """
    from executorch.backends.xnnpack._passes import XNNPACKPassManager
    from executorch.version import __version__

    if not __version__.startswith("1.5."):
        yield
        return
    original = XNNPACKPassManager.transform

    def transform(self):
        graph = self.exported_program.graph_module.graph
        self.passes = [p for p in self.passes if _acts_on(getattr(p, "__name__", ""), graph)]
        return original(self)

    XNNPACKPassManager.transform = transform
    try:
        yield
    finally:
        XNNPACKPassManager.transform = original


def export_executorch(prepared: nn.Module, example: torch.Tensor, out: Path, *, backend: str = "xnnpack",
                      precision: str = "fp32", deployment_target: str = "iOS17",
                      calibration: list[torch.Tensor] | None = None, quantization: dict | None = None,
                      progress=None, sources: dict | None = None) -> dict:
    """Lower and save atomically; returns the delegation summary for the manifest.

    ``precision="int8"`` (XNNPACK only) quantizes first, statically, on ``calibration`` (edgevit.export.quantize);
    the summary then also lists the layers left in float. ``quantization`` passes options through to
    ``quantize_pt2e`` (``keep_float``, ``auto_keep_float``, ``activation_observer``); the seconds of each stage
    (export, prepare, calibration, sensitivity, convert, lowering, serialisation) go into the summary. ``sources``,
    when given, is filled with each delegated node's debug handle -> (node name, PyTorch module): what the XNNPACK
    graph's nodes came from (``edgevit validate --bisect``).
    """
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    partitioner = _partitioner(backend, precision, deployment_target)
    stages: dict[str, float] = {}
    program = None
    rewritten = 0
    quantized = None
    if precision == "int8":
        from edgevit.export.quantize import quantize_pt2e, summarise_float_layers

        if backend != "xnnpack" or not calibration:
            raise ExportError("int8 .pte: XNNPACK only, and it needs calibration images")
        options = dict(quantization or {})
        observer = options.pop("activation_observer", "minmax")
        converted, float_ops, mixed = quantize_pt2e(prepared, example, calibration, activation_observer=observer,
                                                    stages=stages, progress=progress, **options)
        quantized = {"scheme": "int8 static (PT2E, XNNPACKQuantizer, symmetric, weights per channel, activations "
                               f"per tensor, {observer} activation observer)",
                     "activation_observer": observer, "float_layers": summarise_float_layers(float_ops),
                     **({"mixed_precision": mixed} if mixed else {})}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clock = time.perf_counter()
            program = torch.export.export(converted if quantized else in_eval(prepared), (example,))
            if backend == "xnnpack":
                program, rewritten = isolate_softmax_after_conv(program, example)
            stages["export_for_lowering_s"] = time.perf_counter() - clock
            clock = time.perf_counter()
            # lowering shortcuts, measured on (and so kept to) XNNPACK: the same bytes, a third less time
            faster = backend == "xnnpack"
            with shared_provenance() if faster else nullcontext(), \
                    skip_idle_xnnpack_passes() if faster else nullcontext():
                edge = to_edge_transform_and_lower(program, partitioner=[partitioner])
            stages["to_edge_transform_and_lower_s"] = time.perf_counter() - clock
            info = get_delegation_info(edge.exported_program().graph_module)
            if sources is not None:
                sources.update(delegated_sources(edge.exported_program().graph_module))
            clock = time.perf_counter()
            with shared_provenance() if faster else nullcontext():
                buffer = edge.to_executorch().buffer
            stages["to_executorch_s"] = time.perf_counter() - clock
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise export_error(f"ExecuTorch ({backend})", exc, program) from None
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer)
    undelegated = {
        op: b.non_delegated for op, b in info.delegation_by_operator.items() if b.non_delegated and op != "getitem"
    }
    result = {
        "input": {"name": "x", "kind": "tensor", "shape": list(example.shape)},
        "output": {"name": "output", "kind": "logits"},
        "workarounds": ({"xnnpack_softmax_after_conv_isolated": rewritten}
                        if backend == "xnnpack" and rewritten else {}),
        "delegation": {
            "backend": backend,
            "delegated_subgraphs": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes,
            "non_delegated_nodes": info.num_non_delegated_nodes,
            "non_delegated_ops": dict(sorted(undelegated.items(), key=lambda kv: -kv[1])),
        },
    }
    if quantized:
        quantized["stage_seconds"] = {k: round(v, 1) for k, v in stages.items()}
        result["quantization"] = quantized
    return result
