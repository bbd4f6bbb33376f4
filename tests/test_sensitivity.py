"""Sensitivity-guided mixed precision for the int8 .pte (issue 24): each layer quantized alone on the PT2E emulation,
the fewest float layers that reach the goal, and the real convert honouring them. A toy model with one layer whose
input has an outlier channel (per-tensor int8 cannot hold it and the small channels at once) is the wrong input
the int8 model must fail and the right one the mixed model must pass.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from edgevit.base.errors import UsageError
from edgevit.export import sensitivity
from edgevit.export.quantize import observe_pt2e, quantize_pt2e

GOAL = 28.0  # measured: all-int8 24.8 dB, with spiky in float 29.7 dB


class Outlier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.mix = nn.Conv2d(16, 16, 1)
        self.spiky = nn.Conv2d(16, 16, 3, padding=1)
        self.head = nn.Linear(16, 10)
        gain = torch.ones(16, 1, 1)
        gain[0] = 400.0  # one channel 400x the others: per-tensor int8 of spiky's input rounds the rest away
        self.register_buffer("gain", gain)
        with torch.no_grad():
            self.spiky.weight[:, 0] *= 1e-3  # ...while its contribution to the output stays small

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        y = self.mix(y) * self.gain
        y = torch.relu(self.spiky(y))
        return self.head(y.mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def toy():
    torch.manual_seed(0)
    model = Outlier().eval()
    calibration = [torch.randn(1, 3, 16, 16) for _ in range(8)]
    inputs = [torch.randn(1, 3, 16, 16) for _ in range(6)]
    observed, _ = observe_pt2e(model, calibration[0], calibration)
    return model, calibration, inputs, observed


def _psnr(model, graph, inputs) -> float:
    with torch.no_grad():
        ref = torch.cat([model(x) for x in inputs]).numpy()
        out = torch.cat([graph(x) for x in inputs]).numpy()
    return sensitivity.psnr_db(ref, out)


def test_scan_ranks_the_outlier_layer_first_and_choose_keeps_only_it(toy):
    model, calibration, inputs, observed = toy
    layers = sensitivity.quantized_layers(observed)
    assert {"stem", "mix", "spiky", "head"} <= set(layers)
    scanned = sensitivity.scan(observed, model, inputs)
    assert scanned.ranking[0].layer == "spiky" and scanned.ranking[0].share > 0.5, scanned.to_json()
    assert all(e.psnr_db > scanned.ranking[0].psnr_db + 3 for e in scanned.ranking[1:])
    assert scanned.int8_psnr_db < GOAL  # the wrong input: all-int8 misses the goal
    kept, reached = sensitivity.choose(observed, scanned, GOAL)
    assert kept == ["spiky"] and reached >= GOAL
    assert [e["layer"] for e in scanned.to_json()["ranking_top"]][0] == "spiky"


def test_emulation_matches_the_real_convert(toy):
    """The scan's fake-quant emulation computes what convert_pt2e stores: same PSNR, all-int8 and mixed."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    model, calibration, inputs, _ = toy
    for keep in ([], ["spiky"]):
        observed, _ = observe_pt2e(model, calibration[0], calibration)
        emulation = sensitivity.emulate(observed)
        emulation.set_float(set(keep))
        emulated = sensitivity.psnr_db(torch.cat([model(x) for x in inputs]).detach().numpy(),
                                       emulation.logits(inputs))
        sensitivity.keep_layers_float(observed, keep)
        assert _psnr(model, convert_pt2e(observed), inputs) == pytest.approx(emulated, abs=0.5)


def test_keep_float_auto_through_quantize_pt2e_records_the_choice(toy):
    model, calibration, inputs, _ = toy
    converted, float_ops, mixed = quantize_pt2e(model, calibration[0], calibration,
                                                auto_keep_float={"inputs": inputs, "goal_db": GOAL})
    assert mixed["keep_float"] == ["spiky"] and mixed["goal_reached"] and mixed["edges_kept_float"] >= 2
    assert mixed["sensitivity"]["ranking_top"][0]["layer"] == "spiky"
    assert any(item["module"] == "spiky" and item["op"] == "conv2d" for item in float_ops)
    assert not any(item["module"] == "stem" for item in float_ops)
    assert _psnr(model, converted, inputs) >= GOAL - 0.5
    by_hand = quantize_pt2e(model, calibration[0], calibration, keep_float=["spiky"])[2]
    assert by_hand == {"keep_float": ["spiky"], "chosen_by": "--keep-float (by hand)",
                       "edges_kept_float": mixed["edges_kept_float"], "quantized_layers": mixed["quantized_layers"]}


def test_unknown_layer_suggests_the_nearest_names(toy):
    model, calibration, *_ = toy
    with pytest.raises(UsageError, match=r"'spikey' \(nearest: spiky\)"):
        quantize_pt2e(model, calibration[0], calibration, keep_float=["spikey"])


def test_scan_over_budget_says_how_long_and_offers_keep_float_by_hand(toy):
    model, _, inputs, observed = toy
    with pytest.raises(UsageError, match=r"would take about \d+ s.*--keep-float LAYER"):
        sensitivity.scan(observed, model, inputs, budget_s=1e-6)


def test_keep_float_outside_one_quantized_target_is_refused():
    from edgevit.base.arguments import check_convert

    with pytest.raises(UsageError, match="--keep-float applies to one quantized target.*--compress w8a8 with"):
        check_convert("swiftformer-xs", "coreml", "out", compress="w8", keep_float="auto")
    assert check_convert("swiftformer-xs", "coreml", "out", compress="w8a8", keep_float="auto").keep_float == "auto"
    with pytest.raises(UsageError, match="--keep-float applies"):
        check_convert("swiftformer-xs", "executorch", "out", keep_float="auto")
    with pytest.raises(UsageError, match="convert the other targets separately"):
        check_convert("swiftformer-xs", ["executorch", "onnx"], "out", quantize="int8", keep_float="auto")
    args = check_convert("swiftformer-xs", "executorch", "out", quantize="int8", keep_float="a.b, c")
    assert args.keep_float == ["a.b", "c"]
    assert check_convert("swiftformer-xs", "onnx", "out", quantize="int8", keep_float="auto").keep_float == "auto"
    assert np.isfinite(args.scan_budget)


class Spread(nn.Module):
    """Eight layers whose inputs each carry one outlier channel: the int8 error is spread over all of them, so
    removing any one changes the total by little (what defeated a leave-one-out ranking on fastvit-t8)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, padding=1)
        self.blocks = nn.ModuleList(nn.Conv2d(16, 16, 3, padding=1) for _ in range(8))
        self.head = nn.Linear(16, 10)
        gain = torch.ones(16, 1, 1)
        gain[0] = 60.0
        self.register_buffer("gain", gain)
        with torch.no_grad():
            for block in self.blocks:
                block.weight[:, 0] /= 60.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.stem(x))
        for block in self.blocks:
            y = y + torch.relu(block(y * self.gain))
        return self.head(y.mean(dim=(2, 3)))


def test_error_spread_over_many_layers_is_ranked_by_each_layers_own_noise():
    """The goal lies between all-int8 and all-float; choose reaches it with a subset, the emulation confirms it, and
    the noise shares of the ranking add up to one."""
    torch.manual_seed(0)
    model = Spread().eval()
    calibration = [torch.randn(1, 3, 16, 16) for _ in range(8)]
    inputs = [torch.randn(1, 3, 16, 16) for _ in range(6)]
    observed, _ = observe_pt2e(model, calibration[0], calibration)
    scanned = sensitivity.scan(observed, model, inputs)
    assert sum(e.share for e in scanned.ranking) == pytest.approx(1.0)
    blocks = [e for e in scanned.ranking if e.layer.startswith("blocks.")]
    assert len(blocks) >= 8 and max(e.share for e in blocks) < 0.5  # no single layer dominates
    goal = scanned.int8_psnr_db + 6
    kept, reached = sensitivity.choose(observed, scanned, goal)
    print(f"all-int8 {scanned.int8_psnr_db:.1f} dB; goal {goal:.1f} dB reached {reached:.1f} dB with {len(kept)} "
          f"of {len(scanned.ranking)} layers float")
    assert reached >= goal and 1 < len(kept) < len(scanned.ranking)
    emulation = sensitivity.emulate(observed)  # the wrong choice misses: as many layers, the least costly ones
    emulation.set_float({e.layer for e in scanned.ranking[-len(kept):]})
    with torch.no_grad():
        reference = torch.cat([model(x) for x in inputs]).numpy()
    assert sensitivity.psnr_db(reference, emulation.logits(inputs)) < goal


class Chain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1)
        self.c = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c(torch.relu(self.b(self.a(x))))


def _lower(converted: torch.fx.GraphModule, example: torch.Tensor) -> bytes:
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    program = torch.export.export(converted, (example,))
    return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer


def test_a_float_layer_reads_an_int8_conv_dequantized_so_the_program_lowers():
    """Keep b float: a stays int8, and b must read a's int8 output dequantized. Cutting that edge as well (the wrong
    version, measured on fastvit-t8 with --keep-float auto) leaves a quantized conv with a float output outside the
    XNNPACK delegate, and the program cannot be built. The emulation keeps the same edge quantized."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    torch.manual_seed(0)
    model = Chain().eval()
    calibration = [torch.randn(1, 3, 8, 8) for _ in range(4)]
    observed, _ = observe_pt2e(model, calibration[0], calibration)
    for node in list(observed.graph.nodes):  # the wrong version: every observer into b cut
        if node.op == "call_function" and sensitivity.module_of(node) == "b":
            for arg in list(node.all_input_nodes):
                if sensitivity.is_observer(arg, observed):
                    node.replace_input_with(arg, arg.args[0])
    observed.recompile()
    with pytest.raises(Exception, match="Missing out variants"):
        _lower(convert_pt2e(observed), calibration[0])

    converted, float_ops, mixed = quantize_pt2e(model, calibration[0], calibration, keep_float=["b"])
    assert mixed["keep_float"] == ["b"] and len(_lower(converted, calibration[0])) > 0
    assert {item["module"] for item in float_ops} >= {"b"} and "a" not in {item["module"] for item in float_ops}
    observed, _ = observe_pt2e(model, calibration[0], calibration)
    emulation = sensitivity.emulate(observed)
    emulation.set_float({"b"})
    on = [(layer, fake.source) for layer, fakes in emulation.edges.items() for fake in fakes if fake.on]
    assert ("b", "a") in on  # a's output into b stays quantized
    assert not any(layer == "b" and source is None for layer, source in on)  # b's weight is float


def _synthetic(noises: dict[str, float], floor: float = 0.0):
    """A runner whose logits carry independent noise of the given power per int8 layer (and ``floor`` always):
    PSNR arithmetic the choice can be checked against exactly."""
    rng = np.random.default_rng(0)
    reference = np.zeros((4, 1000))
    reference[:, 0] = 1.0  # peak 1: PSNR = -10 log10(noise power)
    unit = {name: rng.standard_normal(reference.shape) for name in [*noises, "(floor)"]}
    for value in unit.values():
        value /= np.sqrt(np.mean(value ** 2))

    def run(float_layers: set[str]) -> np.ndarray:
        out = reference + np.sqrt(floor) * unit["(floor)"]
        for name, power in noises.items():
            if name not in float_layers:
                out = out + np.sqrt(power) * unit[name]
        return out

    return reference, run


def test_the_choice_aims_above_the_goal_and_below_an_unreachable_ceiling():
    """AIM_MARGIN_DB above the goal (the verdict reads more views than the scan); when every layer float still
    misses the goal (what stays quantized anyway, e.g. CoreML's int8 weights), CEILING_MARGIN_DB below that ceiling,
    each layer ranked by its noise beyond the floor."""
    noises = {"a": 10 ** -3.0, "b": 10 ** -3.6, "c": 10 ** -4.2, "d": 10 ** -5.0}
    reference, run = _synthetic(noises)
    scanned = sensitivity.rank_layers({n: ["op"] for n in noises}, reference, run, [0], method="synthetic")
    assert [e.layer for e in scanned.ranking] == ["a", "b", "c", "d"] and math.isinf(scanned.ceiling_db)
    kept, reached = sensitivity.choose_layers(scanned, 40.0, run)
    print(f"goal 40 dB: kept {kept}, {reached:.2f} dB (aim {40 + sensitivity.AIM_MARGIN_DB} dB)")
    assert kept == ["a", "b"] and reached >= 40.0 + sensitivity.AIM_MARGIN_DB  # a float: 34.9 dB; a and b: 41.4 dB

    reference, run = _synthetic(noises, floor=10 ** -3.5)  # every layer float: 35.0 dB
    scanned = sensitivity.rank_layers({n: ["op"] for n in noises}, reference, run, [0], method="synthetic")
    assert abs(scanned.ceiling_db - 35.0) < 0.2 and abs(scanned.ranking[0].noise - 1e-3) < 1e-4
    kept, reached = sensitivity.choose_layers(scanned, 40.0, run)
    print(f"ceiling {scanned.ceiling_db:.2f} dB, goal 40: kept {kept}, {reached:.2f} dB")
    assert reached >= scanned.ceiling_db - sensitivity.CEILING_MARGIN_DB and len(kept) < len(noises)
