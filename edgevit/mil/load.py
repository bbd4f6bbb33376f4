"""Load a saved ML program back into a pymil ``Program`` with coremltools' own milproto loader.

The interpreter executes what was serialised (the package's ``model.mlmodel`` and ``weights/weight.bin``),
not the in-memory program the converter built, so a package that was saved wrong is caught.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevit.base.errors import ArtifactError
from edgevit.mil.kernels import MilInterpreterError


@dataclass
class LoadedProgram:
    """A deserialised ML program and the model description ``predict`` needs to shape inputs and outputs."""

    program: Any  # coremltools.converters.mil.mil.Program
    description: Any  # Model_pb2.ModelDescription
    specification_version: int
    source: str

    @property
    def main(self):
        return self.program.functions["main"]

    @property
    def is_classifier(self) -> bool:
        return bool(self.description.predictedFeatureName)


def _mlmodel_of(model: Any):
    import coremltools as ct

    if isinstance(model, ct.models.MLModel):
        return model
    path = Path(model)
    if not path.exists():
        raise ArtifactError(f"{path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # noqa: BLE001 - a corrupt package: say so, with the cause
        raise ArtifactError(f"{path} is not a readable Core ML model: {type(exc).__name__}: {exc}") from None


def load_program(model: Any) -> LoadedProgram:
    """``model``: a ``.mlpackage`` path or a ``coremltools.models.MLModel`` (loaded, skip_model_load, or just
    converted in memory). Raises ``MilInterpreterError`` for a neural-network (not ML program) model."""
    from coremltools.converters.mil.frontend.milproto.load import load

    mlmodel = _mlmodel_of(model)
    spec = mlmodel.get_spec()
    if spec.WhichOneof("Type") != "mlProgram":
        raise MilInterpreterError(
            f"{'this model' if not isinstance(model, (str, Path)) else model} is a "
            f"{spec.WhichOneof('Type')!r} model, not an ML program: the MIL reference interpreter runs ML programs")
    weights_dir = mlmodel.weights_dir
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = load(spec, spec.specificationVersion, file_weights_dir=weights_dir or "")
    except Exception as exc:  # noqa: BLE001 - a package whose program or weights do not deserialise
        raise ArtifactError(f"cannot load the ML program of {model}: {type(exc).__name__}: {exc}") from None
    if "main" not in program.functions:
        raise MilInterpreterError(f"the ML program of {model} has no 'main' function")
    source = str(model) if isinstance(model, (str, Path)) else (getattr(mlmodel, "package_path", None) or "MLModel")
    return LoadedProgram(program, spec.description, spec.specificationVersion, str(source))


def logits_var(function) -> str:
    """The name of a classifier program's logits (the input of the softmax that makes its probabilities), or the
    function's first output when it has no softmax before its outputs."""
    outputs = list(function.outputs)
    producers = {var.name: op for op in function.operations for var in op.outputs}
    for out in outputs:
        op = producers.get(out.name)
        seen = 0
        while op is not None and seen < 4:  # classify(probabilities=softmax(x)) or a cast after the softmax
            if op.op_type == "softmax":
                return op.x.name
            source = next((v for v in op.inputs.values() if hasattr(v, "name") and v.name in producers), None)
            op = producers.get(source.name) if source is not None else None
            seen += 1
    return outputs[0].name
