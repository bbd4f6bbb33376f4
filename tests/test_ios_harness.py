"""The iOS/macOS harness (ios_harness/, Swift) against the Python side, without a Swift compiler.

* The Swift Codable result types are parsed and compared key for key with edgevit/bench/schema.json, so a
  field added to the schema but not to Swift fails here.
* The Swift statistics are checked by reference vectors: stats_reference.json holds stats.py's answers on
  fixed samples; this test keeps the file equal to what stats.py computes now, and the Swift XCTest
  (StatsTests.swift) asserts the Swift code reproduces it when run on a Mac (`swift test`).
* The Swift end-to-end test runs two tiny CoreML models (Resources/Fixtures) whose expected outputs were
  computed here with PyTorch; this test checks those fixtures are consistent.
* Staging (edgevit.device.ios) is tested on a real small .mlpackage, including every error case.

Regenerate the Swift test resources after changing stats.py or the fixtures' format:
``.venv/bin/python tests/test_ios_harness.py``.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
import sys
from pathlib import Path

import pytest

from edgevit.bench import stats
from edgevit.bench.results import load_schema
from edgevit.device import ios
from edgevit.errors import ArtifactError, EdgevitError, OutputError

REPO = Path(__file__).resolve().parents[1]
HARNESS = REPO / "ios_harness"
SWIFT_LIB = HARNESS / "Sources/EdgevitHarness"
SWIFT_TESTS = HARNESS / "Tests/EdgevitHarnessTests"
REFERENCE = SWIFT_TESTS / "Resources/stats_reference.json"
FIXTURES = SWIFT_TESTS / "Resources/Fixtures"
FIXTURE_SUFFIX = ".fixture"  # X.mlpackage is stored as X.mlpackage.fixture (the repo ignores *.mlpackage/)
REGENERATE = "run `.venv/bin/python tests/test_ios_harness.py` to regenerate the Swift test resources"


# --- reading Swift source ----------------------------------------------------------------------------------

def _matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, skipping string literals."""
    depth, i, in_string = 0, open_at, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise AssertionError("unbalanced braces in Swift source")


def swift_block(source: str, declaration: str) -> str:
    """Body of the first `declaration` (e.g. `struct BenchResult`, `enum CodingKeys`), braces excluded."""
    match = re.search(rf"\b{declaration}\b[^{{]*\{{", source)
    assert match, f"`{declaration}` not found in Swift source"
    end = _matching_brace(source, match.end() - 1)
    return source[match.end(): end]


def _top_level(body: str) -> str:
    """The text of `body` at brace depth 0 (nested types and function bodies removed)."""
    out, depth = [], 0
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def coding_keys(source: str, type_name: str) -> dict[str, str]:
    """{Swift case name: JSON key} of `type_name`'s CodingKeys enum."""
    body = swift_block(swift_block(source, f"struct {type_name}"), "enum CodingKeys")
    keys = {}
    for statement in re.findall(r"\bcase\s+([^\n]+)", body):
        for item in statement.split(","):
            name, _, raw = item.partition("=")
            raw = raw.strip()
            keys[name.strip()] = json.loads(raw) if raw else name.strip()
    return keys


def stored_properties(source: str, type_name: str) -> list[str]:
    body = _top_level(swift_block(source, f"struct {type_name}"))
    return re.findall(r"^\s*(?:public\s+|private\s+|internal\s+)?var\s+(\w+)\s*:", body, flags=re.MULTILINE)


def encoded_cases(source: str, type_name: str) -> set[str]:
    """Cases that `type_name`'s encode(to:) writes (`forKey: .x`)."""
    body = swift_block(swift_block(source, f"struct {type_name}"), r"func encode\(to encoder: Encoder\) throws")
    return set(re.findall(r"forKey:\s*\.(\w+)", body))


def strip_comments(text: str) -> str:
    """Swift source without `//` comments (quotes and braces in comments would confuse the parsing)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
            in_string = ch == '"'
        i += 1
    return "".join(out)


def swift_source(name: str) -> str:
    return strip_comments((SWIFT_LIB / name).read_text(encoding="utf-8"))


def schema_mismatch(required: list[str], properties: list[str], swift_keys: list[str]) -> list[str]:
    """Why Swift's keys do not match a schema object (empty list: they match)."""
    problems = [f"schema requires {k!r}, Swift lacks it" for k in required if k not in swift_keys]
    problems += [f"schema property {k!r} missing in Swift" for k in properties if k not in swift_keys
                 and k not in required]
    problems += [f"Swift key {k!r} is not in the schema (additionalProperties is false)" for k in swift_keys
                 if k not in properties]
    return problems


# --- Swift result types vs schema.json ----------------------------------------------------------------------

RESULTS_SWIFT = "Results.swift"
SCHEMA_OBJECTS = {  # Swift type -> how to find its schema object
    "ResultsDocument": lambda s: s,
    "DeviceInfo": lambda s: s["$defs"]["device"],
    "BenchResult": lambda s: s["$defs"]["result"],
}


@pytest.mark.parametrize("type_name", list(SCHEMA_OBJECTS))
def test_swift_codable_keys_match_schema(type_name):
    schema_object = SCHEMA_OBJECTS[type_name](load_schema())
    keys = list(coding_keys(swift_source(RESULTS_SWIFT), type_name).values())
    assert not schema_mismatch(schema_object["required"], list(schema_object["properties"]), keys)
    assert len(keys) == len(set(keys)), f"{type_name}: a JSON key appears twice in CodingKeys"


@pytest.mark.parametrize("type_name", list(SCHEMA_OBJECTS))
def test_swift_encoders_write_every_key_and_properties_have_keys(type_name):
    """Custom encode(to:) must write every key (nulls included); each stored property must have a key."""
    source = swift_source(RESULTS_SWIFT)
    cases = coding_keys(source, type_name)
    assert encoded_cases(source, type_name) == set(cases), f"{type_name}.encode(to:) skips or invents keys"
    assert set(stored_properties(source, type_name)) == set(cases), f"{type_name}: properties vs CodingKeys"


def test_swift_optionals_are_exactly_the_nullable_schema_fields():
    """A nullable schema field must be an Optional in Swift (else 'not measured' cannot be written as null)."""
    body = _top_level(swift_block(swift_source(RESULTS_SWIFT), "struct BenchResult"))
    optional = set(re.findall(r"var\s+(\w+)\s*:\s*[\w\[\]: ]+\?", body))
    cases = coding_keys(swift_source(RESULTS_SWIFT), "BenchResult")
    props = load_schema()["$defs"]["result"]["properties"]
    defs = load_schema()["$defs"]

    def nullable(prop: dict) -> bool:
        if "$ref" in prop:
            prop = defs[prop["$ref"].rsplit("/", 1)[-1]]
        kind = prop.get("type")
        return isinstance(kind, list) and "null" in kind

    swift_nullable = {cases[name] for name in optional}
    assert swift_nullable == {k for k, p in props.items() if nullable(p)}


def test_key_comparison_fails_when_schema_gains_a_field():
    """The check above bites: a field added to the schema but not to Swift is reported."""
    schema = copy.deepcopy(load_schema())
    result = schema["$defs"]["result"]
    result["properties"]["energy_mj"] = {"type": ["number", "null"]}
    result["required"].append("energy_mj")
    keys = list(coding_keys(swift_source(RESULTS_SWIFT), "BenchResult").values())
    assert schema_mismatch(result["required"], list(result["properties"]), keys) == [
        "schema requires 'energy_mj', Swift lacks it"]
    assert schema_mismatch(["a"], ["a"], ["a", "extra"]) == [
        "Swift key 'extra' is not in the schema (additionalProperties is false)"]


def test_swift_writes_only_schema_enum_values():
    schema = load_schema()
    result = schema["$defs"]["result"]["properties"]
    harness = swift_source("Harness.swift")
    assert re.search(r'self\.harness = "ios"', swift_source(RESULTS_SWIFT))
    assert "ios" in schema["properties"]["harness"]["enum"]
    for literal in re.findall(r'form: isPte \? "(\w+)" : "(\w+)"', harness)[0]:
        assert literal in result["form"]["enum"]
    for literal in re.findall(r'runtime: isPte \? "(\w+)" : "(\w+)"', harness)[0]:
        assert literal in result["runtime"]["enum"]
    for status in re.findall(r'status: "(\w+)"', harness):
        assert status in result["status"]["enum"]
    kinds = set(re.findall(r'return "(\w+)"', swift_block(swift_source("DeviceProbe.swift"), "func kind")))
    assert kinds == {"iphone", "ipad", "mac"} <= set(schema["$defs"]["device"]["properties"]["kind"]["enum"])
    assert 'kind = "phys_footprint"' in swift_source("DeviceProbe.swift")
    units = set(re.findall(r"case (\w+)\n", swift_block(swift_source("Config.swift"), "enum ComputeUnit")))
    assert units == set(ios.COMPUTE_UNITS)


def test_swift_device_outputs_match_what_validate_reads():
    from edgevit.inputs import BUNDLE_FORMAT
    from edgevit.validate import DEVICE_OUTPUTS_FORMAT

    source = swift_source("DeviceOutputs.swift")
    keys = set(coding_keys(source, "DeviceOutputs").values())
    assert {"format", "artifact", "artifact_sha256", "device", "compute_unit", "outputs"} <= keys
    assert set(stored_properties(source, "Output")) == {"name", "shape", "values"}
    assert encoded_cases(source, "DeviceOutputs") == set(coding_keys(source, "DeviceOutputs"))
    assert f'format = "{DEVICE_OUTPUTS_FORMAT}"' in source
    assert f'format = "{BUNDLE_FORMAT}"' in swift_source("Config.swift")


# --- statistics: reference vectors --------------------------------------------------------------------------

PERCENTILES = (0.0, 10.0, 25.0, 33.3, 50.0, 75.0, 90.0, 99.0, 99.9, 100.0)


def _latencies(rng: random.Random, n: int, base: float = 4.0) -> list[float]:
    """Latency-like samples: log-normal jitter around `base` ms with a few OS hiccups."""
    return [base * math.exp(rng.gauss(0.0, 0.08)) + (rng.uniform(1.0, 10.0) if rng.random() < 0.05 else 0.0)
            for _ in range(n)]


def stats_reference() -> dict:
    """What stats.py (and ios.trim_round) answer on fixed samples: the contract StatsTests.swift checks."""
    rng = random.Random(20240531)
    samples_cases = [
        ("empty", [], 0.1), ("one", [3.25], 0.1), ("two", [2.0, 1.0], 0.1),
        ("odd unsorted", [5.5, 1.25, 3.0, 9.75, 2.5], 0.1), ("duplicates", [1.0, 1.0, 1.0, 2.0, 2.0], 0.2),
        ("n=10 k=1", _latencies(rng, 10), 0.1),
        ("n=30: 30*0.1 is 3.0000000000000004", _latencies(rng, 30), 0.1),
        ("n=100: 100*0.29 is 28.999999999999996, so k=28", _latencies(rng, 100), 0.29),
        ("n=7 no trim", _latencies(rng, 7), 0.0), ("n=9 trim 0.49 keeps the middle one", _latencies(rng, 9), 0.49),
        ("n=960 (20 rounds x 48 kept)", _latencies(rng, 960, 1.7), 0.1),
        ("n=960 trim 0.25", _latencies(rng, 960, 0.4), 0.25),
        ("large values", [x * 1e4 for x in _latencies(rng, 25)], 0.1),
        ("tiny values", [x * 1e-4 for x in _latencies(rng, 24)], 0.1),
    ]
    cases = []
    for name, samples, trim in samples_cases:
        summary = stats.summarize(samples, trim)
        cases.append({"name": name, "samples": samples, **summary,
                      "percentiles": [{"q": q, "value": stats.percentile(samples, q)} for q in PERCENTILES]})
    errors = [
        {"name": "trim 0.5", "samples": [1.0, 2.0], "trim_fraction": 0.5, "q": None},
        {"name": "trim negative", "samples": [1.0, 2.0], "trim_fraction": -0.1, "q": None},
        {"name": "q above 100", "samples": [1.0, 2.0], "trim_fraction": None, "q": 100.5},
        {"name": "q negative", "samples": [1.0, 2.0], "trim_fraction": None, "q": -1.0},
    ]
    for case in errors:  # the reference must say what stats.py really does
        with pytest.raises(ValueError):
            if case["q"] is None:
                stats.trimmed_mean(case["samples"], case["trim_fraction"])
            else:
                stats.percentile(case["samples"], case["q"])
    round_inputs = [[], [5.0], [1.0, 2.0], [3.0, 1.0, 2.0], [2.0, 2.0, 2.0, 2.0], [1.0, 5.0, 5.0, 1.0, 3.0],
                    _latencies(rng, 50)]
    rounds = [_latencies(rng, 7) for _ in range(3)]
    pooled = ios.protocol_samples(rounds)
    return {
        "format": "edgevit-stats-reference/1",
        "generated_from": "edgevit/bench/stats.py and edgevit/device/ios.py (tests/test_ios_harness.py)",
        "relative_tolerance": 1e-12,
        "cases": cases,
        "errors": errors,
        "round_trim": [{"times": t, "kept": ios.trim_round(t)} for t in round_inputs],
        "protocol": [{"rounds": rounds, "samples": pooled, **stats.summarize(pooled, 0.1)}],
    }


def write_stats_reference(path: Path = REFERENCE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats_reference(), indent=1) + "\n", encoding="utf-8")


def test_stats_reference_is_current():
    assert REFERENCE.is_file(), f"{REFERENCE} is missing; {REGENERATE}"
    assert json.loads(REFERENCE.read_text(encoding="utf-8")) == stats_reference(), (
        f"{REFERENCE.name} is out of date with stats.py; {REGENERATE}")


def test_stats_reference_covers_the_tricky_cases():
    ref = stats_reference()
    by_name = {c["name"]: c for c in ref["cases"]}
    assert by_name["empty"]["median_ms"] is None and by_name["empty"]["p90_ms"] is None
    case = by_name["n=100: 100*0.29 is 28.999999999999996, so k=28"]
    s = sorted(case["samples"])
    assert case["trimmed_mean_ms"] == sum(s[28:72]) / 44  # floor of the float product, not of 29
    assert by_name["two"]["median_ms"] == 1.5
    assert ref["round_trim"][4]["kept"] == [2.0, 2.0]  # ties: one max and one min are dropped
    assert ref["round_trim"][5]["kept"] == [5.0, 1.0, 3.0]


def test_swift_stats_tests_check_every_reference_section():
    """StatsTests.swift must read the reference file and assert each section with the Swift functions."""
    text = (SWIFT_TESTS / "StatsTests.swift").read_text(encoding="utf-8")
    assert "stats_reference" in text
    for call in ("Stats.median(", "Stats.percentile(", "Stats.trimmedMean(", "Stats.summarize(",
                 "Stats.trimRound(", "Stats.protocolSamples("):
        assert call in text, f"StatsTests.swift does not call {call}"
    for section in ("cases", "errors", "round_trim", "protocol"):
        assert re.search(rf"\b{section}\b", text), f"StatsTests.swift ignores the {section!r} section"
    package = (HARNESS / "Package.swift").read_text(encoding="utf-8")
    assert "Resources/stats_reference.json" in package


def test_swift_stats_use_the_same_float_operations():
    """Same operations in the same order as stats.py, so results agree to the last bit (not only 1e-12)."""
    body = swift_source("Stats.swift")
    for expression in ("Double(s.count - 1) * q / 100.0", "(Double(s.count) * trimFraction).rounded(.down)",
                       "s[lo] + (s[hi] - s[lo]) * (pos - Double(lo))", "(s[mid - 1] + s[mid]) / 2.0",
                       "total / Double(kept.count)"):
        assert expression in body, f"Stats.swift no longer computes {expression!r} like stats.py"


# --- Swift end-to-end fixtures -------------------------------------------------------------------------------

def _tiny_net():
    import torch
    from torch import nn

    torch.manual_seed(7)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, 10)).eval()


FIXTURE_MEAN, FIXTURE_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FIXTURE_LABELS = [f"class{i}" for i in range(8)] + ["crane", "crane"]  # a repeated label, like ImageNet's


def write_swift_fixtures(folder: Path = FIXTURES) -> None:
    """Two tiny CoreML models in the converter's layout (manifest, validation bundle) plus the outputs
    PyTorch computes on their validation inputs, for the Swift end-to-end test (HarnessTests.swift)."""
    import coremltools as ct
    import numpy as np
    import torch
    from PIL import Image

    from edgevit.export.coreml import ImageClassifier
    from edgevit.weights import sha256_of

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    net = _tiny_net()
    shape = [1, 3, 16, 16]
    gen = torch.Generator().manual_seed(3)
    pixels = [torch.randint(0, 256, (16, 16, 3), generator=gen, dtype=torch.uint8).numpy() for _ in range(2)]
    mean, std = torch.tensor(FIXTURE_MEAN).view(1, 3, 1, 1), torch.tensor(FIXTURE_STD).view(1, 3, 1, 1)
    photos = [((torch.from_numpy(p).permute(2, 0, 1)[None].float() / 255 - mean) / std) for p in pixels]
    randoms = [torch.randn(shape, generator=gen) for _ in range(2)]
    expected: dict[str, dict] = {}
    for kind in ("tensor", "image"):
        stem = f"tiny-{kind}.coreml.fp32"
        module = net if kind == "tensor" else ImageClassifier(net, FIXTURE_MEAN, FIXTURE_STD).eval()
        example = torch.rand(shape) * (1.0 if kind == "tensor" else 255.0)
        program = torch.export.export(module, (example,)).run_decompositions({})
        if kind == "tensor":
            inputs = [ct.TensorType(name="input", shape=shape)]
            extra = {}
        else:
            inputs = [ct.ImageType(name="image", shape=shape, color_layout=ct.colorlayout.RGB)]
            extra = {"classifier_config": ct.ClassifierConfig(FIXTURE_LABELS)}
        mlmodel = ct.convert(program, inputs=inputs, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17,
                             compute_precision=ct.precision.FLOAT32, **extra)
        package = folder / f"{stem}.mlpackage"
        mlmodel.save(str(package))
        desc = mlmodel.get_spec().description
        output_name = desc.predictedProbabilitiesName or desc.output[0].name
        manifest = {
            "manifest_version": 1, "model": f"tiny-{kind}", "artifact": package.name, "sha256": sha256_of(package),
            "target": "coreml", "backend": None, "precision": "fp32",
            "input": {"name": inputs[0].name, "kind": kind, "shape": shape},
            "output": {"name": output_name, "kind": "logits" if kind == "tensor" else "probabilities"},
            "tool_versions": {"coremltools": ct.__version__, "torch": torch.__version__.split("+")[0]},
        }
        (folder / f"{stem}.json").write_text(json.dumps(manifest, indent=2) + "\n")
        bundle = folder / f"{stem}.validation"
        bundle.mkdir()
        entries, outputs = [], {}
        for i, (tensor, image) in enumerate([*zip(photos, pixels, strict=True), *((r, None) for r in randoms)]):
            name = f"photo_{i}" if image is not None else f"random_{i - len(photos)}"
            tensor.numpy().astype("<f4").tofile(bundle / f"{name}.f32")
            if image is not None:
                Image.fromarray(image, "RGB").save(bundle / f"{name}.png")
            entries.append({"name": name, "image": f"{name}.png" if image is not None else None,
                            "tensor": f"{name}.f32", "shape": shape})
            with torch.no_grad():
                if kind == "tensor":
                    out = net(tensor)
                elif image is not None:
                    out = module(torch.from_numpy(image).permute(2, 0, 1)[None].float())
                else:
                    continue  # image models take no random tensors
            outputs[name] = [float(v) for v in out.flatten()]
        (bundle / "index.json").write_text(json.dumps(
            {"format": "edgevit-validation/1", "inputs": entries, "output_shape": [1, 10]}, indent=2))
        expected[package.name] = {"outputs": outputs, "labels": FIXTURE_LABELS if kind == "image" else None}
        package.rename(folder / (package.name + FIXTURE_SUFFIX))
    (folder / "expected_outputs.json").write_text(json.dumps(expected, indent=1) + "\n")
    assert np.isfinite([v for e in expected.values() for o in e["outputs"].values() for v in o]).all()


def test_swift_fixtures_are_consistent():
    from edgevit.weights import sha256_of

    expected_file = FIXTURES / "expected_outputs.json"
    assert expected_file.is_file(), f"{expected_file} is missing; {REGENERATE}"
    expected = json.loads(expected_file.read_text())
    assert set(expected) == {"tiny-tensor.coreml.fp32.mlpackage", "tiny-image.coreml.fp32.mlpackage"}
    for artifact, info in expected.items():
        stem = artifact[: -len(".mlpackage")]
        package = FIXTURES / (artifact + FIXTURE_SUFFIX)
        assert (package / "Manifest.json").is_file()
        manifest = json.loads((FIXTURES / f"{stem}.json").read_text())
        assert manifest["sha256"] == sha256_of(package), f"{artifact}: manifest sha256 is stale; {REGENERATE}"
        index = json.loads((FIXTURES / f"{stem}.validation/index.json").read_text())
        names = {e["name"] for e in index["inputs"] if manifest["input"]["kind"] == "tensor" or e["image"]}
        assert set(info["outputs"]) == names
        for entry in index["inputs"]:
            data = (FIXTURES / f"{stem}.validation" / entry["tensor"]).read_bytes()
            assert len(data) == 4 * math.prod(entry["shape"])
    text = (SWIFT_TESTS / "HarnessTests.swift").read_text(encoding="utf-8")
    assert "expected_outputs.json" in text and FIXTURE_SUFFIX in text
    assert 'resources: [.copy("Resources/stats_reference.json"), .copy("Resources/Fixtures")]' in (
        HARNESS / "Package.swift").read_text(encoding="utf-8")


# --- staging ---------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_mlpackage(tmp_path_factory) -> Path:
    """A real .mlpackage: one Conv2d converted with coremltools (as the brief of the harness prescribes)."""
    import coremltools as ct
    import torch

    m = torch.nn.Conv2d(3, 4, 3).eval()
    x = torch.rand(1, 3, 8, 8)
    mlmodel = ct.convert(torch.export.export(m, (x,)).run_decompositions({}),
                         inputs=[ct.TensorType(name="x", shape=x.shape)], convert_to="mlprogram")
    path = tmp_path_factory.mktemp("model") / "tiny.coreml.fp32.mlpackage"
    mlmodel.save(str(path))
    return path


def _add_artifact(folder: Path, package: Path, stem: str, *, validation: bool = True) -> None:
    shutil.copytree(package, folder / f"{stem}.mlpackage")
    manifest = {"manifest_version": 1, "model": "tiny", "artifact": f"{stem}.mlpackage", "sha256": "0" * 64,
                "target": "coreml", "precision": "fp32", "output": {"name": "out", "kind": "logits"},
                "input": {"kind": "tensor", "name": "x", "shape": [1, 3, 8, 8]}}
    (folder / f"{stem}.json").write_text(json.dumps(manifest))
    if validation:
        bundle = folder / f"{stem}.validation"
        bundle.mkdir()
        (bundle / "random_0.f32").write_bytes(b"\0" * 4 * 3 * 8 * 8)
        (bundle / "index.json").write_text(json.dumps({
            "format": "edgevit-validation/1", "output_shape": [1, 4, 6, 6],
            "inputs": [{"name": "random_0", "image": None, "tensor": "random_0.f32", "shape": [1, 3, 8, 8]}]}))


@pytest.fixture
def artifacts(tmp_path, tiny_mlpackage) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir()
    _add_artifact(folder, tiny_mlpackage, "tiny.coreml.fp32")
    _add_artifact(folder, tiny_mlpackage, "tiny.coreml.fp16", validation=False)
    (folder / "tiny.executorch.coreml.fp16.pte").write_bytes(b"not really a program")
    (folder / "tiny.executorch.coreml.fp16.json").write_text(json.dumps({
        "model": "tiny", "precision": "fp16", "backend": "coreml",
        "input": {"kind": "tensor", "name": "x", "shape": [1, 3, 8, 8]}, "output": {"name": "out"}}))
    (folder / "tiny.onnx").write_bytes(b"ignored: the iOS harness does not run ONNX")
    (folder / ".tmp-123-half.coreml.fp32.mlpackage").mkdir()  # an export in progress is not staged
    return folder


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_stage_copies_package_artifacts_and_config(artifacts, tmp_path):
    out = tmp_path / "staged"
    assert ios.stage_ios_harness(artifacts, out, rounds=3, iterations=7, compute_units=["all,cpuOnly"]) == out
    for name in ("Package.swift", "README.md", "Sources/EdgevitHarness/Stats.swift",
                 "Sources/EdgevitHarness/Results.swift", "Sources/edgevit-ios-bench/EdgevitIosBench.swift",
                 "Tests/EdgevitHarnessTests/StatsTests.swift",
                 "Tests/EdgevitHarnessTests/Resources/stats_reference.json",
                 "App/EdgevitBench.swiftpm/Package.swift",
                 "App/EdgevitBench.swiftpm/Sources/AppModule/EdgevitBenchApp.swift"):
        assert (out / name).is_file(), name
    app_lib = out / "App/EdgevitBench.swiftpm/Sources/EdgevitHarness"
    assert app_lib.is_dir() and not app_lib.is_symlink(), "the staged app package must be self-contained"
    assert (app_lib / "Harness.swift").read_bytes() == (out / "Sources/EdgevitHarness/Harness.swift").read_bytes()

    staged = ios.staged_artifacts_dir(out)
    assert staged == out / "App/EdgevitBench.swiftpm/Sources/AppModule/Staged"
    config = json.loads((staged / "config.json").read_text())
    assert config["format"] == ios.CONFIG_FORMAT
    assert (config["rounds"], config["iterations"], config["warmup"]) == (3, 7, 1)
    assert config["compute_units"] == ["all", "cpuOnly"]
    assert config["trim_fraction"] == stats.DEFAULT_TRIM_FRACTION
    listed = {e["artifact"]: e for e in config["artifacts"]}
    assert list(listed) == ["tiny.coreml.fp16.mlpackage", "tiny.coreml.fp32.mlpackage",
                            "tiny.executorch.coreml.fp16.pte"]
    assert listed["tiny.coreml.fp32.mlpackage"]["validation"] == "tiny.coreml.fp32.validation"
    assert listed["tiny.coreml.fp16.mlpackage"]["validation"] is None
    assert listed["tiny.executorch.coreml.fp16.pte"]["kind"] == "pte"
    for entry in config["artifacts"]:
        if entry["kind"] == "pte":
            assert (staged / entry["artifact"]).read_bytes() == (artifacts / entry["artifact"]).read_bytes()
        else:
            assert _tree(staged / entry["artifact"]) == _tree(artifacts / entry["artifact"])
        assert (staged / entry["manifest"]).read_bytes() == (artifacts / entry["manifest"]).read_bytes()
        if entry["validation"]:
            assert _tree(staged / entry["validation"]) == _tree(artifacts / entry["validation"])
    assert (staged / "tiny.coreml.fp32.mlpackage/Manifest.json").is_file()
    assert not (staged / "tiny.onnx").exists()
    assert not list(staged.glob(".tmp-*"))
    assert not list(tmp_path.glob(".staged.*")), "temporary staging folders left behind"


def test_stage_config_matches_what_swift_decodes(artifacts, tmp_path):
    out = ios.stage_ios_harness(artifacts, tmp_path / "staged")
    config = json.loads((ios.staged_artifacts_dir(out) / "config.json").read_text())
    source = swift_source("Config.swift")
    swift_config = coding_keys(source, "HarnessConfig")
    assert set(swift_config.values()) <= set(config)
    assert config["compute_units"] == list(ios.COMPUTE_UNITS) and (config["rounds"], config["iterations"]) == (20, 50)
    for entry in config["artifacts"]:
        assert set(stored_properties(source, "ArtifactEntry")) <= set(entry)
        assert entry["kind"] in re.findall(r"case (\w+)\n", swift_block(source, "enum ArtifactKind"))
    assert f'format = "{ios.CONFIG_FORMAT}"' in source


def test_stage_excludes_build_outputs_and_resolves_links(artifacts, tmp_path):
    harness = tmp_path / "harness"
    shutil.copytree(ios.HARNESS_DIR, harness, symlinks=True)
    (harness / ".build").mkdir()
    (harness / ".build/junk.o").write_bytes(b"x")
    (harness / "App/EdgevitBench.swiftpm/.swiftpm").mkdir()
    (harness / ios.STAGED_DIR / "stray.mlpackage").mkdir()  # something left in the repository's Staged/
    out = ios.stage_ios_harness(artifacts, tmp_path / "staged", harness_dir=harness)
    assert not (out / ".build").exists() and not (out / "App/EdgevitBench.swiftpm/.swiftpm").exists()
    assert not (ios.staged_artifacts_dir(out) / "stray.mlpackage").exists()
    assert (ios.staged_artifacts_dir(out) / "README.md").is_file()
    assert (out / "App/EdgevitBench.swiftpm/Sources/EdgevitHarness/Stats.swift").is_file()


def test_repository_app_links_the_library_sources():
    link = HARNESS / "App/EdgevitBench.swiftpm/Sources/EdgevitHarness"
    assert link.is_symlink() and link.resolve() == SWIFT_LIB.resolve()


def test_stage_overwrite_replaces_only_when_asked(artifacts, tmp_path):
    out = tmp_path / "staged"
    out.mkdir()
    (out / "old.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not empty"):
        ios.stage_ios_harness(artifacts, out)
    assert (out / "old.txt").read_text() == "keep me"
    ios.stage_ios_harness(artifacts, out, overwrite=True)
    assert not (out / "old.txt").exists() and (out / "Package.swift").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (ios.stage_ios_harness(artifacts, empty) / "Package.swift").is_file()  # an empty folder is fine


def test_stage_is_atomic_when_a_step_fails(artifacts, tmp_path, monkeypatch):
    out = tmp_path / "staged"
    out.mkdir()
    (out / "old.txt").write_text("previous run")

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ios, "write_config", broken)
    with pytest.raises(OutputError, match="No space left"):
        ios.stage_ios_harness(artifacts, out, overwrite=True)
    assert [p.name for p in out.iterdir()] == ["old.txt"]  # untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(OutputError):
        ios.stage_ios_harness(artifacts, tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_stage_errors_for_missing_or_empty_artifacts(tmp_path, tiny_mlpackage):
    with pytest.raises(ArtifactError, match="does not exist"):
        ios.stage_ios_harness(tmp_path / "nope", tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ArtifactError, match="no CoreML artifacts"):
        ios.stage_ios_harness(empty, tmp_path / "out")
    only_pte = tmp_path / "only_pte"
    only_pte.mkdir()
    (only_pte / "m.executorch.xnnpack.fp32.pte").write_bytes(b"x")
    (only_pte / "m.executorch.xnnpack.fp32.json").write_text(json.dumps({
        "model": "m", "precision": "fp32", "input": {"kind": "tensor", "name": "x", "shape": [1, 3, 8, 8]},
        "output": {"name": "out"}}))
    with pytest.raises(ArtifactError, match=r"no CoreML artifacts.*found only m\.executorch"):
        ios.stage_ios_harness(only_pte, tmp_path / "out")
    no_manifest = tmp_path / "no_manifest"
    no_manifest.mkdir()
    shutil.copytree(tiny_mlpackage, no_manifest / "m.coreml.fp32.mlpackage")
    with pytest.raises(ArtifactError, match="has no manifest"):
        ios.stage_ios_harness(no_manifest, tmp_path / "out")
    (no_manifest / "m.coreml.fp32.json").write_text('{"model": "m"}')
    with pytest.raises(ArtifactError, match="lacks precision, input.name/kind/shape, output.name"):
        ios.stage_ios_harness(no_manifest, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stage_errors_for_bad_validation_bundle(artifacts, tmp_path):
    (artifacts / "tiny.coreml.fp32.validation/index.json").write_text('{"format": "something-else"}')
    with pytest.raises(ArtifactError, match="not edgevit-validation/1"):
        ios.stage_ios_harness(artifacts, tmp_path / "out")
    (artifacts / "tiny.coreml.fp32.validation/index.json").unlink()
    with pytest.raises(ArtifactError, match="no readable index.json"):
        ios.stage_ios_harness(artifacts, tmp_path / "out")


def test_stage_errors_for_unusable_out_dir(artifacts, tmp_path, monkeypatch):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        ios.stage_ios_harness(artifacts, a_file)
    with pytest.raises(OutputError, match="cannot write beside"):
        ios.stage_ios_harness(artifacts, a_file / "sub")  # the parent is a file: nothing can be created there
    with pytest.raises(OutputError, match="overlaps the artifacts"):
        ios.stage_ios_harness(artifacts, artifacts, overwrite=True)
    with pytest.raises(OutputError, match="overlaps the artifacts"):
        ios.stage_ios_harness(artifacts, tmp_path, overwrite=True)  # would replace the folder holding them
    with pytest.raises(OutputError, match="overlaps the harness sources"):
        ios.stage_ios_harness(artifacts, HARNESS / "staged")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(ios.tempfile, "mkdtemp", denied)
    with pytest.raises(OutputError, match="Permission denied"):
        ios.stage_ios_harness(artifacts, tmp_path / "out")


def test_stage_inside_the_artifacts_folder_is_allowed(artifacts):
    out = ios.stage_ios_harness(artifacts, artifacts / "ios")
    assert (ios.staged_artifacts_dir(out) / "tiny.coreml.fp32.mlpackage").is_dir()


def test_stage_errors_for_bad_settings_and_missing_sources(artifacts, tmp_path):
    for kwargs, match in (({"rounds": 0}, "rounds"), ({"iterations": 0}, "iterations"),
                          ({"compute_units": ["cpuOnly", "npu"]}, "unknown compute unit 'npu'"),
                          ({"compute_units": []}, "no compute units"), ({"warmup": -1}, "warm-up"),
                          ({"trim_fraction": 0.5}, "trim fraction")):
        with pytest.raises(ios.IosHarnessError, match=match):
            ios.stage_ios_harness(artifacts, tmp_path / "out", **kwargs)
    with pytest.raises(ios.IosHarnessError, match="sources are not at"):
        ios.stage_ios_harness(artifacts, tmp_path / "out", harness_dir=tmp_path / "no-harness")
    assert issubclass(ios.IosHarnessError, EdgevitError)
    assert not (tmp_path / "out").exists()


def test_protocol_trims_each_round():
    assert ios.trim_round([3.0, 1.0, 2.0]) == [2.0]
    assert ios.trim_round([1.0, 2.0]) == [1.0, 2.0]
    assert ios.protocol_samples([[5.0, 1.0, 3.0, 4.0], [2.0, 9.0, 1.0]]) == [3.0, 4.0, 2.0]
    assert len(ios.protocol_samples([[1.0] * 50] * 20)) == 20 * 48


if __name__ == "__main__":
    write_stats_reference()
    print(f"wrote {REFERENCE}")
    if "--stats-only" not in sys.argv:
        write_swift_fixtures()
        print(f"wrote {FIXTURES}")
