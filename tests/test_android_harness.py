"""The Android harness: its Java measuring core (compiled here with javac) and the adb driver (real adb, no phone).

The Java core must compute the statistics exactly as edgevit.bench.stats does and write JSON that conforms to
schema.json, so the same samples go through both. The adb tests use the real `adb` binary with no device
attached: they check what a user sees when no phone is there, and the exact command sequence of a run.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import shutil
import socket
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from edgevit.base.errors import ArtifactError, EdgevitError
from edgevit.bench import stats
from edgevit.bench.device import android
from edgevit.bench.device.android import (
    INSTRUMENTATION,
    PACKAGE,
    REMOTE_DIR,
    AdbDevice,
    AdbNotFoundError,
    AndroidDeviceError,
    bench_on_android,
    check_artifacts,
    choose_device,
    device_outputs_path,
    format_plan,
    list_devices,
    parse_device_arg,
    parse_devices,
    plan_android_bench,
)
from edgevit.bench.results import schema_path_for, validate_document
from edgevit.validate.device_outputs import DEVICE_OUTPUTS_FORMAT, DEVICE_OUTPUTS_KEYS, device_parity

ROOT = Path(__file__).resolve().parents[1]
JAVA_SRC = ROOT / "android_harness/app/src/main/java"
CORE = JAVA_SRC / "dev/edgevit/harness/core"
# StatsCli and its SyntheticRunner are test-only: the app's unit-test source set, compiled here with the core.
TEST_CORE = ROOT / "android_harness/app/src/test/java/dev/edgevit/harness/core"
CLI = "dev.edgevit.harness.core.StatsCli"


# ---------------------------------------------------------------- the Java core, compiled with plain javac


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    """The core (and the test-only StatsCli driving it) compiled at Java 8 level: it must build with the JDK
    alone and stay within Android's Java APIs."""
    javac, java = shutil.which("javac"), shutil.which("java")
    if not javac or not java:
        pytest.skip("javac/java not found: install a JDK (e.g. `apt-get install openjdk-17-jdk-headless`) "
                    "to test the Android harness core")
    out = tmp_path_factory.mktemp("java-classes")
    sources = sorted(str(p) for folder in (CORE, TEST_CORE) for p in folder.glob("*.java"))
    proc = subprocess.run([javac, "--release", "8", "-Xlint:all", "-Xlint:-options", "-d", str(out),
                           *sources], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


def test_app_ships_no_test_runner():
    """The synthetic runner and its CLI are test code: the app's own sources (src/main) neither hold nor use them."""
    main = sorted(JAVA_SRC.rglob("*.java"))
    assert main and not [p.name for p in main if re.search(r"SyntheticRunner|StatsCli", p.read_text())]
    assert {p.name for p in TEST_CORE.glob("*.java")} == {"StatsCli.java", "SyntheticRunner.java"}


def run_cli(classes: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["java", "-cp", str(classes), CLI, *args], input=stdin, capture_output=True, text=True,
                          timeout=120)


def java_stats(classes: Path, samples: list[float], trim: float) -> dict:
    proc = run_cli(classes, "stats", "--trim", repr(trim), stdin="\n".join(map(repr, samples)))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    validate_document(doc, "StatsCli output")
    return doc


def _random_samples(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.lognormvariate(1.5, 0.4) for _ in range(n)]


SAMPLE_SETS = {
    "one sample": ([7.25], 0.1),
    "odd count": ([3.0, 1.0, 2.0, 5.0, 4.0, 9.5, 0.125], 0.1),
    "even count": ([10.0, 2.5, 3.75, 1.0, 8.0, 6.5], 0.1),
    "ten, trim drops one each end": (_random_samples(10, 1), 0.1),
    "thirty, trim drops three": (_random_samples(30, 2), 0.1),
    "nine, trim drops none": (_random_samples(9, 3), 0.1),
    "fifty, heavy trim": (_random_samples(50, 4), 0.45),
    "no trim": (_random_samples(17, 5), 0.0),
    "ties and an outlier": ([4.0, 4.0, 4.0, 4.0, 250.0, 4.0, 3.9, 4.1], 0.25),
    "two samples": ([1.0000001, 1.0000003], 0.1),
}


@pytest.mark.parametrize("name", list(SAMPLE_SETS))
def test_java_statistics_equal_python(java_classes, name):
    samples, trim = SAMPLE_SETS[name]
    result = java_stats(java_classes, samples, trim)["results"][0]
    expected = stats.summarize(samples, trim)
    for key in ("median_ms", "trimmed_mean_ms", "p90_ms"):
        assert math.isclose(result[key], expected[key], rel_tol=0, abs_tol=1e-9), (key, result[key], expected[key])
    assert result["trim_fraction"] == trim
    assert result["per_iteration_ms"] == samples  # doubles survive the Java round trip exactly
    assert result["iterations"] == len(samples)
    assert result["status"] == "ok" and result["error"] is None


def test_java_no_samples_are_null_not_zero(java_classes):
    result = java_stats(java_classes, [], 0.1)["results"][0]
    assert result["median_ms"] is None and result["trimmed_mean_ms"] is None and result["p90_ms"] is None
    assert result["iterations"] == 0 and result["status"] == "not_run"


def test_java_rejects_trim_fraction_python_rejects(java_classes):
    with pytest.raises(ValueError):
        stats.trimmed_mean([1.0, 2.0], 0.5)
    proc = run_cli(java_classes, "stats", "--trim", "0.5", stdin="1.0 2.0")
    assert proc.returncode != 0 and "trim_fraction must be in [0, 0.5)" in proc.stderr


def _emitted_keys(source: Path, marker: str = "schema fields") -> list[str]:
    """The names a Java toJsonMap()/document() puts between its BEGIN/END `marker` comments."""
    text = source.read_text()
    block = re.search(rf"// BEGIN {marker}.*?\n(.*?)// END {marker}", text, re.S)
    assert block, f"{source.name} lost its {marker} markers"
    return re.findall(r'\.put\("([^"]+)"', block.group(1))


def test_java_result_fields_are_the_schema_fields():
    """The Java core writes results schema v2 (ResultJson.SCHEMA_VERSION), which edgevit still reads: its fields
    are v2's, field for field (v3 added host-only facts: the physical peak, the CPU's ISA)."""
    declared = int(re.search(r"SCHEMA_VERSION = (\d+);", (CORE / "ResultJson.java").read_text()).group(1))
    schema = json.loads(schema_path_for({"schema_version": declared}).read_text())
    assert schema["properties"]["schema_version"]["const"] == declared
    assert _emitted_keys(CORE / "BenchResult.java") == schema["$defs"]["result"]["required"]
    assert set(schema["$defs"]["result"]["properties"]) == set(schema["$defs"]["result"]["required"])
    assert _emitted_keys(CORE / "DeviceInfo.java") == schema["$defs"]["device"]["required"]
    assert _emitted_keys(CORE / "ResultJson.java") == schema["required"]


# ------------------------------------------------- a whole session on the core, with a pure-Java runner


def _artifact(folder: Path, stem: str, content: bytes, *, manifest: dict | None = None, sha: str | None = None,
              bundle: bool = False) -> Path:
    pte = folder / f"{stem}.pte"
    pte.write_bytes(content)
    if manifest is not None:
        manifest = {"manifest_version": 1, "model": stem.split(".")[0], "artifact": pte.name,
                    "sha256": sha or hashlib.sha256(content).hexdigest(), "target": "executorch",
                    "backend": "xnnpack", "precision": "fp32",
                    "input": {"name": "x", "kind": "tensor", "shape": [1, 3, 8, 8]}, **manifest}
        (folder / f"{stem}.json").write_text(json.dumps(manifest))
    if bundle:
        import torch

        from edgevit.validate.inputs import ValidationInput, write_bundle

        gen = torch.Generator().manual_seed(0)
        inputs = [ValidationInput(f"random_{i}", torch.randn((1, 3, 8, 8), generator=gen) * 10.0, None)
                  for i in range(2)]
        write_bundle(inputs, folder / f"{stem}.validation", (1, 3, 8, 8))
    return pte


def test_session_writes_schema_results_and_device_outputs(java_classes, tmp_path):
    models, out = tmp_path / "models", tmp_path / "out"
    models.mkdir()
    good = _artifact(models, "toy.executorch.xnnpack.fp32", b"pte bytes", manifest={}, bundle=True)
    _artifact(models, "broken.executorch.xnnpack.fp32", b"FAIL_LOAD", manifest={})
    _artifact(models, "stale.executorch.xnnpack.fp32", b"new bytes", manifest={}, sha="0" * 64)
    _artifact(models, "apple.executorch.coreml.fp16", b"x", manifest={"backend": "coreml", "precision": "fp16"})
    _artifact(models, "orphan.executorch.xnnpack.fp32", b"y")

    proc = subprocess.run(["java", "-cp", str(java_classes), CLI, "session", "--model_dir", str(models),
                           "--out_dir", str(out), "--iterations", "7", "--warmup", "2", "--trim_fraction", "0.2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr  # 1: not every artifact ran, as intended here
    doc = json.loads((out / "results.json").read_text())
    validate_document(doc, "session results")
    assert doc["harness"] == "android"
    by_name = {r["artifact"]: r for r in doc["results"]}
    assert list(by_name) == sorted(by_name)  # artifacts run in name order

    toy = by_name[good.name]
    assert toy["status"] == "ok", toy["error"]
    assert (toy["model"], toy["form"], toy["runtime"], toy["backend"]) == ("toy", "executorch", "executorch",
                                                                           "xnnpack")
    assert toy["device"]["kind"] == "android" and toy["input_shape"] == [1, 3, 8, 8] and toy["batch"] == 1
    assert toy["artifact_sha256"] == hashlib.sha256(b"pte bytes").hexdigest()
    assert toy["iterations"] == len(toy["per_iteration_ms"]) == 7 and toy["warmup"] == 2
    assert toy["load_time_ms"] is not None and toy["load_time_ms"] >= 0
    assert toy["peak_memory_mb"] is None and toy["memory_kind"] is None  # no probe off-device: null, not 0
    expected = stats.summarize(toy["per_iteration_ms"], 0.2)
    for key in ("median_ms", "trimmed_mean_ms", "p90_ms", "trim_fraction"):
        assert math.isclose(toy[key], expected[key], rel_tol=0, abs_tol=1e-9)

    broken = by_name["broken.executorch.xnnpack.fp32.pte"]
    assert broken["status"] == "failed" and "load_status 20" in broken["error"]
    assert "OperatorMissing" in broken["error"] and broken["load_time_ms"] is None
    assert broken["per_iteration_ms"] == [] and broken["median_ms"] is None
    assert "sha256 differs" in by_name["stale.executorch.xnnpack.fp32.pte"]["error"]
    apple = by_name["apple.executorch.coreml.fp16.pte"]
    assert apple["status"] == "not_run" and apple["precision"] == "fp16"
    assert "no manifest" in by_name["orphan.executorch.xnnpack.fp32.pte"]["error"]

    outputs = json.loads((out / "toy.executorch.xnnpack.fp32.device-outputs.json").read_text())
    assert list(outputs) == list(DEVICE_OUTPUTS_KEYS)  # the one format both harnesses write, every key
    assert (outputs["format"], outputs["harness"]) == (DEVICE_OUTPUTS_FORMAT, "android")
    assert outputs["created"] == doc["created"] and outputs["created"].endswith("+00:00")
    assert outputs["artifact"] == good.name and outputs["artifact_sha256"] == toy["artifact_sha256"]
    assert outputs["device"] == toy["device"] and outputs["error"] is None
    assert outputs["compute_unit"] is None and outputs["warnings"] == []
    index = json.loads((models / "toy.executorch.xnnpack.fp32.validation/index.json").read_text())
    assert [o["name"] for o in outputs["outputs"]] == [i["name"] for i in index["inputs"]]
    for entry, output in zip(index["inputs"], outputs["outputs"], strict=True):
        tensor = np.fromfile(models / "toy.executorch.xnnpack.fp32.validation" / entry["tensor"], dtype="<f4")
        assert output["shape"] == entry["shape"]
        # the runner doubles its input: exact in float32, so any byte-order or float-printing slip shows
        assert np.array_equal(np.asarray(output["values"], dtype=np.float32), tensor * np.float32(2))
    assert not (out / "broken.executorch.xnnpack.fp32.device-outputs.json").exists()

    # `edgevit validate --device-outputs` reads it: the runner doubles its input, so a doubling "original" passes.
    from edgevit.validate.inputs import read_bundle

    manifest = {**json.loads((models / "toy.executorch.xnnpack.fp32.json").read_text()),
                "output": {"name": "out", "kind": "logits"}}  # as `edgevit convert` writes it
    result = device_parity(Doubler(), manifest, read_bundle(models / "toy.executorch.xnnpack.fp32.validation"),
                           out / "toy.executorch.xnnpack.fp32.device-outputs.json")
    assert result.status == "pass" and result.overall.max_abs == 0.0, result.reason


class Doubler(torch.nn.Module):
    """What StatsCli's pure-Java runner (SyntheticRunner, test-only) computes: 2 x the input, flattened."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (2.0 * x).flatten(1)


def test_java_device_outputs_fields_are_the_documented_ones():
    assert _emitted_keys(CORE / "DeviceOutputs.java", "device-outputs fields") == list(DEVICE_OUTPUTS_KEYS)
    assert DEVICE_OUTPUTS_FORMAT in (CORE / "DeviceOutputs.java").read_text()


def test_java_device_outputs_of_a_failed_input_are_refused_by_validate(java_classes, tmp_path):
    """An "error" (outputs incomplete) makes validate refuse the file instead of judging part of it."""
    models, out = tmp_path / "models", tmp_path / "out"
    models.mkdir()
    _artifact(models, "toy.executorch.xnnpack.fp32", b"pte bytes", manifest={}, bundle=True)
    (models / "toy.executorch.xnnpack.fp32.validation/random_1.f32").write_bytes(b"short")
    subprocess.run(["java", "-cp", str(java_classes), CLI, "session", "--model_dir", str(models), "--out_dir",
                    str(out), "--iterations", "2", "--warmup", "0"], capture_output=True, text=True, timeout=120)
    file = out / "toy.executorch.xnnpack.fp32.device-outputs.json"
    data = json.loads(file.read_text())
    assert [o["name"] for o in data["outputs"]] == ["random_0"] and "random_1" in data["error"]
    manifest = json.loads((models / "toy.executorch.xnnpack.fp32.json").read_text())
    with pytest.raises(ArtifactError, match="android harness reported an error, so its outputs are incomplete"):
        device_parity(Doubler(), manifest, [], file)  # refused before any comparison


def test_session_with_no_artifacts_says_what_to_push(java_classes, tmp_path):
    proc = subprocess.run(["java", "-cp", str(java_classes), CLI, "session", "--model_dir", str(tmp_path / "none"),
                           "--out_dir", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "adb push" in proc.stderr
    validate_document(json.loads((tmp_path / "out/results.json").read_text()), "empty session")


# ---------------------------------------------------------------- the adb driver


def _pair(folder: Path, stem: str, bundle: bool) -> Path:
    pte = folder / f"{stem}.pte"
    pte.write_bytes(b"pte")
    (folder / f"{stem}.json").write_text(json.dumps({"model": stem.split(".")[0], "sha256": "0" * 64}))
    if bundle:
        (folder / f"{stem}.validation").mkdir()
        (folder / f"{stem}.validation/index.json").write_text("{}")
    return pte


def test_plan_is_the_exact_adb_command_sequence(tmp_path):
    a = _pair(tmp_path, "swiftformer-l1.executorch.xnnpack.fp32", bundle=True)
    b = _pair(tmp_path, "fastvit-t8.executorch.xnnpack.fp32", bundle=False)
    out, apk = tmp_path / "bench/android.json", tmp_path / "app-debug.apk"
    steps = plan_android_bench([a, b], "R58M123ABC", out, 50, 10, apk)
    s = ["adb", "-s", "R58M123ABC"]
    assert [list(step.argv) for step in steps] == [
        ["adb", "devices", "-l"],
        [*s, "install", "-r", "-t", str(apk)],
        [*s, "shell", "rm", "-rf", "/data/local/tmp/edgevit"],
        [*s, "shell", "mkdir", "-p", "/data/local/tmp/edgevit"],
        [*s, "push", str(a), str(tmp_path / "swiftformer-l1.executorch.xnnpack.fp32.json"),
         str(tmp_path / "swiftformer-l1.executorch.xnnpack.fp32.validation"), "/data/local/tmp/edgevit/"],
        [*s, "push", str(b), str(tmp_path / "fastvit-t8.executorch.xnnpack.fp32.json"), "/data/local/tmp/edgevit/"],
        [*s, "shell", "chmod", "-R", "a+rX", "/data/local/tmp/edgevit"],
        [*s, "shell", "run-as", "dev.edgevit.harness", "rm", "-rf", "files/edgevit"],
        [*s, "shell", "am", "instrument", "-w", "-r", "-e", "model_dir", "/data/local/tmp/edgevit",
         "-e", "iterations", "50", "-e", "warmup", "10", "-e", "trim_fraction", "0.1", "-e", "results",
         "results.json", "dev.edgevit.harness/dev.edgevit.harness.BenchInstrumentation"],
        [*s, "exec-out", "run-as", "dev.edgevit.harness", "cat", "files/edgevit/results.json"],
        [*s, "exec-out", "run-as", "dev.edgevit.harness", "cat",
         "files/edgevit/swiftformer-l1.executorch.xnnpack.fp32.device-outputs.json"],
    ]
    assert steps[-2].stdout_to == out
    assert steps[-1].stdout_to == device_outputs_path(out, a) == tmp_path / (
        "bench/swiftformer-l1.executorch.xnnpack.fp32.device-outputs.json")
    assert (PACKAGE, REMOTE_DIR) == ("dev.edgevit.harness", "/data/local/tmp/edgevit")
    assert INSTRUMENTATION == "dev.edgevit.harness/dev.edgevit.harness.BenchInstrumentation"
    text = format_plan(steps)
    assert f"cat files/edgevit/results.json > {out}" in text and text.count("\n# ") == len(steps) - 1


def test_plan_without_apk_or_serial(tmp_path):
    a = _pair(tmp_path, "m.executorch.xnnpack.fp32", bundle=False)
    steps = plan_android_bench([a], None, tmp_path / "r.json", 5, 1, None, trim_fraction=0.2)
    assert list(steps[1].argv) == ["adb", "shell", "pm", "path", "dev.edgevit.harness"]
    assert all("-s" not in step.argv for step in steps)
    assert ("-e", "trim_fraction", "0.2") in {tuple(steps[-2].argv[i:i + 3]) for i in range(len(steps[-2].argv))}


def test_artifacts_are_checked_before_adb_runs(tmp_path):
    with pytest.raises(ArtifactError, match="ExecuTorch .pte artifacts only"):
        check_artifacts([tmp_path / "m.coreml.fp16.mlpackage"])
    orphan = tmp_path / "m.pte"
    orphan.write_bytes(b"x")
    with pytest.raises(ArtifactError, match="no manifest"):
        check_artifacts([orphan])
    (tmp_path / "b").mkdir()
    one, two = _pair(tmp_path, "m.x", False), _pair(tmp_path / "b", "m.x", False)
    with pytest.raises(ArtifactError, match="two artifacts are both named"):
        check_artifacts([one, two])
    with pytest.raises(EdgevitError, match="iterations must be at least 1"):
        bench_on_android([one], None, tmp_path / "r.json", 0, 0, None)


def test_missing_adb_says_how_to_install_it(tmp_path, monkeypatch):
    a = _pair(tmp_path, "m.executorch.xnnpack.fp32", bundle=False)
    empty = tmp_path / "empty-path"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("ANDROID_HOME", raising=False)
    monkeypatch.delenv("ANDROID_SDK_ROOT", raising=False)
    with pytest.raises(AdbNotFoundError) as info:
        bench_on_android([a], None, tmp_path / "r.json", 10, 2, None)
    assert isinstance(info.value, EdgevitError)
    assert "apt-get install adb" in str(info.value) and "platform-tools" in str(info.value)


def test_device_arg_and_device_choice():
    assert parse_device_arg("android") is None and parse_device_arg("android:emulator-5554") == "emulator-5554"
    with pytest.raises(AndroidDeviceError, match="android:SERIAL"):
        parse_device_arg("ios")
    # the shapes `adb devices -l` prints (parsing only; no device is pretended to answer a command)
    listed = parse_devices(
        "List of devices attached\n"
        "R58M123ABC             device usb:1-1 product:beyond1 model:SM_G973F device:beyond1 transport_id:1\n"
        "0A1B2C3D               unauthorized usb:1-2 transport_id:2\n"
        "0123456789ABCDEF       no permissions (user in plugdev group; are your udev rules wrong?); see "
        "[http://developer.android.com/tools/device.html] usb:1-3 transport_id:3\n"
    )
    assert [(d.serial, d.state) for d in listed] == [("R58M123ABC", "device"), ("0A1B2C3D", "unauthorized"),
                                                     ("0123456789ABCDEF", "no permissions")]
    assert listed[0].details["model"] == "SM_G973F" and listed[2].details == {"usb": "1-3", "transport_id": "3"}
    assert choose_device(listed, None).serial == "R58M123ABC"
    with pytest.raises(AndroidDeviceError, match="Allow USB debugging"):
        choose_device(listed, "0A1B2C3D")
    with pytest.raises(AndroidDeviceError, match="udev"):
        choose_device(listed, "0123456789ABCDEF")
    with pytest.raises(AndroidDeviceError, match="several Android devices.*--device android:SERIAL"):
        choose_device([listed[0], AdbDevice("emulator-5554", "device")], None)


def test_instrumentation_result_reads_codes_and_multiline_values():
    from edgevit.bench.device.android.instrument import instrumentation_result

    lines = ["INSTRUMENTATION_STATUS: progress=1/2 m.pte", "INSTRUMENTATION_STATUS_CODE: 1",
             "INSTRUMENTATION_RESULT: edgevit_status=failed", "INSTRUMENTATION_RESULT: error=boom",
             "\tat dev.edgevit.harness.AndroidBench.run", "INSTRUMENTATION_CODE: -1"]
    assert instrumentation_result(lines) == (-1, {"edgevit_status": "failed",
                                                  "error": "boom\n\tat dev.edgevit.harness.AndroidBench.run"})
    assert instrumentation_result(["INSTRUMENTATION_CODE: ?"]) == (None, {})


def test_default_apk_is_the_harness_debug_build():
    assert android.DEFAULT_APK == ROOT / "android_harness/app/build/outputs/apk/debug/app-debug.apk"


# ------------------------------------------------------ the real adb binary, with no phone attached


@pytest.fixture(scope="module")
def real_adb(tmp_path_factory):
    """adb on PATH, its server on a private port and HOME (so no user's server is touched); killed at the end."""
    adb = shutil.which("adb")
    if not adb:
        pytest.skip("adb not on PATH: install it with `apt-get install adb` (`make test` does) to test the "
                    "Android driver against the real binary")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ANDROID_ADB_SERVER_PORT", str(port))
        mp.setenv("HOME", str(tmp_path_factory.mktemp("adb-home")))
        try:
            yield adb
        finally:
            subprocess.run([adb, "kill-server"], capture_output=True, timeout=60, check=False)


def test_real_adb_with_no_phone_says_how_to_connect_one(real_adb, tmp_path):
    assert list_devices(real_adb) == []
    a = _pair(tmp_path, "m.executorch.xnnpack.fp32", bundle=False)
    with pytest.raises(AndroidDeviceError) as info:
        bench_on_android([a], None, tmp_path / "r.json", 10, 2, None)
    message = str(info.value)
    assert "no Android device is connected" in message and "USB debugging" in message
    assert not (tmp_path / "r.json").exists()


def test_real_adb_with_an_absent_serial_names_it(real_adb, tmp_path):
    a = _pair(tmp_path, "m.executorch.xnnpack.fp32", bundle=False)
    with pytest.raises(AndroidDeviceError, match=r"'0123456789ABCDEF' is not connected \(adb sees: no devices\)"):
        bench_on_android([a], "0123456789ABCDEF", tmp_path / "r.json", 10, 2, None)


def test_real_adb_refuses_commands_to_an_absent_phone(real_adb):
    """What the plan's first device command gets from adb with no phone: an error, which the driver never hides."""
    proc = subprocess.run([real_adb, "-s", "0123456789ABCDEF", "shell", "pm", "path", android.PACKAGE],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "not found" in proc.stderr
