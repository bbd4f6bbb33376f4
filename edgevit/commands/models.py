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
        console.print(weights_table(list_models()))
        console.print("`edgevit convert MODEL --pretrained [TAG]` loads them (not the tags marked *: headless, not "
                      "1000 classes, or another resolution); `edgevit weights ls MODEL` shows each tag's hub "
                      "repository and whether it is cached.")
    return 0


def weights_table(specs) -> Table:
    """Per model: the tags timm publishes (default first), their license and source, as timm's config states them."""
    from edgevit.models.pretrained import pretrained_tags

    table = Table(title="trained weights timm publishes (--pretrained)")
    table.add_column("name", no_wrap=True)
    table.add_column("tags (timm's default first)")
    table.add_column("license")
    table.add_column("source (timm's config)", overflow="fold")
    for spec in specs:
        tags = pretrained_tags(spec)
        if not tags:
            table.add_row(spec.name, "none published", "-", "-")
            continue
        names = ", ".join(t.tag + _mark(t, spec) for t in tags)
        licenses = ", ".join(dict.fromkeys(t.license or "not stated" for t in tags))
        sources = ", ".join(dict.fromkeys(t.source for t in tags if t.source)) or "not stated"
        table.add_row(spec.name, names, licenses, sources)
    return table


def _mark(tag, spec) -> str:
    """' (headless*)', ' (21841*)', ' (384*)': why --pretrained refuses a tag; '' for the loadable ones."""
    if tag.num_classes != 1000:
        return f" ({tag.num_classes or 'headless'}*)"
    return "" if tuple(tag.input_size) == tuple(spec.input_size) else f" ({tag.input_size[-1]}*)"


def show_weights(model: str) -> int:
    """`edgevit weights ls MODEL`: every tag timm publishes, where it lives, its license, and whether it is cached."""
    from edgevit.models.pretrained import cache_status, hub_settings, pretrained_tags
    from edgevit.models.registry import get_spec

    spec = get_spec(model)
    tags = pretrained_tags(spec)
    if not tags:
        why = f"timm has none for {spec.timm_name}" if spec.timm_name else "it is not a timm model"
        console.print(f"{spec.name}: no published trained weights ({why}); --pretrained is refused, --weights FILE "
                      "works.")
        return 0
    cache = hub_settings()[0]
    table = Table(title=f"{spec.name}: trained weights timm publishes for {spec.timm_name}")
    usual = all(t.hf_hub_id == f"timm/{t.name}" and t.filename == "model.safetensors" for t in tags)
    table.add_column("tag", no_wrap=True)
    if not usual:
        table.add_column("hub repository / file", overflow="fold")
    for col in ("license", "source (timm's config)", "classes", "input", "cached"):
        table.add_column(col, no_wrap=not col.startswith("source"), overflow="fold")
    for t in tags:
        where = [f"{t.hf_hub_id}/{t.filename}" if t.hf_hub_id else f"not on the hub: {t.url or '-'}"]
        table.add_row(t.tag + (" (default)" if t.default else ""), *([] if usual else where),
                      t.license or "not stated", t.source or "not stated", str(t.num_classes or "headless"),
                      "x".join(map(str, t.input_size[1:])), cache_status(t, cache))
    console.print(table)
    if usual:
        console.print(f"hub repository of each tag: timm/{spec.timm_name}.<tag>, file model.safetensors "
                      "(edgevit never fetches a pickle)")
    console.print(f"cached: in the hub cache {cache} at revision main, as last resolved (set by HF_HOME or "
                  "HF_HUB_CACHE; no network is read here)")
    console.print(f"use: edgevit convert {spec.name} --pretrained [TAG] [--revision REV]")
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
