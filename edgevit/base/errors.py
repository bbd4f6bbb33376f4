"""Errors a user can cause. The CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations


class EdgevitError(Exception):
    """Base class: the message says what went wrong and what to do about it."""

    exit_code = 2


class UsageError(EdgevitError, ValueError):
    """An argument of the wrong type or out of range, or options that do not go together (found before any work)."""


class UnknownModelError(EdgevitError):
    """A model name that is not in the registry (or not in timm)."""


class WeightsError(EdgevitError):
    """A checkpoint that cannot be read, is unsafe, or does not fit the model."""


class ExportError(EdgevitError):
    """An exporter failed; the message names the module and op where it could be found.

    ``target``, ``op`` and ``module`` carry the same facts as fields (None where unknown), so a sweep
    records them without parsing the message.
    """

    def __init__(self, message: str, *, target: str | None = None, op: str | None = None,
                 module: str | None = None):
        super().__init__(message)
        self.target, self.op, self.module = target, op, module


class OutputError(EdgevitError):
    """An output path that cannot be written."""


class ArtifactError(EdgevitError):
    """An artifact (or its manifest) that is missing, corrupt, or of an unknown kind."""


class SchemaError(EdgevitError):
    """A results file that does not conform to edgevit/bench/schema.json."""


class PteError(ArtifactError):
    """A ``.pte`` that cannot be read back into what a check needs (edgevit.export.pte_coreml)."""


class NotAPteError(PteError):
    """The file is not an ExecuTorch program (no ``ET`` flatbuffer identifier, or it does not deserialise)."""


class NoCoreMLDelegateError(PteError):
    """The ``.pte`` has no CoreML delegate (an XNNPACK or portable-only program), so there is no ML program in it."""


class CompiledCoreMLModelError(PteError):
    """The CoreML delegate holds a compiled ``.mlmodelc``, which cannot be read back into a MIL program."""


class UncomposablePartitionsError(PteError):
    """The method runs ExecuTorch kernels between or around its CoreML partitions: the partitions alone are not the
    artifact's function, and this host cannot run those kernels around them."""
