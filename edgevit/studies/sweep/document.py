"""The sweep's two files in ``--out``, rewritten atomically as each task finishes, so a sweep that is stopped
(or still running) leaves both complete and readable:

- ``sweep.json`` (``edgevit-sweep/1``): one row per cell with its status (pending, running, converted, cached,
  failed, unschedulable), the parity verdict and its reason, every failed attempt's reason, times and memory;
- ``results.json``: the timings so far in the results schema every harness writes (edgevit/bench/schema.json),
  so ``edgevit report OUT/results.json`` (or ``edgevit report OUT``) works on a partial sweep.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from pathlib import Path

from edgevit.base.atomic import write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.studies.sweep.plan import Cell, SweepPlan

SWEEP_FORMAT = "edgevit-sweep/1"
SWEEP_FILE = "sweep.json"
RESULTS_FILE = "results.json"
ARTIFACTS_DIR = "artifacts"
DONE = ("converted", "cached")
FINAL = (*DONE, "failed", "unschedulable")


def new_row(cell: Cell) -> dict:
    return {**cell.to_json(), "key": None, "status": "pending", "cache": None, "parity": None,
            "parity_reason": None, "parity_runtime": None, "error": None, "attempts": [], "convert_s": None,
            "peak_rss_mb": None, "worker": None, "bench": None, "bench_median_ms": None, "bench_error": None,
            "bench_worker": None, "bench_cache": None}


class SweepDocument:
    """The rows and timings of one sweep, written to ``out`` on every change (thread-safe)."""

    def __init__(self, out: Path, plan: SweepPlan, engine: str, cache_root: Path):
        self.out = Path(out)
        self.plan = plan
        self.engine = engine
        self.cache_root = cache_root
        self.rows = [new_row(c) for c in plan.cells]
        self.results: list[dict] = []
        self.peaks: dict[str, dict | None] = {}
        self.created = utc_now_iso()
        self.finished: str | None = None
        self._lock = threading.Lock()

    def counts(self) -> Counter:
        return Counter(r["status"] for r in self.rows)

    def add_results(self, records: list[dict], peak: dict | None, host: str) -> None:
        self.results += records
        self.peaks[host] = peak

    def results_document(self) -> dict:
        """The results in the schema edgevit writes; the file's peak only when every result came from one host
        (a peak describes one CPU: results of several hosts keep their percentages, the file names no peak)."""
        from edgevit.bench.results import SCHEMA_VERSION

        peaks = list(self.peaks.values())
        peak = peaks[0] if len(peaks) == 1 else None
        return {"schema_version": SCHEMA_VERSION, "harness": "host", "created": utc_now_iso(), "peak": peak,
                "results": self.results}

    def to_json(self) -> dict:
        from edgevit.base.manifest import tool_versions

        return {"format": SWEEP_FORMAT, "created": self.created, "updated": utc_now_iso(),
                "finished": self.finished, "engine": self.engine, "cache": str(self.cache_root),
                "plan": self.plan.to_json(), "counts": dict(self.counts()), "tool_versions": tool_versions(),
                "results_file": RESULTS_FILE, "rows": self.rows}

    def finish(self) -> None:
        self.finished = utc_now_iso()

    def write(self) -> None:
        with self._lock:
            write_text_atomic(self.out / SWEEP_FILE, json.dumps(self.to_json(), indent=1, default=str) + "\n")
            write_text_atomic(self.out / RESULTS_FILE, json.dumps(self.results_document(), indent=1) + "\n")


def sweep_table_markdown(rows: list[dict]) -> str:
    """One row per model, one column per (target, variant): the status of each cell, failures' reasons below."""
    columns = list(dict.fromkeys((r["target"], r["variant"]) for r in rows))
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["target"], r["variant"]): r for r in rows}
    head = "| model | " + " | ".join(f"{t} {v if v != 'none' else 'float'}" for t, v in columns) + " |"
    lines = [head, "|" + "---|" * (len(columns) + 1)]
    notes: list[str] = []
    for model in models:
        cells = []
        for target, variant in columns:
            row = by.get((model, target, variant))
            cells.append("-" if row is None else _cell_text(row))
            if row is not None and _reason(row):
                notes.append(f"- {model} / {target} {variant}: {_reason(row)}")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    if notes:
        lines += ["", "Reasons (every cell that did not pass):", *notes]
    return "\n".join(lines) + "\n"


def _cell_text(row: dict) -> str:
    status = row["status"]
    if status in DONE:
        verdict = row.get("parity") or "not validated"
        runtime = " (mil-reference)" if row.get("parity_runtime") == "mil-reference" else ""
        median = f", {row['bench_median_ms']:.1f} ms" if row.get("bench_median_ms") is not None else ""
        return f"{verdict}{runtime}{median}"
    return status


def _reason(row: dict) -> str | None:
    if row["status"] in ("failed", "unschedulable"):
        return (row.get("error") or "").replace("\n", " ")[:400]
    if row["status"] in DONE and row.get("parity") not in (None, "pass"):
        return f"{row['parity']}: {(row.get('parity_reason') or '').replace(chr(10), ' ')[:400]}"
    return None


def summary_line(rows: list[dict]) -> str:
    counts = Counter(r["status"] for r in rows)
    parity = Counter(r.get("parity") for r in rows if r["status"] in DONE)
    parts = [f"{counts.get(s, 0)} {s}" for s in ("converted", "cached", "failed", "unschedulable") if counts.get(s)]
    verdicts = ", ".join(f"{n} {k or 'not validated'}" for k, n in sorted(parity.items(), key=lambda x: str(x[0])))
    timed = sum(r.get("bench") is not None and not r.get("bench_cache") for r in rows)
    reused = sum(bool(r.get("bench_cache")) for r in rows)
    timings = ", ".join(p for p in (f"{timed} timing task(s) run" if timed else "", f"{reused} timings of this host "
                                    "reused from the cache (--rebench times them again)" if reused else "") if p)
    return (f"{len(rows)} cells: {', '.join(parts) or 'nothing done'}" + (f"; parity: {verdicts}" if verdicts else "")
            + (f"; {timings}" if timings else ""))
