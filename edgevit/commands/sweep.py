"""`edgevit sweep` and `edgevit cache`: a live progress line while the sweep runs, then the status table."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from edgevit.commands.output import console


class SweepProgress:
    """A rich progress bar (done / failed / cached / running, elapsed, ETA) on a terminal; one line per event
    elsewhere (logs, CI), or nothing with --quiet."""

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.bar = None
        self.task = None
        self.start = time.monotonic()

    def __enter__(self) -> SweepProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.bar = Progress(TextColumn("[bold]sweep[/]"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                TimeRemainingColumn(), console=console, transient=False)
            self.bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def engine(self, name: str, total: int) -> None:
        if not self.quiet:
            console.print(f"[dim]•[/] engine: {name}")

    def update(self, counts: dict, message: str) -> None:
        total = sum(counts.values())
        done = sum(counts.get(s, 0) for s in ("converted", "cached", "failed", "unschedulable"))
        text = (f"converted {counts.get('converted', 0)} · cached {counts.get('cached', 0)} · failed "
                f"{counts.get('failed', 0) + counts.get('unschedulable', 0)} · running "
                f"{counts.get('running', 0) + counts.get('retrying', 0)}")
        if self.bar is not None:
            if self.task is None:
                self.task = self.bar.add_task("sweep", total=total, counts=text)
            self.bar.update(self.task, completed=done, counts=text)
            self.bar.console.print(f"[dim]•[/] {message}")
        elif not self.quiet:
            console.print(f"[dim]•[/] [{done}/{total}] {message}  ({text})")


def run_sweep(args: argparse.Namespace) -> int:
    import warnings

    from rich.markdown import Markdown

    from edgevit.studies.sweep import SweepEvents, build_plan, plan_from_file, run_sweep
    from edgevit.studies.sweep.document import RESULTS_FILE, SWEEP_FILE, summary_line, sweep_table_markdown

    variants = _variants(args)
    if args.plan:
        plan = plan_from_file(args.plan, bench=False if args.no_bench else None, retries=args.retries,
                              iterations=args.iterations)
        if args.models or args.target or variants or args.preset:
            from edgevit.base.errors import UsageError

            raise UsageError("--plan describes the whole sweep: give models, --target, --quantize, --compress and "
                             "--preset in the plan file, not as well on the command line")
    else:
        plan = build_plan(args.models, targets=args.target, variants=variants, preset=args.preset,
                          bench=not args.no_bench, iterations=args.iterations or 10, warmup=2,
                          retries=1 if args.retries is None else args.retries,
                          bench_resource=args.bench_resource)
    for note in plan.left_out:
        console.print(f"[dim]•[/] left out {note}")
    warnings.filterwarnings("ignore")
    with SweepProgress(args.quiet) as progress:
        doc = run_sweep(plan, args.out, cache_dir=args.cache, engine=args.engine, address=args.address,
                        unschedulable_after=args.unschedulable_after, num_cpus=args.ray_cpus,
                        events=SweepEvents(engine=progress.engine, update=progress.update), rebench=args.rebench)
    console.print(Markdown(sweep_table_markdown(doc.rows)))
    console.print(summary_line(doc.rows))
    out = Path(args.out)
    console.print(f"[green]wrote[/] {out / SWEEP_FILE}, {out / RESULTS_FILE} and {out / 'artifacts'}/")
    if args.markdown:
        from edgevit.base.atomic import write_text_atomic

        write_text_atomic(Path(args.markdown), sweep_table_markdown(doc.rows))
        console.print(f"[green]wrote[/] {args.markdown}")
    failed = sum(r["status"] in ("failed", "unschedulable") for r in doc.rows)
    return 3 if failed else 0


def _variants(args: argparse.Namespace) -> list[str] | None:
    """--quantize none int8 --compress w8 -> the variant list (None: the preset's or the targets' defaults)."""
    if not args.quantize and not args.compress:
        return None
    variants = list(args.quantize or ["none"])
    variants += [c for c in (args.compress or []) if c != "none"]
    return list(dict.fromkeys(variants))


def run_cache(args: argparse.Namespace) -> int:
    from rich.table import Table

    from edgevit.export.cache import ArtifactCache

    cache = ArtifactCache(args.cache)
    if args.action == "ls":
        entries = cache.entries()
        table = Table(title=f"artifact cache {cache.root}")
        for col in ("key", "artifact", "size MB", "created", "state"):
            table.add_column(col, overflow="fold")
        for e in entries:
            table.add_row(e.key[:12], e.artifact or "-", f"{e.size_bytes / 2**20:.1f}", e.created or "-",
                          e.problem or "ok")
        console.print(table)
        total = sum(e.size_bytes for e in entries)
        console.print(f"{len(entries)} entries, {total / 2**20:.1f} MB"
                      + (f"; {sum(e.problem is not None for e in entries)} corrupt or incomplete "
                         "(`edgevit cache prune` removes them)" if any(e.problem for e in entries) else ""))
        return 0
    if args.action == "prune":
        removed, freed = cache.prune(args.older_than)
        console.print(f"removed {removed} entries ({freed / 2**20:.1f} MB) from {cache.root}")
        return 0
    removed, freed = cache.clear()
    console.print(f"cleared {cache.root}: {removed} entries ({freed / 2**20:.1f} MB)")
    return 0
