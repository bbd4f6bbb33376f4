"""The large-kernel depthwise split (converters/rewrites/split_depthwise.py) and the backend hook (backends.py).

Exact in fp32 (relative L2 <= 1e-5), and on XNNPACK the pieces run on its depthwise microkernels: the test reads
the kernel names from XNNPACK's own per-op profile of the lowered program.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from converters.backends import backend_copy, for_backend
from converters.rewrites.split_depthwise import SplitDepthwiseConv2d, split_large_depthwise, splittable


def rel_l2(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _conv(c: int, k: int, stride: int, multiplier: int, bias: bool, padding) -> nn.Conv2d:
    torch.manual_seed(k * 100 + stride * 10 + multiplier)
    conv = nn.Conv2d(c, c * multiplier, k, stride, padding, groups=c, bias=bias).eval()
    if bias:
        nn.init.normal_(conv.bias)
    return conv


@pytest.mark.parametrize("k", [7, 9, 11])
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("multiplier", [1, 2])
@pytest.mark.parametrize("bias", [True, False])
def test_split_is_exact(k, stride, multiplier, bias):
    """Odd sizes, same/short/no padding; outputs in the original channel order."""
    for padding in (k // 2, 1, 0):
        conv = _conv(6, k, stride, multiplier, bias, padding)
        x = torch.randn(2, 6, 13 + k, 17 + k)
        split = SplitDepthwiseConv2d(conv)
        with torch.no_grad():
            ref, out = conv(x), split(x)
        assert out.shape == ref.shape
        assert rel_l2(out, ref) <= 1e-5, (k, stride, multiplier, bias, padding)
        assert split.sliced == (padding != k // 2 or k > 7)
        assert len(split.pieces) == multiplier * len(split.plan) and all(
            p.kernel_size in ((5, 5), (3, 3), (2, 2)) and p.groups == p.in_channels == 6 for p in split.pieces)


def _kernel_of(split: SplitDepthwiseConv2d) -> torch.Tensor:
    """The pieces' weights put back at the original taps they stand for."""
    kh, kw = split.kernel_size
    total = torch.zeros(split.channels, kh, kw)
    for spec, piece in zip(split.plan, split.pieces, strict=False):
        for u, v, r, t in spec.taps():
            if 0 <= r < kh and 0 <= t < kw:
                total[:, r, t] += piece.weight.detach()[:, 0, u, v]
    return total


def test_plans_each_tap_in_exactly_one_piece():
    """7x7 'same': centred 5x5, 3x3 and four 2x2 lattices, no slices; padding 1: pad + 5x5 pieces at offsets 0, 2."""
    torch.manual_seed(1)
    centred = SplitDepthwiseConv2d(nn.Conv2d(4, 4, 7, padding="same", groups=4))
    assert not centred.sliced
    assert [(p.size, p.dilation) for p in centred.plan] == [(5, (1, 1)), (3, (3, 3))] + [
        (2, d) for d in ((2, 6), (4, 6), (6, 2), (6, 4))]
    assert sum(p.size**2 for p in centred.plan) == 50  # 49 taps, the centre twice (zero in the 3x3)
    sliced = SplitDepthwiseConv2d(nn.Conv2d(4, 4, 7, padding=1, groups=4))
    assert sliced.sliced and [p.origin for p in sliced.plan] == [(0, 0), (0, 2), (2, 0), (2, 2)]
    for conv in (nn.Conv2d(4, 4, 7, padding="same", groups=4), nn.Conv2d(4, 4, 7, 2, padding=1, groups=4),
                 nn.Conv2d(4, 8, (5, 7), padding=(2, 3), groups=4), nn.Conv2d(4, 4, 9, padding=4, groups=4)):
        split = SplitDepthwiseConv2d(conv)
        # the pieces' taps add up to the original kernel: no tap twice, none missing
        kernel = conv.weight.detach().reshape(4, -1, *conv.kernel_size).transpose(0, 1).flatten(0, 1)
        assert torch.equal(_kernel_of(split), kernel[:4])
        x = torch.randn(1, 4, 9, 11)
        with torch.no_grad():
            assert rel_l2(split(x), conv(x)) <= 1e-5


@pytest.mark.parametrize("padding", [3, 1])
def test_a_wrong_piece_is_caught(padding):
    """The exactness check can fail: one piece reading its taps one row off changes the output."""
    conv = _conv(4, 7, 1, 1, True, padding)
    split = SplitDepthwiseConv2d(conv)
    spec = split.plan[1]
    if split.sliced:  # slice one row lower
        split.plan[1] = type(spec)(spec.size, (spec.origin[0] + 1, spec.origin[1]))
    else:  # a wider lattice, padded to the same output size
        (dy, dx), piece = spec.dilation, split.pieces[1]
        piece.dilation, piece.padding = (dy + 1, dx), (dy + 1, dx)
    x = torch.randn(1, 4, 12, 12)
    with torch.no_grad():
        ref, out = conv(x), split(x)
    assert out.shape == ref.shape and rel_l2(out, ref) > 1e-2


def test_only_large_depthwise_convs_are_rewritten():
    kept = [nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.Conv2d(8, 8, 5, padding=2, groups=8),
            nn.Conv2d(8, 8, 7, padding=3), nn.Conv2d(8, 8, 7, padding=3, groups=4),
            nn.Conv2d(8, 8, 7, padding=6, dilation=2, groups=8), nn.Conv2d(8, 32, 7, padding=3, groups=8),
            nn.Conv2d(8, 8, (7, 3), padding=(3, 1), groups=8), nn.Conv2d(1, 8, 7, padding=3)]
    assert not any(splittable(m) for m in kept)
    model = nn.Sequential(*kept)
    assert split_large_depthwise(model) == []
    assert [type(m) for m in model] == [nn.Conv2d] * len(kept)


def test_channel_multiplier_permutation_goes_into_the_next_conv():
    """Patch-embedding form: 7x7 s2 with 2 outputs per group, (activation,) 1x1 conv: the 1x1 conv takes the order."""
    torch.manual_seed(0)
    x = torch.randn(1, 6, 19, 21)
    for tail in ([nn.Conv2d(12, 5, 1)], [nn.GELU(), nn.Conv2d(12, 5, 1)]):
        model = nn.Sequential(nn.Conv2d(6, 12, 7, 2, 3, groups=6), *tail).eval()
        with torch.no_grad():
            ref = model(x)
        assert split_large_depthwise(model) == ["0"]
        assert model[0].grouped_order
        with torch.no_grad():
            assert rel_l2(model(x), ref) <= 1e-5
    # no plain conv next (a norm, or nothing): the module interleaves its outputs back itself
    for tail in ([nn.BatchNorm2d(12).eval()], []):
        model = nn.Sequential(nn.Conv2d(6, 12, 7, 2, 3, groups=6), *tail).eval()
        with torch.no_grad():
            ref = model(x)
        split_large_depthwise(model)
        assert not model[0].grouped_order
        with torch.no_grad():
            assert rel_l2(model(x), ref) <= 1e-5


def test_fastvit_t8_all_thirteen_7x7_convs_split_exactly():
    import timm

    from converters import get_converter

    model = timm.create_model("fastvit_t8", pretrained=False).eval()
    prepared = get_converter("fastvit").prepare(model).module
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        ref = prepared(x)
    work, applied = backend_copy(prepared, "xnnpack")
    assert work is not prepared and applied and applied[0].endswith(": 13")
    assert not any(isinstance(m, SplitDepthwiseConv2d) for m in prepared.modules())  # the original is untouched
    assert sum(isinstance(m, SplitDepthwiseConv2d) for m in work.modules()) == 13
    assert not any(type(m) is nn.Conv2d and max(m.kernel_size) > 5 for m in work.modules())
    with torch.no_grad():
        assert rel_l2(work(x), ref) <= 1e-5


@pytest.mark.parametrize("backend", ["coreml", None, "onnx"])
def test_for_backend_leaves_other_backends_unchanged(backend):
    model = nn.Sequential(nn.Conv2d(4, 4, 7, padding=3, groups=4), nn.Conv2d(4, 8, 7, 2, 3, groups=4))
    before = copy.deepcopy(model.state_dict())
    assert for_backend(model, backend) == []
    assert [type(m) for m in model] == [nn.Conv2d, nn.Conv2d]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    same, applied = backend_copy(model, backend)
    assert same is model and applied == []


def _xnnpack_kernels(pte, x: torch.Tensor) -> tuple[list[str], torch.Tensor]:
    """XNNPACK's own profile of one run: the operator names it ran (e.g. 'Convolution (NHWC, F32) DWConv #1')."""
    from executorch.devtools import Inspector
    from executorch.extension.pybindings.portable_lib import _load_for_executorch

    module = _load_for_executorch(str(pte), enable_etdump=True)
    out = module.forward((x,))[0]
    etdump = pte.with_suffix(".etdp")
    module.write_etdump_result_to_file(str(etdump))
    events = [e.name for block in Inspector(etdump_path=str(etdump)).event_blocks for e in block.events]
    return [e for e in events if e not in ("DELEGATE_CALL", "Method::execute")], out


def test_xnnpack_runs_the_pieces_on_its_depthwise_kernels(tmp_path):
    """Lowered: everything delegated (no portable fallback); XNNPACK runs the split on DWConv, the 7x7 on IGEMM."""
    from edgevit.export.executorch import export_executorch

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 16, 7, padding=3, groups=16), nn.Conv2d(16, 32, 7, 2, 3, groups=16),
                          nn.Conv2d(32, 8, 1)).eval()
    x = torch.randn(1, 16, 20, 20)
    with torch.no_grad():
        ref = model(x)
    split = copy.deepcopy(model)
    assert for_backend(split, "xnnpack")
    kernels = {}
    for name, module in (("original", model), ("split", split)):
        info = export_executorch(module, x, tmp_path / f"{name}.pte")["delegation"]
        assert info["delegated_subgraphs"] == 1 and info["non_delegated_ops"] == {}, info
        ops, out = _xnnpack_kernels(tmp_path / f"{name}.pte", x)
        assert rel_l2(out, ref) <= 1e-5
        kernels[name] = {op.rsplit(" #", 1)[0] for op in ops if op.startswith("Convolution")}
    assert "Convolution (NHWC, F32) DWConv" not in kernels["original"]  # why the split exists
    assert kernels["split"] == {"Convolution (NHWC, F32) DWConv"}, kernels  # (the 1x1 conv runs as Fully Connected)


@pytest.mark.slow
def test_convert_splits_only_the_xnnpack_pte(tmp_path):
    """api.convert: the XNNPACK .pte carries the split in its manifest and still passes parity; ONNX does not."""
    import json

    from edgevit.api import convert

    result = convert("fastvit-t8", ["executorch", "onnx"], tmp_path, mil_report=False)
    rewrites = {a.target: json.loads(a.manifest_path.read_text())["rewrites"] for a in result.artifacts}
    split = [r for r in rewrites["executorch"] if r.startswith("xnnpack: large-kernel depthwise")]
    assert len(split) == 1 and split[0].endswith(": 13")
    assert rewrites["onnx"] == result.rewrites == rewrites["executorch"][:-1]
    for art in result.artifacts:
        assert art.parity.status == "pass", art.parity.reason
    delegation = next(a for a in result.artifacts if a.target == "executorch").export_info["delegation"]
    assert delegation["delegated_subgraphs"] == 1 and delegation["non_delegated_ops"] == {}
