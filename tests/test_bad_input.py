"""Bad input, as a careful user or an adversary gives it: one case per class, through the CLI (a subprocess).

Every case asserts a non-zero exit, one clear message, no traceback, and that nothing was left behind that was
not there before (or that the previous good artifact is intact). The known-good artifact comes from running the
README's Python API example (swiftformer-xs to ONNX), which is itself checked here.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
from support.cli import assert_refused, edgevit, snapshot

from edgevit.base.errors import UsageError
from edgevit.base.naming import bundle_path, manifest_path

ONNX = "swiftformer-xs.onnx.fp32.onnx"


# ------------------------------------------------------------------------------------------ the README's API example


def test_readme_python_api_example_runs_twice_in_one_process(readme_run):
    cwd, proc = readme_run
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "not callable" not in proc.stderr and proc.stdout.count("=== run") == 2 and "=== done" in proc.stdout
    runs = proc.stdout.split("=== run ")[1:]
    for run in runs:
        path_line, median = run.strip().splitlines()[1:3]
        assert path_line == f"artifacts/{ONNX} pass" and float(median) > 0
    assert sorted(p.name for p in (cwd / "artifacts").iterdir()) == [
        "swiftformer-xs.onnx.fp32.json", ONNX, "swiftformer-xs.onnx.fp32.validation"]


def test_api_names_are_functions_even_after_their_submodules_are_imported():
    import edgevit
    import edgevit.bench.results  # noqa: F401 - the imports that used to rebind the names
    import edgevit.validate  # noqa: F401

    for name in ("convert", "validate", "bench", "list_models"):
        assert callable(getattr(edgevit, name)) and getattr(edgevit, name).__module__ == "edgevit.api"
    from edgevit.validate.parity import run_parity as compare  # the submodule is still importable by name

    assert callable(compare)


# ------------------------------------------------------------------------------------------ a copy to tamper with


@pytest.fixture()
def good(readme_run, tmp_path) -> Path:
    """A private copy of the README run's artifact, manifest and validation inputs."""
    src = readme_run[0] / "artifacts"
    dst = tmp_path / "art"
    shutil.copytree(src, dst)
    return dst / ONNX


def _manifest(artifact: Path) -> dict:
    return json.loads(manifest_path(artifact).read_text())


def _write_manifest(artifact: Path, manifest) -> None:
    manifest_path(artifact).write_text(json.dumps(manifest))


# ------------------------------------------------------------------------------------------ bench plans (item 5)


@pytest.mark.parametrize(("args", "needle"), [
    (["--iterations", "0"], "timed iterations (--iterations) must be between 1 and"),
    (["--iterations", "-3"], "timed iterations (--iterations) must be between 1 and"),
    (["--warmup", "-1"], "warm-up iterations (--warmup) must be between 0 and"),
    (["--batch", "0"], "batch size must be between 1 and"),
    (["--batch", "1", "-2"], "batch size must be between 1 and"),
])
def test_impossible_bench_plans_are_refused_before_anything_is_written(tmp_path, args, needle):
    out = tmp_path / "results" / "bench.json"
    proc = edgevit("bench", "swiftformer-xs", *args, "--out", str(out))
    assert_refused(proc, needle)
    assert snapshot(tmp_path) == {}


def test_bench_of_a_missing_artifact_says_not_found(tmp_path):
    assert_refused(edgevit("bench", str(tmp_path / "gone.pte")), "artifact not found:", "gone.pte")


# ------------------------------------------------------------------------------------------ option combinations


@pytest.mark.parametrize(("args", "needle"), [
    (["--target", "onnx", "--precision", "fp16"], "the ONNX reference artifact is fp32 only"),
    (["--target", "executorch", "--precision", "fp16"], "the XNNPACK .pte is fp32 only"),
    (["--target", "onnx", "--backend", "coreml"], "--backend coreml applies only to --target executorch"),
    (["--target", "onnx", "--deployment-target", "iOS18"], "--deployment-target iOS18 applies only to CoreML"),
    (["--target", "onnx", "--tensor-input"], "--tensor-input applies only to --target coreml"),
])
def test_option_combinations_are_refused_before_any_work_and_leave_no_out(tmp_path, args, needle):
    out = tmp_path / "new" / "out"
    assert_refused(edgevit("convert", "swiftformer-xs", *args, "--out", str(out)), needle)
    assert snapshot(tmp_path) == {}


@pytest.mark.parametrize(("args", "needle"), [
    (["--backend", "tflite"], "invalid choice: 'tflite'"),
    (["--seed", "a"], "invalid int value: 'a'"),
    (["--deployment-target", "iOS9"], "invalid choice: 'iOS9'"),
])
def test_malformed_options_are_usage_errors(tmp_path, args, needle):
    assert_refused(edgevit("convert", "swiftformer-xs", "--target", "onnx", *args, "--out", str(tmp_path / "o")),
                   needle)
    assert snapshot(tmp_path) == {}


# ------------------------------------------------------------------------------------------ checkpoints (items 3, 8)


def _xs_state() -> dict[str, torch.Tensor]:
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    model, _ = build_model(get_spec("swiftformer-xs"))
    return {k: v.clone().contiguous() for k, v in model.state_dict().items()}


def test_nan_tensor_in_a_checkpoint_is_refused_naming_it(tmp_path):
    from safetensors.torch import save_file

    state = _xs_state()
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    state[key] = torch.full_like(state[key], math.nan)
    ckpt = tmp_path / "nan.safetensors"
    save_file(state, str(ckpt))
    before = snapshot(tmp_path)
    proc = edgevit("convert", "swiftformer-xs", "--target", "onnx", "--weights", str(ckpt), "--out",
                   str(tmp_path / "out"))
    assert_refused(proc, "holds non-finite values in 1 tensor(s)", f"{key} ({state[key].numel()} NaN")
    assert snapshot(tmp_path) == before


def test_integer_tensors_for_float_parameters_are_refused(tmp_path):
    """In-process (the CLI path is the same WeightsError): int32 used to be cast silently into the model."""
    from safetensors.torch import save_file

    from edgevit.api import convert
    from edgevit.base.errors import WeightsError

    state = _xs_state()
    key = next(k for k, v in state.items() if v.is_floating_point() and v.dim() == 4)
    state[key] = state[key].to(torch.int32)
    ckpt = tmp_path / "int.safetensors"
    save_file(state, str(ckpt))
    with pytest.raises(WeightsError, match=f"non-float tensors for float parameters \\(1\\): {key}: checkpoint int32"):
        convert("swiftformer-xs", "onnx", tmp_path / "out", weights=ckpt)
    assert not (tmp_path / "out").exists()


def test_random_bytes_are_not_called_pickled_objects(tmp_path):
    """In-process, like the int32 case: the same WeightsError the CLI prints for the NaN checkpoint above."""
    from edgevit.api import convert
    from edgevit.base.errors import WeightsError

    ckpt = tmp_path / "noise.pth"
    ckpt.write_bytes(bytes(range(7, 256)) * 40)
    with pytest.raises(WeightsError, match="is not a PyTorch checkpoint") as err:
        convert("swiftformer-xs", "onnx", tmp_path / "out", weights=ckpt)
    assert "pickled" not in str(err.value) and not (tmp_path / "out").exists()


def test_weights_whose_outputs_overflow_are_refused_before_exporting(tmp_path):
    """Finite weights whose outputs are not: refused before any artifact exists (in-process, as above)."""
    from edgevit.api import convert
    from edgevit.base.errors import WeightsError

    state = _xs_state()
    head = next(k for k in state if k.startswith("head.") and k.endswith("weight"))
    state[head] = torch.full_like(state[head], 3e38)
    ckpt = tmp_path / "huge.pth"
    torch.save(state, ckpt)
    with pytest.raises(WeightsError, match="outputs non-finite values on the validation inputs"):
        convert("swiftformer-xs", "onnx", tmp_path / "out", weights=ckpt)
    assert not (tmp_path / "out").exists()


def test_non_finite_outputs_are_their_own_verdict_never_inconclusive():
    import numpy as np

    from edgevit.validate.device_outputs import compare

    ref = np.random.default_rng(0).normal(size=(3, 10)).astype(np.float32)
    bad = ref.copy()
    bad[1, 2] = np.nan
    for reference, actual, whose in ((ref, bad, "the artifact's"), (bad, ref, "the original model's")):
        result = compare(reference, actual, [], "a.onnx", "onnxruntime", "fp32")
        assert result.status == "fail" and result.failed
        assert result.reason.startswith(f"non-finite outputs: {whose} outputs hold 1 NaN")


# ------------------------------------------------------------------------------------------ manifests and bundles


@pytest.mark.parametrize(("tamper", "needles"), [
    (lambda m: [m], ["is not a JSON object (found list)"]),
    (lambda m: {k: v for k, v in m.items() if k != "sha256"}, ["does not conform", "'sha256' is a required property"]),
    (lambda m: m | {"input": {**m["input"], "shape": "224"}}, ["does not conform", "input.shape"]),
    (lambda m: m | {"publication": {"state": "pending", "pid": 4242}}, ["stopped while publishing", "pid 4242"]),
    (lambda m: m | {"model": "swiftformer-l1"}, ["describes swiftformer-l1.onnx.fp32.onnx", "not " + ONNX]),
])
def test_bad_manifests_are_one_message(good, tamper, needles):
    _write_manifest(good, tamper(_manifest(good)))
    before = snapshot(good.parent)
    for command in ("validate", "bench"):
        assert_refused(edgevit(command, str(good)), *needles)
    assert snapshot(good.parent) == before


def test_modified_artifact_is_refused_by_validate_and_bench(good):
    good.write_bytes(good.read_bytes() + b"\0")
    for command in ("validate", "bench"):
        assert_refused(edgevit(command, str(good)), "does not match its manifest (sha256 differs)")


def test_manifest_input_that_does_not_match_the_program(good):
    manifest = _manifest(good)
    manifest["input"]["name"] = "pixels"
    _write_manifest(good, manifest)
    for command in ("validate", "bench"):
        assert_refused(edgevit(command, str(good)), "the program's input is input [1, 3, 224, 224]",
                       "its manifest says pixels [1, 3, 224, 224]")
    manifest["input"]["shape"] = [1, 3, 256, 256]  # not the model's input size: refused before the program is read
    _write_manifest(good, manifest)
    assert_refused(edgevit("bench", str(good)), "input.shape is [1, 3, 256, 256]", "swiftformer-xs takes [batch, 3, "
                   "224, 224]")


@pytest.mark.parametrize("damage", ["no index", "truncated tensor"])
def test_damaged_validation_bundle(good, damage):
    """The bundle is the device harnesses' input: reading a damaged one names what is wrong. validate does not read
    it (edgevit regenerates its inputs), so the damage changes no verdict."""
    from edgevit.base.errors import ArtifactError
    from edgevit.validate.inputs import read_bundle

    bundle = bundle_path(good)
    if damage == "no index":
        (bundle / "index.json").unlink()
        needle = "index.json is missing"
    else:
        tensor = next(bundle.glob("*.f32"))
        tensor.write_bytes(tensor.read_bytes()[:1000])
        needle = "602112"
    with pytest.raises(ArtifactError, match=f"validation inputs {re.escape(str(bundle))}") as raised:
        read_bundle(bundle)
    assert needle in str(raised.value)
    run = edgevit("validate", str(good))
    assert run.returncode == 0 and "pass" in run.stdout, run.stdout + run.stderr


# ------------------------------------------------------------------------------------------ results files (item 6)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "1e999"])
def test_report_refuses_non_finite_numbers_with_their_path(tmp_path, value):
    from support.synthetic_results import write_synthetic

    path = write_synthetic(tmp_path / "r.json", 3)
    text = path.read_text()
    doc = json.loads(text)
    doc["results"][1]["median_ms"] = 0.123456789
    path.write_text(json.dumps(doc).replace("0.123456789", value))
    proc = edgevit("report", str(path), "--out", str(tmp_path / "rep"))
    assert_refused(proc, "results[1].median_ms:", "is not a finite number")
    assert not (tmp_path / "rep").exists()


# ------------------------------------------------------------------------------------------ the Python API (item 8)


@pytest.mark.parametrize(("call", "needle"), [
    (lambda e: e.convert(123), "model must be a model name (str"),
    (lambda e: e.convert("swiftformer-xs", target=5), "target must be a name or a non-empty list"),
    (lambda e: e.convert("swiftformer-xs", target=["onnx"], seed="a"), "seed must be an integer, got str 'a'"),
    (lambda e: e.convert("swiftformer-xs", target=["onnx"], seed=-1), "seed must be between 0 and"),
    (lambda e: e.convert("swiftformer-xs", target=["tflite"]), "unknown target(s) 'tflite'"),
    (lambda e: e.convert("swiftformer-xs", target="onnx", out=None), "out must be a path"),
    (lambda e: e.convert("swiftformer-xs", target="onnx", validate="yes"), "validate must be True or False"),
    (lambda e: e.bench(["swiftformer-xs"], batches=[0]), "batch size must be between 1 and"),
    (lambda e: e.bench(["swiftformer-xs"], batches=["1"]), "batch size must be an integer"),
    (lambda e: e.bench(["swiftformer-xs"], plan=(5, 30)), "plan must be an edgevit.bench.plan.Plan"),
    (lambda e: e.validate(5), "artifact must be a path"),
])
def test_python_api_refuses_bad_arguments_with_one_message(tmp_path, monkeypatch, call, needle):
    import edgevit

    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError) as err:
        call(edgevit)
    assert needle in str(err.value)
    assert isinstance(err.value, ValueError) and snapshot(tmp_path) == {}


def test_a_plan_cannot_be_impossible():
    from edgevit.bench.plan import Plan

    with pytest.raises(UsageError, match="timed iterations"):
        Plan(warmup=1, iterations=0)
    with pytest.raises(UsageError, match="warm-up"):
        Plan(warmup=-1, iterations=3)
