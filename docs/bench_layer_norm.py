"""XNNPACK .pte with and without the LayerNorm-as-statistics rewrite, timed interleaved with onnxruntime.

Measured 2026-12-02 (this command, 1 thread, 30 iterations, this project's 2-core VM): deit-t .pte 12.66 ms
(26 subgraphs) -> 13.50 ms (2), onnxruntime 12.81; swin-t 47.87 (29) -> 52.25 (2), onnxruntime 54.12. Slower,
so converters.backends does not apply it.

    PYTHONPATH=. OMP_NUM_THREADS=1 .venv/bin/python docs/bench_layer_norm.py deit-t swin-t --threads 1 --iters 30

For each registry model: the generic converter's prepared module exported three ways (.pte as `convert` ships it,
.pte with LayerNorm as statistics too, and ONNX); each .pte is timed against the ONNX model in onnxruntime by the
fair protocol (edgevit.bench.fair: blocks in random order, first of each dropped, the other runtime quiet) at the
same thread count. Prints XNNPACK subgraphs, median ms per form and the ratio onnxruntime / .pte with its 95%
interval. (The figures above were measured with the earlier single-iteration alternation.)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from pathlib import Path

import torch

from converters import get_converter
from converters.rewrites import split_depthwise
from converters.rewrites.layer_norm import replace_layer_norms
from edgevit.bench.fair import Protocol
from edgevit.bench.host import fair_against
from edgevit.export.executorch import export_executorch
from edgevit.export.onnx import export_onnx
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    for name in args.models:
        spec = get_spec(name)
        original, _ = build_model(spec)
        prepared = get_converter(spec.converter).prepare(original).module
        without_ln = copy.deepcopy(prepared)
        split_depthwise.split_large_depthwise(without_ln)  # every XNNPACK rewrite but the LayerNorm one
        with_ln = copy.deepcopy(prepared)
        split_depthwise.split_large_depthwise(with_ln)
        replace_layer_norms(with_ln)
        example = torch.randn(1, *spec.input_size)
        with tempfile.TemporaryDirectory() as tmp:
            forms = {}
            for label, module in (("pte, LayerNorm as is", without_ln), ("pte, LayerNorm as statistics", with_ln)):
                path = Path(tmp) / f"{label[-5:].strip()}.pte"
                info = export_executorch(module, example, path, backend="xnnpack", precision="fp32")
                forms[label] = (path, "executorch", info["delegation"]["delegated_subgraphs"])
            onnx_path = Path(tmp) / "m.onnx"
            export_onnx(prepared, example, onnx_path)
            forms["onnxruntime"] = (onnx_path, "onnx", None)
            manifests = {label: (path, {"target": target, "backend": "xnnpack" if target == "executorch" else None})
                         for label, (path, target, _) in forms.items()}
            reference = manifests.pop("onnxruntime")
            protocol = Protocol.for_iterations(args.iters, warmup=args.warmup)
            results = fair_against(reference, manifests, example, protocol, threads=args.threads)
        for label, c in results.items():
            low, high = c.interval
            print(f"{name}  {label:30s} {statistics.median(c.a_samples):8.2f} ms  ({forms[label][2]} XNNPACK "
                  f"subgraphs)  onnxruntime {statistics.median(c.b_samples):8.2f} ms  ratio {c.ratio:.3f} "
                  f"[{low:.3f}, {high:.3f}]")


if __name__ == "__main__":
    main()
