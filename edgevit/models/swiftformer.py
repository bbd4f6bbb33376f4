"""SwiftFormer from timm, in either of the two attention forms its official checkpoints were trained with.

timm's ``EfficientAdditiveAttention`` implements the current official release: the global attention
weights are ``normalize(q @ w_g * scale, dim=tokens)``. The first official release (and the Hugging Face
port) computed ``softmax`` over the trailing axis of that N x 1 tensor, which makes every weight exactly 1:
the global query is then the plain sum of the normalised queries. Both generations share one key layout, so
the form is chosen explicitly (``attention_form``) and recorded in the manifest, never guessed.
"""

from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from timm.models.swiftformer import EfficientAdditiveAttention
from torch import nn

ATTENTION_FORMS = ("normalize", "softmax")


class SoftmaxAdditiveAttention(EfficientAdditiveAttention):
    """The first release's attention: softmax over a size-1 axis, i.e. uniform weights over tokens."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, _, H, W = x.shape
        x = x.flatten(2).permute(0, 2, 1)
        query = F.normalize(self.to_query(x), dim=-1)
        key = F.normalize(self.to_key(x), dim=-1)
        attn = (query @ self.w_g * self.scale_factor).softmax(dim=-1)
        global_query = torch.sum(attn * query, dim=1, keepdim=True)
        out = self.proj(global_query * key) + query
        return self.final(out).permute(0, 2, 1).reshape(B, -1, H, W)


def build_swiftformer(timm_name: str, attention_form: str = "normalize", **kwargs) -> nn.Module:
    """timm's SwiftFormer with the requested attention form swapped in (weights are unaffected)."""
    if attention_form not in ATTENTION_FORMS:
        raise ValueError(f"attention_form must be one of {ATTENTION_FORMS}, got {attention_form!r}")
    model = timm.create_model(timm_name, pretrained=False, **kwargs)
    if attention_form == "softmax":
        for module in model.modules():
            if type(module) is EfficientAdditiveAttention:
                module.__class__ = SoftmaxAdditiveAttention
    return model.eval()
