"""Keep native libraries' console chatter off the user's terminal.

ExecuTorch's cpuinfo prints five ``[cpuinfo_utils.cpp:...]`` lines to the C++ stderr when a method first
loads; Python's warning filters never see them. ``native_stderr_to_log`` points file descriptor 2 at a log
file for the duration of a native call, so nothing is lost and nothing reaches the terminal.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

NATIVE_LOG = Path(tempfile.gettempdir()) / "edgevit-native-stderr.log"


@contextlib.contextmanager
def native_stderr_to_log(log: Path = NATIVE_LOG) -> Iterator[Path]:
    """Redirect fd 2 (C/C++ stderr) into ``log`` (appended) inside the block; Python's own stderr too."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2 (embedded interpreters): nothing to redirect
        yield log
        return
    try:
        with open(log, "ab") as sink:
            os.dup2(sink.fileno(), 2)
            try:
                yield log
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def refusals_since(log: Path, offset: int, limit: int = 3) -> str:
    """The lines a native library wrote to ``log`` after byte ``offset`` that say it failed (XNNPACK's
    ``Failed to create StaticConstantPad node 94 with code: xnn_status_invalid_parameter``), joined; "" if none."""
    try:
        with open(log, "rb") as handle:
            handle.seek(offset)
            text = handle.read(1 << 20).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line.strip() for line in text.splitlines() if "fail" in line.lower()]
    return "; ".join(lines[:limit])
