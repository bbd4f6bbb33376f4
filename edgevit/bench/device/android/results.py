"""The results file pulled from the phone, checked before anyone reads it: JSON, the schema, every artifact."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from edgevit.bench.device.android.errors import AndroidHarnessError
from edgevit.bench.results import validate_document


def read_results(out: Path, artifacts: Sequence[Path]) -> dict:
    """The results document at `out`, valid against schema.json, from the Android harness, covering `artifacts`."""
    try:
        doc = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AndroidHarnessError(f"{out}: the phone's results are not valid JSON ({exc}); run again.") from None
    validate_document(doc, str(out))  # SchemaError with the JSON path of the first problem
    if doc["harness"] != "android":
        raise AndroidHarnessError(f"{out}: harness is {doc['harness']!r}, expected 'android'")
    ran = {r["artifact"] for r in doc["results"]}
    missing = [a.name for a in artifacts if a.name not in ran]
    if missing:
        raise AndroidHarnessError(f"{out}: the phone reported no result for {', '.join(missing)}; the app may "
                                  "have crashed mid-run (see `adb logcat -d -s edgevit AndroidRuntime`).")
    return doc
