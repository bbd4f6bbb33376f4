"""Markdown/HTML reports and Pareto plots from benchmark results (schema.json dicts, see bench/results.py).

The report only shows what was measured: a null number, or any number of a failed / not-run result, is printed
as "not measured" (with the error), never filled in or dropped. Accuracies are the *published* ImageNet top-1
given by the caller; a model without one is listed as not plotted rather than placed on the plot.

Time and memory grow linearly with the number of results: the Pareto fronts are a sort and a sweep, every
speed-up pairs a result with at most one baseline per baseline form, the plot draws at most MAX_PANELS devices
and MAX_SERIES series each, and a table longer than TABLE_ROW_LIMIT rows is summarised in the document while
every row goes to results.csv / speedups.csv beside it (written for every report).

One job per module: ``pareto`` (front maths), ``views`` (a result's cells, order, source), ``series`` (plot
series and their fronts), ``speedups`` (which results a speed-up compares), ``document`` (blocks and their
Markdown / HTML renderings), ``plot`` and ``plot_labels`` (the PNG), ``sections`` (each section's blocks),
``csv_files`` (results.csv, speedups.csv), ``writer`` (write_report).
"""

from edgevit.report.pareto import pareto_front
from edgevit.report.plot import MAX_PANELS, MAX_SERIES
from edgevit.report.sections import TABLE_ROW_LIMIT
from edgevit.report.series import OPTIMAL_MARK, XAxis
from edgevit.report.speedups import SPEEDUP_BASELINES, SpeedupPair, speedup_pairs
from edgevit.report.views import FORM_ORDER, NOT_MEASURED
from edgevit.report.writer import DEFAULT_TITLE, ReportPaths, write_report

__all__ = ["DEFAULT_TITLE", "FORM_ORDER", "MAX_PANELS", "MAX_SERIES", "NOT_MEASURED", "OPTIMAL_MARK",
           "SPEEDUP_BASELINES", "TABLE_ROW_LIMIT", "ReportPaths", "SpeedupPair", "XAxis", "pareto_front",
           "speedup_pairs", "write_report"]
