"""Run the CLI as a user does (a subprocess) and check how it refuses bad input."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

ENV = {**os.environ, "PYTHONWARNINGS": "ignore", "TQDM_DISABLE": "1"}


def edgevit(*args: str, cwd: Path | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgevit.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout, env=ENV)


def snapshot(folder: Path) -> dict[str, str]:
    """Every path under ``folder`` (hidden ones included) with a digest of its content ('dir' for folders)."""
    folder = Path(folder)
    if not folder.exists():
        return {}
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = "dir" if path.is_dir() else hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_refused(proc: subprocess.CompletedProcess, *needles: str, code: int = 2) -> str:
    """Non-zero exit, one 'error:' message containing every needle, and no traceback; returns the message."""
    text = proc.stdout + proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}, expected {code}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith(("error:", "edgevit: error:"))
              or ": error: " in line]
    assert len(errors) == 1, f"expected one error message, got:\n{proc.stderr[-3000:]}"
    message = proc.stderr[proc.stderr.index(errors[0]):]
    flat = " ".join(message.split())
    for needle in needles:
        assert needle in flat, f"{needle!r} not in: {flat}"
    return flat
