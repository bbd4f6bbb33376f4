"""Task functions for the sweep engine tests: real work (and real failures) that Ray workers import by name.

Each returns where it ran (pid, Ray node id), so a test can see which worker and node did the work.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def where() -> dict:
    node = None
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except ImportError:
        pass
    return {"pid": os.getpid(), "node": node}


def square(x: int) -> dict:
    return {"value": x * x, **where()}


def raise_value_error(message: str) -> None:
    raise ValueError(message)


def die_once(marker: str) -> dict:
    """The first call kills its own worker process (SIGKILL: no Python cleanup, as the OOM killer would);
    the retry finds the marker and succeeds."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return {"killed_pid": int(path.read_text()), **where()}
