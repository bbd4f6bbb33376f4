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
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import psutil
import torch

from edgevit.base.clock import utc_now_iso
from edgevit.base.manifest import tool_versions
from edgevit.bench.host_info import host_device
from edgevit.bench.plan import Plan, default_plan  # noqa: F401 - re-exported: where callers found them
from edgevit.bench.results import SCHEMA_VERSION
from edgevit.bench.stats import DEFAULT_TRIM_FRACTION, summarize
from edgevit.validate.runtimes import MIL_REFERENCE, Runner, RuntimeUnavailable, open_runner
from edgevit.validate.threads import check_threads, torch_threads


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


def time_alternately(fns: Sequence[Callable[[], object]], warmup: int, iterations: int) -> list[list[float]]:
    """ms per call of each of ``fns``, run in turn (a, b, a, b, ...) so that load from other processes on a shared
    machine hits them alike; a sequential A-then-B timing can invert a real difference."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(iterations):
        for fn, store in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            store.append((time.perf_counter() - start) * 1e3)
    return times


def result_record(model: str, form: str, runtime: str, batch: int, input_shape: list[int], plan: Plan, *,
                  samples: list[float] | None = None, artifact: Path | None = None, sha256: str | None = None,
                  backend: str | None = None, precision: str = "fp32", load_ms: float | None = None,
                  peak_mb: float | None = None, status: str = "ok", error: str | None = None,
                  compute_unit: str | None = None, threads: int | None = None, gflop: float | None = None) -> dict:
    """One result in the schema; absent measurements stay null (percent_of_peak is set by results_document)."""
    samples = samples or []
    stats = summarize(samples, DEFAULT_TRIM_FRACTION)
    median = stats["median_ms"]
    achieved = round(gflop / (median / 1e3), 3) if gflop is not None and median else None
    return {
        "model": model, "form": form, "artifact": artifact.name if artifact else None, "artifact_sha256": sha256,
        "runtime": runtime, "backend": backend, "compute_unit": compute_unit, "precision": precision,
        "device": host_device(), "batch": batch, "input_shape": input_shape, "warmup": plan.warmup,
        "iterations": len(samples), "per_iteration_ms": [round(s, 4) for s in samples],
        **stats,
        "peak_memory_mb": None if peak_mb is None else round(peak_mb, 2),
        "memory_kind": None if peak_mb is None else "rss_growth",
        "load_time_ms": None if load_ms is None else round(load_ms, 3), "tool_versions": tool_versions(),
        "status": status, "error": error, "threads": threads,
        "gflop": None if gflop is None else round(gflop, 4), "gflop_per_s": achieved, "percent_of_peak": None,
        "interleaved": None,  # set by the bench sweep for a .pte timed alternately with its .onnx
    }


def bench_eager(model_name: str, form: str, module: torch.nn.Module, example: torch.Tensor, plan: Plan, *,
                threads: int | None = None, gflop: float | None = None) -> dict:
    """Time an eager module at ``threads`` torch threads (None: the shared default, default_threads())."""
    threads = check_threads(threads)
    with torch_threads(threads), torch.inference_mode(), PeakRss() as mem:
        samples = time_iterations(lambda: module(example), plan)
    return result_record(model_name, form, "pytorch", example.shape[0], list(example.shape), plan, samples=samples,
                         backend="eager-cpu", peak_mb=mem.growth_mb, threads=threads, gflop=gflop)


def bench_artifact(model_name: str, artifact: Path, manifest: dict, example: torch.Tensor, plan: Plan, *,
                   threads: int | None = None, gflop: float | None = None) -> dict:
    """Load the artifact in its runtime and time it at ``threads`` (None: default_threads()); a runtime this host
    lacks gives a not_run record."""
    threads = check_threads(threads)
    target = manifest["target"]
    form = {"executorch": "executorch", "onnx": "onnx", "coreml": "coreml"}[target]
    runtime = {"executorch": "executorch", "onnx": "onnxruntime", "coreml": "coreml"}[target]
    common = dict(artifact=artifact, sha256=manifest["sha256"], backend=manifest.get("backend"),
                  precision=manifest["precision"], gflop=gflop)
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


def interleave(a: tuple[Path, dict], b: tuple[Path, dict], example: torch.Tensor, plan: Plan, *,
               threads: int | None = None) -> dict | None:
    """Time artifact ``a`` and reference ``b`` alternately (a, b, a, b, ...) at the same threads: a ratio that a
    busy or throttling machine cannot bias, unlike two medians measured minutes apart. None if either cannot
    run here."""
    from statistics import median

    threads = check_threads(threads)
    try:
        runners = [open_runner(path, manifest, threads=threads) for path, manifest in (a, b)]
    except RuntimeUnavailable:
        return None
    if any(r.runtime == MIL_REFERENCE for r in runners):
        return None
    times = time_alternately([partial(r.run, example) for r in runners], plan.warmup, plan.iterations)
    ratios = [ref / own for own, ref in zip(*times, strict=True) if own > 0]
    return {"against": b[1]["target"], "ratio": round(median(ratios), 4), "iterations": plan.iterations,
            "median_ms": round(median(times[0]), 4), "against_median_ms": round(median(times[1]), 4)}


def results_document(results: list[dict], gemm_peak_gflop_per_s: float | None = None) -> dict:
    """The file: every result's percent_of_peak against ``gemm_peak_gflop_per_s`` (measured at their threads)."""
    created = utc_now_iso()
    for r in results:
        if gemm_peak_gflop_per_s and r["gflop_per_s"] is not None:
            r["percent_of_peak"] = round(100 * r["gflop_per_s"] / gemm_peak_gflop_per_s, 2)
    return {"schema_version": SCHEMA_VERSION, "harness": "host", "created": created,
            "gemm_peak_gflop_per_s": gemm_peak_gflop_per_s, "results": results}
