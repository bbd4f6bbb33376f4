"""Which layers to keep in float: each quantized layer's effect on logits PSNR, measured on an emulation.

After PT2E calibration (edgevit.export.quantize) every quantized edge of the graph - an activation or weight
flowing into an op through an observer - is replaced by its own fake-quant node carrying that observer's
qparams (what ``convert_pt2e`` will store). A layer (a module of the prepared model) is "float" when the
fake-quant nodes on its inputs are switched off, which is exactly what ``keep_layers_float`` does to the observed
graph before the real convert. So the scan costs one forward per layer on a few inputs, not one lowering each:

* ``scan``: quantize one at a time - the logits PSNR (against the fp32 model) with only that layer in int8, per
  layer; the ranking is by the noise each layer adds alone (its share of their sum). Why not leave one out: when the
  int8 error is spread over many layers (random-init fastvit-t8: all-int8 28.5 dB, no single layer worse than 35 dB
  alone), removing any one changes the sum by little, the ranking is noise, and keeping the first 38 layers of it
  in float reached 25.6 dB. Independent roundings add their noise, so one-at-a-time costs rank and sum.
* ``choose``: the fewest layers, most costly first, whose removal brings the predicted noise (the sum of what is
  left) under the goal; then checked on the emulation, adding the next layer while it misses.
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
    """20*log10(max|ref| / RMSE), the definition edgevit's parity metrics use; -inf when ``actual`` is not finite
    (an emulated program that overflowed: the worst outcome, not a NaN that would poison a ranking)."""
    ref, act = np.asarray(reference, np.float64), np.asarray(actual, np.float64)
    if not np.isfinite(act).all():
        return -math.inf
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


def _reads_int8_weights(node: torch.fx.Node, observed: torch.fx.GraphModule) -> bool:
    """Whether ``node`` takes a per-channel-observed weight (an int8 conv or linear once converted)."""
    return any(is_observer(a, observed) and isinstance(a.args[0], torch.fx.Node) and a.args[0].op == "get_attr"
               and hasattr(observed.get_submodule(str(a.target)), "ch_axis") for a in node.all_input_nodes)


def int8_source(observer: torch.fx.Node, observed: torch.fx.GraphModule) -> str | None:
    """The layer of the int8 conv/linear whose output ``observer`` observes (through ops fused after it, such as its
    relu, which read it unobserved), or None."""
    node = observer.args[0]
    while isinstance(node, torch.fx.Node) and node.op == "call_function":
        if _reads_int8_weights(node, observed):
            return module_of(node)
        if any(is_observer(a, observed) for a in node.all_input_nodes) or not node.args:
            return None
        node = node.args[0]
    return None


def keep_layers_float(observed: torch.fx.GraphModule, keep: list[str]) -> int:
    """Cut the observers on the inputs of every op of the ``keep`` modules (in place), so ``convert_pt2e`` leaves
    those ops in float (float weights, float activations in); returns the number of edges cut.

    An input that an int8 conv/linear outside ``keep`` produces stays quantized: the kept op reads it dequantized.
    XNNPACK runs a quantized conv only with a quantized output, and a float reader of its raw output leaves it
    outside the delegate, where the program cannot be built (measured on fastvit-t8 with --keep-float auto: "Missing
    out variants: quantized_decomposed::dequantize_per_channel")."""
    cut = 0
    wanted = set(keep)
    for node in list(observed.graph.nodes):
        if node.op != "call_function" or module_of(node) not in wanted:
            continue
        for arg in list(node.all_input_nodes):
            if not is_observer(arg, observed):
                continue
            source = int8_source(arg, observed)
            if source is None or source in wanted:
                node.replace_input_with(arg, arg.args[0])
                cut += 1
    observed.graph.eliminate_dead_code()
    observed.recompile()
    return cut


class _FakeQuant(nn.Module):
    """One quantized edge: quantize-dequantize with the observer's qparams, or pass-through when off."""

    def __init__(self, observer: nn.Module, source: str | None = None):
        super().__init__()
        self.source = source  # the int8 conv/linear layer whose output this edge quantizes (int8_source), if any
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
            for fake in fakes:  # as keep_layers_float: an int8 conv's output stays int8 for a float reader
                fake.on = layer not in layers or (fake.source is not None and fake.source not in layers)

    def logits(self, inputs: list[torch.Tensor]) -> np.ndarray:
        with torch.no_grad():
            return torch.cat([self.module(x) for x in inputs]).numpy()


def emulate(observed: torch.fx.GraphModule) -> Emulation:
    """A copy of the calibrated ``observed`` graph in which every observer->consumer edge is its own fake-quant."""
    import copy

    gm = copy.deepcopy(observed)
    emulation = Emulation(gm)
    count = 0
    observers = [n for n in gm.graph.nodes if is_observer(n, gm)]
    sources = {obs: int8_source(obs, gm) for obs in observers}  # before any observer becomes a fake-quant
    for obs in observers:
        observer = gm.get_submodule(str(obs.target))
        for user in list(obs.users):
            name = f"edgevit_fake_quant_{count}"
            count += 1
            fake = _FakeQuant(observer, sources[obs])
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
    psnr_db: float  # logits PSNR with only this layer in int8
    share: float  # its noise (10^(-PSNR/10)) over the sum of every layer's
    floor_noise: float = 0.0  # the noise with every layer float (CoreML W8A8's int8 weights): not this layer's

    @property
    def noise(self) -> float:
        return max(10.0 ** (-self.psnr_db / 10.0) - self.floor_noise, 0.0)

    def to_json(self) -> dict:  # a non-finite result (the emulation overflowed with this layer int8) is null
        return {"layer": self.layer, "ops": self.ops,
                "psnr_db_alone_int8": round(self.psnr_db, 2) if math.isfinite(self.psnr_db) else None,
                "noise_share": round(self.share, 4) if math.isfinite(self.share) else None}


Runner = Callable[[set[str]], np.ndarray]  # the layers kept float -> logits of the emulated program on the inputs
PT2E_METHOD = ("quantize one at a time on the PT2E emulation (fake-quant with the calibrated qparams), logits PSNR "
               "against the fp32 model; ranked by each layer's share of the summed noise")


@dataclass
class Sensitivity:
    reference: np.ndarray
    inputs: list
    int8_psnr_db: float
    ranking: list[LayerEffect]  # most costly first
    seconds: float
    method: str = PT2E_METHOD
    run: Runner | None = field(default=None, repr=False)  # the emulation scanned, for choose to reuse
    ceiling_db: float | None = None  # every layer float: inf for the fp32 model; CoreML W8A8 keeps int8 weights

    def to_json(self, top: int = 20) -> dict:
        return {"method": self.method, "inputs": len(self.inputs), "int8_psnr_db": round(self.int8_psnr_db, 2),
                "layers_scanned": len(self.ranking), "seconds": round(self.seconds, 1),
                **({"every_layer_float_psnr_db": round(self.ceiling_db, 2)} if self.ceiling_db is not None
                   and math.isfinite(self.ceiling_db) else {}),
                "ranking_top": [e.to_json() for e in self.ranking[:top]]}


def rank_layers(layers: dict[str, list[str]], reference: np.ndarray, run: Runner, inputs: list, *, method: str,
                budget_s: float = DEFAULT_BUDGET_S, progress: Callable[[str], None] | None = None) -> Sensitivity:
    """Each layer's own cost (only it in int8, through ``run``); UsageError before the scan when the estimate (one
    emulated pass per layer) exceeds ``budget_s``."""
    say = progress or (lambda _m: None)
    start = time.perf_counter()
    every = set(layers)
    t0 = time.perf_counter()
    base = psnr_db(reference, run(set()))
    estimate = (time.perf_counter() - t0) * len(layers)
    if estimate > budget_s:
        raise UsageError(f"--keep-float auto: the sensitivity scan of {len(layers)} quantized layers would take about "
                         f"{estimate:.0f} s here (one emulated pass on {len(inputs)} inputs per layer), over the "
                         f"budget of {budget_s:.0f} s. Name the layers to keep in float by hand (--keep-float "
                         f"LAYER,...; e.g. {', '.join(list(layers)[-3:])}), or raise --scan-budget")
    say(f"sensitivity scan: {len(layers)} quantized layers, all-int8 logits PSNR {base:.1f} dB, about "
        f"{estimate:.0f} s")
    ceiling = psnr_db(reference, run(every))  # every layer float: the fp32 model, or what stays quantized anyway
    floor_noise = 10.0 ** (-ceiling / 10.0)
    if math.isfinite(ceiling):
        say(f"  every layer float: {ceiling:.1f} dB (the ceiling no choice of layers passes: fp16 storage, or what "
            "stays quantized besides them)")
    effects = []
    for i, (layer, ops) in enumerate(layers.items()):
        effects.append(LayerEffect(layer, ops, psnr_db(reference, run(every - {layer})), 0.0, floor_noise))
        if progress and (i + 1) % 20 == 0:
            say(f"  scanned {i + 1}/{len(layers)} layers")
    total = sum(e.noise for e in effects if math.isfinite(e.noise)) or 1.0
    for effect in effects:  # a layer whose int8 form overflows alone has no share: it ranks first, as infinite
        effect.share = effect.noise / total
    effects.sort(key=lambda e: -e.noise)
    say("layers ranked by the noise each adds alone in int8 (logits PSNR with only it quantized, share of the sum):")
    for rank, effect in enumerate(effects[:10], 1):
        say(f"  {rank:>2}. {effect.layer} ({', '.join(sorted(set(effect.ops)))}): {effect.psnr_db:.1f} dB, "
            f"{effect.share:.0%}")
    return Sensitivity(reference, inputs, base, effects, time.perf_counter() - start, method, ceiling_db=ceiling)


# The scan runs on the whole photos; the verdict judges 12 views of them (halves and flips too), where three seed
# models' choices measured 34.90-34.98 dB for a 35 dB goal: the choice aims this much above the goal
AIM_MARGIN_DB = 0.5
# When every layer float still misses the goal (CoreML W8A8 keeps int8 weights: random-init fastvit-t8's reach only
# 32.4 dB), the choice aims this far below that ceiling instead: activation noise about a quarter of the rest
CEILING_MARGIN_DB = 1.0


def choose_layers(sensitivity: Sensitivity, goal_db: float, run: Runner,
                  progress: Callable[[str], None] | None = None) -> tuple[list[str], float]:
    """The fewest layers, most costly first, to keep in float for ``goal_db`` (aiming AIM_MARGIN_DB above it):
    (layers, emulated PSNR). The prediction (the noise of the layers left in int8 adds up) gives a first count; the
    emulation then bisects below it (the prediction overshoots: roundings partly cancel) or steps above it while it
    misses. When even every layer in float misses, all are kept and the PSNR reached is returned."""
    say = progress or (lambda _m: None)
    ranking = sensitivity.ranking
    if sensitivity.int8_psnr_db >= goal_db or not ranking:
        return [], sensitivity.int8_psnr_db
    goal_db += AIM_MARGIN_DB
    ceiling = sensitivity.ceiling_db if sensitivity.ceiling_db is not None else math.inf
    if ceiling < goal_db:  # what stays quantized whatever the choice (int8 weights) already costs more than the goal
        aim = ceiling - CEILING_MARGIN_DB
        say(f"  every layer float reaches only {ceiling:.1f} dB (what stays quantized besides these layers costs "
            f"that much): aiming at {aim:.1f} dB instead of {goal_db - AIM_MARGIN_DB:g} dB")
        if sensitivity.int8_psnr_db >= aim:
            return [], sensitivity.int8_psnr_db
        goal_db = aim
    allowed = 10.0 ** (-goal_db / 10.0) - 10.0 ** (-ceiling / 10.0)  # the layers' share of the noise allowed
    left = sum(e.noise for e in ranking if math.isfinite(e.noise))
    count = sum(1 for e in ranking if not math.isfinite(e.noise))  # overflowing alone in int8: always kept float
    while count < len(ranking) and left > allowed:
        left -= ranking[count].noise
        count += 1
    tried: dict[int, tuple[list[str], float]] = {}

    def measure(n: int) -> float:
        if n not in tried:
            kept = [e.layer for e in ranking[:n]]
            tried[n] = (kept, psnr_db(sensitivity.reference, run(set(kept))))
            say(f"  float: {n} layer(s), logits PSNR {tried[n][1]:.1f} dB")
        return tried[n][1]

    count = max(count, 1)
    while measure(count) < goal_db and count < len(ranking):
        count += 1
    low, high = 0, count  # measure(high) reaches the goal (or high is every layer); low does not
    while high - low > 1:
        middle = (low + high) // 2
        if measure(middle) >= goal_db:
            high = middle
        else:
            low = middle
    return tried[high]


def auto_choice(layers: dict[str, list[str]], reference: np.ndarray, run: Runner, inputs: list, auto: dict, *,
                method: str, progress: Callable[[str], None] | None = None) -> dict:
    """rank_layers then choose_layers through ``run``, against ``reference`` on ``inputs``, for ``auto``
    ({"goal_db", "budget_s"}): the manifest's mixed_precision record of a --keep-float auto choice."""
    clock = time.perf_counter()
    scanned = rank_layers(layers, reference, run, inputs, method=method,
                          budget_s=auto.get("budget_s", DEFAULT_BUDGET_S), progress=progress)
    kept, reached = choose_layers(scanned, auto["goal_db"], run, progress)
    return {"keep_float": kept, "chosen_by": "--keep-float auto (sensitivity scan)", "goal_psnr_db": auto["goal_db"],
            "emulated_psnr_db": round(reached, 2), "goal_reached": reached >= auto["goal_db"],
            "sensitivity": scanned.to_json(), "seconds": round(time.perf_counter() - clock, 1)}


def _pt2e_runner(observed: torch.fx.GraphModule, inputs: list[torch.Tensor]) -> Runner:
    emulation = emulate(observed)

    def run(float_layers: set[str]) -> np.ndarray:
        emulation.set_float(float_layers)
        return emulation.logits(inputs)

    return run


def scan(observed: torch.fx.GraphModule, reference_model: nn.Module, inputs: list[torch.Tensor], *,
         budget_s: float = DEFAULT_BUDGET_S, progress: Callable[[str], None] | None = None) -> Sensitivity:
    """rank_layers on the PT2E emulation of ``observed`` against ``reference_model`` (the fp32 prepared model)."""
    with torch.no_grad():
        reference = torch.cat([reference_model(x) for x in inputs]).numpy()
    run = _pt2e_runner(observed, inputs)
    scanned = rank_layers(quantized_layers(observed), reference, run, inputs, method=PT2E_METHOD, budget_s=budget_s,
                          progress=progress)
    scanned.run = run
    return scanned


def choose(observed: torch.fx.GraphModule, sensitivity: Sensitivity, goal_db: float,
           progress: Callable[[str], None] | None = None) -> tuple[list[str], float]:
    """choose_layers on the PT2E emulation of ``observed`` (the scan's, when it has one: one deep copy, not two)."""
    return choose_layers(sensitivity, goal_db, sensitivity.run or _pt2e_runner(observed, sensitivity.inputs), progress)
