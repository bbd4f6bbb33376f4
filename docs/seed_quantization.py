"""Quantized artifacts of the seed models, each judged by edgevit's verdict: the README's quantization table.

    PYTHONPATH=$PWD python docs/seed_quantization.py fastvit-t8 swiftformer-l1 --out /tmp/sq --speedup \
        --jsonl /tmp/sq/rows.jsonl

For each model: the int8 ``.pte`` and the int8 ``.onnx`` as ``edgevit convert`` writes them, validated (fidelity and
precision cost on logits); when one misses ``--goal`` dB on the photos, the same target again with ``--keep-float auto``
(the sensitivity scan; a CoreML W8A8 package too). ``--coreml fp16 w8 w4 palette6 w8a8`` adds the fp16 package and
compressed ones (validated through edgevit's MIL interpreter, never the CoreML runtime). Every figure comes from the
artifact's manifest. Rows are appended to ``--jsonl`` as they finish and a row already there is not converted again, so
an interrupted run resumes. Weights are edgevit's "exercised" random init unless ``--weights`` (one model) is given; the
input share (how much of the logits depends on the input) is recorded with every row. ``--speedup`` also converts each
model's fp32 artifact of the same target (unvalidated: it is only timed) and times it against each int8 row, one thread
(``--speedup 1,2``: also two) by edgevit's fair protocol in one process (docs/interleaved_speedup.py): the ratio of
block medians with its 95% interval; the CPU and its int8 flags are recorded beside. With ``--speedup``, each
model's int8 ``.pte`` is also timed against its int8 ``.onnx`` the same way (a third table).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_GOAL = 35.0  # edgevit's --keep-float auto goal without --min-psnr
ROUNDS = 10  # of the fair protocol (docs/interleaved_speedup.py): 10 rounds of one 5-call block per form


def _row(model: str, form: str, result, seconds: float) -> dict:
    from edgevit.base.naming import manifest_path

    art = result.artifacts[0]
    manifest = json.loads(manifest_path(art.path).read_text())
    parity, quant = manifest["parity"], manifest.get("quantization") or {}
    cost, fidelity = parity.get("cost") or {}, parity.get("fidelity") or {}
    mixed = quant.get("mixed_precision") or {}
    size = sum(p.stat().st_size for p in art.path.rglob("*") if p.is_file()) if art.path.is_dir() \
        else art.path.stat().st_size
    return {"model": model, "form": form, "artifact": art.path.name, "bytes": size, "convert_s": round(seconds, 1),
            "verdict": parity["status"], "failed_part": parity.get("failed_part"),
            "fidelity_error": fidelity.get("error"), "fidelity_bound": fidelity.get("bound"),
            "cost_db": (cost.get("photos") or {}).get("psnr_db"), "floor_db": cost.get("floor_db"),
            "top1": (cost.get("photos") or {}).get("top1_agreement"),
            "centered_top1": (cost.get("centered") or {}).get("top1_agreement"),
            "input_share": cost.get("input_share"),
            "float_layers": len(mixed.get("keep_float") or []) if mixed else 0,
            "quantized_layers": mixed.get("quantized_layers"), "weights": manifest["weights"].get("source")}


def measure(model: str, out: Path, goal: float, coreml: list[str], weights: str | None, rows: list[dict],
            write, speedup: list[int]) -> None:
    """Convert (or find in ``rows``) each form of ``model``; ``write`` gets every new or newly timed row."""
    from edgevit.api import convert

    def one(form: str, target: str, **options) -> dict:
        row = next((r for r in rows if r["model"] == model and r["form"] == form), None)
        if row is None:
            start = time.perf_counter()
            result = convert(model, target, out / model / form, weights=weights, mil_report=False, **options)
            row = _row(model, form, result, time.perf_counter() - start)
            rows.append(row)
            write(row)
        for threads in speedup:
            key = "speedup_ci" if threads == 1 else f"speedup_ci_{threads}t"  # timed by the fair protocol
            if key not in row and target != "coreml":
                row.update(_time_against_fp32(model, target, out, weights, out / model / form / row["artifact"],
                                              threads))
                write(row)
        return row

    for target in ("executorch", "onnx"):
        row = one(f"{target}-int8", target, quantize="int8")
        if row["cost_db"] is not None and row["cost_db"] < goal:
            goal_option = {} if goal == DEFAULT_GOAL else {"min_psnr": goal}  # --min-psnr is the floor as well
            one(f"{target}-int8-keep-float-auto", target, quantize="int8", keep_float="auto", scan_budget=5000,
                **goal_option)
    pte, onnx = (next((r for r in rows if r["model"] == model and r["form"] == f), None)
                 for f in ("executorch-int8", "onnx-int8"))
    for threads in speedup if pte and onnx else []:  # the int8 .pte against onnxruntime's int8, head to head
        suffix = "" if threads == 1 else f"_{threads}t"
        if f"vs_onnx_ci{suffix}" not in pte:
            timing = interleaved_timing(out / model / "onnx-int8" / onnx["artifact"],
                                        out / model / "executorch-int8" / pte["artifact"], threads)
            pte.update({f"vs_onnx{suffix}": round(timing["speedup"], 3), f"vs_onnx_ci{suffix}": timing["ci"],
                        f"onnx_int8_ms{suffix}": round(timing["baseline_ms"], 2),
                        f"pte_int8_ms{suffix}": round(timing["candidate_ms"], 2)})
            write(pte)
    for scheme in coreml:  # fp16: the uncompressed package, the baseline of the size ratios
        row = one(f"coreml-{scheme}", "coreml", **({} if scheme == "fp16" else {"compress": scheme}))
        if scheme == "w8a8" and row["cost_db"] is not None and row["cost_db"] < goal:
            goal_option = {} if goal == DEFAULT_GOAL else {"min_psnr": goal}
            one("coreml-w8a8-keep-float-auto", "coreml", compress="w8a8", keep_float="auto", scan_budget=5000,
                **goal_option)


def interleaved_timing(baseline: Path, candidate: Path, threads: int) -> dict:
    """docs/interleaved_speedup.py's fair-protocol timing (ratio above 1: ``candidate`` faster)."""
    import sys

    here = str(Path(__file__).parent)
    if here not in sys.path:  # called once per timed pair
        sys.path.insert(0, here)
    from interleaved_speedup import interleaved

    return interleaved(baseline, candidate, threads=threads, rounds=ROUNDS)


def _time_against_fp32(model: str, target: str, out: Path, weights: str | None, artifact: Path,
                       threads: int = 1) -> dict:
    """The fp32 artifact of the same target (converted once, not validated) against ``artifact``, interleaved."""
    from edgevit.api import convert

    folder = out / model / f"{target}-fp32"
    found = sorted(p for p in folder.glob(f"{model}.*fp32*") if p.suffix in (".pte", ".onnx")) if folder.exists() \
        else []
    if not found:
        found = [convert(model, target, folder, weights=weights, validate=False, mil_report=False).artifacts[0].path]
    timing = interleaved_timing(found[0], artifact, threads)
    suffix = "" if threads == 1 else f"_{threads}t"
    return {f"fp32_ms{suffix}": round(timing["baseline_ms"], 2), f"int8_ms{suffix}": round(timing["candidate_ms"], 2),
            f"speedup{suffix}": round(timing["speedup"], 3), f"speedup_ci{suffix}": timing["ci"],
            f"timing{suffix}": {"threads": threads, "rounds": ROUNDS, "block": timing["block"],
                                "protocol": timing["protocol"], "cpu": timing["cpu"]}}


FORM_LABELS = {"executorch-int8": ".pte int8", "executorch-int8-keep-float-auto": ".pte int8, --keep-float auto",
               "onnx-int8": ".onnx int8", "onnx-int8-keep-float-auto": ".onnx int8, --keep-float auto"}


def table(rows: list[dict], models: list[str]) -> str:
    """The README's table: ``models`` in the given order, each form's row."""
    lines = ["| model | artifact | size MB | logits PSNR (photos) | top-1 | centered top-1 | float layers | verdict | "
             "fidelity | fp32 → int8, 1 thread | speed-up | speed-up, 2 threads |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for model in models:
        order = list(FORM_LABELS)
        for r in sorted((r for r in rows if r["model"] == model),
                        key=lambda r: order.index(r["form"]) if r["form"] in order else len(order)):
            kept = f"{r['float_layers']} of {r['quantized_layers']}" if r["quantized_layers"] else "–"
            verdict = r["verdict"] + (f" ({r['failed_part']})" if r["failed_part"] else "")
            fid = f"{r['fidelity_error'] / r['fidelity_bound']:.2g}×" if r["fidelity_bound"] else "–"
            timed = f"{r['fp32_ms']:.1f} → {r['int8_ms']:.1f} ms" if r.get("int8_ms") else "not measured"
            speed, speed2 = _speedup(r, ""), _speedup(r, "_2t")
            lines.append(f"| {model} | {FORM_LABELS.get(r['form'], r['form'])} | {r['bytes'] / 1e6:.1f} | "
                         f"{r['cost_db']:.1f} dB | {r['top1']:.0%} | {r['centered_top1']:.0%} | {kept} | {verdict} | "
                         f"{fid} | {timed} | {speed} | {speed2} |")
    return "\n".join(lines)


def head_to_head_table(rows: list[dict], models: list[str]) -> str:
    """The int8 ``.pte`` against the int8 ``.onnx`` of each model: onnxruntime's ms / the ``.pte``'s (above 1: the
    ``.pte`` is faster) with its interval, at 1 and 2 threads."""
    lines = ["| model | .pte int8 vs .onnx int8, 1 thread | 2 threads |", "|---|---|---|"]
    for model in models:
        r = next((r for r in rows if r["model"] == model and r["form"] == "executorch-int8"), None)
        if r is None or "vs_onnx" not in r:
            continue
        cells = []
        for suffix in ("", "_2t"):
            ci = r.get(f"vs_onnx_ci{suffix}")
            cells.append("not measured" if ci is None else
                         f"{r[f'vs_onnx{suffix}']:.2f}× ({ci[0]:.2f}–{ci[1]:.2f}); {r[f'pte_int8_ms{suffix}']:.1f} vs "
                         f"{r[f'onnx_int8_ms{suffix}']:.1f} ms")
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _speedup(row: dict, suffix: str) -> str:
    """``1.62× (1.58–1.66)``: the fair ratio and its 95% interval; "not measured" when the row has none."""
    ratio, ci = row.get(f"speedup{suffix}"), row.get(f"speedup_ci{suffix}")
    if ratio is None or ci is None:
        return "not measured"
    return f"{ratio:.2f}× ({ci[0]:.2f}–{ci[1]:.2f})"


COREML_FORMS = ["coreml-w8", "coreml-w4", "coreml-palette6", "coreml-palette4", "coreml-w8a8",
                "coreml-w8a8-keep-float-auto"]


def coreml_table(rows: list[dict], models: list[str]) -> str:
    """The README's CoreML table: per model, each compressed package's size against the fp16 package, logits PSNR
    on the photos, top-1 agreement and verdict (a fail names its part)."""
    heads = ["w8", "w4", "palette6", "palette4", "w8a8", "w8a8, --keep-float auto"]
    lines = ["| model | fp16 MB | " + " | ".join(heads) + " |", "|---|---|" + "---|" * len(heads)]
    for model in models:
        found = {r["form"]: r for r in rows if r["model"] == model}
        base = found.get("coreml-fp16")
        if base is None or not any(f in found for f in COREML_FORMS):
            continue
        cells = []
        for form in COREML_FORMS:
            r = found.get(form)
            if r is None:
                cells.append("–")
                continue
            verdict = r["verdict"] if not r["failed_part"] else f"{r['verdict']} ({r['failed_part']})"
            kept = f", {r['float_layers']} of {r['quantized_layers']} float" if r.get("quantized_layers") else ""
            cells.append(f"{r['bytes'] / base['bytes']:.2f}× · {r['cost_db']:.1f} dB · {r['top1']:.0%}{kept} · "
                         f"{verdict}")
        lines.append(f"| {model} | {base['bytes'] / 1e6:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jsonl", type=Path, required=True, help="rows, rewritten as they finish (resumable)")
    parser.add_argument("--goal", type=float, default=DEFAULT_GOAL, help="logits PSNR on the photos below which the "
                        "target is converted again with --keep-float auto (default 35 dB)")
    parser.add_argument("--coreml", nargs="*", default=[], choices=["fp16", "w8", "w4", "palette6", "palette4", "w8a8"],
                        help="CoreML packages to add: fp16 (uncompressed, the size baseline) and --compress schemes")
    parser.add_argument("--weights", help="a local checkpoint (one model only)")
    parser.add_argument("--speedup", nargs="?", const="1", default="", metavar="THREADS",
                        help="time each int8 row against its fp32 twin, at 1 thread or at each of a comma-separated "
                        "list (--speedup 1,2)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --jsonl and stop")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.jsonl.read_text().splitlines()] if args.jsonl.exists() else []
    if not args.table_only:
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)

        def write(row: dict) -> None:  # the whole file again: a timed row replaces its untimed self
            args.jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
            print(json.dumps(row), flush=True)

        for model in args.models:
            measure(model, args.out, args.goal, args.coreml, args.weights, rows, write,
                    [int(t) for t in args.speedup.split(",") if t])
    print(table([r for r in rows if not r["form"].startswith("coreml")], args.models))
    if any("vs_onnx" in r for r in rows):
        print()
        print(head_to_head_table(rows, args.models))
    if any(r["form"].startswith("coreml") for r in rows):
        print()
        print(coreml_table(rows, args.models))


if __name__ == "__main__":
    main()
