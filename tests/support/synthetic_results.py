"""TEST FIXTURE: large schema-conformant results documents, for the report's scaling tests and measurements.

Every number here is made up (seeded random latencies), NOT a measurement. The mix is what a big sweep produces:
many models (a few of them registered, so they have a published top-1 and are plotted), every form, three batch
sizes, a handful of devices, 30 samples per result.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

FORMS = (("original-eager", "pytorch", "eager-cpu"), ("prepared-eager", "pytorch", "eager-cpu"),
         ("executorch", "executorch", "xnnpack"), ("onnx", "onnxruntime", "cpu-execution-provider"),
         ("coreml", "coreml", None))
REGISTERED = ("swiftformer-xs", "swiftformer-s", "swiftformer-l1", "fastvit-t8", "fastvit-sa12", "deit-t")
TOOLS = {"python": "3.11.7", "edgevit": "0.1.0", "torch": "2.14.1", "timm": "1.0.31", "executorch": "1.5.1",
         "coremltools": "9.0", "onnx": "1.23.2", "onnxruntime": "1.31.1", "numpy": "2.4.6"}


def synthetic_result(rng: random.Random, i: int, n_models: int, n_devices: int) -> dict[str, Any]:
    model = REGISTERED[i % len(REGISTERED)] if i % 3 == 0 else f"synthetic-net-{i % n_models}"
    form, runtime, backend = FORMS[i % len(FORMS)]
    batch = (1, 8, 32)[(i // len(FORMS)) % 3]
    d = i % n_devices
    device = {"kind": "host" if d % 2 == 0 else "android", "name": f"device-{d}", "os": "TestOS 1.0",
              "cpu": f"Test CPU {d}"}
    status = "ok" if i % 17 else ("not_run" if i % 2 else "failed")
    samples = [round(rng.uniform(5, 50) * batch, 4) for _ in range(30)] if status == "ok" else []
    s = sorted(samples)
    return {
        "model": model, "form": form, "artifact": None if runtime == "pytorch" else f"{model}.{form}.fp32.bin",
        "artifact_sha256": None if runtime == "pytorch" else "0" * 64, "runtime": runtime, "backend": backend,
        "compute_unit": "all" if form == "coreml" else None, "precision": "fp16" if form == "coreml" else "fp32",
        "device": device, "batch": batch, "input_shape": [batch, 3, 224, 224], "warmup": 5,
        "iterations": len(samples), "per_iteration_ms": samples,
        "median_ms": (s[14] + s[15]) / 2 if s else None, "trimmed_mean_ms": sum(s[3:27]) / 24 if s else None,
        "trim_fraction": 0.1, "p90_ms": s[26] + (s[27] - s[26]) * 0.1 if s else None,
        "peak_memory_mb": round(rng.uniform(1, 500), 2) if s else None, "memory_kind": "rss_growth" if s else None,
        "load_time_ms": round(rng.uniform(1, 100), 3) if s else None, "tool_versions": dict(TOOLS),
        "status": status, "error": None if status == "ok" else "TEST FIXTURE: made-up failure",
    }


def write_synthetic(path: Path, n: int, *, seed: int = 0) -> Path:
    """A results file of ``n`` results (about 1 KB each) over n/25 models and 6 devices."""
    rng = random.Random(seed)
    n_models = max(1, n // 25)
    results = [synthetic_result(rng, i, n_models, 6) for i in range(n)]
    doc = {"schema_version": 1, "harness": "host", "created": "2025-01-01T00:00:00Z", "results": results}
    path.write_text(json.dumps(doc))
    return path


if __name__ == "__main__":  # python tests/support/synthetic_results.py N OUT.json
    import sys

    write_synthetic(Path(sys.argv[2]), int(sys.argv[1]))
