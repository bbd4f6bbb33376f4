"""The host benchmark sweep behind ``edgevit bench``: every form of a model, or one artifact, timed in this process.

Per model and batch: the eager original and prepared model (torch), then the ``.pte`` and ``.onnx`` (found in an
artifacts folder, or exported here for timing only), both timed in one fair comparison (edgevit.bench.fair) so their
medians and the ratio come from the same samples, and CoreML recorded as not run off macOS. ``edgevit.api.bench``
checks the arguments, calls these and writes the document.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.base.digest import sha256_of
from edgevit.base.manifest import read_manifest
from edgevit.base.naming import artifact_name
from edgevit.bench.plan import Plan, default_plan
from edgevit.export.publish import reading
from edgevit.export.verify import verify_artifact

if TYPE_CHECKING:
    import torch

    from edgevit.models.registry import ModelSpec

Progress = Callable[[str], None]


def profile_into(profiles: list[tuple[Path, dict]] | None, path: Path, record: dict, progress: Progress) -> None:
    """bench --profile: the per-op profile (10 iterations) of an artifact that was timed, at the threads it ran
    at, kept for writing beside the results; one that was not run here is not profiled either."""
    if profiles is None or path.suffix not in (".pte", ".onnx") or record["status"] != "ok":
        return
    from edgevit.bench.profile import profile_artifact

    progress(f"profiling {path.name} op by op at batch {record['batch']}")
    profiles.append((path, {**profile_artifact(path, threads=record["threads"]).to_dict(), "batch": record["batch"]}))


def model_gflop(module, input_size: Sequence[int], batch: int) -> float | None:
    """GFLOP of one call at ``batch`` (batch-1 FLOPs x batch); None if the counter cannot run the module."""
    from edgevit.models.complexity import count_flops

    try:
        return count_flops(module, tuple(input_size)) * batch / 1e9
    except Exception:  # noqa: BLE001 - a FLOP count is extra information; its absence is recorded as null
        return None


def artifact_gflop(manifest: dict, batch: int) -> float | None:
    """GFLOP of the prepared model an artifact was converted from (FLOPs do not depend on the weights)."""
    from converters import get_converter
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    try:
        spec = get_spec(manifest["model"])
        model, _ = build_model(spec, manifest.get("options"), init="library")
        prepared = get_converter(spec.converter).prepare(model).module
    except Exception:  # noqa: BLE001 - as in model_gflop: null, not a failed benchmark
        return None
    return model_gflop(prepared, spec.input_size, batch)


def bench_one_artifact(path: Path, plan: Plan | None, progress: Progress, threads: int | None = None,
                       profiles: list[tuple[Path, dict]] | None = None) -> dict:
    """One artifact, verified against its manifest under its folder's lock, timed alone in its runtime."""
    with reading(path):
        manifest = read_manifest(path)
        verify_artifact(path, manifest)
        import torch

        from edgevit.bench.host import bench_artifact

        shape = manifest["input"]["shape"]
        example = torch.randn(shape) * (255 if manifest["input"]["kind"] == "image" else 1)
        progress(f"timing {path.name}")
        record = bench_artifact(manifest["model"], path, manifest, example, plan or default_plan(shape[0]),
                                threads=threads, gflop=artifact_gflop(manifest, shape[0]))
        profile_into(profiles, path, record, progress)
        return record


def bench_model(name: str, artifacts: Path | None, batches: Sequence[int], plan: Plan | None,
                work_dir: str | Path | None, progress: Progress, threads: int | None = None,
                profiles: list[tuple[Path, dict]] | None = None, eager: bool = True) -> list[dict]:
    """Every form of registered model ``name`` at each batch size (module docstring); ``eager`` False leaves out
    the eager original and prepared model (the .pte and .onnx are still exported from the prepared model)."""
    import tempfile

    import torch

    from converters import get_converter
    from edgevit.bench.host import bench_eager, bench_pair
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec

    spec = get_spec(name)
    original, _ = build_model(spec)
    prepared = get_converter(spec.converter).prepare(original).module
    original_gflop = model_gflop(original, spec.input_size, 1) if eager else None
    prepared_gflop = model_gflop(prepared, spec.input_size, 1)
    results = []
    with tempfile.TemporaryDirectory(prefix="edgevit-bench-", dir=work_dir) as tmp:
        for batch in batches:
            p = plan or default_plan(batch)
            example = torch.randn((batch, *spec.input_size), generator=torch.Generator().manual_seed(batch))
            if eager:
                progress(f"{spec.name} batch {batch}: eager original / prepared")
                results.append(bench_eager(spec.name, "original-eager", original, example, p, threads=threads,
                                           gflop=original_gflop and original_gflop * batch))
                results.append(bench_eager(spec.name, "prepared-eager", prepared, example, p, threads=threads,
                                           gflop=prepared_gflop and prepared_gflop * batch))
            gflop = prepared_gflop and prepared_gflop * batch
            with ExitStack() as held:  # each published artifact read under its folder's lock, checked first
                pair = [_artifact_for(spec, prepared, target, example, artifacts, Path(tmp), held, progress)
                        for target in ("executorch", "onnx")]
                progress(f"{spec.name} batch {batch}: timing {pair[0][0].name} against {pair[1][0].name} "
                         "(fair protocol)")
                records = bench_pair(spec.name, pair[0], pair[1], example, p, threads=threads, gflop=gflop)
                for (path, _), record in zip(pair, records, strict=True):
                    profile_into(profiles, path, record, progress)
            results += records
            results.append(coreml_not_run(spec.name, batch, list(example.shape), p))
    return results


def _artifact_for(spec: ModelSpec, prepared, target: str, example: torch.Tensor, artifacts: Path | None,
                  tmp: Path, held: ExitStack, progress: Progress) -> tuple[Path, dict]:
    """The published artifact of this batch in ``artifacts`` (held under its folder's lock and verified), or one
    exported here for timing only."""
    found = find_artifact(artifacts, spec.name, target, example.shape[0])
    if found is None:
        progress(f"{spec.name} batch {example.shape[0]}: exporting {target} for timing")
        return export_for_timing(spec, prepared, target, example, tmp)
    held.enter_context(reading(found))
    manifest = read_manifest(found)
    verify_artifact(found, manifest)
    return found, manifest


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


def find_artifact(folder: Path | None, model: str, target: str, batch: int) -> Path | None:
    """A converted fp32 artifact of ``model`` at this batch size in ``folder`` (its manifest is checked when used)."""
    if folder is None:
        return None
    be = "xnnpack" if target == "executorch" else None
    path = Path(folder) / artifact_name(model, target, "fp32", be)
    if not path.exists():
        return None
    return path if read_manifest(path)["input"]["shape"][0] == batch else None


def coreml_not_run(model: str, batch: int, shape: list[int], plan: Plan) -> dict:
    import platform

    from edgevit.bench.host import result_record

    if platform.system() == "Darwin":
        reason = "CoreML timing on macOS: use ios_harness (edgevit harness ios) for compute-unit control"
    else:
        reason = "CoreML runtime needs macOS; time the .mlpackage with ios_harness on a Mac or iPhone"
    return result_record(model, "coreml", "coreml", batch, shape, plan, precision="fp16", status="not_run",
                         error=reason)
