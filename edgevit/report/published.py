"""The phone latency each paper published, beside what a device harness measured: its own section, never mixed
with this host's figures (a paper's iPhone Neural Engine time and a Linux host's CPU time answer different
questions)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from edgevit.report.document import Block, Table
from edgevit.report.views import fmt_ms, measured, variant_label


def _device_cell(r: Mapping[str, Any]) -> str:
    d = r["device"]
    return f"{fmt_ms(measured(r, 'median_ms'))} ms, batch {r['batch']}, {variant_label(r)} on {d['name']} ({d['os']})"


def published_latency_blocks(results: Sequence[Mapping[str, Any]], published: Mapping[str, Mapping[str, Any]]
                             ) -> list[Block]:
    """A table for the models in ``results`` that have a published phone latency or a device-harness result:
    the paper's figure with its device and source, and each device result a harness brought back."""
    on_device: dict[str, list[str]] = defaultdict(list)
    for r in results:
        if r["device"]["kind"] != "host" and r["status"] == "ok" and measured(r, "median_ms"):
            on_device[r["model"]].append(_device_cell(r))
    models = sorted({r["model"] for r in results} & (set(published) | set(on_device)))
    if not models:
        return []
    rows = []
    for model in models:
        paper = published.get(model)
        figure = f"{paper['ms']:.1f} ms on {paper['device']} ({paper['compute_unit']})" if paper else "not published"
        rows.append([model, figure, paper["source"] if paper else "-",
                     "; ".join(on_device.get(model, [])) or "no device result in these files"])
    return [Block("h2", "Published device latency and device harness results"),
            Block("p", "Phone figures only: what each paper published (batch 1) and what the iOS/Android harnesses "
                       "measured. They are not comparable with the host results above."),
            Block("table", table=Table(["model", "published latency (device)", "source", "measured by a device "
                                        "harness"], rows))]
