"""The work of one sweep cell, as plain functions an engine runs anywhere (this process or a Ray worker).

``convert_task`` converts and validates one cell with ``edgevit.api.convert`` straight into its cache entry (the
API's publish transaction puts it there) and records the entry; ``bench_task`` times a published artifact with
``edgevit.api.bench``. Both take and return plain JSON-able values, so nothing but paths and small dicts moves
between the driver and the workers. ``cell_key`` is computed by the driver, so cached cells never reach an engine.
"""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

from edgevit.studies.sweep.plan import Cell


def cell_key(cell: Cell, *, seed: int = 0, init: str = "exercised") -> tuple[str, dict]:
    """(key, key inputs) of a cell's artifact: everything that determines it (edgevit.export.cache)."""
    from edgevit.base.arguments import DEFAULT_DEPLOYMENT_TARGET, IOS18_COMPRESS
    from edgevit.base.digest import sha256_of
    from edgevit.export.cache import artifact_key, artifact_key_inputs, files_digest
    from edgevit.models.registry import get_spec

    spec = get_spec(cell.model)
    calibration = None
    if cell.variant == "int8":
        from edgevit.validate.inputs import sample_photo_paths

        calibration = files_digest(sample_photo_paths())
    deployment = "iOS18" if cell.variant in IOS18_COMPRESS else DEFAULT_DEPLOYMENT_TARGET
    inputs = artifact_key_inputs(
        spec, target=cell.target, backend=cell.backend, precision=cell.precision,
        compute_precision=cell.compute_precision, options={},
        weights_sha256=sha256_of(Path(cell.weights)) if cell.weights else None, init=init, seed=seed,
        calibration_sha256=calibration, deployment_target=deployment if _uses_coreml(cell) else "n/a",
        min_psnr=None)
    return artifact_key(inputs), inputs


def _uses_coreml(cell: Cell) -> bool:
    return cell.target == "coreml" or cell.backend == "coreml"


class _PeakRss:
    """Peak resident memory of this process while a task runs (sampled every 50 ms), in MiB."""

    def __enter__(self):
        import psutil

        self._proc, self._stop = psutil.Process(), threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mib(self) -> float:
        return round(self.peak / 2**20, 1)


def _quiet() -> None:
    os.environ.setdefault("TQDM_DISABLE", "1")
    warnings.filterwarnings("ignore")
    import logging

    for name in ("coremltools", "torch.utils._pytree", "torch._export", "torch.export"):
        logging.getLogger(name).setLevel(logging.ERROR)


def convert_task(cell: dict, key: str, key_inputs: dict, cache_root: str, seed: int = 0) -> dict:
    """Convert + validate one cell into its cache entry; returns what the sweep row records.

    Raises whatever the conversion raises (the engine records it as this attempt's reason).
    """
    _quiet()
    from edgevit.api import convert
    from edgevit.base.native_output import native_stderr_to_log
    from edgevit.export.cache import ArtifactCache

    c = Cell(**{k: cell[k] for k in ("model", "target", "variant", "weights")})
    cache = ArtifactCache(cache_root)
    start = time.perf_counter()
    with _PeakRss() as rss, native_stderr_to_log():
        result = convert(c.model, c.target, cache.entry_dir(key), weights=c.weights, mil_report=False, seed=seed,
                         **c.convert_kwargs())
    art = result.artifacts[0]
    cache.record(key, key_inputs, art.path)
    return {"artifact": art.path.name, "parity": art.parity.to_json() if art.parity is not None else None,
            "convert_s": round(time.perf_counter() - start, 2), "peak_rss_mb": rss.mib, **_where()}


def bench_task(artifact: str, iterations: int, warmup: int) -> dict:
    """Time one published artifact on this host (results-schema records) with edgevit.api.bench."""
    _quiet()
    from edgevit.api import bench
    from edgevit.bench.plan import Plan

    doc = bench([artifact], plan=Plan(warmup=warmup, iterations=iterations))
    return {"results": doc["results"], "peak": doc["peak"], **_where()}


def _where() -> dict:
    """The host, process and (on Ray) node a task ran on."""
    node = None
    import sys

    if "ray" in sys.modules:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    return {"host": os.uname().nodename, "pid": os.getpid(), "node": node}
