"""Does an artifact agree with its manifest? Checked before it is validated or timed.

Three things can make a reader trust the wrong description: a manifest copied or edited from another artifact
(its model, target, precision or backend do not name this file), bytes that changed since conversion (sha256),
and a program whose input is not the one the manifest promises (shape, and name where the format has one).
Any of them is an ArtifactError that says which, so no result is ever recorded under the wrong model.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from edgevit.base.artifact_folder import artifact_sha256
from edgevit.base.errors import ArtifactError
from edgevit.base.naming import artifact_name, manifest_path


def check_identity(artifact: Path, manifest: dict) -> None:
    """The manifest's model/target/backend/precision must name this very file (cheap: no hashing, no loading)."""
    expected = artifact_name(manifest["model"], manifest["target"], manifest["precision"], manifest["backend"])
    if artifact.name != expected or manifest["artifact"] != expected:
        raise ArtifactError(
            f"{manifest_path(artifact).name} describes {expected} (model {manifest['model']}, target "
            f"{manifest['target']}, precision {manifest['precision']}), not {artifact.name}: it was copied or edited "
            "from another artifact. Re-run edgevit convert for the model you mean."
        )


ARTIFACT_MAX_BATCH = 256  # convert writes batch 1; bench exports its own batch-N forms and never reads them back


def check_against_spec(artifact: Path, manifest: dict) -> None:
    """The manifest's input shape and labels against the model's own spec (the registry, not the artifact), before any
    tensor is allocated from them: [batch <= ARTIFACT_MAX_BATCH, *spec.input_size], the spec's labels."""
    from edgevit.models.registry import get_spec

    spec = get_spec(manifest["model"])
    shape = manifest["input"]["shape"]
    expected = list(spec.input_size)
    if not (len(shape) == len(expected) + 1 and shape[1:] == expected and 1 <= shape[0] <= ARTIFACT_MAX_BATCH):
        raise ArtifactError(
            f"{manifest_path(artifact).name}: input.shape is {shape}, but {spec.name} takes [batch, "
            f"{', '.join(map(str, expected))}] with batch between 1 and {ARTIFACT_MAX_BATCH}: refused before anything "
            "is allocated. Re-run edgevit convert.")
    if manifest.get("labels") != spec.labels:
        raise ArtifactError(f"{manifest_path(artifact).name}: labels is {manifest.get('labels')!r}, but {spec.name} "
                            f"predicts {spec.labels}. Re-run edgevit convert.")


def check_hash(artifact: Path, manifest: dict) -> None:
    if artifact_sha256(artifact) != manifest["sha256"]:
        raise ArtifactError(f"{artifact} does not match its manifest (sha256 differs): modified or corrupt. "
                            "Re-run edgevit convert.")


def program_input(artifact: Path, target: str) -> tuple[str | None, list[int | None]]:
    """(input name or None where the format has none, input shape with None for a dynamic axis)."""
    try:
        if target == "onnx":
            return _onnx_input(artifact)
        if target == "executorch":
            return _pte_input(artifact)
        return _coreml_input(artifact)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure means the file is not the program it claims
        raise ArtifactError(f"cannot read the program's input from {artifact} ({type(exc).__name__}: {exc}); "
                            "is it corrupt? Re-run edgevit convert.") from None


def _onnx_input(artifact: Path) -> tuple[str | None, list[int | None]]:
    import onnx

    model = onnx.load(str(artifact), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    first = next(i for i in model.graph.input if i.name not in initializers)
    dims = first.type.tensor_type.shape.dim
    return first.name, [d.dim_value if d.HasField("dim_value") else None for d in dims]


def _pte_input(artifact: Path) -> tuple[str | None, list[int | None]]:
    from edgevit.export.pte_check import check_pte

    check_pte(artifact)  # ExecuTorch aborts on some malformed files: checked (in a child process) before it loads here
    from executorch.runtime import Runtime

    with contextlib.redirect_stderr(io.StringIO()):
        meta = Runtime.get().load_program(str(artifact)).metadata("forward")
    return None, list(meta.input_tensor_meta(0).sizes())


def _coreml_input(artifact: Path) -> tuple[str | None, list[int | None]]:
    import coremltools as ct

    feature = ct.utils.load_spec(str(artifact)).description.input[0]
    kind = feature.type.WhichOneof("Type")
    if kind == "imageType":
        image = feature.type.imageType
        return feature.name, [1, 3, int(image.height), int(image.width)]
    if kind == "multiArrayType":
        return feature.name, [int(d) for d in feature.type.multiArrayType.shape]
    raise ArtifactError(f"{artifact}: unexpected CoreML input type {kind}")


def check_input_spec(artifact: Path, manifest: dict) -> None:
    name, shape = program_input(artifact, manifest["target"])
    expected = manifest["input"]
    fits = len(shape) == len(expected["shape"]) and all(s is None or s == e for s, e in zip(shape, expected["shape"],
                                                                                          strict=False))
    if not fits or (name is not None and name != expected["name"]):
        raise ArtifactError(
            f"{artifact.name}: the program's input is {name or 'unnamed'} {shape}, but its manifest says "
            f"{expected['name']} {expected['shape']}: the manifest does not describe this program. "
            "Re-run edgevit convert."
        )


def verify_artifact(artifact: Path, manifest: dict) -> None:
    """All four checks, cheapest first."""
    check_identity(artifact, manifest)
    check_against_spec(artifact, manifest)
    check_hash(artifact, manifest)
    check_input_spec(artifact, manifest)
