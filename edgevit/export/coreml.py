"""Prepared module -> CoreML ``.mlpackage`` (mlprogram) that drops into Xcode and Vision.

By default the package takes an RGB image (0-255) and applies the model's exact per-channel normalisation
inside the model (``ct.ImageType`` has only one scale for all channels), outputs class probabilities
(softmax inside) with ImageNet-1k labels via ``ct.ClassifierConfig``, and carries author/license/version/
description metadata. ``tensor_input=True`` gives a raw float tensor input and logits instead.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgevit.base.arguments import DEPLOYMENT_TARGETS
from edgevit.base.atomic import atomic_path
from edgevit.base.errors import EdgevitError, ExportError, UsageError
from edgevit.export.coreml_layers import weight_consts
from edgevit.export.failures import export_error
from edgevit.export.mil_inspect import module_of, stats_of_program, to_exported_program
from edgevit.models.registry import ModelSpec
from edgevit.models.spec import imagenet_labels


class ImageClassifier(nn.Module):
    """uint8-range RGB image -> normalised tensor -> model -> softmax, all inside the CoreML graph."""

    def __init__(self, model: nn.Module, mean: tuple[float, ...], std: tuple[float, ...]):
        super().__init__()
        self.model = model
        std_t = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("shift", -mean_t / std_t)

    def logits(self, image: torch.Tensor) -> torch.Tensor:
        """The tensor before the softmax: what parity compares (a saturated softmax hides large errors)."""
        return self.model(image * self.scale + self.shift)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.logits(image), dim=-1)


# --compress: coremltools.optimize.coreml configs; what each needs of the deployment target
COMPRESSION = {
    "w8": ("linear_quantize_weights", "int8 weights, symmetric, per output channel", "iOS16"),
    "w4": ("linear_quantize_weights", "int4 weights, symmetric, per block of 32 input channels (per output channel "
           "where the input channels are not a multiple of 32)", "iOS18"),
    "palette6": ("palettize_weights", "6-bit k-means palette (64 values) per tensor", "iOS16"),
    "palette4": ("palettize_weights", "4-bit k-means palette (16 values) per tensor", "iOS16"),
    "w8a8": ("linear_quantize_activations + linear_quantize_weights",
             "int8 activations (per tensor, symmetric, calibrated ranges) and int8 weights (symmetric, per output "
             "channel)", "iOS17"),
}
# w8a8's calibration: the converted MLModel -> (coremltools activation_stats, what the manifest records of them)
Calibrate = Callable[[Any], tuple[dict[str, dict[str, float]], dict]]
# w8a8's --keep-float (edgevit.mil.keep_float.KeepFloat): choose(mlmodel, activation_stats, node -> module path, the
# converted torch module) -> (MIL op names kept float, the manifest's mixed_precision record); written(compressed
# mlmodel) -> its logits PSNR on the scan inputs, or None
KeepFloat = Any


def quantize_activations(mlmodel, activation_stats: dict[str, dict[str, float]], keep_float: tuple[str, ...] = ()):
    """coremltools' own activation quantization (its insert_prefix/insert_suffix quantize-dequantize passes and
    dequantize-quantize pair elimination) fed ranges gathered elsewhere.

    ``linear_quantize_activations`` gathers its ranges with ``MLModel.predict`` (macOS only) inside the private
    ``_get_activation_calibration_stats``; everything else it does is platform-neutral. Replacing just that one
    step for the duration of the call keeps the rest (input-name checks, passes, their options, iOS17 spec
    version) exactly coremltools' code, so the package is the one it would write given these ranges.
    ``keep_float`` names ops (MIL op names) whose activations stay in float (op_name_configs set to None).
    """
    from unittest import mock

    import coremltools.optimize.coreml as cto
    from coremltools.optimize.coreml import _post_training_quantization as ptq

    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"),
                                    op_name_configs=dict.fromkeys(keep_float))
    with mock.patch.object(ptq, "_get_activation_calibration_stats", lambda *_args, **_kw: activation_stats):
        return ptq.linear_quantize_activations(mlmodel, config, sample_data=[])


def quantized_activation_ops(program) -> dict[str, dict[str, Any]]:
    """Each ``quantize`` op of a pymil program: the var it quantizes, its scale and zero point (what it carries)."""
    import numpy as np

    found = {}
    for function in program.functions.values():
        for op in function.operations:
            if op.op_type == "quantize":
                zero = op.inputs.get("zero_point")
                found[op.name] = {"input": op.inputs["input"].name,
                                  "scale": np.asarray(op.inputs["scale"].val, dtype=np.float32),
                                  "zero_point": None if zero is None else np.asarray(zero.val)}
    return found


def expected_scale(rmin: float, rmax: float) -> float:
    """The scale coremltools' symmetric int8 activation quantization derives from a range: the range is held in
    fp16 (get_min_and_max_values), then max|r| / 127 (int8 linear_symmetric spans [-127, 127])."""
    import numpy as np

    low, high = np.float16(rmin), np.float16(rmax)
    return float(max(abs(float(low)), abs(float(high))) / 127.0)


def _binary_normaliser(var) -> float:
    """The factor coremltools' ``distributive_quantized_binary_op_scale_normalization`` divided a quantize scale by.

    For ``dequantize(x) + dequantize(y) [-> activation] -> quantize`` that pass sets y's dequantize scale to 1 and
    divides x's dequantize scale and the output quantize scale by s_y (the same function, one fewer multiply on
    device); s_y stays on the quantize op that feeds y's dequantize."""
    import numpy as np

    op = var.op
    if op is not None and op.op_type not in ("add", "sub") and "x" in op.inputs and len(op.inputs) <= 3:
        op = op.inputs["x"].op  # an activation fused into the pattern (relu, ...)
    if op is None or op.op_type not in ("add", "sub"):
        return 1.0
    deq = op.inputs["y"].op
    if deq is None or deq.op_type != "dequantize" or not np.all(np.asarray(deq.inputs["scale"].val) == 1):
        return 1.0
    quant = deq.inputs["input"].op
    if quant is None or quant.op_type != "quantize":
        return 1.0
    return float(np.asarray(quant.inputs["scale"].val).reshape(-1)[0])


def ranges_not_carried(program, activation_stats: dict[str, dict[str, float]], rtol: float = 2e-3) -> list[str]:
    """Quantize ops whose scale is not the one their input's recorded range gives (empty: every op carries its
    range); an op quantizing a tensor with no recorded range is listed too. A scale coremltools' binary-op
    normalisation divided (see _binary_normaliser) is compared multiplied back."""
    bad = []
    normalisers = {op.name: _binary_normaliser(op.inputs["input"])
                   for f in program.functions.values() for op in f.operations if op.op_type == "quantize"}
    for name, op in quantized_activation_ops(program).items():
        stats = activation_stats.get(op["input"])
        if stats is None:
            bad.append(f"{name}: no recorded range for {op['input']!r}")
            continue
        want = expected_scale(stats["rmin"], stats["rmax"])
        got = float(op["scale"].reshape(-1)[0]) * normalisers[name]
        if op["zero_point"] is not None and bool((op["zero_point"] != 0).any()) or abs(got - want) > rtol * want:
            bad.append(f"{name}: scale {got:.6g} for {op['input']!r}, its range gives {want:.6g}")
    return bad


W4_BLOCK = 32
WEIGHT_THRESHOLD = 2048  # coremltools' weight_threshold: smaller weights (biases, norms, small kernels) stay float


def w4_per_channel_weights(program) -> list[str]:
    """The weight consts w4's blocks of W4_BLOCK input channels cannot tile (a depthwise conv's one input channel,
    SwiftFormer's 48/56/112/220 channels): coremltools skips them and leaves them fp16 (swiftformer-xs: 49 of 61
    weights, 6.15 of 6.81 MB), so they get int4 per output channel instead."""
    names = []
    for function in program.functions.values():
        for op in function.operations:
            value = op.outputs[0].val if op.op_type == "const" else None
            if (isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.ndim >= 2
                    and value.size >= WEIGHT_THRESHOLD and value.shape[1] % W4_BLOCK):
                names.append(op.name)
    return names


def compress_mlmodel(mlmodel, compress: str, calibrate: Calibrate | None = None, keep_float: KeepFloat = None,
                     modules: dict[str, str] | None = None, module: nn.Module | None = None):
    """The model with its weights compressed (coremltools.optimize.coreml); returns (model, summary).

    ``w8a8`` first quantizes activations with ranges from ``calibrate(mlmodel)``, then weights (int8,
    symmetric, per channel): coremltools' W8A8 recipe. ``keep_float`` (w8a8 only) leaves the activations of the
    layers it chooses in float; ``modules`` (torch.export node -> module path) and ``module`` (what was converted)
    are what it chooses from."""
    import coremltools.optimize.coreml as cto

    ranges_record = mixed = None
    float_ops: list[str] = []
    if compress == "w8a8":
        if calibrate is None:
            raise ExportError("--compress w8a8 needs calibration inputs for the activation ranges")
        stats, ranges_record = calibrate(mlmodel)
        if keep_float is not None:
            float_ops, mixed = keep_float.choose(mlmodel, stats, modules or {}, module)
        mlmodel = quantize_activations(mlmodel, stats, tuple(float_ops))
        if float_ops and not quantized_activation_ops(mlmodel._mil_program):
            ceiling = ((mixed.get("sensitivity") or {}).get("every_layer_float_psnr_db"))
            # by hand (or a manifest's record the validation rebuilds): the options contradict --compress w8a8
            error = ExportError if keep_float.keep == "auto" else UsageError
            raise error(f"--compress w8a8 --keep-float: the {len(mixed['keep_float'])} layers kept float leave "
                        "no activation quantized: that is the fp16 package, not W8A8"
                        + (f" (every layer float reaches {ceiling} dB on the scan's inputs: the goal is above "
                           "what fp16 storage itself gives; lower --min-psnr)" if ceiling is not None else "")
                        + "; nothing was written")
        wrong = ranges_not_carried(mlmodel._mil_program, stats)
        if wrong:
            raise ExportError(f"--compress w8a8: {len(wrong)} activation quantize op(s) do not carry the calibrated "
                              f"range of their input (first: {wrong[0]}); the package was not written")
    per_channel_w4 = 0
    if compress in ("w8", "w8a8"):
        op = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
        fp16 = weight_consts(mlmodel._mil_program.functions["main"], float_ops) if compress == "w8a8" else []
        if mixed is not None:
            mixed["fp16_weights"] = len(fp16)
        compressed = cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(
            global_config=op, op_name_configs=dict.fromkeys(fp16)))  # the float layers' weights stay fp16
    elif compress == "w4":
        fallback = w4_per_channel_weights(mlmodel._mil_program)
        per_channel_w4 = len(fallback)
        config = cto.OptimizationConfig(
            global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                                      block_size=W4_BLOCK),
            op_name_configs=dict.fromkeys(fallback, cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int4", granularity="per_channel")))
        compressed = cto.linear_quantize_weights(mlmodel, config)
    else:
        op = cto.OpPalettizerConfig(mode="kmeans", nbits=6 if compress == "palette6" else 4,
                                    granularity="per_tensor")
        compressed = cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=op))
    ops = [o.op_type for f in compressed._mil_program.functions.values() for o in f.operations]
    constexpr = {t: ops.count(t) for t in sorted(set(ops)) if t.startswith("constexpr_")}
    float_consts = sum(1 for f in compressed._mil_program.functions.values() for o in f.operations
                       if o.op_type == "const" and o.outputs[0].val is not None
                       and getattr(o.outputs[0].val, "size", 0) >= WEIGHT_THRESHOLD
                       and getattr(o.outputs[0].val, "dtype", None) is not None
                       and o.outputs[0].val.dtype.kind == "f"  # the compressed data consts are int/uint
                       and not any(c.op_type.startswith("constexpr_") for c in o.outputs[0].child_ops))  # scales
    function, scheme, minimum = COMPRESSION[compress]
    if mixed is not None and mixed.get("chosen_by", "").startswith("--keep-float auto"):
        mixed["written_psnr_db"] = keep_float.written(compressed)
    return compressed, {"scheme": f"{compress}: {scheme} (coremltools.optimize.coreml.{function})",
                        "minimum_deployment_target": minimum, "compressed_weight_ops": constexpr,
                        "float_weights_left": float_consts,
                        **({"activation_quantize_ops": ops.count("quantize"), "activation_ranges": ranges_record}
                           if ranges_record is not None else {}),
                        **({"mixed_precision": mixed} if mixed is not None else {}),
                        **({"w4_per_channel_weights": per_channel_w4} if compress == "w4" else {}),
                        "note": f"weights under {WEIGHT_THRESHOLD} elements (biases, norms, small kernels) stay in "
                                "float (coremltools' weight_threshold)"}


def coreml_metadata(spec: ModelSpec, winfo, version: str) -> dict[str, str]:
    """The package's author/license/version/description and edgevit's keys (model, weights' source and hash):
    what Xcode shows for the model and what a reader needs to trace the weights (a WeightsInfo)."""
    return {"author": "edgevit (conversion); model: " + (spec.paper or spec.name),
            "license": (f"weights: {winfo.license} ({winfo.tag}, {winfo.repo}); edgevit: Apache-2.0"
                        if getattr(winfo, "license", None) else "weights: see their source; edgevit: Apache-2.0"),
            "version": version,
            "description": f"{spec.name} image classifier (ImageNet-1k), converted by edgevit",
            "edgevit.model": spec.name, "edgevit.models.checkpoints": winfo.source,
            "edgevit.weights_sha256": winfo.sha256 or "random-init"}


def export_coreml(prepared: nn.Module, spec: ModelSpec, out: Path, *, precision: str = "fp16",
                  deployment_target: str = "iOS17", tensor_input: bool = False,
                  metadata: dict[str, str] | None = None, num_classes: int = 1000,
                  compress: str | None = None, calibrate: Calibrate | None = None,
                  keep_float: KeepFloat = None) -> dict:
    """Convert and save atomically; returns what the manifest records (input/output spec, MIL stats).

    ``compress`` (w8, w4, palette6, palette4) compresses the weights after conversion (compress_mlmodel);
    w8a8 also quantizes activations, with ranges from ``calibrate`` (the MIL interpreter on calibration images),
    except those of the layers ``keep_float`` keeps float (edgevit.mil.keep_float.KeepFloat).
    """
    import coremltools as ct

    if deployment_target not in DEPLOYMENT_TARGETS:
        raise ExportError(f"unknown deployment target {deployment_target!r}; choose one of {DEPLOYMENT_TARGETS}")
    shape = (1, *spec.input_size)
    classify = not tensor_input and spec.labels == "imagenet-1k" and num_classes == 1000
    module = prepared if tensor_input else ImageClassifier(prepared, spec.mean, spec.std).eval()
    example = torch.rand(shape) * (1.0 if tensor_input else 255.0)
    program = None
    try:
        program = to_exported_program(module, example)
        if tensor_input:
            inputs = [ct.TensorType(name="input", shape=shape)]
        else:
            inputs = [ct.ImageType(name="image", shape=shape, color_layout=ct.colorlayout.RGB)]
        kwargs = {"classifier_config": ct.ClassifierConfig(imagenet_labels())} if classify else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert(
                program,
                inputs=inputs,
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, deployment_target),
                compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                **kwargs,
            )
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported with module and op, not the converter's trace
        raise export_error("CoreML", exc, program) from None
    compression = None
    if compress is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                modules = {node.name: module_of(node) for node in program.graph.nodes}
                mlmodel, compression = compress_mlmodel(mlmodel, compress, calibrate, keep_float, modules, module)
        except EdgevitError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise ExportError(f"CoreML weight compression --compress {compress} failed: "
                              f"{type(exc).__name__}: {' '.join(str(exc).split())[:400]}") from None
    meta = metadata or {}
    mlmodel.author = meta.get("author", "edgevit")
    mlmodel.license = meta.get("license", "")
    mlmodel.version = meta.get("version", "")
    mlmodel.short_description = meta.get("description", spec.name)
    for key, value in meta.items():
        mlmodel.user_defined_metadata[key] = str(value)
    mil = stats_of_program(mlmodel._mil_program)
    with atomic_path(out) as tmp:
        mlmodel.save(str(tmp))
    desc = mlmodel.get_spec().description
    return {
        "input": {"name": inputs[0].name, "kind": "tensor" if tensor_input else "image", "shape": list(shape),
                  "color_layout": None if tensor_input else "RGB", "range": None if tensor_input else [0, 255]},
        "output": {"name": desc.predictedProbabilitiesName or desc.output[0].name,
                   "kind": "logits" if tensor_input else "probabilities",
                   "label_name": desc.predictedFeatureName or None},
        "deployment_target": deployment_target,
        "mil": mil.to_json(),
        **({"quantization": compression} if compression else {}),
    }
