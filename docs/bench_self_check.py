"""Is the fair comparison protocol unbiased on this host right now? One model's .pte timed against itself.

    PYTHONPATH=$PWD .venv/bin/python docs/bench_self_check.py swiftformer-l1 --threads 1 2 --iters 40

The prepared model is exported once to an XNNPACK .pte; per thread count, ExecuTorch's pool is made fresh and
one loaded method is timed as both "A" and "B" by edgevit.bench.fair (blocks alternated in random order, the
first of each dropped). The true ratio is exactly 1, so the 95% interval should contain 1.00; an interval that
does not, run after run, means the host or the protocol is biased, and no .pte/.onnx ratio from it can be trusted.
Also times the .pte against a copy slowed by a measured sleep of its own median time (true ratio about 2).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from converters import get_converter
from converters.backends import backend_copy
from edgevit.bench.fair import Contender, Protocol, compare
from edgevit.export.executorch import export_executorch
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec
from edgevit.validate.runtimes import open_runner
from edgevit.validate.threads import reset_executorch_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iters", type=int, default=40, help="timed iterations per form (at least 18)")
    args = parser.parse_args()
    spec = get_spec(args.model)
    original, _ = build_model(spec)
    prepared = backend_copy(get_converter(spec.converter).prepare(original).module, "xnnpack")[0]
    example = torch.randn(1, *spec.input_size)
    protocol = Protocol.for_iterations(args.iters)
    with tempfile.TemporaryDirectory() as tmp:
        pte = Path(tmp) / f"{spec.name}.executorch.xnnpack.fp32.pte"
        export_executorch(prepared, example, pte)
        for threads in args.threads:
            reset_executorch_threads(threads)
            runner = open_runner(pte, {"target": "executorch", "backend": "xnnpack"}, threads=threads)
            c = compare(Contender("A", lambda r=runner: r.run(example)),
                        Contender("B", lambda r=runner: r.run(example)), protocol)
            low, high = c.interval
            print(f"{spec.name} .pte vs itself, {threads} thread(s), {protocol.rounds} rounds of {protocol.block}: "
                  f"ratio {c.ratio:.3f} [{low:.3f}, {high:.3f}] (95%), median {statistics.median(c.a_samples):.2f} ms"
                  f" - {'contains' if low <= 1 <= high else 'MISSES'} 1.00")
            sleep_s = statistics.median(c.a_samples) / 1e3
            slept: list[float] = []

            def slowed(r=runner, s=sleep_s, log=slept) -> None:
                r.run(example)
                start = time.perf_counter()
                time.sleep(s)
                log.append((time.perf_counter() - start) * 1e3)

            c = compare(Contender("A", lambda r=runner: r.run(example)), Contender("slowed", slowed), protocol)
            truth = 1 + statistics.median(slept) / statistics.median(c.a_block_medians)
            low, high = c.interval
            print(f"{spec.name} .pte vs a copy slowed by a measured {statistics.median(slept):.2f} ms sleep, "
                  f"{threads} thread(s): ratio {c.ratio:.3f} [{low:.3f}, {high:.3f}], true {truth:.3f} - "
                  f"{'contains' if low <= truth <= high else 'MISSES'} the truth")
            del runner


if __name__ == "__main__":
    main()
