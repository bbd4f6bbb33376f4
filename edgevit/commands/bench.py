"""`edgevit bench` on this host and `edgevit profile`: timings, ratios, threads, % of peak, per-op tables."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from rich.table import Table

from edgevit.base.errors import EdgevitError
from edgevit.commands.output import console, fmt_ms, fmt_number, print_table, progress_printer


def _rate(r: dict) -> str:
    """Achieved GFLOP/s and its percent of the CPU's physical peak ('?' where withheld), or 'not measured'."""
    if r.get("gflop_per_s") is None:
        return "not measured"
    if r.get("percent_of_peak") is not None:
        return f"{r['gflop_per_s']:.1f} ({r['percent_of_peak']:.0f}%)"
    return f"{r['gflop_per_s']:.1f} (?)" if r.get("peak_note") else f"{r['gflop_per_s']:.1f}"


def fair_ratio(paired: dict | None) -> str | None:
    """The fair protocol's ratio with its interval, e.g. '1.12x [1.05-1.19]'; 'too short' without one."""
    if not paired:
        return None
    if paired.get("ratio") is None:
        return "too short"
    if paired.get("ci_low") is None:  # a version-2 file: single-iteration alternation, no interval
        return f"{paired['ratio']:.2f}x (i)"
    return f"{paired['ratio']:.2f}x [{paired['ci_low']:.2f}-{paired['ci_high']:.2f}]"


NARROW = ("model", "batch", "form", "median", "p90", "GFLOP/s (% peak)", "vs eager", "vs onnxruntime")
WIDE = ("model", "batch", "form", "runtime/backend", "median", "trimmed mean", "p90", "load ms", "peak MB",
        "GFLOP/s (% peak)", "vs eager", "vs onnxruntime")


def bench_table(document: dict, wide: bool = False) -> tuple[Table, list[str]]:
    """The results as a table (120 columns; ``wide``: trimmed mean, load time, memory, runtime/backend too),
    plus one note per row that was not measured (and why)."""
    columns = WIDE if wide else NARROW
    if len({r.get("precision") for r in document["results"]}) > 1:  # fp32 beside int8, w8a8...: say which is which
        columns = tuple(c for col in columns for c in ((col, "precision") if col == "form" else (col,)))
    table = Table(title="host benchmark (ms; vs eager: speed-up over the original eager model)")
    for col in columns:
        table.add_column(col, justify="left" if col in ("model", "form", "runtime/backend") else "right")
    results = document["results"]
    index = {(r["model"], r["batch"], r["form"]): r for r in results}
    notes = []
    for r in results:
        if r["status"] != "ok":
            notes.append(f"{r['model']} batch {r['batch']} {r['form']}: not measured: {r['error']}")
            cells = {"model": r["model"], "batch": str(r["batch"]), "form": r["form"],
                     "precision": r.get("precision", ""), "runtime/backend": r["runtime"], "median": "not measured"}
            table.add_row(*[cells.get(col, "") for col in columns])
            continue
        ratios = []
        for ref_form in ("original-eager", "onnx"):
            ref = index.get((r["model"], r["batch"], ref_form))
            ok = ref and ref["status"] == "ok" and ref["median_ms"] and r["median_ms"]
            ratios.append(f"{ref['median_ms'] / r['median_ms']:.2f}x" if ok else "-")
        paired = r.get("interleaved")
        if paired and paired["against"] == "onnx":  # the fair protocol: the ratio to trust
            ratios[1] = fair_ratio(paired)
            if paired.get("note"):
                notes.append(f"{r['model']} batch {r['batch']} {r['form']} vs {paired['against']}: {paired['note']}")
        if r.get("peak_note"):
            notes.append(f"{r['model']} batch {r['batch']} {r['form']}: {r['peak_note']}")
        cells = {"model": r["model"], "batch": str(r["batch"]), "form": r["form"], "precision": r.get("precision", ""),
                 "runtime/backend": f"{r['runtime']}/{r['backend']}", "median": fmt_ms(r["median_ms"]),
                 "trimmed mean": fmt_ms(r["trimmed_mean_ms"]), "p90": fmt_ms(r["p90_ms"]),
                 "load ms": fmt_number(r["load_time_ms"], 4), "peak MB": fmt_number(r["peak_memory_mb"], 4),
                 "GFLOP/s (% peak)": _rate(r), "vs eager": ratios[0], "vs onnxruntime": ratios[1]}
        table.add_row(*[cells[col] for col in columns])
    return table, sorted(set(notes))


def peak_lines(peak: dict | None) -> list[str]:
    """The ceiling under the table: the physical peak and how it was derived, each runtime's best GEMM, notes."""
    if peak is None:
        return []
    physical = peak["physical"]
    lines = []
    if physical is not None:
        lines.append(f"physical fp32 peak: {physical['gflop_per_s']:.1f} GFLOP/s = {physical['derivation']}")
    gemm = peak["runtime_gemm_gflop_per_s"]
    percent = peak.get("runtime_gemm_percent_of_peak") or {}
    cells = [f"{name} {fmt_number(rate, 4)}" + (f" ({percent[name]:.0f}%)" if percent.get(name) is not None else "")
             for name, rate in gemm.items()]
    lines.append("best dense GEMM here, GFLOP/s: " + ", ".join(cells))
    return lines + [f"note: {note}" for note in peak["notes"]]


def published_lines(results: list[dict]) -> list[str]:
    """The phone latency each benched model's paper published, on its own lines: a device figure, never a host one."""
    from edgevit.models.catalog import published_latency

    published = published_latency()
    models = sorted({r["model"] for r in results} & set(published))
    return [f"published by its paper (a phone; not comparable with the host figures above): {m} "
            f"{published[m]['ms']:.1f} ms on {published[m]['device']}, {published[m]['compute_unit']} "
            f"[{published[m]['source']}]" for m in models]


def run_bench(args: argparse.Namespace) -> int:
    from edgevit.api import bench
    from edgevit.bench.plan import plan_with

    plan = plan_with(args.warmup, args.iterations)
    warnings.filterwarnings("ignore")
    document = bench(args.items, artifacts=args.artifacts, batches=args.batch, plan=plan, out=args.out,
                     progress=progress_printer(args.quiet), threads=args.threads, profile=args.profile,
                     eager=not args.no_eager)
    table, notes = bench_table(document, args.wide)
    print_table(table, args.wide)
    for note in notes:
        console.print(f"  {note}")
    console.print(f"measured on {document['results'][0]['device']['cpu']}" if document["results"] else "no results")
    if any(r.get("interleaved") for r in document["results"]):
        console.print("vs onnxruntime: the fair protocol (blocks alternated in random order, first of each dropped, "
                      "the other runtime quiet): ratio of block medians [95% bootstrap interval]; above 1x the .pte "
                      "is faster")
    threads = sorted({r["threads"] for r in document["results"] if r["threads"] is not None})
    console.print(f"threads: {', '.join(map(str, threads)) or 'not set'}")
    for line in peak_lines(document.get("peak")):
        console.print(line)
    for line in published_lines(document["results"]):
        console.print(line)
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
