"""Static int8 post-training quantization: PT2E for ExecuTorch/XNNPACK, QDQ for ONNX.

ExecuTorch: ``torch.export`` -> ``prepare_pt2e`` with ExecuTorch's ``XNNPACKQuantizer`` and
``get_symmetric_quantization_config(is_per_channel=True)`` (int8 weights per output channel, int8 activations per
tensor) -> the calibration images -> ``convert_pt2e`` (torchao's pt2e, which ExecuTorch 1.5 takes) -> lowered with
the XNNPACK partitioner. The ops the quantizer left without quantize/dequantize around them are the layers that
stay in float; they are listed (op and module) in the manifest.
"""

from __future__ import annotations

import warnings
from collections import Counter

import torch
from torch import nn

from edgevit.base.errors import ExportError
from edgevit.export.mil_inspect import in_eval

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


def _module_of(node: torch.fx.Node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return "(top level)"
    path = list(stack.values())[-1][0]
    return str(path).replace("L['self'].", "").replace("L__self___", "") or "(top level)"


def float_layers(graph_module: torch.fx.GraphModule) -> list[dict]:
    """Ops of the quantized graph that compute in float: none of their tensor inputs comes from a dequantize."""
    found = []
    for node in graph_module.graph.nodes:
        if node.op != "call_function" or _is_qdq(node):
            continue
        name = _op_name(node)
        if any(p in name for p in _PASSIVE):
            continue
        tensors = [a for a in node.all_input_nodes if a.op != "get_attr"]
        if tensors and not any(_is_qdq(a) for a in tensors):
            found.append({"op": name, "module": _module_of(node)})
    return found


def summarise_float_layers(layers: list[dict]) -> dict:
    return {"count": len(layers), "by_op": dict(Counter(item["op"] for item in layers).most_common()),
            "layers": [f"{item['module']}: {item['op']}" for item in layers]}


def quantize_pt2e(prepared: nn.Module, example: torch.Tensor, calibration: list[torch.Tensor]):
    """The int8 (converted) graph module and its float layers; ExportError naming the op and module on failure."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from edgevit.export.failures import export_error

    program = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(in_eval(prepared), (example,))
            quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
            observed = prepare_pt2e(program.module(), quantizer)
            with torch.no_grad():
                for tensor in calibration:
                    observed(tensor)
            converted = convert_pt2e(observed)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise export_error("int8 quantization (PT2E, XNNPACKQuantizer)", exc, program) from None
    return converted, float_layers(converted)


ONNX_QUANTIZED_OPS = ("Conv", "MatMul", "Gemm")


def quantize_onnx_static(fp32_path, out_path, input_name: str, calibration: list[torch.Tensor]) -> dict:
    """onnxruntime static QDQ int8 (weights per channel, activations per tensor, MinMax over the calibration set).

    Only the weight layers (Conv, MatMul, Gemm) are quantized: with every elementwise op in QDQ as well
    (onnxruntime's default) swiftformer-xs measured 29.9 dB on the photos, under the 30 dB floor, against 42 dB for
    the XNNPACK .pte, whose quantizer also leaves most elementwise ops in float.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter(calibration)

        def get_next(self):
            tensor = next(self.items, None)
            return None if tensor is None else {input_name: tensor.numpy()}

    pre = out_path.with_name(out_path.name + ".pre.onnx")
    try:
        quant_pre_process(str(fp32_path), str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=list(ONNX_QUANTIZED_OPS))
    except Exception as exc:  # noqa: BLE001
        raise ExportError("ONNX int8 quantization (onnxruntime quantize_static) failed: "
                          f"{type(exc).__name__}: {exc}") from None
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
    return {"qdq_pairs": ops.get("QuantizeLinear", 0), "float_layers": summarise_float_layers(float_ops),
            "op_histogram": dict(ops.most_common())}
