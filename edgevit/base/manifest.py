"""The JSON sidecar of each artifact: what it is, where its weights came from, how to feed it, and proof."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from pathlib import Path

from edgevit.base.atomic import write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.errors import ArtifactError
from edgevit.base.naming import manifest_path

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


now_utc = utc_now_iso  # the name existing callers use; the clock itself lives in edgevit.base.clock


def manifest_text(manifest: dict) -> str:
    return json.dumps(manifest, indent=2, default=str) + "\n"


def write_manifest(artifact: Path, manifest: dict) -> Path:
    path = manifest_path(artifact)
    write_text_atomic(path, manifest_text(manifest))
    return path


def read_manifest(artifact: Path) -> dict:
    """The artifact's manifest, checked against manifest_schema.json; refuses one whose publication is pending."""
    artifact = Path(artifact)
    path = manifest_path(artifact)
    if not artifact.exists():
        raise ArtifactError(f"artifact not found: {artifact}")
    if not path.exists():
        raise ArtifactError(f"{artifact} has no manifest ({path.name}); was it made by `edgevit convert`?")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"manifest {path} is not valid JSON ({exc}); re-run edgevit convert") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read manifest {path}: {exc.strerror or exc}") from None
    check_manifest(manifest, path)
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
