"""reduce_* over ``axes`` (None: all) with ``keep_dims``, and reduce_argmax/argmin over one axis."""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel


def _axes(args: OpArgs, x: np.ndarray) -> tuple[int, ...]:
    axes = args.ints("axes")
    return tuple(range(x.ndim)) if axes is None else tuple(sorted(a % x.ndim for a in axes))


_REDUCE = {
    "reduce_sum": lambda x, ax, kd: np.sum(x, axis=ax, keepdims=kd),
    "reduce_mean": lambda x, ax, kd: np.mean(x, axis=ax, keepdims=kd),
    "reduce_max": lambda x, ax, kd: np.max(x, axis=ax, keepdims=kd),
    "reduce_min": lambda x, ax, kd: np.min(x, axis=ax, keepdims=kd),
    "reduce_prod": lambda x, ax, kd: np.prod(x, axis=ax, keepdims=kd),
    "reduce_l1_norm": lambda x, ax, kd: np.sum(np.abs(x), axis=ax, keepdims=kd),
    "reduce_l2_norm": lambda x, ax, kd: np.sqrt(np.sum(x * x, axis=ax, keepdims=kd)),
    "reduce_sum_square": lambda x, ax, kd: np.sum(x * x, axis=ax, keepdims=kd),
    "reduce_log_sum": lambda x, ax, kd: np.log(np.sum(x, axis=ax, keepdims=kd)),
    "reduce_log_sum_exp": lambda x, ax, kd: _log_sum_exp(x, ax, kd),
}


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...], keep_dims: bool) -> np.ndarray:
    peak = np.max(x, axis=axes, keepdims=True)
    out = np.log(np.sum(np.exp(x - peak), axis=axes, keepdims=True)) + peak
    return out if keep_dims else np.squeeze(out, axis=axes)


def _reduce(fn):
    def run(args: OpArgs) -> np.ndarray:
        x = args.array("x")
        with np.errstate(divide="ignore", invalid="ignore"):
            out = fn(x, _axes(args, x), args.bool("keep_dims", False))
        return np.asarray(out).astype(args.out_dtype(), copy=False)

    return run


for _name, _fn in _REDUCE.items():
    kernel(_name)(_reduce(_fn))


def _arg(fn):
    def run(args: OpArgs) -> np.ndarray:
        x = args.array("x")
        axis = args.int("axis", -1) % x.ndim
        out = fn(x, axis=axis)
        if args.bool("keep_dims", False):
            out = np.expand_dims(out, axis)
        return out.astype(args.out_dtype())

    return run


kernel("reduce_argmax")(_arg(np.argmax))
kernel("reduce_argmin")(_arg(np.argmin))
