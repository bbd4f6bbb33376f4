"""``--compress w8a8 --keep-float`` (issue 24): CoreML W8A8 with the activations of chosen layers left in float.

The toy (tests/test_sensitivity.py's Outlier) has one layer whose input carries an outlier channel: per-tensor int8
cannot hold it and the small channels at once, so the all-int8 package misses the goal and the one with that layer
float reaches it. The scan ranks an emulation (the weight-quantized program, run by edgevit's MIL interpreter with
chosen tensors fake-quantized), so two things are checked against coremltools' own passes, for every subset of the
toy's layers: the tensors the emulation quantizes are the ones the passes quantize, and its logits are the written
package's within a stated tolerance.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_sensitivity import Outlier

from edgevit.base.errors import UsageError
from edgevit.export.coreml import compress_mlmodel, export_coreml, quantize_activations
from edgevit.export.coreml_layers import op_layers, quantizable_ops, wanted_tensors
from edgevit.export.sensitivity import psnr_db
from edgevit.mil import MilModel, load_program
from edgevit.mil.keep_float import KeepFloat, emulation
from edgevit.mil.load import logits_var
from edgevit.mil.ranges import coreml_calibrator

GOAL = 30.0  # measured on this toy: all-int8 22.2 dB; spiky and the fused mix conv float 34.9 dB
EMULATION_TOLERANCE_DB = 0.5  # emulated vs written PSNR against the float model (measured: 0.02 dB)
SPEC = SimpleNamespace(name="outlier-toy", paper=None, input_size=(3, 16, 16), labels=None, mean=(0.5,) * 3,
                       std=(0.25,) * 3)


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    import coremltools as ct

    torch.manual_seed(0)
    model = Outlier().eval()
    calibration = [torch.randn(1, 3, 16, 16) for _ in range(8)]
    inputs = [SimpleNamespace(tensor=torch.randn(1, 3, 16, 16)) for _ in range(6)]
    folder = tmp_path_factory.mktemp("coreml-mixed")
    path = folder / "toy.fp16.mlpackage"
    export_coreml(model, SPEC, path, tensor_input=True)
    mlmodel = ct.models.MLModel(str(path), skip_model_load=True)
    stats, _ = coreml_calibrator([], calibration)(mlmodel)
    from edgevit.export.mil_inspect import module_of, to_exported_program

    program = to_exported_program(model, calibration[0])
    modules = {node.name: module_of(node) for node in program.graph.nodes}
    layers = op_layers(load_program(mlmodel).main, modules)
    with torch.no_grad():
        reference = torch.cat([model(item.tensor) for item in inputs]).numpy()
    return SimpleNamespace(model=model, calibration=calibration, inputs=inputs, folder=folder, mlmodel=mlmodel,
                           stats=stats, modules=modules, layers=layers, reference=reference)


def _logits(mlmodel, inputs) -> np.ndarray:
    model = MilModel(mlmodel)
    name, value = model.input_names[0], logits_var(model.loaded.main)
    return np.concatenate([np.asarray(model.predict({name: i.tensor.numpy()}, extra_outputs=(value,))[value])
                           .reshape(1, -1) for i in inputs])


def _subsets(layers):
    return [set(c) for n in range(len(layers) + 1) for c in itertools.combinations(layers, n)]


def test_layers_are_the_modules_of_the_exported_model(toy):
    """Module paths; coremltools fuses mix's conv with the multiply by the gain after it and names the fused conv
    after the multiply, a top-level op: that layer is the op itself."""
    assert {"stem", "spiky", "head"} < set(toy.layers) and len(toy.layers) == 4, toy.layers
    (fused,) = set(toy.layers) - {"stem", "spiky", "head"}
    assert toy.layers[fused] == [fused] and fused.startswith("mul"), toy.layers


def test_emulated_tensors_are_the_ones_coremltools_quantizes(toy):
    """For every subset of layers kept float: the tensors the real passes put a quantize op on are exactly those
    wanted_tensors predicts for the layers left in int8 (a wrong rule would rank a program nobody writes)."""
    ops = {op.name: op for op in quantizable_ops(load_program(toy.mlmodel).main)}
    for kept in _subsets(toy.layers):
        float_ops = [n for layer in kept for n in toy.layers[layer]]
        written = quantize_activations(toy.mlmodel, toy.stats, tuple(float_ops))
        real = {op.inputs["input"].name for op in load_program(written).main.operations if op.op_type == "quantize"}
        predicted = {t for name, op in ops.items() if name not in float_ops for t in wanted_tensors(op)}
        assert real == predicted, (sorted(kept), sorted(real ^ predicted))
    print(f"{len(_subsets(toy.layers))} subsets of {len(toy.layers)} layers: quantized tensors identical")


def test_emulation_tracks_the_written_package(toy):
    """Emulated logits against the written W8A8 package's (both through the interpreter, fp16 storage), for every
    subset but all of them (no activation quantized: refused, below): their PSNRs against the float model within
    EMULATION_TOLERANCE_DB."""
    emulated = emulation(toy.mlmodel, toy.stats, toy.layers, toy.inputs[0].tensor.numpy())
    worst = 0.0
    for kept in _subsets(toy.layers)[:-1]:
        float_ops = tuple(n for layer in kept for n in toy.layers[layer])
        keep = KeepFloat(sorted(kept)) if kept else None
        written, _ = compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}), keep, toy.modules, toy.model)
        assert {op.name for op in load_program(written).main.operations if op.op_type == "quantize"} \
            .isdisjoint(float_ops)
        emulated.set_float(kept)
        real_db = psnr_db(toy.reference, _logits(written, toy.inputs))
        emu_db = psnr_db(toy.reference, emulated.run([i.tensor.numpy() for i in toy.inputs]))
        worst = max(worst, abs(real_db - emu_db))
        assert abs(real_db - emu_db) <= EMULATION_TOLERANCE_DB, (sorted(kept), real_db, emu_db)
    print(f"emulated vs written PSNR: largest difference {worst:.2f} dB over {len(_subsets(toy.layers)) - 1} subsets "
          f"(tolerance {EMULATION_TOLERANCE_DB} dB)")


def test_auto_keeps_the_outlier_layer_and_the_written_package_reaches_the_goal(toy):
    plain, _ = compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}))
    int8_db = psnr_db(toy.reference, _logits(plain, toy.inputs))
    assert int8_db < GOAL  # the wrong program: all int8 misses the goal
    messages: list[str] = []
    keep = KeepFloat("auto", photos=toy.inputs, goal_db=GOAL, progress=messages.append)
    written, summary = compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}), keep, toy.modules, toy.model)
    mixed = summary["mixed_precision"]
    reached = psnr_db(toy.reference, _logits(written, toy.inputs))
    print(f"all-int8 {int8_db:.1f} dB; kept {mixed['keep_float']} -> {reached:.1f} dB (goal {GOAL} dB, margin "
          f"{reached - GOAL:+.1f} dB); emulated {mixed['emulated_psnr_db']} dB")
    assert "spiky" in mixed["keep_float"] and mixed["goal_reached"] and reached >= GOAL
    assert mixed["written_psnr_db"] == round(reached, 2)
    assert mixed["sensitivity"]["ranking_top"][0]["layer"] == "spiky"
    assert mixed["float_ops"] == [n for layer in mixed["keep_float"] for n in toy.layers[layer]]
    # the kept convs keep fp16 weights: spiky's (2304 elements, the only one over coremltools' 2048 threshold) too
    constexpr = [op for op in load_program(written).main.operations if op.op_type.startswith("constexpr_")]
    assert mixed["fp16_weights"] == len(mixed["keep_float"]) and not constexpr, [op.name for op in constexpr]
    assert [op for op in load_program(plain).main.operations if op.op_type.startswith("constexpr_")]
    assert any("ranked by the noise" in m for m in messages) and any("spiky" in m for m in messages)


def test_unknown_layer_suggests_the_nearest_names(toy):
    out = toy.folder / "bad.mlpackage"
    with pytest.raises(UsageError, match=r"'spikey' \(nearest: spiky\)"):
        export_coreml(toy.model, SPEC, out, tensor_input=True, compress="w8a8",
                      calibrate=coreml_calibrator([], toy.calibration), keep_float=KeepFloat(["spikey"]))
    assert not out.exists()


def test_scan_over_budget_is_refused_before_the_scan(toy):
    keep = KeepFloat("auto", photos=toy.inputs, goal_db=GOAL, budget_s=1e-6)
    with pytest.raises(UsageError, match=r"would take about \d+ s.*--keep-float LAYER"):
        compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}), keep, toy.modules, toy.model)


def test_a_goal_above_what_fp16_gives_is_refused_naming_the_ceiling(toy):
    """Every layer float is the fp16 package: a goal above its PSNR cannot be met by W8A8, and keeping every layer
    float would write a package with no activation quantized. Refused, naming what every layer float reaches;
    keeping every layer by hand is refused as options that contradict W8A8. Nothing is written."""
    from edgevit.base.errors import ExportError

    keep = KeepFloat("auto", photos=toy.inputs, goal_db=150.0)
    with pytest.raises(ExportError, match=r"leave no activation quantized.*every layer float reaches [\d.]+ dB"):
        compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}), keep, toy.modules, toy.model)
    with pytest.raises(UsageError, match="leave no activation quantized: that is the fp16 package"):
        compress_mlmodel(toy.mlmodel, "w8a8", lambda m: (toy.stats, {}), KeepFloat(list(toy.layers)), toy.modules,
                         toy.model)
