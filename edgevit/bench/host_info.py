"""Where a number was measured: the host's name, OS and CPU model, in the schema's device object."""

from __future__ import annotations

import platform
import socket
from pathlib import Path


def cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def host_device() -> dict:
    import os

    return {"kind": "host", "name": socket.gethostname(), "os": platform.platform(),
            "cpu": f"{cpu_model()} ({os.cpu_count()} logical cores)"}
