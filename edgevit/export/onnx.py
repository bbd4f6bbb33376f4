"""Prepared module -> ONNX, the reference artifact (runs anywhere onnxruntime does)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
from torch import nn

from edgevit.base.atomic import atomic_path
from edgevit.export.failures import export_error
from edgevit.export.mil_inspect import in_eval


def export_onnx(prepared: nn.Module, example: torch.Tensor, out: Path) -> dict:
    """torch.onnx's dynamo exporter (with onnxscript's graph optimisation), saved atomically."""
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            onnx_program = torch.onnx.export(in_eval(prepared), (example,), dynamo=True, input_names=["input"],
                                             output_names=["output"], verbose=False)
    except Exception as exc:  # noqa: BLE001
        program = None
        with contextlib.suppress(Exception):
            program = torch.export.export(in_eval(prepared), (example,))
        raise export_error("ONNX", exc, program) from None
    with atomic_path(out) as tmp:
        onnx_program.save(str(tmp))
    return {
        "input": {"name": "input", "kind": "tensor", "shape": list(example.shape)},
        "output": {"name": "output", "kind": "logits"},
        "opset": int(onnx_program.model_proto.opset_import[0].version),
    }


def export_onnx_int8(prepared: nn.Module, example: torch.Tensor, out: Path, calibration: list[torch.Tensor],
                     config: str | None = None, method: str | None = None, *, quantization: dict | None = None,
                     progress=None) -> dict:
    """The fp32 export, statically quantized (edgevit.export.quantize.quantize_onnx_static: ``config`` and ``method``
    default to its defaults; ``quantization`` holds ``keep_float`` or ``auto_keep_float``), saved atomically.

    The same function rebuilds the quantized reference an int8 ``.onnx`` is validated against."""
    from edgevit.export.quantize import DEFAULT_ONNX_CONFIG, DEFAULT_ONNX_METHOD, quantize_onnx_static

    fp32 = out.with_name(out.name.replace(".onnx", "") + ".fp32-for-int8.onnx")
    try:
        info = export_onnx(prepared, example, fp32)
        with atomic_path(out) as tmp:
            quantized = quantize_onnx_static(fp32, tmp, info["input"]["name"], calibration,
                                             config=config or DEFAULT_ONNX_CONFIG, method=method or DEFAULT_ONNX_METHOD,
                                             progress=progress, **(quantization or {}))
    finally:
        fp32.unlink(missing_ok=True)
    recorded = quantized["config"]
    return {**info, "quantization": {"scheme": f"int8 static QDQ (onnxruntime quantize_static, "
                                               f"{recorded['calibration_method']}, {recorded['activation_type']} "
                                               "activations per tensor, weights per channel)", **quantized}}
