"""The two parts of the parity verdict, unit by unit: the storage rules of the stored-values check (each with the
tampered value it must fail and the honest one it must pass), the precision cost (logits, centered logits, the
spread check, the floor and who sets it), and the verdict's assembly (which part failed)."""

from __future__ import annotations

import numpy as np
import pytest

from edgevit.validate.precision_cost import DEFAULT_FLOORS_DB, precision_cost
from edgevit.validate.stored_values import StoredTensor, ValueCheck, check_stored, parameter_key

RNG = np.random.default_rng(0)
W = RNG.normal(0, 0.05, size=(16, 8, 3, 3)).astype(np.float32)


def _check(tensor: StoredTensor, original: np.ndarray = W) -> ValueCheck:
    check, carried = check_stored([tensor], {"model.stages.0.conv.weight": original})
    assert check.checked == 1 and "model.stages.0.conv.weight" in carried
    return check


def test_names_lead_back_to_parameters():
    assert parameter_key("p_model_stages_0_conv_weight_to_fp16") == "model_stages_0_conv_weight"
    assert parameter_key("p_model_head_weight_to_fp16_quantized") == "model_head_weight"
    assert parameter_key("b_model_norm_running_mean_to_fp16_palettized") == "model_norm_running_mean"


def _fp16() -> StoredTensor:
    return StoredTensor("p_model_stages_0_conv_weight_to_fp16", "fp16", W.astype(np.float16).astype(np.float32))


@pytest.mark.parametrize(("tamper", "caught"), [
    (lambda a: a, False),
    (lambda a: -a, True),
    (lambda a: a * 1.02, True),
    (lambda a: a[[1, 0, *range(2, 16)]], True),
    (lambda a: np.nextafter(a.astype(np.float16), np.float16(np.inf)).astype(np.float32), False),  # one ulp: allowed
    (lambda a: (a.astype(np.float16) * np.float16(1.001)).astype(np.float32), True),  # ~2 ulps
])
def test_fp16_rule(tamper, caught):
    stored = _fp16()
    stored.dense = tamper(stored.dense)
    assert _check(stored).ok is not caught


def _affine(scale: np.ndarray) -> StoredTensor:
    q = np.clip(np.round(W / scale.reshape(-1, 1, 1, 1)), -127, 127)
    dense = (q * scale.reshape(-1, 1, 1, 1)).astype(np.float32)
    return StoredTensor("p_model_stages_0_conv_weight_to_fp16_quantized", "affine", dense,
                        step=np.broadcast_to(scale.reshape(-1, 1, 1, 1), W.shape).astype(np.float32))


def test_affine_rule_passes_the_quantizer_and_fails_changed_scales_and_values():
    scale = (np.abs(W).reshape(16, -1).max(1) / 127).astype(np.float16).astype(np.float32)
    honest = _affine(scale)
    assert _check(honest).ok
    wider = scale.copy()
    wider[3] *= 1.05  # one channel's scale 5% larger, the int8 data as it was
    tampered = _affine(scale)
    tampered.dense[3] *= 1.05
    tampered.step = np.broadcast_to(wider.reshape(-1, 1, 1, 1), W.shape)
    check = _check(tampered)
    assert not check.ok and check.broken[0]["worst"] > 1 and "affine" in check.describe()
    negated = _affine(scale)
    negated.dense = -negated.dense
    assert not _check(negated).ok


def test_palette_rule_wants_each_weight_on_its_nearest_entry():
    palette = np.quantile(W, np.linspace(0.01, 0.99, 16)).astype(np.float16).astype(np.float32)
    nearest = palette[np.abs(W.reshape(-1, 1) - palette).argmin(1)].reshape(W.shape)
    honest = StoredTensor("p_model_stages_0_conv_weight_to_fp16_palettized", "lut", nearest, palette=palette)
    assert _check(honest).ok
    scaled = StoredTensor(honest.name, "lut", nearest * 1.02, palette=palette * 1.02)
    assert not _check(scaled).ok  # weights near a midpoint now have a nearer entry than theirs
    swapped = StoredTensor(honest.name, "lut", nearest[[1, 0, *range(2, 16)]], palette=palette)
    assert not _check(swapped).ok


def test_a_tensor_without_a_parameter_is_left_to_the_program_check():
    check, carried = check_stored([StoredTensor("add_mean_0_to_fp16", "fp16", np.zeros(3, np.float32))],
                                  {"model.stem.weight": W})
    assert check.checked == 0 and check.unmatched == ["add_mean_0_to_fp16"] and not carried and check.ok


# --- precision cost --------------------------------------------------------------------------------------------

def _inputs(n_photos: int = 6, n_random: int = 2):
    from edgevit.validate.inputs import ValidationInput

    return ([ValidationInput(f"photo{i}", None, object()) for i in range(n_photos)]
            + [ValidationInput(f"random_{i}", None, None) for i in range(n_random)])


def _logits(n: int = 8, shared: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(1)
    return shared * rng.normal(size=(1, 100)) + rng.normal(size=(n, 100))


def test_cost_on_logits_passes_small_noise_and_fails_large():
    ref = _logits()
    noise = np.random.default_rng(2).normal(size=ref.shape)
    good = precision_cost(ref, ref + 1e-5 * noise, _inputs(), "fp16")
    assert good.status == "pass" and good.floor_db == DEFAULT_FLOORS_DB["fp16"] and "default" in good.floor_source
    assert good.photos.n_inputs == 6 and good.random.n_inputs == 2 and good.centered.top1_agreement == 1.0
    bad = precision_cost(ref, ref + 0.3 * noise, _inputs(), "fp16")
    assert bad.status == "fail" and "PSNR on logits" in bad.reason


def test_the_user_sets_the_floor_and_the_manifest_never_does():
    ref = _logits()
    near = ref + 0.05 * np.random.default_rng(3).normal(size=ref.shape)
    assert precision_cost(ref, near, _inputs(), "int8").status == "pass"
    strict = precision_cost(ref, near, _inputs(), "int8", min_psnr=60)
    assert strict.status == "fail" and strict.floor_source == "--min-psnr"
    lenient_manifest = precision_cost(ref, ref + 0.5 * np.random.default_rng(3).normal(size=ref.shape), _inputs(),
                                      "int8", manifest_floor_db=-1000)
    assert lenient_manifest.status == "fail" and "lower than" in lenient_manifest.reason


def test_outputs_that_ignore_the_input_fail_whatever_their_psnr():
    ref = _logits(shared=30.0)  # the input-independent part dominates: PSNR alone would look good
    constant = np.repeat(ref.mean(0, keepdims=True), len(ref), axis=0)
    cost = precision_cost(ref, constant, _inputs(), "int8", min_psnr=1)
    assert cost.status == "fail" and "barely depend on the input" in cost.reason
    assert cost.spread_ratio == pytest.approx(0.0) and cost.input_share < 0.1


# --- the artifact does not set its own verdict -------------------------------------------------------------------

def test_an_fp32_program_renamed_int8_with_a_floor_of_its_own_fails(xs_artifacts, tmp_path):
    """The adversarial round's case: an fp32 .onnx renamed *.int8.onnx, its manifest saying int8 with a floor of
    -1000 dB. The precision comes from the program, so the manifest's claim is a failure, never a pass."""
    import json
    import shutil

    from edgevit.api import validate
    from edgevit.base.digest import sha256_of
    from edgevit.base.naming import manifest_path

    src = xs_artifacts["onnx"]
    dst = tmp_path / src.name.replace(".fp32.onnx", ".int8.onnx")
    shutil.copy2(src, dst)
    manifest = json.loads(manifest_path(src).read_text())
    manifest.update(artifact=dst.name, precision="int8", sha256=sha256_of(dst),
                    quantization={"scheme": "int8", "min_psnr_db": -1000})
    manifest_path(dst).write_text(json.dumps(manifest))
    result = validate(dst)
    assert result.status == "fail" and result.failed_part == "manifest" and result.precision == "fp32"
    assert "the manifest says int8, but the program stores fp32" in result.reason


def test_the_verdict_reads_precision_from_programs(xs_artifacts):
    from edgevit.validate.program_precision import program_precision

    assert program_precision(xs_artifacts["coreml"]) == "fp16"
    assert program_precision(xs_artifacts["executorch"]) == "fp32"
    assert program_precision(xs_artifacts["onnx"]) == "fp32"
