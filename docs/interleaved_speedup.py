"""Speed-up of one artifact over another by edgevit's fair protocol (edgevit.bench.fair), in one process.

    PYTHONPATH=$PWD python docs/interleaved_speedup.py art/m.executorch.xnnpack.fp32.pte \\
        art/m.executorch.xnnpack.int8.pte --threads 1 --rounds 10

Blocks of 5 calls per form, alternated in a random order for ``--rounds`` rounds, the first call of each block
discarded, an onnxruntime session with worker threads released between its blocks and ExecuTorch's pool sized before
either loads; prints each form's median, the ratio of block medians (baseline ms / candidate ms) with its 95% bootstrap
interval, and the CPU model with its int8-relevant ISA flags. (Alternating single calls charged each form for the
other's still-spinning threads: at 2 threads an onnxruntime int8 session timed after an fp32 one ran slower than at 1.)
"""

from __future__ import annotations

import argparse
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


def interleaved(baseline: Path, candidate: Path, threads: int = 1, rounds: int = 10) -> dict:
    """Each artifact's median latency and the fair ratio baseline / candidate (above 1: the candidate is faster)
    with its bootstrap interval, on one random input."""
    from edgevit.base.manifest import read_manifest
    from edgevit.bench.fair import Protocol
    from edgevit.bench.host import compare_artifacts

    manifests = [read_manifest(p) for p in (baseline, candidate)]
    x = torch.randn(*manifests[0]["input"]["shape"])
    protocol = Protocol(rounds=rounds, block=5, warmup=3)
    result = compare_artifacts((candidate, manifests[1]), (baseline, manifests[0]), x, protocol, threads=threads)
    if result is None:
        raise SystemExit(f"{baseline.name} or {candidate.name} cannot be timed here")
    record = result.to_json()
    return {"baseline_ms": record["against_median_ms"], "candidate_ms": record["median_ms"],
            "speedup": record["ratio"], "ci": [record["ci_low"], record["ci_high"]], "threads": threads,
            "rounds": rounds, "block": 5, "protocol": "fair blocks", "cpu": isa()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10, help="rounds of one 5-call block per form (at least 6)")
    args = parser.parse_args()
    timing = interleaved(args.baseline, args.candidate, args.threads, args.rounds)
    print(f"{timing['cpu']}; {args.threads} thread(s), {args.rounds} rounds of 5-call blocks (fair protocol)")
    print(f"{args.baseline.name}: median {timing['baseline_ms']:.1f} ms")
    print(f"{args.candidate.name}: median {timing['candidate_ms']:.1f} ms")
    low, high = timing["ci"]
    print(f"speed-up (ratio of block medians): {timing['speedup']:.2f}x, 95% interval {low:.2f}-{high:.2f}")


if __name__ == "__main__":
    main()
