"""The ``.pte`` against onnxruntime: one row per model, threads and batch, from the fair comparison bench runs.

Both medians and the ratio come from the same interleaved samples (edgevit.bench.fair), so the row cannot
contradict itself; beside them each form's share of this CPU's physical fp32 peak and, where ``bench --profile``
left a profile beside the results file, the op type each runtime spends most of its time in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edgevit.bench.host_info import isa_summary
from edgevit.bench.profile_files import ProfileKey, profile_key
from edgevit.bench.results import SOURCE_KEY
from edgevit.report.document import Block, Table
from edgevit.report.views import device_key, fmt_ms, fmt_percent_of_peak, measured, measured_on

# The goal of issue 25: the .pte at most 0.9x onnxruntime's latency, i.e. a fair ratio of at least 1/0.9.
CLEARLY_AHEAD = 1.11
HEADERS = ["model", "threads", "batch", ".pte ms", ".onnx ms", "onnxruntime ÷ .pte [95% interval]",
           ".pte % of peak", ".onnx % of peak", ".pte: slowest op type", ".onnx: slowest op type"]

Pair = tuple[Mapping[str, Any], Mapping[str, Any] | None]


def versus_pairs(results: Sequence[Mapping[str, Any]]) -> list[Pair]:
    """Each .pte result with a fair ratio against its .onnx, and that .onnx result (same file, model, batch,
    threads), in model / threads / batch order."""
    def run(r: Mapping[str, Any]) -> tuple:  # a .pte and its .onnx: one file, model, batch and thread count
        return (r.get(SOURCE_KEY, {}).get("file"), r["model"], r["batch"], r.get("threads"))

    onnx = {run(r): r for r in results if r["form"] == "onnx"}
    pairs = [(r, onnx.get(run(r))) for r in results
             if r["form"] == "executorch" and (r.get("interleaved") or {}).get("ratio")]
    return sorted(pairs, key=lambda p: (device_key(p[0]), p[0]["model"], p[0].get("threads") or 0, p[0]["batch"]))


def slowest_op_type(r: Mapping[str, Any] | None, profiles: Mapping[ProfileKey, Mapping[str, Any]]) -> str:
    """'<op type> (<kernel>), <ms> ms, <percent>% of <ops> ops' from the result's profile, or why there is none."""
    if r is None or not r.get("artifact"):
        return "no artifact"
    prof = profiles.get(profile_key(r))
    if prof is None:
        return "not profiled (bench --profile)"
    if not prof["by_type"]:
        return "profile has no ops"
    top = prof["by_type"][0]
    kernel = f" ({top['kernel']})" if top.get("kernel") else ""
    return f"{top['op_type']}{kernel}: {fmt_ms(top['ms'])} ms, {top['percent']:.0f}%, {top['ops']} ops"


def _ratio_cell(pte: Mapping[str, Any]) -> str:
    fair = pte["interleaved"]
    return f"{fair['ratio']:.2f}× [{fair['ci_low']:.2f}–{fair['ci_high']:.2f}]"


def versus_blocks(results: Sequence[Mapping[str, Any]], profiles: Mapping[ProfileKey, Mapping[str, Any]]
                  ) -> list[Block]:
    """The section: a table per device and a line saying how many rows reach the goal; nothing without pairs."""
    pairs = versus_pairs(results)
    if not pairs:
        return []
    blocks = [Block("h2", "The .pte against onnxruntime (fair protocol)"),
              Block("p", "Each .pte timed against its .onnx in one run: blocks of calls alternated in random order, "
                         "the first call of each block dropped, the other runtime quiet (edgevit.bench.fair). "
                         "Milliseconds are the block medians of that run; the ratio is onnxruntime's median over the "
                         f".pte's (above 1 the .pte is faster; the goal is {CLEARLY_AHEAD:.2f}×, the .pte at most 0.9× "
                         "onnxruntime's latency). % of peak is of this CPU's physical fp32 FMA rate at the threads "
                         "used; the slowest op type is from each artifact's per-op profile at the same threads and "
                         "batch.")]
    by_device: dict[tuple[str, ...], list[Pair]] = {}
    for pair in pairs:
        by_device.setdefault(device_key(pair[0]), []).append(pair)
    for members in by_device.values():
        rows = [[pte["model"], str(pte.get("threads") or "—"), str(pte["batch"]), fmt_ms(measured(pte, "median_ms")),
                 fmt_ms(measured(onnx, "median_ms")) if onnx else "—", _ratio_cell(pte), fmt_percent_of_peak(pte),
                 fmt_percent_of_peak(onnx) if onnx else "—", slowest_op_type(pte, profiles),
                 slowest_op_type(onnx, profiles)] for pte, onnx in members]
        ahead = [p for p, _ in members if p["interleaved"]["ratio"] >= CLEARLY_AHEAD]
        surely = [p for p, _ in members if p["interleaved"]["ci_low"] >= CLEARLY_AHEAD]
        behind = [f"{p['model']} ({p.get('threads')} thr, b{p['batch']}, {p['interleaved']['ratio']:.2f}×)"
                  for p, _ in members if p["interleaved"]["ci_high"] < 1]
        flags = members[0][0]["device"].get("isa")
        isa = "not recorded" if flags is None else isa_summary(flags)
        blocks += [Block("h3", f"Measured on {measured_on(members[0][0])}; ISA: {isa}"),
                   Block("table", table=Table(HEADERS, rows)),
                   Block("p", f"{len(ahead)} of {len(members)} rows reach {CLEARLY_AHEAD:.2f}× (with the whole "
                              f"interval above it: {len(surely)}); the .pte surely slower (interval below 1): "
                              + (", ".join(behind) or "none") + ".")]
    return blocks
