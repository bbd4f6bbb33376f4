"""Which files go to the phone and which come back, by the artifact naming rules of edgevit.base.naming."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edgevit.base.artifact_folder import check_artifact
from edgevit.base.errors import ArtifactError
from edgevit.base.naming import EXTENSIONS, bundle_path, manifest_path, stem_of

PTE = "." + EXTENSIONS["executorch"]


def device_outputs_path(out: Path, artifact: Path) -> Path:
    """Where the phone's outputs for `artifact` are saved: beside the results file, `<stem>.device-outputs.json`."""
    return Path(out).with_name(f"{stem_of(Path(artifact)).name}.device-outputs.json")


def sidecars(artifact: Path) -> tuple[Path, Path]:
    """The manifest and validation-input folder pushed with an artifact."""
    return manifest_path(Path(artifact)), bundle_path(Path(artifact))


def check_artifacts(artifacts: Sequence[Path]) -> list[Path]:
    """Every artifact must be an existing `.pte` with its manifest; names must be unique (one folder on the phone)."""
    if not artifacts:
        raise ArtifactError("no artifacts to benchmark on Android: pass .pte files made by `edgevit convert "
                            "--target executorch`.")
    checked, names = [], {}
    for artifact in map(Path, artifacts):
        if artifact.suffix != PTE:
            raise ArtifactError(f"{artifact}: the Android harness runs ExecuTorch .pte artifacts only "
                                "(CoreML .mlpackage runs with ios_harness/, ONNX on the host).")
        if not artifact.is_file() and not artifact.is_symlink():
            raise ArtifactError(f"artifact not found: {artifact}")
        check_artifact(artifact)  # adb push copies what it is given: no link, no FIFO or device goes to the phone
        manifest = manifest_path(artifact)
        if not manifest.is_file() and not manifest.is_symlink():
            raise ArtifactError(f"{artifact} has no manifest ({manifest.name}); was it made by `edgevit convert`?")
        check_artifact(manifest)
        bundle = bundle_path(artifact)
        if bundle.exists() or bundle.is_symlink():
            check_artifact(bundle)
        if artifact.name in names:
            raise ArtifactError(f"two artifacts are both named {artifact.name} ({names[artifact.name]} and "
                                f"{artifact}); the phone keeps them in one folder, so benchmark them separately.")
        names[artifact.name] = artifact
        checked.append(artifact)
    return checked
