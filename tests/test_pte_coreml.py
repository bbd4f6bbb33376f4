"""The CoreML-delegated .pte checked on Linux: its delegate payloads extracted as ML programs
(edgevit.export.pte_coreml) and run by the MIL reference interpreter (runtime "mil-reference").

One real swiftformer-xs conversion proves the whole path (convert validates through PteCoreMLReferenceRunner);
tiny lowered modules cover the wiring and every refusal, each in seconds.
"""

from __future__ import annotations

import json
import logging
import platform
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from edgevit.base.errors import (
    ArtifactError,
    CompiledCoreMLModelError,
    NoCoreMLDelegateError,
    NotAPteError,
    UncomposablePartitionsError,
)
from edgevit.export.pte_coreml import extract_coreml_delegates, read_delegated_forward
from edgevit.validate.runtimes import MIL_REFERENCE, PteCoreMLReferenceRunner, RuntimeUnavailable, open_runner


def _manifest(shape: list[int]) -> dict:
    return {"target": "executorch", "backend": "coreml", "precision": "fp32", "sha256": "0" * 64,
            "input": {"name": "x", "kind": "tensor", "shape": shape}, "output": {"name": "output", "kind": "logits"}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """Linear-ReLU-Linear lowered three ways: whole graph to CoreML, ReLU kept out of CoreML, no delegate."""
    import coremltools as ct
    from executorch.backends.apple.coreml.compiler import CoreMLBackend
    from executorch.backends.apple.coreml.partition import CoreMLPartitioner
    from executorch.exir import to_edge, to_edge_transform_and_lower

    logging.getLogger("executorch").setLevel(logging.ERROR)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4)).eval()
    example = torch.randn(1, 8)
    specs = CoreMLBackend.generate_compile_specs(compute_precision=ct.precision.FLOAT32,
                                                 minimum_deployment_target=ct.target.iOS17)
    out = tmp_path_factory.mktemp("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(model, (example,))
        lowered = {
            "whole": [CoreMLPartitioner(compile_specs=specs)],
            "split": [CoreMLPartitioner(compile_specs=specs, skip_ops_for_coreml_delegation=["aten.relu.default"])],
        }
        for name, partitioner in lowered.items():
            edge = to_edge_transform_and_lower(program, partitioner=partitioner)
            (out / f"{name}.executorch.coreml.fp32.pte").write_bytes(edge.to_executorch().buffer)
        (out / "portable.executorch.coreml.fp32.pte").write_bytes(to_edge(program).to_executorch().buffer)
    return {p.name.split(".")[0]: p for p in out.glob("*.pte")} | {"_model": model}  # type: ignore[dict-item]


def _rewrite(source: Path, target: Path, edit) -> Path:
    """``source`` deserialised, changed by ``edit(program)`` and written back with ExecuTorch's own serialiser."""
    from executorch.exir._serialize._program import deserialize_pte_binary, serialize_pte_binary

    pte = deserialize_pte_binary(source.read_bytes())
    edit(pte.program)
    target.write_bytes(bytes(serialize_pte_binary(pte)))
    return target


# --- the real artifact -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def xs_coreml_pte(tmp_path_factory):
    from edgevit.api import convert

    out = tmp_path_factory.mktemp("xs-coreml-pte")
    result = convert("swiftformer-xs", "executorch", out, backend="coreml", mil_report=False)
    (artifact,) = result.artifacts
    return artifact


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS the .pte runs in ExecuTorch's CoreML delegate")
def test_convert_validates_the_coreml_pte_through_the_interpreter(xs_coreml_pte):
    parity = xs_coreml_pte.parity
    assert parity is not None and parity.runtime == MIL_REFERENCE, parity
    assert parity.status == "pass", parity.reason
    assert parity.overall.psnr_db > 60 and parity.overall.top1_agreement == 1.0
    recorded = json.loads(xs_coreml_pte.manifest_path.read_text())["parity"]
    assert recorded["runtime"] == MIL_REFERENCE and recorded["status"] == "pass"


def test_swiftformer_pte_is_one_partition_from_input_to_logits(xs_coreml_pte, tmp_path):
    (package,) = extract_coreml_delegates(xs_coreml_pte.path, tmp_path / "a")
    assert package.suffix == ".mlpackage" and (package / "Manifest.json").is_file()
    forward = read_delegated_forward(xs_coreml_pte.path, tmp_path / "b")
    (partition,) = forward.partitions
    (step,) = forward.steps
    assert step.inputs == forward.inputs and step.outputs == forward.outputs  # the .pte's input in, its logits out
    assert forward.shapes[forward.inputs[0]] == (1, 3, 224, 224) and forward.shapes[forward.outputs[0]] == (1, 1000)
    assert partition.input_names == ("x",) and len(partition.output_names) == 1

    runner = open_runner(xs_coreml_pte.path, json.loads(xs_coreml_pte.manifest_path.read_text()), MIL_REFERENCE)
    assert isinstance(runner, PteCoreMLReferenceRunner)
    assert (runner.runtime, runner.backend) == (MIL_REFERENCE, "coreml-delegate")
    out = runner.run(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1000) and out.dtype == np.float32 and np.isfinite(out).all()


# --- wiring, on a tiny program -----------------------------------------------------------------------------------


def test_whole_graph_partition_computes_the_module(tiny):
    runner = open_runner(tiny["whole"], _manifest([1, 8]), MIL_REFERENCE)
    x = torch.randn(1, 8)
    with torch.no_grad():
        expected = tiny["_model"](x).numpy()
    np.testing.assert_allclose(runner.run(x), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS the .pte runs in ExecuTorch's CoreML delegate")
def test_default_runner_off_macos_is_the_interpreter_and_is_never_timed(tiny):
    from edgevit.bench.host import bench_artifact
    from edgevit.bench.plan import Plan

    assert isinstance(open_runner(tiny["whole"], _manifest([1, 8])), PteCoreMLReferenceRunner)
    record = bench_artifact("tiny", tiny["whole"], _manifest([1, 8]), torch.randn(1, 8), Plan(warmup=0, iterations=1))
    assert record["status"] == "not_run" and "MIL reference interpreter" in record["error"]


# --- refusals ------------------------------------------------------------------------------------------------------


def test_kernels_between_partitions_are_refused_by_name(tiny, tmp_path):
    assert len(extract_coreml_delegates(tiny["split"], tmp_path / "a")) == 2  # still extractable, for inspection
    with pytest.raises(UncomposablePartitionsError, match=r"2 CoreML partition.*aten::relu\.out"):
        read_delegated_forward(tiny["split"], tmp_path / "b")
    with pytest.raises(RuntimeUnavailable, match="aten::relu.out"):
        open_runner(tiny["split"], _manifest([1, 8]), MIL_REFERENCE)


def test_no_coreml_delegate(tiny, tmp_path):
    with pytest.raises(NoCoreMLDelegateError, match="portable kernels"):
        extract_coreml_delegates(tiny["portable"], tmp_path)
    with pytest.raises(ArtifactError):  # a defect in the artifact, not a runtime this host lacks
        open_runner(tiny["portable"], _manifest([1, 8]), MIL_REFERENCE)


def test_not_a_pte(tiny, tmp_path):
    garbage = tmp_path / "garbage.executorch.coreml.fp32.pte"
    garbage.write_bytes(b"\x08\x07ONNX-or-anything-else" * 8)
    truncated = tmp_path / "truncated.executorch.coreml.fp32.pte"
    truncated.write_bytes(tiny["whole"].read_bytes()[:200])
    for path in (garbage, truncated, tmp_path / "missing.pte", tmp_path):
        with pytest.raises(NotAPteError):
            extract_coreml_delegates(path, tmp_path / "out")


def test_compiled_model_payload_is_refused(tiny, tmp_path):
    from executorch.backends.apple.coreml import executorchcoreml
    from executorch.exir.schema import BackendDelegateInlineData, CompileSpec

    def compiled_spec(program):
        delegate = program.execution_plan[0].delegates[0]
        delegate.compile_specs = [CompileSpec("model_type", b"compiled_model") if s.key == "model_type" else s
                                  for s in delegate.compile_specs]

    by_spec = _rewrite(tiny["whole"], tmp_path / "spec.executorch.coreml.fp32.pte", compiled_spec)
    with pytest.raises(CompiledCoreMLModelError, match="mlmodelc"):
        extract_coreml_delegates(by_spec, tmp_path / "a")
    with pytest.raises(RuntimeUnavailable, match="compiled model"):
        open_runner(by_spec, _manifest([1, 8]), MIL_REFERENCE)

    folder = tmp_path / "payload" / "lowered_module"  # what preprocess flattens for COMPILED_MODEL
    (folder / "model.mlmodelc").mkdir(parents=True)
    (folder / "model.mlmodelc" / "model.espresso.net").write_bytes(b"{}")
    (folder / "metadata.json").write_text(json.dumps({"inputNames": ["x"], "outputNames": ["y"]}))
    payload = executorchcoreml.flatten_directory_contents(str(folder.parent))

    def compiled_payload(program):
        index = program.execution_plan[0].delegates[0].processed.index
        program.backend_delegate_data[index] = BackendDelegateInlineData(data=payload)

    by_payload = _rewrite(tiny["whole"], tmp_path / "payload.executorch.coreml.fp32.pte", compiled_payload)
    with pytest.raises(CompiledCoreMLModelError, match="mlmodelc"):
        extract_coreml_delegates(by_payload, tmp_path / "b")


def test_unreadable_payload_is_an_artifact_error(tiny, tmp_path):
    from executorch.exir.schema import BackendDelegateInlineData

    from edgevit.base.errors import PteError

    def garbage(program):
        index = program.execution_plan[0].delegates[0].processed.index
        program.backend_delegate_data[index] = BackendDelegateInlineData(data=b"not a flattened folder" * 4)

    broken = _rewrite(tiny["whole"], tmp_path / "broken.executorch.coreml.fp32.pte", garbage)
    with pytest.raises(PteError, match="not a flattened model folder"):
        open_runner(broken, _manifest([1, 8]), MIL_REFERENCE)


def test_bisect_of_a_coreml_pte_says_what_to_bisect_instead(xs_coreml_pte):
    from edgevit.api import bisect
    from edgevit.base.errors import ArtifactError

    with pytest.raises(ArtifactError, match=r"no XNNPACK delegate .*Bisect the \.mlpackage"):
        bisect(xs_coreml_pte.path)
