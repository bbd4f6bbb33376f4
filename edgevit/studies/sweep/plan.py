"""A sweep plan: models x targets x variants, from flags or a TOML/YAML file, every cell checked before any work.

A *cell* is one artifact: (model, target, variant), where the variant is ``none`` (the target's default float
precision: fp16 for CoreML, fp32 for the XNNPACK .pte and ONNX), a float precision (``fp16``, ``fp32``), a
quantization scheme (``int8``: ExecuTorch/ONNX) or a CoreML weight compression (``w8``, ``w4``, ``palette6``,
``palette4``). From flags, the cross product keeps the combinations that exist (int8 has no CoreML artifact) and
says which it left out; explicit rows (``[[cells]]`` in a plan file) are refused if they cannot be made. Every
cell is checked with the same checks ``edgevit convert`` runs, and unknown names get the closest known ones.

Plan file (TOML, or the same keys in YAML)::

    models = ["swiftformer-xs", "timm:resnet18", {name = "fastvit-t8", weights = "fastvit_t8.safetensors"}]
    targets = ["executorch", "onnx"]
    variants = ["none", "int8"]
    retries = 1
    [bench]
    enabled = true
    iterations = 10
    warmup = 2
    resource = "bench_host"     # or a device harness's resource, e.g. "iphone15"
    [[cells]]                   # extra rows, each checked as given
    model = "swiftformer-xs"
    target = "coreml"
    variant = "w8"
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgevit.base.arguments import COMPRESS_SCHEMES, PRECISIONS, check_convert
from edgevit.base.errors import EdgevitError, UnknownModelError, UsageError
from edgevit.base.naming import TARGETS, artifact_name
from edgevit.studies.sweep.presets import PRESET_CELLS, PRESETS

VARIANTS = ("none", *PRECISIONS, "int8", *COMPRESS_SCHEMES)
PLAN_KEYS = ("models", "targets", "variants", "quantize", "compress", "preset", "retries", "bench", "cells")
BENCH_KEYS = ("enabled", "iterations", "warmup", "resource")
CELL_KEYS = ("model", "target", "variant", "weights")
DEFAULT_TARGETS = ("coreml", "executorch", "onnx")
DEFAULT_BENCH_RESOURCE = "bench_host"


class PlanError(UsageError):
    """A sweep plan that names something unknown, repeats a cell, or asks for an artifact that cannot exist."""


def _nearest(value: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=3, cutoff=0.4)
    return f" Did you mean: {', '.join(close)}?" if close else ""


def _check_in(kind: str, value: object, choices: Sequence[str], where: str) -> str:
    if not isinstance(value, str) or value not in choices:
        shown = value if isinstance(value, str) else repr(value)
        raise PlanError(f"{where}unknown {kind} {shown!r}.{_nearest(str(value), choices)} Choose from "
                        f"{', '.join(choices)}.")
    return value


@dataclass(frozen=True)
class Cell:
    """One artifact to make, convert -> validate -> bench."""

    model: str  # the registry name (a timm: name as given)
    target: str
    variant: str
    weights: str | None = None
    artifact: str = ""  # its file name, e.g. swiftformer-xs.executorch.xnnpack.int8.pte
    precision: str = ""  # the artifact name's precision token
    backend: str | None = None
    compute_precision: str | None = None

    @property
    def label(self) -> str:
        return f"{self.model} {self.target} {self.variant}"

    def convert_kwargs(self) -> dict:
        """The edgevit.api.convert keywords that make this variant."""
        if self.variant == "none":
            return {}
        if self.variant in PRECISIONS:
            return {"precision": self.variant}
        if self.variant in COMPRESS_SCHEMES:
            return {"compress": self.variant}
        return {"quantize": self.variant}

    def to_json(self) -> dict:
        return {"model": self.model, "target": self.target, "variant": self.variant, "weights": self.weights,
                "artifact": self.artifact, "precision": self.precision, "backend": self.backend}


@dataclass
class SweepPlan:
    cells: list[Cell]
    left_out: list[str] = field(default_factory=list)  # cross-product combinations that make no artifact, and why
    bench: bool = True
    iterations: int = 10
    warmup: int = 2
    bench_resource: str = DEFAULT_BENCH_RESOURCE
    retries: int = 1

    def to_json(self) -> dict:
        return {"cells": len(self.cells), "left_out": self.left_out, "bench": self.bench,
                "iterations": self.iterations, "warmup": self.warmup, "bench_resource": self.bench_resource,
                "retries": self.retries}


def _resolve(model: str, weights: str | None, variant: str, target: str, where: str) -> Cell:
    """A checked cell (UsageError from convert's own checks if the combination cannot be made)."""
    from edgevit.models.registry import get_spec

    try:
        spec = get_spec(model)
    except UnknownModelError as exc:
        raise PlanError(f"{where}{exc}") from None
    kwargs = Cell(model, target, variant).convert_kwargs()
    args = check_convert(spec.name, target, "unused", weights=weights, **kwargs)  # raises UsageError/WeightsError
    plan = args.targets[0]
    name = artifact_name(spec.name, plan.target, plan.precision, plan.backend)
    weights = str(Path(weights).resolve()) if weights else None
    return Cell(spec.name, target, variant, weights, name,
                plan.precision, plan.backend, plan.compute_precision)


def _model_entries(models: object, where: str) -> list[tuple[str, str | None]]:
    if isinstance(models, str) or not isinstance(models, list | tuple):
        raise PlanError(f"{where}models must be a list of names (or {{name, weights}} tables), got {models!r}")
    entries = []
    for item in models:
        if isinstance(item, str) and item.strip():
            entries.append((item.strip(), None))
        elif isinstance(item, dict) and isinstance(item.get("name"), str):
            unknown = sorted(set(item) - {"name", "weights"})
            if unknown:
                raise PlanError(f"{where}model entry {item['name']!r} has unknown key(s) {', '.join(unknown)} "
                                "(a model entry has name and weights)")
            weights = item.get("weights")
            if weights is not None and not isinstance(weights, str):
                raise PlanError(f"{where}weights of {item['name']!r} must be a path, got {weights!r}")
            entries.append((item["name"].strip(), weights))
        else:
            raise PlanError(f"{where}each model is a name or a {{name, weights}} table, got {item!r}")
    return entries


def build_plan(models: Sequence[str | dict] = (), *, targets: Sequence[str] | None = None,
               variants: Sequence[str] | None = None, preset: str | None = None,
               cells: Sequence[dict] = (), bench: bool = True, iterations: int = 10, warmup: int = 2,
               bench_resource: str = DEFAULT_BENCH_RESOURCE, retries: int = 1, where: str = "") -> SweepPlan:
    """Every cell of the sweep, checked; a duplicated cell (or two that make one artifact) is refused."""
    from edgevit.base.arguments import check_int

    if preset is not None:
        _check_in("preset", preset, tuple(PRESETS), where)
    entries = _model_entries(list(models), where) if models else []
    if preset is not None:
        entries += [(name, None) for name in PRESETS[preset]]
    if targets is not None:
        for t in targets:
            _check_in("target", t, TARGETS, where)
    if variants is not None:
        for v in variants:
            _check_in("variant (precision/quantization/compression)", v, VARIANTS, where)
    if targets is None and variants is None and preset is not None:
        pairs = list(PRESET_CELLS[preset])
    else:
        pairs = [(t, v) for t in (targets or DEFAULT_TARGETS) for v in (variants or ["none"])]
    check_int("retries", retries, 0, 10)
    check_int("iterations", iterations, 1, 100_000)
    check_int("warmup", warmup, 0, 100_000)
    if not isinstance(bench_resource, str) or not bench_resource:
        raise PlanError(f"{where}bench resource must be a resource name, e.g. bench_host, got {bench_resource!r}")
    out: list[Cell] = []
    left_out: list[str] = []
    for model, weights in entries:
        for target, variant in pairs:
            try:
                out.append(_resolve(model, weights, variant, target, where))
            except PlanError:
                raise
            except UsageError as exc:  # this combination makes no artifact: leave it out, say why once
                note = f"{target} x {variant}: {exc}"
                if note not in left_out:
                    left_out.append(note)
    for i, row in enumerate(cells):
        here = f"{where}cells[{i}]: "
        if not isinstance(row, dict):
            raise PlanError(f"{here}a cell is a table with model, target and variant, got {row!r}")
        unknown = sorted(set(row) - set(CELL_KEYS))
        if unknown:
            raise PlanError(f"{here}unknown key(s) {', '.join(unknown)}.{_nearest(unknown[0], CELL_KEYS)} A cell "
                            f"has {', '.join(CELL_KEYS)}.")
        for key in ("model", "target"):
            if not isinstance(row.get(key), str):
                raise PlanError(f"{here}{key} is missing (a cell has model, target and variant)")
        target = _check_in("target", row["target"], TARGETS, here)
        variant = _check_in("variant (precision/quantization/compression)", row.get("variant", "none"), VARIANTS,
                            here)
        try:
            out.append(_resolve(row["model"], row.get("weights"), variant, target, here))
        except PlanError:
            raise
        except EdgevitError as exc:
            raise PlanError(f"{here}{row['model']} {target} {variant} cannot be made: {exc}") from None
    _refuse_duplicates(out, where)
    if not out:
        why = f" ({'; '.join(left_out)})" if left_out else ""
        raise PlanError(f"{where}the sweep has no cell: give models (or --preset) and targets that make an "
                        f"artifact{why}")
    return SweepPlan(out, left_out, bench, iterations, warmup, bench_resource, retries)


def _refuse_duplicates(cells: list[Cell], where: str) -> None:
    seen: dict[str, Cell] = {}
    for cell in cells:
        key = f"{cell.artifact}|{cell.weights}"
        if key in seen:
            first = seen[key]
            same = "is listed twice" if first.label == cell.label else f"makes the same artifact as {first.label}"
            raise PlanError(f"{where}duplicated row: {cell.label} {same} ({cell.artifact}); remove one")
        if any(c.artifact == cell.artifact for c in seen.values()):
            raise PlanError(f"{where}duplicated row: {cell.label} appears with two different weights files; a "
                            "sweep folder holds one artifact per name: sweep them into separate --out folders")
        seen[key] = cell


def read_plan_file(path: str | Path) -> dict:
    """A plan file's keys (TOML by the standard library's tomllib; .yaml/.yml by PyYAML)."""
    path = Path(path)
    where = f"{path}: "
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PlanError(f"plan file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"cannot read plan file {path}: {exc}") from None
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise PlanError(f"{where}not valid YAML: {exc}") from None
    elif path.suffix == ".toml":
        import tomllib

        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise PlanError(f"{where}not valid TOML: {exc}") from None
    else:
        raise PlanError(f"{where}a plan file is .toml, .yaml or .yml (got {path.suffix or 'no suffix'})")
    if not isinstance(data, dict):
        raise PlanError(f"{where}a plan is a table of keys ({', '.join(PLAN_KEYS)}), got {type(data).__name__}")
    unknown = [k for k in data if k not in PLAN_KEYS]
    if unknown:
        raise PlanError(f"{where}unknown key {unknown[0]!r}.{_nearest(unknown[0], PLAN_KEYS)} A plan has "
                        f"{', '.join(PLAN_KEYS)}.")
    bench = data.get("bench", {})
    if not isinstance(bench, dict):
        raise PlanError(f"{where}bench must be a table ({', '.join(BENCH_KEYS)}), got {bench!r}")
    unknown = [k for k in bench if k not in BENCH_KEYS]
    if unknown:
        raise PlanError(f"{where}unknown bench key {unknown[0]!r}.{_nearest(unknown[0], BENCH_KEYS)} [bench] has "
                        f"{', '.join(BENCH_KEYS)}.")
    return data


def plan_from_file(path: str | Path, **overrides) -> SweepPlan:
    """The plan a file describes; ``overrides`` (from flags: bench=False, retries=...) win over the file."""
    data = read_plan_file(path)
    bench = data.get("bench", {})
    variants = _as_list(data.get("variants"))
    for key in ("quantize", "compress"):
        if key in data:
            variants = (variants or ["none"]) + [v for v in _as_list(data[key]) if v != "none"]
    kwargs = {"models": _as_list(data.get("models")) or (), "targets": _as_list(data.get("targets")),
              "variants": variants, "preset": data.get("preset"), "cells": data.get("cells", ()),
              "bench": bench.get("enabled", True), "iterations": bench.get("iterations", 10),
              "warmup": bench.get("warmup", 2), "bench_resource": bench.get("resource", DEFAULT_BENCH_RESOURCE),
              "retries": data.get("retries", 1)}
    kwargs.update({k: v for k, v in overrides.items() if v is not None})
    return build_plan(**kwargs, where=f"{path}: ")


def _as_list(value: object) -> list | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value) if isinstance(value, list | tuple) else [value]
