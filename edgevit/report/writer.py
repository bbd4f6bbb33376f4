"""write_report: build the blocks, render them, and publish the five files atomically into --out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgevit.base.atomic import write_bytes_atomic
from edgevit.base.errors import OutputError
from edgevit.bench.profile_files import ProfileKey
from edgevit.report.csv_files import results_csv, speedups_csv
from edgevit.report.document import Block, to_html, to_markdown
from edgevit.report.plot import render_plot
from edgevit.report.precision_plot import PRECISION_PNG, precision_blocks, render_precision_plot
from edgevit.report.published import published_latency_blocks
from edgevit.report.sections import pareto_blocks, results_blocks, speedup_blocks, summary_blocks
from edgevit.report.series import XAxis, pareto_data
from edgevit.report.speedups import speedup_pairs
from edgevit.report.versus import versus_blocks
from edgevit.report.views import Sources

DEFAULT_TITLE = "edgevit benchmark report"
_ADVICE = "choose a writable --out directory"


@dataclass(frozen=True)
class ReportPaths:
    """Where write_report put its outputs."""

    markdown: Path
    html: Path
    png: Path
    results_csv: Path
    speedups_csv: Path
    precision_png: Path | None = None  # logits PSNR against latency per model, when two artifacts of one have both


def _prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"--out {out_dir} exists and is not a directory; choose another path.") from None
    except OSError as e:
        raise OutputError(f"cannot create --out directory {out_dir}: {e.strerror or e}; "
                          "choose a writable path.") from None


def write_report(results: Sequence[Mapping[str, Any]], out_dir: Path, published_top1: Mapping[str, float],
                 title: str = DEFAULT_TITLE, x_axis: XAxis = "latency",
                 published_latency: Mapping[str, Mapping[str, Any]] | None = None,
                 profiles: Mapping[ProfileKey, Mapping[str, Any]] | None = None) -> ReportPaths:
    """Write report.md, a self-contained report.html (plots inlined), pareto.png, results.csv and speedups.csv,
    and precision.png (logits PSNR against latency per model) when the results carry recorded PSNRs.

    `results` are schema.json result dicts (as returned by load_results); `published_top1` maps model name to
    the paper's ImageNet top-1 in percent; `x_axis` is "latency" (median ms) or "throughput" (images/s);
    `published_latency` maps model name to the phone latency its paper published (edgevit.models.catalog), shown
    in its own section beside device-harness results; `profiles` (edgevit.bench.profile_files.profiles_beside)
    name each runtime's slowest op type in the table of the .pte against onnxruntime.
    """
    if x_axis not in ("latency", "throughput"):
        raise ValueError(f"x_axis must be 'latency' or 'throughput', got {x_axis!r}")
    out_dir = Path(out_dir)
    sources = Sources(results)
    pareto = pareto_data(results, published_top1, sources, x_axis)
    pairs = speedup_pairs(results)
    blocks = [Block("h1", title), *summary_blocks(results, sources)]
    if results:
        blocks += [*versus_blocks(results, profiles or {}), *pareto_blocks(pareto, x_axis), *speedup_blocks(pairs),
                   *results_blocks(results, published_top1, pareto, sources),
                   *published_latency_blocks(results, published_latency or {})]
    else:
        blocks += [Block("p", "No results were given."), Block("figure", "empty Pareto plot")]
    png = render_plot(pareto, x_axis)
    precision_png = render_precision_plot(results)
    paths = ReportPaths(out_dir / "report.md", out_dir / "report.html", out_dir / "pareto.png",
                        out_dir / "results.csv", out_dir / "speedups.csv",
                        out_dir / PRECISION_PNG if precision_png is not None else None)
    if precision_png is not None:
        blocks += precision_blocks(results)
    _prepare_out_dir(out_dir)
    write_bytes_atomic(paths.png, png, _ADVICE)
    if paths.precision_png is not None:
        write_bytes_atomic(paths.precision_png, precision_png, _ADVICE)
    write_bytes_atomic(paths.markdown, to_markdown(blocks, paths.png.name).encode("utf-8"), _ADVICE)
    images = {PRECISION_PNG: precision_png} if precision_png is not None else None
    write_bytes_atomic(paths.html, to_html(blocks, title, png, images).encode("utf-8"), _ADVICE)
    write_bytes_atomic(paths.results_csv, results_csv(results, published_top1, pareto), _ADVICE)
    write_bytes_atomic(paths.speedups_csv, speedups_csv(pairs), _ADVICE)
    return paths
