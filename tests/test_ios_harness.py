"""The iOS/macOS harness (ios_harness/, Swift) against the Python side.

Where a Swift toolchain is found (PATH or /opt/swift; `make test` runs `swift build` and `swift test` first),
the package is built and its own outputs are judged here by the Python side:

* results.json written by the Swift session is validated with edgevit/bench/schema.json, key for key, and
  accepted by `edgevit report`;
* the device-outputs files it writes pass `edgevit validate --device-outputs` (device_parity);
* `edgevit-ios-bench --check` loads what `edgevit harness ios` stages, and refuses a broken config.json with
  a message that says what is wrong.

Without a toolchain those tests skip and say why; the rest runs anyway:

* the Swift result types' JSON keys are compared with schema.json (read from the Swift source: the compiler
  knows nothing of the schema), so a field added to the schema but not to Swift fails here;
* stats_reference.json, which the Swift StatsTests read, is what edgevit/bench/stats.py computes now;
* the fixtures of the Swift tests (two tiny CoreML models, the config.json `edgevit harness ios` writes for
  them) are consistent and current;
* staging (edgevit.bench.device.ios) is tested on a real small .mlpackage, including every error case.

Regenerate the Swift test resources after changing stats.py, staging or the fixtures' format:
``.venv/bin/python tests/test_ios_harness.py`` (``--stats-only``: only the statistics reference and config).
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from support.swift import (
    HARNESS,
    SwiftPackage,
    coding_keys,
    find_swift,
    optional_properties,
    schema_mismatch,
    swift_source,
)

from edgevit.base.errors import ArtifactError, EdgevitError, OutputError
from edgevit.bench import stats
from edgevit.bench.device import ios
from edgevit.bench.results import schema_path_for, validate_document

REPO = Path(__file__).resolve().parents[1]
SWIFT_LIB = HARNESS / "Sources/EdgevitHarness"
SWIFT_TESTS = HARNESS / "Tests/EdgevitHarnessTests"
REFERENCE = SWIFT_TESTS / "Resources/stats_reference.json"
FIXTURES = SWIFT_TESTS / "Resources/Fixtures"
FIXTURE_SUFFIX = ".fixture"  # X.mlpackage is stored as X.mlpackage.fixture (the repo ignores *.mlpackage/)
REGENERATE = "run `.venv/bin/python tests/test_ios_harness.py` to regenerate the Swift test resources"


# --- Swift result types vs schema.json, field by field ------------------------------------------------------


def load_schema() -> dict:
    """The results schema the Swift harness writes: the version its ResultsDocument stamps (2: frozen in
    schema_v2.json and still read; version 3 added host-only facts, the physical peak and the CPU's ISA)."""
    source = (SWIFT_LIB / "Results.swift").read_text()
    version = int(re.search(r"self\.schemaVersion = (\d+)", source).group(1))
    schema = json.loads(schema_path_for({"schema_version": version}).read_text())
    assert schema["properties"]["schema_version"]["const"] == version
    return schema

RESULTS_SWIFT = SWIFT_LIB / "Results.swift"
SCHEMA_OBJECTS = {  # Swift type -> how to find its schema object
    "ResultsDocument": lambda s: s,
    "DeviceInfo": lambda s: s["$defs"]["device"],
    "BenchResult": lambda s: s["$defs"]["result"],
}


@pytest.mark.parametrize("type_name", list(SCHEMA_OBJECTS))
def test_swift_codable_keys_match_schema(type_name: str) -> None:
    schema_object = SCHEMA_OBJECTS[type_name](load_schema())
    keys = list(coding_keys(swift_source(RESULTS_SWIFT), type_name).values())
    assert not schema_mismatch(schema_object["required"], list(schema_object["properties"]), keys)
    assert len(keys) == len(set(keys)), f"{type_name}: a JSON key appears twice in CodingKeys"


def test_swift_optionals_are_exactly_the_nullable_schema_fields() -> None:
    """A nullable schema field must be an Optional in Swift (else 'not measured' cannot be written as null)."""
    source = swift_source(RESULTS_SWIFT)
    cases = coding_keys(source, "BenchResult")
    defs = load_schema()["$defs"]
    props = defs["result"]["properties"]

    def nullable(prop: dict) -> bool:
        if "$ref" in prop:
            prop = defs[prop["$ref"].rsplit("/", 1)[-1]]
        kind = prop.get("type")
        return isinstance(kind, list) and "null" in kind

    assert {cases[name] for name in optional_properties(source, "BenchResult")} == {
        k for k, p in props.items() if nullable(p)}


def test_key_comparison_fails_when_schema_gains_a_field() -> None:
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
        "generated_from": "edgevit/bench/stats.py and edgevit/bench/device/ios.py (tests/test_ios_harness.py)",
        "relative_tolerance": 0.0,  # bit for bit: Stats.swift does the same operations in the same order
        "cases": cases,
        "errors": errors,
        "round_trim": [{"times": t, "kept": ios.trim_round(t)} for t in round_inputs],
        "protocol": [{"rounds": rounds, "samples": pooled, **stats.summarize(pooled, 0.1)}],
    }


def write_stats_reference(path: Path = REFERENCE) -> None:
    """Write the reference vectors the Swift StatsTests read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(stats_reference(), indent=1) + "\n", encoding="utf-8")


def test_stats_reference_is_current() -> None:
    assert REFERENCE.is_file(), f"{REFERENCE} is missing; {REGENERATE}"
    assert json.loads(REFERENCE.read_text(encoding="utf-8")) == stats_reference(), (
        f"{REFERENCE.name} is out of date with stats.py; {REGENERATE}")


def test_stats_reference_covers_the_tricky_cases() -> None:
    ref = stats_reference()
    by_name = {c["name"]: c for c in ref["cases"]}
    assert by_name["empty"]["median_ms"] is None and by_name["empty"]["p90_ms"] is None
    case = by_name["n=100: 100*0.29 is 28.999999999999996, so k=28"]
    s = sorted(case["samples"])
    assert case["trimmed_mean_ms"] == sum(s[28:72]) / 44  # floor of the float product, not of 29
    assert by_name["two"]["median_ms"] == 1.5
    assert ref["round_trim"][4]["kept"] == [2.0, 2.0]  # ties: one max and one min are dropped
    assert ref["round_trim"][5]["kept"] == [5.0, 1.0, 3.0]


# --- Swift end-to-end fixtures -------------------------------------------------------------------------------

def _tiny_net() -> torch.nn.Module:
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
    from edgevit.models.checkpoints import sha256_of

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


def test_swift_fixtures_are_consistent() -> None:
    from edgevit.models.checkpoints import sha256_of

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


def fixture_config() -> dict:
    """The config.json `edgevit harness ios` writes for the fixtures, which the Swift tests load."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for path in FIXTURES.iterdir():
            if path.name == "config.json":
                continue
            target = folder / path.name.removesuffix(FIXTURE_SUFFIX)
            (shutil.copytree if path.is_dir() else shutil.copy2)(path, target)
        entries = ios.find_artifacts(folder)
        written = ios.write_config(folder, entries, 20, 50, 1, stats.DEFAULT_TRIM_FRACTION, list(ios.COMPUTE_UNITS))
        return json.loads(written.read_text(encoding="utf-8"))


def write_fixture_config(path: Path = FIXTURES / "config.json") -> None:
    """Write the fixtures' config.json (as staged by `edgevit harness ios`)."""
    path.write_text(json.dumps(fixture_config(), indent=2) + "\n", encoding="utf-8")


def test_fixture_config_is_what_staging_writes() -> None:
    path = FIXTURES / "config.json"
    assert path.is_file(), f"{path} is missing; {REGENERATE}"
    on_disk, now = json.loads(path.read_text(encoding="utf-8")), fixture_config()
    assert on_disk.pop("created") and now.pop("created")
    assert on_disk == now, f"{path.name} is not what edgevit harness ios writes now; {REGENERATE}"


# --- the Swift package, built and run ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def swift_package() -> SwiftPackage:
    """ios_harness/ built with the Swift toolchain (incremental after `make swift-test`)."""
    swift = find_swift()
    if swift is None:
        pytest.skip("no Swift toolchain (swift on PATH or /opt/swift/usr/bin/swift): the Swift package's own "
                    "outputs are not checked; install Swift 6 to run these tests")
    package = SwiftPackage(swift)
    package.build()
    return package


class Doubler(torch.nn.Module):
    """What the Swift tests' scripted runtime computes: 2 x the input, flattened."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (2.0 * x).flatten(1)


@pytest.fixture(scope="module")
def staged_for_swift(tmp_path_factory) -> Path:
    """A folder staged by `edgevit harness ios`: one tensor-input artifact with a real validation bundle."""
    from edgevit.validate.inputs import ValidationInput, write_bundle

    artifacts = tmp_path_factory.mktemp("swift-artifacts")
    stem = "toy.coreml.fp32"
    (artifacts / f"{stem}.mlpackage").mkdir()  # the scripted runtime never opens it
    (artifacts / f"{stem}.mlpackage/Manifest.json").write_text('{"itemInfoEntries": {}}')  # an (empty) package
    gen = torch.Generator().manual_seed(5)
    inputs = [ValidationInput(f"random_{i}", torch.randn((1, 3, 8, 8), generator=gen), None) for i in range(3)]
    write_bundle(inputs, artifacts / f"{stem}.validation", (1, 192))
    manifest = {"manifest_version": 1, "model": "toy", "artifact": f"{stem}.mlpackage", "sha256": "ab" * 32,
                "target": "coreml", "backend": None, "precision": "fp32",
                "input": {"name": "x", "kind": "tensor", "shape": [1, 3, 8, 8]},
                "output": {"name": "y", "kind": "logits"}, "tool_versions": {"coremltools": "9.0"}}
    (artifacts / f"{stem}.json").write_text(json.dumps(manifest))
    out = ios.stage_ios_harness(artifacts, tmp_path_factory.mktemp("swift-staged") / "ios", rounds=4, iterations=6)
    return ios.staged_artifacts_dir(out)


@pytest.fixture(scope="module")
def swift_export(swift_package, staged_for_swift, tmp_path_factory) -> Path:
    """What the Swift session writes for the staged folder (ExportTests, on the scripted runtime)."""
    export = tmp_path_factory.mktemp("swift-export")
    proc = swift_package.test("EdgevitHarnessTests.ExportTests", env={
        "EDGEVIT_SWIFT_ARTIFACTS": str(staged_for_swift), "EDGEVIT_SWIFT_EXPORT": str(export)})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return export


def test_swift_results_conform_to_the_schema_key_for_key(swift_export) -> None:
    doc = json.loads((swift_export / "results.json").read_text())
    validate_document(doc, "Swift results.json")
    schema = load_schema()
    assert set(doc) == set(schema["required"])
    assert doc["harness"] == "ios" and doc["created"].endswith("+00:00")
    by_unit = {r["compute_unit"]: r for r in doc["results"]}
    assert list(by_unit) == list(ios.COMPUTE_UNITS)
    for r in doc["results"]:
        assert set(r) == set(schema["$defs"]["result"]["properties"])  # every key, nulls written out
        assert set(r["device"]) == set(schema["$defs"]["device"]["properties"])
    ok, failed = by_unit["cpuOnly"], by_unit["cpuAndGPU"]
    assert ok["status"] == "ok" and ok["error"] is None
    assert ok["iterations"] == len(ok["per_iteration_ms"]) == 4 * (6 - 2)
    summary = stats.summarize(ok["per_iteration_ms"], ok["trim_fraction"])
    assert {k: ok[k] for k in summary} == summary  # exactly stats.py's numbers
    assert ok["peak_memory_mb"] == 150.0 and ok["memory_kind"] == "phys_footprint"
    assert ok["artifact_sha256"] == "ab" * 32 and ok["model"] == "toy" and ok["input_shape"] == [1, 3, 8, 8]
    assert failed["status"] == "failed" and "scripted load failure" in failed["error"]
    for key in ("median_ms", "trimmed_mean_ms", "p90_ms", "peak_memory_mb", "memory_kind", "load_time_ms"):
        assert failed[key] is None, key


def test_edgevit_report_accepts_swift_results(swift_export, tmp_path) -> None:
    proc = subprocess.run([sys.executable, "-m", "edgevit.cli", "report", str(swift_export / "results.json"),
                           "--out", str(tmp_path / "reports")], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = (tmp_path / "reports/report.md").read_text()
    assert "toy" in report and "cpuOnly" in report


def test_swift_device_outputs_pass_edgevit_validate(swift_export, staged_for_swift) -> None:
    from edgevit.validate.device_outputs import DEVICE_OUTPUTS_FORMAT, device_parity
    from edgevit.validate.inputs import read_bundle

    manifest = json.loads((staged_for_swift / "toy.coreml.fp32.json").read_text())
    inputs = read_bundle(staged_for_swift / "toy.coreml.fp32.validation")
    for name, unit in (("toy.coreml.fp32.device-outputs.json", "all"),
                       ("toy.coreml.fp32.cpuOnly.device-outputs.json", "cpuOnly")):
        data = json.loads((swift_export / name).read_text())
        assert data["format"] == DEVICE_OUTPUTS_FORMAT and data["harness"] == "ios"
        assert data["created"].endswith("+00:00") and data["error"] is None and data["compute_unit"] == unit
        result = device_parity(Doubler(), manifest, inputs, swift_export / name)
        assert result.status == "pass", result.reason
        assert result.overall.max_abs == 0.0  # float32 values survive Swift's JSON exactly
        assert "scripted runtime" in result.reason  # the file's warnings are passed on
    assert not (swift_export / "toy.coreml.fp32.cpuAndGPU.device-outputs.json").exists()


def test_swift_tool_checks_what_edgevit_harness_ios_stages(swift_package, staged_for_swift, tmp_path) -> None:
    proc = swift_package.tool("--artifacts", str(staged_for_swift), "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 artifact(s); 1 warm-up + 4 x 6 iterations" in proc.stdout
    assert "ok: the staged folder is complete" in proc.stdout

    broken = tmp_path / "broken"
    shutil.copytree(staged_for_swift, broken)
    config = json.loads((broken / "config.json").read_text())
    config["compute_units"] = ["all", "ane"]
    (broken / "config.json").write_text(json.dumps(config))
    proc = swift_package.tool("--artifacts", str(broken), "--check")
    assert proc.returncode == 2
    assert ('error: config.json: compute_units[1]: unknown compute unit "ane"; choose from cpuOnly, cpuAndGPU, '
            'cpuAndNeuralEngine, all') in proc.stderr
    (broken / "config.json").write_text("{not json")
    proc = swift_package.tool("--artifacts", str(broken), "--check")
    assert proc.returncode == 2 and "error: config.json is not valid JSON" in proc.stderr
    proc = swift_package.tool("--artifacts", str(broken), "--out", str(tmp_path / "r.json"), "--rounds", "0")
    assert proc.returncode == 2 and "usage: edgevit-ios-bench" in proc.stderr


# --- the device-outputs format both harnesses write (docs/device-outputs.md) -----------------------------------

def _device_doc(**changes: object) -> dict:
    doc = {"format": "edgevit-device-outputs/2", "harness": "ios", "created": "2025-01-31T12:00:00+00:00",
           "artifact": "m.coreml.fp32.mlpackage", "artifact_sha256": None,
           "device": {"kind": "iphone", "name": "iPhone15,2", "os": "iOS 17.4", "cpu": "A16"},
           "compute_unit": "all", "outputs": [{"name": "photo_0", "shape": [1, 3], "values": [0.5, None, -1.0]}],
           "warnings": [], "error": None}
    return {**doc, **changes}


def _read(tmp_path: Path, doc: dict) -> dict:
    from edgevit.validate.device_outputs import read_device_outputs

    path = tmp_path / "d.device-outputs.json"
    path.write_text(json.dumps(doc))
    return read_device_outputs(path)


def test_device_outputs_reader_takes_both_formats(tmp_path) -> None:
    import numpy as np

    data = _read(tmp_path, _device_doc())
    assert np.array_equal(data["outputs"][0]["array"], np.array([0.5, np.nan, -1.0], dtype=np.float32), equal_nan=True)
    ios_v1 = {"format": "edgevit-device-outputs/1", "artifact": "m", "artifact_sha256": None, "device": {},
              "compute_unit": "all", "warnings": ["w"],
              "outputs": [{"name": "a", "shape": [4], "values": [1.0, "NaN", "Infinity", "-Infinity"]}]}
    data = _read(tmp_path, ios_v1)
    assert data["outputs"][0]["array"].tolist()[2:] == [math.inf, -math.inf] and data["error"] is None
    android_v1 = {"format": "edgevit-device-outputs/1", "artifact": "m.pte", "artifact_sha256": None, "device": {},
                  "outputs": [{"name": "a", "shape": [1, 2], "values": [None, 2]}], "error": "input b failed"}
    data = _read(tmp_path, android_v1)
    assert data["warnings"] == [] and data["compute_unit"] is None and data["error"] == "input b failed"


@pytest.mark.parametrize(("doc", "message"), [
    (_device_doc(format="edgevit-results/1"), "is not a device-outputs file"),
    ({k: v for k, v in _device_doc().items() if k != "warnings"}, "lacks warnings"),
    (_device_doc(outputs=[{"name": "a", "shape": [2], "values": [1.0]}]), r"1 values do not fill shape \[2\]"),
    (_device_doc(outputs=[{"name": "a", "shape": [1], "values": ["x"]}]), r"values\[0\] is 'x', not a number"),
    (_device_doc(outputs=[{"name": "a", "shape": [1], "values": [1]}] * 2), "input 'a' appears twice"),
    (_device_doc(compute_unit=3), "compute_unit is 3"),
    (_device_doc(warnings=[1]), "warnings must be a list of strings"),
    ([1, 2], "must hold a JSON object"),
])
def test_device_outputs_reader_says_what_is_wrong(tmp_path, doc, message) -> None:
    with pytest.raises(ArtifactError, match=message):
        _read(tmp_path, doc)


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


def test_stage_config_lists_every_artifact_with_defaults(artifacts, tmp_path) -> None:
    """What Swift loads from it is checked by test_swift_tool_checks_what_edgevit_harness_ios_stages."""
    out = ios.stage_ios_harness(artifacts, tmp_path / "staged")
    config = json.loads((ios.staged_artifacts_dir(out) / "config.json").read_text())
    assert config["format"] == ios.CONFIG_FORMAT
    assert config["compute_units"] == list(ios.COMPUTE_UNITS) and (config["rounds"], config["iterations"]) == (20, 50)
    for entry in config["artifacts"]:
        assert {"artifact", "kind", "manifest", "validation"} <= set(entry)
        assert entry["kind"] in ios.KINDS and entry["artifact"].endswith("." + entry["kind"])


def test_stage_excludes_build_outputs_and_resolves_links(artifacts, tmp_path):
    harness = tmp_path / "harness"
    shutil.copytree(ios.HARNESS_DIR, harness, symlinks=True, ignore=shutil.ignore_patterns(".build"))
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
    write_fixture_config()
    print(f"wrote {FIXTURES}")
