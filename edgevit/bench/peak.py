"""This host's fp32 GEMM rate: the denominator of a result's ``percent_of_peak``.

Measured, not looked up: the best GFLOP/s of a few timed square ``torch.mm`` (1024 and 2048) at the thread count
the results ran with. It is what torch's BLAS reaches here, a practical ceiling for dense fp32 work on this CPU,
not the vendor's theoretical peak; a ViT reaching a few tens of percent of it is typical (attention, norms and
layout ops do not run at GEMM speed). It can be exceeded: a runtime's own GEMM kernels may beat torch's BLAS on
this CPU (XNNPACK against MKL on an AMD host), and on a shared host the timed mm competes with other work.
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
    """Best fp32 ``torch.mm`` rate over SIZES (one warm-up, REPEATS timed each), in GFLOP/s; cached per count."""
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
    return round(best, 2)
