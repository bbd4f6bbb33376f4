"""Sweep plans: cells from flags, presets and TOML/YAML files, every bad input refused before any work."""

from __future__ import annotations

import pytest

from edgevit.base.errors import WeightsError
from edgevit.cli import main
from edgevit.studies.sweep.plan import PlanError, build_plan, plan_from_file
from edgevit.studies.sweep.presets import PRESETS, SEEDS, WTF_ARCHITECTURES, wtf_mapping_markdown


def test_cross_product_keeps_what_exists_and_says_what_it_left_out():
    plan = build_plan(["swiftformer-xs", "mobileone-s0"], targets=["coreml", "executorch", "onnx"],
                      variants=["none", "int8"])
    names = [c.artifact for c in plan.cells]
    assert names == ["swiftformer-xs.coreml.fp16.mlpackage", "swiftformer-xs.executorch.xnnpack.fp32.pte",
                     "swiftformer-xs.executorch.xnnpack.int8.pte", "swiftformer-xs.onnx.fp32.onnx",
                     "swiftformer-xs.onnx.int8.onnx", "mobileone-s0.coreml.fp16.mlpackage",
                     "mobileone-s0.executorch.xnnpack.fp32.pte", "mobileone-s0.executorch.xnnpack.int8.pte",
                     "mobileone-s0.onnx.fp32.onnx", "mobileone-s0.onnx.int8.onnx"]
    assert len(plan.left_out) == 1 and plan.left_out[0].startswith("coreml x int8: --quantize int8 does not apply")
    quant = plan.cells[2]
    assert (quant.variant, quant.precision, quant.compute_precision) == ("int8", "int8", "fp32")
    assert quant.convert_kwargs() == {"quantize": "int8"}
    compressed = build_plan(["swiftformer-xs"], targets=["coreml"], variants=["w8", "fp32"]).cells
    assert [c.artifact for c in compressed] == ["swiftformer-xs.coreml.w8.mlpackage",
                                                "swiftformer-xs.coreml.fp32.mlpackage"]
    assert compressed[0].convert_kwargs() == {"compress": "w8"}


def test_presets():
    seeds = build_plan(preset="seeds")
    assert [c.model for c in seeds.cells[::4]] == list(SEEDS) and len(seeds.cells) == 4 * len(SEEDS)
    assert {(c.target, c.variant) for c in seeds.cells} == {("coreml", "none"), ("executorch", "none"),
                                                            ("onnx", "none"), ("executorch", "int8")}
    with open("Makefile") as fh:
        bench_models = fh.read().split("BENCH_MODELS ?=")[1].split("\n# ")[0].replace("\\", " ").split()
    assert tuple(bench_models) == SEEDS
    # every wtf name resolves (registry or timm), and every paper architecture without one says why
    wtf = build_plan(preset="wtf", targets=["onnx"])
    assert len(wtf.cells) == len(PRESETS["wtf"]) >= 20
    assert all(note for _arch, name, note in WTF_ARCHITECTURES if name is None)
    assert "| ToMe | missing |" in wtf_mapping_markdown()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"models": ["mobileone-s1"], "targets": ["onnx"]}, "Did you mean: mobileone-s0"),
    ({"models": ["timm:resnet1"], "targets": ["onnx"]}, "timm:resnet18"),
    ({"models": ["deit-t"], "targets": ["onxx"]}, "unknown target 'onxx'. Did you mean: onnx"),
    ({"models": ["deit-t"], "variants": ["int9"]}, "Did you mean: int8"),
    ({"preset": "seed"}, "unknown preset 'seed'. Did you mean: seeds"),
    ({"models": ["deit-t", "deit-t"], "targets": ["onnx"]}, "duplicated row: deit-t onnx none is listed twice"),
    ({"models": ["deit-t"], "targets": ["coreml"], "variants": ["none", "fp16"]},
     "duplicated row: deit-t coreml fp16 makes the same artifact as deit-t coreml none"),
    ({"models": ["deit-t"], "targets": ["coreml"], "variants": ["int8"]}, "the sweep has no cell"),
    ({"models": ["deit-t"], "targets": ["onnx"], "retries": -1}, "retries must be between 0 and 10"),
])
def test_bad_plans_are_refused_with_the_nearest_name(kwargs, message):
    with pytest.raises(PlanError if "retries" not in kwargs else Exception, match=message):
        build_plan(**kwargs)


def test_a_right_plan_passes_the_same_checks():
    plan = build_plan(["deit-t"], targets=["onnx"], retries=0)
    assert [c.artifact for c in plan.cells] == ["deit-t.onnx.fp32.onnx"] and plan.retries == 0


def test_plan_files_toml_and_yaml(tmp_path):
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"not really")
    toml = tmp_path / "plan.toml"
    toml.write_text(f'models = ["deit-t", {{name = "mobileone-s0", weights = "{weights}"}}]\n'
                    'targets = ["onnx", "executorch"]\nvariants = ["none"]\nretries = 2\n'
                    '[bench]\nenabled = false\niterations = 3\nresource = "iphone15"\n'
                    '[[cells]]\nmodel = "deit-t"\ntarget = "coreml"\nvariant = "w8"\n')
    plan = plan_from_file(toml)
    assert [c.label for c in plan.cells] == ["deit-t onnx none", "deit-t executorch none", "mobileone-s0 onnx none",
                                             "mobileone-s0 executorch none", "deit-t coreml w8"]
    assert plan.cells[2].weights == str(weights) and plan.retries == 2 and not plan.bench
    assert plan.bench_resource == "iphone15" and plan.iterations == 3
    assert plan_from_file(toml, bench=True, retries=0).retries == 0
    yaml = tmp_path / "plan.yaml"
    yaml.write_text("models: [deit-t]\ntargets: [onnx]\nquantize: [none, int8]\n")
    assert [c.artifact for c in plan_from_file(yaml).cells] == ["deit-t.onnx.fp32.onnx", "deit-t.onnx.int8.onnx"]


@pytest.mark.parametrize(("text", "suffix", "message"), [
    ('models = ["deit-t"]\ntarget = ["onnx"]\n', ".toml", "unknown key 'target'. Did you mean: targets"),
    ('models = ["deitt"]\ntargets = ["onnx"]\n', ".toml", "plan.toml: unknown model 'deitt'. Did you mean: deit-t"),
    ('models = ["deit-t"\n', ".toml", "not valid TOML"),
    ("models: [deit-t\n", ".yaml", "not valid YAML"),
    ('models = ["deit-t"]\n', ".json", "a plan file is .toml, .yaml or .yml"),
    ('[[cells]]\nmodel = "deit-t"\ntarget = "coreml"\nvariant = "int8"\n', ".toml",
     r"cells\[0\]: deit-t coreml int8 cannot be made: --quantize int8 does not apply to --target coreml"),
    ('[[cells]]\nmodel = "deit-t"\ntarget = "onnx"\nvarient = "int8"\n', ".toml", "Did you mean: variant"),
    ('models = ["deit-t"]\ntargets = ["onnx"]\n[[cells]]\nmodel = "deit-t"\ntarget = "onnx"\n', ".toml",
     "duplicated row: deit-t onnx none is listed twice"),
    ('models = ["deit-t"]\n[bench]\niteration = 3\n', ".toml", "unknown bench key 'iteration'"),
])
def test_bad_plan_files(tmp_path, text, suffix, message):
    path = tmp_path / f"plan{suffix}"
    path.write_text(text)
    with pytest.raises(PlanError, match=message):
        plan_from_file(path)


def test_missing_weights_and_plan_file(tmp_path):
    with pytest.raises(WeightsError, match="checkpoint not found"):
        build_plan([{"name": "deit-t", "weights": str(tmp_path / "nope.pth")}], targets=["onnx"])
    with pytest.raises(PlanError, match="plan file not found"):
        plan_from_file(tmp_path / "nope.toml")


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, " ".join((captured.out + captured.err).split())


def test_cli_bad_input_exits_2_with_one_message(tmp_path, capsys):
    out = str(tmp_path / "o")
    code, text = _cli(capsys, "sweep", "mobileone-s1", "--target", "onnx", "--out", out)
    assert code == 2 and "Did you mean: mobileone-s0" in text and "Traceback" not in text
    plan = tmp_path / "p.toml"
    plan.write_text('models = ["deit-t"]\n')
    code, text = _cli(capsys, "sweep", "deit-t", "--plan", str(plan), "--out", out)
    assert code == 2 and "--plan describes the whole sweep" in text
    code, text = _cli(capsys, "sweep", "deit-t", "--target", "onnx", "--engine", "ray", "--address", "127.0.0.1:1",
                      "--out", out, "--cache", str(tmp_path / "c"))
    assert code == 2 and "cannot reach the Ray cluster at 127.0.0.1:1" in text
    assert not (tmp_path / "c").exists()  # refused before any work
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("a file where the cache folder would be")
    code, text = _cli(capsys, "sweep", "deit-t", "--target", "onnx", "--engine", "serial", "--out", out,
                      "--cache", str(not_a_dir))
    assert code == 2 and f"the artifact cache {not_a_dir} is not writable" in text
