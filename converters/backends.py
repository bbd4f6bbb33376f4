"""Backend-specific rewrites, applied to an already prepared module just before one backend's export.

``Converter.prepare`` gives the form every exporter shares; some rewrites only pay off on one runtime's kernels
and would only add ops elsewhere (CoreML and onnxruntime run a 7x7 depthwise conv well as it is). Each rewrite
here is exact (fp32), so the artifact still computes the prepared function.
"""

from __future__ import annotations

import copy

from torch import nn

from converters.rewrites.split_depthwise import split_large_depthwise


def for_backend(module: nn.Module, backend: str | None) -> list[str]:
    """Rewrite ``module`` in place for ExecuTorch ``backend``; returns descriptions for the manifest's rewrites.

    Only ``xnnpack`` has rewrites: large-kernel depthwise convs become sums of small depthwise convs that hit
    XNNPACK's fast kernels (converters/rewrites/split_depthwise.py). Not applied, because measured slower:
    LayerNorm as its statistics (converters/rewrites/layer_norm.py) takes DeiT-T from 26 XNNPACK subgraphs to 2
    but its .pte from 12.66 to 13.50 ms, Swin-T from 47.9 to 52.3 ms (docs/bench_layer_norm.py, 1 thread).
    Any other backend (or ``None``) leaves the module untouched and returns ``[]``.
    """
    if backend != "xnnpack":
        return []
    applied = []
    split = split_large_depthwise(module)
    if split:
        applied.append(f"xnnpack: large-kernel depthwise conv -> sum of 5x5 / 3x3 / 2x2 depthwise convs (XNNPACK's "
                       f"25-, 9- and 4-tap kernels): {len(split)}")
    return applied


def backend_copy(module: nn.Module, backend: str | None) -> tuple[nn.Module, list[str]]:
    """``module`` rewritten for ``backend`` on a deep copy (the shared prepared form stays as it is), with what
    was applied; ``module`` itself and ``[]`` when the backend has no rewrites."""
    if backend != "xnnpack":
        return module, []
    work = copy.deepcopy(module)
    applied = for_backend(work, backend)
    return (work, applied) if applied else (module, [])
