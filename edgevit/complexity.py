"""Params and FLOPs of a registered model, counted by torch.utils.flop_counter (no hand counting)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edgevit.registry import ModelSpec


def count_flops(model: torch.nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs of one forward pass at batch 1 (a multiply-add is 2 FLOPs)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.randn((1, *input_size)))
    return int(counter.get_total_flops())


def complexity(spec: ModelSpec) -> dict[str, int]:
    model = spec.build()
    return {"params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, spec.input_size)}
