"""The converter contract: ``prepare(model)`` returns an inference module computing the same function.

A converter is a list of rewrites (``converters.rewrites``) plus model-specific glue. It never changes the
function: ``prepare(model)(x) == model(x)`` within 1e-5 relative L2 in fp32, which the tests check for every
registered model. The table of converters by name is ``converters.CONVERTERS``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class Prepared:
    """The prepared module and what was done to it, for the manifest and the CLI output."""

    module: nn.Module
    rewrites: list[str] = field(default_factory=list)


class Converter:
    """Base converter: subclasses implement ``_rewrite`` on a deep copy; the original is never touched."""

    name = "base"

    def prepare(self, model: nn.Module) -> Prepared:
        work = copy.deepcopy(model).eval()
        applied: list[str] = []
        with torch.no_grad():
            module = self._rewrite(work, applied)
        module.eval()
        for p in module.parameters():
            p.requires_grad_(False)
        return Prepared(module=module, rewrites=applied)

    def _rewrite(self, model: nn.Module, applied: list[str]) -> nn.Module:
        raise NotImplementedError
