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

from edgevit.base.errors import UsageError, WeightsError
from edgevit.base.naming import TARGETS

PRECISIONS = ("fp16", "fp32")
BACKENDS = ("xnnpack", "coreml")  # ExecuTorch delegates
DEPLOYMENT_TARGETS = ("iOS16", "iOS17", "iOS18", "macOS13", "macOS14", "macOS15")
INITS = ("exercised", "library")
DEFAULT_DEPLOYMENT_TARGET = "iOS17"
MAX_SEED = 2**63 - 1
MAX_BATCH = 1024
MAX_ITERATIONS = 100_000
# post-training quantization (--quantize) per target, and CoreML weight compression (--compress)
QUANTIZE_SCHEMES = ("int8", "int8-dynamic")
COMPRESS_SCHEMES = ("w8", "w4", "palette6", "palette4", "w8a8")
IOS18_COMPRESS = {"w4": "per-block int4 weights (constexpr_blockwise_shift_scale)"}
IOS17_COMPRESS = {"w8a8": "the activation quantize/dequantize ops (MIL iOS17 opset)"}
CALIBRATED_COMPRESS = ("w8a8",)  # compression schemes that calibrate activation ranges
DEFAULT_MIN_PSNR_DB = 30.0
KEEP_FLOAT_MIN_PSNR_DB = 35.0  # the goal of --keep-float auto, on logits, unless --min-psnr says otherwise
DEFAULT_SCAN_BUDGET_S = 600.0
MIN_CALIBRATION_IMAGES = 8
MAX_CALIBRATION_IMAGES = 1000
CALIBRATION_SUFFIXES = (".jpg", ".jpeg", ".png")
_OS_ORDER = {"iOS16": 16, "iOS17": 17, "iOS18": 18, "macOS13": 16, "macOS14": 17, "macOS15": 18}


@dataclass(frozen=True)
class TargetPlan:
    """One artifact to make: target, ExecuTorch delegate (None for other targets) and precision."""

    target: str
    backend: str | None
    precision: str  # the name's precision token: fp32/fp16, or the quantization/compression scheme (int8, w8, ...)
    compute_precision: str | None = None  # set for quantized/compressed plans: the float precision around them


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


def quantized_plans(targets: Sequence[str], precision: str | None, backend: str | None, quantize: str | None,
                    compress: str | None, deployment_target: str | None) -> tuple[list[TargetPlan], str | None]:
    """Plans for --quantize/--compress (refusing every combination no artifact could honour) and the deployment
    target the compression needs (None: keep the default)."""
    if quantize is not None and compress is not None:
        raise UsageError("--quantize (ExecuTorch/ONNX int8) and --compress (CoreML weight compression) are different "
                         "targets' schemes; give one of them")
    if compress is not None:
        if targets != ["coreml"]:
            raise UsageError(f"--compress {compress} applies only to --target coreml (CoreML weight compression); "
                             f"targets given: {', '.join(targets)}. For ExecuTorch or ONNX use --quantize int8")
        dt = deployment_target
        if compress in IOS18_COMPRESS:
            if dt is not None and _OS_ORDER[dt] < 18:
                raise UsageError(f"--compress {compress} needs --deployment-target iOS18 or macOS15: "
                                 f"{IOS18_COMPRESS[compress]} exist only from iOS18, not {dt}")
            dt = dt or "iOS18"
        if compress in IOS17_COMPRESS and dt is not None and _OS_ORDER[dt] < 17:
            raise UsageError(f"--compress {compress} needs --deployment-target iOS17 or later (or macOS14 or "
                             f"later): {IOS17_COMPRESS[compress]} exist only from iOS17, not {dt}. Use --compress "
                             "w8 for int8 weights alone on iOS16")
        return [TargetPlan("coreml", None, compress, precision or "fp16")], dt
    if "coreml" in targets:
        raise UsageError(f"--quantize {quantize} does not apply to --target coreml; CoreML compresses weights instead: "
                         "--compress w8|w4|palette6|palette4")
    if backend == "coreml":
        raise UsageError(f"--quantize {quantize} does not apply to the CoreML-delegated .pte (--backend coreml); use "
                         "--backend xnnpack for int8, or --target coreml --compress w8 for a compressed CoreML model")
    if precision not in (None, "fp32"):
        raise UsageError(f"--quantize {quantize} is quantized from the fp32 model, and the float layers it leaves "
                         f"stay fp32; --precision {precision} cannot apply (leave it unset)")
    if quantize == "int8-dynamic":
        raise UsageError("--quantize int8-dynamic is refused: ExecuTorch 1.5's XNNPACK dynamic int8 quantizes only "
                         "linear layers (activations quantized at run time), and edgevit's prepared models compute "
                         "their projections as 1x1 convolutions, which it leaves in float, so the artifact would be "
                         "a float model under an int8 name; onnxruntime's dynamic QDQ has the same limit here. "
                         "Use --quantize int8 (static, calibrated)")
    return [TargetPlan(t, "xnnpack" if t == "executorch" else None, quantize, "fp32") for t in targets], None


def check_min_psnr(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < float(value) < 200:
        raise UsageError(f"min_psnr must be a number of dB between 0 and 200, got {_type_name(value)} {value!r}")
    return float(value)


def check_calibration(value: object) -> list[Path] | None:
    """The user's calibration images: a folder of JPEG/PNG, each opened now (Pillow only), before any work."""
    folder = check_path("calibration", value, optional=True)
    if folder is None:
        return None
    if not folder.is_dir():
        raise UsageError(f"--calibration {folder} is not a folder (give a folder of JPEG/PNG images)")
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in CALIBRATION_SUFFIXES)
    if not files:
        raise UsageError(f"--calibration {folder} holds no JPEG or PNG image (looked for "
                         f"{', '.join('*' + s for s in CALIBRATION_SUFFIXES)}); nothing to calibrate on")
    if len(files) < MIN_CALIBRATION_IMAGES:
        raise UsageError(f"--calibration {folder} holds {len(files)} image(s); static int8 needs at least "
                         f"{MIN_CALIBRATION_IMAGES} to estimate activation ranges (more is better)")
    if len(files) > MAX_CALIBRATION_IMAGES:
        raise UsageError(f"--calibration {folder} holds {len(files)} images; at most {MAX_CALIBRATION_IMAGES} are "
                         "used (ranges settle long before): give a subset")
    from PIL import Image

    for path in files:
        try:
            with Image.open(path) as img:
                img.convert("RGB").load()
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise UsageError(f"--calibration: {path} is not a readable image ({type(exc).__name__}: {exc})") from None
    return files


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
    quantize: str | None = None
    compress: str | None = None
    calibration: list[Path] | None = None  # the user's images; None: the bundled photos, cropped and flipped
    min_psnr: float | None = None
    pretrained: str | bool | None = None  # True: timm's default tag; a str: that tag (edgevit.models.pretrained)
    revision: str | None = None  # the hub revision (branch, tag or commit) of --pretrained
    keep_float: list[str] | str | None = None  # "auto" or module paths kept in float (--quantize int8, .pte/.onnx)
    scan_budget: float = DEFAULT_SCAN_BUDGET_S


def check_pretrained(pretrained: object, revision: object, weights: object) -> tuple[str | bool | None, str | None]:
    """--pretrained [TAG] and --revision REV: a tag (or True), never together with --weights."""
    if pretrained is False:
        pretrained = None
    if pretrained is not None and pretrained is not True and not (isinstance(pretrained, str) and pretrained.strip()):
        raise UsageError(f"pretrained must be True (timm's default tag) or a tag name (str, see `edgevit weights ls "
                         f"MODEL`), got {_type_name(pretrained)} {pretrained!r}")
    if pretrained is not None and weights is not None:
        raise UsageError("--pretrained and --weights both give the weights; give one: --pretrained [TAG] for timm's "
                         "trained weights from the hub, or --weights FILE for a local checkpoint")
    if revision is not None:
        if not isinstance(revision, str) or not revision.strip() or any(c.isspace() for c in revision):
            raise UsageError(f"revision must be a branch, tag or commit hash of the hub repository, got "
                             f"{_type_name(revision)} {revision!r}")
        if pretrained is None:
            raise UsageError(f"--revision {revision} pins the hub revision of --pretrained weights; it needs "
                             "--pretrained [TAG]")
    return pretrained, revision


def check_convert(model: object, target: object, out: object, *, weights: object = None, options: object = None,
                  precision: object = None, backend: object = None, deployment_target: object = None,
                  tensor_input: object = False, init: object = "exercised", seed: object = 0,
                  validate: object = True, mil_report: object = True,
                  progress: object = None, quantize: object = None, compress: object = None,
                  calibration: object = None, min_psnr: object = None, pretrained: object = None,
                  revision: object = None, keep_float: object = None,
                  scan_budget: object = DEFAULT_SCAN_BUDGET_S) -> ConvertArgs:
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
    quant = check_choice("quantize", quantize, QUANTIZE_SCHEMES, optional=True)
    comp = check_choice("compress", compress, COMPRESS_SCHEMES, optional=True)
    psnr = check_min_psnr(min_psnr)
    if quant is None and comp is None:
        if calibration is not None:
            raise UsageError("--calibration applies only to --quantize int8 and --compress w8a8 (static quantization "
                             "calibrates activation ranges); nothing else uses it")
        plans = target_plans(targets, prec, be)
    else:
        plans, needed_dt = quantized_plans(targets, prec, be, quant, comp, dt)
        if comp is not None and comp not in CALIBRATED_COMPRESS and calibration is not None:
            raise UsageError(f"--calibration does not apply to --compress {comp}: CoreML weight compression needs no "
                             "activation calibration")
        if needed_dt is not None and dt is None:
            dt = needed_dt
    uses_coreml = any(p.target == "coreml" or p.backend == "coreml" for p in plans)
    if dt is not None and not uses_coreml:
        raise UsageError(f"--deployment-target {dt} applies only to CoreML (--target coreml, or executorch with "
                         "--backend coreml)")
    if tensor and "coreml" not in targets:
        raise UsageError("--tensor-input applies only to --target coreml (the other targets always take tensors)")
    if progress is not None and not callable(progress):
        raise UsageError(f"progress must be a callable taking a str, got {_type_name(progress)}")
    hub_tag, hub_revision = check_pretrained(pretrained, revision, weights)
    keep = check_keep_float(keep_float, quant, targets, comp)
    if isinstance(scan_budget, bool) or not isinstance(scan_budget, int | float) or not 0 < scan_budget <= 86400:
        raise UsageError(f"scan_budget must be a number of seconds in (0, 86400], got {scan_budget!r}")
    return ConvertArgs(
        model=model, targets=plans, out=out_path, weights=check_weights(weights), options=check_options(options),
        deployment_target=dt or DEFAULT_DEPLOYMENT_TARGET, tensor_input=tensor,
        init=check_choice("init", init, INITS), seed=check_int("seed", seed, 0, MAX_SEED),
        validate=check_bool("validate", validate), mil_report=check_bool("mil_report", mil_report),
        quantize=quant, compress=comp, calibration=check_calibration(calibration), min_psnr=psnr,
        pretrained=hub_tag, revision=hub_revision,
        keep_float=keep, scan_budget=float(scan_budget),
    )


def check_keep_float(value: object, quantize: str | None, targets: Sequence[str],
                     compress: str | None = None) -> list[str] | str | None:
    """``auto``, or layer names (a list, or one comma-separated str); for one quantized target: an int8 .pte or
    .onnx, or a CoreML W8A8 package (layer names are the prepared model's module paths, and each target's
    sensitivity scan runs on its own quantized program). Names are checked against the model's quantized layers
    once it is built (edgevit.export.sensitivity.check_layer_names)."""
    if value is None:
        return None
    one_int8 = quantize == "int8" and list(targets) in (["executorch"], ["onnx"])
    if not one_int8 and not (compress == "w8a8" and list(targets) == ["coreml"]):
        raise UsageError("--keep-float applies to one quantized target: --quantize int8 with --target executorch or "
                         "--target onnx, or --compress w8a8 with --target coreml (the layers are the prepared "
                         "model's modules, ranked on that target's own quantized program); convert the other "
                         "targets separately")
    if value == "auto":
        return "auto"
    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else value
    return check_names("keep_float", [n for n in names if n] if isinstance(names, list | tuple) else names)


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
