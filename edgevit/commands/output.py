"""What every command prints through: one console laid out for 120 columns, progress lines, number cells."""

from __future__ import annotations

import math
import sys

from rich.console import Console

# Logs and CI are not terminals: rich would squeeze tables into 80 columns there.
TABLE_WIDTH = 120  # what a table is laid out for when stdout is not a terminal; --wide lifts it


console = Console(highlight=False, width=None if sys.stdout.isatty() else TABLE_WIDTH)
WIDE_WIDTH = 240  # --wide: every column at full width, left to the terminal to wrap (rich would squeeze it)


def print_table(table, wide: bool = False) -> None:
    """A table on the shared console, or with ``wide`` laid out at WIDE_WIDTH columns or the terminal's."""
    shown = Console(highlight=False, width=max(console.width, WIDE_WIDTH)) if wide else console
    shown.print(table)


def progress_printer(quiet: bool):
    def say(message: str) -> None:
        if not quiet:
            console.print(f"[dim]•[/] {message}")

    return say


def fmt_number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}"


def fmt_ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.2f}"
