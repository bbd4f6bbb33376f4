"""`edgevit convert` and `edgevit validate`: what was built, rewritten, written, and whether it matches."""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

from edgevit.commands.output import console, progress_printer
from edgevit.commands.parity import _say_inconclusive, _say_runtimes, print_parity


def run_convert(args: argparse.Namespace) -> int:
    from edgevit.api import convert

    options = {"attention_form": args.attention_form} if args.attention_form else None
    warnings.filterwarnings("ignore")
    result = convert(
        args.model, args.target, args.out, weights=args.weights, options=options, precision=args.precision,
        backend=args.backend, deployment_target=args.deployment_target, tensor_input=args.tensor_input,
        init=args.init, seed=args.seed, validate=not args.no_validate, mil_report=not args.no_mil_report,
        progress=None if args.quiet else progress_printer(False), quantize=args.quantize, compress=args.compress,
        calibration=args.calibration, min_psnr=args.min_psnr, pretrained=args.pretrained, revision=args.revision,
        keep_float=args.keep_float, scan_budget=args.scan_budget,
    )
    console.print(f"[bold]{result.model}[/]: {result.weights}")
    console.print("rewrites: " + "; ".join(result.rewrites))
    console.print(f"prepared vs original (fp32, validation inputs): relative L2 {result.prepared_rel_l2:.2e}")
    if result.mil_layout:
        m = result.mil_layout["model"]
        att = result.mil_layout["attention_blocks"]
        side = {}
        for when in ("before", "after"):
            error = m[f"error_{when}"]
            side[when] = (f"conversion fails ({error})" if error else
                          f"{m[when]} {m[f'{when}_ops']} at max tensor rank {m[f'max_rank_{when}']}")
        console.print(f"CoreML MIL reshape/transpose ops, whole model: {side['before']} -> {side['after']}")
        if m["max_rank_before"] > 5:
            console.print("  (the original exceeds rank 5: CoreML's mlprogram conversion rejects it; "
                          "the prepared model is what ships)")
        console.print(f"  per attention block: before {list(att['before'].values())} -> after "
                      f"{list(att['after'].values())}")
    for art in result.artifacts:
        extra = ""
        if "delegation" in art.export_info:
            d = art.export_info["delegation"]
            left = (f"ops left on portable kernels: {d['non_delegated_ops']}" if d["non_delegated_ops"]
                    else "no op left on portable kernels")
            took = f"{d['backend']} took {d['delegated_nodes']} nodes in {d['delegated_subgraphs']} subgraph(s)"
            extra = f" — {took}, {left}"
        if art.export_info.get("workarounds"):
            extra += f"; backend bug workarounds applied: {art.export_info['workarounds']}"
        console.print(f"[green]wrote[/] {art.path} ({art.seconds:.1f} s){extra}")
        _say_quantization(art)
    if any(a.parity for a in result.artifacts):
        print_parity([a.parity for a in result.artifacts], args.wide, args.json)
    _say_quantized_parity(result.artifacts)
    _say_runtimes([a.parity for a in result.artifacts])
    _say_inconclusive([a.parity for a in result.artifacts])
    if result.failed:
        console.print(f"[bold red]parity FAILED[/] for {', '.join(a.path.name for a in result.failed)}")
        return 3
    return 0


def _say_quantization(art) -> None:
    """A quantized/compressed artifact: its scheme, calibration set and the layers left in float."""
    from edgevit.base.manifest import read_manifest

    q = read_manifest(art.path).get("quantization")
    if not q:
        return
    console.print(f"  scheme: {q['scheme']}; size {_size_mb(art.path):.2f} MB")
    if q.get("calibration"):
        c = q["calibration"]
        console.print(f"  calibration: {c['images']} images from {c['source']} (set sha256 {c['sha256'][:12]})")
    floats = q.get("float_layers")
    if floats is not None:
        by_op = ", ".join(f"{op} x{n}" for op, n in floats["by_op"].items()) or "none"
        console.print(f"  layers left in float: {floats['count']} ({by_op})")
    if "compressed_weight_ops" in q:
        console.print(f"  compressed weights: {q['compressed_weight_ops']}; float weight tensors >= 2048 elements "
                      f"left: {q['float_weights_left']} ({q['note']})")
    if q.get("warning"):
        console.print(f"  [bold yellow]note:[/] {q['warning']}")


def _size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def _say_quantized_parity(artifacts) -> None:
    """Quantized vs float, logits on the photos, side by side; the floor applied; the random-init caveat."""
    from edgevit.base.manifest import read_manifest

    for art in artifacts:
        if art.parity is None or art.parity.cost is None or art.parity.photos is None:
            continue
        q = read_manifest(art.path).get("quantization")
        if not q:
            continue
        m, cost = art.parity.photos, art.parity.cost
        line = (f"{art.path.name}, logits on the photos: PSNR {m.psnr_db:.1f} dB, cosine {m.cosine:.4f}, top-1 "
                f"{m.top1_agreement:.0%}, top-5 {m.top5_agreement:.0%} (floor {cost.floor_db:g} dB, "
                f"{cost.floor_source})")
        for label, psnr in cost.expected.items():
            line += f"; {label}: {psnr:.1f} dB"
        sibling = q.get("float_artifact_parity")
        if sibling:
            f = sibling["photos"]
            line += (f"; float {sibling['artifact']}: PSNR {f['psnr_db']:.1f} dB, cosine {f['cosine']:.4f}, "
                     f"top-1 {f['top1_agreement']:.0%}")
        console.print(line)
        if q.get("warning"):
            console.print(f"  [bold yellow]note:[/] {q['warning']}")


def run_validate(artifact: Path, device_outputs: str | None, quiet: bool, runtime: str | None = None, *,
                 wide: bool = False, json_path: str | None = None, min_psnr: float | None = None,
                 calibration: str | None = None, weights: str | None = None) -> int:
    from edgevit.api import validate

    warnings.filterwarnings("ignore")
    progress_printer(quiet)(f"validating {artifact}")
    result = validate(artifact, device_outputs, runtime=runtime, min_psnr=min_psnr, calibration=calibration,
                      weights=weights)
    print_parity([result], wide, json_path)
    from edgevit.base.manifest import read_manifest

    warning = (read_manifest(artifact).get("quantization") or {}).get("warning")
    if warning:
        console.print(f"[bold yellow]note:[/] {warning}")
    _say_runtimes([result])
    _say_inconclusive([result])
    return 3 if result.failed else 0


def run_bisect(artifact: Path, quiet: bool, *, calibration: str | None = None, json_path: str | None = None) -> int:
    """The first diverging value and the ten worst, as a table; exits 3 when a value diverges."""
    from rich.table import Table

    from edgevit.api import bisect

    warnings.filterwarnings("ignore")
    progress_printer(quiet)(f"bisecting {artifact} against the original"
                            + (" (lowering the original again to compare the programs)"
                               if artifact.suffix == ".pte" else ", value by value"))
    report = bisect(artifact, calibration=calibration)
    console.print(f"{report.artifact} on input {report.input}: {report.compared} "
                  f"{'nodes' if artifact.suffix == '.pte' else 'values'} compared ({report.note})")
    if report.first is None:
        console.print(f"[green]no value diverges[/] beyond relative L2 {report.bound:g}")
    else:
        d = report.first
        console.print(f"[bold red]first divergence[/]: {d.op} {d.value} (from node {d.node}, module "
                      f"{d.module}): relative L2 {d.rel_l2:.3g} > {report.bound:g}, max abs {d.max_abs:.3g}")
    table = Table(title=f"the {len(report.worst)} worst values")
    for col in ("value", "op", "module", "rel L2", "max abs"):
        table.add_column(col, justify="right" if col in ("rel L2", "max abs") else "left")
    for d in report.worst:
        table.add_row(d.value, d.op, d.module, f"{d.rel_l2:.3g}", f"{d.max_abs:.3g}")
    console.print(table)
    if json_path:
        import json

        from edgevit.base.atomic import write_text_atomic

        write_text_atomic(Path(json_path), json.dumps(report.to_json(), indent=2) + "\n")
    return 3 if report.first is not None else 0
