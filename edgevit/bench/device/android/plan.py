"""The adb commands of one benchmark as data: what `--dry-run` prints is exactly what a run executes."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgevit.bench.device.android.app import APP_OUT_DIR, INSTRUMENTATION, PACKAGE, REMOTE_DIR, RESULTS_NAME
from edgevit.bench.device.android.artifacts import device_outputs_path, sidecars
from edgevit.bench.device.android.errors import AndroidHarnessError

DEFAULT_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class Step:
    """One adb invocation: what runs, why, where its stdout goes (if captured to a file), how long it may take."""

    kind: str  # devices | install | check-installed | shell | push | instrument | pull | pull-outputs
    argv: tuple[str, ...]
    why: str
    stdout_to: Path | None = None
    timeout_s: float = 120.0
    artifact: str | None = None  # for pull-outputs: the artifact whose outputs this reads


def check_settings(iterations: int, warmup: int, trim_fraction: float) -> None:
    """Refuse a run the app would refuse, before anything touches the phone."""
    if iterations < 1:
        raise AndroidHarnessError(f"iterations must be at least 1, got {iterations}")
    if warmup < 0:
        raise AndroidHarnessError(f"warm-up iterations cannot be negative, got {warmup}")
    if not 0.0 <= trim_fraction < 0.5:
        raise AndroidHarnessError(f"trim fraction must be in [0, 0.5), got {trim_fraction}")


def plan_android_bench(artifacts: Sequence[Path], serial: str | None, out: Path, iterations: int, warmup: int,
                       apk: Path | None, *, adb: str = "adb", trim_fraction: float = 0.1,
                       timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Step]:
    """The adb commands of one Android benchmark, in order (what `--dry-run` prints and what runs).

    With ``serial`` None the commands carry no `-s` (adb then uses the only phone); a real run always names
    the phone it chose. With ``apk`` None the app must already be installed, which the plan checks.
    """
    out = Path(out)
    target = [adb] if serial is None else [adb, "-s", serial]
    steps = [Step("devices", (adb, "devices", "-l"), "list attached phones and choose one", timeout_s=60)]
    if apk is not None:
        steps.append(Step("install", (*target, "install", "-r", "-t", str(apk)),
                          "install (or update) the harness app", timeout_s=300))
    else:
        steps.append(Step("check-installed", (*target, "shell", "pm", "path", PACKAGE),
                          "check the harness app is installed (no --apk given)"))
    steps += [
        Step("shell", (*target, "shell", "rm", "-rf", REMOTE_DIR), "remove artifacts of earlier runs"),
        Step("shell", (*target, "shell", "mkdir", "-p", REMOTE_DIR), "make the folder the app reads"),
    ]
    for artifact in map(Path, artifacts):
        manifest, bundle = sidecars(artifact)
        sources = [str(artifact), str(manifest)] + ([str(bundle)] if bundle.is_dir() else [])
        steps.append(Step("push", (*target, "push", *sources, REMOTE_DIR + "/"),
                          f"push {artifact.name}, its manifest" + (" and validation inputs" if bundle.is_dir()
                                                                   else " (no validation inputs beside it)"),
                          timeout_s=900))
    run_args = {"model_dir": REMOTE_DIR, "iterations": str(iterations), "warmup": str(warmup),
                "trim_fraction": repr(float(trim_fraction)), "results": RESULTS_NAME}
    steps += [
        Step("shell", (*target, "shell", "chmod", "-R", "a+rX", REMOTE_DIR), "let the app read the pushed files"),
        Step("shell", (*target, "shell", "run-as", PACKAGE, "rm", "-rf", APP_OUT_DIR),
             "clear the app's earlier results so a stale file is never read back"),
        Step("instrument",
             (*target, "shell", "am", "instrument", "-w", "-r",
              *[a for key, value in run_args.items() for a in ("-e", key, value)], INSTRUMENTATION),
             f"benchmark every artifact on the phone ({warmup} warm-up + {iterations} timed iterations each); "
             "blocks until done", timeout_s=timeout_s),
        Step("pull", (*target, "exec-out", "run-as", PACKAGE, "cat", f"{APP_OUT_DIR}/{RESULTS_NAME}"),
             "read the results JSON", stdout_to=out),
    ]
    for artifact in map(Path, artifacts):
        if sidecars(artifact)[1].is_dir():
            name = device_outputs_path(out, artifact).name
            steps.append(Step("pull-outputs", (*target, "exec-out", "run-as", PACKAGE, "cat", f"{APP_OUT_DIR}/{name}"),
                              f"read {artifact.name}'s outputs on the validation inputs (if it ran)",
                              stdout_to=device_outputs_path(out, artifact), artifact=artifact.name))
    return steps


def format_plan(steps: Sequence[Step]) -> str:
    """Shell-like listing of the steps, one command per line with its purpose (for `--dry-run`)."""
    lines = []
    for step in steps:
        command = shlex.join(step.argv) + (f" > {shlex.quote(str(step.stdout_to))}" if step.stdout_to else "")
        lines.append(f"# {step.why}\n{command}")
    return "\n".join(lines)
