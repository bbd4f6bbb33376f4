"""Host harness: time every form of a model in one process and one run, write the shared results schema.

Forms: the original eager PyTorch model, the prepared eager model, the ExecuTorch ``.pte`` (ExecuTorch
runtime) and the ONNX model (onnxruntime); CoreML is recorded as not run off macOS. Per form and batch:
warm-up, N timed iterations, median / trimmed mean / p90 (edgevit.bench.stats), load time, and the peak
growth of the process's resident memory while loading and running (sampled every 2 ms).

Every runtime runs at one thread count (edgevit.validate.threads), recorded per result; with the model's FLOPs
(edgevit.models.complexity) each result also gets its achieved GFLOP/s and, against this host's measured GEMM
rate (edgevit.bench.peak), its percent of peak.
"""

from __future__ import annotations

import gc
import math
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import psutil
import torch

from edgevit.base.clock import utc_now_iso
from edgevit.base.manifest import tool_versions
from edgevit.bench.fair import Comparison, Contender, Protocol, ProtocolTooShortError, compare
from edgevit.bench.host_info import host_device
from edgevit.bench.plan import Plan, default_plan  # noqa: F401 - re-exported: where callers found them
from edgevit.bench.results import SCHEMA_VERSION
from edgevit.bench.stats import DEFAULT_TRIM_FRACTION, summarize
from edgevit.validate.runtimes import MIL_REFERENCE, Runner, RuntimeUnavailable, open_runner
from edgevit.validate.threads import check_threads, reset_executorch_threads, torch_threads


class PeakRss:
    """Peak resident-set growth over a block, sampled in a thread (native allocations included)."""

    def __init__(self, interval_s: float = 0.002):
        self._proc = psutil.Process()
        self._interval = interval_s
        self._stop = threading.Event()
        self.base = self.peak = 0

    def __enter__(self) -> PeakRss:
        gc.collect()
        self.base = self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            time.sleep(self._interval)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / 2**20


def time_iterations(fn: Callable[[], object], plan: Plan) -> list[float]:
    for _ in range(plan.warmup):
        fn()
    samples = []
    for _ in range(plan.iterations):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def result_record(model: str, form: str, runtime: str, batch: int, input_shape: list[int], plan: Plan, *,
                  samples: list[float] | None = None, artifact: Path | None = None, sha256: str | None = None,
                  backend: str | None = None, precision: str = "fp32", load_ms: float | None = None,
                  peak_mb: float | None = None, status: str = "ok", error: str | None = None,
                  compute_unit: str | None = None, threads: int | None = None, gflop: float | None = None,
                  artifact_bytes: int | None = None, recorded_psnr_db: float | None = None) -> dict:
    """One result in the schema; absent measurements stay null (percent_of_peak is set by results_document)."""
    timing = _timing_fields(samples or [], gflop)
    return {
        "model": model, "form": form, "artifact": artifact.name if artifact else None, "artifact_sha256": sha256,
        "artifact_bytes": artifact_bytes, "recorded_logits_psnr_db": recorded_psnr_db,
        "runtime": runtime, "backend": backend, "compute_unit": compute_unit, "precision": precision,
        "device": host_device(), "batch": batch, "input_shape": input_shape, "warmup": plan.warmup,
        **timing,
        "peak_memory_mb": None if peak_mb is None else round(peak_mb, 2),
        "memory_kind": None if peak_mb is None else "rss_growth",
        "load_time_ms": None if load_ms is None else round(load_ms, 3), "tool_versions": tool_versions(),
        "status": status, "error": error, "threads": threads,
        "gflop": None if gflop is None else round(gflop, 4), "percent_of_peak": None,
        "interleaved": None,  # set by the bench sweep for a .pte timed against its .onnx (edgevit.bench.fair)
        "peak_note": None,  # set by results_document when percent_of_peak is withheld
    }


def bench_eager(model_name: str, form: str, module: torch.nn.Module, example: torch.Tensor, plan: Plan, *,
                threads: int | None = None, gflop: float | None = None) -> dict:
    """Time an eager module at ``threads`` torch threads (None: the shared default, default_threads())."""
    threads = check_threads(threads)
    with torch_threads(threads), torch.inference_mode(), PeakRss() as mem:
        samples = time_iterations(lambda: module(example), plan)
    return result_record(model_name, form, "pytorch", example.shape[0], list(example.shape), plan, samples=samples,
                         backend="eager-cpu", peak_mb=mem.growth_mb, threads=threads, gflop=gflop)


def artifact_size(path: Path) -> int | None:
    """Bytes on disk: the file, or every file of a package directory."""
    try:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    except OSError:
        return None


def recorded_psnr(manifest: dict) -> float | None:
    """The logits PSNR on the photos the conversion's verdict recorded (what a precision costs), if any."""
    photos = (manifest.get("parity") or {}).get("photos") or {}
    value = photos.get("psnr_db")
    return round(float(value), 2) if isinstance(value, int | float) and math.isfinite(value) else None


def bench_artifact(model_name: str, artifact: Path, manifest: dict, example: torch.Tensor, plan: Plan, *,
                   threads: int | None = None, gflop: float | None = None) -> dict:
    """Load the artifact in its runtime and time it at ``threads`` (None: default_threads()); a runtime this host
    lacks gives a not_run record."""
    threads = check_threads(threads)
    target = manifest["target"]
    form = {"executorch": "executorch", "onnx": "onnx", "coreml": "coreml"}[target]
    runtime = {"executorch": "executorch", "onnx": "onnxruntime", "coreml": "coreml"}[target]
    common = dict(artifact=artifact, sha256=manifest["sha256"], backend=manifest.get("backend"),
                  precision=manifest["precision"], gflop=gflop, artifact_bytes=artifact_size(artifact),
                  recorded_psnr_db=recorded_psnr(manifest))
    try:
        with PeakRss() as mem:
            runner: Runner = open_runner(artifact, manifest, threads=threads)
            if runner.runtime == MIL_REFERENCE:  # a correctness check, op by op in numpy: its time means nothing
                raise RuntimeUnavailable(f"{artifact.name} runs here only in edgevit's MIL reference interpreter, "
                                         "which checks what it computes, not how fast; time it on macOS/iOS")
            samples = time_iterations(lambda: runner.run(example), plan)
    except RuntimeUnavailable as exc:
        return result_record(model_name, form, runtime, example.shape[0], list(example.shape), plan,
                             status="not_run", error=str(exc), **common)
    common["backend"] = runner.backend or common["backend"]
    return result_record(model_name, form, runtime, example.shape[0], list(example.shape), plan, samples=samples,
                         load_ms=runner.load_ms, peak_mb=mem.growth_mb, threads=runner.threads, **common)


def fair_protocol(plan: Plan) -> Protocol:
    """The fair-comparison protocol spending about ``plan.iterations`` timed calls per form (edgevit.bench.fair);
    ProtocolTooShortError (saying how many it needs) when that gives no interval."""
    return Protocol.for_iterations(plan.iterations, warmup=max(plan.warmup, 1))


def artifact_contender(path: Path, manifest: dict, example: torch.Tensor, threads: int) -> Contender:
    """The artifact as one side of a fair comparison. An onnxruntime session with worker threads (threads > 1)
    is dropped after each of its blocks, joining its spinning workers, and opened again (untimed) before the next:
    onnxruntime is timed with its own defaults, and is fully quiet while the other form runs."""
    runner = open_runner(path, manifest, threads=threads)
    if runner.runtime == MIL_REFERENCE:
        raise RuntimeUnavailable(f"{path.name} runs here only in the MIL reference interpreter, which is not timed")
    if runner.runtime != "onnxruntime" or threads == 1:
        return Contender(path.name, partial(runner.run, example))
    held: list[Runner | None] = [runner]

    def before() -> None:
        if held[0] is None:
            held[0] = open_runner(path, manifest, threads=threads)

    def release() -> None:
        held[0] = None

    return Contender(path.name, lambda: held[0].run(example), before, release)


def compare_artifacts(a: tuple[Path, dict], b: tuple[Path, dict], example: torch.Tensor, protocol: Protocol, *,
                      threads: int | None = None) -> Comparison | None:
    """Artifact ``a`` against reference ``b`` by the fair protocol at ``threads`` (ratio above 1: ``a`` faster),
    ExecuTorch's pool made fresh at that size before either loads; None if either cannot run (and be timed) here."""
    threads = check_threads(threads)
    if any(manifest["target"] == "executorch" for _, manifest in (a, b)):
        reset_executorch_threads(threads)
    try:
        contenders = [artifact_contender(path, manifest, example, threads) for path, manifest in (a, b)]
    except RuntimeUnavailable:
        return None
    return compare(*contenders, protocol)


def fair_against(reference: tuple[Path, dict], candidates: dict[str, tuple[Path, dict]], example: torch.Tensor,
                 protocol: Protocol, *, threads: int | None = None) -> dict[str, Comparison | None]:
    """Each candidate artifact against ``reference`` by the fair protocol, one comparison at a time (no other
    form loaded meanwhile); ratio above 1: the candidate is faster. For scripts that weigh several variants."""
    return {label: compare_artifacts(artifact, reference, example, protocol, threads=threads)
            for label, artifact in candidates.items()}


def too_short_note(plan: Plan, against: str) -> dict | None:
    """The ``interleaved`` entry of a plan too short for the protocol: no ratio, and how many iterations it needs."""
    try:
        fair_protocol(plan)
    except ProtocolTooShortError as exc:
        return {"against": against, "protocol": "blocks", "ratio": None, "ci_low": None, "ci_high": None,
                "confidence": None, "rounds": 0, "block": 0, "iterations": plan.iterations, "median_ms": None,
                "against_median_ms": None, "note": str(exc)}
    return None


def bench_pair(model_name: str, a: tuple[Path, dict], b: tuple[Path, dict], example: torch.Tensor, plan: Plan, *,
               threads: int | None = None, gflop: float | None = None) -> tuple[dict, dict]:
    """The records of ``a`` (a .pte) and reference ``b`` (its .onnx), both timed in one fair comparison: their
    medians and ``a``'s ratio come from the same samples, so the table cannot contradict itself. Load time and
    memory come from loading each alone first. A plan too short for an interval times each alone and records why
    there is no ratio."""
    threads = check_threads(threads)
    note = too_short_note(plan, b[1]["target"])
    load_plan = plan if note is not None else Plan(warmup=plan.warmup, iterations=1)  # load time and memory only
    alone = [bench_artifact(model_name, path, manifest, example, load_plan, threads=threads, gflop=gflop)
             for path, manifest in (a, b)]
    if any(r["status"] != "ok" for r in alone):
        return alone[0], alone[1]
    if note is not None:
        alone[0]["interleaved"] = note
        return alone[0], alone[1]
    comparison = compare_artifacts(a, b, example, fair_protocol(plan), threads=threads)
    for record, samples in zip(alone, (comparison.a_samples, comparison.b_samples), strict=True):
        record.update(_timing_fields(samples, gflop))
    alone[0]["interleaved"] = comparison.to_json(against=b[1]["target"])
    return alone[0], alone[1]


def _timing_fields(samples: list[float], gflop: float | None) -> dict:
    stats = summarize(samples, DEFAULT_TRIM_FRACTION)
    median_ms = stats["median_ms"]
    return {"iterations": len(samples), "per_iteration_ms": [round(s, 4) for s in samples], **stats,
            "gflop_per_s": round(gflop / (median_ms / 1e3), 3) if gflop is not None and median_ms else None}


def results_document(results: list[dict], peak: dict | None = None) -> dict:
    """The file: every result's percent_of_peak against ``peak`` (edgevit.bench.peak.peak_record, measured at the
    results' threads). No percentage without a physical peak, and none above 100% (peak_note says why)."""
    from edgevit.bench.peak import check_percent

    physical = (peak or {}).get("physical")
    for r in results:
        r.setdefault("peak_note", None)
        if r["gflop_per_s"] is None:
            continue
        if physical is None:
            r["peak_note"] = "no physical peak derivable on this host (see the file's peak.notes)"
        else:
            r["percent_of_peak"], r["peak_note"] = check_percent(r["gflop_per_s"], physical["gflop_per_s"])
    return {"schema_version": SCHEMA_VERSION, "harness": "host", "created": utc_now_iso(), "peak": peak,
            "results": results}
