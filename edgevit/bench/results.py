"""Load results files of any harness (host, iOS, Android) and check them against schema.json.

Reports read only this schema, so a file that does not conform is rejected here, with the file, the JSON path
of the offending value and the reason, instead of surfacing later as a wrong or missing number in a report.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from edgevit.errors import SchemaError

SCHEMA_PATH = Path(__file__).with_name("schema.json")

# Each loaded result carries where it came from under this key (not a schema field, so it cannot clash):
# {"file": str, "harness": "host" | "ios" | "android", "created": str}.
SOURCE_KEY = "_source"

_MAX_MESSAGE = 300


@cache
def load_schema() -> dict[str, Any]:
    """The results schema, read once."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@cache
def _validator() -> jsonschema.protocols.Validator:
    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def json_path(parts: Iterable[str | int]) -> str:
    """`['results', 3, 'median_ms']` -> `results[3].median_ms`, the form users see in error messages."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier():
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(document root)"


def _path_key(error: jsonschema.ValidationError) -> tuple[tuple[int, int, str], ...]:
    """Order errors by where they are in the document, so 'the first error' is deterministic."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in error.absolute_path)


def _shorten(text: str) -> str:
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


def validate_document(doc: Any, source: str) -> None:
    """Raise SchemaError naming `source`, the JSON path of the first error and why, if `doc` is invalid."""
    errors = sorted(_validator().iter_errors(doc), key=_path_key)
    if not errors:
        return
    first = errors[0]
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    raise SchemaError(
        f"{source}: does not conform to edgevit/bench/schema.json: "
        f"{json_path(first.absolute_path)}: {_shorten(first.message)}{more}. "
        "Fix the file or re-run the harness that wrote it."
    )


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SchemaError(f"{path}: results file not found; pass a file written by `edgevit bench` "
                          "or a device harness.") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise SchemaError(f"{path}: cannot read results file: {reason}.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SchemaError(
            f"{path}: not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
            "the file is corrupt or truncated, re-run the harness that wrote it."
        ) from None


def load_results(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every result of every file, in file order, each tagged with its source under SOURCE_KEY.

    All files are validated before anything is returned, so a report never mixes valid and invalid input.
    """
    loaded: list[dict[str, Any]] = []
    for path in paths:
        path = Path(path)
        doc = _read_json(path)
        validate_document(doc, str(path))
        source = {"file": str(path), "harness": doc["harness"], "created": doc["created"]}
        for result in doc["results"]:
            tagged = copy.deepcopy(result)
            tagged[SOURCE_KEY] = dict(source)
            loaded.append(tagged)
    return loaded
