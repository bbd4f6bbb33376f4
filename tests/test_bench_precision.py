"""The bench table says which precision each row is when artifacts of several precisions are timed together."""

from __future__ import annotations

from edgevit.commands.bench import bench_table


def _row(form: str, precision: str, ms: float) -> dict:
    return {"model": "swiftformer-xs", "batch": 1, "form": form, "status": "ok", "runtime": "executorch",
            "backend": "xnnpack", "precision": precision, "median_ms": ms, "trimmed_mean_ms": ms, "p90_ms": ms,
            "load_time_ms": 1.0, "peak_memory_mb": 10.0, "gflop_per_s": None}


def _headers(results: list[dict]) -> list[str]:
    table, _ = bench_table({"results": results})
    return [str(col.header) for col in table.columns]


def test_precision_column_appears_only_when_precisions_differ():
    mixed = _headers([_row("executorch", "fp32", 30.0), _row("executorch-int8", "int8", 20.0)])
    assert mixed[:4] == ["model", "batch", "form", "precision"]
    assert "precision" not in _headers([_row("executorch", "fp32", 30.0), _row("onnx", "fp32", 25.0)])
