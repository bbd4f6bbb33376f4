"""Load results files of any harness (host, iOS, Android) and check them against schema.json.

Reports read only this schema, so a file that does not conform is rejected here, with the file, the JSON path
of the offending value and the reason, instead of surfacing later as a wrong or missing number in a report.

Version 3 (schema.json) is what edgevit writes; version 1 and 2 files (schema_v1.json, schema_v2.json, frozen)
still load, their results given the later fields as null ("not measured"), so a report reads one shape.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

from edgevit.base.artifact_folder import MiB, parse_json, read_regular_file
from edgevit.base.errors import SchemaError
from edgevit.base.schema_check import document_problem, json_path

__all__ = ["SCHEMA_PATH", "SCHEMA_V1_PATH", "SCHEMA_V2_PATH", "SCHEMA_VERSION", "SOURCE_KEY", "V2_RESULT_FIELDS",
           "V3_DEVICE_FIELDS", "V3_RESULT_FIELDS", "json_path",
           "load_results", "load_schema", "schema_path_for", "validate_document"]

SCHEMA_PATH = Path(__file__).with_name("schema.json")
SCHEMA_V1_PATH = Path(__file__).with_name("schema_v1.json")
SCHEMA_V2_PATH = Path(__file__).with_name("schema_v2.json")
SCHEMA_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)
# What version 2 added to each result; a version-1 result gets them as null when loaded.
V2_RESULT_FIELDS = ("threads", "gflop", "gflop_per_s", "percent_of_peak", "interleaved")
# What version 3 added to each result and to its device; older results get them as null when loaded.
V3_RESULT_FIELDS = ("peak_note", "artifact_bytes", "recorded_logits_psnr_db")
V3_DEVICE_FIELDS = ("cpu_model", "isa")
OLDER_SCHEMAS = {1: SCHEMA_V1_PATH, 2: SCHEMA_V2_PATH}
# What one report reads: a results file of at most RESULTS_FILE_LIMIT bytes (about 120,000 results of ~1 KB; refused
# unread above it) and at most MAX_REPORT_RESULTS results in all (50,000 take under a minute: test_report_scale.py).
RESULTS_FILE_LIMIT = 128 * MiB
MAX_REPORT_RESULTS = 50_000

# Each loaded result carries where it came from under this key (not a schema field, so it cannot clash):
# {"file": str, "harness": "host" | "ios" | "android", "created": str}.
SOURCE_KEY = "_source"


@cache
def load_schema() -> dict[str, Any]:
    """The results schema (the version edgevit writes), read once."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema_path_for(doc: Any) -> Path:
    """The schema file a document claims (schema_version 1 -> schema_v1.json, 2 -> schema_v2.json); anything else
    checks against the current one, whose ``const`` then names the version it expects."""
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    return OLDER_SCHEMAS.get(version, SCHEMA_PATH) if type(version) is int else SCHEMA_PATH


def validate_document(doc: Any, source: str) -> None:
    """Raise SchemaError naming `source`, the JSON path of the first error and why, if `doc` is invalid.

    Non-finite numbers (NaN, Infinity) are errors too: no latency or memory figure can be one, and the schema's
    bounds do not catch NaN.
    """
    version = doc.get("schema_version") if isinstance(doc, dict) else None
    if version is not None and (type(version) is not int or version not in READABLE_VERSIONS):
        raise SchemaError(f"{source}: schema_version {version!r} is not one this edgevit reads "
                          f"({', '.join(map(str, READABLE_VERSIONS))}); a newer edgevit may have written it.")
    schema = schema_path_for(doc)
    problem = document_problem(schema, doc)
    if problem is None:
        return
    raise SchemaError(
        f"{source}: does not conform to edgevit/bench/{schema.name}: {problem}. "
        "Fix the file or re-run the harness that wrote it."
    )


def _read_json(path: Path) -> Any:
    """A results file as JSON: a regular file (never a FIFO or device) of at most RESULTS_FILE_LIMIT bytes, nested at
    most JSON_MAX_DEPTH deep, both checked before it is parsed (edgevit.base.artifact_folder)."""
    if not path.exists() and not path.is_symlink():
        raise SchemaError(f"{path}: results file not found; pass a file written by `edgevit bench` "
                          "or a device harness.")
    data = read_regular_file(path, "results file", RESULTS_FILE_LIMIT, error=SchemaError)
    return parse_json(data, str(path), error=SchemaError, advice="the file is corrupt or truncated, re-run the "
                      "harness that wrote it")


def load_results(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every result of every file, in file order, each tagged with its source under SOURCE_KEY.

    All files are validated before anything is returned, so a report never mixes valid and invalid input.
    Older results come back with the later fields (V2_RESULT_FIELDS, V3_RESULT_FIELDS, V3_DEVICE_FIELDS) as null.
    """
    loaded: list[dict[str, Any]] = []
    for path in paths:
        path = Path(path)
        doc = _read_json(path)
        results = doc.get("results") if isinstance(doc, dict) else None
        if isinstance(results, list) and len(loaded) + len(results) > MAX_REPORT_RESULTS:
            raise SchemaError(f"{path}: with it the report would hold {len(loaded) + len(results):,} results, over the "
                              f"limit of {MAX_REPORT_RESULTS:,} one report reads; split the files into several "
                              "reports (`edgevit report` on fewer files).")
        validate_document(doc, str(path))
        source = {"file": str(path), "harness": doc["harness"], "created": doc["created"]}
        # A shallow copy per result (the parsed document is ours alone) and one source dict per file: memory
        # stays proportional to the input, which a 50,000-result file needs.
        if doc["schema_version"] < SCHEMA_VERSION:
            absent = dict.fromkeys(V3_RESULT_FIELDS + (V2_RESULT_FIELDS if doc["schema_version"] == 1 else ()))
            no_device = dict.fromkeys(V3_DEVICE_FIELDS)
            loaded += [{**absent, **result, "device": {**no_device, **result["device"]}, SOURCE_KEY: source}
                       for result in doc["results"]]
        else:
            loaded += [{**result, SOURCE_KEY: source} for result in doc["results"]]
        del doc
    return loaded
