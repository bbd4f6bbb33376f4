"""Results grouped into plot series (one device and variant each), each series' Pareto front, and what cannot
be plotted and why. The plot, the Pareto section and the Pareto column of the tables all read this."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from edgevit.report.pareto import pareto_indices
from edgevit.report.views import NOT_MEASURED, Device, Sources, device_key, listing, measured, variant_label

OPTIMAL_MARK = "★ Pareto-optimal"

XAxis = Literal["latency", "throughput"]


@dataclass
class Series:
    label: str  # device + variant, for text
    variant: str  # variant + batch (+ source), for the legend of its device's panel
    device: Device
    points: list[tuple[int, str, float, float]] = field(default_factory=list)  # (result idx, model, x, acc)
    optimal: set[int] = field(default_factory=set)  # result indices on the front


@dataclass
class ParetoData:
    series: list[Series]
    status: dict[int, str]  # result idx -> OPTIMAL_MARK / "dominated" / "not plotted: ..."
    not_plotted: dict[str, list[str]]  # reason -> sorted entries (model, or model (series) if it varies)


def _series_key(r: Mapping[str, Any], sources: Sources) -> tuple[Any, ...]:
    return (*device_key(r), r["form"], r["runtime"], r.get("backend") or "", r.get("compute_unit") or "",
            r["precision"], r["batch"], sources.ref(r))


def _new_series(r: Mapping[str, Any], sources: Sources) -> Series:
    kind, name, _, _ = device_key(r)
    variant = f"{variant_label(r)} · batch {r['batch']}"
    if len(sources.files) > 1:
        variant += f" {sources.ref(r)}"
    return Series(f"{name} ({kind}) · {variant}", variant, device_key(r))


def _x_value(r: Mapping[str, Any], median: float, x_axis: XAxis) -> float:
    return r["batch"] * 1000.0 / median if x_axis == "throughput" else median


def _unplottable(r: Mapping[str, Any], top1: Mapping[str, float]) -> str | None:
    """Why a result cannot be a point on the plot, or None if it can."""
    median = measured(r, "median_ms")
    if top1.get(r["model"]) is None:
        return "no published top-1"
    if median is None:
        return NOT_MEASURED
    return "median of 0 ms cannot be shown on a log axis" if median <= 0 else None


def pareto_data(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], sources: Sources,
                x_axis: XAxis) -> ParetoData:
    """Split results into series (with their fronts) and the models that cannot be plotted (and why)."""
    by_key: dict[tuple[Any, ...], Series] = {}
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
        series.optimal = {series.points[k][0] for k in pareto_indices(pts)}
        for i, *_ in series.points:
            status[i] = OPTIMAL_MARK if i in series.optimal else "dominated"
    ordered = [by_key[k] for k in sorted(by_key)]
    return ParetoData(ordered, status, {k: sorted(v) for k, v in sorted(not_plotted.items())})


def not_plotted_lines(not_plotted: Mapping[str, list[str]]) -> list[str]:
    """One line per reason a result could not be plotted, naming (at most MAX_LISTED of) its models."""
    return [f"not plotted: {reason}: {listing(entries)}" for reason, entries in not_plotted.items()]
