"""Numeric parity of an artifact against the ORIGINAL PyTorch model (not the prepared one).

Metrics per artifact over all validation inputs (photos + random tensors): max abs error, relative L2,
PSNR = 20*log10(max|ref| / RMSE), cosine similarity, top-1 agreement (fraction of inputs with the same
argmax) and top-5 agreement (mean overlap of the two top-5 sets). Thresholds: fp32 needs relative L2 <= 1e-4
and identical top-1 on every input; fp16 needs PSNR >= 40 dB. A runtime this host lacks is "not run",
never a pass. PSNR on probability vectors is loose: a package with one mid-network conv negated scored 63 dB
(relative L2 3.9e-2) as fp16, within reach of real fp16 conversions (RepViT-M0.9 measured up to 2.0e-2), while
the fp32 check (relative L2 <= 1e-4) fails the same tamper (tests/test_mil_parity.py).

When an fp32 check fails, the original model is also run in float64 (same weights) and compared with its
own fp32 run: if the original alone misses the same thresholds, fp32 rounding inside the original is as large
as the divergence being judged (random weights that saturate attention softmaxes do this: LeViT,
EfficientViT-M0), so no fp32 artifact could pass and the verdict is "inconclusive" with both numbers, never a
pass. Otherwise the failure stands.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevit.base.errors import ArtifactError
from edgevit.validate.inputs import ValidationInput
from edgevit.validate.runtimes import MIL_REFERENCE, RuntimeUnavailable, open_runner

FP32_MAX_REL_L2 = 1e-4
FP16_MIN_PSNR_DB = 40.0
QUANTIZED_MIN_PSNR_DB = 30.0  # default for int8 / compressed artifacts; the manifest records the one used
QUANTIZED = ("int8", "w8", "w4", "palette6", "palette4")
RANDOM_INIT_QUANT_NOTE = ("random-init weights: these quantization metrics do not predict a trained model's "
                          "quantization error (its weight and activation ranges differ); convert with --weights")
DEVICE_OUTPUTS_FORMAT = "edgevit-device-outputs/2"  # what both phone harnesses write: docs/device-outputs.md
LEGACY_DEVICE_OUTPUTS_FORMATS = ("edgevit-device-outputs/1",)  # still read
DEVICE_OUTPUTS_KEYS = ("format", "harness", "created", "artifact", "artifact_sha256", "device", "compute_unit",
                       "outputs", "warnings", "error")
_DEVICE_OUTPUTS_TYPES: dict[str, type | tuple[type, ...]] = {
    "harness": (str, type(None)), "created": (str, type(None)), "artifact_sha256": (str, type(None)),
    "device": dict, "compute_unit": (str, type(None)), "outputs": list, "warnings": list,
    "error": (str, type(None)),
}
_LEGACY_NON_FINITE = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}
NON_FINITE = "non-finite outputs"  # a verdict of its own: never compared, never inconclusive


@dataclass
class ParityMetrics:
    max_abs: float
    rel_l2: float
    psnr_db: float
    cosine: float
    top1_agreement: float
    top5_agreement: float
    n_inputs: int
    distinct_top1: int  # distinct reference classes: 1 means top-1 agreement proves little


def parity_metrics(reference: np.ndarray, actual: np.ndarray) -> ParityMetrics:
    """Compare (N, classes) outputs row by row (one row per input)."""
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    act = np.asarray(actual, dtype=np.float64).reshape(len(actual), -1)
    if ref.shape != act.shape:
        raise ValueError(f"output shapes differ: reference {ref.shape} vs artifact {act.shape}")
    diff = act - ref
    rmse = math.sqrt(float(np.mean(diff**2)))
    peak = float(np.max(np.abs(ref)))
    psnr = math.inf if rmse == 0 else 20 * math.log10(peak / rmse) if peak > 0 else -math.inf
    ref_norm, act_norm = float(np.linalg.norm(ref)), float(np.linalg.norm(act))
    cosine = float(np.sum(ref * act) / (ref_norm * act_norm)) if ref_norm and act_norm else 0.0
    k = min(5, ref.shape[1])
    top_ref, top_act = np.argsort(-ref, axis=1)[:, :k], np.argsort(-act, axis=1)[:, :k]
    top5 = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_act, strict=True)]))
    return ParityMetrics(
        max_abs=float(np.max(np.abs(diff))),
        rel_l2=float(np.linalg.norm(diff) / ref_norm) if ref_norm else math.inf,
        psnr_db=psnr,
        cosine=cosine,
        top1_agreement=float(np.mean(top_ref[:, 0] == top_act[:, 0])),
        top5_agreement=top5,
        n_inputs=len(ref),
        distinct_top1=len(set(top_ref[:, 0].tolist())),
    )


@dataclass
class ParityResult:
    artifact: str
    runtime: str
    precision: str
    status: str  # "pass", "fail", "inconclusive" or "not run"
    reason: str = ""
    photos: ParityMetrics | None = None
    random: ParityMetrics | None = None
    overall: ParityMetrics | None = None
    thresholds: dict = field(default_factory=dict)
    original_fp32_vs_fp64: ParityMetrics | None = None  # measured only when an fp32 check fails

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=float))


def thresholds_for(precision: str, min_psnr: float | None = None) -> dict:
    if precision in QUANTIZED:
        return {"psnr_db_min": QUANTIZED_MIN_PSNR_DB if min_psnr is None else min_psnr, "judged_on": "photos"}
    if precision == "fp32":
        return {"rel_l2_max": FP32_MAX_REL_L2, "top1_agreement": 1.0}
    return {"psnr_db_min": FP16_MIN_PSNR_DB}


def judge(metrics: ParityMetrics, precision: str, min_psnr: float | None = None) -> tuple[str, str]:
    """(status, reason) against the precision's thresholds (a quantized one's PSNR floor is ``min_psnr``)."""
    if precision in QUANTIZED:
        floor = thresholds_for(precision, min_psnr)["psnr_db_min"]
        if not metrics.psnr_db >= floor:
            return "fail", (f"{precision} PSNR on photos {metrics.psnr_db:.1f} dB < {floor:g} dB (top-1 agreement "
                            f"{metrics.top1_agreement:.0%}); --min-psnr sets the floor")
        return "pass", ""
    if precision == "fp32":
        problems = []
        if not metrics.rel_l2 <= FP32_MAX_REL_L2:
            problems.append(f"relative L2 {metrics.rel_l2:.3g} > {FP32_MAX_REL_L2:g}")
        if metrics.top1_agreement < 1.0:
            problems.append(f"top-1 agreement {metrics.top1_agreement:.1%} < 100%")
        return ("fail", "; ".join(problems)) if problems else ("pass", "")
    if not metrics.psnr_db >= FP16_MIN_PSNR_DB:
        return "fail", f"PSNR {metrics.psnr_db:.1f} dB < {FP16_MIN_PSNR_DB:g} dB"
    return "pass", ""


def reference_outputs(original: nn.Module, inputs: list[ValidationInput], output_kind: str) -> np.ndarray:
    """The original model's outputs, post-processed like the artifact's (softmax for probability outputs)."""
    with torch.no_grad():
        out = torch.cat([original(item.tensor) for item in inputs])
        if output_kind == "probabilities":
            out = torch.softmax(out, dim=-1)
    return out.numpy()


def original_rounding(original: nn.Module, inputs: list[ValidationInput], output_kind: str,
                      reference: np.ndarray) -> ParityMetrics:
    """The original's fp32 outputs (``reference``) against the same weights run in float64."""
    wide = copy.deepcopy(original).double().eval()
    for module in wide.modules():  # timm caches attention-bias tensors per device in fp32: rebuild them
        if isinstance(getattr(module, "attention_bias_cache", None), dict):
            module.attention_bias_cache = {}
    with torch.no_grad():
        out = torch.cat([wide(item.tensor.double()) for item in inputs])
        if output_kind == "probabilities":
            out = torch.softmax(out, dim=-1)
    return parity_metrics(out.numpy(), reference)


def check_inconclusive(result: ParityResult, original: nn.Module, inputs: list[ValidationInput],
                       output_kind: str, reference: np.ndarray) -> ParityResult:
    """A failed fp32 verdict becomes "inconclusive" when the original misses the thresholds on its own.

    fp16 likewise: when rounding only the original's weights to fp16 (computing in fp32) already misses the fp16
    threshold, no fp16 artifact of it could pass. An fp16 overflow the interpreter saw is a real defect and stays
    a failure.
    """
    if result.status != "fail" or result.reason.startswith(NON_FINITE):
        return result
    if result.precision == "fp16":
        return _check_fp16_sensitivity(result, original, inputs, output_kind, reference)
    if result.precision != "fp32":
        return result
    own = original_rounding(original, inputs, output_kind, reference)
    result.original_fp32_vs_fp64 = own
    own_status, _ = judge(own, "fp32")
    if own_status == "fail":
        result.status = "inconclusive"
        result.reason = (
            f"{result.reason}; but the original model misses the threshold by itself: its fp32 output differs "
            f"from its own float64 run by relative L2 {own.rel_l2:.3g} (top-1 {own.top1_agreement:.0%}), so fp32 "
            "rounding is as large as the divergence judged (typical of random-init weights that saturate attention "
            "softmaxes, where converting with --weights makes the check decisive; with a trained checkpoint it means "
            "the model itself is unstable in fp32)"
        )
    return result


def original_with_fp16_weights(original: nn.Module, inputs: list[ValidationInput], output_kind: str,
                               reference: np.ndarray) -> ParityMetrics:
    """The original's fp32 outputs (``reference``) against the same model with every weight rounded to fp16."""
    for module in original.modules():  # timm's eval-mode attention-bias caches (LeViT, EfficientViT-M): they hold
        if isinstance(getattr(module, "attention_bias_cache", None), dict):  # non-leaf tensors deepcopy refuses,
            module.attention_bias_cache.clear()  # and the copy's must be rebuilt from its rounded biases anyway
    rounded = copy.deepcopy(original).eval()
    with torch.no_grad():
        for tensor in list(rounded.parameters()) + list(rounded.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
        out = torch.cat([rounded(item.tensor) for item in inputs])
        if output_kind == "probabilities":
            out = torch.softmax(out, dim=-1)
    return parity_metrics(reference, out.numpy())


def _check_fp16_sensitivity(result: ParityResult, original: nn.Module, inputs: list[ValidationInput],
                            output_kind: str, reference: np.ndarray) -> ParityResult:
    if "fp16 overflow" in result.reason:
        return result
    own = original_with_fp16_weights(original, inputs, output_kind, reference)
    if judge(own, "fp16")[0] == "fail":
        result.status = "inconclusive"
        result.reason = (
            f"{result.reason}; but rounding only the original model's weights to fp16 already moves its outputs to "
            f"PSNR {own.psnr_db:.1f} dB (top-1 {own.top1_agreement:.0%}), so fp16 weight rounding alone is as large "
            "as the divergence judged (typical of random-init weights that saturate attention softmaxes; with a "
            "trained checkpoint it means the model is unstable in fp16: use --precision fp32)"
        )
    return result


def non_finite_outputs(reference: np.ndarray, actual: np.ndarray) -> str | None:
    """The reason for a ``fail: non-finite outputs`` verdict, or None when both outputs are finite."""
    for whose, values in (("the artifact's", actual), ("the original model's", reference)):
        values = np.asarray(values)
        finite = np.isfinite(values)
        if not finite.all():
            nan = int(np.isnan(values).sum())
            return (f"{NON_FINITE}: {whose} outputs hold {nan} NaN and {int((~finite).sum()) - nan} infinite values "
                    f"(of {values.size}), so nothing can be compared")
    return None


def compare(reference: np.ndarray, actual: np.ndarray, inputs: list[ValidationInput], artifact: str,
            runtime: str, precision: str, min_psnr: float | None = None) -> ParityResult:
    """Metrics on photos, on random tensors, and overall; the verdict is on all inputs together.

    NaN or infinity in either output is its own verdict, ``fail: non-finite outputs``: no metric of such outputs
    means anything, and it must never become "inconclusive" or be blamed on fp32 rounding.
    """
    problem = non_finite_outputs(reference, actual)
    if problem is not None:
        return ParityResult(artifact, runtime, precision, "fail", problem,
                            thresholds=thresholds_for(precision, min_psnr))
    is_photo = np.array([item.image is not None for item in inputs])
    overall = parity_metrics(reference, actual)
    photos = parity_metrics(reference[is_photo], actual[is_photo]) if is_photo.any() else None
    rand = parity_metrics(reference[~is_photo], actual[~is_photo]) if (~is_photo).any() else None
    # a quantized artifact is judged on the photos: random tensors lie outside every calibrated activation range
    status, reason = judge(photos if precision in QUANTIZED and photos is not None else overall, precision, min_psnr)
    return ParityResult(artifact, runtime, precision, status, reason, photos, rand, overall,
                        thresholds_for(precision, min_psnr))


def run_parity(original: nn.Module, artifact: Path, manifest: dict, inputs: list[ValidationInput],
               runtime: str | None = None) -> ParityResult:
    """Run the artifact on every input in this host's runtime and compare with the original model.

    A ``.mlpackage`` runs in the CoreML runtime on macOS and in edgevit's MIL reference interpreter elsewhere
    (or wherever ``runtime="mil-reference"``); the result names which, and the interpreter is never reported
    as CoreML. An op the interpreter lacks makes the verdict "not run", naming the op and the layer.
    """
    from edgevit.mil import MilInterpreterError

    precision = manifest["precision"]
    min_psnr = (manifest.get("quantization") or {}).get("min_psnr_db")
    label = runtime or manifest["target"]
    try:
        runner = open_runner(artifact, manifest, runtime)
        usable = [item for item in inputs if manifest["input"]["kind"] == "tensor" or item.image is not None]
        actual = np.concatenate([runner.checked_run(item.tensor, item.image) for item in usable])
    except RuntimeUnavailable as exc:
        return ParityResult(artifact.name, label, precision, "not run", str(exc), thresholds=thresholds_for(precision))
    except MilInterpreterError as exc:
        return ParityResult(artifact.name, MIL_REFERENCE, precision, "not run",
                            f"MIL reference interpreter could not run the program: {exc}",
                            thresholds=thresholds_for(precision))
    reference = reference_outputs(original, usable, manifest["output"]["kind"])
    result = compare(reference, actual, usable, artifact.name, runner.runtime, precision, min_psnr)
    diagnosis = getattr(runner, "diagnosis", "")
    if result.status == "fail" and diagnosis:
        result.reason = f"{result.reason}; {diagnosis}"
    return check_inconclusive(result, original, usable, manifest["output"]["kind"], reference)


def _device_values(values: object, where: str) -> np.ndarray:
    """An output's values as float32. Non-finite values are null (format 2; format 1 from Android too) or, in
    iOS files of format 1, the strings "NaN", "Infinity" and "-Infinity"."""
    if not isinstance(values, list):
        raise ArtifactError(f"{where}: values must be a list of numbers")
    out = np.empty(len(values), dtype=np.float32)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, str) and v in _LEGACY_NON_FINITE:
            out[i] = _LEGACY_NON_FINITE[v]
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out[i] = v
        else:
            raise ArtifactError(f"{where}: values[{i}] is {v!r}, not a number or null")
    return out


def read_device_outputs(device_file: Path) -> dict:
    """Read a device-outputs file of either harness (docs/device-outputs.md) and check its structure.

    Format 2 requires every key; files of format 1 (before both harnesses wrote the same thing) are read too,
    their missing keys filled in. Each output's values become a float32 array under ``"array"``. Raises
    ArtifactError saying which key of which file is wrong.
    """
    from edgevit.base.artifact_folder import MiB, parse_json, read_regular_file

    raw = read_regular_file(Path(device_file), "device-outputs file", 64 * MiB)  # a regular file, bounded, no FIFO
    data = parse_json(raw, f"device outputs {device_file}", advice="re-run the harness that wrote it")
    if not isinstance(data, dict):
        raise ArtifactError(f"{device_file} must hold a JSON object (an {DEVICE_OUTPUTS_FORMAT} file)")
    fmt = data.get("format")
    if fmt not in (DEVICE_OUTPUTS_FORMAT, *LEGACY_DEVICE_OUTPUTS_FORMATS):
        raise ArtifactError(f"{device_file} is not a device-outputs file (format {fmt!r}; expected "
                            f"{DEVICE_OUTPUTS_FORMAT}, written by the iOS and Android harnesses)")
    if fmt == DEVICE_OUTPUTS_FORMAT:
        missing = [key for key in DEVICE_OUTPUTS_KEYS if key not in data]
        if missing:
            raise ArtifactError(f"{device_file} lacks {', '.join(missing)} ({DEVICE_OUTPUTS_FORMAT} has every key)")
    data = {"harness": None, "created": None, "artifact_sha256": None, "device": {}, "compute_unit": None,
            "warnings": [], "error": None, **data}
    for key, kinds in _DEVICE_OUTPUTS_TYPES.items():
        if not isinstance(data.get(key), kinds):
            raise ArtifactError(f"{device_file}: {key} is {data.get(key)!r}, which is not what {fmt} allows")
    if not all(isinstance(w, str) for w in data["warnings"]):
        raise ArtifactError(f"{device_file}: warnings must be a list of strings")
    names: set[str] = set()
    for i, out in enumerate(data["outputs"]):
        where = f"{device_file}: outputs[{i}]"
        if not isinstance(out, dict) or not isinstance(out.get("name"), str) or not isinstance(out.get("shape"), list):
            raise ArtifactError(f"{where} needs a name, a shape and values")
        if out["name"] in names:
            raise ArtifactError(f"{where}: input {out['name']!r} appears twice")
        names.add(out["name"])
        out["array"] = _device_values(out.get("values"), where)
        if not all(isinstance(d, int) and d >= 0 for d in out["shape"]) or math.prod(out["shape"]) != out["array"].size:
            raise ArtifactError(f"{where}: {out['array'].size} values do not fill shape {out['shape']}")
    return data


def device_parity(original: nn.Module, manifest: dict, inputs: list[ValidationInput],
                  device_file: Path) -> ParityResult:
    """Compare outputs a phone harness saved (edgevit-device-outputs/2, or /1) with the original model.

    A file whose harness reported an error (a validation input failed, so the outputs are incomplete) is
    refused; the file's warnings (e.g. repeated class labels) are passed on in the result's reason.
    """
    data = read_device_outputs(Path(device_file))
    if data["error"]:
        raise ArtifactError(f"{device_file}: the {data['harness'] or 'device'} harness reported an error, so its "
                            f"outputs are incomplete: {data['error']}")
    if data["artifact_sha256"] not in (None, manifest["sha256"]):
        raise ArtifactError(f"{device_file} was produced by a different artifact (sha256 differs from the manifest)")
    by_name = {item.name: item for item in inputs}
    used, rows = [], []
    for out in data["outputs"]:
        if out["name"] not in by_name:
            raise ArtifactError(f"{device_file}: output for unknown input {out['name']!r}")
        used.append(by_name[out["name"]])
        rows.append(out["array"].reshape(1, -1))
    if not rows:
        raise ArtifactError(f"{device_file} holds no outputs")
    reference = reference_outputs(original, used, manifest["output"]["kind"])
    device = data["device"]
    runtime = f"{manifest['target']} on {device.get('name', 'device')}"
    if data["compute_unit"]:
        runtime += f" ({data['compute_unit']})"
    result = compare(reference, np.concatenate(rows), used, manifest["artifact"], runtime, manifest["precision"],
                     (manifest.get("quantization") or {}).get("min_psnr_db"))
    result = check_inconclusive(result, original, used, manifest["output"]["kind"], reference)
    if data["warnings"]:
        note = "device harness warnings: " + "; ".join(data["warnings"])
        result.reason = f"{result.reason}; {note}" if result.reason else note
    return result
