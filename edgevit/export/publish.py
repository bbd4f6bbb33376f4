"""Publishing an artifact as one transaction: the artifact, its validation bundle and its manifest appear
together or not at all.

A conversion works in a private staging folder inside ``--out`` (``.edgevit-stage-<pid>-*``): it exports there,
writes the validation bundle there, validates the staged copy and writes the manifest there. Only then does
:func:`publish` move the three into place, under an exclusive ``flock`` on the output folder (so two
conversions into one folder never interleave) and with SIGINT/SIGTERM held until it is done (a few renames):

1. the new manifest, marked ``publication.state = "pending"``, replaces the old one;
2. the bundle, then the artifact, are renamed into place;
3. the complete manifest replaces the pending one.

Readers (:func:`reading`) take the same lock shared, so they see the old triple or the new one. If the process
dies inside step 2 (SIGKILL, power loss) the pending manifest stays behind and every reader refuses it with a
message saying so; it never pairs an artifact with another run's manifest. An interrupt anywhere before step 1
removes the staging folder and leaves the previous triple untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from edgevit.base.atomic import ensure_writable_dir, write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.errors import OutputError
from edgevit.base.manifest import PENDING, manifest_text
from edgevit.base.naming import bundle_path, manifest_path

STAGE_PREFIX = ".edgevit-stage-"


@contextlib.contextmanager
def output_folder(folder: Path) -> Iterator[Path]:
    """Create ``folder`` if needed and prove it writable; if the block then fails or is interrupted, remove the
    directories this created while they are still empty, so a refused or interrupted run leaves nothing new."""
    folder = Path(folder)
    created = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    ensure_writable_dir(folder)
    try:
        yield folder
    except BaseException:
        with deferred_interrupts():
            for path in created:
                try:
                    path.rmdir()
                except OSError:
                    break
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out: Path) -> None:
    """Staging folders of processes that no longer exist (killed mid-conversion) are removed."""
    for stage in out.glob(f"{STAGE_PREFIX}*"):
        pid = stage.name[len(STAGE_PREFIX):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def staging_area(out: Path) -> Iterator[Path]:
    """A private folder inside ``out`` for one run's unpublished files, removed afterwards (interrupts included)."""
    remove_stale_staging(out)
    stage = None
    try:
        with deferred_interrupts():  # a Ctrl-C between mkdtemp's mkdir and this assignment would leak the folder
            stage = Path(tempfile.mkdtemp(prefix=f"{STAGE_PREFIX}{os.getpid()}-", dir=out))
        yield stage
    except OSError as exc:
        if stage is None:
            raise OutputError(f"cannot create a staging folder in {out}: {exc.strerror or exc}") from None
        raise
    finally:
        if stage is not None:
            with deferred_interrupts():  # a second Ctrl-C must not leave half a staging folder
                shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def folder_lock(folder: Path, *, shared: bool = False) -> Iterator[None]:
    """``flock`` on the folder itself (no lock file is left behind); exclusive for publishing, shared to read.

    A folder that cannot be opened is not locked: the caller's own access then reports the real problem.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the block and deliver them after it: a commit of a few renames is never cut."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, _frame: received.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if signal.SIGTERM in received:
            signal.raise_signal(signal.SIGTERM)
        if signal.SIGINT in received:
            raise KeyboardInterrupt


def reading(artifact: Path) -> contextlib.AbstractContextManager[None]:
    """Hold while reading an artifact, its manifest and its bundle: no publication into its folder meanwhile."""
    return folder_lock(Path(artifact).parent, shared=True)


def _move_into_place(src: Path, dst: Path, trash: Path) -> None:
    """Rename ``src`` to ``dst``; an existing directory (or a file in a directory's place) is moved aside first,
    since a rename cannot replace a non-empty directory."""
    if dst.is_dir() and not dst.is_symlink() or (dst.exists() and src.is_dir()):
        os.replace(dst, Path(tempfile.mkdtemp(prefix="old-", dir=trash)) / dst.name)
    os.replace(src, dst)


def publish(staged: Path, final: Path, manifest: dict) -> Path:
    """Move a staged artifact and its staged bundle to ``final`` with ``manifest`` beside them, as one
    transaction (see the module docstring); returns the manifest's path."""
    staged, final = Path(staged), Path(final)
    pending = {**manifest, "publication": {"state": PENDING, "pid": os.getpid(), "since": utc_now_iso()}}
    try:
        with folder_lock(final.parent), deferred_interrupts():
            write_text_atomic(manifest_path(final), manifest_text(pending))
            _move_into_place(bundle_path(staged), bundle_path(final), staged.parent)
            _move_into_place(staged, final, staged.parent)
            write_text_atomic(manifest_path(final), manifest_text(manifest))
    except OSError as exc:
        raise OutputError(f"cannot publish {final.name} in {final.parent}: {exc.strerror or exc}; its manifest "
                          "says the publication is incomplete. Free space or fix permissions, then re-run.") from None
    return manifest_path(final)
