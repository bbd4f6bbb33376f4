"""The blocks of each report section: summary and sources, Pareto front, speed-ups, results by group.

A table longer than TABLE_ROW_LIMIT rows is summarised (one row per group) instead: every row is in
results.csv / speedups.csv beside the report.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from edgevit.report.document import Block, Table
from edgevit.report.series import ParetoData, XAxis, not_plotted_lines
from edgevit.report.speedups import SPEEDUP_BASELINES, SpeedupPair
from edgevit.report.views import (
    MAX_LISTED,
    NOT_MEASURED,
    Sources,
    device_key,
    fmt_memory,
    fmt_ms,
    fmt_percent_of_peak,
    fmt_psnr,
    fmt_size,
    fmt_status,
    fmt_threads,
    measured,
    measured_on,
    row_order,
    variant_label,
)

TABLE_ROW_LIMIT = 400  # longer tables are summarised in report.md/.html; the CSV files have every row


def summary_blocks(results: Sequence[Mapping[str, Any]], sources: Sources) -> list[Block]:
    """Counts by status, and the numbered list of results files the source column refers to."""
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "failed", "not_run")}
    blocks = [Block("p", f"{len(results)} results from {len(sources.files)} file(s): {counts['ok']} ok, "
                         f"{counts['failed']} failed, {counts['not_run']} not run. Numbers that were not "
                         f"measured are shown as \"{NOT_MEASURED}\", never filled in.")]
    items = [f"[{s['index']}] {file}: harness {s['harness']}, created {s['created']}, {s['count']} result(s)"
             for file, s in sources.files.items()]
    return blocks + [Block("h2", "Sources"), Block("ul", items=items)] if items else blocks


# ----------------------------------------------------------------------------------------- results


def _tool_versions_note(rows: Sequence[Mapping[str, Any]]) -> str:
    versions: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        for tool, v in (r.get("tool_versions") or {}).items():
            versions[tool].add(v)
    text = ", ".join(f"{t} {' / '.join(sorted(v))}" for t, v in sorted(versions.items()))
    return f"Tool versions: {text or 'not recorded'}."


def _trim_note(rows: Sequence[Mapping[str, Any]]) -> str:
    fractions = sorted({r["trim_fraction"] for r in rows})
    return "Trimmed mean drops " + " / ".join(f"{f:.0%}" for f in fractions) + " of samples from each end."


RESULT_HEADERS = ["model", "form", "precision", "size", "logits PSNR (recorded)", "batch", "threads", "median ms",
                  "trimmed mean ms", "p90 ms",
                  "% of peak", "load ms", "peak memory", "warm-up + iterations", "status / error",
                  "published top-1 %", "Pareto", "measured on", "source"]


def result_row(i: int, r: Mapping[str, Any], top1: Mapping[str, float], pareto: ParetoData,
               sources: Sources) -> list[str]:
    """One result as the cells of RESULT_HEADERS."""
    acc = top1.get(r["model"])
    return [r["model"], r["form"], r["precision"], fmt_size(r), fmt_psnr(r), str(r["batch"]), fmt_threads(r),
            fmt_ms(measured(r, "median_ms")), fmt_ms(measured(r, "trimmed_mean_ms")),
            fmt_ms(measured(r, "p90_ms")), fmt_percent_of_peak(r), fmt_ms(measured(r, "load_time_ms")),
            fmt_memory(r), f"{r['warmup']} + {r['iterations']}", fmt_status(r),
            "none published" if acc is None else f"{acc:.1f}", pareto.status[i], measured_on(r), sources.ref(r)]


def results_blocks(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], pareto: ParetoData,
                   sources: Sources) -> list[Block]:
    """One table per device, runtime, backend and compute unit (or one summary table if there are too many)."""
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        groups[(*device_key(r), r["runtime"], r.get("backend") or "", r.get("compute_unit") or "")].append(i)
    blocks = [Block("h2", "Results by device, runtime, backend and compute unit")]
    if len(results) > TABLE_ROW_LIMIT:
        return blocks + _results_summary(results, groups)
    for key in sorted(groups):
        idx = sorted(groups[key], key=lambda i: row_order(results[i]))
        first = results[idx[0]]
        blocks.append(Block("h3", f"{measured_on(first)} — runtime {first['runtime']}, backend "
                                  f"{first.get('backend') or 'none'}, compute unit "
                                  f"{first.get('compute_unit') or 'not applicable'}"))
        rows = [result_row(i, results[i], top1, pareto, sources) for i in idx]
        blocks.append(Block("table", table=Table(RESULT_HEADERS, rows)))
        members = [results[i] for i in idx]
        blocks.append(Block("p", f"{_trim_note(members)} {_tool_versions_note(members)}"))
    return blocks


def _results_summary(results: Sequence[Mapping[str, Any]], groups: Mapping[tuple[Any, ...], list[int]]
                     ) -> list[Block]:
    """One row per group instead of one per result: too many rows to read (and to render) in a document."""
    rows = []
    for key in sorted(groups):
        members = [results[i] for i in groups[key]]
        first = members[0]
        counts = {st: sum(r["status"] == st for r in members) for st in ("ok", "failed", "not_run")}
        timed = [(r["median_ms"], r["model"], r["batch"]) for r in members if measured(r, "median_ms") is not None]
        fastest = min(timed, default=None)
        rows.append([measured_on(first), first["runtime"], first.get("backend") or "none",
                     first.get("compute_unit") or "not applicable", str(len(members)), str(counts["ok"]),
                     str(counts["failed"]), str(counts["not_run"]), str(len({r["model"] for r in members})),
                     NOT_MEASURED if fastest is None else f"{fmt_ms(fastest[0])} ({fastest[1]}, batch {fastest[2]})"])
    headers = ["measured on", "runtime", "backend", "compute unit", "results", "ok", "failed", "not run", "models",
               "fastest median ms"]
    note = (f"{len(results)} results are too many to list here (more than {TABLE_ROW_LIMIT}): each group is "
            "summarised below, and every result is a row of results.csv beside this report, with the columns of "
            "the per-result table (threads, median, trimmed mean, p90, % of peak, load, memory, status, "
            "published top-1, Pareto).")
    return [Block("p", note), Block("table", table=Table(headers, rows))]


# ----------------------------------------------------------------------------------------- speed-ups


def _speedup_cell(variant: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    v, b = measured(variant, "median_ms"), measured(baseline, "median_ms")
    if v is None or b is None:
        which = " and ".join(n for n, x in (("variant", v), ("baseline", b)) if x is None)
        return f"{NOT_MEASURED} ({which})"
    return f"{b / v:.2f}×" if v > 0 else "undefined (variant median is 0 ms)"


def _speedup_summary(pairs: Sequence[SpeedupPair]) -> list[Block]:
    """Per device and (variant, baseline) kind: how many pairs and their median / range of speed-ups."""
    ratios: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    unmeasured: dict[tuple[Any, ...], int] = defaultdict(int)
    for device, _model, _batch, v, b in pairs:
        key = (device, variant_label(v), variant_label(b))
        vm, bm = measured(v, "median_ms"), measured(b, "median_ms")
        if vm and bm:
            ratios[key].append(bm / vm)
        else:
            unmeasured[key] += 1
    rows = []
    for key in sorted(set(ratios) | set(unmeasured)):
        device, variant, baseline = key
        xs = sorted(ratios[key])
        mid = (xs[len(xs) // 2] + xs[(len(xs) - 1) // 2]) / 2 if xs else None
        rows.append([f"{device[0]} {device[1]}", variant, baseline, str(len(xs)), str(unmeasured[key]),
                     NOT_MEASURED if mid is None else f"{mid:.2f}×",
                     NOT_MEASURED if not xs else f"{xs[0]:.2f}× – {xs[-1]:.2f}×"])
    headers = ["device", "variant", "baseline", "pairs measured", "pairs not measured", "median speed-up", "range"]
    note = (f"{len(pairs)} speed-ups are too many to list (more than {TABLE_ROW_LIMIT}): summarised per device and "
            "kind of pair; every pair is a row of speedups.csv beside this report.")
    return [Block("p", note), Block("table", table=Table(headers, rows))]


def speedup_blocks(pairs: Sequence[SpeedupPair]) -> list[Block]:
    """One table of speed-ups per device (or a summary table if there are too many pairs)."""
    by_device: dict[tuple[str, ...], list[list[str]]] = defaultdict(list)
    for device, model, batch, v, b in pairs:
        by_device[device].append([model, str(batch), variant_label(v), variant_label(b),
                                  fmt_ms(measured(v, "median_ms")), fmt_ms(measured(b, "median_ms")),
                                  _speedup_cell(v, b)])
    blocks = [Block("h2", "Speed-ups between forms"),
              Block("p", "Ratio of medians, baseline / variant, for the same model, device and batch "
                         "(above 1 means the variant is faster).")]
    if not by_device:
        return blocks + [Block("p", "No model was run in a baseline form (" + ", ".join(SPEEDUP_BASELINES)
                                    + ") and another form on the same device and batch.")]
    if len(pairs) > TABLE_ROW_LIMIT:
        return blocks + _speedup_summary(pairs)
    headers = ["model", "batch", "variant", "baseline", "variant median ms", "baseline median ms", "speed-up"]
    for device in sorted(by_device):
        kind, name, os_, cpu = device
        blocks.append(Block("h3", f"Measured on {kind} {name}, {os_}, {cpu}"))
        blocks.append(Block("table", table=Table(headers, by_device[device])))
    return blocks


# ----------------------------------------------------------------------------------------- Pareto


def pareto_blocks(pareto: ParetoData, x_axis: XAxis) -> list[Block]:
    """The plot, what could not be plotted, and each series' front by name."""
    blocks = [Block("h2", "Pareto front: published accuracy vs " + x_axis),
              Block("figure", "Pareto plot: published ImageNet top-1 vs " + x_axis)]
    lines = not_plotted_lines(pareto.not_plotted)
    if lines:
        blocks.append(Block("ul", items=lines))
    items = []
    for s in pareto.series:
        front = [(x, m) for i, m, x, _ in s.points if i in s.optimal]
        names = [m for _, m in sorted(front, reverse=x_axis == "throughput")]
        shown = " → ".join(names[:MAX_LISTED])
        items.append(f"{s.label}: {shown}" + (f" → ... ({len(names) - MAX_LISTED} more in results.csv)"
                                              if len(names) > MAX_LISTED else ""))
    if items:
        intro = ("Pareto-optimal models per series, fastest first (no other model in the series is both "
                 "faster and more accurate):")
        blocks += [Block("p", intro), Block("ul", items=items)]
    note = ("In the plot each model is labelled once per device, at its rightmost point; its other points "
            "lie on the same horizontal line (its published top-1).")
    return [*blocks, Block("p", note)]
