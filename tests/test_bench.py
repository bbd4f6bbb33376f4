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
from edgevit.bench.host_info import isa_flags

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


def test_host_bench_writes_the_schema(xs_artifacts, tmp_path, capsys):
    """The .pte and .onnx are timed against each other by the fair protocol: their medians are the protocol's
    kept samples (first of each block dropped), so the table's medians and ratio come from one measurement; the
    report puts them in one row with the slowest op type of each runtime's profile."""
    out = tmp_path / "bench.json"
    doc = bench(["swiftformer-xs"], artifacts=xs_artifacts["onnx"].parent, batches=[1],
                plan=Plan(warmup=1, iterations=18), out=out, threads=1, profile=True)
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)
    forms = {r["form"]: r for r in doc["results"]}
    assert set(forms) == {"original-eager", "prepared-eager", "executorch", "onnx", "coreml"}
    for form in ("original-eager", "prepared-eager"):
        assert forms[form]["status"] == "ok" and forms[form]["iterations"] == 18
    paired = forms["executorch"]["interleaved"]
    assert paired["against"] == "onnx" and paired["protocol"] == "blocks" and paired["note"] is None
    assert (paired["rounds"], paired["block"], paired["iterations"]) == (6, 3, 18)
    assert 0 < paired["ci_low"] <= paired["ratio"] <= paired["ci_high"]
    for form, key in (("executorch", "median_ms"), ("onnx", "against_median_ms")):
        r = forms[form]
        assert r["status"] == "ok" and r["iterations"] == 12 and len(r["per_iteration_ms"]) == 12  # 6 x (3 - 1)
        assert r["median_ms"] == pytest.approx(stats.median(r["per_iteration_ms"]), rel=1e-3)
        assert r["median_ms"] == pytest.approx(paired[key], rel=1e-3)
    assert forms["executorch"]["artifact_sha256"] and forms["executorch"]["load_time_ms"] > 0
    assert forms["coreml"]["status"] == "not_run" and forms["coreml"]["median_ms"] is None
    assert forms["executorch"]["device"]["isa"] == isa_flags() and forms["executorch"]["device"]["cpu_model"]

    from edgevit.cli import main

    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    capsys.readouterr()
    text = (tmp_path / "report" / "report.md").read_text()
    assert "The .pte against onnxruntime (fair protocol)" in text
    (row,) = [line for line in text.splitlines() if line.startswith("| swiftformer-xs | 1 | 1 |")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[5] == f"{paired['ratio']:.2f}× [{paired['ci_low']:.2f}–{paired['ci_high']:.2f}]"
    profiles = {t: json.loads((tmp_path / f"bench.{forms[t]['artifact']}.b1.profile.json").read_text())
                for t in ("executorch", "onnx")}
    for cell, prof in zip(cells[8:10], (profiles["executorch"], profiles["onnx"]), strict=True):
        assert cell.startswith(prof["by_type"][0]["op_type"]) and "not profiled" not in cell


def test_a_plan_too_short_for_the_protocol_times_each_alone_and_says_how_many_it_needs(xs_artifacts):
    import torch

    from edgevit.base.manifest import read_manifest
    from edgevit.bench.host import bench_pair

    pair = [(xs_artifacts[t], read_manifest(xs_artifacts[t])) for t in ("executorch", "onnx")]
    pte, onnx = bench_pair("swiftformer-xs", *pair, torch.randn(1, 3, 224, 224), Plan(warmup=0, iterations=3),
                           threads=1)
    assert pte["iterations"] == onnx["iterations"] == 3
    assert pte["interleaved"]["ratio"] is None and "at least 18 timed iterations" in pte["interleaved"]["note"]


def test_no_eager_times_only_the_artifacts(xs_artifacts):
    """make bench's --no-eager: the .pte and .onnx (and CoreML's not-run row), no eager PyTorch form."""
    doc = bench(["swiftformer-xs"], artifacts=xs_artifacts["onnx"].parent, batches=[1],
                plan=Plan(warmup=0, iterations=3), threads=1, eager=False)
    assert sorted(r["form"] for r in doc["results"]) == ["coreml", "executorch", "onnx"]
    assert all(r["median_ms"] > 0 for r in doc["results"] if r["form"] != "coreml")


def test_bench_a_single_artifact(xs_artifacts):
    doc = bench([str(xs_artifacts["executorch"])], plan=Plan(warmup=1, iterations=2))
    jsonschema.validate(doc, SCHEMA)
    assert doc["results"][0]["form"] == "executorch" and doc["results"][0]["status"] == "ok"


def test_results_carry_the_size_and_the_recorded_psnr_and_the_report_plots_them(xs_artifacts, tmp_path):
    """Issue 24's precision view: each artifact's size and the logits PSNR its manifest recorded sit beside its
    latency in the results, the report's tables and CSV, and a per-model plot of PSNR against latency whose front
    lists the artifacts no other is both faster and closer than."""
    from edgevit.base.manifest import read_manifest
    from edgevit.report import write_report

    paths = [str(xs_artifacts[t]) for t in ("executorch", "onnx")]
    doc = bench(paths, plan=Plan(warmup=1, iterations=2))
    jsonschema.validate(doc, SCHEMA)
    for result in doc["results"]:
        path = xs_artifacts[result["form"]]
        recorded = read_manifest(path)["parity"]["photos"]["psnr_db"]
        assert result["artifact_bytes"] == path.stat().st_size
        assert result["recorded_logits_psnr_db"] == pytest.approx(recorded, abs=0.01)
    out = write_report(doc["results"], tmp_path / "report", {})
    assert out.precision_png is not None and out.precision_png.read_bytes()[:4] == b"\x89PNG"
    text = out.markdown.read_text()
    assert "Precision: logits PSNR against latency" in text and "swiftformer-xs: " in text
    assert "precision.png" in text and "MB" in text and "logits PSNR (recorded)" in text
    assert "artifact_bytes" in out.results_csv.read_text().splitlines()[0]


def test_bench_records_threads_flops_and_the_physical_peak(xs_artifacts, tmp_path):
    """--threads is what every result ran at; FLOPs, achieved GFLOP/s and percent of the physical peak are
    consistent and never above 100; each runtime's best GEMM sits beside the peak; --profile writes a per-op profile
    beside the results."""
    out = tmp_path / "one.json"
    doc = bench([str(xs_artifacts["onnx"])], plan=Plan(warmup=1, iterations=2), threads=1, out=out, profile=True)
    jsonschema.validate(doc, SCHEMA)
    physical = doc["peak"]["physical"]
    assert doc["schema_version"] == 3 and physical["cores"] == 1
    assert physical["gflop_per_s"] == pytest.approx(physical["flop_per_cycle_per_core"] * physical["clock_ghz"],
                                                    rel=1e-2)
    gemm = doc["peak"]["runtime_gemm_gflop_per_s"]
    assert gemm["executorch-xnnpack"] > 0 and gemm["onnxruntime-mlas"] > 0
    (r,) = doc["results"]
    assert r["status"] == "ok" and r["threads"] == 1
    assert r["gflop"] > 0.1  # swiftformer-xs: about 0.6 GFLOP at 224x224
    assert r["gflop_per_s"] == pytest.approx(r["gflop"] / (r["median_ms"] / 1e3), rel=1e-3)
    if r["percent_of_peak"] is not None:
        assert r["percent_of_peak"] == pytest.approx(100 * r["gflop_per_s"] / physical["gflop_per_s"], rel=1e-3)
        assert r["percent_of_peak"] <= 100 and r["peak_note"] is None
    else:
        assert "the measurement is wrong" in r["peak_note"]
    prof = json.loads((tmp_path / f"one.{xs_artifacts['onnx'].name}.b1.profile.json").read_text())
    assert prof["threads"] == 1 and prof["batch"] == 1 and prof["runtime"] == "onnxruntime" and prof["total_ms"] > 0


def test_bench_threads_must_be_positive(xs_artifacts):
    from edgevit.base.errors import UsageError

    with pytest.raises(UsageError, match="threads"):
        bench([str(xs_artifacts["onnx"])], threads=0)
    with pytest.raises(UsageError, match="--profile"):
        bench([str(xs_artifacts["onnx"])], profile=True)


def test_version_1_and_2_files_still_load_with_the_new_fields_null(xs_artifacts, tmp_path):
    from edgevit.base.errors import SchemaError
    from edgevit.bench.results import V2_RESULT_FIELDS, V3_DEVICE_FIELDS, V3_RESULT_FIELDS, load_results

    doc = bench([str(xs_artifacts["onnx"])], plan=Plan(warmup=0, iterations=1), threads=1)
    old_device = {k: v for k, v in doc["results"][0]["device"].items() if k not in V3_DEVICE_FIELDS}
    v2 = {k: v for k, v in doc.items() if k != "peak"} | {"schema_version": 2, "gemm_peak_gflop_per_s": 100.0}
    v2["results"] = [{k: v for k, v in r.items() if k not in V3_RESULT_FIELDS} | {"device": old_device,
                                                                                 "interleaved": None}
                     for r in doc["results"]]
    two = tmp_path / "v2.json"
    two.write_text(json.dumps(v2))
    (loaded,) = load_results([two])
    assert loaded["peak_note"] is None and loaded["device"]["isa"] is None and loaded["threads"] == 1
    v1 = {k: v for k, v in v2.items() if k != "gemm_peak_gflop_per_s"} | {"schema_version": 1}
    v1["results"] = [{k: v for k, v in r.items() if k not in V2_RESULT_FIELDS} for r in v2["results"]]
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
    printed = capsys.readouterr().out
    assert "threads: 1" in printed and "physical fp32 peak:" in printed and "best dense GEMM here" in printed
    # the paper's figure, on its own line (the console may wrap it)
    assert "swiftformer-xs 0.7 ms on iPhone 14, Neural Engine" in " ".join(printed.split())
    assert main(["bench", str(xs_artifacts["executorch"]), "--device", "android", "--threads", "2",
                 "--out", str(tmp_path / "phone.json")]) == 2
    assert "--threads and --profile are for the host harness" in capsys.readouterr().err


def test_threads_above_the_cpus_this_process_may_use_warn_and_are_recorded(xs_artifacts):
    from edgevit.validate.threads import available_cpus

    too_many = available_cpus() + 1
    with pytest.warns(UserWarning, match=f"--threads {too_many} is above"):
        doc = bench([str(xs_artifacts["onnx"])], plan=Plan(warmup=0, iterations=1), threads=too_many)
    assert doc["results"][0]["threads"] == too_many
    assert any(f"--threads {too_many} is above" in note for note in doc["peak"]["notes"])
    assert doc["peak"]["physical"] is None or doc["peak"]["physical"]["cores"] == available_cpus()


def test_no_percentage_above_100_or_without_a_derivable_peak():
    from edgevit.bench.host import result_record, results_document
    from edgevit.bench.peak import PeakUnavailable, check_percent, physical_peak

    assert check_percent(50.0, 100.0) == (50.0, None)
    over, why = check_percent(150.0, 100.0)
    assert over is None and "the measurement is wrong" in why
    with pytest.raises(PeakUnavailable, match="could not build"):
        physical_peak(1, compiler="/nonexistent/cc", use_cache=False)
    plan = Plan(warmup=0, iterations=1)
    record = result_record("m", "onnx", "onnxruntime", 1, [1, 3, 8, 8], plan, samples=[10.0], gflop=1.0)
    doc = results_document([record], {"threads": 1, "physical": None, "runtime_gemm_gflop_per_s": {},
                                      "runtime_gemm_percent_of_peak": None, "notes": ["cannot be derived"]})
    assert doc["results"][0]["percent_of_peak"] is None and "no physical peak" in doc["results"][0]["peak_note"]
    peak = {"threads": 1, "physical": {"gflop_per_s": 50.0}, "notes": []}
    fast = result_record("m", "onnx", "onnxruntime", 1, [1, 3, 8, 8], plan, samples=[10.0], gflop=1.0)  # 100 GFLOP/s
    slow = result_record("m", "onnx", "onnxruntime", 1, [1, 3, 8, 8], plan, samples=[40.0], gflop=1.0)  # 25 GFLOP/s
    results_document([fast, slow], peak)
    assert fast["percent_of_peak"] is None and "the measurement is wrong" in fast["peak_note"]
    assert slow["percent_of_peak"] == 50.0 and slow["peak_note"] is None


def test_onnxruntime_is_released_between_its_blocks_when_it_has_worker_threads(xs_artifacts):
    """At 2 threads the .onnx contender drops its session (joining its spinning workers) after each block and opens
    it again before the next; at 1 thread there are no workers and the session stays."""
    import gc

    import onnxruntime as ort
    import torch

    from edgevit.base.manifest import read_manifest
    from edgevit.bench.host import artifact_contender

    def live_sessions() -> int:
        gc.collect()
        return sum(isinstance(o, ort.InferenceSession) for o in gc.get_objects())

    path = xs_artifacts["onnx"]
    example = torch.randn(1, 3, 224, 224)
    before = live_sessions()
    contender = artifact_contender(path, read_manifest(path), example, threads=2)
    contender.run()
    assert live_sessions() == before + 1
    contender.after_block()
    assert live_sessions() == before  # released: its threads are gone while the other form runs
    contender.before_block()
    contender.run()
    assert live_sessions() == before + 1
    contender.after_block()
    single = artifact_contender(path, read_manifest(path), example, threads=1)
    assert single.before_block is None and single.after_block is None
