"""Random weights that make every block count, for conversions without ``--weights`` and for parity tests.

Library initialisations are built for training, not for checking a conversion: layer scales start near
1e-5 (so a broken attention block changes the output by less than any tolerance), BatchNorm statistics are
the identity, and every photo goes to the same class, so top-1 agreement is trivially 100%.

``exercise_weights`` sets layer scales to ~U(0.5, 1), gives every norm a random affine, then calibrates the
BatchNorm statistics on a batch of smooth random images, as training would have, and draws a wide head.
Calibration matters: with made-up statistics the activations drift into a large common component, any head
that separates inputs has to cancel it, and fp32 rounding is amplified past 1e-4 — in the original model
itself. Calibrated, the fp32 model agrees with its own float64 run to ~5e-7 and inputs map to many classes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

LAYER_SCALE_NAMES = ("gamma", "layer_scale", "layer_scale_1", "layer_scale_2", "ls", "scale")
CALIBRATION_BATCH = 16


@torch.no_grad()
def exercise_weights(model: nn.Module, seed: int = 0, input_size: tuple[int, ...] = (3, 224, 224)) -> nn.Module:
    """Re-draw in place, deterministically from ``seed``; returns the model in eval mode."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(t.shape, generator=gen, dtype=t.dtype)

    for name, param in model.named_parameters():
        parts = name.split(".")
        is_scale = parts[-1] in LAYER_SCALE_NAMES or (len(parts) > 1 and parts[-2] in LAYER_SCALE_NAMES)
        if is_scale and param.dim() <= 3 and (param.abs().max() < 1e-3 or parts[-1] == "gamma"):
            param.copy_(uniform(param, 0.5, 1.0))
    for module in model.modules():
        if isinstance(module, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)) and getattr(module, "weight", None) is not None:
            module.weight.copy_(uniform(module.weight, 0.5, 1.5))
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.2)
    with one_thread():  # the same bits whatever threads convert and validate use (see one_thread)
        calibrate_batchnorm(model, smooth_images(CALIBRATION_BATCH, input_size, gen))
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear) and name.split(".")[0].startswith("head"):
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 3 / module.in_features**0.5)
            if module.bias is not None:
                module.bias.zero_()
    return model.eval()


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block. Why: bilinear resampling and the BatchNorm pass give results that
    differ in the last bit with the thread count, a statistic that moves moves the folded weights, and then an
    artifact converted with two threads no longer carries exactly the weights the original rebuilt by a one-thread
    ``validate`` has (an int8 weight can round the other way, and the verdict compares stored values exactly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def smooth_images(n: int, input_size: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Low-frequency noise plus a little pixel noise: closer to normalised photos than white noise."""
    c, h, w = input_size
    coarse = torch.randn((n, c, max(h // 16, 1), max(w // 16, 1)), generator=gen)
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) + 0.3 * torch.randn(
        (n, c, h, w), generator=gen
    )


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, images: torch.Tensor) -> None:
    """Set every BatchNorm's running statistics to those of ``images`` (one train-mode pass, cumulative)."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: after one pass, exactly this batch's statistics
    model.train()
    try:
        model(images)
    finally:
        model.eval()
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
