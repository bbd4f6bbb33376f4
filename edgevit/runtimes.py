"""Run an artifact in the runtime this host has for it: ExecuTorch, onnxruntime, or CoreML (macOS only).

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

from edgevit.export.naming import target_of


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


class CoreMLRunner(Runner):
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


def open_runner(artifact: Path, manifest: dict) -> Runner:
    """Load ``artifact`` in its runtime, or raise RuntimeUnavailable saying why not."""
    target = target_of(artifact)
    if target == "executorch":
        return ExecuTorchRunner(artifact, manifest.get("backend"))
    if target == "onnx":
        return OnnxRunner(artifact)
    return CoreMLRunner(artifact, manifest)
