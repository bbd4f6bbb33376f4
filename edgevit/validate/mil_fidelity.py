"""Fidelity of ML programs (a ``.mlpackage``, or the CoreML partitions of a ``.pte``): stored values, then the program
at fp32 against the prepared model carrying those values (see edgevit.validate.fidelity for the bound).

The interpreter's ``extra_outputs`` gives the logits of a classifier package (the softmax's input), so the
comparison never goes through a saturating softmax.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from edgevit.mil.load import logits_var  # noqa: F401 - re-exported: parity and bisect import it from here
from edgevit.validate.fidelity import MIL_BOUND, Fidelity, judge_outputs, state_of, with_values
from edgevit.validate.folded_norms import check_folded, conv_norm_pairs
from edgevit.validate.inputs import ValidationInput
from edgevit.validate.stored_values import ValueCheck, check_stored, read_stored

MIL_DERIVATION = "fp32 summation order, interpreter against torch (about 1e-7 per op; 1e-4 for the whole network)"
MIL_COMPARED = "edgevit's MIL interpreter at fp32 vs the prepared model carrying the program's stored values"
def casts_input_to_fp16(function) -> bool:
    """Whether the program rounds a tensor input to fp16 before anything else (a tensor-input fp16 program does):
    the reference is then fed the same rounded input, since that rounding is part of what the program computes."""
    from coremltools.converters.mil.mil import types

    inputs = set(function.inputs.values())
    return any(op.op_type == "cast" and op.x in inputs and op.outputs[0].dtype == types.fp16
               for op in function.operations)


def quantizes_activations(functions: Sequence) -> bool:
    """Whether a program quantizes activations (W8A8: ``quantize``/``dequantize`` ops that are not constexpr)."""
    return any(op.op_type in ("quantize", "dequantize") for function in functions for op in function.operations)


def stores_fp16(stored) -> bool:
    """Whether the program keeps its weights in fp16 (or compressed them from fp16 values)."""
    return any(t.kind != "fp32" for t in stored)


def check_programs(functions: Sequence, reference: nn.Module, run_once: Callable[[nn.Module], object] | None = None
                   ) -> tuple[ValueCheck, dict[str, np.ndarray], bool]:
    """The stored-values check over every program (a ``.pte`` may hold several), what they store by parameter
    (the convs coremltools folded with their BatchNorm included, when ``run_once`` runs the reference once so that
    they can be found: edgevit.validate.folded_norms), and whether they store fp16."""
    return _checked(functions, reference, run_once)[:3]


def _checked(functions: Sequence, reference: nn.Module, run_once: Callable[[nn.Module], object] | None):
    stored = [t for function in functions for t in read_stored(function)]
    state = state_of(reference)
    check, carried = check_stored(stored, state)
    if run_once is not None:
        check_folded(stored, state, conv_norm_pairs(reference, run_once), check, carried)
    return check, carried, stores_fp16(stored), stored


UNMATCHED_LARGE = 64  # a compressed tensor this large without a parameter is a weight coremltools fused itself
FP16_CONSTANTS_DERIVATION = (
    "plus, for a program that stores fp16: coremltools rounds to fp16 the constants it computes itself (the input "
    "normalisation, fused norms and scales: {n} stored tensors without a parameter, e.g. {names}) and the immediate "
    "values inside ops, where the reference rounds their parts or keeps them in fp32; their effect is at most that "
    "of rounding every weight of this model to fp16, measured on the same inputs: {allowance:.2g}")


def mil_fidelity(functions: Sequence, reference: nn.Module, inputs: list[ValidationInput],
                 run_artifact: Callable[[ValidationInput], np.ndarray],
                 run_reference: Callable[[nn.Module, ValidationInput], torch.Tensor],
                 program_reference: np.ndarray | None = None) -> tuple[Fidelity, np.ndarray]:
    """Both checks; returns the verdict and the logits of the reference carrying the stored values (the
    "weights only" precision cost of this artifact).

    ``program_reference`` (a W8A8 program's): the outputs of the same program rebuilt from the original
    (edgevit.validate.w8a8_reference), which the artifact must then match to the bit; its distance from the float
    reference (activation rounding) is recorded beside the verdict.

    Stored tensors that match no parameter are coremltools' own (the input normalisation as a ``batch_norm``, a
    conv fused with its BatchNorm, a folded scale), and immediate values inside ops are no tensors at all: the
    reference cannot carry them. In a program that stores fp16 they widen the bound by the measured effect of
    rounding every weight to fp16 (at most what their rounding can do); large compressed ones make a failed program
    check inconclusive, saying which (their compression noise is not derivable)."""
    if any(casts_input_to_fp16(function) for function in functions[:1]):  # the program stores its input in fp16
        exact_reference = run_reference

        def run_reference(module, item):
            return exact_reference(module, dataclasses.replace(item, tensor=item.tensor.half().float()))

    check, carried, fp16, stored = _checked(functions, reference, lambda module: run_reference(module, inputs[0]))
    unmatched = [t for t in stored if t.name in set(check.unmatched)]
    carrying = with_values(reference, carried, round_fp16=fp16)
    with torch.no_grad():
        expected = np.concatenate([run_reference(carrying, item).numpy() for item in inputs])
    actual = np.concatenate([run_artifact(item) for item in inputs])
    if program_reference is not None:
        from edgevit.validate import w8a8_reference as w8a8
        from edgevit.validate.metrics import rel_l2

        fidelity = judge_outputs(program_reference, actual, w8a8.BOUND, w8a8.COMPARED, w8a8.DERIVATION,
                                 require_top1=False)
        fidelity.extra["activation_rounding_rel_l2"] = rel_l2(expected, actual)
    else:
        bound, derivation = MIL_BOUND, MIL_DERIVATION
        if fp16:
            allowance = _fp16_rounding_effect(reference, inputs, run_reference)
            bound = MIL_BOUND + allowance
            derivation = f"{MIL_DERIVATION}; " + FP16_CONSTANTS_DERIVATION.format(
                n=len(unmatched), names=", ".join(t.name for t in unmatched[:3]) or "none", allowance=allowance)
        fidelity = judge_outputs(expected, actual, bound, MIL_COMPARED, derivation,
                                 require_top1=bound == MIL_BOUND)
        compressed = [t.name for t in unmatched if t.kind in ("affine", "lut") and t.dense.size >= UNMATCHED_LARGE]
        if compressed and fidelity.status == "fail" and check.ok:
            fidelity.status = "inconclusive"
            named = ", ".join(compressed[:3]) + (", ..." if len(compressed) > 3 else "")
            fidelity.reason = (f"{fidelity.reason}; but {len(compressed)} compressed weights match no parameter of "
                               f"the original ({named}: coremltools fused them, e.g. a conv with its BatchNorm), so "
                               "their compression noise cannot be told from a defect; fold those layers in the "
                               "converter to make the check decisive")
    fidelity.values = check.to_json()
    if not check.ok:
        fidelity.status = "fail"
        fidelity.reason = check.describe() + (f"; {fidelity.reason}" if fidelity.reason else "")
    return fidelity, expected


def _fp16_rounding_effect(reference: nn.Module, inputs: list[ValidationInput],
                          run_reference: Callable[[nn.Module, ValidationInput], torch.Tensor]) -> float:
    """Relative L2 on logits between the reference and itself with every float rounded to fp16."""
    from edgevit.validate.metrics import rel_l2

    rounded = with_values(reference, {}, round_fp16=True)
    with torch.no_grad():
        plain = np.concatenate([run_reference(reference, item).numpy() for item in inputs])
        fp16 = np.concatenate([run_reference(rounded, item).numpy() for item in inputs])
    return rel_l2(plain, fp16)
