"""Params and FLOPs of a model, counted by torch.utils.flop_counter (no hand counting).

Counting runs attention on PyTorch's math SDPA backend: on CPU the fused kernel reports 0 FLOPs to
FlopCounterMode, which would make every attention block free.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

if TYPE_CHECKING:  # the registry builds models (and TurboViT uses count_flops): no import cycle at run time
    from edgevit.models.spec import ModelSpec



def count_flops(model: torch.nn.Module, input_size: tuple[int, ...]) -> int:
    """FLOPs of one forward pass at batch 1 (a multiply-add is 2 FLOPs); the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(torch.zeros((1, *input_size)))
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def complexity(spec: ModelSpec) -> dict[str, int]:
    model = spec.build()
    return {"params": sum(p.numel() for p in model.parameters()), "flops": count_flops(model, spec.input_size)}
