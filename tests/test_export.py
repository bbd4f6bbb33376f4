"""Every exporter on a real conversion (swiftformer-xs), manifests, parity, atomic writes, failures."""

from __future__ import annotations

import json
import platform

import pytest
import torch
from torch import nn

from edgevit.api import convert, validate
from edgevit.base.atomic import atomic_path
from edgevit.base.errors import ArtifactError, ExportError, OutputError
from edgevit.base.naming import bundle_path, manifest_path
from edgevit.models.registry import get_spec
from edgevit.validate.inputs import read_bundle


def test_artifact_names_and_manifests(xs_artifacts):
    assert xs_artifacts["coreml"].name == "swiftformer-xs.coreml.fp16.mlpackage"
    assert xs_artifacts["executorch"].name == "swiftformer-xs.executorch.xnnpack.fp32.pte"
    assert xs_artifacts["onnx"].name == "swiftformer-xs.onnx.fp32.onnx"
    for target in ("coreml", "executorch", "onnx"):
        manifest = json.loads(manifest_path(xs_artifacts[target]).read_text())
        assert manifest["model"] == "swiftformer-xs" and manifest["target"] == target
        assert manifest["weights"]["source"] == "random-init" and manifest["options"]["attention_form"] == "normalize"
        assert len(manifest["sha256"]) == 64 and manifest["tool_versions"]["coremltools"] == "9.0"
        assert manifest["preprocessing"]["mean"] == list(get_spec("swiftformer-xs").mean)
        assert manifest["prepared_vs_original_rel_l2"] < 1e-5
        assert manifest["parity"] is not None
        assert len(read_bundle(bundle_path(xs_artifacts[target]))) >= 14


def test_parity_passes_where_a_runtime_exists(xs_artifacts):
    for target in ("executorch", "onnx"):
        parity = json.loads(manifest_path(xs_artifacts[target]).read_text())["parity"]
        assert parity["status"] == "pass", parity
        assert parity["overall"]["rel_l2"] <= 1e-4 and parity["overall"]["top1_agreement"] == 1.0
        assert parity["photos"]["n_inputs"] == 12 and parity["random"]["n_inputs"] == 4  # 2 tensors, 2 noise images
        assert parity["overall"]["distinct_top1"] > 1  # outputs differ across inputs: top-1 means something


@pytest.mark.skipif(platform.system() == "Darwin", reason="on macOS CoreML runs")
def test_coreml_is_not_run_off_macos_and_never_a_pass(xs_artifacts):
    """Off macOS the CoreML runtime itself is "not run" (never a pass); the MIL reference interpreter checks the
    package instead, and says it is the interpreter."""
    import platform

    from edgevit.api import validate

    parity = json.loads(manifest_path(xs_artifacts["coreml"]).read_text())["parity"]
    assert parity["runtime"] == "mil-reference" and parity["status"] == "pass"
    if platform.system() != "Darwin":
        parity = validate(xs_artifacts["coreml"], runtime="coreml")
        assert parity.status == "not run" and "macOS" in parity.reason and parity.overall is None


def test_coreml_package_is_an_image_classifier(xs_artifacts):
    import coremltools as ct

    spec = ct.utils.load_spec(str(xs_artifacts["coreml"]))
    assert spec.WhichOneof("Type") == "mlProgram"
    image = spec.description.input[0].type.imageType
    assert (image.width, image.height) == (224, 224)
    assert image.colorSpace == ct.proto.FeatureTypes_pb2.ImageFeatureType.RGB
    assert spec.description.predictedFeatureName == "classLabel"
    labels = spec.mlProgram and ct.models.MLModel(str(xs_artifacts["coreml"]), skip_model_load=True)
    meta = labels.user_defined_metadata
    assert meta["edgevit.model"] == "swiftformer-xs" and meta["edgevit.models.checkpoints"] == "random-init"
    assert spec.description.metadata.author and spec.description.metadata.versionString == "0.1.0"
    manifest = json.loads(manifest_path(xs_artifacts["coreml"]).read_text())
    assert manifest["export"]["mil"]["layout_ops"] == 1  # the classifier flatten, nothing else
    assert manifest["output"]["kind"] == "probabilities"


def test_classifier_labels_are_unique():
    from edgevit.models.spec import imagenet_labels

    labels = imagenet_labels()
    assert len(labels) == 1000 and len(set(labels)) == 1000  # "crane" is two ImageNet classes
    assert labels[0].startswith("tench")


def test_executorch_delegation_is_reported(xs_artifacts):
    d = json.loads(manifest_path(xs_artifacts["executorch"]).read_text())["export"]["delegation"]
    assert d["backend"] == "xnnpack" and d["delegated_nodes"] > 0
    # the rewrite's point: the whole model is one XNNPACK subgraph, nothing left on portable kernels
    assert d["delegated_subgraphs"] == 1 and d["non_delegated_ops"] == {}


def test_validate_command_rebuilds_and_passes(xs_artifacts):
    assert validate(xs_artifacts["onnx"]).status == "pass"


def test_validate_rejects_a_tampered_artifact(xs_artifacts, tmp_path):
    import shutil

    copy = tmp_path / xs_artifacts["onnx"].name
    shutil.copy(xs_artifacts["onnx"], copy)
    shutil.copy(manifest_path(xs_artifacts["onnx"]), manifest_path(copy))
    shutil.copytree(bundle_path(xs_artifacts["onnx"]), bundle_path(copy))
    copy.write_bytes(copy.read_bytes() + b"\0")
    with pytest.raises(ArtifactError, match="sha256"):
        validate(copy)


def test_device_outputs_are_compared(xs_artifacts, tmp_path):
    """What a phone harness saves: real outputs (here from onnxruntime) pass; perturbed ones fail."""
    import onnxruntime as ort

    art = xs_artifacts["onnx"]
    manifest = json.loads(manifest_path(art).read_text())
    session = ort.InferenceSession(str(art))
    outputs = [{"name": item.name, "shape": [1, 1000],
                "values": session.run(None, {"input": item.tensor.numpy()})[0].ravel().tolist()}
               for item in read_bundle(bundle_path(art))]
    doc = {"format": "edgevit-device-outputs/1", "artifact": art.name, "artifact_sha256": manifest["sha256"],
           "device": {"kind": "android", "name": "test", "os": "-", "cpu": "-"}, "outputs": outputs}
    good = tmp_path / "good.json"
    good.write_text(json.dumps(doc))
    assert validate(art, device_outputs=good).status == "pass"
    for out in outputs:
        out["values"] = [v + 0.05 * (i % 7) for i, v in enumerate(out["values"])]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    assert validate(art, device_outputs=bad).status == "fail"


class ZeroedAttention(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x) * 0.0


def test_parity_fails_for_a_broken_conversion(tmp_path, monkeypatch):
    """The check can fail: an exporter fed a prepared model with one attention block removed is caught."""
    import converters.swiftformer as sf

    real = sf.SwiftFormerConverter._rewrite

    def broken(self, model, applied):
        prepared = real(self, model, applied)
        block = prepared.stages[3][-1]
        block.attn = ZeroedAttention(block.attn)
        return prepared

    monkeypatch.setattr(sf.SwiftFormerConverter, "_rewrite", broken)
    result = convert("swiftformer-xs", "onnx", tmp_path, mil_report=False)
    parity = result.artifacts[0].parity
    assert parity.status == "fail" and "relative L2" in parity.reason
    assert result.failed


def test_coreml_delegated_pte_and_tensor_input_coreml(tmp_path):
    result = convert("swiftformer-xs", ["executorch"], tmp_path, backend="coreml", mil_report=False)
    art = result.artifacts[0]
    assert art.path.name == "swiftformer-xs.executorch.coreml.fp16.pte"
    assert art.export_info["delegation"]["backend"] == "coreml" and art.export_info["delegation"]["delegated_nodes"]
    if platform.system() != "Darwin":  # its delegate's ML program, run by the interpreter (tests/test_pte_coreml.py)
        assert art.parity.runtime == "mil-reference" and art.parity.status == "pass", art.parity
    result = convert("swiftformer-xs", ["coreml"], tmp_path, tensor_input=True, precision="fp32", mil_report=False)
    manifest = json.loads(result.artifacts[0].manifest_path.read_text())
    assert manifest["input"]["kind"] == "tensor" and manifest["output"]["kind"] == "logits"
    assert result.artifacts[0].path.name == "swiftformer-xs.coreml.fp32.mlpackage"


class Unconvertible(nn.Module):
    def forward(self, x):
        return torch.kthvalue(x.flatten(1), 3, dim=1).values[:, None].expand(-1, 1000)


def test_unsupported_op_names_the_module_and_leaves_nothing(tmp_path):
    from edgevit.export.coreml import export_coreml

    model = nn.Sequential(nn.Conv2d(3, 3, 1), Unconvertible()).eval()
    out = tmp_path / "odd.coreml.fp16.mlpackage"
    with pytest.raises(ExportError) as err:
        export_coreml(model, get_spec("swiftformer-xs"), out)
    assert "kthvalue" in str(err.value) and "Unconvertible" in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_publishes_only_on_success(tmp_path):
    final = tmp_path / "a.pte"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert final.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["a.pte"]
    with atomic_path(final) as tmp:
        tmp.write_bytes(b"new")
    assert final.read_bytes() == b"new"


def test_unwritable_output_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputError, match="cannot write to output directory"):
        convert("swiftformer-xs", "onnx", blocker / "out")


def test_alias_nodes_are_dropped_so_coreml_converts_window_attention():
    """torch.export emits ``aten.alias`` inside Swin's window attention (and EfficientViT-M0's); coremltools 9
    cannot convert it. The exported program must have none left and still compute the same function."""
    from timm.models.swin_transformer import SwinTransformerBlock

    from edgevit.export.mil_inspect import drop_aliases, inspect_mil, to_exported_program

    torch.manual_seed(0)
    block = SwinTransformerBlock(dim=32, input_resolution=(8, 8), num_heads=2, window_size=4, shift_size=2).eval()
    x = torch.randn(1, 8, 8, 32)
    raw = torch.export.export(block, (x,)).run_decompositions({})
    assert any(n.target is torch.ops.aten.alias.default for n in raw.graph.nodes)  # what coremltools rejects
    assert drop_aliases(raw) >= 1 and drop_aliases(raw) == 0
    program = to_exported_program(block, x)
    assert not any(n.target is torch.ops.aten.alias.default for n in program.graph.nodes)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), block(x), atol=1e-6)
    stats = inspect_mil(block, x)
    assert stats.error is None and stats.layout_count > 0


class TalkingHeadSoftmax(nn.Module):
    """EfficientFormerV2's pattern: a 1x1 conv over the heads axis of a (B, heads, N, N) map, then a softmax
    over the keys (the last axis)."""

    def __init__(self):
        super().__init__()
        self.talking_head = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        return self.talking_head(x).softmax(dim=-1)


def _pte_rel_l2(module, x, tmp_path, lower):
    from executorch.runtime import Runtime

    path = tmp_path / "m.pte"
    path.write_bytes(lower(module, x))
    method = Runtime.get().load_program(path).load_method("forward")
    out = method.execute([x])[0]
    with torch.no_grad():
        ref = module(x)
    return float((out - ref).norm() / ref.norm())


def test_softmax_after_conv_is_exact_in_the_xnnpack_pte(tmp_path):
    """ExecuTorch 1.5.1's XNNPACK delegate gets softmax(conv(x), dim=-1) wrong; the exporter's rewrite fixes it
    and keeps one delegated subgraph. If the raw lowering becomes exact, the workaround can go."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from edgevit.export.executorch import export_executorch, isolate_softmax_after_conv

    torch.manual_seed(0)
    module = TalkingHeadSoftmax().eval()
    x = torch.randn(1, 8, 49, 49) * 3

    def raw(m, inp):
        program = torch.export.export(m, (inp,))
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer

    def ours(m, inp):
        out = tmp_path / "ours.executorch.xnnpack.fp32.pte"
        info = export_executorch(m, inp, out)
        assert info["workarounds"] == {"xnnpack_softmax_after_conv_isolated": 1}
        assert info["delegation"]["delegated_subgraphs"] == 1 and info["delegation"]["non_delegated_ops"] == {}
        return out.read_bytes()

    assert _pte_rel_l2(module, x, tmp_path, raw) > 0.1  # the upstream bug
    assert _pte_rel_l2(module, x, tmp_path, ours) < 1e-6
    # a softmax that no conv feeds is left alone
    plain = torch.export.export(nn.Softmax(dim=-1).eval(), (x,))
    assert isolate_softmax_after_conv(plain, x)[1] == 0


class EveryXnnpackPassOp(nn.Module):
    """Something for each XNNPACK preprocess pass that skip_idle_xnnpack_passes may skip: conv + batch norm, a
    1-D conv, PReLU, a concatenation of 6, bilinear upsampling, softmax attention (three delegated subgraphs)."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn, self.prelu = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.PReLU()
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)

    def forward(self, x):
        y = self.prelu(self.bn(self.conv(x)))  # (1, 8, 8, 8)
        y = torch.cat([y * i for i in range(1, 7)], dim=1)[:, :8]
        y = nn.functional.interpolate(y, scale_factor=2, mode="bilinear")  # (1, 8, 16, 16)
        tokens = self.conv1d(y.flatten(2)).transpose(1, 2)  # (1, 256, 8)
        attention = (tokens @ tokens.transpose(1, 2) * 0.1).softmax(dim=-1)
        return attention @ tokens


@pytest.mark.parametrize("module", [EveryXnnpackPassOp(), nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())],
                         ids=["every-pass-op", "conv-only"])
def test_lowering_shortcuts_leave_the_pte_byte_identical(module):
    """shared_provenance and skip_idle_xnnpack_passes make lowering faster, never the program different: the .pte
    is the same bytes with and without them, whether the skippable passes have work (every-pass-op) or not."""
    from executorch.backends.xnnpack._passes import XNNPACKPassManager
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from torch.fx.traceback import NodeSource

    from edgevit.export.executorch import _XNNPACK_PASS_OPS, shared_provenance, skip_idle_xnnpack_passes

    torch.manual_seed(0)
    module = module.eval()
    x = torch.randn(1, 3, 8, 8)

    def lower():
        program = torch.export.export(module, (x,))
        return to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer

    ran = []
    transform = XNNPACKPassManager.transform

    def spy(self):
        ran.append({p.__name__ for p in self.passes})
        return transform(self)

    before = (NodeSource.__init__, XNNPACKPassManager.transform)
    plain = lower()
    XNNPACKPassManager.transform = spy
    try:
        with shared_provenance(), skip_idle_xnnpack_passes():
            fast = lower()
    finally:
        XNNPACKPassManager.transform = transform
    assert fast == plain
    assert (NodeSource.__init__, XNNPACKPassManager.transform) == before  # both patches undone
    skipped = set(_XNNPACK_PASS_OPS) - set.union(*ran)
    # PReLUReshapePass acts on _prelu_kernel, but the XNNPACK partitioner keeps aten.prelu whole: never any work
    assert skipped == ({"PReLUReshapePass"} if isinstance(module, EveryXnnpackPassOp) else set(_XNNPACK_PASS_OPS))
