"""What can go wrong between the host and the phone, as errors a user can act on."""

from __future__ import annotations

from edgevit.base.errors import EdgevitError


class AdbNotFoundError(EdgevitError):
    """adb is not installed (or not on PATH)."""


class AndroidDeviceError(EdgevitError):
    """No usable phone: none attached, not authorized, offline, or several without a serial."""


class AndroidHarnessError(EdgevitError):
    """A step on the phone failed: install, push, the benchmark run itself, or reading its results."""
