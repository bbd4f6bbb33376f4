"""results.csv and speedups.csv: every row, however long the report's tables are; not measured = empty cell."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from edgevit.bench.results import SOURCE_KEY
from edgevit.report.series import ParetoData
from edgevit.report.speedups import SpeedupPair
from edgevit.report.views import device_key, measured, variant_label

RESULT_COLUMNS = ["model", "form", "runtime", "backend", "compute_unit", "precision", "artifact_bytes",
                  "recorded_logits_psnr_db", "batch", "threads",
                  "median_ms", "trimmed_mean_ms", "p90_ms", "percent_of_peak", "load_time_ms", "peak_memory_mb",
                  "memory_kind", "warmup", "iterations", "status", "error", "published_top1", "pareto",
                  "device_kind", "device_name", "device_os", "device_cpu", "source"]
SPEEDUP_COLUMNS = ["device_kind", "device_name", "device_os", "device_cpu", "model", "batch", "variant", "baseline",
                   "variant_median_ms", "baseline_median_ms", "speedup"]


def _csv_bytes(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue().encode("utf-8")


def results_csv(results: Sequence[Mapping[str, Any]], top1: Mapping[str, float], pareto: ParetoData) -> bytes:
    """Every result, one row each; a number that was not measured (or a setting not recorded) is an empty cell."""
    def row(i: int, r: Mapping[str, Any]) -> list[Any]:
        median, trimmed, p90, peak_pct, load, memory = (
            measured(r, k) for k in ("median_ms", "trimmed_mean_ms", "p90_ms", "percent_of_peak", "load_time_ms",
                                     "peak_memory_mb"))
        src = r.get(SOURCE_KEY) or {}
        return [r["model"], r["form"], r["runtime"], r.get("backend"), r.get("compute_unit"), r["precision"],
                r.get("artifact_bytes"), r.get("recorded_logits_psnr_db"), r["batch"], r.get("threads"), median,
                trimmed, p90, peak_pct, load, memory, r.get("memory_kind"),
                r["warmup"], r["iterations"], r["status"], r.get("error"), top1.get(r["model"]), pareto.status[i],
                *device_key(r), src.get("file")]
    return _csv_bytes(RESULT_COLUMNS, (row(i, r) for i, r in enumerate(results)))


def speedups_csv(pairs: Sequence[SpeedupPair]) -> bytes:
    """Every (variant, baseline) pair with both medians and their ratio (empty if either was not measured)."""
    def row(pair: SpeedupPair) -> list[Any]:
        device, model, batch, v, b = pair
        vm, bm = measured(v, "median_ms"), measured(b, "median_ms")
        return [*device, model, batch, variant_label(v), variant_label(b), vm, bm,
                round(bm / vm, 4) if vm and bm else None]
    return _csv_bytes(SPEEDUP_COLUMNS, (row(p) for p in pairs))
