"""Pareto-front maths over (name, latency, accuracy) points: a sort and a sweep, O(n log n)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def _dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """a = (latency, accuracy) is no slower and no less accurate than b, and strictly better in one."""
    return a[0] <= b[0] and a[1] >= b[1] and (a[0] < b[0] or a[1] > b[1])


def pareto_indices(points: Sequence[tuple[str, float, float]]) -> list[int]:
    """Indices of the points on the front, fastest first; raises ValueError on a non-finite number."""
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
    return [points[i][0] for i in pareto_indices(points)]
