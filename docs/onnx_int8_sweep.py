"""onnxruntime static int8 configurations on one model: logits PSNR against the fp32 original and speed against
fp32 ONNX, interleaved in one run (so load on a shared host hits both alike).

    PYTHONPATH=$PWD python docs/onnx_int8_sweep.py swiftformer-l1 --out /tmp/onnx_sweep --threads 1

Configurations: operator sets (weights only: Conv/MatMul/Gemm; plus the elementwise and pooling ops onnxruntime
has int8 kernels for), activation type (QInt8 / QUInt8) and calibration method (MinMax / Percentile / Entropy).
Each is quantized with edgevit's ``quantize_onnx_static`` from one fp32 export, judged on the validation photos
(logits PSNR and centered-logits PSNR, both against the fp32 PyTorch original) and timed as the median ratio
of interleaved runs (fp32, int8, fp32, int8, ...). Weights: edgevit's "exercised" random init unless --weights.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from docs.coreml_compression import quality  # noqa: E402 - the same logits metrics as the CoreML table


def _session(path: Path, threads: int):
    import onnxruntime as ort

    from edgevit.validate.threads import onnxruntime_options

    return ort.InferenceSession(str(path), onnxruntime_options(threads), providers=["CPUExecutionProvider"])


def interleaved_ratio(fp32, int8, feed: dict, rounds: int) -> tuple[float, float, float]:
    """(median fp32 ms, median int8 ms, median of per-round fp32/int8 ratios)."""
    for s in (fp32, int8):
        for _ in range(3):
            s.run(None, feed)
    a, b, ratios = [], [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fp32.run(None, feed)
        t1 = time.perf_counter()
        int8.run(None, feed)
        t2 = time.perf_counter()
        a.append((t1 - t0) * 1e3)
        b.append((t2 - t1) * 1e3)
        ratios.append((t1 - t0) / (t2 - t1))
    return statistics.median(a), statistics.median(b), statistics.median(ratios)


def main() -> None:
    from converters import get_converter
    from edgevit.export.onnx import export_onnx
    from edgevit.export.quantize import ONNX_CONFIGS, quantize_onnx_static
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec
    from edgevit.validate.calibration import calibration_set
    from edgevit.validate.inputs import photo_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--configs", nargs="+", default=list(ONNX_CONFIGS))
    parser.add_argument("--methods", nargs="+", default=["MinMax", "Percentile", "Entropy"])
    parser.add_argument("--weights")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = get_spec(args.model)
    original, winfo = build_model(spec, {}, Path(args.weights) if args.weights else None, "exercised", 0)
    prepared = get_converter(spec.converter).prepare(original).module
    args.out.mkdir(parents=True, exist_ok=True)
    fp32_path = args.out / f"{spec.name}.fp32.onnx"
    example = torch.randn(1, *spec.input_size)
    export_onnx(prepared, example, fp32_path)
    tensors = [item.tensor for item in photo_inputs(spec)]
    with torch.no_grad():
        reference = torch.cat([original(t) for t in tensors]).numpy()
    calibration = calibration_set(spec).tensors
    fp32 = _session(fp32_path, args.threads)
    rows = []
    for config in args.configs:
        for method in args.methods:
            path = args.out / f"{spec.name}.{config}.{method}.int8.onnx"
            start = time.perf_counter()
            info = quantize_onnx_static(fp32_path, path, "input", calibration, config=config, method=method)
            seconds = time.perf_counter() - start
            int8 = _session(path, args.threads)
            logits = np.concatenate([int8.run(None, {"input": t.numpy()})[0] for t in tensors])
            fp_ms, q_ms, ratio = interleaved_ratio(fp32, int8, {"input": tensors[0].numpy()}, args.rounds)
            rows.append({"model": spec.name, "config": config, "method": method, "threads": args.threads,
                         "fp32_ms": fp_ms, "int8_ms": q_ms, "speedup": ratio, "quantize_s": seconds,
                         "float_layers": info["float_layers"]["count"], "weights": winfo.describe(),
                         **quality(reference, logits)})
            print(json.dumps(rows[-1]), flush=True)
    print("| model | ops | calibration | logits PSNR dB | centered PSNR dB | top-1 | fp32 ms | int8 ms | speedup |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['config']} | {r['method']} | {r['psnr_db']:.1f} | {r['centered_psnr_db']:.1f} | "
              f"{r['top1']:.0%} | {r['fp32_ms']:.1f} | {r['int8_ms']:.1f} | {r['speedup']:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
