"""Shared fixtures. Models get exercised weights (layer scales ~1, calibrated BatchNorm statistics, wide
head) so a broken block cannot hide under the tolerance; see edgevit/models/random_init.py."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")
warnings.filterwarnings("ignore")
torch.set_num_threads(max(1, os.cpu_count() or 1))


from support.numerics import rel_l2  # noqa: E402,F401 - kept importable from here too


@pytest.fixture(scope="session")
def xs_artifacts(tmp_path_factory) -> dict[str, Path]:
    """swiftformer-xs converted once to every target (the expensive part of the suite)."""
    from edgevit.api import convert

    out = tmp_path_factory.mktemp("artifacts")
    result = convert("swiftformer-xs", ["coreml", "executorch", "onnx"], out)
    return {a.target: a.path for a in result.artifacts} | {"_result": result}  # type: ignore[dict-item]


@pytest.fixture(scope="session")
def readme_run(tmp_path_factory) -> tuple[Path, object]:
    """The README's Python API example run twice in one fresh process; its artifacts folder serves as the known
    good conversion (swiftformer-xs, ONNX) that the bad-input and interrupt tests copy and tamper with."""
    from support.readme import run_example_twice

    cwd = tmp_path_factory.mktemp("readme")
    return cwd, run_example_twice(cwd)
