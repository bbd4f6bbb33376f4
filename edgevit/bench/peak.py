"""This host's fp32 GEMM rate: the denominator of a result's ``percent_of_peak``.

Measured, not looked up: the best GFLOP/s of a few timed square fp32 GEMMs (1024 and 2048) at the thread count
the results ran with, in torch (its BLAS) and in onnxruntime (MLAS, a one-node MatMul graph), whichever is faster.
Both: on this project's AMD host torch's MKL reached 116 GFLOP/s on one thread while XNNPACK ran whole models at
~200, so torch alone was no ceiling. It is a practical ceiling for dense fp32 work on this CPU, not the vendor's
theoretical peak; a model's GEMM-free parts (attention softmax, norms, layout ops) keep it below. On a shared host
the timed GEMM competes with other work, so a figure can still exceed it.
"""

from __future__ import annotations

import time
from functools import cache

import torch

from edgevit.validate.threads import torch_threads

SIZES = (1024, 2048)
REPEATS = 3


@cache
def gemm_peak_gflop_per_s(threads: int) -> float:
    """Best fp32 GEMM rate of torch.mm and onnxruntime's MatMul over SIZES (one warm-up, REPEATS timed each), in
    GFLOP/s; cached per thread count."""
    best = 0.0
    generator = torch.Generator().manual_seed(0)
    with torch_threads(threads), torch.inference_mode():
        for n in SIZES:
            a = torch.randn(n, n, generator=generator)
            b = torch.randn(n, n, generator=generator)
            torch.mm(a, b)
            for _ in range(REPEATS):
                start = time.perf_counter()
                torch.mm(a, b)
                seconds = time.perf_counter() - start
                best = max(best, 2 * n**3 / seconds / 1e9)
    return round(max(best, _onnxruntime_gemm(threads)), 2)


def _onnxruntime_gemm(threads: int) -> float:
    """Best GFLOP/s of onnxruntime's MatMul over SIZES at ``threads``; 0.0 where onnxruntime is missing."""
    try:
        import numpy as np
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return 0.0
    from edgevit.validate.threads import onnxruntime_options

    best = 0.0
    rng = np.random.default_rng(0)
    for n in SIZES:
        graph = helper.make_graph(
            [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
            [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in ("a", "b")],
            [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
        session = ort.InferenceSession(model.SerializeToString(), onnxruntime_options(threads),
                                       providers=["CPUExecutionProvider"])
        feed = {"a": rng.standard_normal((n, n), dtype=np.float32), "b": rng.standard_normal((n, n), dtype=np.float32)}
        session.run(None, feed)
        for _ in range(REPEATS):
            start = time.perf_counter()
            session.run(None, feed)
            best = max(best, 2 * n**3 / (time.perf_counter() - start) / 1e9)
    return best
