"""The phone harnesses: `edgevit harness ios` staging and `edgevit bench --device android`."""

from __future__ import annotations

import argparse
from pathlib import Path

from edgevit.base.errors import EdgevitError
from edgevit.commands.output import console, progress_printer


def run_harness_ios(args: argparse.Namespace) -> int:
    from edgevit.bench.device.ios import stage_ios_harness

    out = stage_ios_harness(Path(args.artifacts), Path(args.out), rounds=args.rounds, iterations=args.iterations,
                            compute_units=args.compute_units, warmup=args.warmup, overwrite=args.overwrite)
    console.print(f"[green]staged[/] {out}")
    console.print(f"next: open {out}/App/EdgevitBench.swiftpm in Xcode and run on your iPhone, or on a Mac: "
                  f"cd {out} && swift run -c release edgevit-ios-bench --help (see {out}/README.md)")
    return 0


def run_android_bench(args: argparse.Namespace) -> int:
    from edgevit.bench.device import android

    if not args.device.startswith("android"):
        raise EdgevitError(f"unknown --device {args.device!r}: use host, android or android:SERIAL")
    if not args.out:
        raise EdgevitError("--device android needs --out FILE for the results pulled from the phone")
    if args.threads is not None or args.profile:
        raise EdgevitError("--threads and --profile are for the host harness: the Android app runs ExecuTorch's "
                           "Module API, whose thread pool it does not set (its results record threads as null)")
    serial = android.parse_device_arg(args.device)
    artifacts = []
    for item in args.items:
        path = Path(item)
        artifacts += sorted(path.glob("*.pte")) if path.is_dir() else [path]
    artifacts = android.check_artifacts(artifacts)
    iterations = args.iterations if args.iterations is not None else 50
    warmup = args.warmup if args.warmup is not None else 5
    apk = android.resolve_apk(Path(args.apk) if args.apk else None)
    if args.dry_run:
        steps = android.plan_android_bench(artifacts, serial, Path(args.out), iterations, warmup, apk)
        console.print(android.format_plan(steps), markup=False)
        return 0
    out = android.bench_on_android(artifacts, serial, Path(args.out), iterations, warmup, apk,
                                   log=progress_printer(args.quiet))
    console.print(f"[green]wrote[/] {out} — next: edgevit report {out} --out reports")
    return 0
