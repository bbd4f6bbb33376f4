"""Where a number was measured: the host's name, OS, CPU model and the ISA extensions that decide its speed, in the
schema's device object.

int8 and bf16 speed depend on VNNI, BF16 and AMX, and the fp32 ceiling on the vector width (edgevit.bench.peak), so
every result records them: a figure from an AVX2-only host and one from an AMX host are not comparable.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
from functools import cache
from pathlib import Path

# The /proc/cpuinfo flags (x86 "flags", Arm "Features") that name what fp32/bf16/int8 kernels can use.
ISA_OF_INTEREST = ("sse4_2", "avx", "fma", "f16c", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl",
                   "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16",
                   "asimd", "asimdhp", "asimddp", "fphp", "bf16", "i8mm", "sve", "sve2", "sme")


def _cpuinfo() -> str:
    path = Path("/proc/cpuinfo")
    return path.read_text(errors="replace") if path.exists() else ""


def cpu_model() -> str:
    for line in _cpuinfo().splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


@cache
def isa_flags() -> list[str]:
    """The ISA extensions of ISA_OF_INTEREST this CPU reports (first CPU's flags), in that order; [] where the OS
    does not say (no /proc/cpuinfo)."""
    for line in _cpuinfo().splitlines():
        key = line.split(":", 1)[0].strip().lower()
        if key in ("flags", "features") and ":" in line:
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in ISA_OF_INTEREST if flag in present]
    return []


def isa_summary(flags: list[str]) -> str:
    """The flags as a reader names them: AVX2, AVX-512, VNNI, BF16, AMX (or 'not reported')."""
    names = [("AVX2", "avx2" in flags), ("AVX-512", "avx512f" in flags),
             ("VNNI", "avx512_vnni" in flags or "avx_vnni" in flags), ("BF16", "avx512_bf16" in flags),
             ("AMX", any(f.startswith("amx_") for f in flags)), ("NEON", "asimd" in flags), ("SVE", "sve" in flags)]
    return ", ".join(name for name, present in names if present) or "not reported"


def host_device() -> dict:
    return {"kind": "host", "name": socket.gethostname(), "os": platform.platform(),
            "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)", "cpu_model": cpu_model(), "isa": isa_flags()}


def timing_fingerprint(settings: dict) -> str:
    """SHA-256 naming this host as a place timings were taken, with the bench ``settings`` they used: a stored
    timing is reused only where the same fingerprint would time it again (edgevit.export.cache)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    host = {"cpu_model": cpu_model(), "isa": isa_flags(), "cores": cores, "logical_cores": os.cpu_count(),
            "os": platform.platform(), "name": socket.gethostname(), "settings": settings}
    return hashlib.sha256(json.dumps(host, sort_keys=True, default=str).encode()).hexdigest()
