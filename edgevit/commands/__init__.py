"""The CLI's command handlers: each module prints one command's results (the API computes them).

``edgevit.cli`` parses the arguments and calls ``run_*`` / ``show_*`` here; nothing here computes a result.
"""

from edgevit.commands.bench import bench_table, profile_tables, run_bench, run_profile
from edgevit.commands.convert import run_bisect, run_convert, run_validate
from edgevit.commands.devices import run_android_bench, run_harness_ios
from edgevit.commands.models import show_models, show_turbovit_comparison, show_weights
from edgevit.commands.output import TABLE_WIDTH, console
from edgevit.commands.parity import parity_table, print_parity
from edgevit.commands.studies import run_fastvit_report, run_report, run_zoo
from edgevit.commands.sweep import run_cache, run_sweep

__all__ = [
    "TABLE_WIDTH", "bench_table", "console", "parity_table", "print_parity", "profile_tables", "run_android_bench",
    "run_bench", "run_bisect", "run_cache", "run_convert", "run_fastvit_report", "run_harness_ios", "run_profile",
    "run_report", "run_sweep", "run_validate", "run_zoo", "show_models", "show_turbovit_comparison", "show_weights",
]
