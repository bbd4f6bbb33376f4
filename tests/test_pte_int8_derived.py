"""Int8 .pte values XNNPACK's lowering derives rather than copies (the paper zoo's five fidelity fails of edgevit's
own artifacts): a float BatchNorm no conv precedes is stored as a 1x1 depthwise conv's weights and bias
(xcit, efficientformerv2, nextvit), and a conv applied twice (CoaT's shared positional convs) shares one bias that
ExecuTorch quantized for one use only. On a tiny model with both, built here: the artifact loads, its stored values
are all the reference's, the runtime computes the reference; and each tamper of a derived value is caught.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from support.tamper import replace_bytes
from torch import nn

from edgevit.export.executorch import export_executorch
from edgevit.export.pte_xnnpack import xnnpack_programs
from edgevit.export.quantize import quantize_pt2e
from edgevit.export.shared_weights import untie_shared_weights
from edgevit.validate import quantized_reference as reference

CHANNELS = 16


class SharedConvAndLoneNorm(nn.Module):
    """A stem, a BatchNorm after a GELU (no conv to fold it into), a depthwise conv applied twice to inputs of
    different ranges, a head."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, CHANNELS, 3, padding=1)
        self.act = nn.GELU()
        self.norm = nn.BatchNorm2d(CHANNELS)
        self.shared = nn.Conv2d(CHANNELS, CHANNELS, 3, padding=1, groups=CHANNELS)
        self.head = nn.Conv2d(CHANNELS, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.act(self.stem(x)))
        first = self.shared(x)
        second = self.shared(self.act(first) * 4.0)
        return self.head(first + second).mean((2, 3))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    torch.manual_seed(0)
    model = SharedConvAndLoneNorm().eval()
    with torch.no_grad():  # statistics and a bias that matter
        model.norm.running_mean.uniform_(-1, 1)
        model.norm.running_var.uniform_(0.5, 2)
        model.norm.weight.uniform_(0.5, 2)
        model.norm.bias.uniform_(-1, 1)
        model.shared.bias.uniform_(-1, 1)
    calibration = [torch.randn(1, 3, 16, 16) for _ in range(8)]
    artifact = tmp_path_factory.mktemp("derived") / "model.pte"
    export_executorch(model, calibration[0], artifact, precision="int8", calibration=calibration)
    converted, _, _ = quantize_pt2e(model, calibration[0], calibration)
    return model, artifact, converted


def _compare(artifact, converted) -> dict:
    return reference._compare_pte(artifact, reference.reference_hashes(converted),
                                  reference._reference_qparams(converted), reference.derived_by_weight(converted))


def _constant(artifact, datatype: str, dims: list[int]) -> bytes:
    """The bytes of the one constant of ``datatype`` and ``dims`` a float 1x1 depthwise (the BatchNorm) reads."""
    for program in xnnpack_programs(artifact):
        for node in program.nodes:
            fields = node.get("xnode_union") or {}
            if node.get("xnode_union_type") != "XNNDepthwiseConv2d":
                continue
            for key in ("filter_id", "bias_id"):
                tensor, _ = program.values[fields[key]]
                if tensor.get("datatype") == datatype and tensor.get("dims") == dims:
                    return program.constant_of(fields[key])
    raise AssertionError(f"no {datatype} {dims} constant of a depthwise conv")


def test_shared_weights_are_untied_once_per_extra_use():
    program = torch.export.export(SharedConvAndLoneNorm().eval(), (torch.randn(1, 3, 16, 16),))
    graph_module = program.module()
    assert untie_shared_weights(graph_module) == 2  # the second use's weight and bias
    convs = [n for n in graph_module.graph.nodes if "conv2d" in str(n.target)]
    read = [tuple(a.target for a in n.args[1:3]) for n in convs]
    assert len(set(read)) == len(convs) == 4, read
    assert untie_shared_weights(graph_module) == 0


def test_the_artifact_is_the_reference_and_runs_it(built):
    from executorch.runtime import Runtime

    model, artifact, converted = built
    values = _compare(artifact, converted)
    print(f"\nstored values checked: {values['checked']}, differing: {len(values['broken'])}")
    assert values["checked"] >= 20 and values["broken"] == []
    layers = [layer for program in xnnpack_programs(artifact) for layer in reference._bias_layers(program)]
    assert len(layers) == 4 and all(layer.input_scale is not None for layer in layers)  # both uses run in int8
    assert len({layer.bias for layer in layers}) == 4  # each use its own bias
    method = Runtime.get().load_program(artifact).load_method("forward")
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    got, expected = method.execute([x])[0].numpy(), converted(x).detach().numpy()
    error = float(np.linalg.norm(got - expected) / np.linalg.norm(expected))
    print(f"XNNPACK runtime vs the reference's emulation: relative L2 {error:.3g} (bound {reference.RUNTIME_BOUND})")
    assert error <= reference.RUNTIME_BOUND


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_a_changed_batch_norm_value_is_caught(built, tmp_path, which):
    _, artifact, converted = built
    copy = tmp_path / artifact.name
    copy.write_bytes(artifact.read_bytes())
    dims = [1, 1, 1, CHANNELS] if which == "weight" else [CHANNELS]
    old = _constant(artifact, "xnn_datatype_fp32", dims)
    new = (np.frombuffer(old, np.float32) * np.float32(1.02)).astype(np.float32).tobytes()
    replace_bytes(copy, old, new)
    broken = _compare(copy, converted)["broken"]
    print(f"\nBatchNorm {which} x1.02: {[b['tensor'] for b in broken]}")
    assert len(broken) == 1 and broken[0]["rule"] == "byte-identical"


def test_one_uses_bias_in_the_others_place_is_caught(built, tmp_path):
    """The two uses' int32 biases (and their scales) swapped: each is a bias the reference derives for these
    weights, but not for the input its node reads."""
    _, artifact, converted = built
    program = xnnpack_programs(artifact)[0]
    shared = {}
    for layer in reference._bias_layers(program):
        shared.setdefault(hashlib.sha256(program.constants[layer.filter]).hexdigest(), []).append(layer)
    first, second = next(uses for uses in shared.values() if len(uses) == 2)
    copy = tmp_path / artifact.name
    data = artifact.read_bytes()
    for index_a, index_b in ((first.bias, second.bias), (first.scales, second.scales)):
        a, b = program.constants[index_a], program.constants[index_b]
        at_a, at_b = data.find(a), data.find(b)
        assert at_a >= 0 and at_b >= 0 and data.count(a) == data.count(b) == 1
        data = bytearray(data)
        data[at_a:at_a + len(a)], data[at_b:at_b + len(b)] = b, a
        data = bytes(data)
    copy.write_bytes(data)
    broken = _compare(copy, converted)["broken"]
    print(f"\nbiases of the shared conv's two uses swapped: {[b['tensor'] for b in broken]}")
    assert len(broken) == 2 and all("int32 bias" in b["tensor"] for b in broken)


def test_a_node_reading_value_0_has_its_input_scale():
    """flatc's JSON leaves out a field equal to its default: a node reading value 0 (a delegate's first input) has
    no ``input1_id`` (xcit's first linear in a delegate); its input scale must still be found."""
    from types import SimpleNamespace

    values = {0: ({"datatype": "xnn_datatype_qint8"}, {"quant_params_type": "PerTensorQuant",
                                                       "quant_params": {"scale": 0.125}}),
              1: ({"datatype": "xnn_datatype_qcint8", "constant_buffer_idx": 1}, None),
              2: ({"datatype": "xnn_datatype_qcint32", "constant_buffer_idx": 3},
                  {"quant_params": {"scale_buffer_idx": 4}})}
    program = SimpleNamespace(nodes=[{"xnode_union_type": "XNNFullyConnected",
                                      "xnode_union": {"filter_id": 1, "bias_id": 2, "output_id": 5}}], values=values)
    assert reference._bias_layers(program) == [reference.BiasLayer(0, 3, 1, 4, 0.125)]


def test_a_program_xnnpack_refuses_is_reported_in_its_words(tmp_path, monkeypatch):
    """Without the per-use copies the shared conv's float use gets an int32 bias, and XNNPACK refuses the node at
    load: the error names that node, not only 'Failed to load method forward'."""
    import edgevit.export.quantize as quantize
    monkeypatch.setattr(quantize, "untie_shared_weights", lambda graph_module: 0)
    torch.manual_seed(0)
    model = SharedConvAndLoneNorm().eval()
    calibration = [torch.randn(1, 3, 16, 16) for _ in range(4)]
    artifact = tmp_path / "shared.pte"
    export_executorch(model, calibration[0], artifact, precision="int8", calibration=calibration)
    # in a process of its own, as a user's edgevit runs: pytest's capture of fd 2 would take the native lines first
    code = ("import sys; from pathlib import Path; from edgevit.validate.runtimes import ExecuTorchRunner, "
            "RuntimeFailure\ntry:\n    ExecuTorchRunner(Path(sys.argv[1]), 'xnnpack')\nexcept RuntimeFailure as exc:\n"
            "    print(exc)")
    said = subprocess.run([sys.executable, "-c", code, str(artifact)], capture_output=True, text=True,
                          timeout=300).stdout
    print(f"\n{said}")
    assert "its delegate refused the program" in said
    assert "Failed to create depthwise convolution node" in said and "xnn_status_invalid_parameter" in said
