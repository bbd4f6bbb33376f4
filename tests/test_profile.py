"""Per-op profiles (edgevit.bench.profile, `edgevit profile`): real ETDump and onnxruntime traces of a tiny model.

The model has a conv (XNNPACK IGEMM), a linear (GEMM) and a cumsum, which XNNPACK does not take: the profile
must show it on the portable kernels, the fallback path.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from edgevit.api import profile
from edgevit.base.errors import ArtifactError, UsageError
from edgevit.cli import main
from edgevit.validate.threads import executorch_threads


class Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 16, 3, padding=1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv(x)).mean((2, 3))
        return torch.cumsum(self.fc(y), -1)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    from edgevit.export.executorch import export_executorch
    from edgevit.export.onnx import export_onnx

    out = tmp_path_factory.mktemp("tiny")
    torch.manual_seed(0)
    model, example = Tiny().eval(), torch.randn(1, 3, 32, 32)
    export_executorch(model, example, out / "tiny.pte")
    export_onnx(model, example, out / "tiny.onnx")
    return {"pte": out / "tiny.pte", "onnx": out / "tiny.onnx"}


def _check_sums(prof) -> None:
    assert prof.ops and all(op.ms >= 0 and op.calls >= 1 for op in prof.ops)
    assert prof.total_ms > 0
    assert sum(op.ms for op in prof.ops) == pytest.approx(prof.total_ms)
    assert sum(op.percent for op in prof.ops) == pytest.approx(100.0)
    assert sum(r["ms"] for r in prof.by_type()) == pytest.approx(prof.total_ms)
    assert prof.run_ms is not None and prof.total_ms <= prof.run_ms * 1.01  # the ops run inside the run


def test_pte_profile_has_xnnpack_ops_and_the_portable_fallback(tiny):
    prof = profile(tiny["pte"], threads=1, iterations=5, warmup=1)
    _check_sums(prof)
    assert prof.runtime == "executorch" and prof.threads == 1 and executorch_threads() == 1
    kernels = {op.op_type: op.kernel for op in prof.ops}
    assert kernels["Convolution"].startswith("xnnpack") and "GEMM" in kernels["Convolution"]
    assert "Fully Connected" in kernels
    assert kernels["cumsum.out"] == "portable kernel (not delegated)"
    assert max(op.ms for op in prof.ops if op.op_type == "Convolution") > 0
    assert any("fallback" in note for note in prof.notes)


def test_onnx_profile_has_node_op_types_and_providers(tiny):
    prof = profile(tiny["onnx"], threads=2, iterations=5, warmup=1)
    _check_sums(prof)
    assert prof.runtime == "onnxruntime" and prof.threads == 2
    types = {op.op_type for op in prof.ops}
    assert {"Conv", "Gemm", "CumSum"} <= types, types
    assert all(op.kernel.startswith("CPUExecutionProvider") for op in prof.ops)
    assert all(op.ms > 0 for op in prof.ops if op.op_type == "Conv")


def test_cli_profile_prints_tables_within_120_columns_and_writes_json(tiny, tmp_path, capsys):
    out = tmp_path / "p.json"
    assert main(["profile", str(tiny["pte"]), "--threads", "1", "--iterations", "3", "--top", "4",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Convolution" in text and "time per op type" in text and "portable kernel" in text
    assert max(len(line) for line in text.splitlines()) <= 120
    doc = json.loads(out.read_text())
    assert doc["kind"] == "edgevit-profile/1" and doc["threads"] == 1 and doc["iterations"] == 3
    assert doc["total_ms"] == pytest.approx(sum(op["ms"] for op in doc["ops"]))


def test_cli_profile_of_a_missing_or_wrong_file_is_a_clear_error(tmp_path, capsys):
    assert main(["profile", str(tmp_path / "nope.pte")]) == ArtifactError.exit_code
    assert "artifact not found" in capsys.readouterr().err
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert main(["profile", str(text)]) == ArtifactError.exit_code
    assert "is not a .pte or .onnx" in capsys.readouterr().err
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    assert main(["profile", str(garbage)]) == ArtifactError.exit_code
    assert "onnxruntime cannot load it" in capsys.readouterr().err
    (tmp_path / "garbage.pte").write_bytes(b"not a program")
    assert main(["profile", str(tmp_path / "garbage.pte")]) == ArtifactError.exit_code
    assert "too short to be an ExecuTorch program" in capsys.readouterr().err  # refused before ExecuTorch sees it


def test_profile_refuses_bad_counts(tiny):
    with pytest.raises(UsageError, match="threads"):
        profile(tiny["onnx"], threads=0)
    with pytest.raises(UsageError, match="iterations"):
        profile(tiny["onnx"], iterations=0)


def test_bench_profiles_only_what_it_timed(tiny):
    """bench --profile: an artifact this host did not run (a not_run record) is not profiled, and a timed one is
    profiled at the threads its result records."""
    from edgevit.bench.forms import profile_into

    profiles: list = []
    profile_into(profiles, tiny["pte"], {"status": "not_run", "threads": None, "batch": 1}, lambda _m: None)
    assert profiles == []
    profile_into(profiles, tiny["onnx"], {"status": "ok", "threads": 1, "batch": 1}, lambda _m: None)
    ((path, prof),) = profiles
    assert path == tiny["onnx"] and prof["threads"] == 1 and prof["batch"] == 1 and prof["ops"]
