"""The zoo sweep and the FastViT report: convert the curated models, record what happened, time them.

``run_zoo`` converts every model to every target with ``edgevit.api.convert`` (so each artifact is validated
against the original model), records a failure per model x target instead of stopping, and times each
``.pte``; ``zoo_table_markdown`` renders the rows. ``fastvit_report`` is the per-variant FastViT report
(params, FLOPs, MIL ops, host latency of every form, fused vs unfused).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.models.catalog import fastvit_specs, zoo_names

if TYPE_CHECKING:
    from edgevit.models.registry import ModelSpec

# ------------------------------------------------------------------------------------------------ sweep

def _row(spec: ModelSpec, target: str) -> dict:
    return {
        "model": spec.name, "family": spec.family, "converter": spec.converter, "timm_name": spec.timm_name,
        "target": target, "status": None, "error": None, "failing_op": None, "failing_module": None,
        "artifact": None, "parity": None, "parity_runtime": None, "parity_reason": None, "rel_l2": None,
        "psnr_db": None,
        "top1_agreement": None, "original_fp32_vs_fp64_rel_l2": None, "prepared_rel_l2": None,
        "layout_ops_before": None, "layout_ops_after": None,
        "pte_latency_ms": None, "pte_latency_p90_ms": None, "latency_iterations": None,
        "xnnpack_subgraphs": None, "non_delegated_ops": None, "export_s": None,
        "published_top1": spec.published_top1, "top1_source": spec.top1_source,
    }


def run_zoo(names: Sequence[str] | None = None, targets: Sequence[str] = ("coreml", "executorch"),
            out_dir: str | Path = "artifacts/zoo", iterations: int = 20, warmup: int = 3, mil_report: bool = True,
            progress: Callable[[str], None] | None = None, engine=None) -> list[dict]:
    """Convert each model to each target, validate, time each ``.pte``; one row per model x target.

    A model that fails to export gets a row that says where (op and module, from the ``ExportError``); any
    other failure (building, preparing) is recorded the same way, so one model never stops the sweep.
    CoreML rows count reshape/transpose ops in the exported MIL program; with ``mil_report`` also in the
    original model's (one more CoreML conversion per model, plus one per attention block).

    Each model x target is one task of the sweep engine (edgevit.studies.sweep.engines): ``engine`` None runs
    them in this process, in order; a ``RayEngine`` runs them on Ray (a worker that dies is recorded as the
    row's failure, and each .pte is then timed while other conversions may share the machine).
    """
    from edgevit.base.errors import EdgevitError
    from edgevit.models.registry import get_spec
    from edgevit.studies.sweep.engines import Job, SerialEngine, run_jobs

    say = progress or (lambda _m: None)
    runner = engine or SerialEngine()
    in_process = isinstance(runner, SerialEngine)
    rows: list[dict] = []
    jobs: list[Job] = []
    for name in names or zoo_names():
        try:
            spec = get_spec(name)
        except EdgevitError as exc:
            rows.append({"model": name, "target": None, "status": "failed: unknown model", "error": str(exc)})
            continue
        for target in targets:
            jobs.append(Job(str(len(rows)), "edgevit.studies.zoo:zoo_cell", {
                "name": spec.name, "target": target,
                "out_dir": str(out_dir if in_process else Path(out_dir).resolve()),
                "iterations": iterations, "warmup": warmup, "mil_report": mil_report,
                "progress": progress if in_process else None}, {"CPU": 1}))
            rows.append(_row(spec, target))

    def on_outcome(outcome, _final: bool) -> None:
        row = rows[int(outcome.job.id)]
        if outcome.ok:
            rows[int(outcome.job.id)] = outcome.value
        else:
            row.update(status=f"failed: {outcome.kind}", error=outcome.reason)
        if not in_process:
            say(f"{row['model']} -> {row['target']}: {rows[int(outcome.job.id)]['status']}")

    run_jobs(runner, jobs, retries=0, on_outcome=on_outcome)
    return rows


def zoo_cell(name: str, target: str, out_dir: str, iterations: int, warmup: int, mil_report: bool,
             progress: Callable[[str], None] | None = None) -> dict:
    """One zoo row: convert ``name`` to ``target`` (validated), time a ``.pte``; failures recorded in the row."""
    from edgevit.api import bench, convert
    from edgevit.base.errors import ExportError
    from edgevit.bench.host import Plan
    from edgevit.models.registry import get_spec

    say = progress or (lambda _m: None)
    spec = get_spec(name)
    out = Path(out_dir)
    row = _row(spec, target)
    say(f"{spec.name} -> {target}")
    start = time.perf_counter()
    try:
        result = convert(spec.name, target, out, mil_report=mil_report and target == "coreml")
    except ExportError as exc:
        op, module = exc.op, exc.module
        where = " in ".join(x for x in (op and f"op {op}", module) if x) or "see error"
        row.update(status=f"failed: {where}", error=str(exc), failing_op=op, failing_module=module)
        return row
    except Exception as exc:  # noqa: BLE001 - a sweep records every failure and goes on
        row.update(status=f"failed: {type(exc).__name__}", error=f"{type(exc).__name__}: {exc}"[:600])
        return row
    finally:
        row["export_s"] = round(time.perf_counter() - start, 1)
    art = result.artifacts[0]
    row.update(status="converted", artifact=str(art.path), prepared_rel_l2=result.prepared_rel_l2)
    if art.parity is not None:
        row.update(parity=art.parity.status, parity_runtime=art.parity.runtime,
                   parity_reason=art.parity.reason or None)
        if art.parity.overall is not None:
            o = art.parity.overall
            row.update(rel_l2=o.rel_l2, psnr_db=o.psnr_db, top1_agreement=o.top1_agreement)
        if art.parity.original_fp32_vs_fp64 is not None:
            row["original_fp32_vs_fp64_rel_l2"] = art.parity.original_fp32_vs_fp64.rel_l2
    if result.mil_layout is not None:
        row.update(layout_ops_before=result.mil_layout["model"]["before"],
                   layout_ops_after=result.mil_layout["model"]["after"])
    elif "mil" in art.export_info:  # the exported program itself (prepared model + image preprocessing)
        row["layout_ops_after"] = art.export_info["mil"]["layout_ops"]
    delegation = art.export_info.get("delegation")
    if delegation:
        row.update(xnnpack_subgraphs=delegation["delegated_subgraphs"],
                   non_delegated_ops=delegation["non_delegated_ops"])
    if target == "executorch":
        say(f"timing {art.path.name}")
        doc = bench([str(art.path)], plan=Plan(warmup=warmup, iterations=iterations))
        rec = doc["results"][0]
        if rec["status"] == "ok":
            row.update(pte_latency_ms=rec["median_ms"], pte_latency_p90_ms=rec["p90_ms"],
                       latency_iterations=rec["iterations"])
        else:
            row["pte_latency_ms"] = None
    return row


def _fmt(value, spec: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and spec:
        return format(value, spec)
    return str(value)


def _parity_cell(row: dict) -> str:
    """The verdict, naming the runtime where it is not the target's own: mil-reference is edgevit's interpreter,
    and a CoreML row checked by it must never read as if the CoreML runtime had run."""
    if row.get("parity") is None:
        return "-"
    return f"{row['parity']} (mil-reference)" if row.get("parity_runtime") == "mil-reference" else row["parity"]


def zoo_table_markdown(rows: Sequence[dict]) -> str:
    """The sweep as a Markdown table, failures with their op and module, then the top-1 sources."""
    head = ("| model | target | status | parity | rel L2 | PSNR dB "
            "| MIL reshape/transpose (orig -> prepared) | .pte median ms | published top-1 |")
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        if r.get("layout_ops_after") is None:
            layout = "-"
        else:
            layout = f"{_fmt(r.get('layout_ops_before'))} -> {r['layout_ops_after']}"
        status = str(r.get("status") or "-").replace("|", "\\|")
        lines.append(
            f"| {r['model']} | {_fmt(r.get('target'))} | {status} | {_parity_cell(r)} "
            f"| {_fmt(r.get('rel_l2'), '.2e')} | {_fmt(r.get('psnr_db'), '.1f')} | {layout} "
            f"| {_fmt(r.get('pte_latency_ms'), '.2f')} | {_fmt(r.get('published_top1'))} |"
        )
    sources = {r["model"]: r.get("top1_source") for r in rows if r.get("top1_source")}
    if sources:
        lines += ["", "Published top-1 sources:"]
        lines += [f"- {model}: {src}" for model, src in sources.items()]
    failures = [r for r in rows if str(r.get("status", "")).startswith("failed")]
    if failures:
        lines += ["", "Failures:"]
        lines += [f"- {r['model']} / {r.get('target')}: {r.get('error')}" for r in failures]
    if any(r.get("parity_runtime") == "mil-reference" for r in rows):
        lines += ["", "mil-reference: edgevit's MIL reference interpreter ran the saved ML program on this CPU; it "
                  "proves the converted program computes the original function, not how the CoreML runtime runs it "
                  "per compute unit (the iOS harness measures that)."]
    doubtful = [r for r in rows if r.get("parity") in ("fail", "inconclusive", "not run")]
    if doubtful:
        lines += ["", "Parity not passed:"]
        lines += [f"- {r['model']} / {r['target']}: {r['parity']}: {r.get('parity_reason')}" for r in doubtful]
    return "\n".join(lines) + "\n"


def zoo_summary(rows: Sequence[dict]) -> str:
    """One line counting rows by outcome; inconclusive and not-run rows are never counted as passes."""
    from collections import Counter

    counts = Counter("failed to convert" if str(r.get("status", "")).startswith("failed")
                     else f"parity {r.get('parity') or 'not checked'}" for r in rows)
    return f"{len(rows)} model x target rows: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))


def write_zoo_json(rows: Sequence[dict], path: str | Path, kind: str = "edgevit-zoo/1") -> Path:
    """The rows plus the host they ran on, atomically."""
    from edgevit.base.atomic import ensure_writable_dir, write_text_atomic
    from edgevit.base.clock import utc_now_iso
    from edgevit.base.manifest import tool_versions
    from edgevit.bench.host_info import host_device

    path = Path(path)
    ensure_writable_dir(path.parent)
    doc = {"format": kind, "created": utc_now_iso(), "device": host_device(),
           "tool_versions": tool_versions(), "rows": list(rows)}
    write_text_atomic(path, json.dumps(doc, indent=1, default=str) + "\n")
    return path


# ------------------------------------------------------------------------------------- FastViT report


def paired_latency(a: Callable[[], object], b: Callable[[], object], iterations: int = 20,
                   warmup: int = 3) -> tuple[float, float, dict]:
    """Median ms of ``a`` and of ``b`` and the comparison (ratio b/a with its interval), timed against each other
    by the fair protocol (edgevit.bench.fair): a sequential A-then-B timing can invert a real difference, and a
    single-iteration alternation charges each form for the other's leftovers."""
    from statistics import median

    from edgevit.bench.fair import Contender, Protocol, compare

    result = compare(Contender("a", a), Contender("b", b), Protocol.for_iterations(iterations, warmup=warmup))
    return median(result.a_samples), median(result.b_samples), result.to_json()


def fastvit_report(names: Sequence[str] | None = None, iterations: int = 20, warmup: int = 3,
                   mil: bool = True, unfused_pte: bool = True,
                   progress: Callable[[str], None] | None = None) -> list[dict]:
    """Per FastViT variant: params, FLOPs, MIL op histogram and batch-1 host latency of every form.

    Forms: original (unfused) eager, prepared eager, ``.pte`` (XNNPACK) and ONNX of the prepared model, timed by
    the host harness (``latency_ms``, medians of results-schema records). Fused vs unfused is also timed pairwise and
    interleaved (``paired_ms``) by the fair protocol (edgevit.bench.fair; ``paired_ratio``: unfused / fused time with
    its interval): eager original vs eager prepared, and with ``unfused_pte`` a ``.pte`` of the unfused original vs
    the prepared one in the ExecuTorch runtime. ``iterations`` (at least 18) is per form. Random exercised weights
    (timing does not depend on their values).
    """
    import tempfile
    from functools import partial

    import torch

    from converters import get_converter
    from converters.fastvit import unfused_modules
    from edgevit.bench.fair import Protocol
    from edgevit.bench.forms import export_for_timing
    from edgevit.bench.host import Plan, bench_artifact, bench_eager
    from edgevit.export.mil_inspect import inspect_mil
    from edgevit.models.build import build_model
    from edgevit.models.complexity import count_flops
    from edgevit.models.registry import get_spec
    from edgevit.validate.runtimes import open_runner
    from edgevit.validate.threads import default_threads, reset_executorch_threads

    say = progress or (lambda _m: None)
    plan = Plan(warmup=warmup, iterations=iterations)
    Protocol.for_iterations(iterations)  # too few for an interval: refused (saying how many) before any work
    rows = []
    for name in names or [s.name for s in fastvit_specs()]:
        spec = get_spec(name)
        say(f"{spec.name}: building and preparing")
        original, _ = build_model(spec)
        prepared = get_converter(spec.converter).prepare(original).module
        example = torch.randn((1, *spec.input_size), generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ref, out = original(example), prepared(example)
        row: dict = {
            "model": spec.name,
            "params_original": sum(p.numel() for p in original.parameters()),
            "params_prepared": sum(p.numel() for p in prepared.parameters()),
            "flops_original": count_flops(original, spec.input_size),
            "flops_prepared": count_flops(prepared, spec.input_size),
            "prepared_rel_l2": float((out - ref).norm() / ref.norm()),
            "unfused_modules": len(unfused_modules(prepared)),
        }
        if mil:
            say(f"{spec.name}: MIL programs")
            before, after = inspect_mil(original, example), inspect_mil(prepared, example)
            row["mil_ops_original"] = dict(sorted(before.histogram.items()))
            row["mil_ops_prepared"] = dict(sorted(after.histogram.items()))
            row["mil_layout_ops"] = {"original": before.layout_count, "prepared": after.layout_count}
        say(f"{spec.name}: timing eager / .pte / onnx, fused and unfused")
        records = [bench_eager(spec.name, "original-eager", original, example, plan),
                   bench_eager(spec.name, "prepared-eager", prepared, example, plan)]
        paired: dict[str, float | None] = {}
        ratios: dict[str, dict] = {}
        with torch.inference_mode():
            paired["eager-unfused"], paired["eager-fused"], ratios["eager"] = paired_latency(
                partial(original, example), partial(prepared, example), iterations, warmup)
        with tempfile.TemporaryDirectory(prefix="edgevit-fastvit-") as tmp:
            # each artifact exported once: timed alone (results schema) and reused for the interleaved pair
            folder = Path(tmp)
            exported = {t: export_for_timing(spec, prepared, t, example, folder) for t in ("executorch", "onnx")}
            records += [bench_artifact(spec.name, *artifact, example, plan) for artifact in exported.values()]
            latency = {r["form"]: r["median_ms"] for r in records if r["status"] == "ok"}
            if unfused_pte:
                (folder / "unfused").mkdir()
                unfused = export_for_timing(spec, original, "executorch", example, folder / "unfused")
                rec = bench_artifact(spec.name, *unfused, example, plan)
                latency["executorch-unfused"] = rec["median_ms"] if rec["status"] == "ok" else None
                reset_executorch_threads(default_threads())  # a fresh pool for this pair, before both load
                runners = [open_runner(*artifact) for artifact in (unfused, exported["executorch"])]
                paired["pte-unfused"], paired["pte-fused"], ratios["pte"] = paired_latency(
                    partial(runners[0].run, example), partial(runners[1].run, example), iterations, warmup)
                del runners
        row["latency_ms"] = latency
        row["paired_ms"] = paired
        row["paired_ratio"] = ratios
        row["iterations"] = iterations
        rows.append(row)
    return rows


def fastvit_report_markdown(rows: Sequence[dict]) -> str:
    """The FastViT report as a Markdown table (medians in ms, batch 1)."""
    lines = ["| model | params (M) | GFLOPs | MIL reshape/transpose orig -> prep | eager orig | eager prep "
             "| .pte unfused | .pte prep | onnx prep | paired eager unfused/fused | paired .pte unfused/fused |",
             "|" + "---|" * 11]
    for r in rows:
        lat, paired = r["latency_ms"], r.get("paired_ms") or {}
        layout = r.get("mil_layout_ops") or {}
        lines.append(
            f"| {r['model']} | {r['params_prepared'] / 1e6:.2f} | {r['flops_prepared'] / 1e9:.2f} "
            f"| {_fmt(layout.get('original'))} -> {_fmt(layout.get('prepared'))} "
            f"| {_fmt(lat.get('original-eager'), '.1f')} | {_fmt(lat.get('prepared-eager'), '.1f')} "
            f"| {_fmt(lat.get('executorch-unfused'), '.1f')} | {_fmt(lat.get('executorch'), '.1f')} "
            f"| {_fmt(lat.get('onnx'), '.1f')} "
            f"| {_fmt(paired.get('eager-unfused'), '.1f')} / {_fmt(paired.get('eager-fused'), '.1f')} "
            f"| {_fmt(paired.get('pte-unfused'), '.1f')} / {_fmt(paired.get('pte-fused'), '.1f')} |"
        )
    return "\n".join(lines) + "\n"
