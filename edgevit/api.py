"""The Python API the CLI wraps: ``convert``, ``validate``, ``bench``, ``list_models``.

    import edgevit
    result = edgevit.convert("swiftformer-l1", target="coreml")

Every function checks its arguments first (edgevit.base.arguments, shared with the CLI) and imports torch only after
that, so a bad call is refused at once with one message. ``convert`` publishes each artifact as one transaction
with its validation inputs and manifest (edgevit.export.publish); ``validate`` and ``bench`` check that an
artifact agrees with its manifest (edgevit.export.verify) before running it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.base.arguments import (
    CALIBRATED_COMPRESS,
    ConvertArgs,
    check_bench,
    check_convert,
    check_int,
    check_path,
    progress_or_quiet,
)
from edgevit.base.artifact_folder import check_artifact
from edgevit.base.atomic import write_text_atomic
from edgevit.base.errors import ArtifactError, EdgevitError, UsageError, WeightsError
from edgevit.base.manifest import artifact_manifest, read_manifest
from edgevit.base.naming import EXTENSIONS, artifact_name, bundle_path
from edgevit.base.version import VERSION
from edgevit.bench.plan import Plan
from edgevit.export.publish import output_folder, publish, reading, staging_area
from edgevit.export.verify import check_against_spec, check_hash, check_identity, check_input_spec, verify_artifact

if TYPE_CHECKING:
    import torch

    from edgevit.bench.profile import Profile
    from edgevit.models.registry import ModelSpec
    from edgevit.validate.bisect import BisectReport
    from edgevit.validate.parity import ParityResult

Progress = Callable[[str], None]


@dataclass
class ArtifactResult:
    path: Path
    manifest_path: Path
    target: str
    parity: ParityResult | None
    export_info: dict
    seconds: float


@dataclass
class ConvertResult:
    model: str
    weights: str
    rewrites: list[str]
    prepared_rel_l2: float
    artifacts: list[ArtifactResult] = field(default_factory=list)
    mil_layout: dict | None = None

    @property
    def failed(self) -> list[ArtifactResult]:
        return [a for a in self.artifacts if a.parity is not None and a.parity.failed]


def list_models() -> list[ModelSpec]:
    """Every registered model's spec (timm models are not listed: any works as ``timm:<name>``)."""
    from edgevit.models.registry import get_spec, model_names

    return [get_spec(name) for name in model_names()]


def convert(model: str, target: str | Sequence[str] = "coreml", out: str | Path = "artifacts", *,
            weights: str | Path | None = None, options: dict[str, str] | None = None,
            precision: str | None = None, backend: str | None = None, deployment_target: str | None = None,
            tensor_input: bool = False, init: str = "exercised", seed: int = 0, validate: bool = True,
            mil_report: bool = True, progress: Progress | None = None, quantize: str | None = None,
            compress: str | None = None, calibration: str | Path | None = None,
            min_psnr: float | None = None, pretrained: str | bool | None = None,
            revision: str | None = None, keep_float: str | Sequence[str] | None = None,
            scan_budget: float = 600.0) -> ConvertResult:
    """Build, prepare, export to each target, validate each artifact; publish each with its manifest.

    ``backend`` is the ExecuTorch delegate (default xnnpack) and ``deployment_target`` the CoreML minimum OS
    (default iOS17); each is refused for targets it does not apply to. ``quantize="int8"`` makes static int8
    ExecuTorch/ONNX artifacts calibrated on ``calibration`` (a folder of JPEG/PNG; default: the bundled photos,
    cropped and flipped); ``compress`` (w8, w4, palette6, palette4) compresses CoreML weights. ``min_psnr`` replaces
    edgevit's precision-cost floor (PSNR in dB of the photos' logits; edgevit.validate.precision_cost).
    ``pretrained=True`` (timm's default tag) or a tag name loads timm's trained weights from the Hugging Face hub
    cache, downloading them first if needed (``revision``: a branch, tag or commit; the manifest records the commit
    and the file's sha256). Every argument is checked before any work, and the weights are fetched before anything
    is written to ``out``.
    ``keep_float`` (int8 .pte or .onnx, CoreML w8a8): "auto" keeps the fewest layers in float that reach
    ``min_psnr`` (default 35 dB) on logits, by a sensitivity scan of at most ``scan_budget`` seconds, or names the
    layers (module paths).
    """
    args = check_convert(model, target, out, weights=weights, options=options, precision=precision, backend=backend,
                         deployment_target=deployment_target, tensor_input=tensor_input, init=init, seed=seed,
                         validate=validate, mil_report=mil_report, progress=progress, quantize=quantize,
                         compress=compress, calibration=calibration, min_psnr=min_psnr, pretrained=pretrained,
                         revision=revision, keep_float=keep_float, scan_budget=scan_budget)
    say = progress_or_quiet(progress)
    from edgevit.models.registry import get_spec

    spec = get_spec(args.model)
    hub = None
    if args.pretrained is not None:
        from edgevit.models.pretrained import check_timm_options, fetch_pretrained

        check_timm_options(spec, args.options)
        hub = fetch_pretrained(spec, args.pretrained, args.revision, progress_bar=progress is not None, say=say)
    with output_folder(args.out), staging_area(args.out) as stage:
        return _convert(spec, args, stage, say, hub)


def _convert(spec: ModelSpec, args: ConvertArgs, stage: Path, say: Progress, hub=None) -> ConvertResult:
    import torch

    from converters import get_converter
    from converters.backends import backend_copy
    from edgevit.models.build import build_model
    from edgevit.validate.inputs import validation_inputs, write_bundle
    from edgevit.validate.parity import Subject, run_parity

    say(f"building {spec.name}")
    original, winfo = build_model(spec, args.options, args.weights, args.init, args.seed, pretrained=hub)
    options = spec.default_options() | args.options
    say(winfo.describe())
    inputs = validation_inputs(spec, seed=args.seed)
    batch = torch.cat([item.tensor for item in inputs])
    with torch.no_grad():
        reference = original(batch)
    _check_finite_original(reference, spec, winfo)
    say(f"preparing with the {spec.converter} converter")
    prepared = get_converter(spec.converter).prepare(original)
    with torch.no_grad():
        prepared_rel = float((prepared.module(batch) - reference).norm() / reference.norm())
    result = ConvertResult(spec.name, winfo.describe(), prepared.rewrites, prepared_rel)
    if any(p.target == "coreml" for p in args.targets) and args.mil_report:
        say("counting reshape/transpose ops in the MIL program, original vs prepared")
        from edgevit.export.mil_inspect import mil_layout_report

        result.mil_layout = mil_layout_report(original, prepared.module, spec)
    example = torch.randn((1, *spec.input_size), generator=torch.Generator().manual_seed(args.seed))
    output_shape = tuple(original(example).shape)
    calibration = calibrate = None
    if args.quantize or args.compress in CALIBRATED_COMPRESS:
        from edgevit.validate.calibration import calibration_set

        calibration = calibration_set(spec, args.calibration)
        say(f"calibrating on {calibration.describe()}")
        if args.compress in CALIBRATED_COMPRESS:
            from edgevit.mil.ranges import coreml_calibrator

            calibrate = coreml_calibrator(calibration.images, calibration.tensors, progress=say)
    subject = Subject(original, prepared.module, spec, inputs, min_psnr=args.min_psnr, calibration=calibration,
                      trained=winfo.source != "random-init")
    for plan in args.targets:
        name = artifact_name(spec.name, plan.target, plan.precision, plan.backend)
        staged, final = stage / name, args.out / name
        say(f"exporting {name}")
        start = time.perf_counter()
        module, rewrites = prepared.module, prepared.rewrites
        if plan.target == "executorch" and plan.precision in ("fp32", "int8"):  # backend-only rewrites, on a copy
            module, extra = backend_copy(prepared.module, plan.backend)
            rewrites = rewrites + extra
        info = _export(plan.target, module, spec, staged, example, plan.precision, plan.backend,
                       args.deployment_target, args.tensor_input, winfo,
                       calibration=calibration.tensors if calibration else None,
                       compute_precision=plan.compute_precision, calibrate=calibrate,
                       quantization=_keep_float_options(args, inputs), progress=say)
        seconds = time.perf_counter() - start
        write_bundle(inputs, bundle_path(staged), output_shape)
        manifest = artifact_manifest(spec, staged, plan.target, plan.backend, plan.precision, options, winfo,
                                     info, rewrites, prepared_rel)
        if plan.compute_precision is not None:
            manifest["quantization"] = _quantization_record(plan, info, calibration, args, winfo)
        parity = None
        if args.validate:
            say(f"validating {name} against the original model")
            parity = run_parity(subject, staged, manifest)
            manifest["parity"] = parity.to_json()
            if plan.compute_precision is not None:
                manifest["quantization"]["float_artifact_parity"] = _float_sibling_parity(
                    spec, plan, args.out, result.artifacts)
        say(f"publishing {name} with its manifest and validation inputs")
        manifest_file = publish(staged, final, manifest)
        result.artifacts.append(ArtifactResult(final, manifest_file, plan.target, parity, info, seconds))
    return result


def _keep_float_options(args: ConvertArgs, inputs) -> dict | None:
    """--keep-float for quantize_pt2e and quantize_onnx_static: the layers by hand, or the sensitivity scan's
    inputs (the photos), goal (--min-psnr, else 35 dB on logits) and time budget."""
    from edgevit.base.arguments import KEEP_FLOAT_MIN_PSNR_DB

    if args.keep_float is None:
        return None
    if args.keep_float != "auto":
        return {"keep_float": list(args.keep_float)}
    # the whole photos (not their halves, not the noise images, whose logits a random-init model can make chaotic):
    # what the precision-cost floor judges; one emulated pass per layer per input is the cost of the scan
    photos = [item for item in inputs if item.kind == "photo" and not item.name.endswith(("-left", "-right"))]
    return {"auto_keep_float": {"inputs": [item.tensor for item in photos], "photos": photos,
                                "budget_s": args.scan_budget,
                                "goal_db": args.min_psnr if args.min_psnr is not None else KEEP_FLOAT_MIN_PSNR_DB}}


def _quantization_record(plan, info: dict, calibration, args: ConvertArgs, winfo) -> dict:
    """What the manifest says of a quantized/compressed artifact: scheme, calibration set, layers left in float."""
    from edgevit.validate.parity import RANDOM_INIT_QUANT_NOTE
    from edgevit.validate.precision_cost import floor_for

    q = dict(info.get("quantization") or {})
    record = {"scheme": q.pop("scheme", plan.precision), "name": plan.precision,
              "float_precision": plan.compute_precision,
              "min_psnr_db": floor_for(plan.precision, args.min_psnr)[0],
              "calibration": calibration.to_json() if calibration else None, **q}
    if "delegation" in info:
        record["delegated_nodes"] = info["delegation"]["delegated_nodes"]
    if winfo.sha256 is None:
        record["warning"] = RANDOM_INIT_QUANT_NOTE
    return record


def _float_sibling_parity(spec: ModelSpec, plan, out: Path, converted: list[ArtifactResult]) -> dict | None:
    """The float artifact of the same target (this run's, or a published one in --out): its photo metrics."""
    default = "fp16" if plan.target == "coreml" else "fp32"
    name = artifact_name(spec.name, plan.target, plan.compute_precision or default, plan.backend)
    for art in converted:
        if art.path.name == name and art.parity is not None and art.parity.photos is not None:
            return {"artifact": name, "photos": art.parity.to_json()["photos"]}
    try:
        manifest = read_manifest(out / name)
    except (EdgevitError, OSError, ValueError):
        return None
    photos = (manifest.get("parity") or {}).get("photos")
    return {"artifact": name, "photos": photos} if photos else None


def _check_finite_original(reference: torch.Tensor, spec: ModelSpec, winfo) -> None:
    """An original model whose outputs are NaN/inf has nothing to convert or compare: refuse before exporting."""
    import torch

    finite = torch.isfinite(reference)
    if not bool(finite.all()):
        raise WeightsError(
            f"{spec.name} with {winfo.describe()} outputs non-finite values on the validation inputs "
            f"({int((~finite).sum())} NaN/inf of {reference.numel()}): there is no function to convert and compare. "
            "Check the checkpoint (values too large for fp32?)."
        )


def _export(tgt: str, module, spec: ModelSpec, path: Path, example, precision: str, backend: str | None,
            deployment_target: str, tensor_input: bool, winfo, *, calibration=None,
            compute_precision: str | None = None, calibrate=None, quantization: dict | None = None,
            progress: Progress | None = None) -> dict:
    if tgt == "coreml":
        from edgevit.export.coreml import coreml_metadata, export_coreml

        compress = precision if compute_precision is not None else None
        keep_float = None
        if quantization and compress == "w8a8":  # the layers whose activations stay float (edgevit.mil.keep_float)
            from edgevit.mil.keep_float import KeepFloat

            auto = quantization.get("auto_keep_float")
            keep_float = KeepFloat("auto", photos=auto["photos"], goal_db=auto["goal_db"], budget_s=auto["budget_s"],
                                   progress=progress) if auto else KeepFloat(quantization["keep_float"])
        return export_coreml(module, spec, path, precision=compute_precision or precision,
                             deployment_target=deployment_target, tensor_input=tensor_input,
                             metadata=coreml_metadata(spec, winfo, VERSION), compress=compress, calibrate=calibrate,
                             keep_float=keep_float)
    if tgt == "executorch":
        from edgevit.export.executorch import export_executorch

        return export_executorch(module, example, path, backend=backend or "xnnpack", precision=precision,
                                 deployment_target=deployment_target, calibration=calibration,
                                 quantization=quantization if precision == "int8" else None, progress=progress)
    from edgevit.export.onnx import export_onnx, export_onnx_int8

    if precision != "int8":
        return export_onnx(module, example, path)
    return export_onnx_int8(module, example, path, calibration, quantization=quantization, progress=progress)


def validate(artifact: str | Path, device_outputs: str | Path | None = None, *,
             runtime: str | None = None, min_psnr: float | None = None,
             calibration: str | Path | None = None, weights: str | Path | None = None) -> ParityResult:
    """Re-check an artifact against its original model (rebuilt from the manifest): fidelity and precision cost.

    ``runtime`` picks what runs a ``.mlpackage`` for the precision cost: "coreml" (macOS only) or "mil-reference"
    (edgevit's MIL reference interpreter, any OS); by default CoreML on macOS and the interpreter elsewhere.
    ``min_psnr`` replaces edgevit's precision-cost floor (dB on logits); a floor in the manifest is only shown.
    ``calibration`` (a folder of images) rebuilds the int8 reference of an artifact calibrated on the user's images.

    The manifest and the artifact's identity, hash and input are checked before the model is rebuilt, all under a
    shared lock on the folder, so a conversion publishing there meanwhile is never half seen. The validation inputs
    are regenerated by edgevit; the bundle beside the artifact is read only to match device outputs to inputs.
    ``weights`` replaces the checkpoint path the manifest records (it must be that very file: same sha256).
    """
    from edgevit.base.arguments import check_min_psnr

    artifact = check_path("artifact", artifact)
    device = check_path("device_outputs", device_outputs, optional=True)
    floor = check_min_psnr(min_psnr)
    weights_path = check_path("weights", weights, optional=True)
    with reading(artifact):
        manifest = read_manifest(artifact)
        check_identity(artifact, manifest)
        check_against_spec(artifact, manifest)
        if device is None:
            check_hash(artifact, manifest)
            check_input_spec(artifact, manifest)
        from edgevit.models.registry import get_spec  # torch from here on
        from edgevit.validate.parity import check_artifact_inputs, run_parity

        spec = get_spec(manifest["model"])
        check_artifact_inputs(manifest, spec)
        if device is not None:
            return _device_validate(artifact, manifest, spec, device, floor, weights_path)
        return run_parity(_subject_of(manifest, spec, floor, calibration, weights_path), artifact, manifest, runtime)


def bisect(artifact: str | Path, *, top: int = 10, calibration: str | Path | None = None) -> BisectReport:
    """The first value where ``artifact``'s program diverges from the original's beyond the fidelity bound, with the
    op, the PyTorch module it came from, and the ``top`` worst values (edgevit.validate.bisect)."""
    artifact = check_path("artifact", artifact)
    check_int("top", top, 1)
    with reading(artifact):
        manifest = read_manifest(artifact)
        verify_artifact(artifact, manifest)
        from edgevit.models.registry import get_spec
        from edgevit.validate.bisect import bisect as run_bisect

        spec = get_spec(manifest["model"])
        subject = _subject_of(manifest, spec, None, calibration)
        return run_bisect(subject, artifact, manifest, top)


def _subject_of(manifest: dict, spec: ModelSpec, min_psnr: float | None, calibration: str | Path | None = None,
                weights: Path | None = None):
    """The original rebuilt from the manifest, its prepared form and edgevit's own validation inputs."""
    from converters import get_converter
    from edgevit.models.build import rebuild_from_manifest
    from edgevit.validate.inputs import validation_inputs
    from edgevit.validate.parity import Subject

    original = rebuild_from_manifest(spec, manifest, weights)
    prepared = get_converter(spec.converter).prepare(original).module
    seed = manifest["weights"].get("seed") or 0
    calibrated = None
    if calibration is not None:
        from edgevit.base.arguments import check_calibration
        from edgevit.validate.calibration import calibration_set

        calibrated = calibration_set(spec, check_calibration(calibration))
    return Subject(original, prepared, spec, validation_inputs(spec, seed=seed), min_psnr=min_psnr,
                   calibration=calibrated, trained=manifest["weights"]["source"] != "random-init")


def _device_validate(artifact: Path, manifest: dict, spec: ModelSpec, device: Path, min_psnr: float | None,
                     weights: Path | None = None) -> ParityResult:
    from edgevit.models.build import rebuild_from_manifest
    from edgevit.validate.device_outputs import device_parity
    from edgevit.validate.inputs import validation_inputs
    from edgevit.validate.program_precision import program_precision

    original = rebuild_from_manifest(spec, manifest, weights)
    inputs = validation_inputs(spec, seed=manifest["weights"].get("seed") or 0)
    return device_parity(original, manifest, inputs, device, precision=program_precision(artifact),
                         min_psnr=min_psnr)


def bench(models: str | Sequence[str], *, artifacts: str | Path | None = None, batches: Sequence[int] = (1, 32),
          plan: Plan | None = None, out: str | Path | None = None, work_dir: str | Path | None = None,
          progress: Progress | None = None, threads: int | None = None, profile: bool = False,
          eager: bool = True) -> dict:
    """Time every form of each model (or each given artifact) in this process; returns the results document.

    Every item is resolved (a known model, or an existing artifact with a manifest that describes it) before
    anything is timed, and ``out`` is written only once every result is complete and conforms to the schema.
    Every runtime runs at ``threads`` (None: edgevit.validate.threads.default_threads()), and this CPU's physical
    fp32 peak and each runtime's best GEMM are taken at the same count (edgevit.bench.peak). A ``.pte`` and its
    ``.onnx`` are timed against each other by the fair protocol (edgevit.bench.fair). ``profile`` (needs ``out``)
    also writes a per-op profile of each timed ``.pte`` / ``.onnx`` beside ``out``, as
    ``<out stem>.<artifact>.b<batch>.profile.json``. ``eager`` False skips the eager PyTorch forms of each model.
    """
    from edgevit.validate.threads import check_threads

    items, folder, batch_sizes, out_path = check_bench(models, artifacts=artifacts, batches=batches, out=out,
                                                       work_dir=work_dir, progress=progress)
    if plan is not None and not isinstance(plan, Plan):
        raise UsageError(f"plan must be an edgevit.bench.plan.Plan(warmup, iterations), got {type(plan).__name__}")
    n_threads = check_threads(threads)
    if profile and out_path is None:
        raise UsageError("--profile writes the profiles beside the results file: give --out FILE too")
    say = progress_or_quiet(progress)
    from edgevit.validate.threads import oversubscription

    if (too_many := oversubscription(n_threads)) is not None:  # timed anyway, and recorded in the file's peak.notes
        import warnings

        warnings.warn(too_many, stacklevel=2)
        say(f"warning: {too_many}")
    resolved = [_resolve_bench_item(item) for item in items]
    results: list[dict] = []
    profiles: list[tuple[Path, dict]] = []
    profile_to = profiles if profile else None
    from edgevit.bench.forms import bench_model, bench_one_artifact

    for item, kind in zip(items, resolved, strict=True):
        if kind == "artifact":
            results.append(bench_one_artifact(Path(item), plan, say, n_threads, profile_to))
        else:
            results += bench_model(item, folder, batch_sizes, plan, work_dir, say, n_threads, profile_to, eager)
    from edgevit.bench.host import results_document
    from edgevit.bench.peak import peak_record
    from edgevit.bench.profile_files import profile_file
    from edgevit.bench.results import validate_document

    say(f"deriving this CPU's physical fp32 peak and timing each runtime's GEMM at {n_threads} thread(s)")
    document = results_document(results, peak_record(n_threads))
    incomplete = [f"{r['model']} {r['form']} batch {r['batch']}" for r in results
                  if r["status"] == "ok" and r["median_ms"] is None]
    if incomplete:
        raise EdgevitError(f"no timing was recorded for {', '.join(incomplete)}; nothing was written")
    validate_document(document, "the results of this run")
    if out_path is not None:
        with output_folder(out_path.parent):
            write_text_atomic(out_path, json.dumps(document, indent=1) + "\n")
            for artifact, prof in profiles:
                path = profile_file(out_path, artifact.name, prof["batch"])
                write_text_atomic(path, json.dumps(prof, indent=1) + "\n")
                say(f"wrote {path}")
    return document


def profile(artifact: str | Path, *, threads: int | None = None, iterations: int = 10,
            warmup: int = 2) -> Profile:
    """Per-op times of a ``.pte`` (ETDump) or ``.onnx`` (onnxruntime profiler) at ``threads`` on random input.

    ``threads`` None is edgevit.validate.threads.default_threads(), the count ``bench`` uses too; the result's
    ``top(n)``, ``by_type()`` and ``to_dict()`` give the tables ``edgevit profile`` prints and writes.
    """
    from edgevit.bench.profile import profile_artifact
    from edgevit.validate.threads import check_threads

    path = check_path("artifact", artifact)
    if not path.exists() and not path.is_symlink():
        raise ArtifactError(f"artifact not found: {path}")
    check_artifact(path)  # not a link, a regular file within the limit (edgevit.base.artifact_folder)
    if path.suffix not in (".pte", ".onnx") or not path.is_file():
        raise ArtifactError(f"{path} is not a .pte or .onnx artifact; `edgevit profile` times the ops of an "
                            "ExecuTorch program or an ONNX model")
    check_int("iterations", iterations, 1)
    check_int("warmup", warmup, 0)
    n_threads = check_threads(threads)
    with reading(path):
        return profile_artifact(path, threads=n_threads, iterations=iterations, warmup=warmup)


def _resolve_bench_item(item: str) -> str:
    """'artifact' or 'model', or an error saying why the item is neither (before anything is timed)."""
    path = Path(item)
    looks_like_path = path.suffix in {f".{ext}" for ext in EXTENSIONS.values()} or "/" in item or path.exists()
    if not looks_like_path:
        from edgevit.models.registry import get_spec

        get_spec(item)  # an unknown name: UnknownModelError with the closest names
        return "model"
    if not path.exists():
        raise ArtifactError(f"artifact not found: {item}")
    if path.suffix not in {f".{ext}" for ext in EXTENSIONS.values()}:
        raise ArtifactError(f"{item} is not an artifact (expected a .pte, .onnx or .mlpackage made by edgevit "
                            "convert); for a folder of artifacts use --artifacts with a model name")
    read_manifest(path)
    return "artifact"


