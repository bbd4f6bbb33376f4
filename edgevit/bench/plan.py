"""A timing plan (warm-up, timed iterations) that cannot exist with impossible values.

Every harness entry point (``bench``, ``zoo``, the CLI) builds one of these, so ``--iterations 0`` or a negative
warm-up is refused when the plan is made, before anything is timed or written.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgevit.base.arguments import MAX_ITERATIONS, check_int


@dataclass(frozen=True)
class Plan:
    warmup: int
    iterations: int

    def __post_init__(self) -> None:
        check_int("warm-up iterations (--warmup)", self.warmup, 0, MAX_ITERATIONS)
        check_int("timed iterations (--iterations)", self.iterations, 1, MAX_ITERATIONS)


def default_plan(batch: int) -> Plan:
    """Enough iterations for a stable median at batch 1; fewer at large batches where one run takes seconds, but
    never fewer than the fair comparison protocol needs for an interval (edgevit.bench.fair: 6 rounds of 3)."""
    return Plan(warmup=5, iterations=30) if batch <= 4 else Plan(warmup=2, iterations=18)


def plan_with(warmup: int | None, iterations: int | None, batch: int = 1) -> Plan | None:
    """The CLI's --warmup/--iterations over ``default_plan``: None when neither is given (each batch its default)."""
    if warmup is None and iterations is None:
        return None
    default = default_plan(batch)
    return Plan(warmup=default.warmup if warmup is None else warmup,
                iterations=default.iterations if iterations is None else iterations)
