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


def test_bench_a_single_artifact(xs_artifacts):
    doc = bench([str(xs_artifacts["executorch"])], plan=Plan(warmup=1, iterations=2))
    jsonschema.validate(doc, SCHEMA)
    assert doc["results"][0]["form"] == "executorch" and doc["results"][0]["status"] == "ok"
