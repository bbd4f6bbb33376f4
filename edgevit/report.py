"""Markdown/HTML reports and Pareto plots from benchmark results (schema.json dicts, see bench/results.py).

The report only shows what was measured: a null number, or any number of a failed / not-run result, is printed
as "not measured" (with the error), never filled in or dropped. Accuracies are the *published* ImageNet top-1
given by the caller; a model without one is listed as not plotted rather than placed on the plot.

Time and memory grow linearly with the number of results: the Pareto fronts are a sort and a sweep, every
speed-up pairs a result with at most one baseline per baseline form, the plot draws at most MAX_PANELS devices
and MAX_SERIES series each, and a table longer than TABLE_ROW_LIMIT rows is summarised in the document while
every row goes to results.csv / speedups.csv beside it (written for every report).
"""

from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
import re
import tempfile
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter
from matplotlib.transforms import Bbox

from edgevit.base.errors import OutputError
from edgevit.bench.results import SOURCE_KEY

DEFAULT_TITLE = "edgevit benchmark report"
NOT_MEASURED = "not measured"
OPTIMAL_MARK = "★ Pareto-optimal"
FORM_ORDER = ("original-eager", "prepared-eager", "onnx", "executorch", "coreml")
# Speed-ups are reported against these baselines, each for the forms listed with it.
SPEEDUP_BASELINES: dict[str, tuple[str, ...]] = {
    "original-eager": ("prepared-eager", "onnx", "executorch", "coreml"),
    "onnx": ("executorch", "coreml"),
}

XAxis = Literal["latency", "throughput"]

TABLE_ROW_LIMIT = 400  # longer tables are summarised in report.md/.html; the CSV files have every row
MAX_LISTED = 25  # names listed inline (not-plotted models, Pareto fronts) before "... and N more"
MAX_PANELS = 6  # devices plotted (those with the most plottable results)
MAX_SERIES = 12  # series per device panel (those with the most points)
MAX_LABELS = 30  # model labels per panel (Pareto-optimal models first)


@dataclass(frozen=True)
class ReportPaths:
    """Where write_report put its three outputs."""

    markdown: Path
    html: Path
    png: Path
    results_csv: Path
    speedups_csv: Path


# --------------------------------------------------------------------------------------------- Pareto front


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a = (latency, accuracy) is no slower and no less accurate than b, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def _pareto_indices(points: Sequence[tuple[str, float, float]]) -> list[int]:
    for name, lat, acc in points:
        if not (math.isfinite(lat) and math.isfinite(acc)):
            raise ValueError(f"pareto_front: non-finite latency/accuracy for {name!r}: {lat}, {acc}")
    # Sweep in order of latency: a point survives if it is the most accurate at its latency and more accurate
    # than everything strictly faster (the same rule as _dominates, in O(n log n)).
    order = sorted(range(len(points)), key=lambda i: (points[i][1], -points[i][2], points[i][0]))
    keep, best_faster, k = [], -math.inf, 0
    while k < len(order):
        lat = points[order[k]][1]
        j = k
        while j < len(order) and points[order[j]][1] == lat:
            j += 1
        group = order[k:j]
        top = points[group[0]][2]  # most accurate at this latency (sorted by -accuracy)
        if top > best_faster:
            keep += [i for i in group if points[i][2] == top]
        best_faster = max(best_faster, top)
        k = j
    return keep


def pareto_front(points: Sequence[tuple[str, float, float]]) -> list[str]:
    """Names of the (name, latency, accuracy) points no other point dominates, fastest first.

    Lower latency and higher accuracy are better; a point is dominated only if another is at least as good in
    both and strictly better in one, so exact ties are all kept (neither is a reason to drop the other).
    """
    return [points[i][0] for i in _pareto_indices(points)]


# --------------------------------------------------------------------------------------------- result views


def _measured(r: Mapping[str, Any], key: str) -> float | None:
    """A number only if it was measured: non-null and from a result whose status is ok."""
    value = r.get(key)
    return value if r["status"] == "ok" and value is not None else None


def _fmt_ms(value: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def _fmt_memory(r: Mapping[str, Any]) -> str:
    value = _measured(r, "peak_memory_mb")
    if value is None:
        return NOT_MEASURED
    return f"{value:.1f} MB ({r.get('memory_kind') or 'kind not stated'})"


def _fmt_status(r: Mapping[str, Any]) -> str:
    status, error = r["status"], r.get("error")
    if status == "ok":
        return "ok" if r.get("median_ms") is not None else f"ok, but median {NOT_MEASURED}"
    label = "not run" if status == "not_run" else "failed"
    return f"{label}: {error}" if error else f"{label} (no error text)"


def _device_key(r: Mapping[str, Any]) -> tuple[str, str, str, str]:
    d = r["device"]
    return (d["kind"], d["name"], d["os"], d["cpu"])


def _measured_on(r: Mapping[str, Any]) -> str:
    kind, name, os_, cpu = _device_key(r)
    return f"{kind} {name}, {os_}, {cpu}"


def _variant_label(r: Mapping[str, Any]) -> str:
    """Form plus what distinguishes it from other results of the same form."""
    parts = [r["form"], r.get("backend"), r.get("compute_unit"), r["precision"]]
    return " · ".join(p for p in parts if p)


def _form_rank(form: str) -> int:
    return FORM_ORDER.index(form) if form in FORM_ORDER else len(FORM_ORDER)


def _row_order(r: Mapping[str, Any]) -> tuple[Any, ...]:
    return (r["model"], _form_rank(r["form"]), r["precision"], r["batch"], r.get("backend") or "",
            r.get("compute_unit") or "")


class _Sources:
    """Numbers the results files so every row can say which file (and harness) it came from."""

    def __init__(self, results: Sequence[Mapping[str, Any]]) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        for r in results:
            src = r.get(SOURCE_KEY) or {"file": "(given directly, no file)", "harness": "unknown",
                                        "created": "unknown"}
            entry = self.files.setdefault(src["file"], {**src, "count": 0, "index": len(self.files) + 1})
            entry["count"] += 1

    def ref(self, r: Mapping[str, Any]) -> str:
        src = r.get(SOURCE_KEY)
        file = src["file"] if src else "(given directly, no file)"
        return f"[{self.files[file]['index']}]"


# --------------------------------------------------------------------------------------------- document


@dataclass
class _Table:
    headers: list[str]
    rows: list[list[str]]


@dataclass
class _Block:
    kind: Literal["h1", "h2", "h3", "p", "ul", "table", "figure"]
    text: str = ""
    items: list[str] = field(default_factory=list)
    table: _Table | None = None


def _md_cell(text: str) -> str:
    """Escape what Markdown would interpret; an underscore inside a word (rss_growth) is left readable."""
    out = text.replace("\\", "\\\\").replace("\r", " ").replace("\n", " ")
    for ch in "|*`<":
        out = out.replace(ch, "\\" + ch)
    out = out.replace("](", "\\](")  # no accidental links; a lone [1] stays readable
    return re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", out)


def _to_markdown(blocks: Sequence[_Block], png_name: str) -> str:
    out: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            out.append("#" * int(b.kind[1]) + " " + _md_cell(b.text))
        elif b.kind == "p":
            out.append(_md_cell(b.text))
        elif b.kind == "ul":
            out.append("\n".join(f"- {_md_cell(i)}" for i in b.items))
        elif b.kind == "figure":
            out.append(f"![{_md_cell(b.text)}]({png_name})")
        elif b.table is not None:
            t = b.table
            lines = ["| " + " | ".join(_md_cell(h) for h in t.headers) + " |",
                     "|" + "---|" * len(t.headers)]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in t.rows]
            out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em; color: #222; }
h1, h2, h3 { font-weight: 600; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13px; margin: .5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } tr:nth-child(even) td { background: #fafafa; }
td.nm { color: #a33; font-style: italic; }
img { max-width: 100%; height: auto; }
"""


def _html_cell(text: str, tag: str) -> str:
    cls = ' class="nm"' if NOT_MEASURED in text or text.startswith(("failed", "not run")) else ""
    return f"<{tag}{cls}>{html.escape(text)}</{tag}>"


def _to_html(blocks: Sequence[_Block], title: str, png: bytes) -> str:
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"]
    for b in blocks:
        if b.kind in ("h1", "h2", "h3", "p"):
            out.append(f"<{b.kind}>{html.escape(b.text)}</{b.kind}>")
        elif b.kind == "ul":
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "figure":
            out.append(f'<figure><img alt="{html.escape(b.text)}" src="{data_uri}"></figure>')
        elif b.table is not None:
            head = "".join(_html_cell(h, "th") for h in b.table.headers)
            body = "".join("<tr>" + "".join(_html_cell(c, "td") for c in row) + "</tr>"
                           for row in b.table.rows)
            out.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                       f"<tbody>{body}</tbody></table></div>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- Pareto data


@dataclass
class _Series:
    label: str  # device + variant, for text
    variant: str  # variant + batch (+ source), for the legend of its device's panel
    device: tuple[str, str, str, str]
    points: list[tuple[int, str, float, float]] = field(default_factory=list)  # (result idx, model, x, acc)
    optimal: set[int] = field(default_factory=set)  # result indices on the front


@dataclass
class _ParetoData:
    series: list[_Series]
    status: dict[int, str]  # result idx -> OPTIMAL_MARK / "dominated" / "not plotted: ..."
    not_plotted: dict[str, list[str]]  # reason -> sorted entries (model, or model (series) if it varies)


def _series_key(r: Mapping[str, Any], sources: _Sources) -> tuple[Any, ...]:
    return (*_device_key(r), r["form"], r["runtime"], r.get("backend") or "", r.get("compute_unit") or "",
            r["precision"], r["batch"], sources.ref(r))


def _new_series(r: Mapping[str, Any], sources: _Sources) -> _Series:
    kind, name, _, _ = _device_key(r)
    variant = f"{_variant_label(r)} · batch {r['batch']}"
    if len(sources.files) > 1:
        variant += f" {sources.ref(r)}"
    return _Series(f"{name} ({kind}) · {variant}", variant, _device_key(r))


def _x_value(r: Mapping[str, Any], median: float, x_axis: XAxis) -> float:
    return r["batch"] * 1000.0 / median if x_axis == "throughput" else median


def _unplottable(r: Mapping[str, Any], top1: Mapping[str, float]) -> str | None:
    """Why a result cannot be a point on the plot, or None if it can."""
    median = _measured(r, "median_ms")
    if top1.get(r["model"]) is None:
        return "no published top-1"
    if median is None:
        return NOT_MEASURED
    return "median of 0 ms cannot be shown on a log axis" if median <= 0 else None


def _pareto_data(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], sources: _Sources,
                 x_axis: XAxis) -> _ParetoData:
    """Split results into series (with their fronts) and the models that cannot be plotted (and why)."""
    by_key: dict[tuple[Any, ...], _Series] = {}
    status: dict[int, str] = {}
    not_plotted: dict[str, set[str]] = defaultdict(set)
    for i, r in enumerate(results):
        reason = _unplottable(r, top1)
        if reason is not None:
            status[i] = f"not plotted: {reason}"
            where = "" if reason == "no published top-1" else f" ({_new_series(r, sources).label})"
            not_plotted[reason].add(r["model"] + where)
            continue
        series = by_key.setdefault(_series_key(r, sources), _new_series(r, sources))
        series.points.append((i, r["model"], _x_value(r, r["median_ms"], x_axis), float(top1[r["model"]])))
    for series in by_key.values():
        # Lower median is better on both axes (throughput = batch * 1000 / median, batch fixed per series).
        pts = [(m, results[i]["median_ms"], acc) for i, m, _, acc in series.points]
        series.optimal = {series.points[k][0] for k in _pareto_indices(pts)}
        for i, *_ in series.points:
            status[i] = OPTIMAL_MARK if i in series.optimal else "dominated"
    ordered = [by_key[k] for k in sorted(by_key)]
    return _ParetoData(ordered, status, {k: sorted(v) for k, v in sorted(not_plotted.items())})


# --------------------------------------------------------------------------------------------- plot

_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
           "#7f7f7f", "#bcbd22")
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "h")


def _log_ticks(lo: float, hi: float) -> list[float]:
    """Readable ticks (1-2-5 or finer) for a log axis that may span less than a decade."""
    ticks: list[float] = []
    for subs in ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)):
        ticks = [s * 10.0**e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for s in subs]
        ticks = [t for t in ticks if lo <= t <= hi]
        if len(ticks) >= 3:
            break
    return ticks


def _tick_label(v: float, _pos: int | None = None) -> str:
    return f"{v:g}" if v < 1e5 else f"{v:.0e}"


def _marker_boxes(fig: Figure, series_by_ax: Sequence[tuple[Any, Sequence[_Series]]]) -> list[Bbox]:
    """Display-space boxes around every plotted marker, so labels are not placed over points."""
    r = 4.0 * fig.dpi / 72.0
    centres: set[tuple[int, int]] = set()  # one box per pixel: coincident markers are one obstacle
    for ax, series in series_by_ax:
        for s in series:
            if s.points:
                xy = ax.transData.transform([(x, y) for _, _, x, y in s.points])
                centres.update((round(px), round(py)) for px, py in xy)
    return [Bbox.from_extents(px - r, py - r, px + r, py + r) for px, py in sorted(centres)]


# Label placements tried in order (offset in points, horizontal alignment): right, left, above, below.
_LABEL_SPOTS = (((7.0, -3.0), "left"), ((-7.0, -3.0), "right"), ((0.0, 6.0), "center"),
                ((0.0, -13.0), "center"))


def _text_box(ann: Any, renderer: Any) -> Bbox:
    """The label's own box (Annotation.get_window_extent would include its leader line)."""
    ann.update_positions(renderer)
    return Text.get_window_extent(ann, renderer)


def _place(ann: Any, renderer: Any, placed: list[Bbox]) -> bool:
    """Put a label in the first spot next to its point that overlaps nothing placed so far."""
    for offset, ha in _LABEL_SPOTS:
        ann.xyann = offset
        ann.set_horizontalalignment(ha)
        if not any(_text_box(ann, renderer).overlaps(p) for p in placed):
            return True
    ann.xyann, _ = _LABEL_SPOTS[0]
    ann.set_horizontalalignment(_LABEL_SPOTS[0][1])
    return False


def _declutter(fig: Figure, annotations: list[Any], obstacles: list[Bbox]) -> None:
    """Keep labels off markers and each other: try spots around the point, else push up with a leader line."""
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    placed = list(obstacles)
    for ann in sorted(annotations, key=lambda a: (a.xy[1], a.xy[0])):
        moved = not _place(ann, renderer, placed)
        for _ in range(60 if moved else 0):
            box = _text_box(ann, renderer)
            clash = next((p for p in placed if box.overlaps(p)), None)
            if clash is None:
                break
            dx, dy = ann.xyann
            ann.xyann = (dx, dy + (clash.y1 - box.y0 + 1.0) * 72.0 / fig.dpi)
        ann.arrow_patch.set_visible(moved)
        placed.append(_text_box(ann, renderer))


def _set_limits(ax: Any, xs: list[float], ys: list[float]) -> None:
    lo, hi = min(xs), max(xs)
    span = max(math.log10(hi / lo), 0.3)
    ax.set_xlim(lo / 10 ** (0.06 * span + 0.04), hi * 10 ** (0.22 * span + 0.1))  # room for labels
    ylo, yhi = min(ys), max(ys)
    pad = max((yhi - ylo) * 0.08, 0.5)
    ax.set_ylim(ylo - pad, yhi + pad)
    ax.xaxis.set_major_locator(FixedLocator(_log_ticks(*ax.get_xlim())))
    ax.xaxis.set_major_formatter(FuncFormatter(_tick_label))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _draw_series(ax: Any, s: _Series, color: str, marker: str, x_axis: XAxis) -> None:
    opt = [(x, y) for i, _, x, y in s.points if i in s.optimal]
    dom = [(x, y) for i, _, x, y in s.points if i not in s.optimal]
    ax.scatter(*zip(*opt, strict=True), s=46, color=color, marker=marker, zorder=3, label=s.variant)
    if dom:
        ax.scatter(*zip(*dom, strict=True), s=46, facecolors="white", edgecolors=color, marker=marker,
                   linewidths=1.4, zorder=3)
    front = sorted(opt)
    if len(front) > 1:
        # Latency: best accuracy within a budget steps up after each point; throughput: before it.
        where = "post" if x_axis == "latency" else "pre"
        xs, ys = zip(*front, strict=True)
        ax.step(xs, ys, where=where, color=color, linewidth=1.3, alpha=0.8, zorder=2)


def _label_models(ax: Any, series: Sequence[_Series]) -> list[Any]:
    """One label per model and panel, at its rightmost point: all its points share its accuracy (one row)."""
    rightmost: dict[str, tuple[float, float]] = {}
    optimal: set[str] = set()
    for s in series:
        for i, model, x, y in s.points:
            if model not in rightmost or x > rightmost[model][0]:
                rightmost[model] = (x, y)
            if i in s.optimal:
                optimal.add(model)
    if len(rightmost) > MAX_LABELS:  # a readable plot: the Pareto-optimal models first, then by accuracy
        keep = sorted(rightmost, key=lambda m: (m not in optimal, -rightmost[m][1], m))[:MAX_LABELS]
        rightmost = {m: rightmost[m] for m in keep}
    box = {"boxstyle": "round,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75}
    leader = {"arrowstyle": "-", "color": "#777777", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 4}
    return [ax.annotate(m, xy=xy, xytext=(7, -3), textcoords="offset points", fontsize=8.5, bbox=box,
                        arrowprops=leader, annotation_clip=False, zorder=4)
            for m, xy in sorted(rightmost.items())]


def _legend_handles(ax: Any) -> list[Any]:
    handles, _ = ax.get_legend_handles_labels()
    grey = "#555555"
    return handles + [
        Line2D([], [], linestyle="", marker="o", color=grey, label="filled: Pareto-optimal in its series"),
        Line2D([], [], linestyle="", marker="o", markerfacecolor="white", markeredgecolor=grey,
               label="hollow: dominated"),
        Line2D([], [], color=grey, label="step line: Pareto front"),
    ]


def _listing(entries: Sequence[str], where: str = "results.csv") -> str:
    """At most MAX_LISTED names inline; the rest counted, with where to find them."""
    shown = ", ".join(entries[:MAX_LISTED])
    rest = len(entries) - MAX_LISTED
    return shown + (f" and {rest} more (all in {where})" if rest > 0 else "")


def _not_plotted_lines(not_plotted: Mapping[str, list[str]]) -> list[str]:
    return [f"not plotted: {reason}: {_listing(entries)}" for reason, entries in not_plotted.items()]


def _draw_panel(ax: Any, device: tuple[str, ...], series: Sequence[_Series],
                style: Mapping[str, tuple[str, str]], x_axis: XAxis) -> list[Any]:
    """One device: its series, fronts, model labels and legend; returns the labels for decluttering."""
    for s in series:
        _draw_series(ax, s, *style[s.variant], x_axis)
    _set_limits(ax, [p[2] for s in series for p in s.points], [p[3] for s in series for p in s.points])
    kind, name, os_, cpu = device
    ax.set_title(f"measured on {kind} {name}, {os_}, {cpu}", fontsize=10, loc="left")
    ax.legend(handles=_legend_handles(ax), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    return _label_models(ax, series)


def _plotted_panels(series: Sequence[_Series]) -> tuple[dict[tuple[str, ...], list[_Series]], list[str]]:
    """The devices and series the plot shows (the largest first, at most MAX_PANELS x MAX_SERIES), and a note
    for what it leaves out: a plot of hundreds of panels or legend entries shows nothing."""
    by_device: dict[tuple[str, ...], list[_Series]] = defaultdict(list)
    for s in series:
        by_device[s.device].append(s)
    size = {d: sum(len(s.points) for s in ss) for d, ss in by_device.items()}
    devices = sorted(by_device, key=lambda d: (-size[d], d))
    panels: dict[tuple[str, ...], list[_Series]] = {}
    dropped_series = 0
    for device in sorted(devices[:MAX_PANELS]):
        members = sorted(by_device[device], key=lambda s: (-len(s.points), s.variant))
        panels[device] = sorted(members[:MAX_SERIES], key=lambda s: s.variant)
        dropped_series += max(0, len(members) - MAX_SERIES)
    notes = []
    if len(devices) > MAX_PANELS:
        notes.append(f"plotted: the {MAX_PANELS} of {len(devices)} devices with the most results; "
                     "the others' points are in results.csv")
    if dropped_series:
        notes.append(f"plotted: at most {MAX_SERIES} series per device ({dropped_series} smaller series left out; "
                     "their points are in results.csv)")
    return panels, notes


def _render_plot(data: _ParetoData, x_axis: XAxis) -> bytes:
    """The Pareto plot as PNG bytes: one panel per device (latencies differ by orders of magnitude)."""
    panels, omitted = _plotted_panels(data.series)
    variants = dict.fromkeys(s.variant for series in panels.values() for s in series)
    style = {v: (_COLORS[n % len(_COLORS)], _MARKERS[n // len(_COLORS) % len(_MARKERS)])
             for n, v in enumerate(variants)}
    fig = Figure(figsize=(11.5, 0.8 + 4.8 * max(len(panels), 1)), dpi=130, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(max(len(panels), 1), 1, squeeze=False)[:, 0]
    labels = []
    for ax, (device, series) in zip(axes, panels.items(), strict=False):
        ax.set_xscale("log")
        labels += _draw_panel(ax, device, series, style, x_axis)
    if not panels:
        axes[0].set_axis_off()
        axes[0].text(0.5, 0.5, "nothing to plot: no result has both a measured median and a published top-1",
                     transform=axes[0].transAxes, ha="center", va="center")
    for ax in axes:
        ax.set_xlabel("throughput (images/s = batch × 1000 / median ms, log scale)" if x_axis == "throughput"
                      else "latency (median ms per batch, log scale)")
        ax.set_ylabel("ImageNet top-1 (%, published)")
        ax.grid(True, which="major", alpha=0.35)
        ax.grid(True, which="minor", alpha=0.12)
    fig.suptitle(f"Published accuracy vs {x_axis}: Pareto front per device / runtime", fontsize=12)
    notes = [w for line in [*omitted, *_not_plotted_lines(data.not_plotted)] for w in textwrap.wrap(line, 150)]
    if notes:
        axes[-1].text(0.0, -0.16, "\n".join(notes), transform=axes[-1].transAxes, ha="left", va="top",
                      fontsize=8.5, color="#444")
    fig.canvas.draw()
    _declutter(fig, labels, _marker_boxes(fig, list(zip(axes, panels.values(), strict=False))))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.2, metadata={"Software": None})
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- sections


def _summary_blocks(results: Sequence[Mapping[str, Any]], sources: _Sources) -> list[_Block]:
    counts = {s: sum(r["status"] == s for r in results) for s in ("ok", "failed", "not_run")}
    blocks = [_Block("p", f"{len(results)} results from {len(sources.files)} file(s): {counts['ok']} ok, "
                          f"{counts['failed']} failed, {counts['not_run']} not run. Numbers that were not "
                          f"measured are shown as \"{NOT_MEASURED}\", never filled in.")]
    items = [f"[{s['index']}] {file}: harness {s['harness']}, created {s['created']}, {s['count']} result(s)"
             for file, s in sources.files.items()]
    return blocks + [_Block("h2", "Sources"), _Block("ul", items=items)] if items else blocks


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


_RESULT_HEADERS = ["model", "form", "precision", "batch", "median ms", "trimmed mean ms", "p90 ms",
                   "load ms", "peak memory", "warm-up + iterations", "status / error", "published top-1 %",
                   "Pareto", "measured on", "source"]


def _result_row(i: int, r: Mapping[str, Any], top1: Mapping[str, float], pareto: _ParetoData,
                sources: _Sources) -> list[str]:
    acc = top1.get(r["model"])
    return [r["model"], r["form"], r["precision"], str(r["batch"]), _fmt_ms(_measured(r, "median_ms")),
            _fmt_ms(_measured(r, "trimmed_mean_ms")), _fmt_ms(_measured(r, "p90_ms")),
            _fmt_ms(_measured(r, "load_time_ms")), _fmt_memory(r), f"{r['warmup']} + {r['iterations']}",
            _fmt_status(r), "none published" if acc is None else f"{acc:.1f}", pareto.status[i],
            _measured_on(r), sources.ref(r)]


def _results_blocks(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], pareto: _ParetoData,
                    sources: _Sources) -> list[_Block]:
    groups: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for i, r in enumerate(results):
        groups[(*_device_key(r), r["runtime"], r.get("backend") or "", r.get("compute_unit") or "")].append(i)
    blocks = [_Block("h2", "Results by device, runtime, backend and compute unit")]
    if len(results) > TABLE_ROW_LIMIT:
        return blocks + _results_summary(results, groups)
    for key in sorted(groups):
        idx = sorted(groups[key], key=lambda i: _row_order(results[i]))
        first = results[idx[0]]
        blocks.append(_Block("h3", f"{_measured_on(first)} — runtime {first['runtime']}, backend "
                                   f"{first.get('backend') or 'none'}, compute unit "
                                   f"{first.get('compute_unit') or 'not applicable'}"))
        rows = [_result_row(i, results[i], top1, pareto, sources) for i in idx]
        blocks.append(_Block("table", table=_Table(_RESULT_HEADERS, rows)))
        members = [results[i] for i in idx]
        blocks.append(_Block("p", f"{_trim_note(members)} {_tool_versions_note(members)}"))
    return blocks


def _results_summary(results: Sequence[Mapping[str, Any]], groups: Mapping[tuple[Any, ...], list[int]]
                     ) -> list[_Block]:
    """One row per group instead of one per result: too many rows to read (and to render) in a document."""
    rows = []
    for key in sorted(groups):
        members = [results[i] for i in groups[key]]
        first = members[0]
        counts = {st: sum(r["status"] == st for r in members) for st in ("ok", "failed", "not_run")}
        timed = [(r["median_ms"], r["model"], r["batch"]) for r in members if _measured(r, "median_ms") is not None]
        fastest = min(timed, default=None)
        rows.append([_measured_on(first), first["runtime"], first.get("backend") or "none",
                     first.get("compute_unit") or "not applicable", str(len(members)), str(counts["ok"]),
                     str(counts["failed"]), str(counts["not_run"]), str(len({r["model"] for r in members})),
                     NOT_MEASURED if fastest is None else f"{_fmt_ms(fastest[0])} ({fastest[1]}, batch {fastest[2]})"])
    headers = ["measured on", "runtime", "backend", "compute unit", "results", "ok", "failed", "not run", "models",
               "fastest median ms"]
    note = (f"{len(results)} results are too many to list here (more than {TABLE_ROW_LIMIT}): each group is "
            "summarised below, and every result is a row of results.csv beside this report, with the columns of "
            "the per-result table (median, trimmed mean, p90, load, memory, status, published top-1, Pareto).")
    return [_Block("p", note), _Block("table", table=_Table(headers, rows))]


def _speedup_cell(variant: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    v, b = _measured(variant, "median_ms"), _measured(baseline, "median_ms")
    if v is None or b is None:
        which = " and ".join(n for n, x in (("variant", v), ("baseline", b)) if x is None)
        return f"{NOT_MEASURED} ({which})"
    return f"{b / v:.2f}×" if v > 0 else "undefined (variant median is 0 ms)"


def _speedup_pairs(members: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
    """(variant, baseline) pairs of one model/device/batch, for each SPEEDUP_BASELINES form present."""
    pairs = []
    for base_form, forms in SPEEDUP_BASELINES.items():
        bases = [m for m in members if m["form"] == base_form]
        if not bases:
            continue
        for v in (m for m in members if m["form"] in forms):
            # One baseline per variant (from the same results file when there is one): repeated runs of a form
            # would otherwise pair every run with every run, which grows with the square of the results.
            same_file = [b for b in bases if b.get(SOURCE_KEY) == v.get(SOURCE_KEY)]
            pairs.append((v, (same_file or bases)[0]))
    return pairs


SpeedupPair = tuple[tuple[str, ...], str, int, Mapping[str, Any], Mapping[str, Any]]


def speedup_pairs(results: Sequence[Mapping[str, Any]]) -> list[SpeedupPair]:
    """(device, model, batch, variant, baseline) for every speed-up the report shows, in report order."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(_device_key(r), r["model"], r["batch"])].append(r)
    return [(device, model, batch, v, b) for (device, model, batch), members in sorted(groups.items())
            for v, b in _speedup_pairs(sorted(members, key=_row_order))]


def _speedup_summary(pairs: Sequence[SpeedupPair]) -> list[_Block]:
    """Per device and (variant, baseline) kind: how many pairs and their median / range of speed-ups."""
    ratios: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    unmeasured: dict[tuple[Any, ...], int] = defaultdict(int)
    for device, _model, _batch, v, b in pairs:
        key = (device, _variant_label(v), _variant_label(b))
        vm, bm = _measured(v, "median_ms"), _measured(b, "median_ms")
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
    return [_Block("p", note), _Block("table", table=_Table(headers, rows))]


def _speedup_blocks(pairs: Sequence[SpeedupPair]) -> list[_Block]:
    by_device: dict[tuple[str, ...], list[list[str]]] = defaultdict(list)
    for device, model, batch, v, b in pairs:
        by_device[device].append([model, str(batch), _variant_label(v), _variant_label(b),
                                  _fmt_ms(_measured(v, "median_ms")), _fmt_ms(_measured(b, "median_ms")),
                                  _speedup_cell(v, b)])
    blocks = [_Block("h2", "Speed-ups between forms"),
              _Block("p", "Ratio of medians, baseline / variant, for the same model, device and batch "
                          "(above 1 means the variant is faster).")]
    if not by_device:
        return blocks + [_Block("p", "No model was run in a baseline form (" + ", ".join(SPEEDUP_BASELINES)
                                     + ") and another form on the same device and batch.")]
    if len(pairs) > TABLE_ROW_LIMIT:
        return blocks + _speedup_summary(pairs)
    headers = ["model", "batch", "variant", "baseline", "variant median ms", "baseline median ms", "speed-up"]
    for device in sorted(by_device):
        kind, name, os_, cpu = device
        blocks.append(_Block("h3", f"Measured on {kind} {name}, {os_}, {cpu}"))
        blocks.append(_Block("table", table=_Table(headers, by_device[device])))
    return blocks


def _pareto_blocks(pareto: _ParetoData, x_axis: XAxis) -> list[_Block]:
    blocks = [_Block("h2", "Pareto front: published accuracy vs " + x_axis),
              _Block("figure", "Pareto plot: published ImageNet top-1 vs " + x_axis)]
    lines = _not_plotted_lines(pareto.not_plotted)
    if lines:
        blocks.append(_Block("ul", items=lines))
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
        blocks += [_Block("p", intro), _Block("ul", items=items)]
    note = ("In the plot each model is labelled once per device, at its rightmost point; its other points "
            "lie on the same horizontal line (its published top-1).")
    return [*blocks, _Block("p", note)]


# --------------------------------------------------------------------------------------------- output


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, data: bytes) -> None:
    """Write via a temp file in the same directory + os.replace, so readers never see half a report."""
    tmp = None
    try:
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False) as f:
            tmp = f.name
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a report should be as readable as any file
        os.replace(tmp, path)
    except OSError as e:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        reason = e.strerror or str(e)
        raise OutputError(f"cannot write {path}: {reason}; choose a writable --out directory.") from None


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"--out {out_dir} exists and is not a directory; choose another path.") from None
    except OSError as e:
        raise OutputError(f"cannot create --out directory {out_dir}: {e.strerror or e}; "
                          "choose a writable path.") from None


_CSV_RESULT_COLUMNS = ["model", "form", "runtime", "backend", "compute_unit", "precision", "batch", "median_ms",
                       "trimmed_mean_ms", "p90_ms", "load_time_ms", "peak_memory_mb", "memory_kind", "warmup",
                       "iterations", "status", "error", "published_top1", "pareto", "device_kind", "device_name",
                       "device_os", "device_cpu", "source"]


def _csv_bytes(header: Sequence[str], rows: Any) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def _results_csv(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], pareto: _ParetoData,
                 sources: _Sources) -> bytes:
    """Every result, one row each; a number that was not measured is an empty cell."""
    def row(i: int, r: Mapping[str, Any]) -> list[Any]:
        measured = [_measured(r, k) for k in ("median_ms", "trimmed_mean_ms", "p90_ms", "load_time_ms",
                                                "peak_memory_mb")]
        src = r.get(SOURCE_KEY) or {}
        return [r["model"], r["form"], r["runtime"], r.get("backend"), r.get("compute_unit"), r["precision"],
                r["batch"], *measured, r.get("memory_kind"), r["warmup"], r["iterations"], r["status"],
                r.get("error"), top1.get(r["model"]), pareto.status[i], *_device_key(r), src.get("file")]
    return _csv_bytes(_CSV_RESULT_COLUMNS, (row(i, r) for i, r in enumerate(results)))


def _speedups_csv(pairs: Sequence[SpeedupPair]) -> bytes:
    def row(pair: SpeedupPair) -> list[Any]:
        device, model, batch, v, b = pair
        vm, bm = _measured(v, "median_ms"), _measured(b, "median_ms")
        return [*device, model, batch, _variant_label(v), _variant_label(b), vm, bm,
                round(bm / vm, 4) if vm and bm else None]
    header = ["device_kind", "device_name", "device_os", "device_cpu", "model", "batch", "variant", "baseline",
              "variant_median_ms", "baseline_median_ms", "speedup"]
    return _csv_bytes(header, (row(p) for p in pairs))


def write_report(results: Sequence[Mapping[str, Any]], out_dir: Path, published_top1: Mapping[str, float],
                 title: str = DEFAULT_TITLE, x_axis: XAxis = "latency") -> ReportPaths:
    """Write report.md, a self-contained report.html (plot inlined), pareto.png, results.csv and speedups.csv.

    `results` are schema.json result dicts (as returned by load_results); `published_top1` maps model name to
    the paper's ImageNet top-1 in percent; `x_axis` is "latency" (median ms) or "throughput" (images/s).
    """
    if x_axis not in ("latency", "throughput"):
        raise ValueError(f"x_axis must be 'latency' or 'throughput', got {x_axis!r}")
    out_dir = Path(out_dir)
    sources = _Sources(results)
    pareto = _pareto_data(results, published_top1, sources, x_axis)
    pairs = speedup_pairs(results)
    blocks = [_Block("h1", title), *_summary_blocks(results, sources)]
    if results:
        blocks += [*_pareto_blocks(pareto, x_axis), *_speedup_blocks(pairs),
                   *_results_blocks(results, published_top1, pareto, sources)]
    else:
        blocks += [_Block("p", "No results were given."), _Block("figure", "empty Pareto plot")]
    png = _render_plot(pareto, x_axis)
    paths = ReportPaths(out_dir / "report.md", out_dir / "report.html", out_dir / "pareto.png",
                        out_dir / "results.csv", out_dir / "speedups.csv")
    _prepare_out_dir(out_dir)
    _atomic_write(paths.png, png)
    _atomic_write(paths.markdown, _to_markdown(blocks, paths.png.name).encode("utf-8"))
    _atomic_write(paths.html, _to_html(blocks, title, png).encode("utf-8"))
    _atomic_write(paths.results_csv, _results_csv(results, published_top1, pareto, sources))
    _atomic_write(paths.speedups_csv, _speedups_csv(pairs))
    return paths
