"""The CLI as a user runs it: clear errors without tracebacks, non-zero exits, real output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from edgevit.base.naming import manifest_path


def edgevit(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgevit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=900)


def test_help_teaches():
    proc = edgevit("convert", "--help")
    assert proc.returncode == 0
    for word in ("--target", "--weights", "--attention-form", "--precision", "--tensor-input", "random-init"):
        assert word in proc.stdout


def test_unknown_model_suggests_close_names():
    proc = edgevit("convert", "swiftformer-l2", "--target", "onnx")
    assert proc.returncode == 2
    assert "swiftformer-l1" in proc.stderr and "swiftformer-l3" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_unknown_timm_model_suggests_close_names():
    proc = edgevit("convert", "timm:fastvit_t9", "--target", "onnx")
    assert proc.returncode == 2 and "timm:fastvit_t8" in proc.stderr and "Traceback" not in proc.stderr


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"foo": torch.zeros(3)}, bad)
    proc = edgevit("convert", "swiftformer-xs", "--target", "onnx", "--weights", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    assert "missing keys" in proc.stderr and "unexpected keys (1): foo" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list((tmp_path / "o").glob("*.onnx"))


def test_convert_and_validate_end_to_end(tmp_path):
    proc = edgevit("convert", "swiftformer-xs", "--target", "onnx", "--out", str(tmp_path), "--no-mil-report")
    assert proc.returncode == 0, proc.stderr
    assert "RANDOM-INIT" in proc.stdout and "pass" in proc.stdout
    art = tmp_path / "swiftformer-xs.onnx.fp32.onnx"
    assert json.loads(manifest_path(art).read_text())["parity"]["status"] == "pass"
    proc = edgevit("validate", str(art))
    assert proc.returncode == 0 and "pass" in proc.stdout
    assert max(len(line) for line in proc.stdout.splitlines()) <= 120, "the default table fits 120 columns"
    assert "cosine" not in proc.stdout
    proc = edgevit("validate", str(art), "--wide", "--json", str(tmp_path / "parity.json"))
    assert proc.returncode == 0 and "cosine" in proc.stdout and "rel L2" in proc.stdout and "fidelity" in proc.stdout
    (record,) = json.loads((tmp_path / "parity.json").read_text())
    assert record["status"] == "pass" and record["overall"]["cosine"] > 0.99 and record["artifact"] == art.name
    assert record["fidelity"]["status"] == "pass" and record["fidelity"]["margin"] < 0.1  # an fp32 .onnx: ~0.004
    assert record["cost"]["status"] == "pass" and record["cost"]["floor_source"] == "edgevit default for fp32"
    proc = edgevit("validate", str(tmp_path / "missing.pte"))
    assert proc.returncode == 2 and "not found" in proc.stderr


def test_zoo_unknown_model_stops_before_converting(tmp_path):
    proc = edgevit("zoo", "fastvit-sa25", "--out", str(tmp_path / "zoo"))
    assert proc.returncode == 2 and "fastvit-sa24" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "zoo").exists()


def test_zoo_table_and_json_from_a_real_conversion(tmp_path):
    """One small zoo model to ONNX (the quickest target): a converted row with parity and a measured .pte-free
    row (no ExecuTorch target, so no latency is claimed)."""
    out = tmp_path / "zoo.json"
    proc = edgevit("zoo", "mobileone-s0", "--target", "onnx", "--out", str(tmp_path / "a"), "--json", str(out),
                   "--markdown", str(tmp_path / "zoo.md"), "--no-mil-report", "-q")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "edgevit-zoo/1" and doc["device"]["cpu"]
    (row,) = doc["rows"]
    assert row["model"] == "mobileone-s0" and row["status"] == "converted" and row["parity"] == "pass"
    assert row["rel_l2"] < 1e-4 and row["pte_latency_ms"] is None
    assert "| mobileone-s0 | onnx | converted | pass |" in (tmp_path / "zoo.md").read_text()


@pytest.mark.parametrize("option", ["--json", "--markdown", "--out"])
def test_zoo_unwritable_output_stops_before_converting(tmp_path, option):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    target = blocker / "sub" / ("zoo.json" if option != "--out" else "")
    args = ["zoo", "mobileone-s0", "--target", "onnx", "--out", str(tmp_path / "art")]
    proc = edgevit(*args, option, str(target))
    assert proc.returncode == 2 and "cannot write to output directory" in proc.stderr
    assert "Traceback" not in proc.stderr and "mobileone-s0 ->" not in proc.stdout + proc.stderr
    assert not list((tmp_path / "art").glob("*.onnx"))


def test_profile_help_and_a_missing_artifact_is_one_clear_line(tmp_path):
    proc = edgevit("profile", "--help")
    assert proc.returncode == 0
    for word in ("--threads", "--iterations", "--top", "--json", "ETDump", "fallback"):
        assert word in proc.stdout
    proc = edgevit("profile", str(tmp_path / "missing.pte"))
    assert proc.returncode == 2
    assert "artifact not found" in proc.stderr and "Traceback" not in proc.stderr + proc.stdout
