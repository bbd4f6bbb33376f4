"""The Pareto plot as PNG bytes: one log-x panel per device, a step line per series' front, a legend.

At most MAX_PANELS devices and MAX_SERIES series each are drawn (a note says what was left out), so the plot
stays readable and its cost bounded however many results there are.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

from edgevit.base.errors import EdgevitError
from edgevit.report.plot_labels import declutter, label_models, marker_boxes
from edgevit.report.series import ParetoData, Series, XAxis, not_plotted_lines

MAX_PANELS = 6  # devices plotted (those with the most plottable results)
MAX_SERIES = 12  # series per device panel (those with the most points)

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


def _draw_series(ax: Any, s: Series, color: str, marker: str, x_axis: XAxis) -> None:
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


def _legend_handles(ax: Any) -> list[Any]:
    handles, _ = ax.get_legend_handles_labels()
    grey = "#555555"
    return handles + [
        Line2D([], [], linestyle="", marker="o", color=grey, label="filled: Pareto-optimal in its series"),
        Line2D([], [], linestyle="", marker="o", markerfacecolor="white", markeredgecolor=grey,
               label="hollow: dominated"),
        Line2D([], [], color=grey, label="step line: Pareto front"),
    ]


def _draw_panel(ax: Any, device: tuple[str, ...], series: Sequence[Series],
                style: Mapping[str, tuple[str, str]], x_axis: XAxis) -> list[Any]:
    """One device: its series, fronts, model labels and legend; returns the labels for decluttering."""
    for s in series:
        _draw_series(ax, s, *style[s.variant], x_axis)
    _set_limits(ax, [p[2] for s in series for p in s.points], [p[3] for s in series for p in s.points])
    kind, name, os_, cpu = device
    ax.set_title(f"measured on {kind} {name}, {os_}, {cpu}", fontsize=10, loc="left")
    ax.legend(handles=_legend_handles(ax), loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
              frameon=False)
    return label_models(ax, series)


def _plotted_panels(series: Sequence[Series]) -> tuple[dict[tuple[str, ...], list[Series]], list[str]]:
    """The devices and series the plot shows (the largest first, at most MAX_PANELS x MAX_SERIES), and a note
    for what it leaves out: a plot of hundreds of panels or legend entries shows nothing."""
    by_device: dict[tuple[str, ...], list[Series]] = defaultdict(list)
    for s in series:
        by_device[s.device].append(s)
    size = {d: sum(len(s.points) for s in ss) for d, ss in by_device.items()}
    devices = sorted(by_device, key=lambda d: (-size[d], d))
    panels: dict[tuple[str, ...], list[Series]] = {}
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


def render_plot(data: ParetoData, x_axis: XAxis) -> bytes:
    """The Pareto plot as PNG bytes: one panel per device (latencies differ by orders of magnitude).

    Model and device names come from results files, which anyone may have written: they are drawn as typed
    (matplotlib's mathtext off, so ``$x$`` in a name is text, not a formula), and a failure to draw is one
    EdgevitError, not a traceback.
    """
    import matplotlib

    try:
        with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
            return _render_plot(data, x_axis)
    except (MemoryError, ValueError, RuntimeError, OverflowError) as exc:
        text = " ".join(str(exc).split())[:300]
        raise EdgevitError(f"the Pareto plot could not be drawn ({type(exc).__name__}: {text}); check the model and "
                           "device names in the results files, or report fewer results at once.") from None


def _render_plot(data: ParetoData, x_axis: XAxis) -> bytes:
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
    notes = [w for line in [*omitted, *not_plotted_lines(data.not_plotted)] for w in textwrap.wrap(line, 150)]
    if notes:
        axes[-1].text(0.0, -0.16, "\n".join(notes), transform=axes[-1].transAxes, ha="left", va="top",
                      fontsize=8.5, color="#444")
    fig.canvas.draw()
    declutter(fig, labels, marker_boxes(fig, list(zip(axes, panels.values(), strict=False))))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.2, metadata={"Software": None})
    return buf.getvalue()

