"""The one "now" of edgevit: every created/since timestamp in manifests, results and reports comes from here."""

from __future__ import annotations

import datetime as dt


def utc_now_iso() -> str:
    """The current UTC time as ISO 8601 to the second (``2026-01-01T12:00:00+00:00``): stable, sortable text."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat()
