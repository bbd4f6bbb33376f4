"""Quantized artifacts of the seed models, each judged by edgevit's verdict: the README's quantization table.

    PYTHONPATH=$PWD python docs/seed_quantization.py fastvit-t8 swiftformer-l1 --out /tmp/sq --jsonl /tmp/sq/rows.jsonl

For each model: the int8 ``.pte`` and the int8 ``.onnx`` as ``edgevit convert`` writes them, validated (fidelity and
precision cost on logits); when one misses ``--goal`` dB on the photos, the same target again with
``--keep-float auto`` (the sensitivity scan). ``--coreml w8 w4 palette6 w8a8`` adds compressed packages (validated
through edgevit's MIL interpreter, never the CoreML runtime). Every figure comes from the artifact's manifest. Rows
are appended to ``--jsonl`` as they finish and a row already there is not converted again, so an interrupted run
resumes. Weights are edgevit's "exercised" random init unless ``--weights`` (one model) is given; the input share
(how much of the logits depends on the input) is printed beside every row. Latency is not measured here: run
``edgevit bench`` on the artifacts in ``--out``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DEFAULT_GOAL = 35.0  # edgevit's --keep-float auto goal without --min-psnr


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


def measure(model: str, out: Path, goal: float, coreml: list[str], weights: str | None, done: set,
            write) -> None:
    from edgevit.api import convert

    def one(form: str, target: str, **options) -> dict | None:
        if (model, form) in done:
            return None
        start = time.perf_counter()
        result = convert(model, target, out / model / form, weights=weights, mil_report=False, **options)
        row = _row(model, form, result, time.perf_counter() - start)
        write(row)
        return row

    for target in ("executorch", "onnx"):
        row = one(f"{target}-int8", target, quantize="int8")
        if row is None:
            row = next((r for r in done.get_rows(model) if r["form"] == f"{target}-int8"), None)
        if row and row["cost_db"] is not None and row["cost_db"] < goal:
            goal_option = {} if goal == DEFAULT_GOAL else {"min_psnr": goal}  # --min-psnr is the floor as well
            one(f"{target}-int8-keep-float-auto", target, quantize="int8", keep_float="auto", scan_budget=5000,
                **goal_option)
    for scheme in coreml:
        one(f"coreml-{scheme}", "coreml", compress=scheme)


class Done(set):
    """(model, form) pairs already in the rows file, and the rows."""

    def __init__(self, rows: list[dict]):
        super().__init__((r["model"], r["form"]) for r in rows)
        self.rows = rows

    def get_rows(self, model: str) -> list[dict]:
        return [r for r in self.rows if r["model"] == model]


def table(rows: list[dict]) -> str:
    lines = ["| model | form | size MB | logits PSNR (photos) | top-1 | centered top-1 | input share | float layers | "
             "verdict | fidelity (error / bound) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        kept = f"{r['float_layers']}/{r['quantized_layers']}" if r["quantized_layers"] else "0"
        fid = (f"{r['fidelity_error']:.2g} / {r['fidelity_bound']:.2g}" if r["fidelity_error"] is not None
               and r["fidelity_bound"] else "-")
        verdict = r["verdict"] + (f" ({r['failed_part']})" if r["failed_part"] else "")
        lines.append(f"| {r['model']} | {r['form']} | {r['bytes'] / 1e6:.1f} | {r['cost_db']:.1f} dB | "
                     f"{r['top1']:.0%} | {r['centered_top1']:.0%} | {r['input_share']:.2f} | {kept} | {verdict} | "
                     f"{fid} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--jsonl", type=Path, required=True, help="rows, appended as they finish (resumable)")
    parser.add_argument("--goal", type=float, default=DEFAULT_GOAL, help="logits PSNR on the photos below which the "
                        "target is converted again with --keep-float auto (default 35 dB)")
    parser.add_argument("--coreml", nargs="*", default=[], choices=["w8", "w4", "palette6", "palette4", "w8a8"])
    parser.add_argument("--weights", help="a local checkpoint (one model only)")
    parser.add_argument("--table-only", action="store_true", help="print the table of --jsonl and stop")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.jsonl.read_text().splitlines()] if args.jsonl.exists() else []
    if not args.table_only:
        done = Done(rows)
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)

        def write(row: dict) -> None:
            rows.append(row)
            with args.jsonl.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)

        for model in args.models:
            measure(model, args.out, args.goal, args.coreml, args.weights, done, write)
    print(table([r for r in rows if r["model"] in args.models]))


if __name__ == "__main__":
    main()
