"""A ``.pte`` is checked before ExecuTorch gets it: a malformed program must not take the process down with it.

ExecuTorch's loader aborts (SIGABRT) or segfaults on some malformed files instead of returning an error, and a native
crash cannot be caught in Python. So, before any runner or profiler loads a ``.pte`` in this process:

1. the file is read through the closed world (a regular file, not a link, within the size limit) and its header
   checked: the flatbuffer file identifier ``ET..`` at bytes 4-8 and a root offset inside the file;
2. a forked child loads it the way edgevit will (``Runtime.load_program`` with ExecuTorch's own
   ``Verification.InternalConsistency``, ``load_method("forward")``, the pybindings module the profiler uses), checks
   the declared input size against ``MAX_INPUT_ELEMENTS`` and runs ``forward`` once on zeros. A child killed by a
   signal, or one that does not finish within ``PROBE_TIMEOUT_S``, becomes an ArtifactError naming what happened.

A child that fails cleanly (a Python exception) lets the caller go on: its own load then raises the same error,
which edgevit.validate.runtimes turns into one paragraph.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import signal
import time
from pathlib import Path

from edgevit.base.artifact_folder import file_head
from edgevit.base.errors import ArtifactError

PTE_IDENTIFIER = b"ET"  # flatbuffer file identifier "ET12" (schema version digits vary)
MIN_PTE_BYTES = 16
MAX_INPUT_ELEMENTS = 64 * 3 * 512 * 512  # a batch of 64 at 512x512: far above any zoo model's converted input
PROBE_TIMEOUT_S = 60.0
_TOO_LARGE, _CLEAN_FAILURE = 3, 1


def check_pte_header(path: Path) -> None:
    """The flatbuffer identifier and root offset, without handing anything to ExecuTorch."""
    head, size = file_head(path, 8, ".pte")
    if size < MIN_PTE_BYTES:
        raise ArtifactError(f"{path} is {size} bytes: too short to be an ExecuTorch program (.pte); is it truncated? "
                            "Re-run edgevit convert.")
    if head[4:6] != PTE_IDENTIFIER:
        raise ArtifactError(f"{path} is not an ExecuTorch program: its bytes 4-8 are {head[4:8]!r}, not the 'ET..' "
                            "flatbuffer identifier of a .pte. Re-run edgevit convert.")
    root = int.from_bytes(head[:4], "little")
    if not 8 <= root < size:
        raise ArtifactError(f"{path} is not a well-formed ExecuTorch program: its root offset {root} lies outside the "
                            f"file ({size} bytes). Re-run edgevit convert.")


def _probe(path: str) -> int:
    """In the child: load and run once as edgevit will, each way it loads a ``.pte``; the exit status says how."""
    import numpy as np
    import torch
    from executorch.extension.pybindings.portable_lib import _load_for_executorch
    from executorch.runtime import Runtime, Verification

    torch.set_num_threads(1)  # the parent's OpenMP pool does not exist in a forked child: never enter it
    status = 0
    try:
        program = Runtime.get().load_program(path, verification=Verification.InternalConsistency)
        meta = program.metadata("forward")
        shapes = [tuple(meta.input_tensor_meta(i).sizes()) for i in range(meta.num_inputs())]
        if any(math.prod(s) > MAX_INPUT_ELEMENTS or min(s, default=1) < 0 for s in shapes):
            return _TOO_LARGE
        program.load_method("forward").execute([torch.from_numpy(np.zeros(s, np.float32)) for s in shapes])
    except Exception:  # noqa: BLE001 - a clean failure: the caller's own load reports it
        status = _CLEAN_FAILURE
    try:  # the profiler's loader (pybindings), which has crashed where Runtime failed cleanly
        _load_for_executorch(path).method_meta("forward")
    except Exception:  # noqa: BLE001
        status = _CLEAN_FAILURE
    return status


def probe_pte(path: Path, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Load and run ``path`` once in a forked child; a crash or hang there is an ArtifactError here."""
    import executorch.extension.pybindings.portable_lib  # noqa: F401 - imported once here, not in every child
    import executorch.runtime  # noqa: F401

    pid = os.fork()
    if pid == 0:  # the child: never returns into the caller's code
        status = 1
        try:
            with open(os.devnull, "w") as null, contextlib.redirect_stderr(io.StringIO()):
                os.dup2(null.fileno(), 2)  # native chatter (and the abort message) stays out of the terminal
                status = _probe(str(path))
        finally:
            os._exit(status)
    deadline = time.monotonic() + timeout_s
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise ArtifactError(f"ExecuTorch did not finish loading and running {path.name} within {timeout_s:.0f} s "
                                "(checked in a child process): the program is malformed or hostile. Re-run edgevit "
                                "convert.")
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise ArtifactError(f"ExecuTorch crashed ({name}) loading or running {path.name} (checked in a child process, "
                            "so this process survived): the file is malformed, not a program edgevit convert wrote. "
                            "Re-run edgevit convert.")
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == _TOO_LARGE:
        raise ArtifactError(f"{path.name} declares an input of more than {MAX_INPUT_ELEMENTS:,} elements: larger than "
                            "any model edgevit converts, refused before anything is allocated. Re-run edgevit convert.")


_probed: set[tuple[str, int, int, int]] = set()  # (path, inode, size, mtime) this process has already probed


def check_pte(path: Path) -> None:
    """Header first (cheap), then the child-process probe, once per file version in this process."""
    path = Path(path)
    check_pte_header(path)
    info = os.stat(path)
    key = (str(path.resolve()), info.st_ino, info.st_size, info.st_mtime_ns)
    if key not in _probed:
        probe_pte(path)
        _probed.add(key)
