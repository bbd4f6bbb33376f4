"""A real run: choose the phone, then carry out the plan step by step, pulling files back as they are ready."""

from __future__ import annotations

import shlex
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

from edgevit.base.atomic import ensure_writable_dir, write_bytes_atomic
from edgevit.bench.device.android import adb as adb_cli
from edgevit.bench.device.android.app import PACKAGE, resolve_apk
from edgevit.bench.device.android.artifacts import check_artifacts
from edgevit.bench.device.android.errors import AndroidHarnessError
from edgevit.bench.device.android.instrument import run_instrumentation
from edgevit.bench.device.android.plan import DEFAULT_TIMEOUT_S, Step, check_settings, plan_android_bench
from edgevit.bench.device.android.results import read_results

_INSTALL_HINTS = {
    "INSTALL_FAILED_UPDATE_INCOMPATIBLE": f"another build of the app is installed; run `adb uninstall {PACKAGE}`",
    "INSTALL_FAILED_USER_RESTRICTED": "the phone refused a USB install; allow 'Install via USB' in Developer options",
    "INSTALL_FAILED_NO_MATCHING_ABIS": "the APK has no native libraries for this phone's CPU (arm64-v8a/x86_64)",
    "INSTALL_FAILED_INSUFFICIENT_STORAGE": "the phone is out of storage",
    "INSTALL_FAILED_TEST_ONLY": "the APK is test-only; this driver installs with -t, update adb",
}


def _check_simple(step: Step, proc: subprocess.CompletedProcess[bytes], serial: str) -> None:
    text = adb_cli.output_text(proc)
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


def _pull(step: Step, serial: str) -> None:
    proc = adb_cli.run(step.argv, step.timeout_s)
    data = proc.stdout
    if proc.returncode != 0 or not data.lstrip().startswith(b"{"):
        text = adb_cli.output_text(proc)[-300:]
        raise AndroidHarnessError(f"could not read {step.argv[-1]} from the app on {serial}: {text or 'empty'}")
    assert step.stdout_to is not None
    write_bytes_atomic(step.stdout_to, data)


def bench_on_android(artifacts: Sequence[Path], serial: str | None, out: Path, iterations: int, warmup: int,
                     apk: Path | None, *, trim_fraction: float = 0.1, timeout_s: float = DEFAULT_TIMEOUT_S,
                     log: Callable[[str], None] | None = None) -> Path:
    """Benchmark `.pte` artifacts on an Android phone; returns `out`, a results file valid against schema.json.

    Device outputs of artifacts with validation inputs are saved beside it (``device_outputs_path``). ``apk``
    None uses the default debug build if it exists, else requires the app to be installed already.
    """
    say = log or (lambda _message: None)
    out = Path(out)
    check_settings(iterations, warmup, trim_fraction)
    artifacts = check_artifacts(artifacts)
    adb = adb_cli.find_adb()
    device = adb_cli.choose_device(adb_cli.list_devices(adb), serial)
    say(f"Android device: {device.describe()}")
    apk = resolve_apk(apk)
    ensure_writable_dir(out.parent)
    steps = plan_android_bench(artifacts, device.serial, out, iterations, warmup, apk, adb=adb,
                               trim_fraction=trim_fraction, timeout_s=timeout_s)
    doc = None
    for step in steps[1:]:  # steps[0] (adb devices -l) already ran above
        if step.kind == "instrument":
            say(step.why)
            run_instrumentation(step, device.serial, adb, say)
        elif step.kind == "pull":
            _pull(step, device.serial)
            doc = read_results(out, artifacts)
        elif step.kind == "pull-outputs":
            assert doc is not None
            status = next(r["status"] for r in doc["results"] if r["artifact"] == step.artifact)
            if status == "ok":
                _pull(step, device.serial)
                say(f"device outputs: {step.stdout_to}")
        else:
            say(step.why)
            _check_simple(step, adb_cli.run(step.argv, step.timeout_s), device.serial)
    assert doc is not None
    for r in doc["results"]:
        median = "not measured" if r["median_ms"] is None else f"{r['median_ms']:.3f} ms"
        say(f"{r['artifact']}: {r['status']}" + (f" ({r['error']})" if r["error"] else f", median {median}"))
    return out
