"""The JSON sidecar of each artifact: what it is, where its weights came from, how to feed it, and proof."""

from __future__ import annotations

import datetime as dt
import json
import platform
from importlib import metadata
from pathlib import Path

from edgevit.errors import ArtifactError
from edgevit.export.atomic import write_text_atomic
from edgevit.export.naming import manifest_path

MANIFEST_VERSION = 1
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


def now_utc() -> str:
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()


def write_manifest(artifact: Path, manifest: dict) -> Path:
    path = manifest_path(artifact)
    write_text_atomic(path, json.dumps(manifest, indent=2, default=str) + "\n")
    return path


def read_manifest(artifact: Path) -> dict:
    path = manifest_path(artifact)
    if not artifact.exists():
        raise ArtifactError(f"artifact not found: {artifact}")
    if not path.exists():
        raise ArtifactError(f"{artifact} has no manifest ({path.name}); was it made by `edgevit convert`?")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"manifest {path} is not valid JSON ({exc})") from None
    if manifest.get("manifest_version") != MANIFEST_VERSION:
        raise ArtifactError(f"manifest {path} has version {manifest.get('manifest_version')!r}, "
                            f"this edgevit reads {MANIFEST_VERSION}")
    return manifest
