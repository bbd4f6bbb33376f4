"""Convs coremltools folded with their BatchNorm (edgevit.validate.folded_norms): found, checked value by value,
carried into the reference; a clean package passes with a small margin, a folded weight or bias changed by 2% fails
by name. The paper zoo's timm:nextvit_small fp16 package missed the old allowance by 1.2x; with its 80+ folded
convs carried its error is 1.7e-5 against 1.6e-3.
"""

from __future__ import annotations

import pytest
import torch
from support.tamper import copy_artifact, scale_by, stored_tensors, tamper_tensor
from timm.layers import LayerScale2d
from torch import nn

from edgevit.validate.folded_norms import conv_norm_pairs, folded

TINY_CNN = "timm:test_resnet"  # conv + BatchNorm throughout


class Pairs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.BatchNorm2d(4)
        self.conv_act = nn.Conv2d(4, 4, 1)
        self.norm_after_act = nn.BatchNorm2d(4)  # a ReLU between: not foldable
        self.reused = nn.Conv2d(4, 4, 1)
        self.norm_of_reused = nn.BatchNorm2d(4)  # its conv runs twice: not one fold
        self.conv_scaled = nn.Conv2d(4, 4, 1)
        self.norm_scaled = nn.BatchNorm2d(4)
        self.drop = nn.Dropout(0.1)  # returns its input in eval mode
        self.ls = LayerScale2d(4, 0.7)  # coremltools folds it too

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.conv(x))
        x = self.norm_after_act(torch.relu(self.conv_act(x)))
        x = self.norm_of_reused(self.reused(self.reused(x)))
        return self.ls(self.drop(self.norm_scaled(self.conv_scaled(x))))


def test_pairs_are_a_conv_straight_into_its_norm_and_its_layer_scale():
    model = Pairs().eval()
    with torch.no_grad():
        for norm in (model.norm, model.norm_scaled):
            norm.running_mean.uniform_(-1, 1)
            norm.running_var.uniform_(0.5, 2)
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-1, 1)
        model.ls.gamma.uniform_(0.5, 1)
    pairs = conv_norm_pairs(model, lambda m: m(torch.randn(1, 3, 8, 8)))
    assert [(p.conv, p.norm, p.scale) for p in pairs] == [("conv", "norm", None),
                                                          ("conv_scaled", "norm_scaled", "ls.gamma")]
    state = {k: v.detach().numpy() for k, v in model.state_dict().items() if v.is_floating_point()}
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        weight, bias, _, _ = folded(state, pairs[0])
        fused = nn.functional.conv2d(x, torch.from_numpy(weight), torch.from_numpy(bias))
        assert torch.allclose(fused, model.norm(model.conv(x)), atol=1e-5)
        y = torch.randn(1, 4, 8, 8)
        weight, bias, _, _ = folded(state, pairs[1], with_scale=True)
        fused = nn.functional.conv2d(y, torch.from_numpy(weight), torch.from_numpy(bias))
        assert torch.allclose(fused, model.ls(model.norm_scaled(model.conv_scaled(y))), atol=1e-5)


@pytest.fixture(scope="module")
def fp16_package(tmp_path_factory):
    from edgevit.api import convert

    return convert(TINY_CNN, "coreml", tmp_path_factory.mktemp("folded"), mil_report=False).artifacts[0]


def _folded_tensors(artifact, ndim: int):
    """coremltools names the constants it computes itself ``const_<n>``: here, the folded convs' weights and biases
    (the Sequential conv+BatchNorm pairs edgevit's converter folds keep their parameter names)."""
    return [t for t in stored_tensors(artifact) if t.array.ndim == ndim and t.name.startswith("const_")]


def test_a_clean_package_passes_with_its_folded_convs_checked(fp16_package):
    fidelity = fp16_package.parity.fidelity
    print(f"\nclean: fidelity {fidelity.error:.3g} / {fidelity.bound:.3g} ({fidelity.margin:.3g}x), "
          f"{fidelity.values['checked']} stored tensors checked, unmatched {fidelity.values['unmatched']}")
    assert fp16_package.parity.status == "pass", fp16_package.parity.reason
    assert len(_folded_tensors(fp16_package.path, 4)) >= 3  # coremltools did fold: the case is exercised
    assert fidelity.values["n_unmatched"] <= 4 and fidelity.values["n_broken"] == 0  # the input normalisation only


@pytest.mark.parametrize("which", ["weight", "bias"])
def test_a_changed_folded_value_fails_by_name(fp16_package, tmp_path, which):
    from edgevit.api import validate

    copy = copy_artifact(fp16_package.path, tmp_path)
    target = _folded_tensors(copy, 4 if which == "weight" else 1)
    target = [t for t in target if t.array.size >= 16 and abs(t.array).max() > 0][len(target) // 2:][:1]
    assert target, "no folded tensor to change"
    tamper_tensor(copy, target[0], scale_by(1.02))
    result = validate(copy)
    print(f"\nfolded {which} {target[0].name} x1.02: {result.status}: {result.reason[:160]}")
    assert result.status == "fail" and result.failed_part == "fidelity"
    assert "is not model." in result.reason and "folded with model." in result.reason
