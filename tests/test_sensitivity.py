"""Sensitivity-guided mixed precision for the int8 .pte (issue 24): leave-one-out ranking on the PT2E emulation,
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
    assert scanned.ranking[0].layer == "spiky" and scanned.ranking[0].gain_db > 3
    assert all(e.gain_db < 1.5 for e in scanned.ranking[1:])
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


def test_keep_float_outside_the_int8_pte_is_refused():
    from edgevit.base.arguments import check_convert

    with pytest.raises(UsageError, match="--keep-float applies to --target executorch --quantize int8"):
        check_convert("swiftformer-xs", "onnx", "out", quantize="int8", keep_float="auto")
    with pytest.raises(UsageError, match="--keep-float applies"):
        check_convert("swiftformer-xs", "executorch", "out", keep_float="auto")
    args = check_convert("swiftformer-xs", "executorch", "out", quantize="int8", keep_float="a.b, c")
    assert args.keep_float == ["a.b", "c"]
    assert np.isfinite(args.scan_budget)
