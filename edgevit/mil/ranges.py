"""Activation ranges of an ML program on calibration inputs, gathered through the MIL reference interpreter.

coremltools' activation quantization (``linear_quantize_activations``) gathers the same statistics with
``MLModel.predict``, which exists only on macOS; the interpreter executes the same serialised program anywhere,
so these ranges can be handed to coremltools' own quantize/dequantize insertion passes on Linux.

What is recorded follows coremltools 9's ``_get_activation_calibration_stats``: ``{var name: {"rmin", "rmax"}}``
for every program input and every non-const op output that is not a program output, then the inputs and
output of each ``concat`` share one range (coremltools' ``_adjust_concat_surrounding_activation_stats``).
Two deliberate differences, both recorded in the manifest:

* ``minmax`` takes min/max over *all* calibration inputs. coremltools 9's ``record_intermediate_output``
  overwrites each tensor's range with the current sample's before comparing, so on a Mac only the last
  sample's range survives (the documented intent, and every other calibrator, aggregate over the set).
* ``percentile`` (not in coremltools) clips outliers: per input, the (100 - p)th and p-th percentiles of
  each tensor, averaged over the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgevit.mil.kernels import MilInterpreterError
from edgevit.mil.predict import MilModel, _feed

METHODS = ("minmax", "percentile")
DEFAULT_PERCENTILE = 99.99


@dataclass
class ActivationRanges:
    """Per-tensor ranges in coremltools' ``activation_stats`` layout, and how they were gathered."""

    stats: dict[str, dict[str, float]]
    method: str
    samples: int
    percentile: float | None = None
    concat_groups: int = 0
    skipped: list[str] = field(default_factory=list)  # non-float outputs (int, bool) that carry no range

    def to_json(self) -> dict:
        return {"source": "edgevit MIL reference interpreter (mil-reference), observe hook on every op output",
                "method": self.method, "percentile": self.percentile, "samples": self.samples,
                "tensors": len(self.stats), "concat_groups_shared": self.concat_groups,
                "aggregation": ("min/max over every calibration input" if self.method == "minmax" else
                                f"per input the {100 - self.percentile:g}th/{self.percentile:g}th percentiles, "
                                "averaged over the inputs")}


class _Recorder:
    """Accumulates one range per tensor name over calibration runs (the interpreter's observe hook)."""

    def __init__(self, method: str, percentile: float, excluded: set[str]):
        self.method, self.percentile, self.excluded = method, percentile, excluded
        self.low: dict[str, list[float]] = {}
        self.high: dict[str, list[float]] = {}
        self.skipped: set[str] = set()

    def record(self, name: str, value: Any) -> None:
        if name in self.excluded:
            return
        arr = np.asarray(value)
        if arr.dtype.kind != "f" or arr.size == 0:
            self.skipped.add(name)
            return
        if self.method == "minmax":
            lo, hi = float(arr.min()), float(arr.max())
        else:
            lo, hi = (float(v) for v in np.percentile(arr, [100.0 - self.percentile, self.percentile]))
        self.low.setdefault(name, []).append(lo)
        self.high.setdefault(name, []).append(hi)

    def observe(self, op, var, value) -> None:
        if op.op_type != "const":
            self.record(var.name, value)

    def stats(self) -> dict[str, dict[str, float]]:
        if self.method == "minmax":
            return {n: {"rmin": min(self.low[n]), "rmax": max(self.high[n])} for n in self.low}
        return {n: {"rmin": float(np.mean(self.low[n])), "rmax": float(np.mean(self.high[n]))} for n in self.low}


def concat_groups(function) -> list[list[str]]:
    """Per ``concat`` op of ``function``: its input names and its output name (coremltools' concat info)."""
    groups = []
    for op in function.operations:
        if op.op_type == "concat":
            groups.append([v.name for v in op.inputs["values"]] + [op.outputs[0].name])
    return groups


def activation_ranges(model: Any, samples: Iterable[dict[str, Any]], *, method: str = "minmax",
                      percentile: float = DEFAULT_PERCENTILE) -> ActivationRanges:
    """Ranges of every activation of ``model`` (path, MLModel or MilModel) over ``samples`` (predict inputs:
    PIL images for image inputs, arrays otherwise), in the layout coremltools' activation passes take."""
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
    )

    if method not in METHODS:
        raise MilInterpreterError(f"unknown range method {method!r}; choose one of {', '.join(METHODS)}")
    if method == "percentile" and not 50.0 < float(percentile) <= 100.0:
        raise MilInterpreterError(f"percentile must be in (50, 100], got {percentile!r}")
    runner = model if isinstance(model, MilModel) else MilModel(model)
    missing = runner.unsupported()
    if missing is not None:
        raise missing
    main = runner.loaded.main
    outputs = {var.name for var in main.outputs} | {f.name for f in runner.loaded.description.output}
    recorder = _Recorder(method, float(percentile), outputs)
    count = 0
    for sample in samples:
        for feature in runner.loaded.description.input:
            recorder.record(feature.name, _feed(feature, sample[feature.name], main.inputs[feature.name]))
        runner.predict(sample, observe=recorder.observe)
        count += 1
    if count == 0:
        raise MilInterpreterError("no calibration inputs: activation ranges need at least one")
    stats = recorder.stats()
    groups = concat_groups(main)
    _adjust_concat_surrounding_activation_stats(groups, stats)
    return ActivationRanges(stats, method, count, float(percentile) if method == "percentile" else None,
                            len(groups), sorted(recorder.skipped))


def coreml_calibrator(images: list, tensors: list, *, method: str = "minmax",
                      percentile: float = DEFAULT_PERCENTILE,
                      progress: Callable[[str], None] | None = None) -> Callable[[Any], tuple[dict, dict]]:
    """For edgevit.export.coreml's w8a8: converted MLModel -> (activation_stats, manifest record), run on the
    calibration ``images`` (PIL, for an image input) or ``tensors`` (torch, for a tensor input)."""

    def calibrate(mlmodel: Any) -> tuple[dict, dict]:
        from edgevit.models.random_init import one_thread

        runner = MilModel(mlmodel)
        feature = runner.loaded.description.input[0]
        is_image = feature.type.WhichOneof("Type") == "imageType"
        values = images if is_image else [t.numpy() for t in tensors]
        if progress is not None:
            progress(f"gathering activation ranges ({method}) on {len(values)} calibration inputs through the "
                     "MIL reference interpreter")
        with one_thread():  # torch kernels inside the interpreter sum in a thread-dependent order: a range (and
            # the scale it gives) must not depend on the threads of the process that converts or validates
            ranges = activation_ranges(runner, ({feature.name: v} for v in values), method=method,
                                       percentile=percentile)
        return ranges.stats, ranges.to_json()

    return calibrate
