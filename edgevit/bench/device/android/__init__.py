"""`edgevit bench --device android[:SERIAL]`: run `.pte` artifacts on a phone with the Android harness, over adb.

The harness app (android_harness/) benchmarks every `.pte` in /data/local/tmp/edgevit/ on ExecuTorch's Android
runtime and writes results in edgevit/bench/schema.json plus, per artifact with validation inputs, a
device-outputs file for `edgevit validate --device-outputs`. This package is the host side: it finds adb and
the phone (``adb``), installs the app (``app``), pushes artifacts + manifests + validation inputs
(``artifacts``), runs the app's instrumentation (``instrument``: `am instrument -w` blocks until the run ends,
so nothing polls), pulls the files and checks them against the schema (``execute``, ``results``). The adb
commands are data (``plan``) so `--dry-run` shows exactly what would run.
"""

from edgevit.bench.device.android.adb import (
    AdbDevice,
    choose_device,
    find_adb,
    list_devices,
    parse_device_arg,
    parse_devices,
)
from edgevit.bench.device.android.app import (
    APP_OUT_DIR,
    DEFAULT_APK,
    INSTRUMENTATION,
    PACKAGE,
    REMOTE_DIR,
    RESULTS_NAME,
    resolve_apk,
)
from edgevit.bench.device.android.artifacts import check_artifacts, device_outputs_path
from edgevit.bench.device.android.errors import AdbNotFoundError, AndroidDeviceError, AndroidHarnessError
from edgevit.bench.device.android.execute import bench_on_android
from edgevit.bench.device.android.plan import DEFAULT_TIMEOUT_S, Step, format_plan, plan_android_bench

__all__ = [
    "APP_OUT_DIR", "DEFAULT_APK", "DEFAULT_TIMEOUT_S", "INSTRUMENTATION", "PACKAGE", "REMOTE_DIR", "RESULTS_NAME",
    "AdbDevice", "AdbNotFoundError", "AndroidDeviceError", "AndroidHarnessError", "Step", "bench_on_android",
    "check_artifacts", "choose_device", "device_outputs_path", "find_adb", "format_plan", "list_devices",
    "parse_device_arg", "parse_devices", "plan_android_bench", "resolve_apk",
]
