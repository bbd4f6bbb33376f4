"""Native libraries' console chatter never reaches the user's terminal (it goes to a log file)."""

from __future__ import annotations

import subprocess
import sys

from edgevit.base.native_output import NATIVE_LOG


def test_validating_a_pte_prints_no_cpuinfo_lines(xs_artifacts):
    run = subprocess.run([sys.executable, "-m", "edgevit.cli", "validate", str(xs_artifacts["executorch"])],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "pass" in run.stdout
    assert "cpuinfo_utils" not in run.stdout + run.stderr
    assert "cpuinfo_utils" in NATIVE_LOG.read_text(errors="replace")  # kept, not lost
