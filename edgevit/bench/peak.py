"""This CPU's ceiling for fp32 work: the physical FMA peak (the denominator of ``percent_of_peak``), and beside it
the best dense GEMM each runtime reaches here.

Physical peak = fp32 lanes per vector x FMA units per core x 2 (an FMA is two FLOPs) x clock x cores used:

- vector widths from the ISA flags in /proc/cpuinfo (avx512f: 16 fp32 lanes, avx2+fma: 8);
- FMA units per core are not in /proc/cpuinfo, so they are *measured*: a loop of 24 independent FMAs per
  iteration, at each width the CPU has, timed against the clock, gives FMA instructions retired per cycle (2 at
  256 bits and 1 at 512 on AMD Zen 4, which splits a 512-bit FMA over its two 256-bit pipes; 2 at 512 on Intel
  server cores with two AVX-512 units); the widest width x its units wins;
- the clock is measured by a timed chain of dependent integer adds (one cycle each on every x86-64 core), and a
  chain of dependent FMAs timed against it must come out at a plausible FMA latency (3-6 cycles), or the
  measurement was disturbed and no peak is given;
- cores used = the thread count (at most the CPUs this process may use). On a VM whose vCPUs are hyperthreads of
  one core this overstates the ceiling, which keeps it a ceiling.

The loops are native code: a small C file (native/fma_peak.c) compiled at run time with the host's C compiler
into a temporary directory and loaded with ctypes; the per-core figures are cached per host (edgevit's cache
directory, keyed by host name, CPU model, flags and the C source). Best of several short runs, so a busy host's
preemption cannot inflate the result. Without a compiler, or off x86-64, the peak cannot be derived: results then
carry no percentage, and the reason is recorded.

A figure above 100% of this peak is not printed: the FLOP count or the timing is wrong, and ``check_percent`` says
so instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

from edgevit.bench.host_info import cpu_model, isa_flags

SOURCE = Path(__file__).with_name("native") / "fma_peak.c"
GEMM_SIZES = (512, 1024)
GEMM_REPEATS = 8
ADDS_PER_ITERATION = 64  # add_chain: dependent adds per loop iteration
FMA_CHAIN_PER_ITERATION = 16  # fma_chain_256: dependent FMAs per loop iteration
FMA_TPUT_PER_ITERATION = 24  # fma_tput_*: independent FMAs per loop iteration
LANES = {"fma_tput_256": 8, "fma_tput_512": 16}  # fp32 lanes of a 256- and a 512-bit vector


@dataclass(frozen=True)
class CorePeak:
    """What one core can do, measured: clock, FMA latency, FMA units at the widest width, FLOP per cycle."""

    clock_ghz: float
    fma_latency_cycles: float
    vector_bits: int
    lanes: int
    fma_units: int
    fma_per_cycle_by_width: dict[str, float]
    flop_per_cycle: int


@dataclass(frozen=True)
class PhysicalPeak:
    core: CorePeak
    cores: int
    gflop_per_s: float

    def to_json(self) -> dict:
        c = self.core
        return {"gflop_per_s": round(self.gflop_per_s, 2), "cores": self.cores, "clock_ghz": round(c.clock_ghz, 3),
                "vector_bits": c.vector_bits, "lanes": c.lanes, "fma_units": c.fma_units,
                "fma_latency_cycles": round(c.fma_latency_cycles, 2),
                "fma_per_cycle_by_width": {k: round(v, 3) for k, v in c.fma_per_cycle_by_width.items()},
                "flop_per_cycle_per_core": c.flop_per_cycle,
                "derivation": f"{c.lanes} fp32 lanes x {c.fma_units} FMA unit(s) x 2 x {c.clock_ghz:.3f} GHz x "
                              f"{self.cores} core(s); FMA units measured (independent-FMA throughput per cycle), "
                              "clock measured (dependent integer-add chain), FMA latency checked"}


class PeakUnavailable(Exception):
    """The physical peak cannot be derived here; the message says why."""


def cache_dir() -> Path:
    """edgevit's per-user cache: $EDGEVIT_CACHE_DIR, else $XDG_CACHE_HOME/edgevit, else ~/.cache/edgevit."""
    if os.environ.get("EDGEVIT_CACHE_DIR"):
        return Path(os.environ["EDGEVIT_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "edgevit"


def _compile(compiler: str, folder: Path) -> ctypes.CDLL:
    lib = folder / "fma_peak.so"
    try:
        subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", str(lib), str(SOURCE)], check=True,
                       capture_output=True, timeout=120)
    except (OSError, subprocess.SubprocessError) as exc:
        raise PeakUnavailable(f"the C compiler {compiler} could not build the FMA loops ({exc})") from None
    return ctypes.CDLL(str(lib))


def _best_seconds(lib: ctypes.CDLL, name: str, n: int, repeats: int = 9) -> float:
    fn = getattr(lib, name)
    fn.argtypes, fn.restype = [ctypes.c_int64], None
    fn(max(1, n // 10))  # warm: the core leaves its idle clock
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(n)
        best = min(best, time.perf_counter() - start)
    return best


def measure_core(compiler: str) -> CorePeak:
    """Clock, FMA latency and FMA units per core, measured by the native loops (module docstring)."""
    flags = set(isa_flags())
    if platform.machine().lower() not in ("x86_64", "amd64"):
        raise PeakUnavailable(f"the FMA loops are x86-64 code and this CPU is {platform.machine()}")
    if not {"avx2", "fma"} <= flags:
        raise PeakUnavailable("this CPU reports no AVX2+FMA in /proc/cpuinfo; its FMA width is not known here")
    with tempfile.TemporaryDirectory(prefix="edgevit-peak-") as tmp:
        lib = _compile(compiler, Path(tmp))
        n = 200_000
        hz = ADDS_PER_ITERATION * n / _best_seconds(lib, "add_chain", n)
        latency = _best_seconds(lib, "fma_chain_256", n) * hz / (FMA_CHAIN_PER_ITERATION * n)
        widths = ["fma_tput_256"] + (["fma_tput_512"] if "avx512f" in flags else [])
        per_cycle = {w: FMA_TPUT_PER_ITERATION * n / (_best_seconds(lib, w, n) * hz) for w in widths}
    if not 0.3e9 <= hz <= 7e9 or not 3.0 <= latency <= 6.5:
        raise PeakUnavailable(f"the timing loops gave an implausible clock ({hz / 1e9:.2f} GHz) or FMA latency "
                              f"({latency:.2f} cycles): the measurement was disturbed")
    units = {w: max(1, round(r)) for w, r in per_cycle.items()}
    best = max(widths, key=lambda w: LANES[w] * units[w])
    return CorePeak(clock_ghz=hz / 1e9, fma_latency_cycles=latency, vector_bits=LANES[best] * 32, lanes=LANES[best],
                    fma_units=units[best], fma_per_cycle_by_width={w.removeprefix("fma_tput_"): r
                                                                   for w, r in per_cycle.items()},
                    flop_per_cycle=LANES[best] * units[best] * 2)


def _cache_key() -> str:
    text = "\n".join([socket.gethostname(), cpu_model(), " ".join(isa_flags()), SOURCE.read_text()])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@cache
def core_peak(compiler: str | None = None, use_cache: bool = True) -> CorePeak:
    """This host's per-core figures, from the cache or measured (PeakUnavailable when they cannot be derived)."""
    compiler = compiler or os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc")
    if compiler is None:
        raise PeakUnavailable("no C compiler (gcc or cc, or $CC) on this host to build the FMA timing loops")
    path = cache_dir() / f"core-peak-{_cache_key()}.json"
    if use_cache and path.exists():
        try:
            return CorePeak(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            pass  # a damaged cache entry is measured again
    core = measure_core(compiler)
    if use_cache:
        from edgevit.base.atomic import write_text_atomic

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(path, json.dumps(asdict(core)) + "\n")
        except OSError:
            pass  # no writable cache: measured again next time
    return core


def physical_peak(threads: int, compiler: str | None = None, use_cache: bool = True) -> PhysicalPeak:
    """The fp32 FMA peak of ``threads`` cores (at most the CPUs this process may use); PeakUnavailable if not
    derivable here."""
    from edgevit.validate.threads import available_cpus

    core = core_peak(compiler, use_cache)
    cores = min(threads, available_cpus())
    return PhysicalPeak(core, cores, core.flop_per_cycle * core.clock_ghz * cores)


def check_percent(gflop_per_s: float, peak_gflop_per_s: float) -> tuple[float | None, str | None]:
    """(percent of the physical peak, None), or (None, why) when it would exceed 100%: then the FLOP count or the
    timing is wrong, and no figure is printed."""
    percent = 100 * gflop_per_s / peak_gflop_per_s
    if percent > 100:
        return None, (f"{gflop_per_s:.1f} GFLOP/s would be {percent:.0f}% of this CPU's physical fp32 peak "
                      f"({peak_gflop_per_s:.1f}): the measurement is wrong (FLOP count or timing), not printed")
    return round(percent, 2), None


# ------------------------------------------------------------------------------------ runtimes' best GEMM


@cache  # once per thread count and process: a sweep and its results file share one measurement
def runtime_gemm_gflop_per_s(threads: int) -> dict[str, float | None]:
    """Best GFLOP/s of a dense fp32 GEMM in each runtime at ``threads``: XNNPACK's fully-connected op (a one-op
    ``.pte`` of a bias-free Linear) and onnxruntime's MLAS (a one-node MatMul), square sizes GEMM_SIZES; None for a
    runtime that is missing here. The two are called in turn, GEMM_REPEATS times each after a warm-up, so a busy
    host's quiet moments are shared between them; the best call counts (a ceiling, not a typical time). At one
    thread a call is timed by the calling thread's CPU time (both runtimes compute on it), which preemption by other
    processes cannot inflate; at more, by wall time."""
    best: dict[str, float | None] = {"executorch-xnnpack": None, "onnxruntime-mlas": None}
    for n in GEMM_SIZES:
        calls = {name: make(n, threads) for name, make in (("executorch-xnnpack", _xnnpack_call),
                                                           ("onnxruntime-mlas", _onnxruntime_call))}
        calls = {name: call for name, call in calls.items() if call is not None}
        for call in calls.values():
            call()
        clock = time.thread_time if threads == 1 else time.perf_counter
        for _ in range(GEMM_REPEATS):
            for name, call in calls.items():
                start = clock()
                call()
                rate = 2 * n**3 / (clock() - start) / 1e9
                best[name] = round(max(best[name] or 0.0, rate), 2)
        del calls
    return best


def _gemm_pte(n: int) -> Path:
    """The one-op XNNPACK ``.pte`` of an n x n Linear at batch n, exported once per ExecuTorch version (cached)."""
    from importlib.metadata import version

    import torch

    from edgevit.export.executorch import export_executorch

    path = cache_dir() / f"gemm-{n}-executorch-{version('executorch')}.executorch.xnnpack.fp32.pte"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        linear = torch.nn.Linear(n, n, bias=False).eval()
        export_executorch(linear, torch.randn(n, n), path)
    return path


def _xnnpack_call(n: int, threads: int):
    """One n x n x n GEMM in XNNPACK's fully-connected op, as a call; None without ExecuTorch."""
    try:
        import torch

        from edgevit.validate.runtimes import ExecuTorchRunner
        from edgevit.validate.threads import reset_executorch_threads
    except ImportError:
        return None
    reset_executorch_threads(threads)
    runner = ExecuTorchRunner(_gemm_pte(n), "xnnpack", threads)
    x = torch.randn(n, n)
    return lambda: runner.run(x)


def _onnxruntime_call(n: int, threads: int):
    """One n x n x n MatMul in onnxruntime (MLAS), as a call; None without onnxruntime."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    from edgevit.validate.threads import onnxruntime_options

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    # spinning off: this session stays open while XNNPACK's GEMM is timed in turn with it
    session = ort.InferenceSession(model.SerializeToString(), onnxruntime_options(threads, spinning=False),
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
    return lambda: session.run(None, feed)


def peak_record(threads: int) -> dict:
    """The results file's ``peak``: the physical peak at ``threads`` (or why there is none) and each runtime's best
    GEMM, each GEMM checked against the physical peak like any other figure."""
    try:
        physical = physical_peak(threads)
    except PeakUnavailable as exc:
        physical, reason = None, f"the physical peak cannot be derived on this host: {exc}; no percentage is given"
    else:
        reason = None
    from edgevit.validate.threads import oversubscription

    gemm = dict(runtime_gemm_gflop_per_s(threads))
    notes = [note for note in (oversubscription(threads), reason) if note]
    percent = {}
    for name, rate in gemm.items():
        if rate is not None and physical is not None:
            percent[name], note = check_percent(rate, physical.gflop_per_s)
            if note:
                notes.append(f"{name} GEMM: {note}")
    return {"threads": threads, "physical": physical.to_json() if physical else None,
            "runtime_gemm_gflop_per_s": gemm, "runtime_gemm_percent_of_peak": percent or None,
            "notes": notes}
