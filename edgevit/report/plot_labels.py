"""Model labels on the Pareto plot: one per model and panel, kept off the markers and off each other."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.transforms import Bbox

from edgevit.report.series import Series

MAX_LABELS = 30  # model labels per panel (Pareto-optimal models first)


def marker_boxes(fig: Figure, series_by_ax: Sequence[tuple[Any, Sequence[Series]]]) -> list[Bbox]:
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


def declutter(fig: Figure, annotations: list[Any], obstacles: list[Bbox]) -> None:
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


def label_models(ax: Any, series: Sequence[Series]) -> list[Any]:
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

