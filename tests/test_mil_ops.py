"""Focused checks of MIL interpreter kernels that Apple's op tests (tests/mil_optests) caught wrong.

Each builds a small MIL program with coremltools' Builder, converts it to an ML program and runs the saved
program through ``edgevit.mil.predict``, against a numpy/torch reference computed here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

ct = pytest.importorskip("coremltools")
from coremltools.converters.mil.mil import Builder as mb  # noqa: E402
from coremltools.converters.mil.mil import types  # noqa: E402

from edgevit import mil  # noqa: E402


def run(prog, inputs: dict, *, target=ct.target.iOS17, precision=ct.precision.FLOAT32) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ct.convert(prog, convert_to="mlprogram", minimum_deployment_target=target,
                           compute_precision=precision, pass_pipeline=ct.PassPipeline.EMPTY)
    return mil.predict(model, inputs)


def test_matmul_and_linear_with_int32_const_operand():
    """iOS17: one const side of matmul, and linear's weight, may be int32 next to fp32 activations."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5)).astype(np.float32)
    w_int = rng.integers(-4, 5, size=(5, 3)).astype(np.int32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.matmul(x=x, y=w_int, name="mm"), mb.linear(x=x, weight=w_int.T.copy(), name="lin")

    out = run(prog, {"x": x})
    np.testing.assert_allclose(out["mm"], x @ w_int.astype(np.float32), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out["lin"], x @ w_int.astype(np.float32), rtol=1e-6, atol=1e-6)


def test_matmul_int32_activations_times_fp32_const_is_int32():
    x = np.arange(10, dtype=np.int32).reshape(2, 5)
    y = np.full((5, 2), 2.0, dtype=np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape, dtype=types.int32)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.matmul(x=x, y=y, name="mm")

    out = run(prog, {"x": x})
    np.testing.assert_array_equal(out["mm"], (x @ y).astype(np.int32))
