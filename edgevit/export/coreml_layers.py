"""``--compress w8a8 --keep-float``: the layers of a CoreML W8A8 package and the activations each one quantizes.

coremltools' activation quantization (``linear_quantize_activations``) puts a quantize/dequantize pair on the
inputs of every conv, linear, add and pool it is configured for (``insert_prefix_quantize_dequantize_pair``) and on
the output of each such op, or of the activation right after it (``insert_suffix_quantize_dequantize_pair``); an op
whose ``op_name_configs`` entry is None gets neither. A layer here is a module of the prepared model (the MIL ops a
``torch.export`` node of it became); keeping it float sets its ops' configs to None.

A layer kept float keeps its weights in fp16 too (``weight_consts``), as ``--keep-float`` does for the int8 ``.pte``
and ``.onnx``: a float layer is float, and int8 weights alone can cost more than a goal (random-init fastvit-t8's w8
package: 32.4 dB). ``wanted_tensors`` predicts, from the float program alone, which tensors the passes quantize for
the layers left in int8 (checked against the passes' own output in tests/test_coreml_mixed_precision.py): the
sensitivity scan (edgevit.mil.keep_float) fake-quantizes exactly those, without re-running the passes per layer.
"""

from __future__ import annotations

from collections.abc import Iterable


def _pass_rules() -> tuple[tuple[str, ...], tuple[str, ...], frozenset[str]]:
    """(op types with input pairs, binary ones among them, activations a suffix pair follows): coremltools' own."""
    from coremltools.converters.mil.mil.passes.defs.optimize_activation_quantization import (
        insert_suffix_quantize_dequantize_pair,
    )
    from coremltools.optimize.coreml._quantization_passes import insert_prefix_quantize_dequantize_pair as prefix

    return (tuple(prefix.SUPPORTED_OP_TYPES), tuple(prefix.SUPPORTED_BINARY_OP_TYPES),
            frozenset(insert_suffix_quantize_dequantize_pair._allowed_activations))


def _is_const(var) -> bool:
    return var.op is not None and var.op.op_type == "const"


def quantizable_ops(function) -> list:
    """The ops coremltools' prefix pass gives input pairs: a supported type whose live inputs are not constants."""
    supported, binary, _ = _pass_rules()
    found = []
    for op in function.operations:
        if op.op_type not in supported or _is_const(op.inputs["x"]):
            continue
        if op.op_type in binary and _is_const(op.inputs["y"]):
            continue
        found.append(op)
    return found


def prefix_inputs(op) -> list[str]:
    """The live inputs ``op``'s prefix pairs quantize: only ``op`` reads them quantized (other readers see the raw
    tensor)."""
    _, binary, _ = _pass_rules()
    return [op.inputs["x"].name] + ([op.inputs["y"].name] if op.op_type in binary else [])


def suffix_tensor(op) -> str | None:
    """The tensor ``op``'s suffix pair quantizes for every reader: its output, or the output of the activation that
    follows it when that activation has readers; None when its output has no reader."""
    _, _, activations = _pass_rules()
    readers = list(op.outputs[0].child_ops)
    if not readers:
        return None
    first = readers[0]
    return first.outputs[0].name if first.op_type in activations and first.outputs[0].child_ops else op.outputs[0].name


def wanted_tensors(op) -> list[str]:
    """The tensors quantized because ``op`` is (prefix inputs and suffix tensor). A tensor another int8 op also
    wants is quantized once (coremltools removes the duplicate pair: same range, same scale)."""
    suffix = suffix_tensor(op)
    return prefix_inputs(op) + ([suffix] if suffix is not None else [])


def op_layers(function, modules: dict[str, str]) -> dict[str, list[str]]:
    """Layer (module path of the prepared model) -> names of its quantizable MIL ops, in program order.

    ``modules`` maps torch.export node names to module paths; coremltools names a MIL op after its node
    (``conv2d_6`` -> ``conv2d_6_cast_fp16``), or a fused op after the last node of its pattern. An op with no module
    found (or only the top level) is its own layer, named as the op."""
    from edgevit.export.mil_inspect import node_of_value

    layers: dict[str, list[str]] = {}
    for op in quantizable_ops(function):
        module = modules.get(node_of_value(op.outputs[0].name))
        if module in (None, "(top level)"):  # e.g. a conv fused with the multiply after it, named after the multiply
            module = op.name
        if module.startswith("model."):  # the image package's wrapper (ImageClassifier.model)
            module = module[len("model."):]
        layers.setdefault(module, []).append(op.name)
    return layers


def float_op_names(layers: dict[str, list[str]], keep: Iterable[str]) -> list[str]:
    """The MIL op names of the ``keep`` layers: what ``quantize_activations(keep_float=...)`` takes."""
    return [name for layer in keep for name in layers[layer]]


def weight_consts(function, op_names: Iterable[str]) -> list[str]:
    """The const weights of the named ops (conv, linear): what a layer kept float keeps in fp16 too."""
    wanted, found = set(op_names), []
    for op in function.operations:
        if op.name in wanted:
            var = op.inputs.get("weight")
            if var is not None and _is_const(var) and var.name not in found:
                found.append(var.name)
    return found
