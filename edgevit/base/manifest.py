"""The JSON sidecar of each artifact: what it is, where its weights came from, how to feed it, and proof."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from edgevit.base.artifact_folder import MANIFEST_LIMIT, ArtifactFolder, check_artifact, parse_json, read_artifact_file
from edgevit.base.atomic import write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.digest import sha256_of
from edgevit.base.errors import ArtifactError
from edgevit.base.naming import bundle_path, manifest_path

MANIFEST_VERSION = 1
MANIFEST_SCHEMA = Path(__file__).with_name("manifest_schema.json")
PENDING = "pending"  # publication.state of a manifest written before its artifact was moved into place
TOOLS = ("edgevit", "torch", "timm", "executorch", "coremltools", "onnx", "onnxruntime", "numpy")


def tool_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TOOLS:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def preprocessing_of(spec) -> dict:
    size = spec.input_size[-1]
    return {"resize_shorter_side": int(size / spec.crop_pct), "center_crop": size, "crop_pct": spec.crop_pct,
            "interpolation": spec.interpolation, "scale": "1/255", "mean": list(spec.mean), "std": list(spec.std),
            "color": "RGB"}




def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, default=str) + "\n"


def write_manifest(artifact: Path, manifest: dict) -> Path:
    path = manifest_path(artifact)
    write_text_atomic(path, manifest_text(manifest))
    return path


def load_manifest(artifact: Path) -> dict:
    """The artifact's manifest as a JSON object, not checked against the schema: for readers that need only
    a few keys of it (the iOS staging) and for ``read_manifest``, so both fail with the same messages.

    Read through the closed world (edgevit.base.artifact_folder): the manifest must be a regular file in the
    artifact's folder, not a link, at most MANIFEST_LIMIT bytes and at most JSON_MAX_DEPTH deep.
    """
    folder = ArtifactFolder.of(Path(artifact))
    path = manifest_path(Path(artifact))
    checked = folder.child(path)
    if not checked.exists() and not checked.is_symlink():
        raise ArtifactError(f"{artifact} has no manifest ({path.name}); was it made by `edgevit convert`?")
    data = read_artifact_file(folder, path.name, "manifest", MANIFEST_LIMIT)
    manifest = parse_json(data, f"manifest {path}", advice="re-run edgevit convert")
    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {path} is not a JSON object (found {type(manifest).__name__}); "
                            "re-run edgevit convert")
    return manifest


def read_manifest(artifact: Path) -> dict:
    """The artifact's manifest, checked against manifest_schema.json; refuses one whose publication is pending."""
    artifact = Path(artifact)
    if not artifact.exists() and not artifact.is_symlink():
        raise ArtifactError(f"artifact not found: {artifact}")
    check_artifact(artifact)
    manifest = load_manifest(artifact)
    check_manifest(manifest, manifest_path(artifact))
    return manifest


def check_manifest(manifest: object, path: Path) -> None:
    """Raise ArtifactError saying what is wrong with a manifest, in the order a user can act on it."""
    from edgevit.base.schema_check import schema_problem

    if not isinstance(manifest, dict):
        raise ArtifactError(f"manifest {path} is not a JSON object (found {type(manifest).__name__}); "
                            "re-run edgevit convert")
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ArtifactError(f"manifest {path} has version {manifest.get('manifest_version')!r}, "
                            f"this edgevit reads {MANIFEST_VERSION}")
    publication = manifest.get("publication")
    if isinstance(publication, dict) and publication.get("state") == PENDING:
        raise ArtifactError(
            f"{path.name}: the conversion that wrote it stopped while publishing (interrupted or killed, pid "
            f"{publication.get('pid')}), so the artifact and its validation inputs beside it may be from another "
            "run. Re-run edgevit convert for this artifact."
        )
    problem = schema_problem(MANIFEST_SCHEMA, manifest)
    if problem is not None:
        raise ArtifactError(f"manifest {path} does not conform to edgevit/base/manifest_schema.json: {problem}. "
                            "Re-run edgevit convert to rewrite it.")


def artifact_manifest(spec, path: Path, target: str, backend: str | None, precision: str, options: dict,
                      winfo, info: dict, rewrites: list[str], prepared_rel: float) -> dict:
    """What an artifact's manifest says: the model (a ModelSpec), the artifact and its hash, the export
    settings, the weights' source (a WeightsInfo), input/output, preprocessing, rewrites, tool versions.

    ``parity`` is None here; publishing fills it in once the staged artifact has been checked.
    """
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": utc_now_iso(),
        "model": spec.name,
        "family": spec.family,
        "paper": spec.paper,
        "published_top1": spec.published_top1,
        "artifact": path.name,
        "sha256": sha256_of(path),
        "target": target,
        "backend": backend,
        "precision": precision,
        "options": options,
        "weights": winfo.to_json(),
        "input": info["input"],
        "output": info["output"],
        "preprocessing": preprocessing_of(spec),
        "labels": spec.labels,
        "rewrites": rewrites,
        "prepared_vs_original_rel_l2": prepared_rel,
        "export": {k: v for k, v in info.items() if k not in ("input", "output")},
        "validation_inputs": bundle_path(path).name,
        "parity": None,
        "tool_versions": tool_versions(),
    }
