"""The harness app as the host sees it: its package, where it reads and writes on the phone, its APK."""

from __future__ import annotations

from pathlib import Path

from edgevit.bench.device.android.errors import AndroidHarnessError

PACKAGE = "dev.edgevit.harness"
INSTRUMENTATION = f"{PACKAGE}/{PACKAGE}.BenchInstrumentation"
REMOTE_DIR = "/data/local/tmp/edgevit"
APP_OUT_DIR = "files/edgevit"  # relative to the app's data dir, which is where `run-as` starts
RESULTS_NAME = "results.json"
DEFAULT_APK = Path(__file__).resolve().parents[4] / "android_harness/app/build/outputs/apk/debug/app-debug.apk"


def resolve_apk(apk: Path | None) -> Path | None:
    """The APK to install: the one given (which must exist), else the default debug build if it was built."""
    if apk is None:
        return DEFAULT_APK if DEFAULT_APK.is_file() else None
    if not Path(apk).is_file():
        raise AndroidHarnessError(f"APK not found: {apk}. Build it with `gradle assembleDebug` in android_harness/ "
                                  "(see android_harness/README.md).")
    return Path(apk)
