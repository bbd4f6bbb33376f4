"""The parity verdicts as a table (120 columns, or --wide), their reasons, and what a mil-reference row proves."""

from __future__ import annotations

import json
from pathlib import Path

from rich.table import Table

from edgevit.commands.output import console, fmt_number, print_table

MIL_REFERENCE = "mil-reference"


MIL_REFERENCE_NOTE = (
    "mil-reference = edgevit's MIL reference interpreter: it ran the saved ML program op by op on this CPU, at fp32 "
    "for fidelity and with fp16 values rounded after each op for the precision cost. It is not the CoreML runtime; "
    "`edgevit harness ios` measures that on a device, per compute unit.")
VERDICT_NOTE = (
    "fidelity = the artifact's program at wide precision vs the original carrying the values it stores (error / "
    "bound, margin); cost dB = PSNR of logits on the photos vs the fp32 original ≥ its floor; ctr top-1 = top-1 "
    "agreement on centered logits (what tells inputs apart); share = how much of the original's logits depends on "
    "the input (low: the cost figures say little about the model).")


def parity_table(results, wide: bool = False) -> Table:
    """Per artifact: the verdict, its fidelity (error against its bound, and the margin) and its precision cost
    (PSNR of logits on the photos against the floor, centered top-1, the reference's input-dependent share). The
    default columns fit 120 characters; ``wide`` adds relative L2, cosine, top-1/top-5 and the reasons inline."""
    table = Table(title="parity vs the original PyTorch model: fidelity (same program?) and precision cost (logits)")
    table.add_column("artifact", no_wrap=True)
    cols = ["runtime", "verdict", "fidelity", "cost dB", "ctr top-1", "share"]
    if wide:
        cols += ["rel L2", "cosine", "top-1", "top-5", "classes", "stored"]
    for col in cols:
        table.add_column(col, justify="left" if col in ("runtime", "verdict") else "right")
    for r in results:
        if r is None:
            continue
        style = {"pass": "green", "fail": "bold red"}.get(r.status, "yellow")
        verdict = f"[{style}]{r.status}[/]" + (f" ({r.failed_part})" if r.failed_part else "")
        if wide and r.reason:
            verdict += f": {r.reason}"
        table.add_row(r.artifact, r.runtime, verdict, *_cells(r, wide))
    return table


def fidelity_cell(f) -> str:
    """"2.1e-06 / 1e-04 (0.02×)": the error, the bound and their ratio; "stored values" when those broke first."""
    if f is None or f.error is None:
        return "not run" if f is None or f.status == "not run" else f.status
    if (f.values or {}).get("n_broken"):
        return f"stored values ({f.values['n_broken']} tensors)"
    return f"{fmt_number(f.error, 2)} / {fmt_number(f.bound, 2)} ({f.margin:.2g}×)"


def _cells(r, wide: bool) -> list[str]:
    c = r.cost
    if c is None:
        base = [fidelity_cell(r.fidelity), "-", "-", "-"]
        return base + ["-"] * 6 if wide else base
    judged = c.photos or c.overall
    cells = [fidelity_cell(r.fidelity), f"{fmt_number(judged.psnr_db, 3)} ≥ {c.floor_db:g}",
             f"{c.centered.top1_agreement:.0%}" if c.centered else "-",
             f"{c.input_share:.0%}" if c.input_share is not None else "-"]
    if wide:
        m = c.overall
        stored = (r.fidelity.values or {}).get("checked") if r.fidelity else None
        cells += [fmt_number(m.rel_l2), f"{m.cosine:.6f}", f"{m.top1_agreement:.0%}", f"{m.top5_agreement:.0%}",
                  str(m.distinct_top1), "-" if stored is None else str(stored)]
    return cells


def print_parity(results, wide: bool = False, json_path: str | None = None) -> None:
    """The parity table, each reason below it (unless ``wide``), and all fields as JSON when asked."""
    results = [r for r in results if r is not None]
    print_table(parity_table(results, wide), wide)
    console.print(VERDICT_NOTE, style="dim")
    _print_photo_labels(results)
    if not wide:
        for r in results:
            if r.reason:
                console.print(f"  {r.artifact} ({r.runtime}): {r.reason}")
    if json_path:
        from edgevit.base.atomic import write_text_atomic

        write_text_atomic(Path(json_path), json.dumps([r.to_json() for r in results], indent=2) + "\n")
        console.print(f"[green]wrote[/] {json_path} (every parity field)")


def _print_photo_labels(results) -> None:
    """Trained weights: what each photo is according to the original and to each artifact (the photos' contents
    are known: a reader sees at a glance that they name the same things)."""
    labelled = [r for r in results if r.photo_labels]
    if not labelled:
        return
    table = Table(title="top-1 label of each photo (trained weights)")
    table.add_column("photo", no_wrap=True)
    table.add_column("original")
    for r in labelled:
        table.add_column(r.artifact.split(".", 1)[1] if "." in r.artifact else r.artifact)
    for i, row in enumerate(labelled[0].photo_labels):
        cells = [row["photo"], row["original"]]
        for r in labelled:
            theirs = r.photo_labels[i]["artifact"] if i < len(r.photo_labels) else "-"
            cells.append(theirs if theirs == row["original"] else f"[bold red]{theirs}[/]")
        table.add_row(*cells)
    print_table(table)


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
