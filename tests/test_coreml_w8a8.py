"""CoreML W8A8 on Linux (issue 24): activation ranges gathered through the MIL reference interpreter and handed
to coremltools' own quantize/dequantize insertion passes; the interpreter then executes those ops as stored.

One timm:test_resnet conversion (tensor input, so the output is logits) is shared by the tests (module fixture).
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from support.cli import assert_refused, edgevit, snapshot

from edgevit.models.registry import get_spec
from edgevit.validate.calibration import calibration_set

TINY_CNN = "timm:test_resnet"


def _psnr(reference: np.ndarray, actual: np.ndarray) -> float:
    rmse = math.sqrt(float(np.mean((np.asarray(actual, np.float64) - reference) ** 2)))
    return 20 * math.log10(float(np.max(np.abs(reference))) / rmse)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from edgevit.api import convert

    out = tmp_path_factory.mktemp("w8a8")
    photos = tmp_path_factory.mktemp("calibration")  # 8 of the calibration views: keeps the interpreter runs short
    for i, image in enumerate(calibration_set(get_spec(TINY_CNN)).images[::6][:8]):
        image.save(photos / f"view{i}.png")
    fp16 = convert(TINY_CNN, "coreml", out, tensor_input=True, validate=False, mil_report=False).artifacts[0]
    w8a8 = convert(TINY_CNN, "coreml", out, compress="w8a8", tensor_input=True, validate=False,
                   mil_report=False, calibration=photos).artifacts[0]
    return fp16, w8a8, photos


def _samples(n: int, offset: int = 0) -> list[dict]:
    """Validation photos (whole and halves) through the model's preprocessing: inputs in the calibrated range."""
    from edgevit.validate.inputs import photo_inputs

    return [{"input": item.tensor.numpy()} for item in photo_inputs(get_spec(TINY_CNN))[offset:offset + n]]


def test_recorded_ranges_are_coremltools_aggregation_of_the_same_values(tiny):
    """The ranges equal what coremltools' own statistics functions give when fed the same activations (all
    calibration inputs at once), and differ from its per-sample loop, which keeps only the last sample."""
    from coremltools.optimize.coreml.experimental._model_debugger import ModelDebugger
    from coremltools.optimize.coreml.experimental._post_training_quantization import (
        _adjust_concat_surrounding_activation_stats,
        _update_tensor_range,
    )

    from edgevit.mil import MilModel
    from edgevit.mil.ranges import activation_ranges, concat_groups

    fp16 = tiny[0]
    model = MilModel(str(fp16.path))
    samples = _samples(3)
    ours = activation_ranges(model, samples)
    seen: dict[str, list[np.ndarray]] = defaultdict(list)
    outputs = {v.name for v in model.loaded.main.outputs}
    for sample in samples:
        model.predict(sample, observe=lambda op, var, value: seen[var.name].append(np.array(value))
                      if op.op_type != "const" and var.name not in outputs else None)
    theirs: dict = defaultdict(dict)
    _update_tensor_range("input", np.concatenate([s["input"] for s in samples]), theirs)
    for name, values in seen.items():
        ModelDebugger.record_intermediate_output(np.concatenate([v.reshape(-1) for v in values]), name, theirs)
    _adjust_concat_surrounding_activation_stats(concat_groups(model.loaded.main), theirs)
    assert set(ours.stats) == set(theirs) and len(ours.stats) > 20
    for name, stats in theirs.items():
        assert ours.stats[name] == {"rmin": pytest.approx(float(stats["rmin"])),
                                    "rmax": pytest.approx(float(stats["rmax"]))}, name
    looped: dict = defaultdict(dict)
    for values in zip(*seen.values(), strict=True):
        for name, value in zip(seen, values, strict=True):
            ModelDebugger.record_intermediate_output(value, name, looped)
    assert any(looped[n]["rmax"] < ours.stats[n]["rmax"] or looped[n]["rmin"] > ours.stats[n]["rmin"] for n in seen)


def test_percentile_ranges_sit_inside_minmax(tiny):
    from edgevit.mil import MilInterpreterError, MilModel
    from edgevit.mil.ranges import activation_ranges

    model = MilModel(str(tiny[0].path))
    samples = _samples(2)
    full = activation_ranges(model, samples).stats
    clipped = activation_ranges(model, samples, method="percentile", percentile=99.0)
    assert clipped.to_json()["method"] == "percentile"
    assert all(full[n]["rmin"] <= s["rmin"] <= s["rmax"] <= full[n]["rmax"] for n, s in clipped.stats.items())
    assert any(s["rmax"] < full[n]["rmax"] for n, s in clipped.stats.items())
    with pytest.raises(MilInterpreterError, match="percentile must be"):
        activation_ranges(model, samples, method="percentile", percentile=30)
    with pytest.raises(MilInterpreterError, match="no calibration inputs"):
        activation_ranges(model, [])


def test_w8a8_package_carries_the_ranges_and_records_them(tiny):
    from edgevit.base.manifest import read_manifest
    from edgevit.export.coreml import quantized_activation_ops, ranges_not_carried
    from edgevit.mil import MilModel, load_program
    from edgevit.mil.ranges import activation_ranges

    fp16, w8a8, photos = tiny
    manifest = read_manifest(w8a8.path)
    q = manifest["quantization"]
    assert q["name"] == "w8a8" and q["minimum_deployment_target"] == "iOS17"
    assert q["activation_ranges"]["method"] == "minmax" and q["activation_ranges"]["samples"] == q["calibration"][
        "images"] == 8
    assert "mil-reference" in q["activation_ranges"]["source"]
    saved = load_program(str(w8a8.path)).program  # what was serialised, not the in-memory program
    ops = quantized_activation_ops(saved)
    assert len(ops) == q["activation_quantize_ops"] > 10
    assert all(op["zero_point"] is None or not op["zero_point"].any() for op in ops.values())
    # the same ranges, gathered again from the fp16 package on the same calibration images, are what the ops carry
    cal = calibration_set(get_spec(TINY_CNN), sorted(photos.iterdir()))
    stats = activation_ranges(MilModel(str(fp16.path)), [{"input": t.numpy()} for t in cal.tensors]).stats
    assert ranges_not_carried(saved, stats) == []
    # a wrong input the check must fail: ranges from one image only
    one = activation_ranges(MilModel(str(fp16.path)), [{"input": cal.tensors[0].numpy()}]).stats
    assert len(ranges_not_carried(saved, one)) > 5


def test_interpreter_executes_the_quantize_ops_as_stored(tiny):
    """The w8a8 logits track fp16's (the int8 steps run), and a package whose quantize scales are tampered with
    (x0.05: saturation) does not: the interpreter uses the stored values, not the fp16 program."""
    from edgevit.mil import MilModel
    from edgevit.mil.interpreter import constants_of

    fp16, w8a8, _ = tiny
    samples = _samples(6, offset=3)
    fp_model, q_model = MilModel(str(fp16.path)), MilModel(str(w8a8.path))
    kinds: dict[str, np.dtype] = {}
    q_model.predict(samples[0], observe=lambda op, var, value: kinds.setdefault(op.op_type, np.asarray(value).dtype))
    assert kinds["quantize"] == np.int8 and "dequantize" in kinds
    ref = np.concatenate([list(fp_model.predict(s).values())[0] for s in samples])
    out = np.concatenate([list(q_model.predict(s).values())[0] for s in samples])
    assert 25 < _psnr(ref, out) < 80
    tampered_model = MilModel(q_model.loaded)
    consts = constants_of(q_model.loaded.main)
    for op in q_model.loaded.main.operations:
        if op.op_type == "quantize":
            consts[op.inputs["scale"]] = consts[op.inputs["scale"]] * 0.05
    tampered_model._constants = consts
    tampered = np.concatenate([list(tampered_model.predict(s).values())[0] for s in samples])
    assert _psnr(ref, tampered) < _psnr(ref, out) - 10


@pytest.mark.parametrize("target", ["iOS16", "macOS13"])
def test_w8a8_below_ios17_is_refused_with_the_reason(tmp_path, target):
    out = tmp_path / "new" / "out"
    message = assert_refused(edgevit("convert", "swiftformer-xs", "--target", "coreml", "--compress", "w8a8",
                                     "--deployment-target", target, "--out", str(out)),
                             "needs --deployment-target iOS17", "quantize/dequantize ops", "--compress w8")
    assert target in message
    assert snapshot(tmp_path) == {}


def test_w8a8_verdict_checks_the_compute_graph_against_coremltools_conversion(tiny, tmp_path):
    """Activation rounding hides a missing op in the numbers, so the verdict compares the W8A8 program's compute ops
    with coremltools' own conversion of the original: the clean package has no difference; with one residual add
    removed (its readers read its first input) it fails on fidelity, naming the add."""
    from support.tamper import copy_artifact, drop_mil_add

    import edgevit.api as api
    from edgevit.base.manifest import read_manifest
    from edgevit.validate.parity import run_parity

    _, w8a8, photos = tiny
    manifest = read_manifest(w8a8.path)
    subject = api._subject_of(manifest, get_spec(TINY_CNN), None, calibration=photos)
    clean = run_parity(subject, w8a8.path, manifest)
    assert clean.fidelity.extra["structure"]["differences"] == [], clean.fidelity.extra
    assert clean.fidelity.status == "pass", clean.fidelity.reason
    broken = copy_artifact(w8a8.path, tmp_path)
    dropped = drop_mil_add(broken)
    result = run_parity(subject, broken, read_manifest(broken))
    assert result.status == "fail" and result.failed_part == "fidelity", result.reason
    assert "compute graph" in result.reason and repr(dropped.removesuffix("_cast_fp16")) in result.reason, \
        (dropped, result.reason)


def test_w8a8_fidelity_is_the_same_program_rebuilt_here(tiny, tmp_path):
    """The W8A8 verdict rebuilds the program from the original with the recorded calibration set and compares
    every activation scale and the logits of both at fp32: the clean package agrees to the bit (margin 0); one
    activation scale moved by 5% fails naming the op, its effect on the logits far beyond the bound; a scale moved
    by one fp16 step (what calibration on other threads can do) is calibration rounding: carried, and a pass."""
    from support.tamper import copy_artifact, scale_mil_activation

    import edgevit.api as api
    from edgevit.base.manifest import read_manifest
    from edgevit.validate.parity import run_parity
    from edgevit.validate.w8a8_reference import SCALE_RTOL

    _, w8a8, photos = tiny
    manifest = read_manifest(w8a8.path)
    subject = api._subject_of(manifest, get_spec(TINY_CNN), None, calibration=photos)
    clean = run_parity(subject, w8a8.path, manifest)
    assert clean.fidelity.status == "pass" and clean.fidelity.error <= 1e-6, clean.fidelity.reason
    assert clean.fidelity.extra["structure"]["activation_differences"] == []
    print(f"clean: error {clean.fidelity.error:.3g} / bound {clean.fidelity.bound:g}; activation rounding vs the "
          f"float reference {clean.fidelity.extra['activation_rounding_rel_l2']:.3g} relative L2")

    moved = copy_artifact(w8a8.path, tmp_path / "moved")
    name = scale_mil_activation(moved, 1.05, index=0)
    result = run_parity(subject, moved, read_manifest(moved))
    assert result.status == "fail" and result.failed_part == "fidelity", result.reason
    assert "activation quantization" in result.reason and repr(name) in result.reason, (name, result.reason)
    print(f"activation scale +5% on {name}: margin {result.fidelity.margin:.3g}× the bound "
          f"({0.05 / SCALE_RTOL:.3g}× the calibration rounding)")
    assert result.fidelity.margin > 1

    step = copy_artifact(w8a8.path, tmp_path / "step")
    scale_mil_activation(step, 1 + 2.0**-10, index=0)
    rounding = run_parity(subject, step, read_manifest(step))
    assert rounding.fidelity.status == "pass", rounding.fidelity.reason
    assert rounding.fidelity.extra["structure"]["scales_carried"] >= 1


def test_w8a8_calibrated_elsewhere_needs_its_calibration_set(tiny):
    """A package calibrated on a user's folder cannot be rebuilt without it: the verdict says to pass it, and it is
    no pass."""
    import edgevit.api as api
    from edgevit.base.manifest import read_manifest
    from edgevit.validate.parity import run_parity

    _, w8a8, _ = tiny
    manifest = read_manifest(w8a8.path)
    result = run_parity(api._subject_of(manifest, get_spec(TINY_CNN), None), w8a8.path, manifest)
    assert result.status != "pass" and "--calibration" in result.reason, result.reason


def test_w8a8_layers_kept_float_by_hand_are_rebuilt_and_a_hidden_one_fails(tiny, tmp_path):
    """--compress w8a8 --keep-float: the layers' ops get no quantize/dequantize pairs, the manifest names layers and
    ops, and the verdict rebuilds the same mixed program (fidelity 0). A manifest hiding the layers kept float makes
    the rebuild quantize them: fidelity fails on the activation quantization the package lacks. --keep-float with a
    weight-only scheme is refused with the reason."""
    from edgevit.base.manifest import read_manifest, write_manifest

    _, w8a8, photos = tiny
    out = tmp_path / "out"
    refused = edgevit("convert", TINY_CNN, "--target", "coreml", "--compress", "w8", "--keep-float", "conv1.3",
                      "--out", str(out))
    assert_refused(refused, "--keep-float applies to one quantized target", "--compress w8a8 with --target coreml")
    assert not out.exists() or not any(out.iterdir())  # (an unknown layer: test_coreml_mixed_precision.py)
    proc = edgevit("convert", TINY_CNN, "--target", "coreml", "--compress", "w8a8", "--tensor-input", "--keep-float",
                   "conv1.3,bn1", "--calibration", str(photos), "--out", str(out), "--no-mil-report")
    assert proc.returncode in (0, 3), (proc.stdout + proc.stderr)[-3000:]  # 3: random-init's precision cost
    artifact = out / w8a8.path.name
    manifest = read_manifest(artifact)
    mixed = manifest["quantization"]["mixed_precision"]
    assert mixed["keep_float"] == ["conv1.3", "bn1"] and mixed["chosen_by"] == "--keep-float (by hand)"
    assert mixed["float_ops"] and manifest["parity"]["fidelity"]["status"] == "pass"
    assert manifest["parity"]["fidelity"]["error"] <= 1e-6
    from edgevit.mil import load_program

    def quantized_inputs(path):
        return {op.inputs["input"].name for op in load_program(path).main.operations if op.op_type == "quantize"}

    fewer, full = quantized_inputs(artifact), quantized_inputs(w8a8.path)
    assert fewer < full, (len(fewer), len(full))
    print(f"kept {mixed['keep_float']} ({mixed['float_ops']}): {len(full) - len(fewer)} of {len(full)} activation "
          f"quantizations left out; fidelity {manifest['parity']['fidelity']['error']} / "
          f"{manifest['parity']['fidelity']['bound']}")
    hidden = {**manifest, "quantization": {**manifest["quantization"], "mixed_precision": None}}
    write_manifest(artifact, hidden)
    lied = edgevit("validate", str(artifact), "--calibration", str(photos))
    text = " ".join((lied.stdout + lied.stderr).split())
    assert lied.returncode == 3 and "activation quantization" in text, text[-2000:]


@pytest.mark.parametrize("tamper", ["unknown layer", "every layer"])
def test_w8a8_manifest_naming_impossible_float_layers_is_a_bad_artifact(tiny, tmp_path, tamper):
    """The validation rebuilds the package with the layers its manifest says it kept float. A manifest naming a
    layer the model lacks, or every layer (no activation left quantized: that is no W8A8 package), cannot be rebuilt:
    the verdict blames the manifest (a bad artifact, exit 2), not the user's options or the exporter."""
    import shutil

    from edgevit.api import _subject_of
    from edgevit.base.manifest import read_manifest, write_manifest
    from edgevit.base.naming import manifest_path
    from edgevit.export.coreml_layers import op_layers
    from edgevit.export.mil_inspect import module_of, to_exported_program
    from edgevit.mil import load_program

    _, w8a8, photos = tiny
    artifact = tmp_path / w8a8.path.name
    shutil.copytree(w8a8.path, artifact)
    shutil.copy(manifest_path(w8a8.path), manifest_path(artifact))
    manifest = read_manifest(artifact)
    if tamper == "unknown layer":
        kept = ["no_such_layer"]
    else:
        subject = _subject_of(manifest, get_spec(TINY_CNN), None)
        program = to_exported_program(subject.prepared, subject.inputs[0].tensor)
        layers = op_layers(load_program(artifact).main, {n.name: module_of(n) for n in program.graph.nodes})
        kept = list(layers)
    mixed = {"keep_float": kept, "chosen_by": "--keep-float (by hand)", "quantized_layers": len(kept)}
    write_manifest(artifact, {**manifest, "quantization": {**manifest["quantization"], "mixed_precision": mixed}})
    proc = edgevit("validate", str(artifact), "--calibration", str(photos))
    text = " ".join((proc.stdout + proc.stderr).split())
    expected = "no_such_layer" if tamper == "unknown layer" else "leave no activation quantized"
    assert proc.returncode != 0 and "mixed_precision.keep_float" in text and expected in text, text[-2000:]
    print(f"{tamper} ({len(kept)} named): exit {proc.returncode}: {text[-300:]}")
