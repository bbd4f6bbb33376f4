"""The iOS harness's Swift package seen from Python: the toolchain, building it, running its tools and tests,
and the little Swift-source reading that a compiler cannot replace (the result types' JSON keys against
edgevit/bench/schema.json, which the compiler knows nothing about).

Everything else about the Swift code (that it compiles under the Swift 6 language mode, what it writes) is
checked by building it and running it: see tests/test_ios_harness.py and ios_harness/Tests.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "ios_harness"
SCRATCH = HARNESS / ".build"  # the same scratch path `make swift-test` uses, so its build is reused
FALLBACK_SWIFT = Path("/opt/swift/usr/bin/swift")
BUILD_TIMEOUT_S = 1800


def find_swift() -> str | None:
    """The `swift` driver: $SWIFT when set (`make test` sets it; empty means none), else PATH, else /opt/swift
    (where this project's machines carry one)."""
    if "SWIFT" in os.environ:
        candidates = [os.environ["SWIFT"]]
    else:
        candidates = [shutil.which("swift") or "", str(FALLBACK_SWIFT)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class SwiftPackage:
    """ios_harness/ built with `swift` into SCRATCH."""

    swift: str

    def _run(self, *args: str, env: Mapping[str, str] | None = None, timeout: float = BUILD_TIMEOUT_S,
             cwd: Path = HARNESS) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.swift, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})})

    def build(self) -> None:
        """Build the library, the tool and the tests (incremental: quick after `make swift-test`)."""
        proc = self._run("build", "--build-tests", "--scratch-path", str(SCRATCH), "-j", str(os.cpu_count() or 1))
        if proc.returncode != 0:
            raise AssertionError(f"swift build failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-4000:]}")

    def bin_path(self) -> Path:
        proc = self._run("build", "--scratch-path", str(SCRATCH), "--show-bin-path", timeout=300)
        assert proc.returncode == 0, proc.stderr
        return Path(proc.stdout.strip().splitlines()[-1])

    def tool(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the built edgevit-ios-bench."""
        return subprocess.run([str(self.bin_path() / "edgevit-ios-bench"), *args], capture_output=True, text=True,
                              timeout=300)

    def test(self, filter_: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """Run the already built XCTest cases matching `filter_` with extra environment variables."""
        return self._run("test", "--skip-build", "--scratch-path", str(SCRATCH), "--filter", filter_, env=env,
                         timeout=600)


# --- reading Swift source: only the result types' JSON keys, compared with schema.json ---------------------

def strip_comments(text: str) -> str:
    """Swift source without `//` comments (quotes and braces in comments would confuse the parsing)."""
    out, i, in_string = [], 0, False
    while i < len(text):
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\":
                out.append(text[i + 1])
                i += 1
            elif ch == '"':
                in_string = False
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(ch)
            in_string = ch == '"'
        i += 1
    return "".join(out)


def _matching_brace(text: str, open_at: int) -> int:
    """Index of the `}` closing the `{` at `open_at`, skipping string literals."""
    depth, i, in_string = 0, open_at, False
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 1
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise AssertionError("unbalanced braces in Swift source")


def swift_block(source: str, declaration: str) -> str:
    """Body of the first `declaration` (e.g. `struct BenchResult`, `enum CodingKeys`), braces excluded."""
    match = re.search(rf"\b{declaration}\b[^{{]*\{{", source)
    assert match, f"`{declaration}` not found in Swift source"
    end = _matching_brace(source, match.end() - 1)
    return source[match.end(): end]


def top_level(body: str) -> str:
    """The text of `body` at brace depth 0 (nested types and function bodies removed)."""
    out, depth = [], 0
    for ch in body:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def coding_keys(source: str, type_name: str) -> dict[str, str]:
    """{Swift case name: JSON key} of `type_name`'s CodingKeys enum."""
    body = swift_block(swift_block(source, f"struct {type_name}"), "enum CodingKeys")
    keys = {}
    for statement in re.findall(r"\bcase\s+([^\n]+)", body):
        for item in statement.split(","):
            name, _, raw = item.partition("=")
            raw = raw.strip()
            keys[name.strip()] = json.loads(raw) if raw else name.strip()
    return keys


def optional_properties(source: str, type_name: str) -> set[str]:
    """Stored properties of `type_name` declared with an Optional type (`var x: T?`)."""
    body = top_level(swift_block(source, f"struct {type_name}"))
    return set(re.findall(r"var\s+(\w+)\s*:\s*[\w\[\]: ]+\?", body))


def swift_source(path: Path) -> str:
    return strip_comments(path.read_text(encoding="utf-8"))


def schema_mismatch(required: list[str], properties: list[str], swift_keys: list[str]) -> list[str]:
    """Why Swift's keys do not match a schema object (empty list: they match)."""
    problems = [f"schema requires {k!r}, Swift lacks it" for k in required if k not in swift_keys]
    problems += [f"schema property {k!r} missing in Swift" for k in properties if k not in swift_keys
                 and k not in required]
    problems += [f"Swift key {k!r} is not in the schema (additionalProperties is false)" for k in swift_keys
                 if k not in properties]
    return problems
