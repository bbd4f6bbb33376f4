"""The Python API the CLI wraps: ``convert``, ``validate``, ``bench``, ``list_models``.

    import edgevit
    result = edgevit.convert("swiftformer-l1", target="coreml")
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from converters import get_converter
from edgevit import __version__
from edgevit.bench.host import Plan, bench_artifact, bench_eager, default_plan, results_document
from edgevit.build import build_model, rebuild_from_manifest
from edgevit.errors import ArtifactError, EdgevitError, ExportError
from edgevit.export.atomic import atomic_path, ensure_writable_dir, write_text_atomic
from edgevit.export.naming import TARGETS, artifact_name, bundle_path
from edgevit.inputs import read_bundle, validation_inputs, write_bundle
from edgevit.manifest import (
    MANIFEST_VERSION,
    now_utc,
    preprocessing_of,
    read_manifest,
    tool_versions,
    write_manifest,
)
from edgevit.registry import ModelSpec, get_spec, model_names
from edgevit.validate import ParityResult, device_parity, run_parity
from edgevit.weights import sha256_of

Progress = Callable[[str], None]
DEFAULT_PRECISION = {"coreml": "fp16", "executorch": "fp32", "onnx": "fp32"}


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


def _quiet(_: str) -> None:
    pass


def list_models() -> list[ModelSpec]:
    return [get_spec(name) for name in model_names()]


def convert(model: str, target: str | Sequence[str] = "coreml", out: str | Path = "artifacts", *,
            weights: str | Path | None = None, options: dict[str, str] | None = None,
            precision: str | None = None, backend: str = "xnnpack", deployment_target: str = "iOS17",
            tensor_input: bool = False, init: str = "exercised", seed: int = 0, validate: bool = True,
            mil_report: bool = True, progress: Progress = _quiet) -> ConvertResult:
    """Build, prepare, export to each target, validate each artifact; write manifests beside them."""
    targets = [target] if isinstance(target, str) else list(target)
    unknown = [t for t in targets if t not in TARGETS]
    if unknown or not targets:
        raise EdgevitError(f"unknown target(s) {unknown or targets}; choose from {', '.join(TARGETS)}")
    spec = get_spec(model)
    out = ensure_writable_dir(Path(out))
    progress(f"building {spec.name}")
    original, winfo = build_model(spec, options, Path(weights) if weights else None, init, seed)
    options = spec.default_options() | (options or {})
    progress(winfo.describe())
    progress(f"preparing with the {spec.converter} converter")
    prepared = get_converter(spec.converter).prepare(original)
    inputs = validation_inputs(spec, seed=seed)
    prepared_rel = _rel_l2(original, prepared.module, inputs)
    result = ConvertResult(spec.name, winfo.describe(), prepared.rewrites, prepared_rel)
    if "coreml" in targets and mil_report:
        progress("counting reshape/transpose ops in the MIL program, original vs prepared")
        result.mil_layout = mil_layout_report(original, prepared.module, spec)
    example = torch.randn((1, *spec.input_size), generator=torch.Generator().manual_seed(seed))
    for tgt in targets:
        be = backend if tgt == "executorch" else None
        prec = precision or ("fp16" if be == "coreml" else DEFAULT_PRECISION[tgt])
        path = out / artifact_name(spec.name, tgt, prec, be)
        progress(f"exporting {path.name}")
        start = time.perf_counter()
        info = _export(tgt, prepared.module, spec, path, example, prec, be, deployment_target, tensor_input, winfo)
        seconds = time.perf_counter() - start
        with atomic_path(bundle_path(path)) as tmp:
            write_bundle(inputs, tmp, tuple(original(example).shape))
        manifest = _manifest(spec, path, tgt, be, prec, options, winfo, info, prepared.rewrites, prepared_rel)
        parity = None
        if validate:
            progress(f"validating {path.name} against the original model")
            parity = run_parity(original, path, manifest, inputs)
            manifest["parity"] = parity.to_json()
        manifest_file = write_manifest(path, manifest)
        result.artifacts.append(ArtifactResult(path, manifest_file, tgt, parity, info, seconds))
    return result


def _export(tgt: str, module, spec: ModelSpec, path: Path, example, precision: str, backend: str | None,
            deployment_target: str, tensor_input: bool, winfo) -> dict:
    if tgt == "coreml":
        from edgevit.export.coreml import export_coreml

        meta = {"author": "edgevit (conversion); model: " + (spec.paper or spec.name),
                "license": "weights: see their source; edgevit: Apache-2.0", "version": __version__,
                "description": f"{spec.name} image classifier (ImageNet-1k), converted by edgevit",
                "edgevit.model": spec.name, "edgevit.weights": winfo.source,
                "edgevit.weights_sha256": winfo.sha256 or "random-init"}
        return export_coreml(module, spec, path, precision=precision, deployment_target=deployment_target,
                             tensor_input=tensor_input, metadata=meta)
    if tgt == "executorch":
        from edgevit.export.executorch import export_executorch

        return export_executorch(module, example, path, backend=backend or "xnnpack", precision=precision,
                                 deployment_target=deployment_target)
    from edgevit.export.onnx import export_onnx

    if precision != "fp32":
        raise ExportError("the ONNX reference artifact is fp32; use --precision fp32 (or leave it unset)")
    return export_onnx(module, example, path)


def _manifest(spec: ModelSpec, path: Path, target: str, backend: str | None, precision: str, options: dict,
              winfo, info: dict, rewrites: list[str], prepared_rel: float) -> dict:
    return {
        "manifest_version": MANIFEST_VERSION,
        "created": now_utc(),
        "model": spec.name,
        "family": spec.family,
        "paper": spec.paper,
        "published_top1": spec.published_top1,
        "artifact": path.name,
        "sha256": sha256_of(path),
        "target": target,
        "backend": backend,
        "precision": precision,
        "options": options,
        "weights": winfo.to_json(),
        "input": info["input"],
        "output": info["output"],
        "preprocessing": preprocessing_of(spec),
        "labels": spec.labels,
        "rewrites": rewrites,
        "prepared_vs_original_rel_l2": prepared_rel,
        "export": {k: v for k, v in info.items() if k not in ("input", "output")},
        "validation_inputs": bundle_path(path).name,
        "parity": None,
        "tool_versions": tool_versions(),
    }


def _rel_l2(original, prepared, inputs) -> float:
    with torch.no_grad():
        x = torch.cat([item.tensor for item in inputs])
        a, b = original(x), prepared(x)
    return float((a - b).norm() / a.norm())


def mil_layout_report(original, prepared, spec: ModelSpec) -> dict:
    """Reshape/transpose counts in the CoreML MIL program: whole model and each attention block."""
    from edgevit.export.mil import attention_layout_counts, inspect_mil

    example = torch.randn((1, *spec.input_size))
    before, after = inspect_mil(original, example), inspect_mil(prepared, example)
    return {
        "model": {"before": before.layout_count, "after": after.layout_count,
                  "before_ops": _layout_histogram(before), "after_ops": _layout_histogram(after),
                  "max_rank_before": before.max_rank, "max_rank_after": after.max_rank,
                  "error_before": before.error, "error_after": after.error},
        "attention_blocks": {"before": attention_layout_counts(original, example),
                             "after": attention_layout_counts(prepared, example)},
    }


def _layout_histogram(stats) -> dict:
    from edgevit.export.mil import LAYOUT_OPS

    return {k: v for k, v in stats.histogram.items() if k in LAYOUT_OPS}


def validate(artifact: str | Path, device_outputs: str | Path | None = None) -> ParityResult:
    """Re-check an artifact against its original model (rebuilt from the manifest) on its saved inputs."""
    artifact = Path(artifact)
    manifest = read_manifest(artifact)
    spec = get_spec(manifest["model"])
    original = rebuild_from_manifest(spec, manifest)
    bundle = bundle_path(artifact)
    if not bundle.exists():
        raise ArtifactError(f"{artifact} has no validation inputs ({bundle.name}); re-run edgevit convert")
    inputs = read_bundle(bundle)
    if device_outputs is not None:
        return device_parity(original, manifest, inputs, Path(device_outputs))
    if sha256_of(artifact) != manifest["sha256"]:
        raise ArtifactError(f"{artifact} does not match its manifest (sha256 differs): modified or corrupt")
    return run_parity(original, artifact, manifest, inputs)


def bench(models: Sequence[str], *, artifacts: str | Path | None = None, batches: Sequence[int] = (1, 32),
          plan: Plan | None = None, out: str | Path | None = None, work_dir: str | Path | None = None,
          progress: Progress = _quiet) -> dict:
    """Time every form of each model (or each given artifact) in this process; returns the results document."""
    results: list[dict] = []
    for item in models:
        path = Path(item)
        if path.suffix in (".pte", ".onnx", ".mlpackage") and path.exists():
            results.append(_bench_one_artifact(path, plan, progress))
        else:
            results += _bench_model(item, artifacts, batches, plan, work_dir, progress)
    document = results_document(results)
    if out is not None:
        out = Path(out)
        ensure_writable_dir(out.parent)
        write_text_atomic(out, json.dumps(document, indent=1) + "\n")
    return document


def _bench_one_artifact(path: Path, plan: Plan | None, progress: Progress) -> dict:
    manifest = read_manifest(path)
    shape = manifest["input"]["shape"]
    example = torch.randn(shape) * (255 if manifest["input"]["kind"] == "image" else 1)
    progress(f"timing {path.name}")
    return bench_artifact(manifest["model"], path, manifest, example, plan or default_plan(shape[0]))


def _bench_model(name: str, artifacts: str | Path | None, batches: Sequence[int], plan: Plan | None,
                 work_dir: str | Path | None, progress: Progress) -> list[dict]:
    import tempfile

    spec = get_spec(name)
    original, _ = build_model(spec)
    prepared = get_converter(spec.converter).prepare(original).module
    results = []
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-", dir=work_dir) as tmp:
        for batch in batches:
            p = plan or default_plan(batch)
            example = torch.randn((batch, *spec.input_size), generator=torch.Generator().manual_seed(batch))
            progress(f"{spec.name} batch {batch}: eager original / prepared")
            results.append(bench_eager(spec.name, "original-eager", original, example, p))
            results.append(bench_eager(spec.name, "prepared-eager", prepared, example, p))
            for target in ("executorch", "onnx"):
                found = _find_artifact(artifacts, spec.name, target, batch)
                if found is None:
                    progress(f"{spec.name} batch {batch}: exporting {target} for timing")
                    found = export_for_timing(spec, prepared, target, example, Path(tmp))
                path, manifest = found
                progress(f"{spec.name} batch {batch}: timing {path.name}")
                results.append(bench_artifact(spec.name, path, manifest, example, p))
            results.append(_coreml_not_run(spec.name, batch, list(example.shape), p))
    return results


def export_for_timing(spec: ModelSpec, prepared, target: str, example: torch.Tensor,
                      folder: Path) -> tuple[Path, dict]:
    """A timing-only artifact at the example's (static) batch size, with the manifest fields timing needs."""
    from edgevit.export.executorch import export_executorch
    from edgevit.export.onnx import export_onnx

    backend = "xnnpack" if target == "executorch" else None
    path = folder / artifact_name(spec.name, target, "fp32", backend).replace(
        f".{target}.", f".{target}.b{example.shape[0]}.", 1)
    info = export_executorch(prepared, example, path) if backend else export_onnx(prepared, example, path)
    return path, {"target": target, "backend": backend, "precision": "fp32", "sha256": sha256_of(path),
                  "input": info["input"]}


def _find_artifact(folder: str | Path | None, model: str, target: str, batch: int) -> tuple[Path, dict] | None:
    """A converted fp32 artifact of ``model`` at this batch size in ``folder``, with its manifest."""
    if folder is None:
        return None
    be = "xnnpack" if target == "executorch" else None
    path = Path(folder) / artifact_name(model, target, "fp32", be)
    if not path.exists():
        return None
    manifest = read_manifest(path)
    return (path, manifest) if manifest["input"]["shape"][0] == batch else None


def _coreml_not_run(model: str, batch: int, shape: list[int], plan: Plan) -> dict:
    import platform

    from edgevit.bench.host import result_record

    if platform.system() == "Darwin":
        reason = "CoreML timing on macOS: use ios_harness (edgevit harness ios) for compute-unit control"
    else:
        reason = "CoreML runtime needs macOS; time the .mlpackage with ios_harness on a Mac or iPhone"
    return result_record(model, "coreml", "coreml", batch, shape, plan, precision="fp16", status="not_run",
                         error=reason)
