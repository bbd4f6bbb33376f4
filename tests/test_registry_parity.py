"""Every registered model: its converter's prepared module computes the original's function.

Driven by the registry, so a model added there is checked here with no test to write. Weights are the
exercised random init (layer scales near 1, non-trivial BatchNorm statistics, a re-drawn head), and the
check first asserts that the output depends on the input, or a broken block could pass any tolerance.
Per-family tests (test_swiftformer.py, test_fastvit.py, test_hiera.py, test_zoo.py) check the rewrites'
details; the artifact-level parity (CoreML, ExecuTorch) is in test_mil_parity.py and the export tests.
"""

from __future__ import annotations

import pytest
import torch
from support.numerics import rel_l2
from torch import nn

from converters import get_converter
from edgevit.models.build import build_model
from edgevit.models.registry import get_spec, model_names
from edgevit.validate.inputs import photo_inputs

# With exercised weights these are chaotic in fp32 (attention logits std ~300: the original differs from
# its own float64 run by 20-40%), so the comparison runs in float64, where the fusions are exact.
FLOAT64 = {"levit-128s", "efficientvit-m0"}


@pytest.mark.parametrize("name", model_names())
def test_prepared_module_keeps_the_function(name):
    spec = get_spec(name)
    default = torch.get_default_dtype()
    if name in FLOAT64:
        torch.set_default_dtype(torch.float64)  # fused modules are created in the default dtype
    try:
        original, _ = build_model(spec, seed=1)
        prepared = get_converter(spec.converter).prepare(original)
        photo = photo_inputs(spec)[0].tensor.to(torch.get_default_dtype())
        noise = torch.randn(1, *spec.input_size, generator=torch.Generator().manual_seed(2))
        x = torch.cat([noise.to(photo.dtype), photo])
        with torch.no_grad():
            ref, out = original(x), prepared.module(x)
    finally:
        torch.set_default_dtype(default)
    assert (ref - ref.mean(0)).norm() / ref.norm() > 0.05, "exercised weights must make the output depend on x"
    assert rel_l2(out, ref) <= (1e-7 if name in FLOAT64 else 1e-5)
    if name in ("repvit-m0-9", "mobileone-s0", "levit-128s"):
        assert any("reparameterize_model" in r for r in prepared.rewrites)
    if name in ("repvit-m0-9", "mobileone-s0"):  # train-time branches: fused away, no BatchNorm left
        assert not [m for m in prepared.module.modules() if isinstance(m, nn.BatchNorm2d)]
