"""Sensitivity-guided mixed precision for the int8 .pte (issue 24): each layer quantized alone on the PT2E emulation,
the fewest float layers that reach the goal, and the real convert honouring them. A toy model with one layer whose
input has an outlier channel (per-tensor int8 cannot hold it and the small channels at once) is the wrong input
the int8 model must fail and the right one the mixed model must pass.
"""

from __future__ import annotations

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
