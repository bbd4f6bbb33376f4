"""Host bench: results conform to the shared schema; statistics match their definitions."""

from __future__ import annotations

import json
import random
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from edgevit.api import bench
from edgevit.bench import stats
from edgevit.bench.host import Plan

SCHEMA = json.loads((Path(__file__).parents[1] / "edgevit" / "bench" / "schema.json").read_text())


def test_stats_match_numpy_and_the_definition():
    rng = random.Random(0)
    for n in (1, 2, 3, 10, 11, 57):
        xs = [rng.random() * 10 for _ in range(n)]
        assert stats.median(xs) == pytest.approx(np.median(xs))
        assert stats.percentile(xs, 90) == pytest.approx(np.percentile(xs, 90))
        k = int(n * 0.1)
        assert stats.trimmed_mean(xs) == pytest.approx(np.mean(sorted(xs)[k : n - k]))
    assert stats.summarize([])["median_ms"] is None


def test_host_bench_writes_the_schema(xs_artifacts, tmp_path):
    out = tmp_path / "bench.json"
    doc = bench(["swiftformer-xs"], artifacts=xs_artifacts["onnx"].parent, batches=[1],
                plan=Plan(warmup=1, iterations=3), out=out)
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    forms = {r["form"]: r for r in doc["results"]}
    assert set(forms) == {"original-eager", "prepared-eager", "executorch", "onnx", "coreml"}
    for form in ("original-eager", "prepared-eager", "executorch", "onnx"):
        r = forms[form]
        assert r["status"] == "ok" and r["iterations"] == 3 and len(r["per_iteration_ms"]) == 3
        assert r["median_ms"] == pytest.approx(stats.median(r["per_iteration_ms"]), rel=1e-3)
    assert forms["executorch"]["artifact_sha256"] and forms["executorch"]["load_time_ms"] > 0
    assert forms["coreml"]["status"] == "not_run" and forms["coreml"]["median_ms"] is None
    paired = forms["executorch"]["interleaved"]  # .pte and .onnx alternated in one loop
    assert paired["against"] == "onnx" and paired["iterations"] == 3 and paired["ratio"] > 0
    assert paired["median_ms"] > 0 and paired["against_median_ms"] > 0


def test_bench_a_single_artifact(xs_artifacts):
    doc = bench([str(xs_artifacts["executorch"])], plan=Plan(warmup=1, iterations=2))
    jsonschema.validate(doc, SCHEMA)
    assert doc["results"][0]["form"] == "executorch" and doc["results"][0]["status"] == "ok"


def test_bench_records_threads_flops_and_the_gemm_peak(xs_artifacts, tmp_path):
    """--threads is what every result ran at; FLOPs, achieved GFLOP/s and percent of peak are consistent; --profile
    writes a per-op profile beside the results."""
    out = tmp_path / "one.json"
    doc = bench([str(xs_artifacts["onnx"])], plan=Plan(warmup=1, iterations=2), threads=1, out=out, profile=True)
    jsonschema.validate(doc, SCHEMA)
    assert doc["schema_version"] == 2 and doc["gemm_peak_gflop_per_s"] > 0
    (r,) = doc["results"]
    assert r["status"] == "ok" and r["threads"] == 1
    assert r["gflop"] > 0.1  # swiftformer-xs: about 0.6 GFLOP at 224x224
    assert r["gflop_per_s"] == pytest.approx(r["gflop"] / (r["median_ms"] / 1e3), rel=1e-3)
    assert r["percent_of_peak"] == pytest.approx(100 * r["gflop_per_s"] / doc["gemm_peak_gflop_per_s"], rel=1e-3)
    prof = json.loads((tmp_path / f"one.{xs_artifacts['onnx'].name}.profile.json").read_text())
    assert prof["threads"] == 1 and prof["runtime"] == "onnxruntime" and prof["total_ms"] > 0


def test_bench_threads_must_be_positive(xs_artifacts):
    from edgevit.base.errors import UsageError

    with pytest.raises(UsageError, match="threads"):
        bench([str(xs_artifacts["onnx"])], threads=0)
    with pytest.raises(UsageError, match="--profile"):
        bench([str(xs_artifacts["onnx"])], profile=True)


def test_version_1_files_still_load_with_the_new_fields_null(xs_artifacts, tmp_path):
    from edgevit.base.errors import SchemaError
    from edgevit.bench.results import V2_RESULT_FIELDS, load_results

    doc = bench([str(xs_artifacts["onnx"])], plan=Plan(warmup=0, iterations=1), threads=1)
    v1 = {k: v for k, v in doc.items() if k != "gemm_peak_gflop_per_s"} | {"schema_version": 1}
    v1["results"] = [{k: v for k, v in r.items() if k not in V2_RESULT_FIELDS} for r in doc["results"]]
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(v1))
    (loaded,) = load_results([old])
    assert all(loaded[k] is None for k in V2_RESULT_FIELDS) and loaded["median_ms"] == doc["results"][0]["median_ms"]
    half = tmp_path / "v2-without-threads.json"  # a version-2 file must carry the version-2 fields
    half.write_text(json.dumps({**v1, "schema_version": 2, "gemm_peak_gflop_per_s": None}))
    with pytest.raises(SchemaError, match="threads"):
        load_results([half])


def test_cli_bench_threads_is_recorded_and_android_refuses_it(xs_artifacts, tmp_path, capsys):
    from edgevit.cli import main

    out = tmp_path / "cli.json"
    assert main(["bench", str(xs_artifacts["executorch"]), "--threads", "1", "--iterations", "2", "--warmup", "0",
                 "--out", str(out), "-q"]) == 0
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, SCHEMA)
    assert [r["threads"] for r in doc["results"]] == [1]
    assert "threads: 1; fp32 GEMM peak here" in capsys.readouterr().out
    assert main(["bench", str(xs_artifacts["executorch"]), "--device", "android", "--threads", "2",
                 "--out", str(tmp_path / "phone.json")]) == 2
    assert "--threads and --profile are for the host harness" in capsys.readouterr().err
