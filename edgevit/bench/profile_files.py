"""Where ``bench --profile`` keeps each artifact's per-op profile, and reading them back for the report.

A profile sits beside the results file it belongs to, named after that file, the artifact and the batch
(``<results stem>.<artifact>.b<batch>.profile.json``): the same ``.pte`` name is timed at batch 1 and at batch 32,
and two runs at different thread counts write two results files, so no profile overwrites another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgevit.base.errors import ArtifactError
from edgevit.bench.results import SOURCE_KEY

# What a profile file says it is (edgevit.bench.profile.Profile.to_dict); kept here, not in profile.py, so the
# report reads profiles without importing the runtimes that make them.
PROFILE_KIND = "edgevit-profile/1"

# A profile is a few hundred ops; anything far larger is not one of ours, and is refused unread.
MAX_PROFILE_BYTES = 20 * 1024 * 1024

ProfileKey = tuple[str, str, int]  # (results file, artifact file name, batch)


def profile_file(results_file: Path, artifact_name: str, batch: int) -> Path:
    """The profile of ``artifact_name`` timed at ``batch`` for ``results_file``."""
    results_file = Path(results_file)
    return results_file.with_name(f"{results_file.stem}.{artifact_name}.b{batch}.profile.json")


def profile_key(result: Mapping[str, Any]) -> ProfileKey | None:
    """Which profile belongs to ``result`` (as load_results returns it); None for a result without an artifact or
    without the file it was loaded from."""
    source = result.get(SOURCE_KEY) or {}
    if not result.get("artifact") or not source.get("file"):
        return None
    return source["file"], result["artifact"], result["batch"]


def _is_op_type_row(row: Any) -> bool:
    """One entry of a profile's by_type list, as Profile.by_type writes it."""
    return (isinstance(row, dict) and isinstance(row.get("op_type"), str)
            and isinstance(row.get("kernel"), str | None) and isinstance(row.get("ops"), int)
            and all(isinstance(row.get(k), int | float) for k in ("ms", "percent")))


def read_profile(path: Path) -> dict[str, Any]:
    """One profile file, checked to be an edgevit profile (ArtifactError naming the file otherwise)."""
    size = path.stat().st_size
    if size > MAX_PROFILE_BYTES:
        raise ArtifactError(f"{path}: {size:,} bytes is not a profile bench --profile wrote (at most "
                            f"{MAX_PROFILE_BYTES:,}); remove it or re-run bench --profile")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable profile ({exc}); remove it or re-run bench --profile") from None
    if not isinstance(doc, dict) or doc.get("kind") != PROFILE_KIND or not isinstance(doc.get("by_type"), list) \
            or not all(_is_op_type_row(row) for row in doc["by_type"]):
        raise ArtifactError(f"{path}: not an edgevit profile (kind {PROFILE_KIND!r} with a by_type list of op types "
                            "(op_type, kernel, ops, ms, percent) expected)")
    return doc


def profiles_beside(results: Sequence[Mapping[str, Any]]) -> dict[ProfileKey, dict[str, Any]]:
    """The profile of every timed artifact in ``results`` (as load_results returns them) that has one beside its
    results file; artifacts without one are simply absent (bench ran without --profile)."""
    found: dict[ProfileKey, dict[str, Any]] = {}
    for r in results:
        key = profile_key(r)
        if key is None or key in found:
            continue
        path = profile_file(Path(key[0]), key[1], key[2])
        if path.is_file():
            found[key] = read_profile(path)
    return found
