"""Which layers to keep in float: each quantized layer's effect on logits PSNR, measured on an emulation.

After PT2E calibration (edgevit.export.quantize) every quantized edge of the graph - an activation or weight
flowing into an op through an observer - is replaced by its own fake-quant node carrying that observer's
qparams (what ``convert_pt2e`` will store). A layer (a module of the prepared model) is "float" when the
fake-quant nodes on its inputs are switched off, which is exactly what ``keep_layers_float`` does to the observed
graph before the real convert. So the scan costs one forward per layer on a few inputs, not one lowering each:

* ``scan``: leave one out - the logits PSNR (against the fp32 model) with only that layer in float, per layer;
  the ranking is by PSNR gained over the all-int8 model.
* ``choose``: the fewest layers, taken in ranking order, whose float versions together reach the goal.
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from edgevit.base.errors import UsageError
from edgevit.export.mil_inspect import module_of

DEFAULT_MIN_PSNR_DB = 35.0  # the goal of --keep-float auto, on logits
DEFAULT_BUDGET_S = 600.0


def psnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    """20*log10(max|ref| / RMSE), the definition edgevit's parity metrics use."""
    ref, act = np.asarray(reference, np.float64), np.asarray(actual, np.float64)
    rmse = math.sqrt(float(np.mean((act - ref) ** 2)))
    peak = float(np.max(np.abs(ref)))
    return math.inf if rmse == 0 else 20 * math.log10(peak / rmse) if peak > 0 else -math.inf


def centered(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values - values.mean(axis=0, keepdims=True)


def is_observer(node: torch.fx.Node, gm: torch.fx.GraphModule) -> bool:
    if node.op != "call_module":
        return False
    module = gm.get_submodule(str(node.target))
    return hasattr(module, "calculate_qparams")


def quantized_layers(observed: torch.fx.GraphModule) -> dict[str, list[str]]:
    """Module path -> the ops of it that take an observed (to be quantized) input, in graph order."""
    layers: dict[str, list[str]] = {}
    for node in observed.graph.nodes:
        if node.op != "call_function":
            continue
        if any(isinstance(a, torch.fx.Node) and is_observer(a, observed) for a in node.all_input_nodes):
            name = getattr(node.target, "__name__", str(node.target)).split(".")[0]
            layers.setdefault(module_of(node), []).append(name)
    return layers


def check_layer_names(names: list[str], layers: dict[str, list[str]]) -> None:
    """UsageError naming the nearest quantized layers for each name that is not one."""
    unknown = [n for n in names if n not in layers]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, list(layers), n=3, cutoff=0.5)
        hints.append(f"{name!r}" + (f" (nearest: {', '.join(close)})" if close else ""))
    raise UsageError(f"--keep-float: no quantized layer named {'; '.join(hints)}. The {len(layers)} quantized "
                     f"layers are module paths of the prepared model, e.g. {', '.join(list(layers)[:3])}; "
                     "`--keep-float auto` prints them ranked by their effect on the logits")


def keep_layers_float(observed: torch.fx.GraphModule, keep: list[str]) -> int:
    """Cut the observers on the inputs of every op of the ``keep`` modules (in place), so ``convert_pt2e`` leaves
    those ops in float (float weights, float activations in); returns the number of edges cut."""
    cut = 0
    wanted = set(keep)
    for node in list(observed.graph.nodes):
        if node.op != "call_function" or module_of(node) not in wanted:
            continue
        for arg in list(node.all_input_nodes):
            if is_observer(arg, observed):
                node.replace_input_with(arg, arg.args[0])
                cut += 1
    observed.graph.eliminate_dead_code()
    observed.recompile()
    return cut


class _FakeQuant(nn.Module):
    """One quantized edge: quantize-dequantize with the observer's qparams, or pass-through when off."""

    def __init__(self, observer: nn.Module):
        super().__init__()
        scale, zero_point = observer.calculate_qparams()
        self.register_buffer("scale", scale.float())
        self.register_buffer("zero_point", zero_point.int())
        self.per_channel = scale.numel() > 1 or getattr(observer, "ch_axis", None) is not None and hasattr(
            observer, "min_vals")
        self.axis = int(getattr(observer, "ch_axis", 0))
        self.qmin, self.qmax = int(observer.quant_min), int(observer.quant_max)
        self.on = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.on:
            return x
        if self.per_channel:
            return torch.fake_quantize_per_channel_affine(x, self.scale, self.zero_point, self.axis, self.qmin,
                                                          self.qmax)
        return torch.fake_quantize_per_tensor_affine(x, float(self.scale), int(self.zero_point), self.qmin,
                                                     self.qmax)


@dataclass
class Emulation:
    """The calibrated graph with one switchable fake-quant per quantized edge, grouped by consumer layer."""

    module: torch.fx.GraphModule
    edges: dict[str, list[_FakeQuant]] = field(default_factory=dict)

    def set_float(self, layers: set[str]) -> None:
        for layer, fakes in self.edges.items():
            for fake in fakes:
                fake.on = layer not in layers

    def logits(self, inputs: list[torch.Tensor]) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([self.module(x) for x in inputs]).numpy()


def emulate(observed: torch.fx.GraphModule) -> Emulation:
    """A copy of the calibrated ``observed`` graph in which every observer->consumer edge is its own fake-quant."""
    import copy

    gm = copy.deepcopy(observed)
    emulation = Emulation(gm)
    count = 0
    for obs in [n for n in gm.graph.nodes if is_observer(n, gm)]:
        observer = gm.get_submodule(str(obs.target))
        for user in list(obs.users):
            name = f"edgevit_fake_quant_{count}"
            count += 1
            fake = _FakeQuant(observer)
            gm.add_submodule(name, fake)
            with gm.graph.inserting_before(user):
                edge = gm.graph.call_module(name, (obs.args[0],))
            user.replace_input_with(obs, edge)
            layer = module_of(user) if user.op == "call_function" else "(output)"
            emulation.edges.setdefault(layer, []).append(fake)
        gm.graph.erase_node(obs)
    gm.recompile()
    return emulation


@dataclass
class LayerEffect:
    layer: str
    ops: list[str]
    psnr_db: float  # logits PSNR with only this layer in float
    gain_db: float  # over the all-int8 emulation

    def to_json(self) -> dict:
        return {"layer": self.layer, "ops": self.ops, "psnr_db": round(self.psnr_db, 2),
                "gain_db": round(self.gain_db, 2)}


@dataclass
class Sensitivity:
    reference: np.ndarray
    inputs: list[torch.Tensor]
    int8_psnr_db: float
    ranking: list[LayerEffect]
    seconds: float

    def to_json(self, top: int = 20) -> dict:
        return {"method": "leave one out on the PT2E emulation (fake-quant with the calibrated qparams), logits PSNR "
                          "against the fp32 model", "inputs": len(self.inputs),
                "int8_psnr_db": round(self.int8_psnr_db, 2), "layers_scanned": len(self.ranking),
                "seconds": round(self.seconds, 1), "ranking_top": [e.to_json() for e in self.ranking[:top]]}


def scan(observed: torch.fx.GraphModule, reference_model: nn.Module, inputs: list[torch.Tensor], *,
         budget_s: float = DEFAULT_BUDGET_S, progress: Callable[[str], None] | None = None) -> Sensitivity:
    """Leave-one-out sensitivity of every quantized layer; UsageError before the scan when the estimate (one
    all-int8 forward pass per layer) exceeds ``budget_s``."""
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    with torch.no_grad():
        reference = torch.cat([reference_model(x) for x in inputs]).numpy()
    layers = quantized_layers(observed)
    emulation = emulate(observed)
    emulation.set_float(set())
    t0 = time.perf_counter()
    base = psnr_db(reference, emulation.logits(inputs))
    estimate = (time.perf_counter() - t0) * len(layers)
    if estimate > budget_s:
        raise UsageError(f"--keep-float auto: the sensitivity scan of {len(layers)} quantized layers would take about "
                         f"{estimate:.0f} s here (one emulated pass on {len(inputs)} inputs per layer), over the "
                         f"budget of {budget_s:.0f} s. Name the layers to keep in float by hand (--keep-float "
                         f"LAYER,...; e.g. {', '.join(list(layers)[-3:])}), or raise --scan-budget")
    say(f"sensitivity scan: {len(layers)} quantized layers, all-int8 logits PSNR {base:.1f} dB, about "
        f"{estimate:.0f} s")
    effects = []
    for i, (layer, ops) in enumerate(layers.items()):
        emulation.set_float({layer})
        value = psnr_db(reference, emulation.logits(inputs))
        effects.append(LayerEffect(layer, ops, value, value - base))
        if progress and (i + 1) % 20 == 0:
            say(f"  scanned {i + 1}/{len(layers)} layers")
    effects.sort(key=lambda e: -e.gain_db)
    say("layers ranked by logits PSNR gained when kept in float (leave one out):")
    for rank, effect in enumerate(effects[:10], 1):
        say(f"  {rank:>2}. {effect.layer} ({', '.join(sorted(set(effect.ops)))}): {effect.psnr_db:.1f} dB "
            f"({effect.gain_db:+.1f})")
    return Sensitivity(reference, inputs, base, effects, time.perf_counter() - start)


def choose(observed: torch.fx.GraphModule, sensitivity: Sensitivity, goal_db: float,
           progress: Callable[[str], None] | None = None) -> tuple[list[str], float]:
    """The fewest layers, in ranking order, that together reach ``goal_db``: (layers, emulated PSNR). When no
    prefix reaches it, every layer with a positive gain is kept and the PSNR reached is returned."""
    say = progress or (lambda _m: None)
    if sensitivity.int8_psnr_db >= goal_db:
        return [], sensitivity.int8_psnr_db
    emulation = emulate(observed)
    kept: list[str] = []
    value = sensitivity.int8_psnr_db
    for effect in sensitivity.ranking:
        if effect.gain_db <= 0:
            break
        kept.append(effect.layer)
        emulation.set_float(set(kept))
        value = psnr_db(sensitivity.reference, emulation.logits(sensitivity.inputs))
        say(f"  float: {len(kept)} layer(s), logits PSNR {value:.1f} dB")
        if value >= goal_db:
            break
    return kept, value
