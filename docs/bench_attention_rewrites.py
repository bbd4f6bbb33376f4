"""What converters.rewrites.attention buys: XNNPACK subgraphs and latency before / after, per registry model.

    PYTHONPATH=. python docs/bench_attention_rewrites.py deit-t swin-t efficientvit-m0 --threads 1 --iters 10

"before" is the generic converter with the attention rewrite off, "after" with it on (the default). Each
variant is exported to an XNNPACK .pte (edgevit.export.executorch) and to ONNX; the timed runs interleave the
four sessions (pte before, pte after, ORT before, ORT after) so load from other processes hits all of them
alike. Latency: median and min over --iters single-image runs after --warmup runs, in ms.

Measured once (2 vCPU Linux x86 host, measured under load from other agents; 1 thread, 10 runs, medians;
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
import time
from pathlib import Path

import numpy as np
import torch

from converters.generic import GenericConverter
from edgevit.export.executorch import export_executorch
from edgevit.export.onnx import export_onnx
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec


def prepare(model: torch.nn.Module, attention: bool):
    converter = GenericConverter()
    converter.attention = attention
    return converter.prepare(model).module


def pte_runner(path: Path, x: torch.Tensor, threads: int):
    from executorch.extension.pybindings.portable_lib import _load_for_executorch, _unsafe_reset_threadpool

    _unsafe_reset_threadpool(threads)
    module = _load_for_executorch(str(path))
    return lambda: module.forward([x])[0]


def ort_runner(path: Path, x: torch.Tensor, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x.numpy()}
    return lambda: session.run(None, feed)[0]


def bench_model(name: str, threads: int, iters: int, warmup: int, out: Path) -> None:
    spec = get_spec(name)
    model, _ = build_model(spec)
    x = torch.randn(1, *spec.input_size)
    with torch.no_grad():
        reference = model(x)
    runners, subgraphs = {}, {}
    for label, attention in (("before", False), ("after", True)):
        prepared = prepare(model, attention)
        pte, onnx = out / f"{name}-{label}.pte", out / f"{name}-{label}.onnx"
        summary = export_executorch(prepared, x, pte)
        subgraphs[label] = summary["delegation"]["delegated_subgraphs"]
        undelegated = summary["delegation"]["non_delegated_ops"]
        print(f"{name} {label}: {subgraphs[label]} XNNPACK subgraphs; not delegated: {undelegated}", flush=True)
        export_onnx(prepared, x, onnx)
        runners[f"pte {label}"] = pte_runner(pte, x, threads)
        runners[f"ort {label}"] = ort_runner(onnx, x, threads)
    for key, run in runners.items():  # each output against the original model
        got = torch.as_tensor(np.asarray(run()))
        err = float((got.double() - reference.double()).norm() / reference.double().norm())
        print(f"  {key}: relative L2 vs original {err:.2e}")
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(warmup):
        for run in runners.values():
            run()
    for _ in range(iters):
        for key, run in runners.items():
            t0 = time.perf_counter()
            run()
            times[key].append((time.perf_counter() - t0) * 1e3)
    print(f"{name}: subgraphs {subgraphs['before']} -> {subgraphs['after']} ({threads} thread(s), {iters} runs)")
    for key, ts in times.items():
        print(f"  {key:10s} median {statistics.median(ts):8.2f} ms   min {min(ts):8.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=10)
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
