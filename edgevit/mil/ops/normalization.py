"""batch_norm, instance_norm, layer_norm (any axes), l2_norm and local_response_norm, computed in fp32."""

from __future__ import annotations

import numpy as np

from edgevit.mil.kernels import OpArgs, kernel


def _per_channel(value: np.ndarray | None, rank: int) -> np.ndarray | None:
    """A [C] parameter shaped to broadcast along axis 1 of a rank-``rank`` tensor."""
    if value is None:
        return None
    return np.asarray(value).reshape([1, -1] + [1] * (rank - 2))


def _normalised(args: OpArgs, x: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    """(x - mean) / sqrt(var + epsilon), then the optional per-channel gamma and beta."""
    out = (x - mean) / np.sqrt(var + args.float("epsilon", 1e-5))
    gamma, beta = _per_channel(args.opt("gamma"), x.ndim), _per_channel(args.opt("beta"), x.ndim)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out


@kernel("batch_norm")
def batch_norm(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    return _normalised(args, x, _per_channel(args["mean"], x.ndim), _per_channel(args["variance"], x.ndim))


@kernel("instance_norm")
def instance_norm(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    return _normalised(args, x, mean, ((x - mean) ** 2).mean(axis=axes, keepdims=True))


@kernel("layer_norm")
def layer_norm(args: OpArgs) -> np.ndarray:
    """Normalise over ``axes`` (default: all); gamma/beta have the shape of x.shape[axes]."""
    x = args.array("x")
    axes = sorted(a % x.ndim for a in args.ints("axes", list(range(x.ndim))))
    mean = x.mean(axis=tuple(axes), keepdims=True)
    var = ((x - mean) ** 2).mean(axis=tuple(axes), keepdims=True)
    out = (x - mean) / np.sqrt(var + args.float("epsilon", 1e-5))
    shape = [x.shape[i] if i in axes else 1 for i in range(x.ndim)]
    gamma, beta = args.opt("gamma"), args.opt("beta")
    if gamma is not None:
        out = out * np.asarray(gamma).reshape(shape)
    if beta is not None:
        out = out + np.asarray(beta).reshape(shape)
    return out


@kernel("l2_norm")
def l2_norm(args: OpArgs) -> np.ndarray:
    """x / sqrt(sum(x²) + eps) over the last three dims, batch-wise over the leading ones."""
    x = args.array("x")
    axes = tuple(range(max(x.ndim - 3, 0), x.ndim))
    return x / np.sqrt((x * x).sum(axis=axes, keepdims=True) + args.float("epsilon", 1e-6))


@kernel("local_response_norm")
def local_response_norm(args: OpArgs) -> np.ndarray:
    """x / (k + alpha/size · Σ x² over ``size`` neighbouring channels)^beta."""
    x = args.array("x")
    size = args.int("size")
    alpha, beta, k = args.float("alpha", 1e-4), args.float("beta", 0.75), args.float("k", 1.0)
    sq = x * x
    lo, hi = (size - 1) // 2, size // 2
    padded = np.pad(sq, [(0, 0), (lo, hi)] + [(0, 0)] * (x.ndim - 2))
    window = sum(padded[:, i:i + x.shape[1]] for i in range(size))
    return x / (k + alpha / size * window) ** beta
