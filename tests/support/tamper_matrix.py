"""The tamper matrix: every artifact kind edgevit writes × the tampers that apply to it, each judged by the parity
verdict; a clean copy of each must pass and every tamper must fail, with the part that failed and its margin.

    rows = run_matrix("swiftformer-xs", KINDS, tmp_path)     # tests/test_tamper_matrix.py, docs/tamper_matrix.py

The margin is how many times its bound the tamper's error is: the fidelity error over its bound when the program
check caught it, else how far the worst stored value is outside what its storage rule allows.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from support.tamper import (
    Stored,
    copy_artifact,
    coreml_pte_tensors,
    drop_mil_add,
    drop_onnx_add,
    negate,
    scale_by,
    scale_mil_activation,
    scale_one,
    stored_tensors,
    swap_channels,
    tamper_tensor,
    zero,
)


@dataclass(frozen=True)
class Kind:
    name: str  # the matrix's row label
    target: str
    options: dict  # edgevit.convert keyword arguments


KINDS = (
    Kind("coreml fp16", "coreml", {}),
    Kind("coreml fp32", "coreml", {"precision": "fp32"}),
    Kind("coreml w8", "coreml", {"compress": "w8"}),
    Kind("coreml w4", "coreml", {"compress": "w4", "deployment_target": "iOS18"}),
    Kind("coreml palette6", "coreml", {"compress": "palette6"}),
    Kind("coreml palette4", "coreml", {"compress": "palette4"}),
    Kind("coreml w8a8", "coreml", {"compress": "w8a8"}),
    Kind(".pte fp32", "executorch", {}),
    Kind(".pte int8", "executorch", {"quantize": "int8"}),
    Kind(".pte coreml fp16", "executorch", {"backend": "coreml"}),
    Kind(".onnx fp32", "onnx", {}),
    Kind(".onnx int8", "onnx", {"quantize": "int8"}),
)
TAMPERS = ("negate conv", "swap channels", "zero bias", "scale 1.02", "quant scale +5%", "drop residual add")


def _middle_first(candidates: list[Stored]) -> list[Stored]:
    middle = len(candidates) // 2
    return sorted(candidates, key=lambda t: abs(candidates.index(t) - middle))


def _pick(tensors: list[Stored], test: Callable[[Stored], bool]) -> list[Stored]:
    return _middle_first([t for t in tensors if test(t)])


def _is_conv(t: Stored) -> bool:
    return t.array.ndim == 4 and t.array.shape[0] > 1 and t.array.size >= 64


def _float(t: Stored) -> bool:
    return t.array.dtype.kind == "f"


def _plan(kind: Kind, tensors: list[Stored]) -> dict[str, tuple[list[Stored], Callable] | str]:
    """tamper -> (candidate tensors, change) or "drop" or a reason it does not apply."""
    compress = kind.options.get("compress")
    bias = _pick(tensors, lambda t: t.role == "bias" and t.array.ndim == 1 and np.any(t.array != 0))
    na = "not applicable: a float artifact has no quantization scale"
    if compress is None and kind.options.get("quantize") is None:
        weight = _pick(tensors, lambda t: _is_conv(t) and _float(t) and t.role == "weight")
        plan = {"negate conv": (weight, negate), "swap channels": (weight, swap_channels), "zero bias": (bias, zero),
                "scale 1.02": (weight, scale_by(1.02)), "quant scale +5%": na}
    elif compress in ("w8", "w8a8"):
        data = _pick(tensors, lambda t: _is_conv(t) and t.array.dtype == np.int8)
        scales = _pick(tensors, lambda t: t.role == "scale" and _float(t) and t.array.size > 1)
        plan = {"negate conv": (data, negate), "swap channels": (data, swap_channels), "zero bias": (bias, zero),
                "scale 1.02": (scales, scale_by(1.02)), "quant scale +5%": (scales, scale_one(1.05))}
        if compress == "w8a8":  # a weight scale is what "scale 1.02" moves; here one activation's scale moves
            plan["quant scale +5%"] = "activation"
    elif compress == "w4":
        scales = _pick(tensors, lambda t: t.role == "scale" and _float(t) and t.array.ndim >= 2  # conv or linear
                       and t.array.size > 1)
        plan = {"negate conv": (scales, negate), "swap channels": (scales, swap_channels), "zero bias": (bias, zero),
                "scale 1.02": (scales, scale_by(1.02)), "quant scale +5%": (scales, scale_one(1.05))}
    elif compress and compress.startswith("palette"):
        lut = _pick(tensors, lambda t: t.role == "palette" and _float(t))
        plan = {"negate conv": (lut, negate), "swap channels": "not applicable: palette indices are bit-packed",
                "zero bias": (bias, zero), "scale 1.02": (lut, scale_by(1.02)),
                "quant scale +5%": (lut, scale_one(1.05))}
    elif kind.target == "onnx":
        data = _pick(tensors, lambda t: _is_conv(t) and t.array.dtype == np.int8)
        scales = _pick(tensors, lambda t: t.name.endswith("weight_scale") and t.array.size > 1)
        fbias = _pick(tensors, lambda t: t.name.endswith(("bias", "bias_quantized")) and t.array.ndim == 1
                      and t.array.size > 1 and np.any(t.array != 0))
        plan = {"negate conv": (data, negate), "swap channels": (data, swap_channels), "zero bias": (fbias, zero),
                "scale 1.02": (scales, scale_by(1.02)), "quant scale +5%": (scales, scale_one(1.05))}
    else:  # .pte int8
        data = _pick(tensors, lambda t: _is_conv(t) and t.array.dtype == np.int8)
        scales = _pick(tensors, lambda t: t.role == "scale" and t.array.size > 1)
        plan = {"negate conv": (data, negate), "swap channels": (data, swap_channels), "zero bias": (bias, zero),
                "scale 1.02": (scales, scale_by(1.02)), "quant scale +5%": (scales, scale_one(1.05))}
    droppable = kind.target in ("coreml", "onnx")
    plan["drop residual add"] = "drop" if droppable else "not applicable: the XNNPACK graph is not editable here"
    return plan


@dataclass
class Row:
    model: str
    kind: str
    tamper: str  # "clean" for the untouched copy
    tensor: str
    status: str
    failed_part: str | None
    margin: float | None
    error: float | None
    bound: float | None
    seconds: float
    reason: str

    @property
    def correct(self) -> bool:
        return self.status == "pass" if self.tamper == "clean" else self.status == "fail"


def margin_of(result) -> float | None:
    f = result.fidelity
    if f is None:
        return None
    numeric = f.margin
    broken = (f.values or {}).get("broken") or []
    stored = max((b["worst"] for b in broken), default=None)
    if f.status == "fail" and numeric is not None and numeric > 1:
        return numeric if stored is None else max(numeric, stored)
    return stored if stored is not None else numeric


def convert_kinds(model: str, kinds, out: Path) -> dict[str, Path]:
    """Each kind converted into its own folder under ``out``; one converted there before is reused."""
    from edgevit.api import convert

    made = {}
    for kind in kinds:
        folder = out / kind.name.replace(" ", "-")
        done = [p for p in folder.glob(f"{model}.*") if p.suffix in (".mlpackage", ".pte", ".onnx")]
        if len(done) == 1:
            made[kind.name] = done[0]
            continue
        result = convert(model, kind.target, folder, mil_report=False, validate=False, **kind.options)
        made[kind.name] = result.artifacts[0].path
    return made


def run_matrix(model: str, kinds, work: Path, tampers=TAMPERS, progress=print,
               artifacts: dict[str, Path] | None = None) -> list[Row]:
    """Convert ``model`` to each kind (unless ``artifacts`` has it already: kind name -> path), then judge a clean copy
    and every applicable tamper of each."""
    import shutil

    import edgevit.api as api
    from edgevit.base.manifest import read_manifest
    from edgevit.models.registry import get_spec
    from edgevit.validate.parity import run_parity

    shutil.rmtree(work / "tampered", ignore_errors=True)  # copies of an earlier run
    given = dict(artifacts or {})
    artifacts = {**given, **convert_kinds(model, [k for k in kinds if k.name not in given], work / "made")}
    first = read_manifest(next(iter(artifacts.values())))
    subject = api._subject_of(first, get_spec(model), None)
    rows = []
    for kind in kinds:
        source = artifacts[kind.name]
        tensors = coreml_pte_tensors(source) if kind.options.get("backend") == "coreml" else stored_tensors(source)
        plan = _plan(kind, tensors)
        for tamper in ("clean", *tampers):
            step = "clean" if tamper == "clean" else plan[tamper]
            if isinstance(step, str) and step not in ("clean", "drop", "activation"):
                rows.append(Row(model, kind.name, tamper, "-", "n/a", None, None, None, None, 0.0, step))
                continue
            copy = copy_artifact(source, work / "tampered" / kind.name.replace(" ", "-") / tamper.replace(" ", "-"))
            tensor = "-"
            if step == "drop":
                tensor = drop_mil_add(copy) if copy.suffix == ".mlpackage" else drop_onnx_add(copy)
            elif step == "activation":
                tensor = scale_mil_activation(copy, 1.05)
            elif step != "clean":
                candidates, change = step
                tensor = _apply(copy, candidates, change)
            start = time.perf_counter()
            result = run_parity(subject, copy, read_manifest(copy))
            f = result.fidelity
            rows.append(Row(model, kind.name, tamper, tensor, result.status, result.failed_part, margin_of(result),
                            f.error if f else None, f.bound if f else None, time.perf_counter() - start,
                            result.reason))
            progress(f"{model} {kind.name} {tamper}: {result.status} ({result.failed_part or '-'}) margin "
                     f"{_fmt(rows[-1].margin)}")
    return rows


def _apply(copy: Path, candidates: list[Stored], change: Callable) -> str:
    for tensor in candidates:
        try:
            tamper_tensor(copy, tensor, change)
            return tensor.name
        except AssertionError:  # bytes not unique in the file, or the change is a no-op on this tensor: next one
            continue
    raise AssertionError(f"no candidate tensor could be tampered in {copy.name}")


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return "∞" if math.isinf(value) else f"{value:.3g}×"


def markdown(rows: list[Row]) -> str:
    """One table: kinds as rows, tampers as columns; each cell the verdict, the part that failed and the margin."""
    kinds = list(dict.fromkeys((r.model, r.kind) for r in rows))
    tampers = list(dict.fromkeys(r.tamper for r in rows))
    lines = ["| model | artifact | " + " | ".join(tampers) + " |", "|---|---|" + "---|" * len(tampers)]
    for model, kind in kinds:
        cells = []
        for tamper in tampers:
            row = next((r for r in rows if (r.model, r.kind, r.tamper) == (model, kind, tamper)), None)
            if row is None or row.status == "n/a":
                cells.append("n/a")
            elif row.tamper == "clean":
                part = {"precision cost": " cost", "fidelity": " fid"}.get(row.failed_part or "", "")
                cells.append(f"{row.status}{part} ({_fmt(row.margin)} of fidelity bound)")
            else:
                part = {"fidelity": "fid", "precision cost": "cost", "manifest": "manifest"}.get(row.failed_part, "-")
                cells.append(f"{row.status} {part} {_fmt(row.margin)}" + ("" if row.correct else " **WRONG**"))
        lines.append(f"| {model} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
