"""``edgevit sweep``: models x targets x precisions, each cell convert -> validate -> bench, on Ray or in this
process, never converting what the content-addressed cache (edgevit.export.cache) already holds.

- ``plan``: the cells, from flags or a TOML/YAML file, all checked before any work;
- ``presets``: ``seeds`` (the Makefile's BENCH_MODELS) and ``wtf`` (the paper zoo that timm provides);
- ``tasks``: one cell's conversion and timing, as functions any engine runs;
- ``engines``: Ray and the in-process engine, and the failure policy (``run_jobs``);
- ``document``: sweep.json and results.json, rewritten atomically as tasks finish;
- ``driver``: ``run_sweep``, which ties them together.
"""

from edgevit.studies.sweep.driver import SweepEvents, run_sweep
from edgevit.studies.sweep.plan import Cell, PlanError, SweepPlan, build_plan, plan_from_file

__all__ = ["Cell", "PlanError", "SweepEvents", "SweepPlan", "build_plan", "plan_from_file", "run_sweep"]
