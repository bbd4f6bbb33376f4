"""edgevit.mil.predict as a coremltools user expects it: what MLModel.predict takes and returns, on real
packages converted by coremltools, including image inputs in every colour layout, fp16 rounding, compressed
weights, and bad input with a clear error. (Apple's own MIL op tests run through it in test_mil_optests.)"""

from __future__ import annotations

import coremltools as ct
import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from edgevit import mil
from edgevit.base.errors import ArtifactError, EdgevitError


class Tiny(nn.Module):
    """conv + BN + GELU + pooled linear head: a small classifier with every weight mattering."""

    def __init__(self, classes: int = 5):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.head = nn.Linear(8, classes)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        return self.head(torch.nn.functional.gelu(self.bn(self.conv(x))).mean(dim=(2, 3)))


def _convert(module, inputs, precision="fp32", target=ct.target.iOS17, **kwargs) -> ct.models.MLModel:
    example = torch.rand(1, 3, 16, 16)
    program = torch.export.export(module.eval(), (example,)).run_decompositions({})
    return ct.convert(program, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=target,
                      compute_precision=ct.precision.FLOAT16 if precision == "fp16" else ct.precision.FLOAT32,
                      **kwargs)


def _photo(size: int = 16, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(1)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).convert(mode)


@pytest.fixture(scope="module")
def tensor_model(tmp_path_factory):
    model = Tiny().eval()
    mlmodel = _convert(model, [ct.TensorType(name="x", shape=(1, 3, 16, 16))])
    path = tmp_path_factory.mktemp("mil") / "tiny.mlpackage"
    mlmodel.save(str(path))
    return model, mlmodel, path


def test_predict_a_saved_package_matches_pytorch(tensor_model):
    model, mlmodel, path = tensor_model
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
    out = mil.predict(str(path), {"x": x})
    (name,) = [o.name for o in mlmodel.get_spec().description.output]
    assert set(out) == {name} and out[name].dtype == np.float32 and out[name].shape == (1, 5)
    expected = model(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out[name], expected, rtol=1e-5, atol=1e-5)


def test_predict_takes_an_mlmodel_in_memory_or_loaded_without_compiling(tensor_model):
    _, mlmodel, path = tensor_model
    x = np.ones((1, 3, 16, 16), dtype=np.float32)
    from_path = mil.predict(path, {"x": x})
    skipped = ct.models.MLModel(str(path), skip_model_load=True)
    for model in (mlmodel, skipped):
        out = mil.predict(model, {"x": x})
        for key, value in from_path.items():
            np.testing.assert_array_equal(out[key], value)


def test_bad_inputs_get_clear_errors(tensor_model, tmp_path):
    _, _, path = tensor_model
    with pytest.raises(mil.MilInterpreterError, match="missing input 'x'"):
        mil.predict(path, {"y": np.zeros((1, 3, 16, 16), np.float32)})
    with pytest.raises(mil.MilInterpreterError, match=r"shape \(1, 3, 8, 8\)"):
        mil.predict(path, {"x": np.zeros((1, 3, 8, 8), np.float32)})
    with pytest.raises(mil.MilInterpreterError, match="precision"):
        mil.predict(path, {"x": np.zeros((1, 3, 16, 16), np.float32)}, precision="fp8")
    with pytest.raises(ArtifactError, match="does not exist"):
        mil.predict(tmp_path / "missing.mlpackage", {})
    junk = tmp_path / "junk.mlpackage"
    junk.mkdir()
    (junk / "Manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not a readable Core ML model"):
        mil.predict(junk, {})
    assert issubclass(mil.MilInterpreterError, EdgevitError)


@pytest.mark.parametrize("layout", ["RGB", "BGR", "GRAYSCALE"])
def test_image_inputs_in_each_colour_layout(layout):
    """An ImageType input takes a PIL image; its channel order and scale/bias are part of the program."""
    channels = 1 if layout == "GRAYSCALE" else 3

    class Probe(nn.Module):
        def forward(self, x):
            return x * 2.0 - 1.0  # exposes exactly what the program received

    example = torch.rand(1, channels, 16, 16)
    program = torch.export.export(Probe().eval(), (example,)).run_decompositions({})
    image_input = ct.ImageType(name="image", shape=(1, channels, 16, 16), scale=1 / 255.0,
                               bias=[0.1] * channels, color_layout=getattr(ct.colorlayout, layout))
    mlmodel = ct.convert(program, inputs=[image_input], convert_to="mlprogram",
                         minimum_deployment_target=ct.target.iOS17, compute_precision=ct.precision.FLOAT32)
    photo = _photo(mode="L" if layout == "GRAYSCALE" else "RGB")
    out = next(iter(mil.predict(mlmodel, {"image": photo}).values()))
    pixels = np.asarray(photo, dtype=np.float32)
    pixels = pixels[None, None] if layout == "GRAYSCALE" else pixels.transpose(2, 0, 1)[None]
    if layout == "BGR":
        pixels = pixels[:, ::-1]
    np.testing.assert_allclose(out, (pixels / 255.0 + 0.1) * 2.0 - 1.0, rtol=1e-6, atol=1e-6)
    with pytest.raises(mil.MilInterpreterError, match="16x16 image, got 8x8"):
        mil.predict(mlmodel, {"image": photo.resize((8, 8))})
    with pytest.raises(mil.MilInterpreterError, match="PIL image"):
        mil.predict(mlmodel, {"image": pixels})


def test_a_classifier_returns_the_label_and_the_probability_dict():
    labels = ["cat", "dog", "fish", "bird", "frog"]

    class Softmaxed(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = Tiny()

        def forward(self, x):
            return torch.softmax(self.body(x), dim=-1)

    model = Softmaxed().eval()
    mlmodel = _convert(model, [ct.ImageType(name="image", shape=(1, 3, 16, 16), scale=1 / 255.0)],
                       classifier_config=ct.ClassifierConfig(labels))
    photo = _photo()
    out = mil.predict(mlmodel, {"image": photo})
    desc = mlmodel.get_spec().description
    label, probs = out[desc.predictedFeatureName], out[desc.predictedProbabilitiesName]
    x = torch.from_numpy(np.asarray(photo, dtype=np.float32).transpose(2, 0, 1)[None] / 255.0)
    expected = model(x).detach().numpy()[0]
    assert isinstance(label, str) and set(probs) == set(labels)
    assert label == labels[int(np.argmax(expected))]
    np.testing.assert_allclose([probs[k] for k in labels], expected, rtol=1e-4, atol=1e-6)


def test_fp16_programs_round_every_fp16_value():
    """x + 1e-4 for x = 1 is exactly 1 in fp16 storage; without the rounding it is not."""

    class AddTiny(nn.Module):
        def forward(self, x):
            return (x + 1e-4) - x

    mlmodel = _convert(AddTiny(), [ct.TensorType(name="x", shape=(1, 3, 16, 16))], precision="fp16")
    x = np.ones((1, 3, 16, 16), dtype=np.float32)
    rounded = next(iter(mil.predict(mlmodel, {"x": x}).values()))
    unrounded = next(iter(mil.predict(mlmodel, {"x": x}, precision="fp32").values()))
    assert np.all(rounded == 0.0)
    np.testing.assert_allclose(unrounded, 1e-4, rtol=1e-2)


def _compressed(kind: str, mlmodel: ct.models.MLModel) -> ct.models.MLModel:
    from coremltools.optimize import coreml as cto

    if kind == "w8":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", weight_threshold=0)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    if kind == "w4-block":
        config = cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int4", granularity="per_block",
                                             block_size=4, weight_threshold=0)
        return cto.linear_quantize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    if kind == "palette4":
        config = cto.OpPalettizerConfig(mode="kmeans", nbits=4, weight_threshold=0)
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    if kind == "palette2-grouped":
        config = cto.OpPalettizerConfig(mode="kmeans", nbits=2, granularity="per_grouped_channel", group_size=4,
                                        weight_threshold=0)
        return cto.palettize_weights(mlmodel, cto.OptimizationConfig(global_config=config))
    config = cto.OpMagnitudePrunerConfig(target_sparsity=0.5, weight_threshold=0)
    return cto.prune_weights(mlmodel, cto.OptimizationConfig(global_config=config))


@pytest.mark.parametrize(("kind", "target"), [("w8", ct.target.iOS16), ("palette4", ct.target.iOS16),
                                              ("sparse", ct.target.iOS16), ("w8", ct.target.iOS18),
                                              ("w4-block", ct.target.iOS18), ("palette2-grouped", ct.target.iOS18),
                                              ("sparse", ct.target.iOS18)])
def test_compressed_weights_decompress_as_coremltools_defines_them(kind, target):
    """Each constexpr op's value equals coremltools' own decompression of the same op (an oracle used here
    only: the kernels never call it), and the compressed program still computes nearly the same function."""
    from edgevit.mil.interpreter import constants_of
    from edgevit.mil.kernels import KERNELS, OpArgs

    model = Tiny().eval()
    dense = _convert(model, [ct.TensorType(name="x", shape=(1, 3, 16, 16))], target=target)
    small = _compressed(kind, dense)
    loaded = mil.load_program(small)
    ops = [op for op in loaded.main.operations if op.op_type.startswith("constexpr_")]
    assert ops, f"{kind} produced no compressed weight"
    env = constants_of(loaded.main)
    for op in ops:
        ours = KERNELS[op.op_type](OpArgs(op, env))
        ours = ours if isinstance(ours, tuple) else (ours,)
        theirs = op.materialized_val_inference()
        theirs = theirs if isinstance(theirs, tuple) else (theirs,)
        for value, var, oracle in zip(ours, op.outputs, theirs, strict=True):
            np.testing.assert_allclose(np.asarray(value, dtype=np.float64), np.asarray(oracle, dtype=np.float64),
                                       rtol=1e-6, atol=1e-7)
            env[var] = value
    x = np.random.default_rng(0).normal(size=(1, 3, 16, 16)).astype(np.float32)
    out = next(iter(mil.predict(small, {"x": x}).values()))
    ref = next(iter(mil.predict(dense, {"x": x}).values()))
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 0.6  # compressed, so close but not equal
    assert not np.array_equal(out, ref)
