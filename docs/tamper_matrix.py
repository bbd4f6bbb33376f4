"""Run the tamper matrix (tests/support/tamper_matrix.py) on models and print it as Markdown, with a JSON of rows.

    PYTHONPATH=.:tests .venv/bin/python docs/tamper_matrix.py swiftformer-l1 fastvit-t8 deit-t \
        --json reports/tamper.json

Every artifact kind edgevit writes is converted once per model; a clean copy and each tamper are judged by
edgevit's parity verdict. --kinds picks a subset by label (e.g. "coreml fp16" ".onnx int8").
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from dataclasses import asdict
from pathlib import Path

from support.tamper_matrix import KINDS, markdown, run_matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+")
    parser.add_argument("--kinds", nargs="+", help="artifact kinds by label (default: all)")
    parser.add_argument("--json", help="write every row here")
    parser.add_argument("--keep", help="convert into this folder and reuse what an earlier run converted there")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
    kinds = [k for k in KINDS if not args.kinds or k.name in args.kinds]
    rows = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgevit-tamper-") as tmp:
        for model in args.models:
            rows += run_matrix(model, kinds, Path(args.keep or tmp) / model)
    print(markdown(rows))
    wrong = [r for r in rows if r.status != "n/a" and not r.correct]
    print(f"\n{len(rows)} cases, {len(wrong)} wrong, {time.perf_counter() - start:.0f} s")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([asdict(r) for r in rows], indent=1, default=str))


if __name__ == "__main__":
    main()
