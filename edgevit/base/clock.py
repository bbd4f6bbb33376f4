"""The one "now" edgevit writes into manifests, results and configs: UTC, to the second, ISO 8601.

One function so every document carries the same format (``2026-01-31T12:00:00+00:00``), which the schemas,
the Swift harness and the report read back.
"""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
