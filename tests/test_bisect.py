"""`edgevit validate --bisect`: the first value where a tampered artifact leaves the original is the tampered layer,
named by its op and by the PyTorch module it came from; a clean artifact has no divergence; an XNNPACK .pte, whose
values cannot be read, is bisected as a program against a re-lowering of the original."""

from __future__ import annotations

import subprocess
import sys

import pytest
from support.tamper import copy_artifact, negate, stored_tensors, tamper_tensor


def _module_of(tensor_name: str) -> str:
    """p_model_stages_2_3_pwconv1_weight_to_fp16 -> stages.2.3.pwconv1 (dots and underscores spelt alike)."""
    from edgevit.validate.stored_values import parameter_key

    return parameter_key(tensor_name).replace(".", "_").removeprefix("model_").removesuffix("_weight")


def _same(module: str, key: str) -> bool:
    return module.replace(".", "_").removeprefix("model_") == key


@pytest.mark.parametrize("target", ["coreml", "onnx"])
def test_bisect_names_the_tampered_layer(xs_artifacts, tmp_path, target):
    from edgevit.api import bisect

    clean = bisect(xs_artifacts[target])
    assert clean.first is None and clean.compared > 50, clean.worst[:3]
    artifact = copy_artifact(xs_artifacts[target], tmp_path)
    convs = [t for t in stored_tensors(artifact) if t.array.ndim == 4 and t.array.shape[0] > 8
             and t.array.dtype.kind == "f" and "weight" in t.name]
    victim = convs[len(convs) // 2]
    tamper_tensor(artifact, victim, negate)
    report = bisect(artifact)
    assert report.first is not None and report.first.rel_l2 > report.bound
    assert _same(report.first.module, _module_of(victim.name)), (report.first, victim.name)
    assert report.first.op in ("conv", "Conv") and len(report.worst) == 10


def test_bisect_cli_prints_the_first_divergence(xs_artifacts, tmp_path):
    artifact = copy_artifact(xs_artifacts["coreml"], tmp_path)
    convs = [t for t in stored_tensors(artifact) if t.array.ndim == 4 and t.array.shape[0] > 8 and "weight" in t.name]
    tamper_tensor(artifact, convs[3], negate)
    run = subprocess.run([sys.executable, "-m", "edgevit.cli", "validate", str(artifact), "--bisect"],
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 3 and "first divergence" in run.stdout and "module" in run.stdout, run.stdout


def test_pte_bisect_compares_the_program_with_a_relowering(xs_artifacts, tmp_path):
    """A clean .pte is byte-identical to the re-lowering (bound 0); a negated 1x1 conv is the first node that
    differs, named by its PyTorch module, at relative L2 2 (w vs -w); the CLI exits 3 and prints it."""
    from edgevit.api import bisect

    clean = bisect(xs_artifacts["executorch"])
    assert clean.first is None and clean.bound == 0.0 and clean.compared > 150, clean.worst[:3]
    assert all(d.rel_l2 == 0.0 for d in clean.worst) and "stages.0.0.dwconv" in {d.module for d in clean.worst}
    artifact = copy_artifact(xs_artifacts["executorch"], tmp_path)
    convs = [t for t in stored_tensors(artifact) if t.array.ndim == 4 and t.array.shape[0] > 8 and t.array.size > 1000]
    victim = convs[len(convs) // 2]
    tamper_tensor(artifact, victim, negate)
    run = subprocess.run([sys.executable, "-m", "edgevit.cli", "validate", str(artifact), "--bisect", "--json",
                          str(tmp_path / "bisect.json")], capture_output=True, text=True, timeout=900)
    assert run.returncode == 3 and "first divergence" in run.stdout, run.stdout + run.stderr
    import json

    first = json.loads((tmp_path / "bisect.json").read_text())["first"]
    assert first["op"].endswith("Conv2d") and first["rel_l2"] == pytest.approx(2.0) and first["module"].startswith(
        "stages."), first
    assert "filter" in first["value"], first
