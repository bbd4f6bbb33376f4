"""What the CLI prints: rich tables and progress for the API's results (kept out of the API itself)."""

from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from functools import partial
from pathlib import Path

from rich.console import Console
from rich.table import Table

from edgevit.base.errors import EdgevitError

# Logs and CI are not terminals: rich would squeeze tables into 80 columns there.
TABLE_WIDTH = 120  # what a table is laid out for when stdout is not a terminal; --wide lifts it
console = Console(highlight=False, width=None if sys.stdout.isatty() else TABLE_WIDTH)


def _progress(quiet: bool):
    def say(message: str) -> None:
        if not quiet:
            console.print(f"[dim]•[/] {message}")

    return say


def _fmt(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def _ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"


def show_models(details: bool) -> int:
    from edgevit.api import list_models

    table = Table(title="edgevit models (any timm model also works as timm:<name>)")
    for col in ("name", "family", "converter", "input", "published top-1", "options"):
        table.add_column(col)
    if details:
        table.add_column("params (M)", justify="right")
        table.add_column("GFLOPs", justify="right")
    for spec in list_models():
        row = [spec.name, spec.family, spec.converter, "x".join(map(str, spec.input_size)),
               f"{spec.published_top1:.1f} ({spec.top1_source})" if spec.published_top1 else "-",
               ", ".join(f"{k}={'|'.join(v)}" for k, v in spec.options.items()) or "-"]
        if details:
            from edgevit.models.complexity import complexity

            c = complexity(spec)
            row += [f"{c['params'] / 1e6:.2f}", f"{c['flops'] / 1e9:.2f}"]
        table.add_row(*row)
    console.print(table)
    if details:
        console.print("FLOPs from torch.utils.flop_counter at the model's input size (a multiply-add counts as 2).")
    return 0


def show_turbovit_comparison() -> int:
    from edgevit.models.turbovit import seed_comparison

    table = Table(title="TurboViT vs seed models at 224x224 (torch.utils.flop_counter; MACs = FLOPs / 2)")
    for col in ("model", "params (M)", "GFLOPs", "GMACs", "TurboViT is"):
        table.add_column(col, justify="left" if col in ("model", "TurboViT is") else "right")
    for row in seed_comparison():
        verdict = "-" if row["model"] == "turbovit" else ", ".join((
            "smaller" if row["turbovit_smaller"] else "larger", "cheaper" if row["turbovit_cheaper"] else "costlier"))
        table.add_row(row["model"], f"{row['params'] / 1e6:.2f}", f"{row['flops'] / 1e9:.2f}",
                      f"{row['macs'] / 1e9:.2f}", verdict)
    console.print(table)
    return 0


MIL_REFERENCE = "mil-reference"
MIL_REFERENCE_NOTE = (
    "mil-reference = edgevit's MIL reference interpreter: it ran the saved ML program op by op on this CPU "
    "(fp16 values rounded after each op), which proves the converted program computes the original function. "
    "It is not the CoreML runtime; `edgevit harness ios` measures that on a device, per compute unit.")


def parity_table(results, wide: bool = False) -> Table:
    """Parity per artifact. The default columns fit 120 characters; ``wide`` adds max abs, cosine, top-5 and
    photos top-1, and the reasons inline (otherwise they follow the table, see ``parity_notes``)."""
    table = Table(title="parity vs the original PyTorch model (photos + random tensors)")
    table.add_column("artifact", no_wrap=True)
    cols = (("runtime", "status", "max abs", "rel L2", "PSNR dB", "cosine", "top-1", "top-5", "photos top-1",
             "distinct classes") if wide else ("runtime", "status", "rel L2", "PSNR dB", "top-1", "classes"))
    for col in cols:
        table.add_column(col, justify="left" if col in ("runtime", "status") else "right")
    for r in results:
        if r is None:
            continue
        style = {"pass": "green", "fail": "bold red"}.get(r.status, "yellow")
        status = f"[{style}]{r.status}[/]" + (f": {r.reason}" if r.reason and wide else "")
        m = r.overall
        if m is None:
            table.add_row(r.artifact, r.runtime, status, *["not measured"] * (len(cols) - 2))
            continue
        if wide:
            table.add_row(r.artifact, r.runtime, status, _fmt(m.max_abs), _fmt(m.rel_l2), _fmt(m.psnr_db, 4),
                          f"{m.cosine:.6f}", f"{m.top1_agreement:.0%}", f"{m.top5_agreement:.0%}",
                          f"{r.photos.top1_agreement:.0%}" if r.photos else "-", str(m.distinct_top1))
        else:
            table.add_row(r.artifact, r.runtime, status, _fmt(m.rel_l2), _fmt(m.psnr_db, 4),
                          f"{m.top1_agreement:.0%}", str(m.distinct_top1))
    return table


def print_parity(results, wide: bool = False, json_path: str | None = None) -> None:
    """The parity table, each reason below it (unless ``wide``), and all fields as JSON when asked."""
    results = [r for r in results if r is not None]
    # a wide table is laid out at full width and left to the terminal to wrap: rich would squeeze it to 120
    shown = Console(highlight=False, width=max(console.width, 240)) if wide else console
    shown.print(parity_table(results, wide))
    if not wide:
        for r in results:
            if r.reason:
                console.print(f"  {r.artifact} ({r.runtime}): {r.reason}")
    if json_path:
        from edgevit.base.atomic import write_text_atomic

        write_text_atomic(Path(json_path), json.dumps([r.to_json() for r in results], indent=2) + "\n")
        console.print(f"[green]wrote[/] {json_path} (every parity field)")


def run_convert(args: argparse.Namespace) -> int:
    from edgevit.api import convert

    options = {"attention_form": args.attention_form} if args.attention_form else None
    warnings.filterwarnings("ignore")
    result = convert(
        args.model, args.target, args.out, weights=args.weights, options=options, precision=args.precision,
        backend=args.backend, deployment_target=args.deployment_target, tensor_input=args.tensor_input,
        init=args.init, seed=args.seed, validate=not args.no_validate, mil_report=not args.no_mil_report,
        progress=_progress(args.quiet), quantize=args.quantize, compress=args.compress,
        calibration=args.calibration, min_psnr=args.min_psnr,
    )
    console.print(f"[bold]{result.model}[/]: {result.weights}")
    console.print("rewrites: " + "; ".join(result.rewrites))
    console.print(f"prepared vs original (fp32, validation inputs): relative L2 {result.prepared_rel_l2:.2e}")
    if result.mil_layout:
        m = result.mil_layout["model"]
        att = result.mil_layout["attention_blocks"]
        side = {}
        for when in ("before", "after"):
            error = m[f"error_{when}"]
            side[when] = (f"conversion fails ({error})" if error else
                          f"{m[when]} {m[f'{when}_ops']} at max tensor rank {m[f'max_rank_{when}']}")
        console.print(f"CoreML MIL reshape/transpose ops, whole model: {side['before']} -> {side['after']}")
        if m["max_rank_before"] > 5:
            console.print("  (the original exceeds rank 5: CoreML's mlprogram conversion rejects it; "
                          "the prepared model is what ships)")
        console.print(f"  per attention block: before {list(att['before'].values())} -> after "
                      f"{list(att['after'].values())}")
    for art in result.artifacts:
        extra = ""
        if "delegation" in art.export_info:
            d = art.export_info["delegation"]
            left = (f"ops left on portable kernels: {d['non_delegated_ops']}" if d["non_delegated_ops"]
                    else "no op left on portable kernels")
            took = f"{d['backend']} took {d['delegated_nodes']} nodes in {d['delegated_subgraphs']} subgraph(s)"
            extra = f" — {took}, {left}"
        if art.export_info.get("workarounds"):
            extra += f"; backend bug workarounds applied: {art.export_info['workarounds']}"
        console.print(f"[green]wrote[/] {art.path} ({art.seconds:.1f} s){extra}")
        _say_quantization(art)
    if any(a.parity for a in result.artifacts):
        print_parity([a.parity for a in result.artifacts], args.wide, args.json)
    _say_quantized_parity(result.artifacts)
    _say_runtimes([a.parity for a in result.artifacts])
    _say_inconclusive([a.parity for a in result.artifacts])
    if result.failed:
        console.print(f"[bold red]parity FAILED[/] for {', '.join(a.path.name for a in result.failed)}")
        return 3
    return 0


def _say_quantization(art) -> None:
    """A quantized/compressed artifact: its scheme, calibration set and the layers left in float."""
    from edgevit.base.manifest import read_manifest

    q = read_manifest(art.path).get("quantization")
    if not q:
        return
    console.print(f"  scheme: {q['scheme']}; size {_size_mb(art.path):.2f} MB")
    if q.get("calibration"):
        c = q["calibration"]
        console.print(f"  calibration: {c['images']} images from {c['source']} (set sha256 {c['sha256'][:12]})")
    floats = q.get("float_layers")
    if floats is not None:
        by_op = ", ".join(f"{op} x{n}" for op, n in floats["by_op"].items()) or "none"
        console.print(f"  layers left in float: {floats['count']} ({by_op})")
    if "compressed_weight_ops" in q:
        console.print(f"  compressed weights: {q['compressed_weight_ops']}; float weight tensors >= 2048 elements "
                      f"left: {q['float_weights_left']} ({q['note']})")
    if q.get("warning"):
        console.print(f"  [bold yellow]note:[/] {q['warning']}")


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _say_quantized_parity(artifacts) -> None:
    """Quantized vs float, on the photos, side by side; the verdict's floor; the random-init caveat."""
    from edgevit.base.manifest import read_manifest

    for art in artifacts:
        if art.parity is None or art.parity.photos is None:
            continue
        q = read_manifest(art.path).get("quantization")
        if not q:
            continue
        m = art.parity.photos
        line = (f"{art.path.name} on the photos: PSNR {m.psnr_db:.1f} dB, cosine {m.cosine:.4f}, top-1 "
                f"{m.top1_agreement:.0%}, top-5 {m.top5_agreement:.0%} (pass at PSNR >= {q['min_psnr_db']:g} dB)")
        sibling = q.get("float_artifact_parity")
        if sibling:
            f = sibling["photos"]
            line += (f"; float {sibling['artifact']}: PSNR {f['psnr_db']:.1f} dB, cosine {f['cosine']:.4f}, "
                     f"top-1 {f['top1_agreement']:.0%}")
        console.print(line)
        if q.get("warning"):
            console.print(f"  [bold yellow]note:[/] {q['warning']}")


def _say_runtimes(results) -> None:
    """The interpreter is not the CoreML runtime: say what its row proves, in words, wherever it appears."""
    if any(r is not None and r.runtime == MIL_REFERENCE for r in results):
        console.print(MIL_REFERENCE_NOTE)


def _say_inconclusive(results) -> None:
    """Inconclusive is not a pass: say so in words below the table, not only in its status column."""
    names = [r.artifact for r in results if r is not None and r.status == "inconclusive"]
    if names:
        console.print(f"[bold yellow]parity INCONCLUSIVE[/] for {', '.join(names)}: the original model is not "
                      "stable in fp32 with these weights, so nothing is proven either way (see the reason)")


def run_validate(artifact: Path, device_outputs: str | None, quiet: bool, runtime: str | None = None, *,
                 wide: bool = False, json_path: str | None = None) -> int:
    from edgevit.api import validate

    warnings.filterwarnings("ignore")
    _progress(quiet)(f"validating {artifact}")
    result = validate(artifact, device_outputs, runtime=runtime)
    print_parity([result], wide, json_path)
    from edgevit.base.manifest import read_manifest

    warning = (read_manifest(artifact).get("quantization") or {}).get("warning")
    if warning:
        console.print(f"[bold yellow]note:[/] {warning}")
    _say_runtimes([result])
    _say_inconclusive([result])
    return 3 if result.failed else 0


def _rate(r: dict) -> str:
    """Achieved GFLOP/s and its percent of the host's GEMM peak, or 'not measured'."""
    if r.get("gflop_per_s") is None:
        return "not measured"
    peak = f" ({r['percent_of_peak']:.0f}%)" if r.get("percent_of_peak") is not None else ""
    return f"{r['gflop_per_s']:.1f}{peak}"


def bench_table(document: dict) -> tuple[Table, list[str]]:
    """The results as a table, plus one note per row that was not measured (and why)."""
    table = Table(title="host benchmark (ms; ratios are median speed-ups)")
    for col in ("model", "batch", "form", "runtime/backend", "median", "trimmed mean", "p90", "load ms",
                "peak MB", "GFLOP/s (% peak)", "vs original eager", "vs onnxruntime"):
        table.add_column(col, justify="right" if col not in ("model", "form", "runtime/backend") else "left")
    results = document["results"]
    index = {(r["model"], r["batch"], r["form"]): r for r in results}
    notes = []
    for r in results:
        if r["status"] != "ok":
            notes.append(f"{r['model']} batch {r['batch']} {r['form']}: not measured: {r['error']}")
            table.add_row(r["model"], str(r["batch"]), r["form"], r["runtime"], "not measured", *[""] * 7)
            continue
        ratios = []
        for ref_form in ("original-eager", "onnx"):
            ref = index.get((r["model"], r["batch"], ref_form))
            ok = ref and ref["status"] == "ok" and ref["median_ms"] and r["median_ms"]
            ratios.append(f"{ref['median_ms'] / r['median_ms']:.2f}x" if ok else "-")
        table.add_row(r["model"], str(r["batch"]), r["form"], f"{r['runtime']}/{r['backend']}",
                      _ms(r["median_ms"]), _ms(r["trimmed_mean_ms"]), _ms(r["p90_ms"]),
                      _fmt(r["load_time_ms"], 4), _fmt(r["peak_memory_mb"], 4), _rate(r), *ratios)
    return table, sorted(set(notes))


def run_bench(args: argparse.Namespace) -> int:
    from edgevit.api import bench
    from edgevit.bench.plan import Plan

    plan = None
    if args.iterations is not None or args.warmup is not None:
        plan = Plan(warmup=args.warmup if args.warmup is not None else 5,
                    iterations=args.iterations if args.iterations is not None else 30)
    warnings.filterwarnings("ignore")
    document = bench(args.items, artifacts=args.artifacts, batches=args.batch, plan=plan, out=args.out,
                     progress=_progress(args.quiet), threads=args.threads, profile=args.profile)
    table, notes = bench_table(document)
    console.print(table)
    for note in notes:
        console.print(f"  {note}")
    console.print(f"measured on {document['results'][0]['device']['cpu']}" if document["results"] else "no results")
    threads = sorted({r["threads"] for r in document["results"] if r["threads"] is not None})
    peak = document["gemm_peak_gflop_per_s"]
    console.print(f"threads: {', '.join(map(str, threads)) or 'not set'}; fp32 GEMM peak here: "
                  f"{_fmt(peak, 4)} GFLOP/s (torch.mm)")
    if args.out:
        console.print(f"[green]wrote[/] {args.out}")
    return 0


def _cut(text: str | None, width: int) -> str:
    text = text or "-"
    return text if len(text) <= width else text[: width - 1] + "…"


def profile_tables(prof, top: int) -> tuple[Table, Table]:
    """The top ops and the time per op type (with the kernel path); each fits 120 columns."""
    ops = Table(title=f"top {min(top, len(prof.ops))} of {len(prof.ops)} ops (ms per iteration)")
    for col, justify in (("op", "left"), ("type", "left"), ("kernel / path", "left"), ("ms", "right"),
                         ("%", "right")):
        ops.add_column(col, justify=justify, no_wrap=True)
    for op in prof.top(top):
        ops.add_row(_cut(op.name, 36), _cut(op.op_type, 18), _cut(op.kernel, 34), f"{op.ms:.4f}",
                    f"{op.percent:.1f}")
    types = Table(title="time per op type")
    for col, justify in (("type", "left"), ("kernel / path", "left"), ("ops", "right"), ("ms", "right"),
                         ("%", "right")):
        types.add_column(col, justify=justify, no_wrap=True)
    for row in prof.by_type():
        types.add_row(_cut(row["op_type"], 24), _cut(row["kernel"], 44), str(row["ops"]), f"{row['ms']:.4f}",
                      f"{row['percent']:.1f}")
    return ops, types


def run_profile(args: argparse.Namespace) -> int:
    from edgevit.api import profile

    if args.top < 1:
        raise EdgevitError(f"--top must be at least 1, got {args.top}")
    warnings.filterwarnings("ignore")
    prof = profile(args.artifact, threads=args.threads, iterations=args.iterations, warmup=args.warmup)
    console.print(f"{prof.artifact}: {prof.runtime}, {prof.threads} thread(s), {prof.iterations} iterations after "
                  f"{prof.warmup} warm-up")
    console.print(f"source: {prof.source}")
    for table in profile_tables(prof, args.top):
        console.print(table)
    run = f"; the runtime's own time per run {prof.run_ms:.4f} ms" if prof.run_ms is not None else ""
    console.print(f"ops total {prof.total_ms:.4f} ms per iteration{run}")
    for note in prof.notes:
        console.print(f"  note: {note}")
    if args.json:
        from edgevit.base.atomic import ensure_writable_dir, write_text_atomic

        path = Path(args.json)
        ensure_writable_dir(path.parent)
        import json

        write_text_atomic(path, json.dumps(prof.to_dict(), indent=1) + "\n")
        console.print(f"[green]wrote[/] {path}")
    return 0


def run_report(args: argparse.Namespace) -> int:
    from edgevit.bench.results import load_results
    from edgevit.models.catalog import published_top1
    from edgevit.report import DEFAULT_TITLE, write_report

    results = load_results([Path(p) for p in args.results])
    paths = write_report(results, Path(args.out), published_top1(), title=args.title or DEFAULT_TITLE,
                         x_axis=args.x_axis)
    for path in (paths.markdown, paths.html, paths.png, paths.results_csv, paths.speedups_csv):
        console.print(f"[green]wrote[/] {path}")
    return 0


def run_zoo(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from edgevit.models.registry import get_spec
    from edgevit.studies.zoo import run_zoo as sweep
    from edgevit.studies.zoo import write_zoo_json, zoo_summary, zoo_table_markdown

    for name in args.models:
        get_spec(name)  # an unknown name stops here, with the closest names, before any conversion
    _check_outputs(args, args.out)
    warnings.filterwarnings("ignore")
    rows = sweep(args.models or None, targets=args.target, out_dir=args.out, iterations=args.iterations,
                 mil_report=not args.no_mil_report, progress=_progress(args.quiet))
    markdown = zoo_table_markdown(rows)
    console.print(Markdown(markdown))
    _write_outputs(args, rows, markdown, write_zoo_json)
    console.print(zoo_summary(rows))
    return 0


def run_fastvit_report(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from edgevit.studies.zoo import fastvit_report, fastvit_report_markdown, write_zoo_json

    _check_outputs(args)
    warnings.filterwarnings("ignore")
    rows = fastvit_report(args.models or None, iterations=args.iterations, mil=not args.no_mil_report,
                          progress=_progress(args.quiet))
    markdown = fastvit_report_markdown(rows)
    console.print(Markdown(markdown))
    _write_outputs(args, rows, markdown, partial(write_zoo_json, kind="edgevit-fastvit-report/1"))
    return 0


def _check_outputs(args: argparse.Namespace, *folders: str) -> None:
    """Every folder the command will write to, proven writable before a sweep that can take half an hour."""
    from edgevit.base.atomic import ensure_writable_dir

    for folder in (*folders, *(Path(f).parent for f in (args.json, args.markdown) if f)):
        ensure_writable_dir(Path(folder))


def _write_outputs(args: argparse.Namespace, rows: list[dict], markdown: str, write_json) -> None:
    from edgevit.base.atomic import ensure_writable_dir, write_text_atomic

    if args.json:
        console.print(f"[green]wrote[/] {write_json(rows, args.json)}")
    if args.markdown:
        path = Path(args.markdown)
        ensure_writable_dir(path.parent)
        write_text_atomic(path, markdown)
        console.print(f"[green]wrote[/] {path}")


def run_harness_ios(args: argparse.Namespace) -> int:
    from edgevit.bench.device.ios import stage_ios_harness

    out = stage_ios_harness(Path(args.artifacts), Path(args.out), rounds=args.rounds, iterations=args.iterations,
                            compute_units=args.compute_units, warmup=args.warmup, overwrite=args.overwrite)
    console.print(f"[green]staged[/] {out}")
    console.print(f"next: open {out}/App/EdgevitBench.swiftpm in Xcode and run on your iPhone, or on a Mac: "
                  f"cd {out} && swift run -c release edgevit-ios-bench --help (see {out}/README.md)")
    return 0


def run_android_bench(args: argparse.Namespace) -> int:
    from edgevit.bench.device import android

    if not args.device.startswith("android"):
        raise EdgevitError(f"unknown --device {args.device!r}: use host, android or android:SERIAL")
    if not args.out:
        raise EdgevitError("--device android needs --out FILE for the results pulled from the phone")
    if args.threads is not None or args.profile:
        raise EdgevitError("--threads and --profile are for the host harness: the Android app runs ExecuTorch's "
                           "Module API, whose thread pool it does not set (its results record threads as null)")
    serial = android.parse_device_arg(args.device)
    artifacts = []
    for item in args.items:
        path = Path(item)
        artifacts += sorted(path.glob("*.pte")) if path.is_dir() else [path]
    artifacts = android.check_artifacts(artifacts)
    iterations = args.iterations if args.iterations is not None else 50
    warmup = args.warmup if args.warmup is not None else 5
    apk = android.resolve_apk(Path(args.apk) if args.apk else None)
    if args.dry_run:
        steps = android.plan_android_bench(artifacts, serial, Path(args.out), iterations, warmup, apk)
        console.print(android.format_plan(steps), markup=False)
        return 0
    out = android.bench_on_android(artifacts, serial, Path(args.out), iterations, warmup, apk,
                                   log=_progress(args.quiet))
    console.print(f"[green]wrote[/] {out} — next: edgevit report {out} --out reports")
    return 0
