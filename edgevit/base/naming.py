"""Artifact names: ``<model>.<target>[.<backend>][.<precision>].<ext>`` plus ``<same>.json`` manifest."""

from __future__ import annotations

from pathlib import Path

EXTENSIONS = {"coreml": "mlpackage", "executorch": "pte", "onnx": "onnx"}
TARGETS = tuple(EXTENSIONS)


def safe_model_name(model: str) -> str:
    return model.replace(":", "-").replace("/", "-")


def artifact_name(model: str, target: str, precision: str, backend: str | None = None) -> str:
    parts = [safe_model_name(model), target] + ([backend] if backend else []) + [precision, EXTENSIONS[target]]
    return ".".join(parts)


def stem_of(artifact: Path) -> Path:
    """The artifact path without its extension: manifest is ``stem.json``, inputs are ``stem.validation/``."""
    return artifact.with_name(artifact.name[: -len(artifact.suffix)])


def manifest_path(artifact: Path) -> Path:
    return stem_of(artifact).with_name(stem_of(artifact).name + ".json")


def bundle_path(artifact: Path) -> Path:
    return stem_of(artifact).with_name(stem_of(artifact).name + ".validation")


def target_of(artifact: Path) -> str:
    for target, ext in EXTENSIONS.items():
        if artifact.name.endswith("." + ext):
            return target
    raise ValueError(f"unknown artifact kind: {artifact.name} (expected .mlpackage, .pte or .onnx)")
