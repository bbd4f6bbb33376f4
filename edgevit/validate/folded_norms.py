"""Conv weights coremltools folded with the BatchNorm after them, checked value by value and carried.

Why: coremltools folds a BatchNorm into the conv before it (``fuse_conv_batchnorm``) and stores the product under
a name of its own (``const_298``). Such a tensor matched no parameter, so it was judged only through the program's
outputs, within an allowance for fp16 rounding that is an estimate, not a bound: a correct timm:nextvit_small fp16
package missed it by 1.2x (the reference rounded conv and BatchNorm separately, the program their product), and a
small change of a folded weight could hide inside it. Here each conv followed by a BatchNorm (found by running the
reference once with hooks: the BatchNorm's input is that conv's output) whose weight the program does not store by
name must be stored folded, ``w * (gamma / sqrt(var + eps))`` per output channel and ``beta + (b - mean) * gamma /
sqrt(var + eps)``, computed in fp32 in the fold's order and judged by the tensor's storage rule (fp16 rounding, an
int8 grid, a palette). The reference then carries the stored product in the conv and turns its BatchNorm into a
bias add (gamma 1, mean 0, var 1 - eps, beta the stored bias), so it computes what the program computes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from edgevit.validate.stored_values import StoredTensor, ValueCheck, broken_under_rule


@dataclass(frozen=True)
class ConvNorm:
    """A conv whose output goes into a BatchNorm (state-dict prefixes), and the per-channel scale module (a layer
    scale) the BatchNorm's output goes into, if any: coremltools folds that too (``fuse_conv_scale``), when nothing
    else reads the BatchNorm's output."""

    conv: str
    norm: str
    eps: float
    scale: str | None = None  # the state-dict key of the scale's parameter


def _scale_parameter(sub: nn.Module, x: torch.Tensor, output: object) -> str | None:
    """The name of ``sub``'s one parameter if ``sub`` computed ``x`` times it per channel (checked on the values)."""
    params = list(sub.named_parameters(recurse=False))
    if len(params) != 1 or not isinstance(output, torch.Tensor) or x.dim() != 4:
        return None
    name, value = params[0]
    if value.numel() != x.shape[1] or output.shape != x.shape:
        return None
    return name if torch.equal(output, x * value.reshape(1, -1, 1, 1)) else None


def conv_norm_pairs(module: nn.Module, run_once: Callable[[nn.Module], object]) -> list[ConvNorm]:
    """Each conv (4-D weight) whose output goes straight into a BatchNorm, each called once per forward, with the
    layer scale that multiplies the BatchNorm's output, if a module does (modules that return their input, such as
    dropout in eval mode, pass it on)."""
    names = {id(sub): name for name, sub in module.named_modules()}
    produced: dict[int, tuple[str, torch.Tensor]] = {}  # tensors kept alive: an id is not reused meanwhile
    normed: dict[int, tuple[int, torch.Tensor]] = {}
    calls: dict[str, int] = {}
    pairs: list[list] = []

    def count(sub) -> str:
        name = names[id(sub)]
        calls[name] = calls.get(name, 0) + 1
        return name

    def after_conv(sub, _args, output):
        produced[id(output)] = (count(sub), output)

    def before_norm(sub, args):
        name = count(sub)
        conv = produced.get(id(args[0]))[0] if args and id(args[0]) in produced else None
        if conv is not None:
            pairs.append([conv, name, float(sub.eps), None])

    def after_norm(sub, args, output):
        if pairs and pairs[-1][1] == names[id(sub)]:
            normed[id(output)] = (len(pairs) - 1, output)

    def after_any(sub, args, output):
        if args and isinstance(args[0], torch.Tensor) and id(args[0]) in normed and output is not args[0]:
            index, _ = normed.pop(id(args[0]))
            parameter = _scale_parameter(sub, args[0], output)
            if parameter is not None and pairs[index][3] is None:
                prefix = names[id(sub)]
                pairs[index][3] = f"{prefix}.{parameter}" if prefix else parameter

    handles = []
    for sub in module.modules():
        if isinstance(sub, nn.Conv2d) and sub.weight.dim() == 4:
            handles.append(sub.register_forward_hook(after_conv))
        elif isinstance(sub, _BatchNorm) and sub.affine and sub.running_var is not None:
            handles.append(sub.register_forward_pre_hook(before_norm))
            handles.append(sub.register_forward_hook(after_norm))
        if not list(sub.children()):
            handles.append(sub.register_forward_hook(after_any))
    try:
        with torch.no_grad():
            run_once(module)
    finally:
        for handle in handles:
            handle.remove()
    return [ConvNorm(conv, norm, eps, scale) for conv, norm, eps, scale in pairs
            if calls[conv] == 1 and calls[norm] == 1]


def _key(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


# fp32 roundings in a fold (var + eps, sqrt, divide, subtract, multiply, add, a layer scale), each at most half an
# fp32 ulp of the magnitude it acts on: the stored fold may differ from this one by that much more than its rule
FOLD_ROUNDINGS = 8


def folded(state: dict[str, np.ndarray], pair: ConvNorm, with_scale: bool = False
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The conv's weight and bias with its BatchNorm folded in (and its layer scale after, ``with_scale``), in fp32
    and in the order coremltools folds them, and a bound on each element's fp32 rounding (cancellation in the bias
    makes that relative to the terms, not to the result)."""
    weight = state[_key(pair.conv, "weight")].astype(np.float32)
    bias = state.get(_key(pair.conv, "bias"))
    bias = np.zeros(weight.shape[0], np.float32) if bias is None else bias.astype(np.float32)
    channels = weight.shape[0]
    gamma = state.get(_key(pair.norm, "weight"), np.ones(channels, np.float32)).astype(np.float32)
    beta = state.get(_key(pair.norm, "bias"), np.zeros(channels, np.float32)).astype(np.float32)
    mean = state[_key(pair.norm, "running_mean")].astype(np.float32)
    var = state[_key(pair.norm, "running_var")].astype(np.float32)
    root = np.sqrt(var + np.float32(pair.eps))
    weight, terms = weight * (gamma / root).reshape(-1, 1, 1, 1), np.abs(beta) + np.abs((bias - mean) * gamma / root)
    bias = beta + (bias - mean) * gamma / root
    if with_scale and pair.scale is not None:
        scale = state[pair.scale].astype(np.float32).reshape(-1)
        weight, bias, terms = weight * scale.reshape(-1, 1, 1, 1), bias * scale, terms * np.abs(scale)
    unit = FOLD_ROUNDINGS * float(np.finfo(np.float32).eps) / 2
    return weight, bias, unit * np.abs(weight), unit * terms


def check_folded(stored: list[StoredTensor], state: dict[str, np.ndarray], pairs: list[ConvNorm],
                 check: ValueCheck, carried: dict[str, np.ndarray]) -> None:
    """For each pair whose conv weight the program does not store by name: find the unmatched stored tensor that is
    its folded weight (and bias) under its storage rule, count it checked and carry it; a pair with no such
    tensor (nor its plain weight) is broken. Updates ``check`` and ``carried`` in place."""
    free = {t.name: t for t in stored if t.name in set(check.unmatched)}

    def take(expected: np.ndarray, computed: np.ndarray | None = None) -> StoredTensor | None:
        for tensor in free.values():
            if tensor.dense.shape == expected.shape and broken_under_rule(tensor, expected, computed) is None:
                return free.pop(tensor.name)
        return None

    def missing(expected: np.ndarray, computed: np.ndarray, parameter: str) -> dict:
        """The nearest stored tensor of that shape, judged by its rule (what a changed folded value looks like)."""
        same = [t for t in free.values() if t.dense.shape == expected.shape]
        if not same:
            return {"tensor": "(none)", "parameter": parameter, "rule": "stored", "bad": 1, "of": 1,
                    "worst": float("inf"), "why": f"no unmatched stored tensor of shape {list(expected.shape)}"}
        nearest = min(same, key=lambda t: float(np.max(np.abs(t.dense - expected))))
        free.pop(nearest.name)
        return {"tensor": nearest.name, "parameter": parameter, **broken_under_rule(nearest, expected, computed)}

    for pair in pairs:
        weight_key = _key(pair.conv, "weight")
        if weight_key in carried or weight_key not in state:
            continue  # stored by name: not folded (its BatchNorm's parameters are stored by name too)
        found = None
        for with_scale in ([True] if pair.scale is not None and pair.scale in state else []) + [False]:
            weight, bias, weight_rounding, bias_rounding = folded(state, pair, with_scale)
            stored_weight = take(weight, weight_rounding)
            if stored_weight is not None:
                found = with_scale, stored_weight
                break
        if found is None:
            if take(state[weight_key].astype(np.float32)) is not None:
                continue  # stored unfolded under another name: the program check judges it
            check.broken.append(missing(weight, weight_rounding, f"{weight_key} folded with {pair.norm}"))
            continue
        with_scale, stored_weight = found
        stored_bias = take(bias, bias_rounding)
        if stored_bias is None:
            check.broken.append(missing(bias, bias_rounding, f"{pair.conv}'s bias folded with {pair.norm}"))
            continue
        check.checked += 2
        carried[weight_key] = stored_weight.dense
        if _key(pair.conv, "bias") in state:
            carried[_key(pair.conv, "bias")] = np.zeros_like(bias)
        channels = bias.shape[0]
        carried[_key(pair.norm, "weight")] = np.ones(channels, np.float32)
        carried[_key(pair.norm, "running_mean")] = np.zeros(channels, np.float32)
        carried[_key(pair.norm, "running_var")] = np.full(channels, 1 - pair.eps, np.float32)
        carried[_key(pair.norm, "bias")] = stored_bias.dense
        if with_scale:
            carried[pair.scale] = np.ones(state[pair.scale].shape, np.float32)
    check.unmatched = [name for name in check.unmatched if name in free]
