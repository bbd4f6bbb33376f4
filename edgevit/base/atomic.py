"""Atomic artifact writes: build under a temporary name in the same folder, then rename into place.

An interrupted or failed export therefore never leaves a half-written artifact under the final name, and
an existing artifact is replaced only once the new one is complete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edgevit.base.errors import OutputError


def ensure_writable_dir(folder: Path) -> Path:
    """Create ``folder`` if needed and prove it writable, or raise OutputError before any work is done."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".edgevit-probe-"):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output directory {folder}: {exc.strerror or exc}. "
                          "Choose another --out or fix its permissions.") from None
    return folder


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling path to write (a file or a directory); publish it as ``final`` on success."""
    final = Path(final)
    tmp = final.with_name(f".tmp-{os.getpid()}-{final.name}")  # keeps the suffix (coremltools checks it)
    _remove(tmp)
    try:
        yield tmp
        if not tmp.exists():
            raise OutputError(f"export produced nothing at {tmp}")
        if tmp.is_dir() and final.exists():
            old = final.with_name(f".old-{os.getpid()}-{final.name}")
            os.replace(final, old)
            os.replace(tmp, final)
            _remove(old)
        else:
            os.replace(tmp, final)
    finally:
        _remove(tmp)


def write_text_atomic(final: Path, text: str) -> None:
    with atomic_path(final) as tmp:
        tmp.write_text(text)


def write_bytes_atomic(final: Path, data: bytes, advice: str = "choose a writable output directory") -> None:
    """Write ``data`` to ``final`` through ``atomic_path`` and fsync: readers never see half a file.

    The file gets the mode any new file would (0o666 less the umask). Any OSError becomes an OutputError naming
    the path, the reason and ``advice``; the temporary file is removed.
    """
    try:
        with atomic_path(Path(final)) as tmp, open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise OutputError(f"cannot write {final}: {e.strerror or e}; {advice}.") from None
