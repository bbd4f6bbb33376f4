"""Which results a speed-up compares: each variant form against its baseline form, same model, device, batch."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from edgevit.bench.results import SOURCE_KEY
from edgevit.report.views import device_key, row_order

# Speed-ups are reported against these baselines, each for the forms listed with it.
SPEEDUP_BASELINES: dict[str, tuple[str, ...]] = {
    "original-eager": ("prepared-eager", "onnx", "executorch", "coreml"),
    "onnx": ("executorch", "coreml"),
}

SpeedupPair = tuple[tuple[str, ...], str, int, Mapping[str, Any], Mapping[str, Any]]


def _pairs_of(members: Sequence[Mapping[str, Any]]) -> list[tuple[Mapping[str, Any], Mapping[str, Any]]]:
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


def speedup_pairs(results: Sequence[Mapping[str, Any]]) -> list[SpeedupPair]:
    """(device, model, batch, variant, baseline) for every speed-up the report shows, in report order."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = defaultdict(list)
    for r in results:
        groups[(device_key(r), r["model"], r["batch"])].append(r)
    return [(device, model, batch, v, b) for (device, model, batch), members in sorted(groups.items())
            for v, b in _pairs_of(sorted(members, key=row_order))]
