"""Arguments checked at the edge, before any work: types, ranges and option combinations.

The CLI passes its options to the Python API, and both call these checks first (the CLI before importing torch),
so a bad value is refused in the same words whichever way it came in, and never after minutes of building and
exporting. Only the standard library is imported here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edgevit.errors import UsageError, WeightsError
from edgevit.export.naming import TARGETS

PRECISIONS = ("fp16", "fp32")
BACKENDS = ("xnnpack", "coreml")  # ExecuTorch delegates
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
INITS = ("exercised", "library")
DEFAULT_DEPLOYMENT_TARGET = "iOS17"
MAX_SEED = 2**63 - 1
MAX_BATCH = 1024
MAX_ITERATIONS = 100_000


@dataclass(frozen=True)
class TargetPlan:
    """One artifact to make: target, ExecuTorch delegate (None for other targets) and precision."""

    target: str
    backend: str | None
    precision: str


def _type_name(value: object) -> str:
    return type(value).__name__


def check_int(name: str, value: object, minimum: int, maximum: int | None = None) -> int:
    """An int (not a bool, not a str of digits) within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"{name} must be an integer, got {_type_name(value)} {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise UsageError(f"{name} must be {bound}, got {value}")
    return value


def check_bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{name} must be True or False, got {_type_name(value)} {value!r}")
    return value


def check_path(name: str, value: object, *, optional: bool = False) -> Path | None:
    if value is None and optional:
        return None
    if not isinstance(value, str | os.PathLike) or str(value) == "":
        raise UsageError(f"{name} must be a path (str or pathlib.Path), got {_type_name(value)} {value!r}")
    return Path(value)


def check_choice(name: str, value: object, choices: Sequence[str], *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or value not in choices:
        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def check_names(name: str, value: object) -> list[str]:
    """A str or a non-empty sequence of non-empty str (a lone str is one item, not its characters)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items or not all(isinstance(v, str) and v for v in items):
        raise UsageError(f"{name} must be a name or a non-empty list of names, got {_type_name(value)} {value!r}")
    return list(dict.fromkeys(items))  # duplicates would only repeat the same work


def check_targets(value: object) -> list[str]:
    targets = check_names("target", value)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise UsageError(f"unknown target(s) {', '.join(map(repr, unknown))}; choose from {', '.join(TARGETS)}")
    return targets


def check_weights(value: object) -> Path | None:
    """The checkpoint must exist as a file now, not after the model is built."""
    path = check_path("weights", value, optional=True)
    if path is not None and not path.exists():
        raise WeightsError(f"checkpoint not found: {path}")
    if path is not None and not path.is_file():
        raise WeightsError(f"checkpoint path is not a file: {path}")
    return path


def check_options(value: object) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise UsageError(f"options must be a dict of str to str, got {_type_name(value)} {value!r}")
    return dict(value)


def target_plans(targets: Sequence[str], precision: str | None, backend: str | None) -> list[TargetPlan]:
    """Per target: its delegate and precision; refuses a precision the target cannot make."""
    plans = []
    for tgt in targets:
        be = (backend or "xnnpack") if tgt == "executorch" else None
        prec = precision or ("fp32" if tgt == "onnx" or be == "xnnpack" else "fp16")
        if prec != "fp32" and tgt == "onnx":
            raise UsageError("the ONNX reference artifact is fp32 only; use --precision fp32 (or leave it unset), "
                             "or convert ONNX separately")
        if prec != "fp32" and be == "xnnpack":
            raise UsageError("the XNNPACK .pte is fp32 only; use --precision fp32, or --backend coreml for fp16")
        plans.append(TargetPlan(tgt, be, prec))
    return plans


@dataclass(frozen=True)
class ConvertArgs:
    """convert()'s arguments, checked and normalised."""

    model: str
    targets: list[TargetPlan]
    out: Path
    weights: Path | None
    options: dict[str, str]
    deployment_target: str
    tensor_input: bool
    init: str
    seed: int
    validate: bool
    mil_report: bool


def check_convert(model: object, target: object, out: object, *, weights: object = None, options: object = None,
                  precision: object = None, backend: object = None, deployment_target: object = None,
                  tensor_input: object = False, init: object = "exercised", seed: object = 0,
                  validate: object = True, mil_report: object = True,
                  progress: object = None) -> ConvertArgs:
    """Every convert argument and their combinations; raises UsageError (or WeightsError) before any work."""
    if not isinstance(model, str) or not model.strip():
        raise UsageError(f"model must be a model name (str, see `edgevit list`), got {_type_name(model)} {model!r}")
    targets = check_targets(target)
    out_path = check_path("out", out)
    prec = check_choice("precision", precision, PRECISIONS, optional=True)
    be = check_choice("backend", backend, BACKENDS, optional=True)
    dt = check_choice("deployment_target", deployment_target, DEPLOYMENT_TARGETS, optional=True)
    tensor = check_bool("tensor_input", tensor_input)
    if be is not None and "executorch" not in targets:
        raise UsageError(f"--backend {be} applies only to --target executorch (the ExecuTorch delegate); "
                         f"targets given: {', '.join(targets)}")
    plans = target_plans(targets, prec, be)
    uses_coreml = any(p.target == "coreml" or p.backend == "coreml" for p in plans)
    if dt is not None and not uses_coreml:
        raise UsageError(f"--deployment-target {dt} applies only to CoreML (--target coreml, or executorch with "
                         "--backend coreml)")
    if tensor and "coreml" not in targets:
        raise UsageError("--tensor-input applies only to --target coreml (the other targets always take tensors)")
    if progress is not None and not callable(progress):
        raise UsageError(f"progress must be a callable taking a str, got {_type_name(progress)}")
    return ConvertArgs(
        model=model, targets=plans, out=out_path, weights=check_weights(weights), options=check_options(options),
        deployment_target=dt or DEFAULT_DEPLOYMENT_TARGET, tensor_input=tensor,
        init=check_choice("init", init, INITS), seed=check_int("seed", seed, 0, MAX_SEED),
        validate=check_bool("validate", validate), mil_report=check_bool("mil_report", mil_report),
    )


def check_batches(value: object) -> list[int]:
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(items, list | tuple) or not items:
        raise UsageError(f"batches must be a non-empty list of integers, got {_type_name(value)} {value!r}")
    return list(dict.fromkeys(check_int("batch size", b, 1, MAX_BATCH) for b in items))


def check_bench(items: object, *, artifacts: object = None, batches: object = (1, 32), out: object = None,
                work_dir: object = None, progress: object = None) -> tuple[list[str], Path | None, list[int],
                                                                          Path | None]:
    """bench()'s arguments: (items, artifacts folder, batch sizes, out file), before any timing."""
    names = check_names("models", items)
    folder = check_path("artifacts", artifacts, optional=True)
    if folder is not None and not folder.is_dir():
        raise UsageError(f"--artifacts {folder} is not a directory of converted artifacts")
    out_path = check_path("out", out, optional=True)
    if out_path is not None and out_path.is_dir():
        raise UsageError(f"--out {out_path} is a directory; give the results file to write, e.g. {out_path}/bench.json")
    check_path("work_dir", work_dir, optional=True)
    if progress is not None and not callable(progress):
        raise UsageError(f"progress must be a callable taking a str, got {_type_name(progress)}")
    return names, folder, check_batches(batches), out_path


def progress_or_quiet(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    return progress if progress is not None else (lambda _message: None)
