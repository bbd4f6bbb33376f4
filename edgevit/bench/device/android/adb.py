"""adb itself: finding the binary, running one command, and choosing the phone from `adb devices -l`."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgevit.bench.device.android.errors import AdbNotFoundError, AndroidDeviceError, AndroidHarnessError


@dataclass(frozen=True)
class AdbDevice:
    """One line of `adb devices -l`."""

    serial: str
    state: str  # device | unauthorized | offline | no permissions | recovery | sideload | bootloader | ...
    details: dict[str, str] = field(default_factory=dict)  # usb, product, model, device, transport_id

    def describe(self) -> str:
        model = self.details.get("model", "").replace("_", " ")
        return f"{self.serial} ({model}, {self.state})" if model else f"{self.serial} ({self.state})"


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


def run(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[bytes]:
    """Run one adb command to completion, its output captured; a missing binary or a hang becomes advice."""
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=timeout_s, check=False)
    except FileNotFoundError:
        raise AdbNotFoundError(f"cannot run {argv[0]}: it disappeared or is not executable; "
                               "reinstall adb (`sudo apt-get install adb`)") from None
    except subprocess.TimeoutExpired:
        raise AndroidHarnessError(f"`{shlex.join(argv)}` did not finish within {timeout_s:.0f} s. If the phone "
                                  "is asleep or locked, unlock it; else run `adb kill-server` and retry.") from None


def output_text(proc: subprocess.CompletedProcess[bytes]) -> str:
    """stdout and stderr of a finished command as one text (adb prints failures to either)."""
    return (proc.stdout + b"\n" + proc.stderr).decode("utf-8", "replace").strip()


def list_devices(adb: str = "adb") -> list[AdbDevice]:
    """What `adb devices -l` reports (this starts the adb server if it is not running)."""
    proc = run([adb, "devices", "-l"], 60)
    if proc.returncode != 0:
        raise AndroidDeviceError(f"`adb devices -l` failed: {output_text(proc)}. Try `adb kill-server` and retry.")
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
