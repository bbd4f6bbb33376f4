"""What converters.rewrites.attention buys: XNNPACK subgraphs and latency before / after, per registry model.

    PYTHONPATH=. python docs/bench_attention_rewrites.py deit-t swin-t efficientvit-m0 --threads 1 --iters 30

"before" is the generic converter with the attention rewrite off, "after" with it on (the default). Each
variant is exported to an XNNPACK .pte (edgevit.export.executorch) and to ONNX; each .pte is timed against its
ONNX model in onnxruntime by the fair protocol (edgevit.bench.fair: blocks alternated in random order, first of each
dropped, the other runtime quiet; ratio of block medians with a 95% bootstrap interval). --iters is the timed
iterations per form (at least 18).

Measured once with the earlier single-iteration interleaving (2 vCPU Linux x86 host, under load from other
agents; 1 thread, 10 runs, medians;
random exercised weights):

    model            XNNPACK subgraphs   .pte before -> after   ORT before -> after
    deit-t           62 -> 26            25.4 -> 13.5 ms        14.1 -> 14.3 ms
    swin-t           77 -> 29            51.8 -> 48.0 ms        55.4 -> 55.3 ms
    efficientvit-m0  80 -> 1              1.93 -> 1.22 ms        1.67 -> 1.50 ms

What is left outside the delegate is LayerNorm (``native_layer_norm``), one per norm.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from converters.generic import GenericConverter
from edgevit.bench.fair import Protocol
from edgevit.bench.host import compare_artifacts
from edgevit.export.executorch import export_executorch
from edgevit.export.onnx import export_onnx
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec
from edgevit.validate.runtimes import open_runner


def prepare(model: torch.nn.Module, attention: bool):
    converter = GenericConverter()
    converter.attention = attention
    return converter.prepare(model).module


def bench_model(name: str, threads: int, iters: int, warmup: int, out: Path) -> None:
    spec = get_spec(name)
    model, _ = build_model(spec)
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        reference = model(x)
    artifacts, subgraphs = {}, {}
    for label, attention in (("before", False), ("after", True)):
        prepared = prepare(model, attention)
        pte, onnx = out / f"{name}-{label}.pte", out / f"{name}-{label}.onnx"
        summary = export_executorch(prepared, x, pte)
        subgraphs[label] = summary["delegation"]["delegated_subgraphs"]
        undelegated = summary["delegation"]["non_delegated_ops"]
        print(f"{name} {label}: {subgraphs[label]} XNNPACK subgraphs; not delegated: {undelegated}", flush=True)
        export_onnx(prepared, x, onnx)
        artifacts[label] = ((pte, {"target": "executorch", "backend": "xnnpack"}), (onnx, {"target": "onnx"}))
    for label, pair in artifacts.items():  # each output against the original model
        for path, manifest in pair:
            runner = open_runner(path, manifest, threads=threads)
            got = torch.as_tensor(np.asarray(runner.run(x)))
            del runner
            err = float((got.double() - reference.double()).norm() / reference.double().norm())
            print(f"  {path.suffix[1:]} {label}: relative L2 vs original {err:.2e}")
    protocol = Protocol.for_iterations(iters, warmup=warmup)
    print(f"{name}: subgraphs {subgraphs['before']} -> {subgraphs['after']} ({threads} thread(s), fair protocol, "
          f"{protocol.rounds} rounds of {protocol.block})")
    for label, (pte, onnx) in artifacts.items():
        c = compare_artifacts(pte, onnx, x, protocol, threads=threads)
        low, high = c.interval
        print(f"  {label:7s} pte median {statistics.median(c.a_samples):8.2f} ms   ort median "
              f"{statistics.median(c.b_samples):8.2f} ms   ort/pte {c.ratio:.3f} [{low:.3f}, {high:.3f}]")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None, help="where the artifacts go (default: a temp folder)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        for name in args.models:
            bench_model(name, args.threads, args.iters, args.warmup, out)


if __name__ == "__main__":
    main()
