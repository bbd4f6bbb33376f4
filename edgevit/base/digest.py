"""SHA-256 of an artifact or checkpoint: what a manifest records and every reader checks (standard library only)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from edgevit.base.artifact_folder import ARTIFACT_FILE_LIMIT, package_files, sha256_regular_file


def sha256_of(path: Path, limit: int = ARTIFACT_FILE_LIMIT) -> str:
    """Hex SHA-256 of a file, or of every file of a directory artifact (.mlpackage) in sorted order.

    Read as edgevit.base.artifact_folder reads: regular files only (a FIFO or device is refused, never read), each
    within ``limit`` bytes, and no link followed inside a directory artifact.
    """
    path = Path(path)
    if not path.is_dir():
        return sha256_regular_file(path, "file", limit)
    digest = hashlib.sha256()
    for file in package_files(path, file_limit=limit):
        digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
