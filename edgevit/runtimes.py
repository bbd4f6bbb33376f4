"""Run an artifact in the runtime this host has for it: ExecuTorch, onnxruntime, CoreML (macOS only), or
edgevit's MIL reference interpreter for a ``.mlpackage`` anywhere (runtime ``mil-reference``).

A runtime that cannot run here raises ``RuntimeUnavailable`` with the reason, which validation and the
benchmark record as "not run: <reason>" — never as a pass or a number.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgevit.errors import EdgevitError
from edgevit.export.naming import target_of

MIL_REFERENCE = "mil-reference"
COREML_RUNTIMES = ("coreml", MIL_REFERENCE)


class RuntimeUnavailable(Exception):
    """This host has no runtime for the artifact (e.g. CoreML on Linux)."""


class Runner:
    """A loaded artifact: ``run`` maps an input to its first output as float32 numpy."""

    runtime = ""
    backend: str | None = None
    load_ms: float = 0.0

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        raise NotImplementedError


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: Path, backend: str | None):
        from executorch.runtime import Runtime

        if backend == "coreml" and platform.system() != "Darwin":
            raise RuntimeUnavailable("the CoreML-delegated .pte needs the CoreML runtime (macOS/iOS)")
        self.backend = backend
        start = time.perf_counter()
        self._method = Runtime.get().load_program(str(path)).load_method("forward")
        self.load_ms = (time.perf_counter() - start) * 1e3

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        return self._method.execute([tensor.contiguous()])[0].numpy().astype(np.float32)


class OnnxRunner(Runner):
    runtime = "onnxruntime"
    backend = "cpu-execution-provider"

    def __init__(self, path: Path):
        import onnxruntime as ort

        start = time.perf_counter()
        self._session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.load_ms = (time.perf_counter() - start) * 1e3
        self._input = self._session.get_inputs()[0].name

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        return self._session.run(None, {self._input: tensor.numpy()})[0].astype(np.float32)


class _PredictRunner(Runner):
    """A runner over an object with ``MLModel.predict``'s contract (the CoreML runtime or the interpreter)."""

    _model = None
    _input: dict
    _output: dict

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        if self._input["kind"] == "image":
            if image is None:
                raise RuntimeUnavailable("image-input CoreML model: random tensors have no image form")
            out = self._model.predict({self._input["name"]: image})[self._output["name"]]
            if isinstance(out, dict):  # classifier probabilities come back as {label: p}: back to class order
                from edgevit.export.coreml import imagenet_labels

                out = np.array([out[label] for label in imagenet_labels()], dtype=np.float32)[None]
            return np.asarray(out, dtype=np.float32)
        out = self._model.predict({self._input["name"]: tensor.numpy()})[self._output["name"]]
        return np.asarray(out, dtype=np.float32)


class CoreMLRunner(_PredictRunner):
    runtime = "coreml"

    def __init__(self, path: Path, manifest: dict):
        if platform.system() != "Darwin":
            raise RuntimeUnavailable("CoreML runtime needs macOS")
        import coremltools as ct

        start = time.perf_counter()
        self._model = ct.models.MLModel(str(path))
        self.load_ms = (time.perf_counter() - start) * 1e3
        self._input = manifest["input"]
        self._output = manifest["output"]
        self.backend = "all"


class MilReferenceRunner(_PredictRunner):
    """edgevit's MIL reference interpreter (edgevit.mil): the saved ML program run op by op on this CPU.

    It proves that the converted program computes the original function; it is not the CoreML runtime, whose
    per-compute-unit behaviour the iOS harness measures.
    """

    runtime = MIL_REFERENCE
    backend = "cpu"

    def __init__(self, path: Path, manifest: dict):
        from edgevit.mil import MilModel

        start = time.perf_counter()
        self._model = MilModel(path)
        self.load_ms = (time.perf_counter() - start) * 1e3
        missing = self._model.unsupported()  # before any input runs: "not run", naming the op and the layer
        if missing is not None:
            raise RuntimeUnavailable(str(missing))
        self._input = manifest["input"]
        self._output = manifest["output"]

    @property
    def diagnosis(self) -> str:
        """What the interpreter saw that explains a failure (fp16 overflow), or ''."""
        op = self._model.fp16_overflow
        return (f"fp16 overflow: the output of {op} exceeded ±65504 and became infinite in fp16 storage, as it would "
                "in an fp16 CoreML runtime; convert with --precision fp32") if op else ""


def coreml_runtime_here(requested: str | None = None) -> str:
    """The runtime that checks a ``.mlpackage`` here: the CoreML runtime on macOS, the interpreter elsewhere."""
    if requested is not None:
        if requested not in COREML_RUNTIMES:
            raise EdgevitError(f"unknown runtime {requested!r} for a CoreML artifact; choose one of "
                               f"{', '.join(COREML_RUNTIMES)}")
        return requested
    return "coreml" if platform.system() == "Darwin" else MIL_REFERENCE


def open_runner(artifact: Path, manifest: dict, runtime: str | None = None) -> Runner:
    """Load ``artifact`` in its runtime, or raise RuntimeUnavailable saying why not.

    ``runtime`` chooses for a ``.mlpackage``: "coreml" (macOS only) or "mil-reference" (anywhere); by default
    the CoreML runtime where there is one, else the interpreter.
    """
    target = target_of(artifact)
    if runtime is not None and target != "coreml":
        raise EdgevitError(f"--runtime {runtime} applies to CoreML artifacts; {artifact.name} runs in its own runtime")
    if target == "executorch":
        return ExecuTorchRunner(artifact, manifest.get("backend"))
    if target == "onnx":
        return OnnxRunner(artifact)
    if coreml_runtime_here(runtime) == MIL_REFERENCE:
        return MilReferenceRunner(artifact, manifest)
    return CoreMLRunner(artifact, manifest)
