"""Fidelity of int8 artifacts: against the quantized program edgevit's own quantizer makes from the original.

Why not against the original: int8 noise (4% relative L2 on logits for swiftformer-xs) is as large as a broken
layer's effect, and why not runtime against emulation alone: the int8 kernels' rounding (one output step per
layer, compounding) already moves logits by 1.5% (onnxruntime) to 3% (XNNPACK). What is exact is the program:
edgevit re-runs its quantizer on the original with the same calibration set (deterministic: MinMax over fixed
images) and compares what the artifact stores with what it makes.

- ``.onnx`` (QDQ): every initializer (int8 weights, scales, zero points, float biases) must equal the
  reference's, name by name, and the graph must have the reference's nodes; then both programs run in onnxruntime
  with graph optimisations off, which executes each QuantizeLinear/DequantizeLinear as its definition says (an
  exact emulation of the stored scales and zero points), and must agree within ``EMULATION_BOUND`` (identical
  programs give identical results; the bound only admits thread-split summation). Then onnxruntime's own
  int8 kernels (optimisations on) on the artifact against the same on the rebuild, within ``EMULATION_BOUND``
  too, and against the emulation within ``RUNTIME_BOUND`` (else inconclusive: a runtime kernel computing something
  else than the program, as onnxruntime's fused QLinearSoftmax did; edgevit.export.quantize).
- ``.pte`` (XNNPACK): every constant the XNNPACK graphs store (int8 weights in XNNPACK's layout, per-channel
  scales, float tensors, and the 1x1 depthwise weights and biases XNNPACK's lowering derives from a float BatchNorm
  that no conv precedes) must be byte-identical to one the reference's PT2E-converted program holds or derives; every
  int32 bias must be what XNNPACK derives for its own layer and that layer's input quantization, and every
  per-tensor activation quantization (scale, zero point) must be one the reference uses; then the runtime's
  output against the converted program (which emulates its quantize/dequantize ops in float) within
  ``RUNTIME_BOUND``; when every stored value matches and only that bound is missed, the verdict is inconclusive
  (XNNPACK's rounding compounding, e.g. random-init DeiT-T at 0.171), never pass.

The calibration set must be the one the artifact was made with: the bundled photos are regenerated here; a user's
folder is needed again (``--calibration DIR``), and its hash must match the manifest's.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgevit.base.errors import ArtifactError
from edgevit.export.shared_weights import get_attr_value
from edgevit.validate.fidelity import Fidelity, judge_outputs
from edgevit.validate.runtimes import RuntimeUnavailable

EMULATION_BOUND = 1e-6
SCALE_TOLERANCE = 5.1e-7  # flatc's JSON gives an activation scale to 6 decimal places
# Activation ranges observed with another fp32 summation order (thread count, ISA) differ by rounding only: measured
# 4.9e-7 relative on swiftformer-xs's per-channel bias scales between 1 and 2 threads, and one activation zero point
# rounded one step the other way. Quantities derived from them (activation scales, the bias scales s_in·s_w and int32
# biases XNNPACK computes) are matched within this, a zero point within one step; weights and their scales, which
# calibration does not touch, stay byte-identical. A tampered scale (+2%, +5%) is thousands of times outside it.
CALIBRATION_RTOL = 1e-5
RUNTIME_BOUND = 0.15
EMULATION_DERIVATION = ("the artifact's QDQ program and edgevit's re-quantized one, both executed by onnxruntime with "
                        "graph optimisations off (QuantizeLinear/DequantizeLinear as defined): identical programs "
                        "agree to the bit; the bound admits only thread-split fp32 summation")
RUNTIME_DERIVATION = ("the runtime's int8 kernels against the exact emulation: one output quantization step per "
                      "layer, compounding through the network; measured 1.5% (onnxruntime) and 3.2% (XNNPACK) "
                      "relative L2 on swiftformer-xs logits")


def calibration_for(subject, manifest: dict):
    """The calibration set the artifact was quantized with, rebuilt here; RuntimeUnavailable when it cannot be."""
    from edgevit.validate.calibration import calibration_set

    recorded = (manifest.get("quantization") or {}).get("calibration") or {}
    given = subject.calibration
    calibration = given if given is not None else calibration_set(subject.spec)
    if recorded.get("sha256") not in (None, calibration.sha256):
        raise RuntimeUnavailable(
            f"this artifact was calibrated on {recorded.get('source')!r} (set sha256 "
            f"{str(recorded.get('sha256'))[:12]}), not on {calibration.source} (sha256 {calibration.sha256[:12]}): its "
            "quantized reference cannot be rebuilt without that set; pass it with `edgevit validate ARTIFACT "
            "--calibration DIR`")
    return calibration


def judge_int8(subject, artifact: Path, manifest: dict):
    """(runtime label, fidelity, original logits, artifact logits, inputs, expected noise, diagnosis)."""
    from edgevit.base.naming import target_of
    from edgevit.validate.parity import original_logits
    from edgevit.validate.runtimes import open_runner

    calibration = calibration_for(subject, manifest)
    inputs = subject.inputs
    runner = open_runner(artifact, manifest)
    actual = np.concatenate([runner.checked_run(item.tensor) for item in inputs])
    reference = original_logits(subject.original, inputs)
    example = torch.randn((1, *subject.spec.input_size), generator=torch.Generator().manual_seed(0))
    if target_of(artifact) == "onnx":
        fidelity, quantized = _onnx_fidelity(subject, artifact, manifest, calibration, example, actual)
    else:
        fidelity, quantized = _pte_fidelity(subject, artifact, manifest, calibration, example, actual)
    from edgevit.validate.parity import _photo_psnr

    expected = {"quantizer's reference (int8 weights and activations, float compute)":
                _photo_psnr(reference, quantized, inputs)}
    return runner.runtime, fidelity, reference, actual, inputs, expected, ""


# ----------------------------------------------------------------------------------------------------------- ONNX

def _onnx_fidelity(subject, artifact: Path, manifest: dict, calibration, example, actual: np.ndarray):
    import onnx


    config = (manifest.get("quantization") or {}).get("config") or {}
    key = ("onnx-int8", calibration.sha256, config.get("name"), config.get("calibration_method"),
           tuple(recorded_keep_float(manifest) or ()))
    if key not in subject.cache:  # one re-quantization per subject, however many artifacts are checked against it
        with tempfile.TemporaryDirectory(prefix="edgevit-int8-reference-") as tmp:
            reference_path = Path(tmp) / "reference.int8.onnx"
            rebuild_onnx_int8(subject.prepared, manifest, calibration, example, reference_path)
            subject.cache[key] = (onnx.load(str(reference_path)),
                                  _run_onnx(reference_path, subject.inputs, optimize=False),
                                  _run_onnx(reference_path, subject.inputs, optimize=True))
    rebuilt, quantized, rebuilt_runtime = subject.cache[key]
    values = _compare_onnx(onnx.load(str(artifact)), rebuilt)
    emulated = _run_onnx(artifact, subject.inputs, optimize=False)
    fidelity = judge_outputs(quantized, emulated, EMULATION_BOUND,
                             "the artifact's QDQ program vs edgevit's re-quantization of the original, both emulated "
                             "by onnxruntime (optimisations off)", EMULATION_DERIVATION, require_top1=False)
    _add_runtime_check(fidelity, emulated, actual, "onnxruntime's int8 kernels", rebuilt_runtime)
    _add_values(fidelity, values)
    return fidelity, quantized


def rebuild_onnx_int8(prepared, manifest: dict, calibration, example, path: Path) -> None:
    """Quantize ``prepared`` to ``path`` as the manifest says the int8 ``.onnx`` was: edgevit's configuration and
    calibration method, the same calibration set, the same layers kept in float."""
    from edgevit.export.onnx import export_onnx_int8

    config = (manifest.get("quantization") or {}).get("config") or {}  # which of edgevit's configurations
    kept = recorded_keep_float(manifest)
    export_onnx_int8(prepared, example, path, calibration.tensors, config=config.get("name"),
                     method=config.get("calibration_method"), quantization={"keep_float": kept} if kept else None)


def _run_onnx(path: Path, inputs, optimize: bool) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return np.concatenate([session.run(None, {name: item.tensor.numpy()})[0] for item in inputs]).astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - onnxruntime's own error, said once
        raise ArtifactError(f"onnxruntime cannot run {path.name} with optimisations off: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:300]}") from None


def _compare_onnx(stored, rebuilt) -> dict:
    """The stored-values check of a QDQ program: initializers name by name, then the node list."""
    from onnx import numpy_helper

    mine = {t.name: numpy_helper.to_array(t) for t in stored.graph.initializer}
    theirs = {t.name: numpy_helper.to_array(t) for t in rebuilt.graph.initializer}
    broken = []
    for name, expected in theirs.items():
        got = mine.get(name)
        if got is None or got.shape != expected.shape or got.dtype != expected.dtype:
            broken.append({"tensor": name, "parameter": name, "rule": "exact", "bad": int(expected.size),
                           "of": int(expected.size), "worst": float("inf"),
                           "why": "missing" if got is None else f"{got.dtype}{list(got.shape)}"})
            continue
        differ = got != expected
        if differ.any():
            step = np.abs(expected.astype(np.float64)).max() or 1.0
            worst = float(np.abs(got.astype(np.float64) - expected.astype(np.float64)).max() / step)
            broken.append({"tensor": name, "parameter": name, "rule": "exact", "bad": int(differ.sum()),
                           "of": int(expected.size), "worst": worst})
    extra = sorted(set(mine) - set(theirs))
    nodes = [(n.op_type, tuple(n.input), tuple(n.output)) for n in stored.graph.node]
    wanted = [(n.op_type, tuple(n.input), tuple(n.output)) for n in rebuilt.graph.node]
    graph = None
    if nodes != wanted:
        first = next((i for i, (a, b) in enumerate(zip(nodes, wanted, strict=False)) if a != b),
                     min(len(nodes), len(wanted)))
        got = nodes[first] if first < len(nodes) else None
        want = wanted[first] if first < len(wanted) else None
        graph = (f"node {first} is {got[0] + ' ' + str(list(got[2])) if got else 'missing'}, the quantizer makes "
                 f"{want[0] + ' ' + str(list(want[2])) if want else 'nothing there'} ({len(nodes)} nodes vs "
                 f"{len(wanted)})")
    return {"checked": len(theirs), "broken": broken, "unmatched": extra, "graph": graph}


# ------------------------------------------------------------------------------------------------------------ PTE

def recorded_pt2e_options(manifest: dict) -> dict:
    """The PT2E options an int8 ``.pte`` was quantized with, as its manifest records them (observer, layers kept in
    float): what rebuilding its quantized reference, or lowering it again, needs."""
    from edgevit.export.quantize import DEFAULT_ACTIVATION_OBSERVER

    recorded = manifest.get("quantization") or {}
    return {"activation_observer": recorded.get("activation_observer") or DEFAULT_ACTIVATION_OBSERVER,
            "keep_float": recorded_keep_float(manifest)}


def backend_module(subject, manifest: dict):
    """The module a ``.pte`` was lowered from: ``subject.prepared`` with the backend rewrites its manifest records
    (converters.backends: XNNPACK's large depthwise convs split), applied again on a copy, so a re-quantization or
    re-lowering starts from the same program the artifact was made from. Cached per subject."""
    from converters.backends import backend_copy

    rewrites = manifest.get("rewrites") or []
    backend = manifest.get("backend")
    if not any(isinstance(r, str) and r.startswith(f"{backend}:") for r in rewrites):
        return subject.prepared
    key = ("backend-module", backend)
    if key not in subject.cache:
        subject.cache[key] = backend_copy(subject.prepared, backend)[0]
    return subject.cache[key]


def recorded_keep_float(manifest: dict) -> list[str] | None:
    """The layers an int8 artifact kept in float (``quantization.mixed_precision.keep_float``), or None."""
    mixed = (manifest.get("quantization") or {}).get("mixed_precision") or {}
    kept = mixed.get("keep_float") or []
    if not isinstance(kept, list) or not all(isinstance(name, str) for name in kept):
        raise ArtifactError("the manifest's quantization.mixed_precision.keep_float is not a list of layer names")
    return list(kept) or None


def _pte_fidelity(subject, artifact: Path, manifest: dict, calibration, example, actual: np.ndarray):
    from edgevit.export.quantize import quantize_pt2e

    options = recorded_pt2e_options(manifest)
    observer, kept = options["activation_observer"], options["keep_float"]
    module = backend_module(subject, manifest)
    key = ("pt2e-int8", calibration.sha256, observer, tuple(kept or ()), module is not subject.prepared)
    if key not in subject.cache:  # one PT2E quantization per subject and configuration
        converted, _, _ = quantize_pt2e(module, example, calibration.tensors,
                                        activation_observer=observer, keep_float=kept)
        with torch.no_grad():
            outputs = [converted(item.tensor).numpy() for item in subject.inputs]
        subject.cache[key] = (np.concatenate(outputs).astype(np.float32), reference_hashes(converted),
                              _reference_qparams(converted), derived_by_weight(converted))
    quantized, known, params, derived = subject.cache[key]
    fidelity = judge_outputs(quantized, actual, RUNTIME_BOUND,
                             "the XNNPACK int8 runtime vs edgevit's PT2E quantization of the original (quantize/"
                             "dequantize emulated in float)", RUNTIME_DERIVATION, require_top1=False)
    _add_values(fidelity, _compare_pte(artifact, known, params, derived))
    values = fidelity.values or {}
    if fidelity.status == "fail" and not values.get("n_broken") and not values.get("graph") \
            and not values.get("n_unmatched"):
        fidelity.status = "inconclusive"
        fidelity.reason = (f"{fidelity.reason}; but every constant the program stores is edgevit's re-quantization of "
                           "the original (weights byte for byte, activation quantization within calibration "
                           "rounding), so this is XNNPACK's int8 rounding compounding through the network (large "
                           "where the model's int8 error is: see the precision cost), not a different program")
    return fidelity, quantized


def _compare_pte(artifact: Path, known: set[str], params: list[tuple[float, int]],
                 derived: dict[str, list[DerivedBias]] | None = None) -> dict:
    """Every XNNPACK constant but the biases must be byte-identical to a tensor of the converted program (int8
    weights and fp32 scales, in one of the layouts XNNPACK stores: as is, OIHW -> OHWI, depthwise -> 1HWC) or to
    one XNNPACK's lowering derives from it (a float BatchNorm's 1x1 depthwise weights and bias); every int32 bias and
    its per-channel scales must be what XNNPACK derives for the layer whose weights the same node reads, applied to
    the input quantization that node reads (a zeroed bias must not pass as another layer's zero bias, nor one use of
    shared weights' bias as another use's), within calibration rounding; every per-tensor activation quantization one
    the converted program uses, within calibration rounding."""
    from edgevit.export.pte_xnnpack import per_tensor_quant_params, xnnpack_programs

    derived = derived or {}
    broken, checked = [], 0
    for program in xnnpack_programs(artifact):
        layers = _bias_layers(program)
        per_layer = {layer.bias for layer in layers} | {layer.scales for layer in layers if layer.scales is not None}
        for index, data in program.constants.items():
            if index in per_layer:  # an int32 bias or its scales: checked against its own layer below
                continue
            checked += 1
            if hashlib.sha256(data).hexdigest() not in known:
                broken.append({"tensor": f"constant {index} ({len(data)} bytes)",
                               "parameter": "the quantized reference", "rule": "byte-identical", "bad": 1, "of": 1,
                               "worst": float("inf")})
        for layer in layers:
            checked += 1
            candidates = derived.get(hashlib.sha256(program.constants.get(layer.filter, b"")).hexdigest(), [])
            bias = program.constants.get(layer.bias, b"")
            scales = program.constants.get(layer.scales, b"") if layer.scales is not None else None
            if not any(_is_derived(bias, scales, layer.input_scale, c) for c in candidates):
                broken.append({"tensor": f"int32 bias {layer.bias} ({len(bias)} bytes) of node {layer.node}",
                               "parameter": "the bias XNNPACK derives for the layer whose weights its node reads",
                               "rule": "bias / (input scale · weight scales), calibration rounding", "bad": 1,
                               "of": 1, "worst": float("inf")})
    for scale, zero_point, where in per_tensor_quant_params(artifact):
        checked += 1
        if not any(same_qparams((scale, zero_point), p) for p in params):
            nearest = min(params, key=lambda p: abs(p[0] - scale)) if params else (float("nan"), 0)
            broken.append({"tensor": f"activation quantization of {where}", "parameter": "the quantized reference",
                           "rule": "scale and zero point", "bad": 1, "of": 1,
                           "worst": abs(scale - nearest[0]) / SCALE_TOLERANCE,
                           "why": f"scale {scale:.6g} zero point {zero_point}; nearest in the reference "
                                  f"{nearest[0]:.6g} / {nearest[1]}"})
    return {"checked": checked, "broken": broken, "unmatched": [], "graph": None}


@dataclass(frozen=True)
class BiasLayer:
    """An XNNPACK node that reads an int32 bias: the node's index, the constants of its bias, of the weights it reads
    and of the bias's per-channel scales (if any), and the scale of the activation it reads (None when that is not
    int8 per tensor: a float node handed an int32 bias is never a layer the reference derives)."""

    node: int
    bias: int
    filter: int
    scales: int | None
    input_scale: float | None


@dataclass(frozen=True)
class DerivedBias:
    """One use of a conv/linear's int8 weights in the reference: the scale of the activation it reads, and the bias
    scales (fp32) and int32 bias XNNPACK derives for that use. Weights applied twice (CoaT's shared positional
    convs) have one per use."""

    input_scale: float
    scales: np.ndarray
    bias: np.ndarray


def _is_derived(bias: bytes, scales: bytes | None, input_scale: float | None, candidate: DerivedBias) -> bool:
    if input_scale is None or not same_scale(input_scale, candidate.input_scale):
        return False
    return same_calibrated(bias, candidate.bias) and (scales is None or same_calibrated(scales, candidate.scales))


def _bias_layers(program) -> list[BiasLayer]:
    """Each node of ``program`` that reads an int32 bias (one bias may be read by several nodes)."""
    found = []
    for position, node in enumerate(program.nodes):
        fields = node.get("xnode_union") or {}
        if "bias_id" not in fields or "filter_id" not in fields:
            continue
        bias_tensor, quantized = program.values.get(fields["bias_id"], ({}, None))
        if "int32" not in str(bias_tensor.get("datatype")):
            continue
        filter_tensor, _ = program.values.get(fields["filter_id"], ({}, None))
        scale_index = ((quantized or {}).get("quant_params") or {}).get("scale_buffer_idx")
        _, input_quantized = program.values.get(fields.get("input1_id", 0), ({}, None))  # flatc omits a 0
        input_params = (input_quantized or {}).get("quant_params") or {}
        input_scale = (float(input_params["scale"]) if (input_quantized or {}).get("quant_params_type")
                       == "PerTensorQuant" and "scale" in input_params else None)
        found.append(BiasLayer(position, bias_tensor.get("constant_buffer_idx", 0),
                               filter_tensor.get("constant_buffer_idx", 0), scale_index, input_scale))
    return found


def same_scale(a: float, b: float) -> bool:
    """Two activation scales equal up to calibration rounding (and flatc's six printed digits); ``b`` the
    reference's."""
    return abs(a - b) <= SCALE_TOLERANCE + CALIBRATION_RTOL * abs(b)


def same_qparams(a: tuple[float, int], b: tuple[float, int]) -> bool:
    """Two activation quantizations equal up to calibration rounding (and flatc's six printed digits)."""
    return same_scale(a[0], b[0]) and abs(a[1] - b[1]) <= 1


def same_calibrated(data: bytes, reference: np.ndarray) -> bool:
    """``data`` is ``reference`` (an fp32 scale or int32 bias array derived from activation ranges) up to calibration
    rounding: relative CALIBRATION_RTOL, an int32 also one step."""
    if len(data) != reference.nbytes or reference.dtype not in (np.float32, np.int32):
        return False
    stored = np.frombuffer(data, dtype=reference.dtype).astype(np.float64)
    expected = reference.astype(np.float64).ravel()
    slack = CALIBRATION_RTOL * np.abs(expected) + (1.0 if reference.dtype == np.int32 else 0.0)
    return bool(np.all(np.abs(stored - expected) <= slack))


def derived_by_weight(converted) -> dict[str, list[DerivedBias]]:
    """sha256 of a conv/linear's int8 weights (each layout XNNPACK may store) -> each use of them: what XNNPACK's
    lowering derives for it (the bias of a node is checked against its own layer's, and its own input's)."""
    found: dict[str, list[DerivedBias]] = {}
    for weights, in_scale, scale, bias in _derived_layers(converted):
        use = DerivedBias(in_scale, scale.detach().numpy().astype(np.float32), bias.detach().numpy())
        layouts = {hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for v in _layouts(weights)}
        for key in layouts:
            found.setdefault(key, []).append(use)
    return found


def reference_hashes(converted) -> set[str]:
    """sha256 of every int8 / float tensor the converted program holds (in each layout XNNPACK may store it), and of
    the 1x1 depthwise weights and bias XNNPACK's lowering derives from each float BatchNorm: what a constant other
    than a bias must be byte-identical to."""
    tensors = list(converted.state_dict().values())
    for node in converted.graph.nodes:
        if node.op == "get_attr" and isinstance(get_attr_value(converted, node.target), torch.Tensor):
            tensors.append(get_attr_value(converted, node.target))
    tensors += _batch_norms_as_depthwise(converted)
    hashes = set()
    for tensor in tensors:
        if tensor.dtype not in (torch.int8, torch.uint8, torch.float32, torch.float64):
            continue  # zero points (int64) are not stored as constants; a zeroed bias would match them by bytes
        for variant in _layouts(tensor):
            hashes.add(hashlib.sha256(np.ascontiguousarray(variant).tobytes()).hexdigest())
    return hashes


def _batch_norms_as_depthwise(converted) -> list[torch.Tensor]:
    """The per-channel weight and bias of each float BatchNorm of the converted program (one no conv precedes, so
    no fold removed it), as ExecuTorch's XNNPACK lowering derives them to run it as a 1x1 depthwise conv
    (backends/xnnpack/_passes/decompose_batch_norm.py: computed in float64, stored in the parameters' dtype). The
    lowering's own function computes them, so the bytes are the ones it stores; a changed value is not among them."""
    from executorch.backends.xnnpack._passes.decompose_batch_norm import DecomposeBatchNorm

    found = []
    for node in converted.graph.nodes:
        if node.op != "call_function" or "batch_norm" not in str(node.target):
            continue
        params = [get_attr_value(converted, a.target) if isinstance(a, torch.fx.Node) and a.op == "get_attr" else None
                  for a in node.args[1:5]]
        gamma, beta, mean, var = params
        eps = node.args[7] if "aten.batch_norm" in str(node.target) else node.args[-1]
        if not isinstance(mean, torch.Tensor) or not isinstance(var, torch.Tensor) or not isinstance(eps, float):
            continue
        found += list(DecomposeBatchNorm.compute_w_and_b(eps, mean, var, gamma, beta))
    return found


def _derived_layers(converted) -> list[tuple[torch.Tensor, float, torch.Tensor, torch.Tensor]]:
    """(int8 weights, input scale, bias scale, int32 bias) of each conv/linear with int8 input and weights, as
    ExecuTorch's XNNPACK lowering computes them (backends/xnnpack/operators/quant_params.py, QuantParams.from_bias)."""
    found = []
    for node in converted.graph.nodes:
        if node.op != "call_function" or not any(k in str(node.target) for k in ("conv", "linear")):
            continue
        args = list(node.args)
        if len(args) < 3 or not all(isinstance(a, torch.fx.Node) for a in args[:3]):
            continue
        x, w, b = args[:3]
        if "dequantize_per_channel" not in str(w.target) or "dequantize_per_tensor" not in str(x.target):
            continue
        in_scale = x.args[1]
        w_scale = get_attr_value(converted, w.args[1].target) if isinstance(w.args[1], torch.fx.Node) else None
        weights = get_attr_value(converted, w.args[0].target) if isinstance(w.args[0], torch.fx.Node) else None
        bias = get_attr_value(converted, b.target) if b.op == "get_attr" else None
        if not isinstance(in_scale, float) or w_scale is None or bias is None or weights is None:
            continue
        scale = w_scale * in_scale
        quantized = torch.ops.quantized_decomposed.quantize_per_channel.default(
            bias, scale, torch.zeros_like(scale, dtype=torch.int64), 0, -(2**31), 2**31 - 1, torch.int32)
        found.append((weights, in_scale, scale, quantized))
    return found


def _layouts(tensor: torch.Tensor) -> list[np.ndarray]:
    array = tensor.detach().contiguous().numpy()
    variants = [array]
    if array.ndim == 4:
        variants += [array.transpose(0, 2, 3, 1), array.transpose(1, 2, 3, 0)]
    if array.ndim == 2:
        variants.append(array.T)
    if array.dtype == np.float64:
        variants += [v.astype(np.float32) for v in variants]
    return variants


def _reference_qparams(converted) -> list[tuple[float, int]]:
    """(scale, zero point) of every per-tensor quantize/dequantize in the converted program."""
    found = []
    for node in converted.graph.nodes:
        if node.op == "call_function" and "per_tensor" in str(node.target) and len(node.args) >= 3:
            scale, zero_point = node.args[1], node.args[2]
            if isinstance(scale, int | float) and isinstance(zero_point, int):
                found.append((float(scale), int(zero_point)))
    return found


def _add_runtime_check(fidelity: Fidelity, emulated: np.ndarray, actual: np.ndarray, runtime: str,
                       rebuilt_runtime: np.ndarray) -> None:
    """The runtime's int8 kernels on the artifact against (1) the same runtime on edgevit's re-quantization: identical
    programs give identical outputs (bound ``EMULATION_BOUND``, else fail); (2) the exact emulation of the program
    the artifact holds, within ``RUNTIME_BOUND`` (one output step per layer, compounding), else inconclusive: the
    program is right and the runtime computes something else (measured: onnxruntime's fused QLinearSoftmax at a
    small output scale, 35% on random-init DeiT-T before edgevit left attention's MatMuls float; 3.4% since)."""
    from edgevit.validate.metrics import rel_l2

    error = rel_l2(rebuilt_runtime, actual)
    drift = rel_l2(emulated, actual)
    fidelity.extra["runtime_vs_rebuilt"] = {"runtime": runtime, "rel_l2": error, "bound": EMULATION_BOUND,
                                            "derivation": "the same runtime and session options on the artifact "
                                                          "and on edgevit's re-quantization of the original"}
    fidelity.extra["runtime_vs_emulation"] = {"runtime": runtime, "rel_l2": drift, "bound": RUNTIME_BOUND,
                                              "derivation": RUNTIME_DERIVATION}
    if not error <= EMULATION_BOUND:
        fidelity.status = "fail"
        note = (f"{runtime} on the artifact disagree with the same runtime on edgevit's re-quantization by relative "
                f"L2 {error:.3g} > {EMULATION_BOUND:g}")
        fidelity.reason = f"{fidelity.reason}; {note}" if fidelity.reason else note
    elif not drift <= RUNTIME_BOUND and fidelity.status == "pass":
        fidelity.status = "inconclusive"
        fidelity.reason = (f"the artifact's program is edgevit's re-quantization of the original, but {runtime} "
                           f"compute {drift:.3g} relative L2 away from that program (bound {RUNTIME_BOUND:g}, its "
                           "int8 rounding): a runtime kernel that does not compute what the program says")


def _add_values(fidelity: Fidelity, values: dict) -> None:
    fidelity.values = {"checked": values["checked"], "broken": values["broken"][:10],
                       "n_broken": len(values["broken"]), "unmatched": values["unmatched"][:10],
                       "n_unmatched": len(values["unmatched"]), "graph": values["graph"]}
    problems = []
    if values["broken"]:
        first = values["broken"][0]
        problems.append(f"stored {first['tensor']} differs from edgevit's re-quantization ({first['bad']} of "
                        f"{first['of']} values{'; ' + first['why'] if first.get('why') else ''})"
                        + (f" and {len(values['broken']) - 1} more" if len(values["broken"]) > 1 else ""))
    if values["graph"]:
        problems.append(f"the graph differs: {values['graph']}")
    if problems:
        fidelity.status = "fail"
        fidelity.reason = "; ".join(problems) + (f"; {fidelity.reason}" if fidelity.reason else "")
