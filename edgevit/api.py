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
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.base.arguments import ConvertArgs, check_bench, check_convert, check_int, check_path, progress_or_quiet
from edgevit.base.artifact_folder import check_artifact
from edgevit.base.atomic import write_text_atomic
from edgevit.base.digest import sha256_of
from edgevit.base.errors import ArtifactError, EdgevitError, UsageError, WeightsError
from edgevit.base.manifest import artifact_manifest, read_manifest
from edgevit.base.naming import EXTENSIONS, artifact_name, bundle_path
from edgevit.base.version import VERSION
from edgevit.bench.plan import Plan, default_plan
from edgevit.export.publish import output_folder, publish, reading, staging_area
from edgevit.export.verify import check_against_spec, check_hash, check_identity, check_input_spec, verify_artifact

if TYPE_CHECKING:
    import torch

    from edgevit.bench.profile import Profile
    from edgevit.models.registry import ModelSpec
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
            min_psnr: float | None = None) -> ConvertResult:
    """Build, prepare, export to each target, validate each artifact; publish each with its manifest.

    ``backend`` is the ExecuTorch delegate (default xnnpack) and ``deployment_target`` the CoreML minimum OS
    (default iOS17); each is refused for targets it does not apply to. ``quantize="int8"`` makes static int8
    ExecuTorch/ONNX artifacts calibrated on ``calibration`` (a folder of JPEG/PNG; default: the bundled photos,
    cropped and flipped); ``compress`` (w8, w4, palette6, palette4) compresses CoreML weights. Quantized
    artifacts pass at PSNR >= ``min_psnr`` (default 30 dB) on the photos. Every argument is checked before any work.
    """
    args = check_convert(model, target, out, weights=weights, options=options, precision=precision, backend=backend,
                         deployment_target=deployment_target, tensor_input=tensor_input, init=init, seed=seed,
                         validate=validate, mil_report=mil_report, progress=progress, quantize=quantize,
                         compress=compress, calibration=calibration, min_psnr=min_psnr)
    say = progress_or_quiet(progress)
    from edgevit.models.registry import get_spec

    spec = get_spec(args.model)
    with output_folder(args.out), staging_area(args.out) as stage:
        return _convert(spec, args, stage, say)


def _convert(spec: ModelSpec, args: ConvertArgs, stage: Path, say: Progress) -> ConvertResult:
    import torch

    from converters import get_converter
    from converters.backends import backend_copy
    from edgevit.models.build import build_model
    from edgevit.validate.inputs import validation_inputs, write_bundle
    from edgevit.validate.parity import run_parity

    say(f"building {spec.name}")
    original, winfo = build_model(spec, args.options, args.weights, args.init, args.seed)
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
    calibration = None
    if args.quantize:
        from edgevit.validate.calibration import calibration_set

        calibration = calibration_set(spec, args.calibration)
        say(f"calibrating on {calibration.describe()}")
    for plan in args.targets:
        name = artifact_name(spec.name, plan.target, plan.precision, plan.backend)
        staged, final = stage / name, args.out / name
        say(f"exporting {name}")
        start = time.perf_counter()
        module, rewrites = prepared.module, prepared.rewrites
        if plan.target == "executorch" and plan.precision == "fp32":  # backend-only rewrites, on a copy
            module, extra = backend_copy(prepared.module, plan.backend)
            rewrites = rewrites + extra
        info = _export(plan.target, module, spec, staged, example, plan.precision, plan.backend,
                       args.deployment_target, args.tensor_input, winfo,
                       calibration=calibration.tensors if calibration else None,
                       compute_precision=plan.compute_precision)
        seconds = time.perf_counter() - start
        write_bundle(inputs, bundle_path(staged), output_shape)
        manifest = artifact_manifest(spec, staged, plan.target, plan.backend, plan.precision, options, winfo,
                                     info, rewrites, prepared_rel)
        if plan.compute_precision is not None:
            manifest["quantization"] = _quantization_record(plan, info, calibration, args, winfo)
        parity = None
        if args.validate:
            say(f"validating {name} against the original model")
            parity = run_parity(original, staged, manifest, inputs)
            manifest["parity"] = parity.to_json()
            if plan.compute_precision is not None:
                manifest["quantization"]["float_artifact_parity"] = _float_sibling_parity(
                    spec, plan, args.out, result.artifacts)
        say(f"publishing {name} with its manifest and validation inputs")
        manifest_file = publish(staged, final, manifest)
        result.artifacts.append(ArtifactResult(final, manifest_file, plan.target, parity, info, seconds))
    return result


def _quantization_record(plan, info: dict, calibration, args: ConvertArgs, winfo) -> dict:
    """What the manifest says of a quantized/compressed artifact: scheme, calibration set, layers left in float."""
    from edgevit.validate.parity import QUANTIZED_MIN_PSNR_DB, RANDOM_INIT_QUANT_NOTE

    q = dict(info.get("quantization") or {})
    record = {"scheme": q.pop("scheme", plan.precision), "name": plan.precision,
              "float_precision": plan.compute_precision,
              "min_psnr_db": args.min_psnr if args.min_psnr is not None else QUANTIZED_MIN_PSNR_DB,
              "calibration": calibration.to_json() if calibration and plan.target != "coreml" else None, **q}
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
            compute_precision: str | None = None) -> dict:
    if tgt == "coreml":
        from edgevit.export.coreml import coreml_metadata, export_coreml

        compress = precision if compute_precision is not None else None
        return export_coreml(module, spec, path, precision=compute_precision or precision,
                             deployment_target=deployment_target, tensor_input=tensor_input,
                             metadata=coreml_metadata(spec, winfo, VERSION), compress=compress)
    if tgt == "executorch":
        from edgevit.export.executorch import export_executorch

        return export_executorch(module, example, path, backend=backend or "xnnpack", precision=precision,
                                 deployment_target=deployment_target, calibration=calibration)
    from edgevit.export.onnx import export_onnx

    if precision != "int8":
        return export_onnx(module, example, path)
    from edgevit.base.atomic import atomic_path
    from edgevit.export.quantize import quantize_onnx_static

    fp32 = path.with_name(path.name.replace(".int8.onnx", ".fp32-for-int8.onnx"))
    try:
        info = export_onnx(module, example, fp32)
        with atomic_path(path) as tmp:
            quantized = quantize_onnx_static(fp32, tmp, info["input"]["name"], calibration)
    finally:
        fp32.unlink(missing_ok=True)
    return {**info, "quantization": {"scheme": "int8 static QDQ (onnxruntime quantize_static, MinMax, weights per "
                                               "channel, activations per tensor)", **quantized}}


def validate(artifact: str | Path, device_outputs: str | Path | None = None, *,
             runtime: str | None = None, weights: str | Path | None = None) -> ParityResult:
    """Re-check an artifact against its original model (rebuilt from the manifest) on its saved inputs.

    ``runtime`` picks what runs a ``.mlpackage``: "coreml" (macOS only) or "mil-reference" (edgevit's MIL
    reference interpreter, any OS); by default CoreML on macOS and the interpreter elsewhere.

    The manifest, the validation bundle and the artifact's identity, hash and input are checked before the model is
    rebuilt, all under a shared lock on the folder, so a conversion publishing there meanwhile is never half seen.
    ``weights`` replaces the checkpoint path the manifest records (it must be that very file: same sha256).
    """
    artifact = check_path("artifact", artifact)
    device = check_path("device_outputs", device_outputs, optional=True)
    weights_path = check_path("weights", weights, optional=True)
    with reading(artifact):
        manifest = read_manifest(artifact)
        check_identity(artifact, manifest)
        check_against_spec(artifact, manifest)
        if device is None:
            check_hash(artifact, manifest)
            check_input_spec(artifact, manifest)
        bundle = bundle_path(artifact)
        if not bundle.exists():
            raise ArtifactError(f"{artifact} has no validation inputs ({bundle.name}); re-run edgevit convert")
        from edgevit.validate.inputs import read_bundle  # torch from here on

        inputs = read_bundle(bundle)
        from edgevit.models.build import rebuild_from_manifest
        from edgevit.models.registry import get_spec
        from edgevit.validate.parity import device_parity, run_parity

        original = rebuild_from_manifest(get_spec(manifest["model"]), manifest, weights_path)
        if device is not None:
            return device_parity(original, manifest, inputs, device)
        return run_parity(original, artifact, manifest, inputs, runtime)


def bench(models: str | Sequence[str], *, artifacts: str | Path | None = None, batches: Sequence[int] = (1, 32),
          plan: Plan | None = None, out: str | Path | None = None, work_dir: str | Path | None = None,
          progress: Progress | None = None, threads: int | None = None, profile: bool = False) -> dict:
    """Time every form of each model (or each given artifact) in this process; returns the results document.

    Every item is resolved (a known model, or an existing artifact with a manifest that describes it) before
    anything is timed, and ``out`` is written only once every result is complete and conforms to the schema.
    Every runtime runs at ``threads`` (None: edgevit.validate.threads.default_threads()), and this host's GEMM
    peak is measured at the same count. ``profile`` (needs ``out``) also writes a per-op profile of each timed
    ``.pte`` / ``.onnx`` beside ``out``, as ``<out stem>.<artifact>.profile.json``.
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
    resolved = [_resolve_bench_item(item) for item in items]
    results: list[dict] = []
    profiles: list[tuple[Path, dict]] = []
    profile_to = profiles if profile else None
    for item, kind in zip(items, resolved, strict=True):
        if kind == "artifact":
            results.append(_bench_one_artifact(Path(item), plan, say, n_threads, profile_to))
        else:
            results += _bench_model(item, folder, batch_sizes, plan, work_dir, say, n_threads, profile_to)
    from edgevit.bench.host import results_document
    from edgevit.bench.peak import gemm_peak_gflop_per_s
    from edgevit.bench.results import validate_document

    say(f"measuring this host's fp32 GEMM peak at {n_threads} thread(s)")
    document = results_document(results, gemm_peak_gflop_per_s(n_threads))
    incomplete = [f"{r['model']} {r['form']} batch {r['batch']}" for r in results
                  if r["status"] == "ok" and r["median_ms"] is None]
    if incomplete:
        raise EdgevitError(f"no timing was recorded for {', '.join(incomplete)}; nothing was written")
    validate_document(document, "the results of this run")
    if out_path is not None:
        with output_folder(out_path.parent):
            write_text_atomic(out_path, json.dumps(document, indent=1) + "\n")
            for artifact, prof in profiles:
                path = profile_path(out_path, artifact)
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


def profile_path(results_file: Path, artifact: Path) -> Path:
    """Where ``bench --profile`` writes an artifact's profile: beside the results file, named after both."""
    return results_file.with_name(f"{results_file.stem}.{artifact.name}.profile.json")


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


def _profile_into(profiles: list[tuple[Path, dict]] | None, path: Path, record: dict, progress: Progress) -> None:
    """bench --profile: the per-op profile (10 iterations) of an artifact that was timed, at the threads it ran
    at, kept for writing beside the results; one that was not run here is not profiled either."""
    if profiles is None or path.suffix not in (".pte", ".onnx") or record["status"] != "ok":
        return
    from edgevit.bench.profile import profile_artifact

    progress(f"profiling {path.name} op by op")
    profiles.append((path, profile_artifact(path, threads=record["threads"]).to_dict()))


def _gflop(module, input_size: Sequence[int], batch: int) -> float | None:
    """GFLOP of one call at ``batch`` (batch-1 FLOPs x batch); None if the counter cannot run the module."""
    from edgevit.models.complexity import count_flops

    try:
        return count_flops(module, tuple(input_size)) * batch / 1e9
    except Exception:  # noqa: BLE001 - a FLOP count is extra information; its absence is recorded as null
        return None


def _artifact_gflop(manifest: dict, batch: int) -> float | None:
    """GFLOP of the prepared model an artifact was converted from (FLOPs do not depend on the weights)."""
    from converters import get_converter
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    try:
        spec = get_spec(manifest["model"])
        model, _ = build_model(spec, manifest.get("options"), init="library")
        prepared = get_converter(spec.converter).prepare(model).module
    except Exception:  # noqa: BLE001 - as in _gflop: null, not a failed benchmark
        return None
    return _gflop(prepared, spec.input_size, batch)


def _bench_one_artifact(path: Path, plan: Plan | None, progress: Progress, threads: int | None = None,
                        profiles: list[tuple[Path, dict]] | None = None) -> dict:
    with reading(path):
        manifest = read_manifest(path)
        verify_artifact(path, manifest)
        import torch

        from edgevit.bench.host import bench_artifact

        shape = manifest["input"]["shape"]
        example = torch.randn(shape) * (255 if manifest["input"]["kind"] == "image" else 1)
        progress(f"timing {path.name}")
        record = bench_artifact(manifest["model"], path, manifest, example, plan or default_plan(shape[0]),
                                threads=threads, gflop=_artifact_gflop(manifest, shape[0]))
        _profile_into(profiles, path, record, progress)
        return record


def _bench_model(name: str, artifacts: Path | None, batches: Sequence[int], plan: Plan | None,
                 work_dir: str | Path | None, progress: Progress, threads: int | None = None,
                 profiles: list[tuple[Path, dict]] | None = None) -> list[dict]:
    import tempfile

    import torch

    from converters import get_converter
    from edgevit.bench.host import bench_artifact, bench_eager, interleave
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    spec = get_spec(name)
    original, _ = build_model(spec)
    prepared = get_converter(spec.converter).prepare(original).module
    original_gflop, prepared_gflop = _gflop(original, spec.input_size, 1), _gflop(prepared, spec.input_size, 1)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-", dir=work_dir) as tmp:
        for batch in batches:
            p = plan or default_plan(batch)
            example = torch.randn((batch, *spec.input_size), generator=torch.Generator().manual_seed(batch))
            progress(f"{spec.name} batch {batch}: eager original / prepared")
            results.append(bench_eager(spec.name, "original-eager", original, example, p, threads=threads,
                                       gflop=original_gflop and original_gflop * batch))
            results.append(bench_eager(spec.name, "prepared-eager", prepared, example, p, threads=threads,
                                       gflop=prepared_gflop and prepared_gflop * batch))
            timed: dict[str, tuple[Path, dict, dict]] = {}
            gflop = prepared_gflop and prepared_gflop * batch
            for target in ("executorch", "onnx"):
                found = _find_artifact(artifacts, spec.name, target, batch)
                # a published artifact is read under its folder's lock and checked against its manifest first
                with reading(found) if found is not None else nullcontext():
                    if found is None:
                        progress(f"{spec.name} batch {batch}: exporting {target} for timing")
                        path, manifest = export_for_timing(spec, prepared, target, example, Path(tmp))
                    else:
                        path, manifest = found, read_manifest(found)
                        verify_artifact(path, manifest)
                        progress(f"{spec.name} batch {batch}: timing {path.name}")
                    record = bench_artifact(spec.name, path, manifest, example, p, threads=threads, gflop=gflop)
                    _profile_into(profiles, path, record, progress)
                results.append(record)
                timed[target] = (path, manifest, record)
            if all(t in timed and timed[t][2]["status"] == "ok" for t in ("executorch", "onnx")):
                progress(f"{spec.name} batch {batch}: .pte and .onnx interleaved")
                (pte, pte_m, pte_r), (onnx, onnx_m, _) = timed["executorch"], timed["onnx"]
                pte_r["interleaved"] = interleave((pte, pte_m), (onnx, onnx_m), example, p, threads=threads)
            results.append(_coreml_not_run(spec.name, batch, list(example.shape), p))
    return results


def export_for_timing(spec: ModelSpec, prepared, target: str, example: torch.Tensor,
                      folder: Path) -> tuple[Path, dict]:
    """A timing-only artifact at the example's (static) batch size, with the manifest fields timing needs."""
    from converters.backends import backend_copy
    from edgevit.export.executorch import export_executorch
    from edgevit.export.onnx import export_onnx

    backend = "xnnpack" if target == "executorch" else None
    path = folder / artifact_name(spec.name, target, "fp32", backend).replace(
        f".{target}.", f".{target}.b{example.shape[0]}.", 1)
    if backend:  # the same XNNPACK-only rewrites as convert's .pte
        prepared = backend_copy(prepared, backend)[0]
    info = export_executorch(prepared, example, path) if backend else export_onnx(prepared, example, path)
    return path, {"target": target, "backend": backend, "precision": "fp32", "sha256": sha256_of(path),
                  "input": info["input"]}


def _find_artifact(folder: Path | None, model: str, target: str, batch: int) -> Path | None:
    """A converted fp32 artifact of ``model`` at this batch size in ``folder`` (its manifest is checked when used)."""
    if folder is None:
        return None
    be = "xnnpack" if target == "executorch" else None
    path = Path(folder) / artifact_name(model, target, "fp32", be)
    if not path.exists():
        return None
    return path if read_manifest(path)["input"]["shape"][0] == batch else None


def _coreml_not_run(model: str, batch: int, shape: list[int], plan: Plan) -> dict:
    import platform

    from edgevit.bench.host import result_record

    if platform.system() == "Darwin":
        reason = "CoreML timing on macOS: use ios_harness (edgevit harness ios) for compute-unit control"
    else:
        reason = "CoreML runtime needs macOS; time the .mlpackage with ios_harness on a Mac or iPhone"
    return result_record(model, "coreml", "coreml", batch, shape, plan, precision="fp16", status="not_run",
                         error=reason)
