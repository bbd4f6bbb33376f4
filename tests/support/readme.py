"""The README's Python API example, extracted from README.md and run as written."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

README = Path(__file__).parents[2] / "README.md"


def python_api_example() -> str:
    """The first ```python block of the README's "Python API" section."""
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README.md has no ```python block under '## Python API'"
    return match.group(1)


def run_example_twice(cwd: Path, timeout: float = 1200) -> subprocess.CompletedProcess:
    """One fresh process runs the example, then runs it again: the API must keep working after its first use."""
    code = textwrap.dedent(f"""
        import warnings
        warnings.filterwarnings("ignore")
        example = {python_api_example()!r}
        for run in (1, 2):
            print(f"=== run {{run}}", flush=True)
            exec(compile(example, "README.md", "exec"), {{"__name__": "__readme__"}})
        print("=== done", flush=True)
    """)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=timeout)
