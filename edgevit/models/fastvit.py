"""FastViT's train-time modules, their reparameterization and its checkpoint layouts (timm's, Apple's).

These belong to the model definition, not to a converter: the registry's checkpoint filter needs them to load
a fused (``_reparam``) checkpoint, and the FastViT converter (``converters/fastvit.py``) runs them first.
"""

from __future__ import annotations

import re

from timm.models import fastvit as tfv
from torch import nn

from edgevit.models.checkpoints import unwrap_state_dict

# Modules that carry train-time branches until their ``reparameterize`` has run.
TRAIN_TIME_MODULES = (tfv.MobileOneBlock, tfv.ReparamLargeKernelConv, tfv.RepMixer, tfv.RepConditionalPosEnc)


def is_fused(module: nn.Module) -> bool:
    return getattr(module, "reparam_conv", None) is not None


def reparameterize_fastvit(model: nn.Module) -> int:
    """Run timm's ``reparameterize`` on every train-time module not fused yet (in place); returns the count.

    timm's ``reparameterize_model`` would call it on already fused modules too (a ``_reparam`` checkpoint,
    or a model fused once already) and fail there: ReparamLargeKernelConv and RepConditionalPosEnc have no
    guard, RepMixer never sets its ``inference_mode`` flag.
    """
    fused = 0
    for module in list(model.modules()):  # pre-order: a RepMixer fuses its own MobileOne children first
        if isinstance(module, TRAIN_TIME_MODULES) and not is_fused(module):
            module.reparameterize()
            fused += 1
    return fused


def unfused_modules_of_kind(model: nn.Module) -> list[str]:
    """Train-time FastViT modules of ``model`` not yet reparameterized."""
    return [n for n, m in model.named_modules() if isinstance(m, TRAIN_TIME_MODULES) and not is_fused(m)]


_APPLE_RE_CPE = re.compile(r"^network\.(\d+)\.reparam_conv\.")
_TRAIN_TIME_KEYS = ("rbr_conv", "rbr_scale", "rbr_skip", "lkb_origin", "small_conv", "conv_kxk", "conv_scale",
                    "large_conv", ".identity.", "token_mixer.mixer.", "token_mixer.norm.", ".pe.", "pos_enc.")


def is_reparameterized_checkpoint(state_dict: dict) -> bool:
    """True for an inference (``_reparam``) checkpoint, timm or Apple layout: its branches are already fused.

    Fused modules save ``reparam_conv`` (Apple's large-kernel conv: ``lkb_reparam``); a train-time checkpoint
    has none. A mix of both cannot come from either code base and is refused.
    """
    keys = list(unwrap_state_dict(state_dict))
    fused = [k for k in keys if "reparam_conv." in k or "lkb_reparam." in k]
    if not fused:
        return False
    branches = [k for k in keys if any(t in k for t in _TRAIN_TIME_KEYS)]
    if branches:
        raise ValueError(f"checkpoint mixes fused keys ({fused[0]}) and train-time branch keys ({branches[0]})")
    return True


def fastvit_checkpoint_filter(state_dict: dict, model: nn.Module) -> dict:
    """Any FastViT checkpoint -> timm's key layout for ``model``; fused checkpoints fuse ``model`` first.

    Layouts: timm (``stem.``/``stages.``), Apple ml-fastvit train-time (``patch_embed.``/``network.N``) and
    Apple's ``_reparam`` inference checkpoints, whose branches are already folded. timm's
    ``checkpoint_filter_fn`` covers the Apple train-time layout (and MobileCLIP); it does not cover Apple's
    ``_reparam`` keys (``lkb_reparam``, RepCPE's ``network.N.reparam_conv``) nor timm-layout fused checkpoints
    (it renames ``head.fc`` to ``head.fc.fc``). For a fused checkpoint, ``model`` is reparameterized in place
    (timm's ``reparameterize`` on each train-time module) so that its keys match; the converter then skips
    what is fused already.
    """
    state_dict = unwrap_state_dict(dict(state_dict))
    if is_reparameterized_checkpoint(state_dict):
        reparameterize_fastvit(model)
    elif not unfused_modules_of_kind(model):
        raise ValueError("a train-time (unfused) checkpoint cannot load into an already reparameterized model")
    if any(k.startswith(("stem.", "stages.")) for k in state_dict):
        return state_dict  # timm layout
    renamed = {}
    for key, value in state_dict.items():
        key = key.replace(".lkb_reparam.", ".reparam_conv.")
        key = _APPLE_RE_CPE.sub(r"network.\1.pe.__reparam__.", key)  # RepCPE: keep it a pos_emb key for timm
        renamed[key] = value
    out = tfv.checkpoint_filter_fn(renamed, model)
    return {k.replace(".pos_emb.pos_enc.__reparam__.", ".pos_emb.reparam_conv."): v for k, v in out.items()}
