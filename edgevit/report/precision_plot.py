"""Logits PSNR against latency, one panel per model: which precision of a model to ship (issue 24).

Each point is one measured artifact whose manifest recorded the logits PSNR of its conversion's verdict (fp32,
fp16, int8, w8a8, ..., each runtime and thread count its own point); the step line joins the points no other point
of the panel beats on both axes (faster and closer to the fp32 model). Models with fewer than two such points, and
results with no latency, are left out. At most MAX_MODELS panels.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edgevit.report.document import Block
from edgevit.report.views import measured

MAX_MODELS = 12
PRECISION_PNG = "precision.png"
PSNR_CAP_DB = 100.0  # an fp32 artifact's PSNR (often 120+ dB, or exact) is drawn at this height, labelled


def precision_points(results: Sequence[Mapping[str, Any]]) -> dict[str, list[tuple[float, float, str]]]:
    """Model -> [(median ms, recorded logits PSNR dB, label)] of the results that have both."""
    points: dict[str, list[tuple[float, float, str]]] = defaultdict(list)
    for r in results:
        median, psnr = measured(r, "median_ms"), r.get("recorded_logits_psnr_db")
        if median is None or psnr is None:
            continue
        label = f"{r['form']} {r['precision']}, {r.get('threads') or '?'} thr, b{r['batch']}"
        points[r["model"]].append((median, float(psnr), label))
    return {m: sorted(p) for m, p in points.items() if len(p) >= 2}


def psnr_front(points: Sequence[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The points no other beats on both latency (lower) and PSNR (higher), fastest first."""
    front: list[tuple[float, float, str]] = []
    for point in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or point[1] > front[-1][1]:
            front.append(point)
    return front


def render_precision_plot(results: Sequence[Mapping[str, Any]]) -> bytes | None:
    """The PNG, or None when no model has two points to compare."""
    by_model = precision_points(results)
    if not by_model:
        return None
    models = sorted(by_model, key=lambda m: -len(by_model[m]))[:MAX_MODELS]
    cols = min(3, len(models))
    rows = math.ceil(len(models) / cols)
    fig = Figure(figsize=(5.2 * cols, 3.9 * rows), dpi=110)
    FigureCanvasAgg(fig)
    for n, model in enumerate(sorted(models)):
        ax = fig.add_subplot(rows, cols, n + 1)
        pts = by_model[model]
        shown = [(x, min(y, PSNR_CAP_DB), label) for x, y, label in pts]
        ax.scatter([p[0] for p in shown], [p[1] for p in shown], s=22, color="#1f77b4", zorder=3)
        front = psnr_front(pts)
        ax.step([p[0] for p in front], [min(p[1], PSNR_CAP_DB) for p in front], where="post", color="#d62728",
                linewidth=1.2, zorder=2)
        for x, y, label in shown:
            ax.annotate(label + (f" ({y:.0f}+ dB)" if y >= PSNR_CAP_DB else ""), (x, y), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("median latency, ms (this host)", fontsize=8)
        ax.set_ylabel("logits PSNR vs fp32, dB", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    fig.suptitle("Logits PSNR (recorded at conversion) against latency: red line = no faster and closer point",
                 fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def precision_blocks(results: Sequence[Mapping[str, Any]]) -> list[Block]:
    """The section: the figure and, per model, its front fastest first."""
    by_model = precision_points(results)
    items = [f"{model}: " + " → ".join(f"{label} ({ms:.1f} ms, {db:.1f} dB)" for ms, db, label in psnr_front(pts))
             for model, pts in sorted(by_model.items())]
    return [Block("h2", "Precision: logits PSNR against latency, per model"),
            Block("p", "Each artifact's logits PSNR on the photos against the fp32 original, as its manifest "
                       "claims (the benchmark does not re-measure it; edgevit validate re-judges an artifact), "
                       "against its median latency here. Per model, the artifacts no other is both faster and closer "
                       "than, fastest first:"),
            Block("ul", items=items),
            Block("figure", "logits PSNR against latency per model", source=PRECISION_PNG)]
