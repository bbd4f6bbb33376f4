"""Static int8 post-training quantization: PT2E for ExecuTorch/XNNPACK, QDQ for ONNX.

ExecuTorch: ``torch.export`` -> ``prepare_pt2e`` with ExecuTorch's ``XNNPACKQuantizer`` and
``get_symmetric_quantization_config(is_per_channel=True)`` (int8 weights per output channel, int8 activations per
tensor) -> the calibration images -> ``convert_pt2e`` (torchao's pt2e, which ExecuTorch 1.5 takes) -> lowered with
the XNNPACK partitioner. The ops the quantizer left without quantize/dequantize around them are the layers that
stay in float; they are listed (op and module) in the manifest.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter
from pathlib import Path

import torch
from torch import nn

from edgevit.base.errors import ExportError, UsageError
from edgevit.export.mil_inspect import in_eval, module_of
from edgevit.export.shared_weights import untie_shared_weights

_QDQ_NAMES = ("quantize_per_tensor", "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel",
              "choose_qparams")
# ops that carry no arithmetic of their own (a float one of these is not a "layer left in float")
_PASSIVE = ("view", "reshape", "permute", "transpose", "flatten", "getitem", "expand", "unsqueeze", "squeeze",
            "clone", "contiguous", "_assert", "sym_size", "alias", "detach", "dropout", "cat", "slice", "select")


def _op_name(node: torch.fx.Node) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def _is_qdq(node: object) -> bool:
    return isinstance(node, torch.fx.Node) and node.op == "call_function" and any(
        q in str(node.target) for q in _QDQ_NAMES)


def float_layers(graph_module: torch.fx.GraphModule) -> list[dict]:
    """Ops of the quantized graph that compute in float: none of their tensor inputs comes from a dequantize, or
    they read a float parameter (a conv/linear kept in float that reads an int8 neighbour's output dequantized)."""
    found = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        name = _op_name(node)
        if any(p in name for p in _PASSIVE):
            continue
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr"]
        weight = node.args[1] if len(node.args) > 1 and isinstance(node.args[1], torch.fx.Node) else None
        float_weight = weight is not None and weight.op == "get_attr"  # (an int8 weight comes through a dequantize)
        if tensors and (float_weight or not any(_is_qdq(a) for a in tensors)):
            found.append({"op": name, "module": module_of(node)})
    return found


def summarise_float_layers(layers: list[dict]) -> dict:
    return {"count": len(layers), "by_op": dict(Counter(item["op"] for item in layers).most_common()),
            "layers": [f"{item['module']}: {item['op']}" for item in layers]}


ACTIVATION_OBSERVERS = ("minmax", "histogram")
DEFAULT_ACTIVATION_OBSERVER = "minmax"


def quantization_config(activation_observer: str = DEFAULT_ACTIVATION_OBSERVER):
    """XNNPACKQuantizer's symmetric config (int8 weights per output channel, int8 activations per tensor), with
    the activation observer chosen: ``histogram`` is ExecuTorch's default (HistogramObserver, an L2 search for
    the clipping range at convert), ``minmax`` the plain range. Measured on swiftformer-l1 (README), the histogram
    observer made calibration and convert most of the 476 s of an int8 .pte for no PSNR it could show."""
    from dataclasses import replace

    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import get_symmetric_quantization_config
    from torchao.quantization.pt2e import MinMaxObserver

    config = get_symmetric_quantization_config(is_per_channel=True)
    if activation_observer == "histogram":
        return config
    spec = replace(config.input_activation, observer_or_fake_quant_ctr=MinMaxObserver.with_args(eps=2**-12))
    return replace(config, input_activation=spec, output_activation=spec)


def _weight_observers(observed: torch.fx.GraphModule) -> list[nn.Module]:
    """Observers of constants (weights): one calibration pass sees all they ever will."""
    found = []
    for node in observed.graph.nodes:
        if node.op == "call_module" and node.args and isinstance(node.args[0], torch.fx.Node) \
                and node.args[0].op == "get_attr":
            module = observed.get_submodule(str(node.target))
            if hasattr(module, "calculate_qparams"):
                found.append(module)
    return found


def calibrate(observed: torch.fx.GraphModule, calibration: list[torch.Tensor]) -> None:
    """Run the calibration images through the observed graph; weight observers observe the first pass only (the
    weights do not change, and per-channel min/max of every weight on every image was a third of the time)."""
    frozen = []
    with torch.no_grad():
        for i, tensor in enumerate(calibration):
            observed(tensor)
            if i == 0:
                for module in _weight_observers(observed):
                    module.forward = _pass_through  # instance attribute: shadows the observer's forward
                    frozen.append(module)
    for module in frozen:
        del module.forward


def _pass_through(x: torch.Tensor) -> torch.Tensor:
    return x


def observe_pt2e(prepared: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor], *,
                 activation_observer: str = DEFAULT_ACTIVATION_OBSERVER, stages: dict[str, float] | None = None):
    """torch.export -> prepare_pt2e (XNNPACKQuantizer) -> calibration: the observed graph, ready to convert."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    times = stages if stages is not None else {}
    clock = time.perf_counter()
    program = torch.export.export(in_eval(prepared), (example,))
    times["export_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    graph_module = program.module()
    untie_shared_weights(graph_module)  # one quantization per use (edgevit.export.shared_weights)
    observed = prepare_pt2e(graph_module, XNNPACKQuantizer().set_global(quantization_config(activation_observer)))
    times["prepare_pt2e_s"] = time.perf_counter() - clock
    clock = time.perf_counter()
    calibrate(observed, calibration)
    times["calibration_s"] = time.perf_counter() - clock
    return observed, program


def quantize_pt2e(prepared: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor], *,
                  activation_observer: str = DEFAULT_ACTIVATION_OBSERVER, keep_float: list[str] | None = None,
                  auto_keep_float: dict | None = None, stages: dict[str, float] | None = None,
                  progress=None):
    """The int8 (converted) graph module, its float layers and the mixed-precision record (None without
    ``keep_float``/``auto_keep_float``); ExportError naming the op and module on failure.

    ``keep_float``: module paths whose ops stay float. ``auto_keep_float``: {"inputs": tensors, "goal_db": dB,
    "budget_s": s} - the sensitivity scan (edgevit.export.sensitivity) picks them.
    """
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    from edgevit.export import sensitivity
    from edgevit.export.failures import export_error

    times = stages if stages is not None else {}
    program = None
    mixed = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            observed, program = observe_pt2e(prepared, example, calibration, activation_observer=activation_observer,
                                             stages=times)
            layers = sensitivity.quantized_layers(observed)
            if keep_float:
                sensitivity.check_layer_names(keep_float, layers)
                mixed = {"keep_float": list(keep_float), "chosen_by": "--keep-float (by hand)"}
            elif auto_keep_float is not None:
                clock = time.perf_counter()
                scanned = sensitivity.scan(observed, prepared, auto_keep_float["inputs"],
                                           budget_s=auto_keep_float.get("budget_s", sensitivity.DEFAULT_BUDGET_S),
                                           progress=progress)
                kept, reached = sensitivity.choose(observed, scanned, auto_keep_float["goal_db"], progress)
                times["sensitivity_s"] = time.perf_counter() - clock
                mixed = {"keep_float": kept, "chosen_by": "--keep-float auto (sensitivity scan)",
                         "goal_psnr_db": auto_keep_float["goal_db"], "emulated_psnr_db": round(reached, 2),
                         "goal_reached": reached >= auto_keep_float["goal_db"], "sensitivity": scanned.to_json()}
            if mixed:
                mixed["edges_kept_float"] = sensitivity.keep_layers_float(observed, mixed["keep_float"])
                mixed["quantized_layers"] = len(layers)
            clock = time.perf_counter()
            converted = convert_pt2e(observed)
            times["convert_pt2e_s"] = time.perf_counter() - clock
    except (ExportError, UsageError):
        raise
    except Exception as exc:  # noqa: BLE001
        raise export_error("int8 quantization (PT2E, XNNPACKQuantizer)", exc, program) from None
    return converted, float_layers(converted), mixed


ONNX_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")
# onnxruntime's CPU provider runs these in int8 from QDQ (QLinearAdd/Mul/AveragePool/GlobalAveragePool/Sigmoid/
# Concat, com.microsoft contrib ops on x86); anything else between them stays float
ONNX_INT8_KERNEL_OPS = ONNX_QUANTIZED_OPS + ("Add", "Mul", "AveragePool", "GlobalAveragePool", "MaxPool", "Sigmoid",
                                             "Concat", "Relu", "Clip")
# name -> (op types quantized, activation type); weights always QInt8 symmetric per output channel
ONNX_CONFIGS = {"weights-s8": (ONNX_QUANTIZED_OPS, "QInt8"), "weights-u8": (ONNX_QUANTIZED_OPS, "QUInt8"),
                "kernels-s8": (ONNX_INT8_KERNEL_OPS, "QInt8"), "kernels-u8": (ONNX_INT8_KERNEL_OPS, "QUInt8")}
ONNX_METHODS = ("MinMax", "Percentile", "Entropy")
# measured (docs/onnx_int8_sweep.py, swiftformer-l1, 1 thread, AMD EPYC with AVX-512 VNNI, under load): QUInt8
# activations 2.00x faster than fp32 against 1.27x for QInt8 at the same 43.5 dB on logits (onnxruntime's x86
# int8 GEMM is u8 x s8, VNNI's vpdpbusd); quantizing Add/Mul/pools as well gained neither speed nor PSNR
DEFAULT_ONNX_CONFIG, DEFAULT_ONNX_METHOD = "weights-u8", "MinMax"


def quantize_onnx_static(fp32_path, out_path, input_name: str, calibration: list[torch.Tensor], *,
                         config: str = DEFAULT_ONNX_CONFIG, method: str = DEFAULT_ONNX_METHOD,
                         keep_float: list[str] | None = None, auto_keep_float: dict | None = None,
                         progress=None) -> dict:
    """onnxruntime static QDQ int8 (weights symmetric per channel, activations per tensor, calibrated by
    ``method``) of the op types of ``config`` (ONNX_CONFIGS); returns what the manifest records of it.

    The default quantizes only the weight layers (Conv, MatMul, Gemm) with uint8 activations (see
    DEFAULT_ONNX_CONFIG for the measurement behind it). A MatMul of two activations (attention's q@k and attn@v)
    stays float in every configuration: between two quantized ones onnxruntime fuses DQ -> Softmax -> Q into its
    QLinearSoftmax kernel, whose output is wrong when the calibrated scale is small (measured on timm's test_vit,
    attention nearly uniform over 101 tokens, softmax scale 4.3e-5: the runtime 13 dB on logits where the same QDQ
    program executed as written gives 41 dB; a lone DQ -> Softmax -> Q at that scale: relative error 1.0, at 1/1024:
    0). Grouped (depthwise) Convs stay float too: onnxruntime's int8 grouped Conv is slower than its fp32 one on
    this CPU (fastvit-t8, 25 of 52 Convs grouped, 1 thread, AMD EPYC with AVX-512 VNNI: int8 .onnx 0.52x the
    speed of fp32 with them int8, 1.33x with them float, and 26.8 -> 30.6 dB on logits; swiftformer-l1, 22 of 107
    grouped: 2.00x -> 1.91x, 43.5 -> 44.6 dB; docs/onnx_grouped_conv.py repeats it). ``keep_float`` (module paths
    of the exported model) or ``auto_keep_float`` ({"inputs", "goal_db", "budget_s"}: the sensitivity scan of
    edgevit.export.onnx_sensitivity) leave layers in float through quantize_static's ``nodes_to_exclude``.
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if config not in ONNX_CONFIGS or method not in ONNX_METHODS:
        raise ExportError(f"unknown ONNX int8 configuration {config!r}/{method!r}; choose one of "
                          f"{', '.join(ONNX_CONFIGS)} and {', '.join(ONNX_METHODS)}")
    op_types, activation = ONNX_CONFIGS[config]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self):
            tensor = next(self.items, None)
            return None if tensor is None else {input_name: tensor.numpy()}

    from edgevit.export import onnx_sensitivity, sensitivity

    def quantize(pre: Path, excluded: list[str]) -> None:
        quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(op_types), calibrate_method=getattr(CalibrationMethod, method),
                        nodes_to_exclude=excluded, extra_options={"WeightSymmetric": True})

    pre = out_path.with_name(out_path.name + ".pre.onnx")
    mixed, excluded = None, []
    try:
        try:
            quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
            pre_model = onnx.load(str(pre))
            float_matmuls = onnx_sensitivity.activation_matmuls(pre_model)
            float_convs = onnx_sensitivity.grouped_convs(pre_model)
            always_float = float_matmuls + float_convs
            layers = onnx_sensitivity.quantizable_layers(pre_model, onnx_sensitivity.node_modules(
                onnx.load(str(fp32_path))), op_types, skip=set(always_float))
            if keep_float:
                sensitivity.check_layer_names(list(keep_float), layers)
                mixed = {"keep_float": list(keep_float), "chosen_by": "--keep-float (by hand)"}
            elif auto_keep_float is not None:
                quantize(pre, always_float)
                inputs = [x.numpy() for x in auto_keep_float["inputs"]]
                reference = onnx_sensitivity.run_emulated(pre_model.SerializeToString(), input_name, inputs)
                mixed = _onnx_auto_keep_float(onnx.load(str(out_path)), pre_model, layers, input_name, inputs,
                                              reference, auto_keep_float, progress)
            excluded = list(always_float)
            if mixed:
                excluded += [n for layer in mixed["keep_float"] for n in layers[layer]]
                mixed["quantized_layers"] = len(layers)
            quantize(pre, excluded)
        except (UsageError, ExportError):
            raise
        except Exception as exc:  # noqa: BLE001
            raise ExportError("ONNX int8 quantization (onnxruntime quantize_static) failed: "
                              f"{type(exc).__name__}: {exc}") from None
        if mixed and auto_keep_float is not None:  # the file really written, emulated: what the choice reached
            written = onnx_sensitivity.run_emulated(out_path.read_bytes(), input_name, inputs)
            mixed["written_psnr_db"] = round(sensitivity.psnr_db(reference, written), 2)
    finally:
        pre.unlink(missing_ok=True)
    model = onnx.load(str(out_path))
    ops = Counter(n.op_type for n in model.graph.node)
    float_ops = []
    producers = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant", "Shape", "Reshape", "Transpose",
                         "Flatten", "Squeeze", "Unsqueeze", "Identity"):
            continue
        fed = [producers.get(i) for i in n.input if i in producers]
        if not any(p is not None and p.op_type == "DequantizeLinear" for p in fed):
            float_ops.append({"op": n.op_type, "module": n.name})
    return {"config": {"name": config, "op_types": list(op_types), "activation_type": activation,
                       "weight_type": "QInt8 symmetric per channel", "calibration_method": method,
                       "onnxruntime": onnxruntime.__version__, "nodes_to_exclude": excluded,
                       "activation_matmuls_float": len(float_matmuls), "grouped_convs_float": len(float_convs)},
            **({"mixed_precision": mixed} if mixed else {}),
            "qdq_pairs": ops.get("QuantizeLinear", 0), "float_layers": summarise_float_layers(float_ops),
            "op_histogram": dict(ops.most_common())}


ONNX_SENSITIVITY_METHOD = ("quantize one at a time on the QDQ program (onnxruntime, optimisations off, the other "
                           "layers as nodes_to_exclude leaves them), logits PSNR against the fp32 .onnx; ranked by "
                           "each layer's share of the summed noise")


def _onnx_auto_keep_float(quantized, pre_model, layers: dict[str, list[str]], input_name: str, inputs: list,
                          reference, auto: dict, progress) -> dict:
    """The sensitivity scan and choice on the all-int8 QDQ program (edgevit.export.onnx_sensitivity), against the
    float model's logits ``reference`` on ``inputs``."""
    from edgevit.export import onnx_sensitivity, sensitivity

    run = onnx_sensitivity.layer_runner(onnx_sensitivity.QdqEmulation(quantized, pre_model, layers, input_name), inputs)
    return sensitivity.auto_choice(layers, reference, run, inputs, auto, method=ONNX_SENSITIVITY_METHOD,
                                   progress=progress)
