"""The sweep on real Ray: a local cluster started by the sweep (ray.init(num_cpus=2)) and a 2-node local cluster
(ray.cluster_utils.Cluster) for the failure policy: a task that raises, a worker killed mid-task, a resource no
node has, and a device-harness resource that only one node declares."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from edgevit.bench.results import load_results  # noqa: E402
from edgevit.studies.sweep import build_plan, run_sweep  # noqa: E402
from edgevit.studies.sweep.document import RESULTS_FILE, SWEEP_FILE  # noqa: E402
from edgevit.studies.sweep.engines import Job, RayEngine, run_jobs  # noqa: E402

TESTS = str(Path(__file__).parent)
MODEL = "timm:test_vit"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ray-cache")


def test_sweep_on_a_local_ray_cluster(tmp_path, cache):
    """Two cells on ray.init(num_cpus=2): one converts, validates and is timed on the bench_host resource; one
    (a checkpoint that is not one) fails in its worker, is retried once, and is recorded with both reasons."""
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    plan = build_plan([MODEL, {"name": "timm:test_convnext", "weights": str(bad)}], targets=["onnx"],
                      iterations=2, warmup=0, retries=1)
    doc = run_sweep(plan, tmp_path / "out", cache_dir=cache, engine="ray", num_cpus=2)
    assert doc.engine == "ray (local: 1 node(s), 2 CPUs)" and not ray.is_initialized()
    good, failed = doc.rows
    assert good["status"] == "converted" and good["parity"] == "pass" and good["worker"]["pid"] != os.getpid()
    assert good["bench"] == "ok" and good["bench_median_ms"] > 0
    assert failed["status"] == "failed" and len(failed["attempts"]) == 2
    assert failed["error"].startswith("WeightsError: ") and failed["attempts"][0] == failed["error"]
    written = json.loads((tmp_path / "out" / SWEEP_FILE).read_text())
    assert written["counts"] == {"converted": 1, "failed": 1} and written["finished"]
    results = load_results([tmp_path / "out" / RESULTS_FILE])
    assert [(r["model"], r["form"], r["status"]) for r in results] == [(MODEL, "onnx", "ok")]


@pytest.fixture(scope="module")
def cluster():
    """Two nodes on this machine: the head (1 CPU, bench_host) and a second (1 CPU, bench_host, fake_phone)."""
    from ray.cluster_utils import Cluster

    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (os.getcwd(), TESTS, saved) if p)  # the workers' imports
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"bench_host": 1},
                                                      "include_dashboard": False})
    phone_node = c.add_node(num_cpus=1, resources={"bench_host": 1, "fake_phone": 1})
    try:
        yield c, phone_node.node_id
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


def _run(cluster, jobs, retries=1, unschedulable_after=3.0):
    engine = RayEngine(cluster[0].address, unschedulable_after=unschedulable_after)
    seen = []
    try:
        run_jobs(engine, jobs, retries=retries, on_outcome=lambda o, final: seen.append((o, final)))
    finally:
        engine.shutdown()
    return seen


def test_failure_policy_on_a_two_node_cluster(cluster, tmp_path):
    jobs = [Job("ok", "support.sweep_jobs:square", {"x": 7}, {"CPU": 1}),
            Job("raises", "support.sweep_jobs:raise_value_error", {"message": "no kernel for op foo"}, {"CPU": 1}),
            Job("killed", "support.sweep_jobs:die_once", {"marker": str(tmp_path / "died")}, {"CPU": 1}),
            Job("phone", "support.sweep_jobs:square", {"x": 3}, {"fake_phone": 1}),
            Job("nowhere", "support.sweep_jobs:square", {"x": 1}, {"iphone15": 1})]
    seen = _run(cluster, jobs)
    final = {o.job.id: o for o, is_final in seen if is_final}
    assert set(final) == {"ok", "raises", "killed", "phone", "nowhere"}
    assert final["ok"].ok and final["ok"].value["value"] == 49
    # a task that raises: retried once (--retries 1), then recorded with the exception as the reason
    raised = [o for o, _ in seen if o.job.id == "raises"]
    assert len(raised) == 2 and not final["raises"].ok and final["raises"].kind == "raised"
    assert final["raises"].reason == "ValueError: no kernel for op foo"
    assert final["raises"].job.attempts == ["ValueError: no kernel for op foo"] * 2
    # a worker killed mid-task (SIGKILL): recorded as such, retried on a fresh worker, which succeeds
    killed = final["killed"]
    assert killed.ok and killed.job.attempts and killed.job.attempts[0].startswith("worker died mid-task")
    assert killed.value["killed_pid"] != killed.value["pid"]
    # a device-harness resource: runs on the one node that declares it
    assert final["phone"].ok and final["phone"].value["node"] == cluster[1]
    # a resource no node has: waits, then is reported unschedulable (not retried)
    nowhere = [o for o, _ in seen if o.job.id == "nowhere"]
    assert len(nowhere) == 1 and nowhere[0].kind == "unschedulable"
    assert "no node of the cluster has {'iphone15': 1} (waited 3 s)" in nowhere[0].reason


def test_retries_zero_records_the_first_failure(cluster):
    seen = _run(cluster, [Job("raises", "support.sweep_jobs:raise_value_error", {"message": "x"}, {"CPU": 1})],
                retries=0)
    assert len(seen) == 1 and seen[0][1] and seen[0][0].job.attempts == ["ValueError: x"]


def test_sweep_on_the_two_node_cluster_times_on_the_device_node(cluster, tmp_path, cache):
    """The sweep driven against the cluster's address: the artifact comes from the cache the local-cluster test
    filled (nothing converts), and its timing runs on the node that declares the timing resource."""
    plan = build_plan([MODEL], targets=["onnx"], iterations=2, warmup=0, bench_resource="fake_phone")
    doc = run_sweep(plan, tmp_path / "out", cache_dir=cache, engine="ray", address=cluster[0].address)
    row = doc.rows[0]
    assert doc.engine.endswith("2 node(s), 2 CPUs)")
    assert row["status"] == "cached" and row["bench"] == "ok" and row["bench_worker"]["node"] == cluster[1]
    unschedulable = build_plan([MODEL], targets=["onnx"], iterations=2, warmup=0, bench_resource="iphone15")
    doc = run_sweep(unschedulable, tmp_path / "out2", cache_dir=cache, engine="ray", address=cluster[0].address,
                    unschedulable_after=2)
    assert doc.rows[0]["status"] == "cached" and doc.rows[0]["bench"] == "failed"
    assert "unschedulable: no node of the cluster has {'iphone15': 1}" in doc.rows[0]["bench_error"]


def test_zoo_rows_on_the_cluster(cluster, tmp_path):
    """`edgevit zoo --engine ray`: the zoo's task runs in a worker of the 2-node cluster and returns its row."""
    from edgevit.studies.zoo import run_zoo

    engine = RayEngine(cluster[0].address)
    try:
        rows = run_zoo([MODEL], targets=("onnx",), out_dir=tmp_path / "zoo", mil_report=False, engine=engine)
    finally:
        engine.shutdown()
    (row,) = rows
    assert row["model"] == MODEL and row["status"] == "converted" and row["parity"] == "pass"
    assert Path(row["artifact"]).is_absolute() and Path(row["artifact"]).exists()
