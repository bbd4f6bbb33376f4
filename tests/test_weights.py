"""Checkpoint loading: official and timm layouts, safetensors, and every way a checkpoint can be wrong."""

from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from edgevit.base.errors import WeightsError
from edgevit.models.build import build_model
from edgevit.models.checkpoints import load_weights
from edgevit.models.registry import get_spec


def official_layout(timm_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """timm keys -> the key layout of the official SwiftFormer release (github.com/Amshaker/SwiftFormer)."""
    out = {}
    for key, value in timm_state.items():
        k = key.replace("stem.", "patch_embed.").replace("head_dist.", "dist_head.").replace("attn.proj.", "attn.Proj.")
        k = re.sub(r"\.(layer_scale(?:_1|_2)?)\.gamma$", r".\1", k)
        m = re.match(r"^stages\.(\d+)\.(blocks|downsample)\.(.*)$", k)
        if m:
            stage, part, rest = int(m.group(1)), m.group(2), m.group(3)
            k = f"network.{2 * stage}.{rest}" if part == "blocks" else f"network.{2 * stage - 1}.{rest}"
        out[k] = value.clone()
    return out


@pytest.fixture(scope="module")
def trained():
    """A 'trained' model: exercised random weights standing in for a real checkpoint."""
    spec = get_spec("swiftformer-xs")
    model, _ = build_model(spec, seed=7)
    return spec, model


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_official_layout_keys_look_official(trained):
    keys = official_layout(trained[1].state_dict())
    assert "patch_embed.0.weight" in keys and "network.6.3.attn.Proj.weight" in keys
    assert "network.6.3.layer_scale_1" in keys and "dist_head.weight" in keys


@pytest.mark.parametrize("layout", ["official", "timm", "wrapped", "module-prefix", "safetensors"])
def test_loads_every_supported_layout(tmp_path, trained, layout):
    spec, model = trained
    state = model.state_dict()
    if layout == "official":
        path, obj = tmp_path / "SwiftFormer_XS.pth", {"model": official_layout(state)}
    elif layout == "timm":
        path, obj = tmp_path / "timm.pth", state
    elif layout == "wrapped":
        path, obj = tmp_path / "wrapped.pth", {"state_dict": state, "epoch": 300}
    elif layout == "module-prefix":
        path, obj = tmp_path / "ddp.pth", {f"module.{k}": v for k, v in state.items()}
    else:
        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
        obj = None
    if obj is not None:
        torch.save(obj, path)
    fresh, info = build_model(spec, weights=path)
    assert info.source == "checkpoint" and len(info.sha256) == 64
    assert _same(fresh, model)


def test_mismatch_names_missing_unexpected_and_shapes(tmp_path, trained):
    spec, model = trained
    state = dict(model.state_dict())
    state.pop("stages.0.blocks.0.dwconv.weight")
    state["extra.weight"] = torch.zeros(1)
    state["head.weight"] = torch.zeros(10, 220)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError) as err:
        load_weights(spec.build(), spec, path)
    msg = str(err.value)
    assert "missing keys (1): stages.0.blocks.0.dwconv.weight" in msg
    assert "unexpected keys (1): extra.weight" in msg
    assert "head.weight: checkpoint (10, 220) vs model (1000, 220)" in msg


def test_other_variant_is_refused(tmp_path, trained):
    _, model = trained
    path = tmp_path / "xs.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(WeightsError, match="does not fit swiftformer-s"):
        build_model(get_spec("swiftformer-s"), weights=path)


class NotATensor:
    def __reduce__(self):  # what a malicious checkpoint would carry
        return (print, ("pickled code ran",))


def test_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"model": NotATensor()}, path)
    spec = get_spec("swiftformer-xs")
    with pytest.raises(WeightsError, match="weights_only=True"):
        load_weights(spec.build(), spec, path)
    assert "pickled code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_corrupt_file_is_refused(tmp_path, trained, suffix):
    spec, model = trained
    path = tmp_path / f"truncated{suffix}"
    if suffix == ".pth":
        torch.save(model.state_dict(), path)
    else:
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(WeightsError, match="truncated"):
        load_weights(spec.build(), spec, path)


def test_missing_file(tmp_path):
    spec = get_spec("swiftformer-xs")
    with pytest.raises(WeightsError, match="not found"):
        load_weights(spec.build(), spec, tmp_path / "nope.pth")
