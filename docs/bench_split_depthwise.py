"""FastViT .pte (XNNPACK) before vs after the depthwise split, vs onnxruntime: interleaved host timing.

    PYTHONPATH=$PWD OMP_NUM_THREADS=1 .venv/bin/python docs/bench_split_depthwise.py --threads 1 2

Three forms of one prepared model (random weights: timing does not depend on their values): the XNNPACK .pte
of ``Converter.prepare``'s module, the .pte after ``converters.backends.for_backend(.., "xnnpack")`` (large
depthwise convs split into 5x5 pieces), and the ONNX model in onnxruntime's CPU provider. Each .pte is timed
against onnxruntime by the fair protocol (edgevit.bench.fair: blocks alternated in random order, the first of each
dropped, the other runtime quiet; the ratio of block medians with a 95% bootstrap interval). Threads: ExecuTorch's
threadpool is made fresh at n before each comparison loads; onnxruntime gets intra_op_num_threads=n.
``--profile`` adds where the time goes: XNNPACK's per-op events (ETDump) by operator kind for both .pte, and
onnxruntime's node profile by kind (both add per-op overhead, so their totals exceed the timed medians).

Measured 2026-12-02 with the earlier single-iteration rotation (this command, --iters 60 --profile;
x86 host of 2 cores shared with other jobs, load
average ~2): FastViT-T8 at 256, 1 thread, median ms: .pte 21.48, .pte split 9.12, onnxruntime 9.21 (split
.pte / onnxruntime 0.99 as a ratio of medians, 0.989 paired). 2 threads were contended on that host (both
runtimes slower than at 1 thread): 35.8 / 17.4 / 17.2 ms, not a measure of scaling. Split .pte by XNNPACK op,
1 thread: 1x1 convs (Fully Connected GEMM) 5.3 ms, depthwise 1.8, GELU 0.5, stem 3x3 conv (IGEMM) 0.35,
adds 0.29; before the split the 7x7 depthwise convs ran as IGEMM, 14.5 ms.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
from pathlib import Path

import timm
import torch

from converters import get_converter
from converters.backends import backend_copy
from edgevit.bench.fair import Protocol
from edgevit.bench.host import fair_against
from edgevit.export.executorch import export_executorch
from edgevit.export.onnx import export_onnx


def _forms(model_name: str, folder: Path) -> tuple[dict[str, Path], torch.Tensor, dict]:
    model = timm.create_model(model_name, pretrained=False).eval()
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    example = torch.randn(1, *size, generator=torch.Generator().manual_seed(0))
    prepared = get_converter("fastvit").prepare(model).module
    split, applied = backend_copy(prepared, "xnnpack")
    modules = {"pte": prepared, "pte-split": split}
    paths, info = {}, {"input": list(example.shape), "rewrites": applied, "delegation": {}}
    for name, module in modules.items():
        paths[name] = folder / f"{name}.pte"
        info["delegation"][name] = export_executorch(module, example, paths[name])["delegation"]
    paths["onnx"] = folder / "model.onnx"
    export_onnx(prepared, example, paths["onnx"])
    with torch.no_grad():
        info["reference"] = prepared(example)
    return paths, example, info


def _xnnpack_profile(pte: Path, example: torch.Tensor, runs: int) -> dict[str, float]:
    """ms per run by XNNPACK operator kind, from XNNPACK's own per-op events in an ETDump (first run dropped)."""
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    module = _load_for_executorch(str(pte), enable_etdump=True)
    for _ in range(runs + 1):
        module.forward((example,))
    etdump = pte.with_suffix(".etdp")
    module.write_etdump_result_to_file(str(etdump))
    kinds: dict[str, float] = {}
    for block in Inspector(etdump_path=str(etdump)).event_blocks:
        for event in block.events:
            raw = event.perf_data.raw if event.perf_data is not None else []
            if len(raw) == runs + 1:
                kind = re.sub(r" #\d+$", "", event.name)
                kinds[kind] = kinds.get(kind, 0.0) + statistics.median(raw[1:])
    return {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}


def _ort_profile(onnx: Path, example: torch.Tensor, threads: int, runs: int, folder: Path) -> dict[str, float]:
    """ms per run by onnxruntime node kind (Conv split by weight shape: 1x1, kxk depthwise, kxk dense)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.enable_profiling, opts.profile_file_prefix = True, str(folder / "ort")
    session = ort.InferenceSession(str(onnx), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    for _ in range(runs + 1):
        session.run(None, {name: example.numpy()})
    events = json.loads(Path(session.end_profiling()).read_text())
    kinds: dict[str, float] = {}
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        kind = e["args"]["op_name"]
        shapes = [next(iter(d.values())) for d in e["args"].get("input_type_shape", [])]
        if kind == "Conv" and len(shapes) > 1:
            w = shapes[1]
            kind = f"Conv {w[2]}x{w[3]} " + ("depthwise" if w[1] == 1 else "dense")
        kinds[kind] = kinds.get(kind, 0.0) + e["dur"] / 1e3 / (runs + 1)
    return {k: round(v, 3) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}


def _outputs(paths: dict[str, Path], example: torch.Tensor, threads: int) -> dict[str, torch.Tensor]:
    """Each form's output on ``example`` (for parity), each runtime loaded and released in turn."""
    from edgevit.validate.runtimes import open_runner

    outputs = {}
    for name, path in paths.items():
        target = "executorch" if path.suffix == ".pte" else "onnx"
        runner = open_runner(path, {"target": target, "backend": "xnnpack" if target == "executorch" else None},
                             threads=threads)
        outputs[name] = torch.from_numpy(runner.run(example))
        del runner
    return outputs


def _summary(ms: list[float]) -> dict[str, float]:
    q = statistics.quantiles(ms, n=10)
    return {"median_ms": round(statistics.median(ms), 2), "p10_ms": round(q[0], 2), "p90_ms": round(q[-1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fastvit_t8")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iters", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        paths, example, info = _forms(args.model, Path(tmp))
        reference = info.pop("reference")
        report = {"model": args.model, **info, "parity_rel_l2": {}, "threads": {}}
        for threads in args.threads:
            if not report["parity_rel_l2"]:
                for name, out in _outputs(paths, example, threads).items():
                    report["parity_rel_l2"][name] = float((out - reference).norm() / reference.norm())
            artifacts = {name: (paths[name], {"target": "executorch", "backend": "xnnpack"})
                         for name in ("pte", "pte-split")}
            protocol = Protocol.for_iterations(args.iters, warmup=args.warmup)
            fair = fair_against((paths["onnx"], {"target": "onnx", "backend": None}), artifacts, example, protocol,
                                threads=threads)
            stats = {name: _summary(c.a_samples) | {"fair_vs_onnxruntime": c.to_json("onnx")}
                     for name, c in fair.items()}
            stats["onnx"] = _summary([ms for c in fair.values() for ms in c.b_samples])
            report["threads"][str(threads)] = stats
            if args.profile:
                stats["profile_ms"] = {name: _xnnpack_profile(paths[name], example, 5) for name in ("pte", "pte-split")}
                stats["profile_ms"]["onnx"] = _ort_profile(paths["onnx"], example, threads, 5, Path(tmp))
    text = json.dumps(report, indent=1)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
