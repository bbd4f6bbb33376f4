"""An artifact folder as a closed world: the one place that opens an artifact and its companions for reading.

Artifacts travel (a teammate's ``.mlpackage``, a ``.pte`` from CI, a folder from a model zoo), so every byte edgevit
reads of one goes through here, and here only:

* every path is resolved and kept inside the folder the user named (or the artifact itself); a path from a file
  (``index.json``) that is absolute or climbs out with ``..`` is refused;
* a symlink is refused, naming the link and its target; ``--follow-symlinks-inside``
  (:func:`following_symlinks_inside`) allows only links that resolve inside the same artifact folder;
* only regular files are read: a FIFO, device or socket is refused. Files are opened with ``O_NONBLOCK`` and
  ``fstat``-ed before any read, so a FIFO never blocks and ``/dev/zero`` is never read;
* every read has a size limit, checked on the open file before reading (a manifest is at most
  ``MANIFEST_LIMIT``; a bundle tensor is exactly its declared shape times its dtype);
* JSON is parsed only after a depth check (:func:`parse_json`), so absurd nesting is one clear error;
* copies (the device harnesses' staging) read through the same checks and never follow links.

A file named by the user (a checkpoint given with ``--weights``, a results file) is not inside any artifact:
:func:`read_regular_file` gives it the same regular-file and size checks. Standard library only (base layer).
"""

from __future__ import annotations

import contextlib
import contextvars
import errno
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from edgevit.base.errors import ArtifactError, EdgevitError

MiB = 1 << 20
MANIFEST_LIMIT = 4 * MiB  # a manifest is a few kB; the MIL layout report makes the largest ones ~100 kB
INDEX_LIMIT = 1 * MiB  # a bundle's index.json
JSON_MAX_DEPTH = 64  # edgevit's own JSON files nest at most ~8 deep
ARTIFACT_FILE_LIMIT = 4096 * MiB  # one file of an artifact (.pte, .onnx, weight.bin in a .mlpackage)
PACKAGE_FILE_COUNT_LIMIT = 10_000  # files inside one .mlpackage
BUNDLE_TENSOR_LIMIT = 64 * MiB  # one validation tensor (1x3x2048x2048 float32 is 48 MiB)
BUNDLE_IMAGE_LIMIT = 32 * MiB  # one validation PNG
COPY_CHUNK = 4 * MiB

_FOLLOW_INSIDE: contextvars.ContextVar[bool] = contextvars.ContextVar("edgevit_follow_symlinks_inside",
                                                                       default=False)


@contextlib.contextmanager
def following_symlinks_inside(enabled: bool = True) -> Iterator[None]:
    """``--follow-symlinks-inside``: within the block, a symlink whose target resolves inside the same artifact
    folder is followed; one that leaves it is still refused."""
    token = _FOLLOW_INSIDE.set(bool(enabled))
    try:
        yield
    finally:
        _FOLLOW_INSIDE.reset(token)


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"),
                       (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a regular file"


def _within(path: Path, scope: Path) -> bool:
    return path == scope or scope in path.parents


def _refuse_link(path: Path, scope: Path, error: type[EdgevitError]) -> None:
    """``path`` is a symlink: allowed only behind --follow-symlinks-inside and only when it resolves inside scope."""
    target = os.readlink(path)
    resolved = Path(os.path.realpath(path))
    if _FOLLOW_INSIDE.get() and _within(resolved, Path(os.path.realpath(scope))):
        return
    where = "outside the artifact folder" if not _within(resolved, Path(os.path.realpath(scope))) else \
        "inside the artifact folder (pass --follow-symlinks-inside to allow links that stay inside it)"
    raise error(f"{path} is a symlink to {target} ({where}); edgevit does not follow links in artifacts it reads, "
                "so nothing outside the folder is read or copied. Replace the link with the file itself.")


class ArtifactFolder:
    """The folder an artifact lives in (the folder the user named): paths below it, checked component by component.

    The root itself is the user's choice and is not questioned (it may be reached through a link the user made);
    everything below it must be a real directory or file inside it.
    """

    def __init__(self, root: Path, error: type[EdgevitError] = ArtifactError):
        self.root = Path(os.path.realpath(Path(root)))
        self.error = error

    @classmethod
    def of(cls, artifact: Path, error: type[EdgevitError] = ArtifactError) -> ArtifactFolder:
        """The folder holding ``artifact`` (a file or an ``.mlpackage`` folder)."""
        return cls(Path(os.path.abspath(artifact)).parent, error)

    def path(self, relative: str | Path, *, scope: Path | None = None) -> Path:
        """``root/relative`` after checking that ``relative`` stays inside and that no component is a link (or, with
        --follow-symlinks-inside, a link that leaves ``scope``, default the root). A missing path is returned
        as is: the caller's own open reports it."""
        rel = Path(relative)
        if rel.is_absolute() or not rel.parts or any(part in ("..", "") for part in rel.parts):
            raise self.error(f"{relative!s} is not a path inside {self.root}: artifacts may only name files in their "
                             "own folder (no absolute paths, no '..').")
        current = self.root
        for part in rel.parts:
            if part == ".":
                continue
            current = current / part
            try:
                info = os.lstat(current)
            except FileNotFoundError:
                return self.root / rel
            except OSError as exc:
                raise self.error(f"cannot inspect {current}: {exc.strerror or exc}") from None
            if stat.S_ISLNK(info.st_mode):
                _refuse_link(current, scope or self.root, self.error)
        return self.root / rel

    def child(self, artifact: Path) -> Path:
        """An artifact (or a companion) named by the user: must be directly in this folder and not a link."""
        return self.path(Path(os.path.abspath(artifact)).name)


def _open_regular(path: Path, what: str, limit: int, error: type[EdgevitError], *, follow: bool) -> tuple[int, int]:
    """(fd, size) of a regular file opened without blocking; refuses anything else, or a file over ``limit``."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | (0 if follow else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise error(f"{what} {path} is a symlink to {os.readlink(path)}; edgevit does not follow links in "
                        "artifacts it reads. Replace the link with the file itself.") from None
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise error(f"cannot read {what} {path}: it is {_kind(info.st_mode)}, not a regular file; edgevit reads only "
                    "regular files (a pipe or device could block or never end).")
    if info.st_size > limit:
        os.close(fd)
        raise error(f"{what} {path} is {info.st_size:,} bytes, over the {limit:,}-byte limit for a {what}: refused "
                    "unread (edgevit never writes one this large; re-create it with the tool that made it).")
    os.set_blocking(fd, True)
    return fd, info.st_size


def _read_fd(fd: int, size: int, limit: int, path: Path, what: str, error: type[EdgevitError]) -> bytes:
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(COPY_CHUNK, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise error(f"{what} {path} grew past the {limit:,}-byte limit while being read")
    return b"".join(chunks)


def read_regular_file(path: Path, what: str, limit: int, *, exact: int | None = None,
                      error: type[EdgevitError] = ArtifactError, follow_top_link: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (exactly ``exact`` when given), checked before reading.

    For files the user named (``follow_top_link``: their own link is their choice) and, through
    :func:`read_artifact_file`, for files inside an artifact folder (after :meth:`ArtifactFolder.path`).
    """
    path = Path(path)
    fd, size = _open_regular(path, what, limit, error, follow=follow_top_link)
    try:
        if exact is not None and size != exact:
            raise error(f"{what} {path} has {size} bytes, not {exact} (what its declared shape implies): truncated "
                        "or replaced")
        return _read_fd(fd, size, limit, path, what, error)
    finally:
        os.close(fd)


def file_head(path: Path, n: int, what: str, limit: int = ARTIFACT_FILE_LIMIT, *,
              error: type[EdgevitError] = ArtifactError) -> tuple[bytes, int]:
    """(first ``n`` bytes, size) of a regular file within ``limit`` (a link is followed only where allowed)."""
    fd, size = _open_regular(Path(path), what, limit, error, follow=_FOLLOW_INSIDE.get())
    try:
        return os.read(fd, n), size
    finally:
        os.close(fd)


def read_artifact_file(folder: ArtifactFolder, relative: str | Path, what: str, limit: int, *,
                       exact: int | None = None, scope: Path | None = None) -> bytes:
    """A file inside an artifact folder: path checked (inside, no links), then read as :func:`read_regular_file`."""
    path = folder.path(relative, scope=scope)
    if not path.exists() and not path.is_symlink():
        raise folder.error(f"{what} {path} is missing")
    return read_regular_file(path, what, limit, exact=exact, error=folder.error, follow_top_link=_FOLLOW_INSIDE.get())


def sha256_regular_file(path: Path, what: str, limit: int, *, error: type[EdgevitError] = ArtifactError,
                        follow_top_link: bool = True) -> str:
    """Hex SHA-256 of a regular file within ``limit`` bytes, streamed (never the whole file in memory)."""
    digest = hashlib.sha256()
    fd, _ = _open_regular(Path(path), what, limit, error, follow=follow_top_link)
    try:
        _stream(fd, digest.update, limit, Path(path), what, error)
    finally:
        os.close(fd)
    return digest.hexdigest()


def _stream(fd: int, sink, limit: int, path: Path, what: str, error: type[EdgevitError]) -> None:
    total = 0
    while chunk := os.read(fd, COPY_CHUNK):
        total += len(chunk)
        if total > limit:
            raise error(f"{what} {path} grew past the {limit:,}-byte limit while being read")
        sink(chunk)


def package_files(package: Path, error: type[EdgevitError] = ArtifactError,
                  file_limit: int = ARTIFACT_FILE_LIMIT) -> list[Path]:
    """Every regular file of a directory artifact (``.mlpackage``, a bundle), sorted, after refusing links that
    leave it, FIFOs/devices/sockets, files over ``file_limit`` and more than PACKAGE_FILE_COUNT_LIMIT files."""
    package = Path(package)
    files: list[Path] = []
    seen: set[tuple[int, int]] = set()  # folders walked (a link allowed inside could point back up: no cycles)

    def walk(folder: Path) -> None:
        info = os.stat(folder)
        if (info.st_dev, info.st_ino) in seen:
            raise error(f"{folder} leads back to a folder already read (a symlink cycle); an artifact is a tree")
        seen.add((info.st_dev, info.st_ino))
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise error(f"cannot list {folder}: {exc.strerror or exc}") from None
        for entry in entries:
            path = Path(entry.path)
            info = entry.stat(follow_symlinks=False)
            if stat.S_ISLNK(info.st_mode):
                _refuse_link(path, package, error)
                info = os.stat(path)
            if stat.S_ISDIR(info.st_mode):
                walk(path)
            elif stat.S_ISREG(info.st_mode):
                if info.st_size > file_limit:
                    raise error(f"{path} is {info.st_size:,} bytes, over the {file_limit:,}-byte limit for a file "
                                "of an artifact")
                files.append(path)
                if len(files) > PACKAGE_FILE_COUNT_LIMIT:
                    raise error(f"{package} holds more than {PACKAGE_FILE_COUNT_LIMIT:,} files: not an artifact "
                                "edgevit wrote")
            else:
                raise error(f"{path} is {_kind(info.st_mode)}, not a regular file; an artifact holds only regular "
                            "files and folders")

    walk(package)
    return files


def check_artifact(artifact: Path, error: type[EdgevitError] = ArtifactError) -> Path:
    """The artifact itself, before anything reads it: not a link (unless it stays inside, when allowed), a regular
    file within ARTIFACT_FILE_LIMIT, or a folder (``.mlpackage``) of regular files only. Returns the path."""
    artifact = Path(artifact)
    folder = ArtifactFolder.of(artifact, error)
    path = folder.child(artifact)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"artifact not found: {artifact}") from None
    except OSError as exc:
        raise error(f"cannot read artifact {artifact}: {exc.strerror or exc}") from None
    if stat.S_ISDIR(info.st_mode):
        package_files(path, error)
        if (path / "Manifest.json").is_file():
            _check_package_manifest(path, error)
    elif not stat.S_ISREG(info.st_mode):
        raise error(f"artifact {artifact} is {_kind(info.st_mode)}, not a regular file or an .mlpackage folder")
    elif info.st_size > ARTIFACT_FILE_LIMIT:
        raise error(f"artifact {artifact} is {info.st_size:,} bytes, over the {ARTIFACT_FILE_LIMIT:,}-byte limit")
    return artifact


def _check_package_manifest(package: Path, error: type[EdgevitError]) -> None:
    """An ``.mlpackage``'s own Manifest.json names its items by path: each must stay inside the package's Data/."""
    data = read_regular_file(package / "Manifest.json", "package manifest", INDEX_LIMIT, error=error,
                             follow_top_link=_FOLLOW_INSIDE.get())
    manifest = parse_json(data, f"{package.name}/Manifest.json", error, advice="re-run edgevit convert")
    entries = manifest.get("itemInfoEntries") if isinstance(manifest, dict) else None
    if not isinstance(entries, dict):
        raise error(f"{package.name}/Manifest.json has no itemInfoEntries: not an .mlpackage; re-run edgevit convert")
    data_folder = ArtifactFolder(package / "Data", error)
    for item in entries.values():
        relative = item.get("path") if isinstance(item, dict) else None
        if not isinstance(relative, str):
            raise error(f"{package.name}/Manifest.json has an item without a path; re-run edgevit convert")
        data_folder.path(relative, scope=package)


def artifact_sha256(artifact: Path, error: type[EdgevitError] = ArtifactError) -> str:
    """The artifact's SHA-256 as its manifest records it (edgevit.base.digest), read through the closed world."""
    artifact = check_artifact(artifact, error)
    digest = hashlib.sha256()
    files = package_files(artifact, error) if artifact.is_dir() else [artifact]
    for file in files:
        if artifact.is_dir():
            digest.update(str(file.relative_to(artifact)).encode())
        fd, _ = _open_regular(file, "artifact file", ARTIFACT_FILE_LIMIT, error, follow=_FOLLOW_INSIDE.get())
        try:
            _stream(fd, digest.update, ARTIFACT_FILE_LIMIT, file, "artifact file", error)
        finally:
            os.close(fd)
    return digest.hexdigest()


def copy_artifact_part(src: Path, dst: Path, error: type[EdgevitError] = ArtifactError) -> None:
    """Copy a file or folder of an artifact (staging for a device): regular files and folders only, never a link's
    target; ``dst`` must not exist. The source is checked whole before the first byte is written."""
    src, dst = Path(src), Path(dst)
    files = package_files(src, error) if src.is_dir() and not src.is_symlink() else None
    if files is None:
        ArtifactFolder.of(src, error).child(src)  # refuses a link in the artifact's own place
        _copy_file(src, dst, error)
        return
    dst.mkdir()
    for file in files:
        target = dst / file.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        _copy_file(file, target, error)


def _copy_file(src: Path, dst: Path, error: type[EdgevitError]) -> None:
    fd, _ = _open_regular(src, "artifact file", ARTIFACT_FILE_LIMIT, error, follow=_FOLLOW_INSIDE.get())
    try:
        out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
        try:
            _stream(fd, lambda chunk: os.write(out, chunk), ARTIFACT_FILE_LIMIT, src, "artifact file", error)
        finally:
            os.close(out)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------------------------ JSON
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(data: bytes) -> int:
    """The deepest nesting of ``[``/``{`` in JSON text (strings skipped), without parsing it (linear, no recursion)."""
    depth = deepest = 0
    for char in _STRING.sub(b"", data).translate(None, _NOT_BRACKETS):
        if char in (0x5B, 0x7B):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_json(data: bytes, what: str, error: type[EdgevitError] = ArtifactError,
               max_depth: int = JSON_MAX_DEPTH, advice: str = "re-create it with edgevit") -> object:
    """JSON from bytes read through this module: nesting over ``max_depth`` and invalid text are clear errors."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"cannot read {what}: it is not UTF-8 text ({exc.reason} at byte {exc.start}); {advice}") from None
    depth = json_depth(data)
    if depth > max_depth:
        raise error(f"{what} nests {depth} levels deep, over the limit of {max_depth}: not a file edgevit wrote; "
                    f"{advice}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); {advice}") from None
    except (RecursionError, ValueError) as exc:
        raise error(f"{what} cannot be parsed as JSON ({type(exc).__name__}); {advice}") from None
