"""`edgevit report`, `edgevit zoo` and the FastViT report: documents written from results and sweeps."""

from __future__ import annotations

import argparse
import warnings
from functools import partial
from pathlib import Path

from edgevit.commands.output import console, progress_printer


def run_report(args: argparse.Namespace) -> int:
    from edgevit.bench.profile_files import profiles_beside
    from edgevit.bench.results import load_results
    from edgevit.models.catalog import published_latency, published_top1
    from edgevit.report import DEFAULT_TITLE, write_report

    results = load_results([_results_file(Path(p)) for p in args.results])
    paths = write_report(results, Path(args.out), published_top1(), title=args.title or DEFAULT_TITLE,
                         x_axis=args.x_axis, published_latency=published_latency(), profiles=profiles_beside(results))
    for path in (paths.markdown, paths.html, paths.png, paths.results_csv, paths.speedups_csv):
        console.print(f"[green]wrote[/] {path}")
    return 0


def _results_file(path: Path) -> Path:
    """A sweep folder stands for the results file it streams (edgevit sweep's OUT/results.json)."""
    from edgevit.studies.sweep.document import RESULTS_FILE

    return path / RESULTS_FILE if path.is_dir() and (path / RESULTS_FILE).is_file() else path


def run_zoo(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from edgevit.models.registry import get_spec
    from edgevit.studies.zoo import run_zoo as sweep
    from edgevit.studies.zoo import write_zoo_json, zoo_summary, zoo_table_markdown

    for name in args.models:
        get_spec(name)  # an unknown name stops here, with the closest names, before any conversion
    _check_outputs(args, args.out)
    warnings.filterwarnings("ignore")
    engine = None
    if args.engine == "ray":
        from edgevit.studies.sweep.engines import RayEngine

        engine = RayEngine()
    try:
        rows = sweep(args.models or None, targets=args.target, out_dir=args.out, iterations=args.iterations,
                     mil_report=not args.no_mil_report, progress=progress_printer(args.quiet), engine=engine)
    finally:
        if engine is not None:
            engine.shutdown()
    markdown = zoo_table_markdown(rows)
    console.print(Markdown(markdown))
    _write_outputs(args, rows, markdown, write_zoo_json)
    console.print(zoo_summary(rows))
    return 0


def run_fastvit_report(args: argparse.Namespace) -> int:
    from rich.markdown import Markdown

    from edgevit.studies.zoo import fastvit_report, fastvit_report_markdown, write_zoo_json

    _check_outputs(args)
    warnings.filterwarnings("ignore")
    rows = fastvit_report(args.models or None, iterations=args.iterations, mil=not args.no_mil_report,
                          progress=progress_printer(args.quiet))
    markdown = fastvit_report_markdown(rows)
    console.print(Markdown(markdown))
    _write_outputs(args, rows, markdown, partial(write_zoo_json, kind="edgevit-fastvit-report/1"))
    return 0


def _check_outputs(args: argparse.Namespace, *folders: str) -> None:
    """Every folder the command will write to, proven writable before a sweep that can take half an hour."""
    from edgevit.base.atomic import ensure_writable_dir

    for folder in (*folders, *(Path(f).parent for f in (args.json, args.markdown) if f)):
        ensure_writable_dir(Path(folder))


def _write_outputs(args: argparse.Namespace, rows: list[dict], markdown: str, write_json) -> None:
    from edgevit.base.atomic import ensure_writable_dir, write_text_atomic

    if args.json:
        console.print(f"[green]wrote[/] {write_json(rows, args.json)}")
    if args.markdown:
        path = Path(args.markdown)
        ensure_writable_dir(path.parent)
        write_text_atomic(path, markdown)
        console.print(f"[green]wrote[/] {path}")
