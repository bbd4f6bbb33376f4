"""The benchmark run itself: `am instrument -w -r`, streamed for progress, and its result block read back."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence

from edgevit.bench.device.android.app import PACKAGE
from edgevit.bench.device.android.errors import AdbNotFoundError, AndroidHarnessError
from edgevit.bench.device.android.plan import Step


def stream(argv: Sequence[str], timeout_s: float, on_line: Callable[[str], None]) -> tuple[int, list[str]]:
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


def instrumentation_result(lines: list[str]) -> tuple[int | None, dict[str, str]]:
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


def run_instrumentation(step: Step, serial: str, adb: str, log: Callable[[str], None]) -> None:
    """Run the instrument step, logging the app's progress; raise with the phone's own reason if it failed."""
    def on_line(line: str) -> None:
        if line.startswith("INSTRUMENTATION_STATUS: progress="):
            log(line.split("=", 1)[1])

    try:
        _, lines = stream(step.argv, step.timeout_s, on_line)
    except subprocess.TimeoutExpired:
        subprocess.run([adb, "-s", serial, "shell", "am", "force-stop", PACKAGE], capture_output=True, timeout=60,
                       check=False)
        raise AndroidHarnessError(
            f"the benchmark on {serial} did not finish within {step.timeout_s:.0f} s and was stopped. Use fewer "
            "iterations or artifacts, or a longer timeout; keep the phone unlocked and plugged in.") from None
    code, result = instrumentation_result(lines)
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
