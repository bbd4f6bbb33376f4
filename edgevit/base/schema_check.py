"""JSON documents checked against a schema, with the JSON path of the first problem in the message.

Shared by the results files (``bench/schema.json``) and the artifact manifests (``manifest_schema.json``): a
reader checks a document here once, before using any field, so a bad file is one clear message, never a
``KeyError`` or ``TypeError`` deep inside a report or a validation.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

_MAX_MESSAGE = 300


@cache
def _schema(schema_path: Path) -> dict[str, Any]:
    return json.loads(Path(schema_path).read_text(encoding="utf-8"))


@cache
def validator_for(schema_path: Path) -> jsonschema.protocols.Validator:
    """A validator for the schema file, built once."""
    schema = _schema(schema_path)
    return jsonschema.validators.validator_for(schema)(schema)


# ------------------------------------------------------------------------------------------ fast conformance check
# jsonschema takes ~1.5 ms per benchmark result (50,000 results: over a minute). The schemas here use a small set of
# keywords, so they are compiled once into plain Python checks that only answer "conforms, with every number finite,
# or not" at a few microseconds per result; jsonschema then runs only on a document that does not pass, to name the
# first error. A schema with another keyword, or with a position that has no type (where a NaN could hide), is not
# compiled (None), and jsonschema plus a walk for non-finite numbers do all the work.

Check = Callable[[Any], bool]
_KNOWN = {"type", "enum", "const", "required", "properties", "additionalProperties", "items", "minimum", "maximum",
          "pattern", "minLength", "minItems", "maxItems", "$ref", "$schema", "$id", "$defs", "title", "description"}
_PY_TYPES = {"string": (str,), "number": (int, float), "integer": (int,), "boolean": (bool,), "null": (type(None),),
             "object": (dict,), "array": (list,)}


class _NotCompilable(Exception):
    pass


def _finite(v: float) -> bool:
    return v - v == 0.0  # False for NaN and +-inf


def _compile(node: Any, root: dict[str, Any], defs: dict[str, Check]) -> Check:
    if not isinstance(node, dict) or set(node) - _KNOWN:
        raise _NotCompilable(node)
    if "$ref" in node:
        ref = node["$ref"]
        if not ref.startswith("#/$defs/") or set(node) - {"$ref", "description", "title"}:
            raise _NotCompilable(ref)
        name = ref[len("#/$defs/"):]
        if name not in defs:
            defs[name] = _compile(root["$defs"][name], root, defs)
        return defs[name]
    if "type" not in node and "enum" not in node and "const" not in node:
        raise _NotCompilable("untyped")
    kinds = [node["type"]] if isinstance(node.get("type"), str) else node.get("type", [])
    types = frozenset(t for k in kinds for t in _PY_TYPES[k])
    integral_floats = "integer" in kinds and "number" not in kinds
    allowed = node["enum"] if "enum" in node else [node["const"]] if "const" in node else None
    if allowed is not None and any(isinstance(a, dict | list | bool | float) for a in allowed):
        raise _NotCompilable("enum")
    allowed_pairs = None if allowed is None else frozenset((type(a), a) for a in allowed)
    minimum, maximum = node.get("minimum"), node.get("maximum")
    search = re.compile(node["pattern"]).search if "pattern" in node else None
    min_len, min_items, max_items = node.get("minLength"), node.get("minItems"), node.get("maxItems")
    item = _compile(node["items"], root, defs) if "items" in node else None
    required = frozenset(node.get("required", ()))
    props = {k: _compile(sub, root, defs) for k, sub in node.get("properties", {}).items()}
    extra_node = node.get("additionalProperties", True)
    if extra_node is True and (dict in types or (not types and allowed is None)):
        raise _NotCompilable("open object")  # unchecked values could hold NaN
    extra = None if extra_node in (False, True) else _compile(extra_node, root, defs)

    def check(v: Any) -> bool:
        t = type(v)
        if types and t not in types and not (integral_floats and t is float and v.is_integer()):
            return False
        if allowed_pairs is not None and (t is list or t is dict or (t, v) not in allowed_pairs):
            return False
        if t is float or t is int:
            if t is float and not _finite(v):
                return False
            if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
                return False
        elif t is str:
            if (search is not None and search(v) is None) or (min_len is not None and len(v) < min_len):
                return False
        elif t is list:
            if (min_items is not None and len(v) < min_items) or (max_items is not None and len(v) > max_items):
                return False
            if item is not None:
                for x in v:
                    if not item(x):
                        return False
        elif t is dict:
            if not required <= v.keys():
                return False
            for k, x in v.items():
                sub = props.get(k, extra)
                if sub is None or not sub(x):
                    return False
        return True

    return check


@cache
def fast_check(schema_path: Path) -> Check | None:
    """A compiled check of the schema file (conforms and all numbers finite), or None if it cannot be compiled."""
    schema = _schema(schema_path)
    try:
        return _compile({k: v for k, v in schema.items() if k != "$defs"}, schema, {})
    except (_NotCompilable, KeyError, re.error):
        return None


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


def document_problem(schema_path: Path, doc: Any) -> str | None:
    """The first schema error, else the first non-finite number, as '<json path>: <why>'; None if neither."""
    fast = fast_check(schema_path)
    if fast is not None and fast(doc):
        return None
    return schema_problem(schema_path, doc) or non_finite_problem(doc)


def schema_problem(schema_path: Path, doc: Any) -> str | None:
    """'<json path>: <why>' for the first error (and how many more), or None if the document conforms."""
    errors = sorted(validator_for(schema_path).iter_errors(doc), key=_path_key)
    if not errors:
        return None
    first = errors[0]
    more = f" (and {len(errors) - 1} more error(s))" if len(errors) > 1 else ""
    return f"{json_path(first.absolute_path)}: {_shorten(first.message)}{more}"


def _numbers(doc: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], float]]:
    if isinstance(doc, float):
        yield path, doc
    elif isinstance(doc, dict):
        for key, value in doc.items():
            yield from _numbers(value, (*path, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _numbers(value, (*path, i))


def all_finite(doc: Any) -> bool:
    """True if no number in the document is NaN or infinite (checked at C speed by the JSON encoder)."""
    try:
        json.dumps(doc, allow_nan=False)
    except ValueError:
        return False
    return True


def non_finite_problem(doc: Any) -> str | None:
    """'<json path>: <value> is not a finite number' for the first NaN/Infinity, or None.

    JSON has no NaN or Infinity, but Python's parser accepts both words (and 1e999 becomes infinity), and a
    schema's ``"minimum": 0`` does not reject NaN, so this is checked on its own.
    """
    if all_finite(doc):
        return None
    for path, value in _numbers(doc):
        if not math.isfinite(value):
            return f"{json_path(path)}: {value} is not a finite number"
    return None
