"""Speed-up of one artifact over another, timed alternately in one process (load on a shared host hits both).

    PYTHONPATH=$PWD python docs/interleaved_speedup.py art/m.executorch.xnnpack.fp32.pte \\
        art/m.executorch.xnnpack.int8.pte --threads 1 --rounds 30

Each round runs the baseline once, then the candidate once, on the same random input; prints the medians and the
median of the per-round ratios (baseline ms / candidate ms), with the CPU model and its int8-relevant ISA flags.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch


def isa() -> str:
    """The CPU model and the flags that decide int8 speed (VNNI, AMX, AVX-512 BF16)."""
    model, flags = "unknown CPU", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and model == "unknown CPU":
                model = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8", "amx_bf16")
    return f"{model}; " + " ".join(f for f in wanted if f in flags)


def interleaved(baseline: Path, candidate: Path, threads: int = 1, rounds: int = 30) -> dict:
    """Median latency of each artifact and the median of the per-round ratios (baseline / candidate), the two run
    alternately on the same random input after 3 warm-up runs each."""
    from edgevit.base.manifest import read_manifest
    from edgevit.validate.runtimes import open_runner

    runners = [open_runner(p, read_manifest(p), threads=threads) for p in (baseline, candidate)]
    x = torch.randn(*read_manifest(baseline)["input"]["shape"])
    for runner in runners:
        for _ in range(3):
            runner.run(x)
    base, cand, ratios = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        runners[0].run(x)
        t1 = time.perf_counter()
        runners[1].run(x)
        t2 = time.perf_counter()
        base.append((t1 - t0) * 1e3)
        cand.append((t2 - t1) * 1e3)
        ratios.append((t1 - t0) / (t2 - t1))
    return {"baseline_ms": statistics.median(base), "candidate_ms": statistics.median(cand),
            "speedup": statistics.median(ratios), "threads": threads, "rounds": rounds, "cpu": isa()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    timing = interleaved(args.baseline, args.candidate, args.threads, args.rounds)
    print(f"{timing['cpu']}; {args.threads} thread(s), {args.rounds} interleaved rounds")
    print(f"{args.baseline.name}: median {timing['baseline_ms']:.1f} ms")
    print(f"{args.candidate.name}: median {timing['candidate_ms']:.1f} ms")
    print(f"speed-up (median of per-round ratios): {timing['speedup']:.2f}x")


if __name__ == "__main__":
    main()
