"""Activation MIL ops (gelu modes, softmax, the alpha/beta families), on torch's CPU kernels."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from edgevit.mil.kernels import OpArgs, kernel


def tensor(x: np.ndarray) -> torch.Tensor:
    """A zero-copy torch view of a numpy array (float arrays as float32)."""
    arr = np.ascontiguousarray(x)
    return torch.from_numpy(arr)


def _unary_torch(fn):
    def run(args: OpArgs) -> np.ndarray:
        return fn(tensor(args.array("x"))).numpy()

    return run


for _name, _fn in {"relu": torch.relu, "sigmoid": torch.sigmoid, "silu": F.silu, "softsign": F.softsign,
                   "relu6": F.relu6, "softplus": F.softplus}.items():
    kernel(_name)(_unary_torch(_fn))


@kernel("gelu")
def gelu(args: OpArgs) -> np.ndarray:
    """EXACT: x·Φ(x); TANH_APPROXIMATION: the tanh formula; SIGMOID_APPROXIMATION: x·σ(1.702x)."""
    x = tensor(args.array("x"))
    mode = args.str("mode", "EXACT")
    if mode == "EXACT":
        return F.gelu(x).numpy()
    if mode == "TANH_APPROXIMATION":
        return F.gelu(x, approximate="tanh").numpy()
    if mode == "SIGMOID_APPROXIMATION":
        return (x * torch.sigmoid(1.702 * x)).numpy()
    raise args.fail(f"unknown gelu mode {mode!r}")


@kernel("softmax")
def softmax(args: OpArgs) -> np.ndarray:
    return torch.softmax(tensor(args.array("x")), dim=args.int("axis", -1)).numpy()


@kernel("leaky_relu")
def leaky_relu(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    return np.where(x >= 0, x, x * args.float("alpha", 0.01))


@kernel("elu")
def elu(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    return np.where(x > 0, x, args.float("alpha", 1.0) * np.expm1(np.minimum(x, 0)))


@kernel("prelu")
def prelu(args: OpArgs) -> np.ndarray:
    """alpha is per channel (axis 1 of a rank >= 3 input)."""
    x, alpha = args.array("x"), args.array("alpha")
    shape = [1] * x.ndim
    shape[1] = -1
    return np.where(x >= 0, x, x * alpha.reshape(shape))


@kernel("thresholded_relu")
def thresholded_relu(args: OpArgs) -> np.ndarray:
    x = args.array("x")
    return np.where(x >= args.float("alpha", 1.0), x, 0).astype(x.dtype)


@kernel("clamped_relu")
def clamped_relu(args: OpArgs) -> np.ndarray:
    x, alpha, beta = args.array("x"), args.float("alpha"), args.float("beta")
    return np.minimum(np.where(x >= 0, x, alpha * x), beta)


@kernel("linear_activation")
def linear_activation(args: OpArgs) -> np.ndarray:
    return args.float("alpha") * args.array("x") + args.float("beta", 0.0)


@kernel("scaled_tanh")
def scaled_tanh(args: OpArgs) -> np.ndarray:
    return args.float("alpha", 1.0) * np.tanh(args.float("beta", 1.0) * args.array("x"))


@kernel("sigmoid_hard")
def sigmoid_hard(args: OpArgs) -> np.ndarray:
    return np.clip(args.float("alpha", 0.2) * args.array("x") + args.float("beta", 0.5), 0.0, 1.0)


@kernel("softplus_parametric")
def softplus_parametric(args: OpArgs) -> np.ndarray:
    """alpha and beta are per channel: alpha · log(1 + exp(beta · x))."""
    x = args.array("x")
    shape = [1] * x.ndim
    shape[1] = -1
    alpha, beta = args.array("alpha").reshape(shape), args.array("beta").reshape(shape)
    return alpha * np.logaddexp(0, beta * x)
