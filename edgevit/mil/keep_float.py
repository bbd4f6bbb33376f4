"""``--compress w8a8 --keep-float``: the layers kept float, by hand or by a sensitivity scan on an emulation.

The scan does not re-run coremltools' passes per layer (4-5 s each on swiftformer-l1): it runs the float program
through edgevit's MIL interpreter with the int8 layers' weights as coremltools' int8 quantization stores them, and
fake-quantizes what the passes would quantize for those layers (edgevit.export.coreml_layers) with the scale each
calibrated range gives: a suffix pair's tensor as it is stored, since every reader sees it quantized, and a prefix
pair's input only where its op reads it (a float reader of the same tensor sees it raw; fake-quantizing it at
storage made random-init fastvit-sa24's emulation read 36.7 dB for a package measuring 50.8 dB). A float layer keeps its
fp16 weights and float activations. The ranking and choice
are edgevit.export.sensitivity's; the choice is written by coremltools' real passes and the written package measured.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgevit.export.coreml_layers import (
    float_op_names,
    op_layers,
    prefix_inputs,
    quantizable_ops,
    suffix_tensor,
    weight_consts,
)
from edgevit.mil.interpreter import is_fp16
from edgevit.mil.load import LoadedProgram

COREML_SENSITIVITY_METHOD = ("quantize one at a time on the weight-quantized ML program run by edgevit's MIL "
                             "interpreter, each layer's activations fake-quantized where coremltools' passes put "
                             "their quantize/dequantize pairs; logits PSNR against the fp32 model; ranked by each "
                             "layer's share of the summed noise")


@dataclass
class W8A8Emulation:
    """The float program, run with the weights of int8 layers as coremltools' int8 per-channel quantization stores
    them and their activations fake-quantized where W8A8 quantizes them: a suffix tensor as it is stored (every
    reader sees it quantized), a prefix input only where its int8 op reads it."""

    model: Any  # MilModel of the float program
    scales: dict[str, float]  # tensor -> scale, as coremltools derives it from the calibrated range
    prefix: dict[str, dict[str, list[str]]]  # layer -> {op name: the inputs its prefix pairs quantize}
    suffix: dict[str, list[str]]  # layer -> tensors its ops' suffix pairs quantize
    weights: dict[str, dict[Any, tuple[np.ndarray, np.ndarray]]]  # layer -> {const var: (fp16 value, int8 value)}
    logits: str  # the value compared (a classifier's softmax input, or the output)
    feed: Callable[[Any], dict]  # a scan input -> the predict dict
    stored: set[str] = field(default_factory=set)
    reads: dict[str, list[str]] = field(default_factory=dict)

    def set_float(self, layers: set[str]) -> None:
        self.stored = {t for layer, tensors in self.suffix.items() if layer not in layers for t in tensors}
        self.reads = {op: names for layer, ops in self.prefix.items() if layer not in layers
                      for op, names in ops.items()}
        self.model.carry_constants({var: values[0] if layer in layers else values[1]
                                    for layer, consts in self.weights.items() for var, values in consts.items()})

    def _fake(self, var, value):
        scale = self.scales.get(var.name)
        if scale is None or not isinstance(value, np.ndarray) or value.dtype.kind != "f":
            return value
        fake = np.clip(np.round(value / scale), -128, 127) * scale
        return fake.astype(np.float16).astype(np.float32) if is_fp16(var.dtype) else fake.astype(value.dtype)

    def _rewrite(self, var, value):
        return self._fake(var, value) if var.name in self.stored else value

    def _read(self, op, env):
        names = self.reads.get(op.name)
        if not names:
            return None
        return {var: self._fake(var, env[var]) for var in op.inputs.values()
                if getattr(var, "name", None) in names and var in env}

    def run(self, inputs: list) -> np.ndarray:
        rows = [self.model.predict(self.feed(x), extra_outputs=(self.logits,), rewrite=self._rewrite,
                                   read=self._read)[self.logits] for x in inputs]
        return np.concatenate([np.asarray(r, np.float32).reshape(1, -1) for r in rows])


def _int8_weights(float_mlmodel, sample: dict) -> dict[str, np.ndarray]:
    """Const name -> its value as coremltools' int8 per-channel weight quantization stores it (the w8 program's
    ``constexpr_*`` output, named ``<const>_quantized``, computed by the interpreter on one run)."""
    import coremltools.optimize.coreml as cto

    from edgevit.mil.predict import MilModel

    w8 = cto.linear_quantize_weights(float_mlmodel, cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")))
    found: dict[str, np.ndarray] = {}

    def observe(op, var, value):
        if op.op_type.startswith("constexpr_") and var.name.endswith("_quantized"):
            found[var.name[:-len("_quantized")]] = np.asarray(value)

    MilModel(w8).predict(sample, observe=observe)
    return found


def emulation(float_mlmodel, activation_stats: dict[str, dict[str, float]], layers: dict[str, list[str]],
              sample: Any, loaded: LoadedProgram | None = None) -> W8A8Emulation:
    """The emulation of ``float_mlmodel``'s W8A8 form: coremltools' int8 per-channel weights, scales from
    ``activation_stats`` (edgevit.mil.ranges), ``layers`` from op_layers on the same program; ``sample`` is one scan
    input (the weights' int8 values are read off one run of the weight-quantized program)."""
    from edgevit.export.coreml import expected_scale
    from edgevit.mil.interpreter import constants_of
    from edgevit.mil.load import logits_var
    from edgevit.mil.predict import MilModel

    model = MilModel(loaded or float_mlmodel)
    function = model.loaded.main
    name = model.loaded.description.input[0].name
    by_name = {op.name: op for op in quantizable_ops(function)}
    prefix = {layer: {n: prefix_inputs(by_name[n]) for n in names} for layer, names in layers.items()}
    suffix = {layer: sorted({t for n in names if (t := suffix_tensor(by_name[n])) is not None})
              for layer, names in layers.items()}
    scales = {}
    for tensors in [*suffix.values(), *(t for ops in prefix.values() for t in ops.values())]:
        for t in tensors:
            stats = activation_stats.get(t)
            scale = expected_scale(stats["rmin"], stats["rmax"]) if stats else 0.0
            scales[t] = scale if scale > 0 else 1.0  # coremltools sets a zero scale to 1
    int8 = _int8_weights(float_mlmodel, {name: sample})
    originals = {var.name: (var, value) for var, value in constants_of(function).items() if hasattr(var, "name")}
    weights = {}
    for layer, names in layers.items():
        weights[layer] = {}
        for const in weight_consts(function, names):
            var, value = originals[const]
            if const in int8:  # under coremltools' weight_threshold (WEIGHT_THRESHOLD) a weight stays fp16 anyway
                weights[layer][var] = (value, np.asarray(int8[const]).astype(np.asarray(value).dtype))
    return W8A8Emulation(model, scales, prefix, suffix, weights, logits_var(function), lambda x: {name: x})


def layer_runner(emulated: W8A8Emulation, inputs: list) -> Callable[[set[str]], np.ndarray]:
    """edgevit.export.sensitivity's Runner: layers kept float -> emulated logits on ``inputs``."""

    def run(float_layers: set[str]) -> np.ndarray:
        emulated.set_float(float_layers)
        return emulated.run(inputs)

    return run


def auto_keep_float(float_mlmodel, activation_stats: dict, layers: dict[str, list[str]], inputs: list,
                    reference: np.ndarray, auto: dict, progress: Callable[[str], None] | None = None,
                    loaded: LoadedProgram | None = None) -> dict:
    """The scan and choice on the W8A8 emulation against the fp32 model's logits ``reference`` on ``inputs``
    (predict inputs: PIL images for an image package, arrays otherwise); the manifest's mixed_precision record.
    ``loaded``: ``float_mlmodel`` already loaded (edgevit.mil.load), not loaded again."""
    from edgevit.export import sensitivity

    run = layer_runner(emulation(float_mlmodel, activation_stats, layers, inputs[0], loaded), inputs)
    return sensitivity.auto_choice(layers, reference, run, inputs, auto, method=COREML_SENSITIVITY_METHOD,
                                   progress=progress)


class KeepFloat:
    """What edgevit.export.coreml's W8A8 asks of ``--keep-float``: ``choose`` the float layers of a converted model
    (their MIL op names and the manifest's mixed_precision record) and measure the ``written`` package.

    ``keep``: layer names (by hand, or a manifest's record when the validation rebuilds the package) or "auto" with
    ``photos`` (edgevit.validate.inputs items: the scan inputs), ``goal_db`` and ``budget_s``."""

    def __init__(self, keep: list[str] | str, *, photos: list | None = None, goal_db: float = 35.0,
                 budget_s: float = 600.0, progress: Callable[[str], None] | None = None):
        self.keep, self.photos, self.goal_db, self.budget_s = keep, photos or [], goal_db, budget_s
        self.progress = progress
        self._inputs: list = []
        self._reference: np.ndarray | None = None

    def _scan_inputs(self, loaded: LoadedProgram, module) -> tuple[list, np.ndarray]:
        import torch

        feature = loaded.description.input[0]
        image = feature.type.WhichOneof("Type") == "imageType"
        with torch.no_grad():
            if image:
                inputs = [item.image for item in self.photos]
                pixels = [torch.from_numpy(np.asarray(i, np.float32)).permute(2, 0, 1)[None].contiguous()
                          for i in inputs]
                reference = torch.cat([module.logits(p) for p in pixels]).numpy()
            else:
                inputs = [item.tensor.numpy() for item in self.photos]
                reference = torch.cat([module(item.tensor) for item in self.photos]).numpy()
        return inputs, reference

    def choose(self, mlmodel, activation_stats: dict, modules: dict[str, str], module) -> tuple[list[str], dict]:
        from edgevit.export import sensitivity
        from edgevit.mil.load import load_program

        loaded = load_program(mlmodel)  # once: the layers, the scan inputs and the emulation all read it
        layers = op_layers(loaded.main, modules)
        if self.keep != "auto":
            sensitivity.check_layer_names(list(self.keep), layers)
            mixed = {"keep_float": list(self.keep), "chosen_by": "--keep-float (by hand)"}
        else:
            if not self.photos:
                raise ValueError("--keep-float auto needs the scan inputs (photos)")
            self._inputs, self._reference = self._scan_inputs(loaded, module)
            mixed = auto_keep_float(mlmodel, activation_stats, layers, self._inputs, self._reference,
                                    {"goal_db": self.goal_db, "budget_s": self.budget_s}, self.progress, loaded)
        mixed["quantized_layers"] = len(layers)
        mixed["float_ops"] = float_op_names(layers, mixed["keep_float"])
        return mixed["float_ops"], mixed

    def written(self, compressed) -> float | None:
        """The written package's logits PSNR on the scan inputs (its own fp16 storage, interpreter), after auto."""
        if self._reference is None:
            return None
        from edgevit.export.sensitivity import psnr_db
        from edgevit.mil.load import logits_var
        from edgevit.mil.predict import MilModel

        model = MilModel(compressed)
        name, value = model.input_names[0], logits_var(model.loaded.main)
        rows = [np.asarray(model.predict({name: x}, extra_outputs=(value,))[value], np.float32).reshape(1, -1)
                for x in self._inputs]
        return round(psnr_db(self._reference, np.concatenate(rows)), 2)
