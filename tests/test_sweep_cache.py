"""The sweep in this process and its content-addressed cache, with real conversions (timm's 370k-parameter
test_vit -> ONNX):
streamed files readable at every step, a re-run that converts nothing, a corrupted entry rebuilt, two processes
writing one cache at once, and `edgevit cache ls|prune|clear`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.cli import ENV

from edgevit.base.digest import sha256_of
from edgevit.base.errors import OutputError
from edgevit.base.manifest import read_manifest
from edgevit.bench.results import load_results
from edgevit.cli import main
from edgevit.export.cache import ArtifactCache, artifact_key
from edgevit.studies.sweep import SweepEvents, build_plan, run_sweep
from edgevit.studies.sweep.document import RESULTS_FILE, SWEEP_FILE

MODEL = "timm:test_vit"
PLAN = {"models": [MODEL], "targets": ["onnx"]}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    """One real sweep (convert, validate, time 2 iterations); every intermediate state of its files recorded."""
    root = tmp_path_factory.mktemp("sweep")
    out, cache = root / "out", root / "cache"
    seen: list[tuple[dict, list]] = []

    def snapshot(_counts, _message):  # the files must be complete and valid after every event
        seen.append((json.loads((out / SWEEP_FILE).read_text()), load_results([out / RESULTS_FILE])))

    plan = build_plan(**PLAN, iterations=2, warmup=0)
    doc = run_sweep(plan, out, cache_dir=cache, engine="serial", events=SweepEvents(update=snapshot))
    return doc, out, cache, seen


def test_first_run_converts_validates_and_times(first_run):
    doc, out, cache, seen = first_run
    row = doc.rows[0]
    assert row["status"] == "converted" and row["cache"] == "miss" and row["parity"] == "pass"
    assert row["parity_runtime"] == "onnxruntime" and row["peak_rss_mb"] > 100 and row["convert_s"] > 0
    artifact = out / row["artifact"]
    assert read_manifest(artifact)["sha256"] == sha256_of(artifact)
    assert row["bench"] == "ok" and row["bench_median_ms"] > 0
    # streamed: the first snapshot has the row pending/running and no results; the last has both
    assert seen[0][0]["rows"][0]["status"] in ("pending", "running") and seen[0][1] == []
    assert seen[-1][0]["rows"][0]["status"] == "converted" and seen[-1][1][0]["form"] == "onnx"
    final = json.loads((out / SWEEP_FILE).read_text())
    assert final["finished"] and final["counts"] == {"converted": 1} and final["engine"] == "in-process (serial)"


def test_report_reads_the_sweep_folder(first_run, tmp_path, capsys):
    _doc, out, _cache, _seen = first_run
    assert main(["report", str(out), "--out", str(tmp_path / "report")]) == 0
    assert MODEL in (tmp_path / "report" / "report.md").read_text()


def test_second_run_converts_nothing(first_run, tmp_path, capsys):
    doc, out, cache, _seen = first_run
    start = time.perf_counter()
    code = main(["sweep", MODEL, "--target", "onnx", "--engine", "serial", "--no-bench",
                 "--out", str(tmp_path / "again"), "--cache", str(cache)])
    seconds = time.perf_counter() - start
    text = " ".join(capsys.readouterr().out.split())
    assert code == 0 and "1 cached, 0 to convert" in text and "1 cells: 1 cached; parity: 1 pass" in text
    row = json.loads((tmp_path / "again" / SWEEP_FILE).read_text())["rows"][0]
    assert row["status"] == "cached" and row["cache"] == "hit" and row["convert_s"] is None
    assert row["key"] == doc.rows[0]["key"] and row["parity"] == "pass"
    assert sha256_of(tmp_path / "again" / row["artifact"]) == sha256_of(out / doc.rows[0]["artifact"])
    assert seconds < 30, seconds


def test_second_run_reuses_this_hosts_timing_and_rebench_times_again(first_run, tmp_path):
    """A warm re-run with the same bench settings on this host re-times nothing: the row and results carry the
    first run's timing (and say when it was taken). Other settings, --rebench, or a stored timing of other bytes
    time the artifact again."""
    from edgevit.bench.host_info import timing_fingerprint
    from edgevit.validate.threads import default_threads

    doc, _out, cache, _seen = first_run
    first = doc.rows[0]
    plan = build_plan(**PLAN, iterations=2, warmup=0)
    warm = run_sweep(plan, tmp_path / "warm", cache_dir=cache, engine="serial")
    row = warm.rows[0]
    assert row["status"] == "cached" and row["bench_cache"].startswith("hit (timed 20")
    assert row["bench_median_ms"] == first["bench_median_ms"] and row["bench_worker"] == first["bench_worker"]
    assert load_results([tmp_path / "warm" / RESULTS_FILE])[0]["median_ms"] == first["bench_median_ms"]
    from edgevit.studies.sweep.document import summary_line

    assert "1 timings of this host reused from the cache" in summary_line(warm.rows)
    other = run_sweep(build_plan(**PLAN, iterations=3, warmup=0), tmp_path / "other", cache_dir=cache,
                      engine="serial").rows[0]
    again = run_sweep(plan, tmp_path / "again", cache_dir=cache, engine="serial", rebench=True).rows[0]
    for timed in (other, again):
        assert timed["bench"] == "ok" and timed["bench_cache"] is None and timed["bench_median_ms"] > 0
    # a stored timing whose artifact sha256 is not the entry's is not used
    timings = Path(cache) / "entries" / first["key"] / "timings"
    stored = sorted(timings.glob("*.json"))
    assert len(stored) == 2  # iterations 2 and 3: two fingerprints
    fingerprint = timing_fingerprint({"iterations": 2, "warmup": 0, "threads": default_threads(),
                                      "harness": "edgevit.api.bench"})
    mine = timings / f"{fingerprint}.json"
    record = json.loads(mine.read_text())
    record["artifact_sha256"] = "0" * 64
    mine.write_text(json.dumps(record))
    retimed = run_sweep(plan, tmp_path / "tampered", cache_dir=cache, engine="serial").rows[0]
    assert retimed["bench_cache"] is None and retimed["bench"] == "ok"
    # one of these bytes' own, whose records no longer conform to the results schema, is timed again too
    record = json.loads(mine.read_text())
    record["value"]["results"] = [{"median_ms": "fast"}]
    mine.write_text(json.dumps(record))
    edited = run_sweep(plan, tmp_path / "edited", cache_dir=cache, engine="serial").rows[0]
    assert edited["bench_cache"] is None and edited["bench"] == "ok" and edited["bench_median_ms"] > 0
    print(f"first {first['bench_median_ms']} ms; reused {row['bench_median_ms']} ms ({row['bench_cache']}); "
          f"iterations 3: {other['bench_median_ms']} ms; --rebench: {again['bench_median_ms']} ms")


def test_key_covers_what_determines_the_artifact(first_run):
    doc, _out, cache, _seen = first_run
    entry, problem = ArtifactCache(cache).lookup(doc.rows[0]["key"])
    assert problem is None
    inputs = entry.record["inputs"]
    assert artifact_key(inputs) == doc.rows[0]["key"]
    assert set(inputs["tools"]) == {"edgevit", "torch", "coremltools", "executorch", "onnxruntime"}
    assert inputs["weights"] == {"init": "exercised", "seed": 0} and inputs["model"]["input_size"] == [3, 160, 160]
    changed = json.loads(json.dumps(inputs))
    changed["weights"] = {"sha256": "0" * 64}
    assert artifact_key(changed) != doc.rows[0]["key"]


def test_changing_one_weights_file_changes_only_its_cells_keys(tmp_path):
    from edgevit.studies.sweep.tasks import cell_key

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"first")
    plan = build_plan([MODEL, {"name": "timm:test_convnext", "weights": str(weights)}], targets=["onnx", "executorch"])
    before = [cell_key(c)[0] for c in plan.cells]
    weights.write_bytes(b"second")
    after = [cell_key(c)[0] for c in plan.cells]
    assert [b == a for b, a in zip(before, after, strict=True)] == [True, True, False, False]
    assert len(set(before)) == 4  # every cell its own key


def test_corrupted_entry_is_detected_and_rebuilt(first_run, tmp_path):
    doc, _out, cache, _seen = first_run
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    key = doc.rows[0]["key"]
    artifact = copy / "entries" / key / Path(doc.rows[0]["artifact"]).name
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    entry, problem = ArtifactCache(copy).lookup(key)
    assert entry is None and problem.startswith("artifact bytes changed")
    rebuilt = run_sweep(build_plan(**PLAN, bench=False), tmp_path / "out", cache_dir=copy, engine="serial")
    row = rebuilt.rows[0]
    assert row["status"] == "converted" and row["cache"].startswith("rebuilt: the entry was corrupt (artifact bytes")
    assert ArtifactCache(copy).lookup(key)[1] is None  # a good entry again


def test_cache_ls_prune_clear(first_run, tmp_path, capsys):
    doc, _out, cache, _seen = first_run
    copy = tmp_path / "cache"
    shutil.copytree(cache, copy)
    key = doc.rows[0]["key"]
    assert main(["cache", "ls", "--cache", str(copy)]) == 0
    assert Path(doc.rows[0]["artifact"]).name in capsys.readouterr().out
    record = copy / "entries" / key / "entry.json"
    record.write_text(record.read_text().replace(doc.rows[0]["key"][:20], "f" * 20, 1))
    assert main(["cache", "ls", "--cache", str(copy)]) == 0
    assert "1 corrupt or incomplete" in " ".join(capsys.readouterr().out.split())
    assert main(["cache", "prune", "--cache", str(copy)]) == 0
    assert "removed 1 entries" in capsys.readouterr().out and not (copy / "entries" / key).exists()
    shutil.copytree(cache / "entries" / key, copy / "entries" / key)
    assert main(["cache", "prune", "--cache", str(copy)]) == 0 and (copy / "entries" / key).exists()  # good: kept
    assert main(["cache", "clear", "--cache", str(copy)]) == 0
    assert "1 entries" in capsys.readouterr().out and list((copy / "entries").iterdir()) == []


def test_cache_that_cannot_be_written_is_refused(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="is not writable. Give another with --cache DIR"):
        ArtifactCache(blocker / "cache")


@pytest.mark.slow  # two conversions in two fresh processes: ~80 s on the shared 2-core host
def test_two_processes_writing_one_cache(tmp_path):
    """Two sweeps of the same cell into one empty cache at once: both finish, the entry verifies, each output
    artifact matches its manifest (the publish transaction under the entry's lock)."""
    cache = tmp_path / "cache"
    procs = [subprocess.Popen([sys.executable, "-m", "edgevit.cli", "sweep", MODEL, "--target", "onnx",
                               "--engine", "serial", "--no-bench", "-q", "--cache", str(cache),
                               "--out", str(tmp_path / f"out{i}")], env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for i in (1, 2)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    rows = [json.loads((tmp_path / f"out{i}" / SWEEP_FILE).read_text())["rows"][0] for i in (1, 2)]
    assert {r["status"] for r in rows} <= {"converted", "cached"} and rows[0]["key"] == rows[1]["key"]
    entry, problem = ArtifactCache(cache).lookup(rows[0]["key"])
    assert problem is None and entry is not None
    for i, row in enumerate(rows, 1):
        artifact = tmp_path / f"out{i}" / row["artifact"]
        assert read_manifest(artifact)["sha256"] == sha256_of(artifact)
    assert [p.name for p in (cache / "entries").iterdir()] == [rows[0]["key"]]
    assert not list(Path(cache / "entries" / rows[0]["key"]).glob(".edgevit-stage-*"))  # no staging left behind
