"""Which layers of an int8 ``.onnx`` to keep in float: each layer's effect on logits PSNR, on the QDQ program itself.

onnxruntime's ``quantize_static`` writes a QDQ graph: QuantizeLinear -> DequantizeLinear pairs on the activations
around its quantized ops, int8 weights behind a DequantizeLinear. Run with graph optimisations off, onnxruntime
executes that graph in float with the roundings in place: an exact emulation of the int8 program. A layer (a module
of the prepared model, read from the exporter's ``pkg.torch.onnx.name_scopes``) is made float here the way
``quantize_static(nodes_to_exclude=...)`` leaves it: its nodes read their float weights, and an activation loses its
Q/DQ pair only when it is neither an input nor an output of a node still quantized (the quantizer puts a pair on
both sides of each node it quantizes and rewires *every* reader of a quantized tensor to the dequantized value).
So one emulated pass per layer ranks the layers; the chosen ones are excluded in a real re-quantization, whose
emulation is measured again.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear")


def node_modules(model) -> dict[str, str]:
    """Node name -> the innermost module it was exported from (torch.onnx's name scopes), for an exported model."""
    modules = {}
    for node in model.graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        try:
            scopes = ast.literal_eval(props.get("pkg.torch.onnx.name_scopes", "[]"))
        except (ValueError, SyntaxError):
            scopes = []
        modules[node.name] = next((s for s in reversed(scopes[:-1]) if s), "(top level)")
    return modules


def module_of_node(name: str, modules: dict[str, str]) -> str:
    """The module of a node of the pre-processed model: its own name, or the exported node it was fused from
    (quant_pre_process names a fusion ``<exported node>/<Fusion>``)."""
    return modules.get(name) or modules.get(name.split("/")[0]) or "(top level)"


def activation_matmuls(model) -> list[str]:
    """Names of the MatMul nodes neither of whose inputs is a constant (initializers, Constant nodes and what is
    computed from them alone): attention's q@k and attn@v, as opposed to a linear layer's MatMul."""
    constant = {i.name for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" or (node.input and all(not i or i in constant for i in node.input)):
            constant.update(node.output)
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and not any(i in constant for i in n.input)]


def grouped_convs(model) -> list[str]:
    """Names of the Conv nodes with ``group`` > 1 (depthwise and grouped convolutions)."""
    return [n.name for n in model.graph.node if n.op_type == "Conv"
            and any(a.name == "group" and a.i > 1 for a in n.attribute)]


def quantizable_layers(pre, modules: dict[str, str], op_types: Iterable[str],
                       skip: set[str] = frozenset()) -> dict[str, list[str]]:
    """Module -> names of its nodes ``quantize_static`` quantizes (op types of the configuration, but not ``skip``),
    graph order."""
    wanted = set(op_types)
    layers: dict[str, list[str]] = {}
    for node in pre.graph.node:
        if node.op_type in wanted and node.name not in skip:
            layers.setdefault(module_of_node(node.name, modules), []).append(node.name)
    return layers


@dataclass
class QdqEmulation:
    """The quantized QDQ program and the float model it was quantized from (the pre-processed one)."""

    quantized: object  # onnx.ModelProto
    pre: object  # onnx.ModelProto, the float graph quantize_static read
    layers: dict[str, list[str]]  # module -> quantized node names
    input_name: str

    def with_float(self, float_layers: set[str]):
        """A copy of the QDQ program with ``float_layers`` as ``nodes_to_exclude`` would leave them."""
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.quantized)
        excluded = {n for layer in float_layers for n in self.layers.get(layer, [])}
        still_int8 = {n for names in self.layers.values() for n in names} - excluded
        self._restore_float_weights(model.graph, excluded)
        _drop_pairs(model.graph, still_int8)
        _drop_unused(model.graph)
        return model

    def _restore_float_weights(self, graph, excluded: set[str]) -> None:
        """Each excluded node reads the float weight (or bias) its int8 one was made from, as in the float model."""
        import onnx

        producers = {o: n for n in graph.node for o in n.output}
        initializers = {i.name for i in graph.initializer}
        pre_nodes = {n.name: n for n in self.pre.graph.node}
        pre_initializers = {i.name: i for i in self.pre.graph.initializer}
        for node in graph.node:
            if node.name not in excluded:
                continue
            for position, name in enumerate(node.input):
                dq = producers.get(name)
                if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in initializers:
                    continue
                original = pre_nodes[node.name].input[position]
                float_name = f"{original}_float" if original in producers else original  # a bias's DQ keeps its name
                if float_name not in initializers:
                    tensor = onnx.TensorProto()
                    tensor.CopyFrom(pre_initializers[original])
                    tensor.name = float_name
                    graph.initializer.append(tensor)
                    initializers.add(float_name)
                node.input[position] = float_name

    def run(self, model, inputs: list) -> np.ndarray:
        """Logits of ``model`` (QDQ, executed as written: optimisations off, one thread) on ``inputs``."""
        return run_emulated(model.SerializeToString(), self.input_name, inputs)


def _drop_pairs(graph, still_int8: set[str]) -> None:
    """Bypass each activation Q/DQ pair that is neither an input nor an output of a node still quantized (its DQ
    becomes an Identity of the float tensor, so every reader, a graph output too, gets the float value)."""
    producers = {o: n for n in graph.node for o in n.output}
    readers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    for dq in [n for n in graph.node if n.op_type == "DequantizeLinear"]:
        q = producers.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue
        users = [producers.get(q.input[0]), *readers.get(dq.output[0], [])]
        if any(n is not None and n.name in still_int8 for n in users):
            continue  # an input or output of a layer still in int8: every reader keeps the dequantized value
        dq.op_type = "Identity"
        del dq.input[:]
        dq.input.append(q.input[0])


def run_emulated(model_bytes: bytes, input_name: str, inputs: list) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {input_name: np.asarray(x)})[0] for x in inputs])


def _drop_unused(graph) -> None:
    """Remove nodes and initializers no graph output depends on any more (the bypassed Q/DQ pairs)."""
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(node.input)
    keep.reverse()
    del graph.node[:]
    graph.node.extend(keep)
    used = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(used)


def layer_runner(emulation: QdqEmulation, inputs: list) -> Callable[[set[str]], np.ndarray]:
    """``float layers -> logits`` for edgevit.export.sensitivity's ranking and choice."""
    arrays = [np.asarray(x) for x in inputs]
    return lambda float_layers: emulation.run(emulation.with_float(float_layers), arrays)
