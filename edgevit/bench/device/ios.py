"""`edgevit harness ios`: stage the iOS/macOS harness (ios_harness/) with CoreML artifacts, ready for Xcode.

There is no iOS equivalent of adb that a Linux host can drive, so this module does not run anything on the
phone: it writes a self-contained copy of the Swift package with the artifacts, their manifests, their
validation inputs and a ``config.json`` inside the app's resource folder. The user opens the staged app in
Xcode on a Mac and runs it on the iPhone (or runs ``edgevit-ios-bench`` on the Mac); see
ios_harness/README.md. The statistics' definition shared with the Swift code (per-round trimming of Apple's
protocol) is here too, so the reference vectors the Swift tests check are generated from Python.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from edgevit.base.artifact_folder import (
    INDEX_LIMIT,
    ArtifactFolder,
    check_artifact,
    copy_artifact_part,
    parse_json,
    read_artifact_file,
)
from edgevit.base.atomic import write_text_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.errors import ArtifactError, EdgevitError, OutputError
from edgevit.base.manifest import load_manifest
from edgevit.base.naming import COMPILED_COREML, EXTENSIONS, bundle_path, kind_of, manifest_path
from edgevit.bench.stats import DEFAULT_TRIM_FRACTION

HARNESS_DIR = Path(__file__).resolve().parents[3] / "ios_harness"
APP_PACKAGE = Path("App/EdgevitBench.swiftpm")
STAGED_DIR = APP_PACKAGE / "Sources/AppModule/Staged"  # the app target's `.copy("Staged")` resource folder
CONFIG_NAME = "config.json"
CONFIG_FORMAT = "edgevit-ios-config/1"
VALIDATION_FORMAT = "edgevit-validation/1"
COMPUTE_UNITS = ("cpuOnly", "cpuAndGPU", "cpuAndNeuralEngine", "all")
COREML_KINDS = (EXTENSIONS["coreml"], COMPILED_COREML)
KINDS = (*COREML_KINDS, EXTENSIONS["executorch"])
# Build outputs and user state that must not travel with the staged copy.
_IGNORED = (".build", ".swiftpm", "DerivedData", "xcuserdata", "*.xcodeproj", ".DS_Store", "__pycache__")


class IosHarnessError(EdgevitError):
    """The iOS harness cannot be staged: its sources are missing or a setting is invalid."""


def _check_settings(rounds: int, iterations: int, warmup: int, trim_fraction: float,
                    compute_units: Sequence[str] | None) -> list[str]:
    if rounds < 1:
        raise IosHarnessError(f"rounds must be at least 1, got {rounds}")
    if iterations < 1:
        raise IosHarnessError(f"iterations must be at least 1, got {iterations} (with 3 or more, each round's "
                              "highest and lowest time are dropped, as in Apple's protocol)")
    if warmup < 0:
        raise IosHarnessError(f"warm-up iterations cannot be negative, got {warmup}")
    if not 0.0 <= trim_fraction < 0.5:
        raise IosHarnessError(f"trim fraction must be in [0, 0.5), got {trim_fraction}")
    units: list[str] = []
    for item in compute_units if compute_units is not None else COMPUTE_UNITS:
        for unit in (u.strip() for u in item.split(",")):
            if unit and unit not in COMPUTE_UNITS:
                raise IosHarnessError(f"unknown compute unit {unit!r}; choose from {', '.join(COMPUTE_UNITS)}")
            if unit and unit not in units:
                units.append(unit)
    if not units:
        raise IosHarnessError(f"no compute units given; choose from {', '.join(COMPUTE_UNITS)}")
    return units


def _read_manifest(artifact: Path) -> dict:
    """The manifest keys the Swift harness reads, checked here so a bad one fails before Xcode."""
    manifest = load_manifest(artifact)
    inp, out = manifest.get("input"), manifest.get("output")
    problems = [key for key in ("model", "precision") if not isinstance(manifest.get(key), str)]
    if not isinstance(inp, dict) or not all(k in inp for k in ("name", "kind", "shape")):
        problems.append("input.name/kind/shape")
    if not isinstance(out, dict) or "name" not in out:
        problems.append("output.name")
    if problems:
        raise ArtifactError(f"manifest {manifest_path(artifact)} lacks {', '.join(problems)}; re-run `edgevit convert`")
    return manifest


def _check_bundle(bundle: Path) -> bool:
    """True when `bundle` is a usable validation folder; absent is fine (the harness then times a synthetic input)."""
    if not bundle.exists():
        return False
    index = bundle / "index.json"
    try:
        folder = ArtifactFolder(ArtifactFolder.of(bundle).child(bundle))
        doc = parse_json(read_artifact_file(folder, "index.json", "index.json", INDEX_LIMIT), str(index))
    except ArtifactError as exc:
        raise ArtifactError(f"validation inputs {bundle} have no readable index.json ({exc}); "
                            "re-run `edgevit convert`") from None
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt != VALIDATION_FORMAT:
        raise ArtifactError(f"{index} is {fmt!r}, not {VALIDATION_FORMAT}; re-run `edgevit convert`")
    return True


def find_artifacts(artifacts_dir: Path) -> list[dict]:
    """Every .mlpackage / .mlmodelc / .pte directly in `artifacts_dir`, each with its manifest and validation
    folder, as config.json entries. Raises if the folder is missing or holds no CoreML artifact."""
    artifacts_dir = Path(artifacts_dir)
    if not artifacts_dir.is_dir():
        raise ArtifactError(f"artifacts directory {artifacts_dir} does not exist (or is not a directory); "
                            "make artifacts with `edgevit convert MODEL --target coreml --out DIR` first.")
    entries = []
    for path in sorted(artifacts_dir.iterdir()):
        kind = kind_of(path)
        if kind not in KINDS or path.name.startswith("."):  # .tmp-* are exports in progress
            continue
        check_artifact(path)  # not a link, regular files only: nothing from outside the folder is staged
        if kind == "pte" and not path.is_file() or kind != "pte" and not path.is_dir():
            raise ArtifactError(f"{path} is not a valid {kind} (expected a {'file' if kind == 'pte' else 'folder'})")
        manifest = _read_manifest(path)
        bundle = bundle_path(path)
        entries.append({
            "artifact": path.name, "kind": kind, "manifest": manifest_path(path).name,
            "validation": bundle.name if _check_bundle(bundle) else None,
            "model": manifest["model"], "precision": manifest["precision"], "sha256": manifest.get("sha256"),
            "input": manifest["input"], "output": manifest["output"],
        })
    if not any(e["kind"] in COREML_KINDS for e in entries):
        found = f" (found only {', '.join(e['artifact'] for e in entries)})" if entries else ""
        raise ArtifactError(f"no CoreML artifacts (.mlpackage or .mlmodelc) in {artifacts_dir}{found}; make them "
                            "with `edgevit convert MODEL --target coreml --out DIR`.")
    return entries


def _check_out_dir(out_dir: Path, overwrite: bool, artifacts_dir: Path, harness_dir: Path) -> None:
    out, harness, arts = out_dir.resolve(), harness_dir.resolve(), artifacts_dir.resolve()
    # Inside the harness the copy would contain itself; replacing a folder that holds the harness or the
    # artifacts would delete them. (A folder inside the artifacts folder is fine: it is not an artifact.)
    if out == harness or harness in out.parents or out in harness.parents:
        raise OutputError(f"--out {out_dir} overlaps the harness sources ({harness_dir}); stage elsewhere.")
    if out == arts or out in arts.parents:
        raise OutputError(f"--out {out_dir} overlaps the artifacts ({artifacts_dir}): staging would replace "
                          "them; choose a separate folder.")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"--out {out_dir} is a file; choose a folder to stage the harness into.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise OutputError(f"--out {out_dir} is not empty; choose a new folder, or pass --overwrite to replace it.")


def _make_temp_beside(out_dir: Path) -> Path:
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    except OSError as exc:
        raise OutputError(f"cannot write beside {out_dir} ({exc.strerror or exc}); choose another --out or fix "
                          "its permissions.") from None


def _copy(src: Path, dst: Path) -> None:
    """An artifact, manifest or bundle into the app, through the closed world: no link is followed, only regular
    files are copied (edgevit.base.artifact_folder.copy_artifact_part)."""
    copy_artifact_part(src, dst)


def _publish(tmp: Path, out_dir: Path) -> None:
    """Swap the finished staging folder into place; an old out_dir is removed only after the swap."""
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(tmp, out_dir)
    except OSError:
        if old is not None:
            os.replace(old, out_dir)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_config(staged: Path, entries: list[dict], rounds: int, iterations: int, warmup: int,
                 trim_fraction: float, compute_units: list[str], autostart: bool = False) -> Path:
    """config.json: the run the Swift harness performs (HarnessConfig in Config.swift reads it)."""
    config = {
        "format": CONFIG_FORMAT,
        "created": utc_now_iso(),
        "rounds": rounds, "iterations": iterations, "warmup": warmup, "trim_fraction": trim_fraction,
        "compute_units": compute_units, "autostart": autostart, "artifacts": entries,
    }
    path = staged / CONFIG_NAME
    write_text_atomic(path, json.dumps(config, indent=2) + "\n")
    return path


def stage_ios_harness(artifacts_dir: Path, out_dir: Path, rounds: int = 20, iterations: int = 50,
                      compute_units: list[str] | None = None, *, warmup: int = 1,
                      trim_fraction: float = DEFAULT_TRIM_FRACTION, overwrite: bool = False,
                      autostart: bool = False, harness_dir: Path | None = None) -> Path:
    """Copy the harness package to `out_dir` with every artifact of `artifacts_dir` staged in the app.

    The artifacts (with manifests and validation folders) and config.json go to
    ``out_dir/App/EdgevitBench.swiftpm/Sources/AppModule/Staged/``, which the iOS app bundles and
    ``edgevit-ios-bench --artifacts`` reads. The copy is built beside `out_dir` and renamed into place, so
    `out_dir` is either the complete staged harness or untouched. `autostart` makes the app start the run
    as soon as it opens. Returns `out_dir`.
    """
    artifacts_dir, out_dir = Path(artifacts_dir), Path(out_dir)
    harness = Path(harness_dir) if harness_dir is not None else HARNESS_DIR
    units = _check_settings(rounds, iterations, warmup, trim_fraction, compute_units)
    if not (harness / "Package.swift").is_file() or not (harness / APP_PACKAGE / "Package.swift").is_file():
        raise IosHarnessError(f"the iOS harness sources are not at {harness} (expected Package.swift and "
                              f"{APP_PACKAGE}/Package.swift); run edgevit from a checkout of the repository, whose "
                              "ios_harness/ folder is not part of the installed Python package.")
    entries = find_artifacts(artifacts_dir)
    _check_out_dir(out_dir, overwrite, artifacts_dir, harness)
    tmp = _make_temp_beside(out_dir)
    try:
        shutil.rmtree(tmp)
        # symlinks=False: the app package's link to Sources/EdgevitHarness becomes a real copy (self-contained).
        shutil.copytree(harness, tmp, symlinks=False, ignore=shutil.ignore_patterns(*_IGNORED))
        staged = tmp / STAGED_DIR
        for leftover in staged.glob("*") if staged.is_dir() else ():  # keep only the placeholder README
            if leftover.is_dir():
                shutil.rmtree(leftover)
            elif leftover.name != "README.md":
                leftover.unlink()
        staged.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            for name in (entry["artifact"], entry["manifest"], entry["validation"]):
                if name:
                    _copy(artifacts_dir / name, staged / name)
        write_config(staged, entries, rounds, iterations, warmup, trim_fraction, units, autostart)
        _publish(tmp, out_dir)
    except OSError as exc:
        raise OutputError(f"staging the iOS harness into {out_dir} failed: {exc}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def staged_artifacts_dir(out_dir: Path) -> Path:
    """Where a staged harness keeps config.json and the artifacts (the `--artifacts` of edgevit-ios-bench)."""
    return Path(out_dir) / STAGED_DIR


# --- Apple's latency protocol, the reference the Swift code (Stats.trimRound) is checked against ------------

def trim_round(times: Sequence[float]) -> list[float]:
    """Drop one round's highest and lowest time (first occurrences), keeping order; rounds under 3 stay whole."""
    kept = list(times)
    if len(kept) < 3:
        return kept
    del kept[kept.index(max(kept))]
    del kept[kept.index(min(kept))]
    return kept


def protocol_samples(rounds: Sequence[Sequence[float]]) -> list[float]:
    """The per-iteration samples a run reports: each round trimmed, then pooled in order."""
    return [t for times in rounds for t in trim_round(times)]
