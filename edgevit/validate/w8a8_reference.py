"""Fidelity of a W8A8 ML program: against the W8A8 program edgevit makes from the original, here, on the same
calibration set.

Why not against the float original: a W8A8 program rounds every activation to int8 with its stored scales, and that
rounding compounds (a clean fastvit-t8 package is 41% relative L2 away from the float logits; the same package with
one residual add removed, also 41%): no bound separates it from a defect. Why this works: every part of the program
is reproducible. The weights come from the original; the activation scales from ranges edgevit's MIL interpreter
gathers on a fixed calibration set on one thread (edgevit.mil.ranges.coreml_calibrator, bit-identical wherever it
runs); the rest is coremltools' own conversion and passes. So the program is rebuilt here and compared part by part:

- every ``quantize``/``dequantize`` op's scale and zero point (by name) must be the rebuilt program's: equal zero
  points, scales within ``SCALE_RTOL`` (calibration rounding: see below); a moved activation scale is named, whatever
  its effect on the outputs;
- the compute graph (edgevit.validate.program_structure): same ops, names and inputs;
- both programs run at fp32 through the interpreter on the validation inputs, the rebuilt one carrying the
  artifact's scales where they differ within the tolerance: identical programs give identical values, so ``BOUND``
  admits nothing but the last bit. (Carrying is needed: one fp16 step in 19 of 186 scales moved swiftformer-l1's
  logits by 2.9% relative L2 — activation rounding flips compound.)

The stored weights are still checked one by one against the original's parameters (edgevit.validate.stored_values).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgevit.base.errors import ArtifactError, UsageError

BOUND = 1e-6
DERIVATION = ("the package and coremltools' W8A8 of the original made here with the recorded calibration set (carrying "
              "the package's activation scales where they are within calibration rounding), both run at fp32 by "
              "edgevit's MIL interpreter on the same inputs: identical programs agree to the bit")
COMPARED = ("edgevit's MIL interpreter at fp32: the package vs the W8A8 program rebuilt from the original "
            "(same calibration set, coremltools' passes)")
# Activation ranges are held in fp16 before scale = max|range| / 127; a calibration run on other threads or another ISA
# sums in another order and can land a range on a neighbouring fp16 value: measured on swiftformer-l1, a package
# calibrated on 2 threads against a 1-thread rebuild, 19 of 186 scales differed by 1-2 fp16 steps (at most 0.142%).
# Four fp16 steps (0.39%) admit that; a scale moved by 5% is 13 times outside. Zero points must be equal.
SCALE_RTOL = 4 * 2.0**-10
SCALE_DERIVATION = ("activation ranges held in fp16: calibration on other threads or another ISA moves a range by "
                    "1-2 fp16 steps (measured 0.142% at most on swiftformer-l1); within 4 steps (0.39%) a scale is "
                    "calibration rounding and the rebuilt program carries the artifact's value")


@dataclass
class RebuiltProgram:
    """coremltools' W8A8 of the original, as edgevit makes it (a LoadedProgram)."""

    loaded: object

    @property
    def main(self):
        return self.loaded.main


def rebuilt_w8a8(subject, manifest: dict) -> RebuiltProgram:
    """The W8A8 program made from ``subject``'s prepared model with the artifact's calibration set and options, once
    per subject; RuntimeUnavailable when the calibration set cannot be rebuilt (a user's folder not given again)."""
    from edgevit.export.coreml import export_coreml
    from edgevit.mil import load_program
    from edgevit.mil.keep_float import KeepFloat
    from edgevit.mil.ranges import coreml_calibrator
    from edgevit.validate.quantized_reference import calibration_for, recorded_keep_float

    calibration = calibration_for(subject, manifest)
    options = manifest.get("export") or {}
    ranges = ((options.get("quantization") or {}).get("activation_ranges") or {})
    method = ranges.get("method") or "minmax"
    tensor_input = manifest["input"]["kind"] != "image"
    target = options.get("deployment_target", "iOS17")
    kept = recorded_keep_float(manifest)  # the layers the package says it kept float: rebuilt the same way
    key = ("coreml-w8a8", calibration.sha256, method, ranges.get("percentile"), target, tensor_input,
           tuple(kept or ()))
    if key not in subject.cache:
        extra = {"percentile": ranges["percentile"]} if ranges.get("percentile") is not None else {}
        calibrate = coreml_calibrator(calibration.images, calibration.tensors, method=method, **extra)
        with tempfile.TemporaryDirectory(prefix="edgevit-w8a8-reference-") as tmp:
            path = Path(tmp) / "reference.mlpackage"
            try:
                export_coreml(subject.prepared, subject.spec, path, precision="fp16", deployment_target=target,
                              tensor_input=tensor_input, compress="w8a8", calibrate=calibrate,
                              keep_float=KeepFloat(kept) if kept else None)
            except UsageError as exc:  # a recorded layer the model does not have
                raise ArtifactError(f"the manifest's quantization.mixed_precision.keep_float: {exc}") from None
            subject.cache[key] = RebuiltProgram(load_program(path))
    return subject.cache[key]


_QDQ = ("quantize", "dequantize")


def activation_quantization(function) -> dict[str, tuple[object, np.ndarray, np.ndarray | None]]:
    """Each ``quantize``/``dequantize`` op's (scale var, scale, zero point), by op name."""
    found = {}
    for op in function.operations:
        if op.op_type in _QDQ:
            zero = op.inputs.get("zero_point")
            found[op.name] = (op.inputs["scale"], np.asarray(op.inputs["scale"].val, dtype=np.float32).reshape(-1),
                              None if zero is None else np.asarray(zero.val).reshape(-1))
    return found


@dataclass
class ActivationComparison:
    differences: list[str]  # beyond calibration rounding, at most ``limit`` of them
    carried: dict  # rebuilt program's scale var -> the artifact's value (within calibration rounding, not equal)
    largest_within: float  # the largest relative scale difference admitted as calibration rounding


def compare_activations(artifact_function, rebuilt_function, limit: int = 5) -> ActivationComparison:
    """The artifact's activation quantizations against the rebuilt program's: what differs beyond calibration
    rounding, and the artifact's scales the rebuilt program must carry to be the same program."""
    mine, theirs = activation_quantization(artifact_function), activation_quantization(rebuilt_function)
    found, carried, largest = [], {}, 0.0
    for name, (_, scale, zero) in mine.items():
        if name not in theirs:
            found.append(f"{name!r} is not in the rebuilt program")
            continue
        var, want, want_zero = theirs[name]
        if scale.shape != want.shape or not np.all(np.isfinite(scale)):
            found.append(f"{name!r} scale has shape {scale.shape}, the rebuilt program's {want.shape}")
            continue
        moved = float(np.max(np.abs(scale / want - 1))) if want.size else 0.0
        if not moved <= SCALE_RTOL:
            found.append(f"{name!r} scale {scale[0]:.6g} where the recorded calibration gives {want[0]:.6g} "
                         f"({scale[0] / want[0] - 1:+.2%}, {moved / SCALE_RTOL:.3g}× the calibration rounding)")
        elif not _same_zero(zero, want_zero):
            found.append(f"{name!r} zero point {zero} where the rebuilt program has {want_zero}")
        elif moved > 0:
            if var in carried and not np.array_equal(carried[var], scale):
                found.append(f"{name!r} scale {scale[0]:.6g} differs from another op sharing its constant")
                continue
            carried[var] = scale.reshape(np.shape(var.val)).astype(np.asarray(var.val).dtype)
            largest = max(largest, moved)
    found += [f"{name!r} of the rebuilt program is missing" for name in theirs if name not in mine]
    return ActivationComparison(found[:limit] + ([f"... {len(found) - limit} more"] if len(found) > limit else []),
                                carried, largest)


def _same_zero(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    zero_a = np.zeros(1) if a is None else a
    zero_b = np.zeros(1) if b is None else b
    shape = np.broadcast_shapes(zero_a.shape, zero_b.shape)
    return bool(np.array_equal(np.broadcast_to(zero_a, shape), np.broadcast_to(zero_b, shape)))
