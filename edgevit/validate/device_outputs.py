"""Outputs a phone harness saved (``edgevit-device-outputs/2``, docs/device-outputs.md) compared with the original.

The phone ran the artifact; edgevit regenerates the inputs (the same photos and seeded random tensors the bundle
was written from) and the original model's outputs, matches the device's outputs to them by input name, and
judges them on the outputs the device gives (probabilities for a classifier package, else logits): fp32 within
relative L2 1e-4 and the same top-1, every other precision at a PSNR floor that is edgevit's or the user's
(``--min-psnr``), never the manifest's. The bundle the artifact ships is what the harness fed; an honest one
holds exactly what edgevit regenerates, so a dishonest one only makes the device's outputs disagree.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgevit.base.errors import ArtifactError
from edgevit.validate.inputs import ValidationInput
from edgevit.validate.metrics import non_finite, parity_metrics
from edgevit.validate.parity import ParityResult
from edgevit.validate.precision_cost import floor_for

FP32_MAX_REL_L2 = 1e-4
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
NON_FINITE = "non-finite outputs"


def judge(metrics, precision: str, min_psnr: float | None = None) -> tuple[str, str]:
    """(status, reason) of device outputs: fp32 within relative L2 1e-4 and the same top-1; others at the floor."""
    if precision == "fp32":
        problems = []
        if not metrics.rel_l2 <= FP32_MAX_REL_L2:
            problems.append(f"relative L2 {metrics.rel_l2:.3g} > {FP32_MAX_REL_L2:g}")
        if metrics.top1_agreement < 1.0:
            problems.append(f"top-1 agreement {metrics.top1_agreement:.1%} < 100%")
        return ("fail", "; ".join(problems)) if problems else ("pass", "")
    floor, source = floor_for(precision, min_psnr)
    if not metrics.psnr_db >= floor:
        return "fail", f"PSNR {metrics.psnr_db:.1f} dB < {floor:g} dB ({source})"
    return "pass", ""


def compare(reference: np.ndarray, actual: np.ndarray, inputs: list[ValidationInput], artifact: str,
            runtime: str, precision: str, min_psnr: float | None = None) -> ParityResult:
    """Metrics on photos, random inputs and all together; the verdict on all of them. NaN or infinity in either
    is its own verdict, ``fail: non-finite outputs``."""
    for whose, values in (("the artifact's", actual), ("the original model's", reference)):
        problem = non_finite(values, whose)
        if problem is not None:
            return ParityResult(artifact, runtime, precision, "fail", f"{NON_FINITE}: {problem}, so nothing can be "
                                "compared")
    is_photo = np.array([item.kind == "photo" for item in inputs]) if inputs else np.zeros(len(reference), bool)
    overall = parity_metrics(reference, actual)
    photos = parity_metrics(reference[is_photo], actual[is_photo]) if is_photo.any() else None
    rand = parity_metrics(reference[~is_photo], actual[~is_photo]) if (~is_photo).any() else None
    status, reason = judge(overall, precision, min_psnr)
    return ParityResult(artifact, runtime, precision, status, reason, photos, rand, overall)


def reference_outputs(original: nn.Module, inputs: list[ValidationInput], output_kind: str) -> np.ndarray:
    """The original model's outputs, post-processed like the artifact's (softmax for probability outputs)."""
    with torch.no_grad():
        out = torch.cat([original(item.tensor) for item in inputs])
        if output_kind == "probabilities":
            out = torch.softmax(out, dim=-1)
    return out.numpy()


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


def device_parity(original: nn.Module, manifest: dict, inputs: list[ValidationInput], device_file: Path, *,
                  precision: str | None = None, min_psnr: float | None = None) -> ParityResult:
    """Compare outputs a phone harness saved (edgevit-device-outputs/2, or /1) with the original model.

    ``precision`` is the one read from the artifact's program (the manifest's only when no program is at hand);
    ``min_psnr`` the user's floor.

    A file whose harness reported an error (a validation input failed, so the outputs are incomplete) is
    refused; the file's warnings (e.g. repeated class labels) are passed on in the result's reason.
    """
    precision = precision or manifest["precision"]
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
    result = compare(reference, np.concatenate(rows), used, manifest["artifact"], runtime, precision, min_psnr)
    if data["warnings"]:
        note = "device harness warnings: " + "; ".join(data["warnings"])
        result.reason = f"{result.reason}; {note}" if result.reason else note
    return result
