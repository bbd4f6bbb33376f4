"""How one result reads in a report: measured numbers only, formatted cells, row order, and its source file.

A number is shown only if it was measured (non-null, from a result whose status is ok); anything else reads
NOT_MEASURED, never a filled-in value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgevit.bench.results import SOURCE_KEY

NOT_MEASURED = "not measured"
NOT_RECORDED = "—"  # a setting the result does not state (e.g. threads in a schema v1 file)
FORM_ORDER = ("original-eager", "prepared-eager", "onnx", "executorch", "coreml")
MAX_LISTED = 25  # names listed inline (not-plotted models, Pareto fronts) before "... and N more"

Device = tuple[str, str, str, str]


def measured(r: Mapping[str, Any], key: str) -> float | None:
    """A number only if it was measured: non-null and from a result whose status is ok."""
    value = r.get(key)
    return value if r["status"] == "ok" and value is not None else None


def fmt_ms(value: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    if value >= 100:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def fmt_memory(r: Mapping[str, Any]) -> str:
    value = measured(r, "peak_memory_mb")
    if value is None:
        return NOT_MEASURED
    return f"{value:.1f} MB ({r.get('memory_kind') or 'kind not stated'})"


def fmt_size(r: Mapping[str, Any]) -> str:
    """The artifact's size on disk ("–" for an eager model, which has no file)."""
    size = r.get("artifact_bytes")
    return "–" if size is None else f"{size / 1e6:.1f} MB"


def fmt_psnr(r: Mapping[str, Any]) -> str:
    """The logits PSNR the artifact's manifest recorded at conversion, or 'not recorded'."""
    value = r.get("recorded_logits_psnr_db")
    return "not recorded" if value is None else f"{value:.1f} dB"


def fmt_percent_of_peak(r: Mapping[str, Any]) -> str:
    """The result's share of the device's peak compute (schema v2), or NOT_MEASURED if it has none."""
    value = measured(r, "percent_of_peak")
    if value is None:
        return NOT_MEASURED
    return f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def fmt_threads(r: Mapping[str, Any]) -> str:
    """The thread count the result was run with (schema v2); a setting, so shown whatever the status."""
    threads = r.get("threads")
    return NOT_RECORDED if threads is None else str(threads)


def fmt_status(r: Mapping[str, Any]) -> str:
    status, error = r["status"], r.get("error")
    if status == "ok":
        return "ok" if r.get("median_ms") is not None else f"ok, but median {NOT_MEASURED}"
    label = "not run" if status == "not_run" else "failed"
    return f"{label}: {error}" if error else f"{label} (no error text)"


def device_key(r: Mapping[str, Any]) -> Device:
    d = r["device"]
    return (d["kind"], d["name"], d["os"], d["cpu"])


def measured_on(r: Mapping[str, Any]) -> str:
    kind, name, os_, cpu = device_key(r)
    return f"{kind} {name}, {os_}, {cpu}"


def variant_label(r: Mapping[str, Any]) -> str:
    """Form plus what distinguishes it from other results of the same form."""
    parts = [r["form"], r.get("backend"), r.get("compute_unit"), r["precision"]]
    return " · ".join(p for p in parts if p)


def _form_rank(form: str) -> int:
    return FORM_ORDER.index(form) if form in FORM_ORDER else len(FORM_ORDER)


def row_order(r: Mapping[str, Any]) -> tuple[Any, ...]:
    """Sort key of a result row: model, then forms in pipeline order, then the rest of its variant."""
    return (r["model"], _form_rank(r["form"]), r["precision"], r["batch"], r.get("backend") or "",
            r.get("compute_unit") or "")


def listing(entries: Sequence[str], where: str = "results.csv") -> str:
    """At most MAX_LISTED names inline; the rest counted, with where to find them."""
    shown = ", ".join(entries[:MAX_LISTED])
    rest = len(entries) - MAX_LISTED
    return shown + (f" and {rest} more (all in {where})" if rest > 0 else "")


class Sources:
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
