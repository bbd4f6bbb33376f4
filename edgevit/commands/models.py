"""`edgevit list`: the registry as a table, and TurboViT's params/FLOPs against the seed models."""

from __future__ import annotations

from rich.table import Table

from edgevit.commands.output import console


def show_models(details: bool) -> int:
    from edgevit.api import list_models

    table = Table(title="edgevit models (any timm model also works as timm:<name>)")
    for col in ("name", "family", "converter", "input", "published top-1", "options"):
        table.add_column(col)
    if details:
        table.add_column("params (M)", justify="right")
        table.add_column("GFLOPs", justify="right")
    for spec in list_models():
        row = [spec.name, spec.family, spec.converter, "x".join(map(str, spec.input_size)),
               f"{spec.published_top1:.1f} ({spec.top1_source})" if spec.published_top1 else "-",
               ", ".join(f"{k}={'|'.join(v)}" for k, v in spec.options.items()) or "-"]
        if details:
            from edgevit.models.complexity import complexity

            c = complexity(spec)
            row += [f"{c['params'] / 1e6:.2f}", f"{c['flops'] / 1e9:.2f}"]
        table.add_row(*row)
    console.print(table)
    if details:
        console.print("FLOPs from torch.utils.flop_counter at the model's input size (a multiply-add counts as 2).")
    return 0


def show_turbovit_comparison() -> int:
    from edgevit.models.turbovit import seed_comparison

    table = Table(title="TurboViT vs seed models at 224x224 (torch.utils.flop_counter; MACs = FLOPs / 2)")
    for col in ("model", "params (M)", "GFLOPs", "GMACs", "TurboViT is"):
        table.add_column(col, justify="left" if col in ("model", "TurboViT is") else "right")
    for row in seed_comparison():
        verdict = "-" if row["model"] == "turbovit" else ", ".join((
            "smaller" if row["turbovit_smaller"] else "larger", "cheaper" if row["turbovit_cheaper"] else "costlier"))
        table.add_row(row["model"], f"{row['params'] / 1e6:.2f}", f"{row['flops'] / 1e9:.2f}",
                      f"{row['macs'] / 1e9:.2f}", verdict)
    console.print(table)
    return 0
