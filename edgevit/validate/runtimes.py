"""Run an artifact in the runtime this host has for it: ExecuTorch, onnxruntime, CoreML (macOS only), or
edgevit's MIL reference interpreter for a ``.mlpackage`` anywhere (runtime ``mil-reference``), and for a
CoreML-delegated ``.pte`` off macOS (its delegate payloads extracted as ML programs).

A runtime that cannot run here raises ``RuntimeUnavailable`` with the reason, which validation and the
benchmark record as "not run: <reason>" — never as a pass or a number.
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from edgevit.base.errors import ArtifactError, EdgevitError
from edgevit.base.naming import target_of
from edgevit.base.native_output import native_stderr_to_log, refusals_since

MIL_REFERENCE = "mil-reference"
COREML_RUNTIMES = ("coreml", MIL_REFERENCE)


LABEL_CLASSES = {"imagenet-1k": 1000}


class RuntimeUnavailable(Exception):
    """This host has no runtime for the artifact (e.g. CoreML on Linux)."""


class RuntimeFailure(ArtifactError):
    """The runtime refused or failed on the artifact (onnxruntime, ExecuTorch, coremltools, the interpreter, or memory):
    one paragraph naming the artifact, the step and the runtime's own words, instead of its traceback."""


@contextlib.contextmanager
def runtime_errors(runtime: str, step: str, artifact: Path | str) -> Iterator[None]:
    """Turn whatever a runtime raises while loading or running an artifact into RuntimeFailure (exit 2).

    RuntimeUnavailable ("not run") and edgevit's own errors pass through unchanged.
    """
    try:
        yield
    except (RuntimeUnavailable, EdgevitError):
        raise
    except MemoryError:
        raise RuntimeFailure(f"{runtime} ran out of memory {step} {Path(artifact).name}: the program asks for more "
                             "than this host can give (an input or intermediate larger than the model's spec). "
                             "Re-run edgevit convert, or check where the artifact came from.") from None
    except Exception as exc:  # noqa: BLE001 - runtimes raise their own exception types (pybind11, onnxruntime)
        text = " ".join(str(exc).split())[:600] or type(exc).__name__
        raise RuntimeFailure(f"{runtime} failed {step} {Path(artifact).name} ({type(exc).__name__}: {text}). The "
                             "artifact is corrupt or is not a program edgevit convert made for this model; re-run "
                             "edgevit convert.") from None


def check_output(out: np.ndarray, batch: int, classes: int | None, runtime: str, artifact: Path | str) -> np.ndarray:
    """The program's output must be one row of ``classes`` scores per input: otherwise nothing can be compared."""
    if out.ndim != 2 or out.shape[0] != batch or (classes is not None and out.shape[1] != classes):
        want = f"({batch}, {classes if classes is not None else 'classes'})"
        raise RuntimeFailure(f"{Path(artifact).name} returned an output of shape {tuple(out.shape)} in {runtime}, "
                             f"not {want} as the model's spec says: it is not the model its manifest names. "
                             "Re-run edgevit convert.")
    return out


class Runner:
    """A loaded artifact: ``run`` maps an input to its first output as float32 numpy."""

    runtime = ""
    backend: str | None = None
    load_ms: float = 0.0
    threads: int | None = None  # the thread count it runs with, where this runner sets or can read it
    classes: int | None = None  # scores per input the model's labels imply (open_runner sets it)
    path: Path | str = ""

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        raise NotImplementedError

    def checked_run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        """``run``, any runtime error as RuntimeFailure, and an output that is one row of scores per input."""
        with runtime_errors(self.runtime, "running", self.path):
            out = self.run(tensor, image)
        return check_output(out, tensor.shape[0], self.classes, self.runtime, self.path)


class ExecuTorchRunner(Runner):
    runtime = "executorch"

    def __init__(self, path: Path, backend: str | None, threads: int | None = None):
        from executorch.runtime import Runtime

        from edgevit.export.pte_check import check_pte
        from edgevit.validate.threads import executorch_threads, set_executorch_threads

        check_pte(path)  # before the runtime sees it: a file ExecuTorch would abort on never reaches it

        if backend == "coreml" and platform.system() != "Darwin":
            # open_runner sends it to PteCoreMLReferenceRunner here; ExecuTorch itself cannot run the delegate
            raise RuntimeUnavailable("the CoreML-delegated .pte needs the CoreML runtime (macOS/iOS) to run in "
                                     "ExecuTorch; off macOS open_runner checks it with the MIL reference interpreter")
        self.backend = backend
        if threads is not None:
            set_executorch_threads(threads)  # before load_method: XNNPACK takes the pool when it initialises
        self.threads = executorch_threads()
        self.path = path
        start = time.perf_counter()
        with native_stderr_to_log() as log:
            offset = log.stat().st_size
            try:
                with runtime_errors("ExecuTorch", "loading", path):
                    self._method = Runtime.get().load_program(str(path)).load_method("forward")
            except RuntimeFailure:
                said = refusals_since(log, offset)  # the delegate's own words: which node it refused, and why
                if not said:
                    raise
                raise RuntimeFailure(f"ExecuTorch failed loading {Path(path).name}: its delegate refused the "
                                     f"program ({said}). An artifact edgevit convert just made that fails here is a "
                                     "program the runtime cannot build (an op or parameter its kernels do not "
                                     "take); otherwise the file is corrupt or not edgevit's.") from None
        self.load_ms = (time.perf_counter() - start) * 1e3

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        with runtime_errors("ExecuTorch", "running", self.path):
            return self._method.execute([tensor.contiguous()])[0].numpy().astype(np.float32)


class OnnxRunner(Runner):
    runtime = "onnxruntime"
    backend = "cpu-execution-provider"

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort

        from edgevit.validate.threads import onnxruntime_options

        options = onnxruntime_options(threads) if threads is not None else None  # None: onnxruntime's default
        self.threads = threads
        self.path = path
        start = time.perf_counter()
        with runtime_errors("onnxruntime", "loading", path):
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            self._input = self._session.get_inputs()[0].name
        self.load_ms = (time.perf_counter() - start) * 1e3

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        with runtime_errors("onnxruntime", "running", self.path):
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
                from edgevit.models.spec import imagenet_labels

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
        with runtime_errors("coremltools", "loading", path):
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
        with runtime_errors(MIL_REFERENCE, "loading", path):
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


class PteCoreMLReferenceRunner(Runner):
    """A CoreML-delegated ``.pte`` on a host without CoreML: its delegate payloads, extracted as ML programs
    (edgevit.export.pte_coreml), run by the MIL reference interpreter and wired as the ``.pte``'s forward wires them.

    It proves that the programs inside the ``.pte`` compute the original function; it is neither ExecuTorch's CoreML
    delegate runtime nor CoreML, so it is never timed. A ``.pte`` whose forward also runs ExecuTorch kernels, or
    that holds a compiled ``.mlmodelc``, is "not run" (RuntimeUnavailable, with the reason); a file that is no
    ``.pte`` or has no CoreML delegate raises ArtifactError: that is a defect, not a missing runtime.
    """

    runtime = MIL_REFERENCE
    backend = "coreml-delegate"

    def __init__(self, path: Path, manifest: dict, precision: str = "auto"):
        import tempfile

        from edgevit.base.errors import CompiledCoreMLModelError, UncomposablePartitionsError
        from edgevit.export.pte_coreml import read_delegated_forward
        from edgevit.mil import MilModel

        if manifest["input"]["kind"] != "tensor":
            raise RuntimeUnavailable(f"a .pte takes a tensor input, but the manifest says {manifest['input']['kind']}")
        start = time.perf_counter()
        self._workdir = tempfile.TemporaryDirectory(prefix="edgevit-pte-coreml-")  # the packages live as long as we do
        try:
            self._forward = read_delegated_forward(path, Path(self._workdir.name))
        except (CompiledCoreMLModelError, UncomposablePartitionsError) as exc:
            self._workdir.cleanup()
            raise RuntimeUnavailable(str(exc)) from None
        with runtime_errors(MIL_REFERENCE, "loading", path):
            self._models = {p.delegate_index: MilModel(p.package, precision=precision)
                            for p in self._forward.partitions}
        self.load_ms = (time.perf_counter() - start) * 1e3
        for partition in self._forward.partitions:
            if partition.function not in (None, "main"):
                raise RuntimeUnavailable(f"CoreML delegate {partition.delegate_index} calls function "
                                         f"{partition.function!r} of a multifunction model; the interpreter runs main")
            missing = self._models[partition.delegate_index].unsupported()
            if missing is not None:
                raise RuntimeUnavailable(f"CoreML delegate {partition.delegate_index}: {missing}")
        if len(self._forward.outputs) != 1:
            raise RuntimeUnavailable(f"the .pte's forward returns {len(self._forward.outputs)} outputs; "
                                     "validation compares one")

    @property
    def functions(self) -> list:
        """The ML programs' main functions, in delegate order (what the fidelity check reads stored values from)."""
        return [self._models[p.delegate_index].loaded.main for p in self._forward.partitions]

    def _predict(self, partition, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self._models[partition.delegate_index].predict(feeds)

    def run(self, tensor: torch.Tensor, image: Image.Image | None = None) -> np.ndarray:
        (out,) = self._forward.run([tensor.contiguous().numpy()], self._predict)
        return np.asarray(out, dtype=np.float32)

    @property
    def diagnosis(self) -> str:
        """What the interpreter saw that explains a failure (fp16 overflow), or ''."""
        op = next((m.fp16_overflow for m in self._models.values() if m.fp16_overflow), None)
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


def open_runner(artifact: Path, manifest: dict, runtime: str | None = None, threads: int | None = None) -> Runner:
    """Load ``artifact`` in its runtime, or raise RuntimeUnavailable saying why not.

    ``runtime`` chooses for a ``.mlpackage``: "coreml" (macOS only) or "mil-reference" (anywhere); by default
    the CoreML runtime where there is one, else the interpreter. A CoreML-delegated ``.pte`` runs in ExecuTorch on
    macOS and, elsewhere or with runtime "mil-reference", as its extracted ML programs in the interpreter.
    ``threads`` sets the ExecuTorch / onnxruntime thread count (edgevit.validate.threads); None keeps theirs.
    """
    runner = _open_runner(artifact, manifest, runtime, threads)
    runner.path = artifact
    runner.classes = LABEL_CLASSES.get(manifest.get("labels"))
    return runner


def _open_runner(artifact: Path, manifest: dict, runtime: str | None, threads: int | None) -> Runner:
    target = target_of(artifact)
    coreml_pte = target == "executorch" and manifest.get("backend") == "coreml"
    if runtime is not None and target != "coreml" and not (coreml_pte and runtime == MIL_REFERENCE):
        raise EdgevitError(f"--runtime {runtime} applies to CoreML artifacts (and {MIL_REFERENCE} to a "
                           f"CoreML-delegated .pte); {artifact.name} runs in its own runtime")
    if target == "executorch":
        if coreml_pte and (runtime == MIL_REFERENCE or platform.system() != "Darwin"):
            return PteCoreMLReferenceRunner(artifact, manifest)
        return ExecuTorchRunner(artifact, manifest.get("backend"), threads)
    if target == "onnx":
        return OnnxRunner(artifact, threads)
    if coreml_runtime_here(runtime) == MIL_REFERENCE:
        return MilReferenceRunner(artifact, manifest)
    return CoreMLRunner(artifact, manifest)
