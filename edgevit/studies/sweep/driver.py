"""``run_sweep``: every cell of a plan to an end, converting only what the cache does not hold.

1. In this process: each cell's key (edgevit.export.cache), looked up in the cache. A verified entry is copied into
   ``OUT/artifacts`` (status ``cached``, its verdict from its manifest); a corrupt one is evicted and rebuilt.
2. On the engine: one conversion task per remaining cell (convert -> validate, into its cache entry), with the
   failure policy of ``engines.run_jobs``; each finished task's artifact is verified and copied out as it ends.
3. Then one timing task per artifact, on the bench resource, once no conversion runs any more (timings never share
   a machine with a conversion or with each other). A timing is kept in the artifact's cache entry under this host's
   fingerprint and bench settings (edgevit.bench.host_info.timing_fingerprint): a re-run on the same local host
   re-times nothing (row ``bench_cache`` "hit", with when it was timed) unless ``rebench``. Timings on an existing
   cluster or on a device resource are not reused: this process cannot fingerprint the node that takes them.

``sweep.json`` and ``results.json`` are rewritten after every event, so an interrupted sweep keeps its finished rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgevit.base.atomic import ensure_writable_dir
from edgevit.studies.sweep.document import ARTIFACTS_DIR, SweepDocument
from edgevit.studies.sweep.engines import (
    Job,
    Outcome,
    RayEngine,
    SerialEngine,
    check_reachable,
    ray_available,
    run_jobs,
)
from edgevit.studies.sweep.plan import SweepPlan

ENGINES = ("auto", "ray", "serial")
# A conversion's memory request: one conversion + validation of a seed model peaked at 1.5 GiB resident
# (swiftformer-l1 -> CoreML, /usr/bin/time -v; README, "Sweeps"); twice that leaves room for the larger seeds.
DEFAULT_CONVERT_MEMORY_GB = 3.0


@dataclass
class SweepEvents:
    """What a display is told: the engine once, then the counts and a message after every change."""

    engine: Callable[[str, int], None] = lambda _name, _total: None
    update: Callable[[dict, str], None] = lambda _counts, _message: None


def make_engine(engine: str, address: str | None, unschedulable_after: float,
                num_cpus: int | None) -> SerialEngine | RayEngine:
    if engine not in ENGINES:
        from edgevit.base.errors import UsageError

        raise UsageError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "serial" or (engine == "auto" and not ray_available() and address is None):
        return SerialEngine()
    return RayEngine(address, unschedulable_after=unschedulable_after, num_cpus=num_cpus)


def run_sweep(plan: SweepPlan, out: str | Path, *, cache_dir: str | Path | None = None, engine: str = "auto",
              address: str | None = None, unschedulable_after: float = 120.0, num_cpus: int | None = None,
              convert_cpus: float = 1, convert_memory_gb: float = DEFAULT_CONVERT_MEMORY_GB,
              events: SweepEvents | None = None, engine_instance=None, rebench: bool = False) -> SweepDocument:
    """Run ``plan`` into ``out`` (artifacts in ``out/artifacts``, sweep.json, results.json); returns the document.

    ``engine``: "ray" (``address``/RAY_ADDRESS, else a local cluster of ``num_cpus``), "serial" (this process),
    or "auto" (Ray when installed). The engine starts only if some cell is not cached or timings are asked for.
    """
    from edgevit.export.cache import ArtifactCache
    from edgevit.studies.sweep.tasks import cell_key

    events = events or SweepEvents()
    if engine != "serial" and engine_instance is None and (address or os.environ.get("RAY_ADDRESS")):
        check_reachable(address or os.environ["RAY_ADDRESS"])  # before any work, not after the cache pass
    out = Path(out).resolve()  # workers do not share this process's working directory
    artifacts = ensure_writable_dir(out / ARTIFACTS_DIR)
    cache = ArtifactCache(Path(cache_dir).resolve() if cache_dir is not None else None)
    doc = SweepDocument(out, plan, engine, cache.root)
    rows = doc.rows

    def update(message: str) -> None:
        doc.write()
        events.update(dict(doc.counts()), message)

    convert_jobs: list[Job] = []
    bench_jobs: list[Job] = []
    convert_resources = {"CPU": convert_cpus, "memory": convert_memory_gb * 2**30}

    fingerprint = _timing_fingerprint(plan, address, engine_instance)
    artifact_sha: dict[int, str] = {}

    def queue_bench(i: int, sha256: str) -> None:
        if not plan.bench:
            return
        artifact_sha[i] = sha256
        stored = cache.timing(rows[i]["key"], fingerprint, sha256) if fingerprint and not rebench else None
        if stored is not None and _usable_timing(stored["value"]):
            _timed(rows[i], stored["value"], doc)
            rows[i]["bench_cache"] = f"hit (timed {stored['timed_at']})"
            return
        bench_jobs.append(Job(f"bench:{i}", "edgevit.studies.sweep.tasks:bench_task",
                              {"artifact": str(out / rows[i]["artifact"]), "iterations": plan.iterations,
                               "warmup": plan.warmup}, {"CPU": 1, plan.bench_resource: 1}))

    for i, cell in enumerate(plan.cells):
        row = rows[i]
        key, inputs = cell_key(cell)
        row["key"] = key
        entry, problem = cache.lookup(key)
        if problem is not None:
            cache.evict(key)
            row["cache"] = f"rebuilt: the entry was corrupt ({problem})"
            events.update(dict(doc.counts()), f"cache entry of {cell.label} is corrupt ({problem}): evicted, "
                          "it will be rebuilt")
        if entry is not None:
            cache.touch(key)
            _finish(row, cache.materialize(entry, artifacts), out, entry.manifest.get("parity"), "cached")
            row["cache"] = "hit"
            queue_bench(i, entry.record["sha256"])
        else:
            row["cache"] = row["cache"] or "miss"
            convert_jobs.append(Job(f"convert:{i}", "edgevit.studies.sweep.tasks:convert_task",
                                    {"cell": cell.to_json(), "key": key, "key_inputs": inputs,
                                     "cache_root": str(cache.root)}, dict(convert_resources),
                                    # one worker kept for 40 conversions grew from 1.3 to 4.8 GB resident (README)
                                    fresh_process=True))
    cached = sum(r["status"] == "cached" for r in rows)
    reused = sum(bool(r.get("bench_cache")) for r in rows)
    update(f"{cached} cached, {len(convert_jobs)} to convert" + (f"; {reused} timing(s) of this host reused "
                                                                  "(--rebench to time again)" if reused else ""))
    if not convert_jobs and not bench_jobs:
        doc.finish()
        return doc
    runner = engine_instance or make_engine(engine, address, unschedulable_after, num_cpus)
    doc.engine = runner.describe()
    events.engine(doc.engine, len(rows))
    memory = runner.largest("memory")
    if address is None and not os.environ.get("RAY_ADDRESS") and 0 < memory < convert_memory_gb * 2**30:
        # a local cluster on a machine with less free memory than one request: ask for what it has, say so
        for job in convert_jobs:
            job.resources["memory"] = memory
        events.update(dict(doc.counts()), f"this machine offers {memory / 2**30:.1f} GiB to Ray, less than the "
                      f"{convert_memory_gb:g} GiB a conversion asks for: conversions ask for that instead")
    for job in convert_jobs:
        rows[int(job.id.split(":")[1])]["status"] = "running"

    def on_outcome(outcome: Outcome, final: bool) -> None:
        kind, i = outcome.job.id.split(":")
        row = rows[int(i)]
        row["attempts"] = list(outcome.job.attempts)
        if kind == "convert":
            sha256 = _converted(row, outcome, final, cache, artifacts, out)
            if row["status"] == "converted" and sha256 is not None:
                queue_bench(int(i), sha256)
            update(f"{row['model']} {row['target']} {row['variant']}: {row['status']}"
                   + (f" ({row['error'][:120]})" if row["status"] in ("failed", "unschedulable") else ""))
        elif outcome.ok:
            _timed(row, outcome.value, doc)
            if fingerprint:
                cache.record_timing(row["key"], fingerprint, artifact_sha[int(i)], outcome.value)
            update(f"timed {row['artifact']}")
        elif final:
            row["bench"], row["bench_error"] = "failed", outcome.reason
            update(f"timing {row['artifact']} failed: {outcome.reason[:120]}")

    def timings() -> list[Job]:
        jobs = list(bench_jobs)
        bench_jobs.clear()
        if jobs:
            update(f"timing {len(jobs)} artifact(s) on '{plan.bench_resource}'")
        return jobs

    try:
        run_jobs(runner, convert_jobs, retries=plan.retries, on_outcome=on_outcome, more=timings)
        doc.finish()
    finally:
        if engine_instance is None:
            runner.shutdown()
        doc.write()
    return doc


def _timing_fingerprint(plan: SweepPlan, address: str | None, engine_instance) -> str | None:
    """This host's timing fingerprint, or None where the timings run elsewhere (an existing cluster, a device)."""
    from edgevit.bench.host_info import timing_fingerprint
    from edgevit.studies.sweep.plan import DEFAULT_BENCH_RESOURCE
    from edgevit.validate.threads import default_threads

    remote = address or os.environ.get("RAY_ADDRESS") or getattr(engine_instance, "address", None)
    if not plan.bench or remote or plan.bench_resource != DEFAULT_BENCH_RESOURCE:
        return None
    return timing_fingerprint({"iterations": plan.iterations, "warmup": plan.warmup, "threads": default_threads(),
                               "harness": "edgevit.api.bench"})


def _usable_timing(value: dict) -> bool:
    """A stored bench task outcome that still reads as one: its records conform to the results schema and it names
    where it ran. Anything else (an edited or truncated file) is timed again rather than trusted."""
    from edgevit.base.errors import SchemaError
    from edgevit.bench.results import SCHEMA_VERSION, validate_document

    if not all(k in value for k in ("results", "peak", "host", "pid", "node")):
        return False
    try:
        validate_document({"schema_version": SCHEMA_VERSION, "harness": "host", "created": "stored",
                           "peak": value["peak"], "results": value["results"]}, "a stored timing")
    except SchemaError:
        return False
    return True


def _timed(row: dict, value: dict, doc: SweepDocument) -> None:
    """A bench task's outcome (new, or kept in the cache) into its row and the results."""
    records = value["results"]
    doc.add_results(records, value["peak"], value["host"])
    ok = [r for r in records if r["status"] == "ok"]
    row["bench"] = "ok" if ok else records[0]["status"] if records else "no result"
    row["bench_median_ms"] = ok[0]["median_ms"] if ok else None
    row["bench_error"] = None if ok else (records[0]["error"] if records else None)
    row["bench_worker"] = {k: value[k] for k in ("host", "pid", "node")}


def _converted(row: dict, outcome: Outcome, final: bool, cache, artifacts: Path, out: Path) -> str | None:
    """Record a conversion's outcome in its row; the artifact's sha256 when it is converted and verified."""
    if not outcome.ok:
        if final:
            row["status"] = "unschedulable" if outcome.kind == "unschedulable" else "failed"
            row["error"] = outcome.reason
        else:
            row["status"] = "retrying"
        return None
    value = outcome.value
    entry, problem = cache.lookup(row["key"])
    if entry is None:
        row["status"], row["error"] = "failed", f"the converted artifact's cache entry did not verify: {problem}"
        return None
    _finish(row, cache.materialize(entry, artifacts), out, value["parity"], "converted")
    row.update(convert_s=value["convert_s"], peak_rss_mb=value["peak_rss_mb"],
               worker={k: value[k] for k in ("host", "pid", "node")})
    return entry.record["sha256"]


def _finish(row: dict, path: Path, out: Path, parity: dict | None, status: str) -> None:
    row["status"] = status
    row["artifact"] = str(path.relative_to(out))
    row["error"] = None
    if parity:
        row.update(parity=parity.get("status"), parity_reason=parity.get("reason") or None,
                   parity_runtime=parity.get("runtime"))
