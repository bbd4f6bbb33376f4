"""Numeric helpers the tests share (a module of its own: `from conftest import ...` is ambiguous once a test
subfolder has its own conftest.py)."""

from __future__ import annotations

import torch


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())
