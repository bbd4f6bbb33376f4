"""CoreML compression on the seed models: size ratio, logits PSNR and top-1 agreement through the MIL interpreter.

    PYTHONPATH=$PWD python docs/coreml_compression.py swiftformer-xs --schemes w8 w8a8 --out /tmp/cmp

For each model: the fp16 package and one package per scheme, all with a tensor input (``--tensor-input``) so
the program's output is the logits; each runs through edgevit's MIL reference interpreter (``mil-reference``,
never the CoreML runtime) on the validation photos (whole, left and right halves), and is compared with the
fp32 PyTorch original on the same tensors. Weights are edgevit's "exercised" random init unless ``--weights``
is given, so inputs matter (the input-dependent share of the reference logits is printed beside every row).
Rows go to stdout as a Markdown table and, with ``--json``, to a file.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

SCHEMES = ("w8", "w4", "palette6", "palette4", "w8a8")


def psnr(reference: np.ndarray, actual: np.ndarray) -> float:
    """20*log10(max|ref| / RMSE), the same definition as edgevit's parity metrics."""
    ref, act = np.asarray(reference, np.float64), np.asarray(actual, np.float64)
    rmse = math.sqrt(float(np.mean((act - ref) ** 2)))
    peak = float(np.max(np.abs(ref)))
    return math.inf if rmse == 0 else 20 * math.log10(peak / rmse)


def centered(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, np.float64)
    return values - values.mean(axis=0, keepdims=True)


def input_share(reference: np.ndarray) -> float:
    """||logits - mean over inputs|| / ||logits||: how much of the logits depends on the input."""
    return float(np.linalg.norm(centered(reference)) / np.linalg.norm(reference))


def quality(reference: np.ndarray, actual: np.ndarray) -> dict:
    return {"psnr_db": psnr(reference, actual), "centered_psnr_db": psnr(centered(reference), centered(actual)),
            "top1": float(np.mean(reference.argmax(1) == actual.argmax(1))),
            "centered_top1": float(np.mean(centered(reference).argmax(1) == centered(actual).argmax(1)))}


def package_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def mil_logits(package: Path, tensors: list[torch.Tensor]) -> np.ndarray:
    from edgevit.mil import MilModel

    model = MilModel(str(package))
    name = model.input_names[0]
    outs = [next(iter(model.predict({name: t.numpy()}).values())) for t in tensors]
    return np.concatenate([np.asarray(o, np.float32).reshape(1, -1) for o in outs])


def measure(model: str, schemes: list[str], out: Path, weights: str | None) -> list[dict]:
    from edgevit.api import convert
    from edgevit.models.build import build_model
    from edgevit.models.registry import get_spec
    from edgevit.validate.inputs import photo_inputs

    spec = get_spec(model)
    original, winfo = build_model(spec, {}, Path(weights) if weights else None, "exercised", 0)
    tensors = [item.tensor for item in photo_inputs(spec)]
    with torch.no_grad():
        reference = torch.cat([original(t) for t in tensors]).numpy()
    rows = []
    fp16_size = None
    for scheme in ["fp16", *schemes]:
        folder = out / model / scheme
        start = time.perf_counter()
        result = convert(model, "coreml", folder, weights=weights, tensor_input=True, validate=False,
                         mil_report=False, compress=None if scheme == "fp16" else scheme)
        seconds = time.perf_counter() - start
        package = result.artifacts[0].path
        size = package_bytes(package)
        fp16_size = fp16_size or size
        logits = mil_logits(package, tensors)
        rows.append({"model": model, "scheme": scheme, "bytes": size, "size_vs_fp16": size / fp16_size,
                     "convert_s": seconds, "inputs": len(tensors), "input_share": input_share(reference),
                     "weights": winfo.describe(), **quality(reference, logits)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| model | scheme | size MB | size / fp16 | logits PSNR dB | centered PSNR dB | top-1 agr. | "
             "centered top-1 | input share |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['scheme']} | {r['bytes'] / 1e6:.1f} | {r['size_vs_fp16']:.2f} | "
                     f"{r['psnr_db']:.1f} | {r['centered_psnr_db']:.1f} | {r['top1']:.0%} | "
                     f"{r['centered_top1']:.0%} | {r['input_share']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--schemes", nargs="+", default=list(SCHEMES), choices=SCHEMES)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--weights", help="a local checkpoint (one model only)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = [row for model in args.models for row in measure(model, args.schemes, args.out, args.weights)]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
