"""A content-addressed cache of published artifacts: a sweep never converts the same thing twice.

An entry's key is the SHA-256 of everything that determines the artifact (:func:`artifact_key`): the model spec
and its weights digest, target, delegate, precision and quantization/compression scheme, calibration digest, the
converter (with a digest of the converter and exporter sources, which decide the rewrites applied), input size
and the versions of edgevit, torch, coremltools, executorch and onnxruntime. Change any of them and the key
changes; nothing else is compared.

Layout under the root (``$EDGEVIT_CACHE``, else ``$XDG_CACHE_HOME/edgevit``, else ``~/.cache/edgevit``)::

    entries/<key>/<artifact>           published by edgevit.api.convert (its publish transaction)
    entries/<key>/<artifact>.json      the artifact's manifest (records its sha256)
    entries/<key>/<artifact>.inputs/   its validation bundle
    entries/<key>/entry.json           the key's inputs, the artifact's name and sha256: written last
    entries/<key>/timings/<host>.json  a sweep's timing of the artifact on one host and bench setting (optional)

A timing is a measurement, not a conversion: it is kept so that a warm sweep re-run on the same host with the
same bench settings re-times nothing, and it is tied to the artifact's sha256 (a timing of other bytes is ignored).
``<host>`` is edgevit.bench.host_info.timing_fingerprint: CPU model, ISA, usable cores, OS and the bench settings.

Writers never corrupt it: an artifact appears in an entry only through :func:`edgevit.export.publish.publish`
(under an exclusive ``flock`` on the entry folder), and ``entry.json`` is written atomically after it under the
same lock; two writers of one key each publish a complete triple and the last one wins. Readers take the lock
shared. An entry whose bytes changed (the artifact's sha256 differs from entry.json and the manifest), or that
lacks a part, is reported as corrupt, and the caller evicts and rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from edgevit.base.atomic import ensure_writable_dir, write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.digest import sha256_of
from edgevit.base.errors import OutputError
from edgevit.base.manifest import load_manifest
from edgevit.base.naming import bundle_path
from edgevit.export.publish import deferred_interrupts, folder_lock, publish, staging_area

ENTRY_FILE = "entry.json"
ENTRY_FORMAT = "edgevit-cache-entry/1"
TIMINGS_DIR = "timings"
TIMING_FORMAT = "edgevit-cache-timing/1"
# What the key records of the tools: the ones whose version can change an artifact's bytes or its verdict.
KEY_TOOLS = ("edgevit", "torch", "coremltools", "executorch", "onnxruntime")
# Source trees whose code decides what is exported (the converters' rewrites, the exporters and their passes).
# what decides an artifact and the verdict its manifest records (a cached cell reports that verdict)
_SOURCE_ROOTS = ("converters", "edgevit/export", "edgevit/models", "edgevit/validate", "edgevit/mil")


def default_cache_dir() -> Path:
    """``$EDGEVIT_CACHE``, else the platform's user cache directory (XDG on Linux, ~/Library/Caches on macOS)."""
    if os.environ.get("EDGEVIT_CACHE"):
        return Path(os.environ["EDGEVIT_CACHE"])
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "edgevit"
    home = Path.home()
    if (home / "Library" / "Caches").is_dir():
        return home / "Library" / "Caches" / "edgevit"
    return home / ".cache" / "edgevit"


@cache
def source_digest() -> str:
    """SHA-256 of the converter, exporter, model-definition, validation and MIL-interpreter sources: an edited
    rewrite changes every key, and so does an edited check (a cached row reports the verdict recorded with it)."""
    root = Path(__file__).resolve().parents[2]
    digest = hashlib.sha256()
    for sub in _SOURCE_ROOTS:
        for path in sorted((root / sub).rglob("*.py")):
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def key_tool_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in KEY_TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def artifact_key(inputs: dict) -> str:
    """The key of an artifact: SHA-256 of its key inputs as canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class CacheEntry:
    """A complete, verified entry: the artifact (in the cache), its manifest, and what keyed it."""

    key: str
    artifact: Path
    manifest: dict
    record: dict


@dataclass(frozen=True)
class EntryInfo:
    """One entry as ``edgevit cache ls`` shows it; ``problem`` is None for a complete, verified entry."""

    key: str
    artifact: str | None
    model: str | None
    target: str | None
    precision: str | None
    size_bytes: int
    created: str | None
    last_used: float
    problem: str | None


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


class ArtifactCache:
    """The cache at ``root`` (created and proven writable on open)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()
        try:
            ensure_writable_dir(self.root / "entries")
        except OutputError:
            raise OutputError(f"the artifact cache {self.root} is not writable. Give another with --cache DIR (or "
                              "set EDGEVIT_CACHE), or fix its permissions.") from None
        self.entries_dir = self.root / "entries"

    def entry_dir(self, key: str) -> Path:
        if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"not a cache key: {key!r}")
        return self.entries_dir / key

    # ------------------------------------------------------------------------------------------- read
    def lookup(self, key: str) -> tuple[CacheEntry | None, str | None]:
        """(the verified entry, None), (None, None) for a miss, or (None, why) for a corrupt entry."""
        folder = self.entry_dir(key)
        if not (folder / ENTRY_FILE).exists():
            return None, None
        with folder_lock(folder, shared=True):
            return self._verify(key, folder, hash_artifact=True)

    def _verify(self, key: str, folder: Path, *, hash_artifact: bool) -> tuple[CacheEntry | None, str | None]:
        try:
            record = json.loads((folder / ENTRY_FILE).read_text(encoding="utf-8"))
            name = record["artifact"]
            expected = record["sha256"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"{ENTRY_FILE} unreadable ({type(exc).__name__})"
        if record.get("key") != key:
            return None, f"{ENTRY_FILE} names key {str(record.get('key'))[:12]}, not this entry's"
        artifact = folder / str(name)
        if Path(str(name)).name != name or not artifact.exists():
            return None, f"artifact {name} missing"
        try:
            manifest = load_manifest(artifact)
        except Exception as exc:  # noqa: BLE001 - any unreadable manifest makes the entry corrupt, not the sweep
            return None, f"manifest unreadable: {exc}"
        if manifest.get("sha256") != expected:
            return None, "manifest's sha256 differs from the entry's"
        if not bundle_path(artifact).exists():
            return None, "validation inputs missing"
        if hash_artifact:
            actual = sha256_of(artifact)
            if actual != expected:
                return None, f"artifact bytes changed (sha256 {actual[:12]}..., recorded {expected[:12]}...)"
        return CacheEntry(key, artifact, manifest, record), None

    def entries(self) -> list[EntryInfo]:
        """Every entry (complete, or with its problem), most recently used first."""
        infos = []
        for folder in sorted(self.entries_dir.iterdir()) if self.entries_dir.is_dir() else []:
            if not folder.is_dir() or len(folder.name) != 64:
                continue
            entry, problem = self._verify(folder.name, folder, hash_artifact=True)
            if entry is None and problem is None:
                problem = "incomplete"
            record = entry.record if entry else {}
            manifest = entry.manifest if entry else {}
            stamp = folder / ENTRY_FILE
            infos.append(EntryInfo(
                key=folder.name, artifact=record.get("artifact"), model=manifest.get("model"),
                target=manifest.get("target"), precision=manifest.get("precision"), size_bytes=_tree_size(folder),
                created=record.get("created"), last_used=stamp.stat().st_mtime if stamp.exists() else 0.0,
                problem=problem))
        return sorted(infos, key=lambda i: -i.last_used)

    # ------------------------------------------------------------------------------------------ write
    def record(self, key: str, inputs: dict, artifact: Path) -> CacheEntry:
        """After edgevit.api.convert published ``artifact`` into ``entry_dir(key)``: write entry.json (last)."""
        folder = self.entry_dir(key)
        with folder_lock(folder):
            manifest = load_manifest(artifact)
            record = {"format": ENTRY_FORMAT, "key": key, "artifact": artifact.name, "sha256": manifest["sha256"],
                      "created": utc_now_iso(), "inputs": inputs}
            write_text_atomic(folder / ENTRY_FILE, json.dumps(record, indent=1, sort_keys=True) + "\n")
        return CacheEntry(key, artifact, manifest, record)

    def timing(self, key: str, fingerprint: str, sha256: str) -> dict | None:
        """The timing stored for ``key`` under ``fingerprint`` if it timed the bytes ``sha256``; None otherwise
        (none stored, unreadable, or of other bytes: the caller times the artifact again)."""
        path = self._timing_path(key, fingerprint)
        if not path.exists():
            return None
        with folder_lock(self.entry_dir(key), shared=True):
            try:
                stored = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
        if not isinstance(stored, dict) or stored.get("format") != TIMING_FORMAT \
                or stored.get("artifact_sha256") != sha256 or not isinstance(stored.get("value"), dict):
            return None
        return stored

    def record_timing(self, key: str, fingerprint: str, sha256: str, value: dict) -> None:
        """Keep a timing of the entry's artifact (bytes ``sha256``) on the host ``fingerprint`` names."""
        folder = self.entry_dir(key)
        if not folder.is_dir():
            return
        with folder_lock(folder):
            path = self._timing_path(key, fingerprint)
            path.parent.mkdir(exist_ok=True)
            write_text_atomic(path, json.dumps({"format": TIMING_FORMAT, "artifact_sha256": sha256,
                                                "timed_at": utc_now_iso(), "value": value}) + "\n")

    def _timing_path(self, key: str, fingerprint: str) -> Path:
        if len(fingerprint) != 64 or any(c not in "0123456789abcdef" for c in fingerprint):
            raise ValueError(f"not a timing fingerprint: {fingerprint!r}")
        return self.entry_dir(key) / TIMINGS_DIR / f"{fingerprint}.json"

    def touch(self, key: str) -> None:
        """Mark an entry used now (prune keeps recently used entries)."""
        with _ignored_oserror():
            os.utime(self.entry_dir(key) / ENTRY_FILE)

    def evict(self, key: str) -> None:
        """Remove one entry as one rename (readers holding its lock keep their open files)."""
        self._remove([self.entry_dir(key)])

    def _remove(self, folders: Iterable[Path]) -> int:
        trash = Path(tempfile.mkdtemp(prefix=".trash-", dir=self.root))
        removed = 0
        try:
            for folder in folders:
                with folder_lock(folder), deferred_interrupts(), _ignored_oserror():
                    os.replace(folder, trash / folder.name)
                    removed += 1
        finally:
            shutil.rmtree(trash, ignore_errors=True)
        return removed

    def prune(self, older_than_days: float | None = None) -> tuple[int, int]:
        """Remove corrupt or incomplete entries, and with ``older_than_days`` those unused for that long.

        Returns (entries removed, bytes freed).
        """
        cutoff = time.time() - older_than_days * 86400 if older_than_days is not None else None
        doomed = [i for i in self.entries()
                  if i.problem is not None or (cutoff is not None and i.last_used < cutoff)]
        # an entry being written right now has no entry.json yet: leave folders younger than an hour alone
        doomed = [i for i in doomed if i.problem != "incomplete"
                  or time.time() - (self.entries_dir / i.key).stat().st_mtime > 3600]
        freed = sum(i.size_bytes for i in doomed)
        return self._remove(self.entries_dir / i.key for i in doomed), freed

    def clear(self) -> tuple[int, int]:
        """Remove every entry. Returns (entries removed, bytes freed)."""
        folders = [f for f in self.entries_dir.iterdir() if f.is_dir()] if self.entries_dir.is_dir() else []
        freed = sum(_tree_size(f) for f in folders)
        return self._remove(folders), freed

    # ----------------------------------------------------------------------------------- materialize
    def materialize(self, entry: CacheEntry, out: Path) -> Path:
        """Copy the entry's artifact, bundle and manifest into ``out`` through the publish transaction; the
        copy is checked against the recorded sha256 before it is published."""
        with folder_lock(entry.artifact.parent, shared=True), staging_area(out) as stage:
            staged = stage / entry.artifact.name
            _copy(entry.artifact, staged)
            _copy(bundle_path(entry.artifact), bundle_path(staged))
            if sha256_of(staged) != entry.record["sha256"]:
                raise OutputError(f"copying {entry.artifact.name} out of the cache changed its bytes; the cache "
                                  f"entry {entry.key[:12]} is rebuilt on the next run")
            return publish(staged, out / entry.artifact.name, entry.manifest).parent / entry.artifact.name


def _copy(src: Path, dst: Path) -> None:
    if src.is_dir():
        shutil.copytree(src, dst, symlinks=False)
    else:
        shutil.copy2(src, dst)


class _ignored_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, _value, _tb) -> bool:
        return kind is not None and issubclass(kind, OSError)


def artifact_key_inputs(spec, *, target: str, backend: str | None, precision: str, compute_precision: str | None,
                        options: dict[str, str], weights_sha256: str | None, init: str, seed: int,
                        calibration_sha256: str | None, deployment_target: str, min_psnr: float | None) -> dict:
    """Everything that determines one artifact and its verdict, as the JSON its key hashes (see the module doc).

    ``spec`` is a ModelSpec; ``weights_sha256`` None means random init (then ``init`` and ``seed`` decide the
    weights); ``calibration_sha256`` is the digest of the user's calibration images (None: the bundled photos,
    which the source digest covers).
    """
    return {
        "model": {"name": spec.name, "timm_name": spec.timm_name, "family": spec.family,
                  "input_size": list(spec.input_size), "mean": list(spec.mean), "std": list(spec.std),
                  "interpolation": spec.interpolation, "crop_pct": spec.crop_pct, "labels": spec.labels,
                  "options": spec.default_options() | options},
        "weights": {"sha256": weights_sha256} if weights_sha256 else {"init": init, "seed": seed},
        "target": target, "backend": backend, "precision": precision, "compute_precision": compute_precision,
        "deployment_target": deployment_target, "min_psnr": min_psnr,
        "calibration_sha256": calibration_sha256,
        "converter": spec.converter, "sources_sha256": source_digest(),
        "tools": key_tool_versions(),
    }


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over a set of files (names and bytes), e.g. a calibration folder's images."""
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(sha256_of(path).encode())
    return digest.hexdigest()
