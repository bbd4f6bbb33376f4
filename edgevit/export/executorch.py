"""Prepared module -> ExecuTorch ``.pte``, lowered with ``to_edge_transform_and_lower``.

XNNPACK (Android / CPU, fp32) by default; ``backend="coreml"`` gives the CoreML-delegated ``.pte`` for iOS.
The delegation summary (how many nodes the backend took) goes into the manifest: nodes left behind run
on ExecuTorch's portable kernels, which is usually where the time goes.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from edgevit.errors import ExportError
from edgevit.export.atomic import atomic_path
from edgevit.export.locate import export_error

BACKENDS = ("xnnpack", "coreml")


def _partitioner(backend: str, precision: str, deployment_target: str):
    if backend == "xnnpack":
        if precision != "fp32":
            raise ExportError("the XNNPACK .pte is fp32; use --precision fp32, or --backend coreml for fp16")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner

        return XnnpackPartitioner()
    if backend == "coreml":
        import coremltools as ct
        from executorch.backends.apple.coreml.compiler import CoreMLBackend
        from executorch.backends.apple.coreml.partition import CoreMLPartitioner

        specs = CoreMLBackend.generate_compile_specs(
            compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
            minimum_deployment_target=getattr(ct.target, deployment_target),
        )
        return CoreMLPartitioner(compile_specs=specs)
    raise ExportError(f"unknown ExecuTorch backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def export_executorch(prepared: nn.Module, example: torch.Tensor, out: Path, *, backend: str = "xnnpack",
                      precision: str = "fp32", deployment_target: str = "iOS17") -> dict:
    """Lower and save atomically; returns the delegation summary for the manifest."""
    from executorch.devtools.backend_debug import get_delegation_info
    from executorch.exir import to_edge_transform_and_lower

    partitioner = _partitioner(backend, precision, deployment_target)
    program = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(prepared.eval(), (example,))
            edge = to_edge_transform_and_lower(program, partitioner=[partitioner])
            info = get_delegation_info(edge.exported_program().graph_module)
            buffer = edge.to_executorch().buffer
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise export_error(f"ExecuTorch ({backend})", exc, program) from None
    with atomic_path(out) as tmp:
        tmp.write_bytes(buffer)
    undelegated = {
        op: b.non_delegated for op, b in info.delegation_by_operator.items() if b.non_delegated and op != "getitem"
    }
    return {
        "input": {"name": "x", "kind": "tensor", "shape": list(example.shape)},
        "output": {"name": "output", "kind": "logits"},
        "delegation": {
            "backend": backend,
            "delegated_subgraphs": info.num_delegated_subgraphs,
            "delegated_nodes": info.num_delegated_nodes,
            "non_delegated_nodes": info.num_non_delegated_nodes,
            "non_delegated_ops": dict(sorted(undelegated.items(), key=lambda kv: -kv[1])),
        },
    }
