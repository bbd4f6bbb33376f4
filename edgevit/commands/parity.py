"""The parity verdicts as a table (120 columns, or --wide), their reasons, and what a mil-reference row proves."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from edgevit.commands.output import console, fmt_number, print_table

MIL_REFERENCE = "mil-reference"


MIL_REFERENCE_NOTE = (
    "mil-reference = edgevit's MIL reference interpreter: it ran the saved ML program op by op on this CPU "
    "(fp16 values rounded after each op), which proves the converted program computes the original function. "
    "It is not the CoreML runtime; `edgevit harness ios` measures that on a device, per compute unit.")


def parity_table(results, wide: bool = False) -> Table:
    """Parity per artifact. The default columns fit 120 characters; ``wide`` adds max abs, cosine, top-5 and
    photos top-1, and the reasons inline (otherwise they follow the table, see ``parity_notes``)."""
    table = Table(title="parity vs the original PyTorch model (photos + random tensors)")
    table.add_column("artifact", no_wrap=True)
    cols = (("runtime", "status", "max abs", "rel L2", "PSNR dB", "cosine", "top-1", "top-5", "photos top-1",
             "distinct classes") if wide else ("runtime", "status", "rel L2", "PSNR dB", "top-1", "classes"))
    for col in cols:
        table.add_column(col, justify="left" if col in ("runtime", "status") else "right")
    for r in results:
        if r is None:
            continue
        style = {"pass": "green", "fail": "bold red"}.get(r.status, "yellow")
        status = f"[{style}]{r.status}[/]" + (f": {r.reason}" if r.reason and wide else "")
        m = r.overall
        if m is None:
            table.add_row(r.artifact, r.runtime, status, *["not measured"] * (len(cols) - 2))
            continue
        if wide:
            table.add_row(r.artifact, r.runtime, status, fmt_number(m.max_abs), fmt_number(m.rel_l2),
                          fmt_number(m.psnr_db, 4),
                          f"{m.cosine:.6f}", f"{m.top1_agreement:.0%}", f"{m.top5_agreement:.0%}",
                          f"{r.photos.top1_agreement:.0%}" if r.photos else "-", str(m.distinct_top1))
        else:
            table.add_row(r.artifact, r.runtime, status, fmt_number(m.rel_l2), fmt_number(m.psnr_db, 4),
                          f"{m.top1_agreement:.0%}", str(m.distinct_top1))
    return table


def print_parity(results, wide: bool = False, json_path: str | None = None) -> None:
    """The parity table, each reason below it (unless ``wide``), and all fields as JSON when asked."""
    results = [r for r in results if r is not None]
    print_table(parity_table(results, wide), wide)
    if not wide:
        for r in results:
            if r.reason:
                console.print(f"  {r.artifact} ({r.runtime}): {r.reason}")
    if json_path:
        from edgevit.base.atomic import write_text_atomic

        write_text_atomic(Path(json_path), json.dumps([r.to_json() for r in results], indent=2) + "\n")
        console.print(f"[green]wrote[/] {json_path} (every parity field)")


def _say_runtimes(results) -> None:
    """The interpreter is not the CoreML runtime: say what its row proves, in words, wherever it appears."""
    if any(r is not None and r.runtime == MIL_REFERENCE for r in results):
        console.print(MIL_REFERENCE_NOTE)


def _say_inconclusive(results) -> None:
    """Inconclusive is not a pass: say so in words below the table, not only in its status column."""
    names = [r.artifact for r in results if r is not None and r.status == "inconclusive"]
    if names:
        console.print(f"[bold yellow]parity INCONCLUSIVE[/] for {', '.join(names)}: the original model is not "
                      "stable in fp32 with these weights, so nothing is proven either way (see the reason)")
