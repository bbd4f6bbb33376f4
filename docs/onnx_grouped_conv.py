"""int8 .onnx with grouped (depthwise) Convs quantized or left float: speed against fp32 and logits PSNR.

    PYTHONPATH=$PWD python docs/onnx_grouped_conv.py fastvit-t8 art/fastvit-t8.onnx.fp32.onnx --rounds 30

Quantizes the fp32 ``.onnx`` (from ``edgevit convert M --target onnx``) with onnxruntime's ``quantize_static`` as
edgevit does (QDQ, uint8 activations MinMax, int8 weights per channel, Conv/MatMul/Gemm, the bundled calibration
set) three ways: every Conv int8, grouped Convs float, grouped Convs with kernels above 3x3 float. Each is run
with onnxruntime's default optimisations on one thread, interleaved with the fp32 model (one iteration each per
round), and its logits on the validation photos compared with the fp32 model's. Prints the CPU and its int8 flags.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    sys.path.insert(0, str(Path(__file__).parent))
    from interleaved_speedup import isa

    from edgevit.export.sensitivity import psnr_db
    from edgevit.models.registry import get_spec
    from edgevit.validate.calibration import calibration_set
    from edgevit.validate.inputs import validation_inputs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model")
    parser.add_argument("fp32", type=Path)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--work", type=Path, default=Path("/tmp/edgevit-grouped-conv"))
    args = parser.parse_args()
    spec = get_spec(args.model)
    calibration = calibration_set(spec).tensors
    photos = [i.tensor.numpy() for i in validation_inputs(spec, seed=0)
              if i.kind == "photo" and not i.name.endswith(("-left", "-right"))]
    args.work.mkdir(parents=True, exist_ok=True)
    pre_path = args.work / "pre.onnx"
    quant_pre_process(str(args.fp32), str(pre_path), skip_symbolic_shape=True)
    pre = onnx.load(str(pre_path))
    initializers = {i.name: i for i in pre.graph.initializer}

    def attr(node, name):
        return next((a for a in node.attribute if a.name == name), None)

    def kernel(node) -> int:
        shape = attr(node, "kernel_shape")
        return max(shape.ints) if shape is not None else max(initializers[node.input[1]].dims[2:])

    grouped = [n for n in pre.graph.node if n.op_type == "Conv" and attr(n, "group") is not None
               and attr(n, "group").i > 1]
    convs = sum(n.op_type == "Conv" for n in pre.graph.node)
    variants = {"every Conv int8": [], "grouped Convs float": [n.name for n in grouped],
                "grouped Convs above 3x3 float": [n.name for n in grouped if kernel(n) > 3]}

    def session(path: Path, optimise: bool = True):
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        if not optimise:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    reference = np.concatenate([session(args.fp32, False).run(None, {"input": x})[0] for x in photos])
    sessions = {"fp32": session(args.fp32)}
    print(f"{isa()}; {args.model}: {len(grouped)} of {convs} Convs grouped; 1 thread")
    for label, excluded in variants.items():
        class Reader(CalibrationDataReader):
            def __init__(self) -> None:
                self.items = iter(calibration)

            def get_next(self):
                item = next(self.items, None)
                return None if item is None else {"input": item.numpy()}

        path = args.work / f"{label.replace(' ', '-')}.onnx"
        quantize_static(str(pre_path), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MatMul", "Gemm"], nodes_to_exclude=excluded,
                        extra_options={"WeightSymmetric": True})
        sessions[label] = session(path)
        logits = np.concatenate([sessions[label].run(None, {"input": x})[0] for x in photos])
        print(f"{label} ({len(excluded)} float): {psnr_db(reference, logits):.1f} dB on logits")
    x = photos[0]
    for s in sessions.values():
        for _ in range(3):
            s.run(None, {"input": x})
    times: dict[str, list[float]] = {label: [] for label in sessions}
    for _ in range(args.rounds):
        for label, s in sessions.items():
            start = time.perf_counter()
            s.run(None, {"input": x})
            times[label].append((time.perf_counter() - start) * 1e3)
    base = statistics.median(times["fp32"])
    for label, samples in times.items():
        median = statistics.median(samples)
        print(f"{label}: median {median:.1f} ms, {base / median:.2f}x the speed of fp32")


if __name__ == "__main__":
    main()
