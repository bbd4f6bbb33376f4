"""Artifact names: ``<model>.<target>[.<backend>][.<precision>].<ext>`` plus ``<same>.json`` manifest."""

from __future__ import annotations

from pathlib import Path

EXTENSIONS = {"coreml": "mlpackage", "executorch": "pte", "onnx": "onnx"}
TARGETS = tuple(EXTENSIONS)
COMPILED_COREML = "mlmodelc"  # a compiled CoreML model (Xcode's form of an .mlpackage); the iOS harness runs it
KINDS = (*EXTENSIONS.values(), COMPILED_COREML)


def safe_model_name(model: str) -> str:
    return model.replace(":", "-").replace("/", "-")


def artifact_name(model: str, target: str, precision: str, backend: str | None = None) -> str:
    parts = [safe_model_name(model), target] + ([backend] if backend else []) + [precision, EXTENSIONS[target]]
    return ".".join(parts)


def stem_of(artifact: Path) -> Path:
    """The artifact path without its extension: manifest is ``stem.json``, inputs are ``stem.validation/``."""
    return artifact.with_name(artifact.name[: -len(artifact.suffix)])


def kind_of(artifact: Path) -> str | None:
    """The artifact kind its name says (the extension: mlpackage, pte, onnx or mlmodelc), None for other files.

    A bare extension (``.pte``) is a hidden file, not an artifact, so it has no kind.
    """
    kind = Path(artifact).suffix[1:]
    return kind if kind in KINDS else None


def manifest_path(artifact: Path) -> Path:
    return stem_of(artifact).with_name(stem_of(artifact).name + ".json")


def bundle_path(artifact: Path) -> Path:
    return stem_of(artifact).with_name(stem_of(artifact).name + ".validation")


def target_of(artifact: Path) -> str:
    for target, ext in EXTENSIONS.items():
        if artifact.name.endswith("." + ext):
            return target
    raise ValueError(f"unknown artifact kind: {artifact.name} (expected .mlpackage, .pte or .onnx)")
