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


@pytest.mark.parametrize("mode, expected", [
    # the grid points resize_bilinear's docstring lists for Xin = 2 (input [0, 1]), Xout = 5 and 6
    ("UNALIGN_CORNERS", [[0.0, 0.1, 0.5, 0.9, 1.0], [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0]]),
    ("STRICT_ALIGN_CORNERS", [[0.0, 0.25, 0.5, 0.75, 1.0], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]]),
    ("DEFAULT", [[0.0, 0.4, 0.8, 1.0, 1.0], [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0]]),
    ("OFFSET_CORNERS", [[0.1, 0.3, 0.5, 0.7, 0.9], [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12]]),
])
def test_resize_bilinear_sampling_modes_match_the_op_docstring(mode, expected):
    x = np.array([0.0, 1.0], dtype=np.float32).reshape(1, 1, 1, 2)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS15)
    def prog(x):
        return [mb.resize_bilinear(x=x, target_size_height=1, target_size_width=n, sampling_mode=mode,
                                   name=f"out{n}") for n in (5, 6)]

    out = run(prog, {"x": x}, target=ct.target.iOS15)
    for n, want in zip((5, 6), expected, strict=True):
        np.testing.assert_allclose(out[f"out{n}"].reshape(-1), want, atol=1e-6)


def test_align_corners_to_a_single_sample_reads_the_middle():
    x = np.array([0.0, 1.0, 2.0, 3.0], dtype=np.float32).reshape(1, 1, 1, 4)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.resize_bilinear(x=x, target_size_height=1, target_size_width=1, sampling_mode="ALIGN_CORNERS",
                                  name="out")

    np.testing.assert_allclose(run(prog, {"x": x}, target=ct.target.iOS15)["out"].reshape(-1), [1.5])


def test_upsample_nearest_fractional_scale_recomputes_it_from_the_sizes():
    x = np.arange(7, dtype=np.float32).reshape(1, 1, 1, 7)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS15)
    def prog(x):
        return mb.upsample_nearest_neighbor(x=x, scale_factor_height=1.0, scale_factor_width=1.5, name="out")

    out = run(prog, {"x": x}, target=ct.target.iOS15)["out"].reshape(-1)
    width = int(7 * 1.5)
    np.testing.assert_array_equal(out, np.floor(np.arange(width) * 7 / width))


def test_quantize_then_dequantize_per_channel():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    scale = np.array([0.01, 0.02, 0.05], dtype=np.float32)
    zero_point = np.array([-3, 0, 7], dtype=np.int8)

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS17)
    def prog(x):
        q = mb.quantize(input=x, scale=scale, zero_point=zero_point, axis=1, output_dtype="int8")
        return mb.dequantize(input=q, scale=scale, zero_point=zero_point, axis=1, name="out")

    s, z = scale.reshape(1, 3, 1), zero_point.astype(np.float32).reshape(1, 3, 1)
    want = s * (np.clip(np.round(x / s) + z, -128, 127) - z)
    np.testing.assert_allclose(run(prog, {"x": x})["out"], want, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mask_kind", [None, "bool", "float"])
def test_scaled_dot_product_attention_matches_torch(mask_kind):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    q, k, v = (rng.standard_normal(s).astype(np.float32) for s in ((2, 3, 5, 8), (2, 3, 6, 8), (2, 3, 6, 4)))
    mask = None
    if mask_kind == "bool":
        mask = rng.random((5, 6)) > 0.3
        mask[:, 0] = True  # no fully masked row
    elif mask_kind == "float":
        mask = rng.standard_normal((5, 6)).astype(np.float32)

    @mb.program(input_specs=[mb.TensorSpec(shape=a.shape) for a in (q, k, v)], opset_version=ct.target.iOS18)
    def prog(query, key, value):
        return mb.scaled_dot_product_attention(query=query, key=key, value=value, attn_mask=mask, name="out")

    out = run(prog, {"query": q, "key": k, "value": v}, target=ct.target.iOS18)["out"]
    want = torch.nn.functional.scaled_dot_product_attention(
        torch.from_numpy(q), torch.from_numpy(k), torch.from_numpy(v),
        attn_mask=None if mask is None else torch.from_numpy(mask)).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5)


def test_crop_resize_align_corners_pads_outside_the_image():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    boxes = np.array([[0.0, 1.0, 3.0, 2.0], [2.0, 2.0, 5.0, 5.0]], dtype=np.float32)  # the 2nd runs off the edge

    @mb.program(input_specs=[mb.TensorSpec(shape=x.shape)], opset_version=ct.target.iOS17)
    def prog(x):
        return mb.crop_resize(x=x, boxes=boxes, box_indices=np.array([0, 0], dtype=np.int32), target_height=4,
                              target_width=2, sampling_mode="ALIGN_CORNERS", pad_value=-1.0, name="out")

    out = run(prog, {"x": x})["out"]
    assert out.shape == (2, 1, 4, 2)
    np.testing.assert_allclose(out[0, 0], [[1, 2], [5, 6], [9, 10], [13, 14]])  # rows 0..3, cols 1 and 2
    rows = 2 + np.arange(4)  # 2, 3, 4, 5: the last two are outside
    want = np.where((rows[:, None] <= 3) & (np.array([2, 5])[None, :] <= 3), rows[:, None] * 4 + np.array([2, 5]), -1)
    np.testing.assert_allclose(out[1, 0], want)
