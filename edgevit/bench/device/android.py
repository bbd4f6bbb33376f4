"""`edgevit bench --device android[:SERIAL]`: run `.pte` artifacts on a phone with the Android harness, over adb.

The harness app (android_harness/) benchmarks every `.pte` in /data/local/tmp/edgevit/ on ExecuTorch's Android
runtime and writes results in edgevit/bench/schema.json plus, per artifact with validation inputs, a
device-outputs file for `edgevit validate --device-outputs`. This module is the host side: it finds adb and
the phone, installs the app, pushes artifacts + manifests + validation inputs, runs the app's instrumentation
(`am instrument -w` blocks until the run ends, so nothing polls), pulls the files and checks them against the
schema. The adb commands are data (``plan_android_bench``) so `--dry-run` shows exactly what would run.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgevit.base.atomic import ensure_writable_dir
from edgevit.base.errors import ArtifactError, EdgevitError
from edgevit.bench.results import validate_document

PACKAGE = "dev.edgevit.harness"
INSTRUMENTATION = f"{PACKAGE}/{PACKAGE}.BenchInstrumentation"
REMOTE_DIR = "/data/local/tmp/edgevit"
APP_OUT_DIR = "files/edgevit"  # relative to the app's data dir, which is where `run-as` starts
RESULTS_NAME = "results.json"
DEFAULT_APK = Path(__file__).resolve().parents[3] / "android_harness/app/build/outputs/apk/debug/app-debug.apk"
DEFAULT_TIMEOUT_S = 3600.0

_INSTALL_HINTS = {
    "INSTALL_FAILED_UPDATE_INCOMPATIBLE": f"another build of the app is installed; run `adb uninstall {PACKAGE}`",
    "INSTALL_FAILED_USER_RESTRICTED": "the phone refused a USB install; allow 'Install via USB' in Developer options",
    "INSTALL_FAILED_NO_MATCHING_ABIS": "the APK has no native libraries for this phone's CPU (arm64-v8a/x86_64)",
    "INSTALL_FAILED_INSUFFICIENT_STORAGE": "the phone is out of storage",
    "INSTALL_FAILED_TEST_ONLY": "the APK is test-only; this driver installs with -t, update adb",
}


class AdbNotFoundError(EdgevitError):
    """adb is not installed (or not on PATH)."""


class AndroidDeviceError(EdgevitError):
    """No usable phone: none attached, not authorized, offline, or several without a serial."""


class AndroidHarnessError(EdgevitError):
    """A step on the phone failed: install, push, the benchmark run itself, or reading its results."""


@dataclass(frozen=True)
class AdbDevice:
    """One line of `adb devices -l`."""

    serial: str
    state: str  # device | unauthorized | offline | no permissions | recovery | sideload | bootloader | ...
    details: dict[str, str] = field(default_factory=dict)  # usb, product, model, device, transport_id

    def describe(self) -> str:
        model = self.details.get("model", "").replace("_", " ")
        return f"{self.serial} ({model}, {self.state})" if model else f"{self.serial} ({self.state})"


@dataclass(frozen=True)
class Step:
    """One adb invocation: what runs, why, where its stdout goes (if captured to a file), how long it may take."""

    kind: str  # devices | install | check-installed | shell | push | instrument | pull | pull-outputs
    argv: tuple[str, ...]
    why: str
    stdout_to: Path | None = None
    timeout_s: float = 120.0
    artifact: str | None = None  # for pull-outputs: the artifact whose outputs this reads


def find_adb(path: str | None = None) -> str:
    """The adb executable: on PATH (or `path`), else in $ANDROID_HOME / $ANDROID_SDK_ROOT platform-tools."""
    found = shutil.which("adb", path=path)
    if found:
        return found
    for var in ("ANDROID_HOME", "ANDROID_SDK_ROOT"):
        root = os.environ.get(var)
        candidate = Path(root, "platform-tools", "adb") if root else None
        if candidate and candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise AdbNotFoundError(
        "adb (Android Debug Bridge) is not installed or not on PATH, and `edgevit bench --device android` needs "
        "it to reach the phone. Install it: `sudo apt-get install adb` (Debian/Ubuntu), "
        "`brew install --cask android-platform-tools` (macOS), or unpack Android SDK Platform-Tools from "
        "https://developer.android.com/tools/releases/platform-tools and add it to PATH (or set ANDROID_HOME). "
        "Check with `adb version`."
    )


def parse_device_arg(spec: str) -> str | None:
    """`android` -> None (the only attached phone), `android:SERIAL` -> SERIAL."""
    kind, sep, serial = spec.partition(":")
    if kind != "android" or (sep and not serial):
        raise AndroidDeviceError(f"--device {spec!r}: expected `android` or `android:SERIAL` "
                                 "(serials are listed by `adb devices -l`)")
    return serial or None


def parse_devices(text: str) -> list[AdbDevice]:
    """Parse `adb devices -l` output (daemon start-up chatter and blank lines are skipped)."""
    devices = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        tokens = line.split()
        if len(tokens) < 2:
            continue
        serial, rest = tokens[0], tokens[1:]
        if rest[0] == "no" and len(rest) > 1 and rest[1].startswith("permissions"):
            state = "no permissions"
            rest = [t for t in rest[2:] if ":" in t and not t.startswith("(") and not t.startswith("[")]
        else:
            state, rest = rest[0], rest[1:]
        details = dict(t.split(":", 1) for t in rest if ":" in t)
        devices.append(AdbDevice(serial, state, details))
    return devices


def _run(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise AdbNotFoundError(f"cannot run {argv[0]}: it disappeared or is not executable; "
                               "reinstall adb (`sudo apt-get install adb`)") from None
    except subprocess.TimeoutExpired:
        raise AndroidHarnessError(f"`{shlex.join(argv)}` did not finish within {timeout_s:.0f} s. If the phone "
                                  "is asleep or locked, unlock it; else run `adb kill-server` and retry.") from None


def _text(proc: subprocess.CompletedProcess[bytes]) -> str:
    return (proc.stdout + b"\n" + proc.stderr).decode("utf-8", "replace").strip()


def list_devices(adb: str = "adb") -> list[AdbDevice]:
    """What `adb devices -l` reports (this starts the adb server if it is not running)."""
    proc = _run([adb, "devices", "-l"], 60)
    if proc.returncode != 0:
        raise AndroidDeviceError(f"`adb devices -l` failed: {_text(proc)}. Try `adb kill-server` and retry.")
    return parse_devices(proc.stdout.decode("utf-8", "replace"))


_STATE_ADVICE = {
    "unauthorized": "unlock the phone and accept the 'Allow USB debugging?' prompt (if none appears, revoke USB "
                    "debugging authorizations in Developer options and replug the cable)",
    "offline": "replug the cable or run `adb reconnect`; restart the phone if it stays offline",
    "no permissions": "adb cannot open the USB device: on Linux install udev rules "
                      "(`sudo apt-get install android-sdk-platform-tools-common`), add yourself to the plugdev "
                      "group, then replug the cable",
    "authorizing": "wait a few seconds and accept the prompt on the phone",
    "connecting": "wait a few seconds and retry",
}


def _not_ready(device: AdbDevice) -> AndroidDeviceError:
    advice = _STATE_ADVICE.get(device.state, "boot the phone normally (it is not in Android)")
    return AndroidDeviceError(f"Android device {device.describe()} is not ready ({device.state}): {advice}.")


def choose_device(devices: Sequence[AdbDevice], serial: str | None) -> AdbDevice:
    """The phone to use, or an error that says how to get to one."""
    if serial is not None:
        match = [d for d in devices if d.serial == serial]
        if not match:
            seen = ", ".join(d.describe() for d in devices) or "no devices"
            raise AndroidDeviceError(f"Android device {serial!r} is not connected (adb sees: {seen}). Check the "
                                     "cable and the serial with `adb devices -l`.")
        if match[0].state != "device":
            raise _not_ready(match[0])
        return match[0]
    if not devices:
        raise AndroidDeviceError(
            "no Android device is connected (`adb devices -l` lists none). Connect the phone by USB, enable "
            "Developer options > USB debugging, accept the 'Allow USB debugging?' prompt on the phone, and check "
            "that `adb devices -l` lists it as 'device'. (For Wi-Fi: `adb pair` / `adb connect HOST:PORT`.)"
        )
    ready = [d for d in devices if d.state == "device"]
    if len(ready) > 1:
        names = ", ".join(d.describe() for d in ready)
        raise AndroidDeviceError(f"several Android devices are connected ({names}); choose one with "
                                 "`--device android:SERIAL`.")
    if not ready:
        raise _not_ready(devices[0])
    return ready[0]


def _stem(artifact: Path) -> str:
    return artifact.name[: -len(".pte")]


def device_outputs_path(out: Path, artifact: Path) -> Path:
    """Where the phone's outputs for `artifact` are saved: beside the results file, `<stem>.device-outputs.json`."""
    return Path(out).with_name(f"{_stem(Path(artifact))}.device-outputs.json")


def _sidecars(artifact: Path) -> tuple[Path, Path]:
    """The manifest and validation-input folder of an artifact (same rule as edgevit.base.naming)."""
    stem = _stem(artifact)
    return artifact.with_name(stem + ".json"), artifact.with_name(stem + ".validation")


def check_artifacts(artifacts: Sequence[Path]) -> list[Path]:
    """Every artifact must be an existing `.pte` with its manifest; names must be unique (one folder on the phone)."""
    if not artifacts:
        raise ArtifactError("no artifacts to benchmark on Android: pass .pte files made by `edgevit convert "
                            "--target executorch`.")
    checked, names = [], {}
    for artifact in map(Path, artifacts):
        if artifact.suffix != ".pte":
            raise ArtifactError(f"{artifact}: the Android harness runs ExecuTorch .pte artifacts only "
                                "(CoreML .mlpackage runs with ios_harness/, ONNX on the host).")
        if not artifact.is_file():
            raise ArtifactError(f"artifact not found: {artifact}")
        manifest, _ = _sidecars(artifact)
        if not manifest.is_file():
            raise ArtifactError(f"{artifact} has no manifest ({manifest.name}); was it made by `edgevit convert`?")
        if artifact.name in names:
            raise ArtifactError(f"two artifacts are both named {artifact.name} ({names[artifact.name]} and "
                                f"{artifact}); the phone keeps them in one folder, so benchmark them separately.")
        names[artifact.name] = artifact
        checked.append(artifact)
    return checked


def resolve_apk(apk: Path | None) -> Path | None:
    """The APK to install: the one given (which must exist), else the default debug build if it was built."""
    if apk is None:
        return DEFAULT_APK if DEFAULT_APK.is_file() else None
    if not Path(apk).is_file():
        raise AndroidHarnessError(f"APK not found: {apk}. Build it with `gradle assembleDebug` in android_harness/ "
                                  "(see android_harness/README.md).")
    return Path(apk)


def _check_settings(iterations: int, warmup: int, trim_fraction: float) -> None:
    if iterations < 1:
        raise AndroidHarnessError(f"iterations must be at least 1, got {iterations}")
    if warmup < 0:
        raise AndroidHarnessError(f"warm-up iterations cannot be negative, got {warmup}")
    if not 0.0 <= trim_fraction < 0.5:
        raise AndroidHarnessError(f"trim fraction must be in [0, 0.5), got {trim_fraction}")


def plan_android_bench(artifacts: Sequence[Path], serial: str | None, out: Path, iterations: int, warmup: int,
                       apk: Path | None, *, adb: str = "adb", trim_fraction: float = 0.1,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Step]:
    """The adb commands of one Android benchmark, in order (what `--dry-run` prints and what runs).

    With ``serial`` None the commands carry no `-s` (adb then uses the only phone); a real run always names
    the phone it chose. With ``apk`` None the app must already be installed, which the plan checks.
    """
    out = Path(out)
    target = [adb] if serial is None else [adb, "-s", serial]
    steps = [Step("devices", (adb, "devices", "-l"), "list attached phones and choose one", timeout_s=60)]
    if apk is not None:
        steps.append(Step("install", (*target, "install", "-r", "-t", str(apk)),
                          "install (or update) the harness app", timeout_s=300))
    else:
        steps.append(Step("check-installed", (*target, "shell", "pm", "path", PACKAGE),
                          "check the harness app is installed (no --apk given)"))
    steps += [
        Step("shell", (*target, "shell", "rm", "-rf", REMOTE_DIR), "remove artifacts of earlier runs"),
        Step("shell", (*target, "shell", "mkdir", "-p", REMOTE_DIR), "make the folder the app reads"),
    ]
    for artifact in map(Path, artifacts):
        manifest, bundle = _sidecars(artifact)
        sources = [str(artifact), str(manifest)] + ([str(bundle)] if bundle.is_dir() else [])
        steps.append(Step("push", (*target, "push", *sources, REMOTE_DIR + "/"),
                          f"push {artifact.name}, its manifest" + (" and validation inputs" if bundle.is_dir()
                                                                   else " (no validation inputs beside it)"),
                          timeout_s=900))
    run_args = {"model_dir": REMOTE_DIR, "iterations": str(iterations), "warmup": str(warmup),
                "trim_fraction": repr(float(trim_fraction)), "results": RESULTS_NAME}
    steps += [
        Step("shell", (*target, "shell", "chmod", "-R", "a+rX", REMOTE_DIR), "let the app read the pushed files"),
        Step("shell", (*target, "shell", "run-as", PACKAGE, "rm", "-rf", APP_OUT_DIR),
             "clear the app's earlier results so a stale file is never read back"),
        Step("instrument",
             (*target, "shell", "am", "instrument", "-w", "-r",
              *[a for key, value in run_args.items() for a in ("-e", key, value)], INSTRUMENTATION),
             f"benchmark every artifact on the phone ({warmup} warm-up + {iterations} timed iterations each); "
             "blocks until done", timeout_s=timeout_s),
        Step("pull", (*target, "exec-out", "run-as", PACKAGE, "cat", f"{APP_OUT_DIR}/{RESULTS_NAME}"),
             "read the results JSON", stdout_to=out),
    ]
    for artifact in map(Path, artifacts):
        if _sidecars(artifact)[1].is_dir():
            name = device_outputs_path(out, artifact).name
            steps.append(Step("pull-outputs", (*target, "exec-out", "run-as", PACKAGE, "cat", f"{APP_OUT_DIR}/{name}"),
                              f"read {artifact.name}'s outputs on the validation inputs (if it ran)",
                              stdout_to=device_outputs_path(out, artifact), artifact=artifact.name))
    return steps


def format_plan(steps: Sequence[Step]) -> str:
    """Shell-like listing of the steps, one command per line with its purpose (for `--dry-run`)."""
    lines = []
    for step in steps:
        command = shlex.join(step.argv) + (f" > {shlex.quote(str(step.stdout_to))}" if step.stdout_to else "")
        lines.append(f"# {step.why}\n{command}")
    return "\n".join(lines)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _check_simple(step: Step, proc: subprocess.CompletedProcess[bytes], serial: str) -> None:
    text = _text(proc)
    if step.kind == "install":
        if proc.returncode != 0 or "Failure" in text:
            hint = next((h for code, h in _INSTALL_HINTS.items() if code in text), "see adb's message")
            raise AndroidHarnessError(f"installing the harness app on {serial} failed: {text[-500:]}. Fix: {hint}.")
    elif step.kind == "check-installed":
        if "package:" not in text:
            raise AndroidHarnessError(
                f"the harness app ({PACKAGE}) is not installed on {serial} and no APK was given. Build it "
                "(android_harness/README.md: `gradle assembleDebug`) and pass --apk "
                "android_harness/app/build/outputs/apk/debug/app-debug.apk.")
    elif "run-as:" in text or (proc.returncode != 0 and "run-as" in step.argv):
        raise AndroidHarnessError(
            f"`run-as {PACKAGE}` was refused on {serial} ({text[-300:]}): the installed app is not a debuggable "
            "build. Install the debug APK (`gradle assembleDebug`, app-debug.apk) with --apk.")
    elif proc.returncode != 0:
        raise AndroidHarnessError(f"`{shlex.join(step.argv)}` failed on {serial}: {text[-500:]}")


def _stream(argv: Sequence[str], timeout_s: float, on_line: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run `argv`, handing each stdout line to `on_line` as it arrives; kill it after `timeout_s`."""
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except FileNotFoundError:
        raise AdbNotFoundError(f"cannot run {argv[0]}; reinstall adb (`sudo apt-get install adb`)") from None
    lines: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            on_line(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        reader.join(5)
        raise
    reader.join(5)
    return proc.returncode, lines


def _instrumentation_result(lines: list[str]) -> tuple[int | None, dict[str, str]]:
    """INSTRUMENTATION_CODE and the INSTRUMENTATION_RESULT key=value pairs of `am instrument -r` output."""
    code, result, key = None, {}, None
    for line in lines:
        if line.startswith("INSTRUMENTATION_CODE:"):
            try:
                code = int(line.split(":", 1)[1].strip())
            except ValueError:
                code = None
            key = None
        elif line.startswith("INSTRUMENTATION_RESULT:"):
            key, _, value = line.split(":", 1)[1].strip().partition("=")
            result[key] = value
        elif line.startswith("INSTRUMENTATION_"):
            key = None
        elif key is not None:  # a multi-line value (a stack trace) continues until the next marker
            result[key] += "\n" + line
    return code, result


def _run_instrumentation(step: Step, serial: str, adb: str, log: Callable[[str], None]) -> None:
    def on_line(line: str) -> None:
        if line.startswith("INSTRUMENTATION_STATUS: progress="):
            log(line.split("=", 1)[1])

    try:
        _, lines = _stream(step.argv, step.timeout_s, on_line)
    except subprocess.TimeoutExpired:
        subprocess.run([adb, "-s", serial, "shell", "am", "force-stop", PACKAGE], capture_output=True, timeout=60,
                       check=False)
        raise AndroidHarnessError(
            f"the benchmark on {serial} did not finish within {step.timeout_s:.0f} s and was stopped. Use fewer "
            "iterations or artifacts, or a longer timeout; keep the phone unlocked and plugged in.") from None
    code, result = _instrumentation_result(lines)
    output = "\n".join(lines)
    if "Unable to find instrumentation" in output or "INSTRUMENTATION_FAILED" in output:
        raise AndroidHarnessError(f"the harness app on {serial} has no benchmark instrumentation ({output[-300:]}); "
                                  "install the current debug build with --apk.")
    if code == -1 and result.get("edgevit_status") == "ok":
        if result.get("error"):
            log(f"the phone reported: {result['error']}")
        return
    if result.get("shortMsg") or "crashed" in output:
        why = result.get("longMsg") or result.get("shortMsg") or "process crashed"
        raise AndroidHarnessError(f"the harness app crashed on {serial}: {why}. See `adb -s {serial} logcat -d -s "
                                  "edgevit AndroidRuntime DEBUG` (a native crash in ExecuTorch shows there).")
    why = result.get("error") or output[-800:] or "no output"
    raise AndroidHarnessError(f"the benchmark on {serial} failed: {why}")


def _pull(step: Step, serial: str) -> None:
    proc = _run(step.argv, step.timeout_s)
    data = proc.stdout
    if proc.returncode != 0 or not data.lstrip().startswith(b"{"):
        text = _text(proc)[-300:]
        raise AndroidHarnessError(f"could not read {step.argv[-1]} from the app on {serial}: {text or 'empty'}")
    assert step.stdout_to is not None
    _write_atomic(step.stdout_to, data)


def _read_results(out: Path, artifacts: Sequence[Path]) -> dict:
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AndroidHarnessError(f"{out}: the phone's results are not valid JSON ({exc}); run again.") from None
    validate_document(doc, str(out))  # SchemaError with the JSON path of the first problem
    if doc["harness"] != "android":
        raise AndroidHarnessError(f"{out}: harness is {doc['harness']!r}, expected 'android'")
    ran = {r["artifact"] for r in doc["results"]}
    missing = [a.name for a in artifacts if a.name not in ran]
    if missing:
        raise AndroidHarnessError(f"{out}: the phone reported no result for {', '.join(missing)}; the app may "
                                  "have crashed mid-run (see `adb logcat -d -s edgevit AndroidRuntime`).")
    return doc


def bench_on_android(artifacts: Sequence[Path], serial: str | None, out: Path, iterations: int, warmup: int,
                     apk: Path | None, *, trim_fraction: float = 0.1, timeout_s: float = DEFAULT_TIMEOUT_S,
                     log: Callable[[str], None] | None = None) -> Path:
    """Benchmark `.pte` artifacts on an Android phone; returns `out`, a results file valid against schema.json.

    Device outputs of artifacts with validation inputs are saved beside it (``device_outputs_path``). ``apk``
    None uses the default debug build if it exists, else requires the app to be installed already.
    """
    say = log or (lambda _message: None)
    out = Path(out)
    _check_settings(iterations, warmup, trim_fraction)
    artifacts = check_artifacts(artifacts)
    adb = find_adb()
    device = choose_device(list_devices(adb), serial)
    say(f"Android device: {device.describe()}")
    apk = resolve_apk(apk)
    ensure_writable_dir(out.parent)
    steps = plan_android_bench(artifacts, device.serial, out, iterations, warmup, apk, adb=adb,
                               trim_fraction=trim_fraction, timeout_s=timeout_s)
    doc = None
    for step in steps[1:]:  # steps[0] (adb devices -l) already ran above
        if step.kind == "instrument":
            say(step.why)
            _run_instrumentation(step, device.serial, adb, say)
        elif step.kind == "pull":
            _pull(step, device.serial)
            doc = _read_results(out, artifacts)
        elif step.kind == "pull-outputs":
            assert doc is not None
            status = next(r["status"] for r in doc["results"] if r["artifact"] == step.artifact)
            if status == "ok":
                _pull(step, device.serial)
                say(f"device outputs: {step.stdout_to}")
        else:
            say(step.why)
            _check_simple(step, _run(step.argv, step.timeout_s), device.serial)
    assert doc is not None
    for r in doc["results"]:
        median = "not measured" if r["median_ms"] is None else f"{r['median_ms']:.3f} ms"
        say(f"{r['artifact']}: {r['status']}" + (f" ({r['error']})" if r["error"] else f", median {median}"))
    return out
