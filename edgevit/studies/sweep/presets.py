"""Named model lists for ``edgevit sweep --preset``: the seed models and the paper zoo.

``wtf``: every architecture benchmarked in Nauen et al., "Which Transformer to Favor: A Comparative Analysis of
Efficiency in Vision Transformers" (WACV 2025, arXiv:2308.09372; the architectures listed by its code release,
github.com/tobna/WhatTransformerToFavor) that timm provides, at the smallest size the paper lists. Each row says
which timm model (or edgevit registry name) stands for it, or why none does. The paper trains every model itself
at 224x224; edgevit converts timm's definitions (random exercised weights unless --weights), so a row measures the
architecture, not the paper's checkpoint.
"""

from __future__ import annotations

# Makefile BENCH_MODELS: the models the host report is made of.
SEEDS = ("swiftformer-xs", "swiftformer-s", "swiftformer-l1", "swiftformer-l3", "fastvit-t8", "fastvit-t12",
         "fastvit-s12", "fastvit-sa12", "fastvit-sa24", "fastvit-sa36", "fastvit-ma36", "turbovit", "hiera-t")

# architecture in the paper -> (edgevit name or timm:<name>, or None, note)
WTF_ARCHITECTURES: tuple[tuple[str, str | None, str], ...] = (
    ("ViT-Ti/16", "vit-ti", "timm vit_tiny_patch16_224"),
    ("ViT-S/16", "timm:vit_small_patch16_224", ""),
    ("DeiT (Ti)", "deit-t", "timm deit_tiny_patch16_224"),
    ("DeiT III / LayerScale (S)", "timm:deit3_small_patch16_224", "timm has no DeiT III tiny"),
    ("CaiT (XXS-24)", "timm:cait_xxs24_224", ""),
    ("CoaT (Tiny)", "timm:coat_tiny", ""),
    ("CoaT-Lite (Tiny)", "timm:coat_lite_tiny", ""),
    ("EfficientFormerV2 (S0)", "efficientformerv2-s0", ""),
    ("EfficientViT (B0)", "efficientvit-b0", "MIT's EfficientViT, timm efficientvit_b0"),
    ("FastViT (T8)", "fastvit-t8", "edgevit's FastViT converter"),
    ("FocalNet (Tiny SRF)", "timm:focalnet_tiny_srf", ""),
    ("HaloNet (H1)", "timm:halonet_h1", ""),
    ("MLP-Mixer (S/16)", "timm:mixer_s16_224", ""),
    ("Next-ViT (S)", "timm:nextvit_small", ""),
    ("ResNet-18 (baseline)", "timm:resnet18", ""),
    ("SwiftFormer (XS)", "swiftformer-xs", "edgevit's SwiftFormer converter"),
    ("Swin (T)", "swin-t", "timm swin_tiny_patch4_window7_224"),
    ("Swin V2 (T)", "timm:swinv2_tiny_window8_256", "timm's official Swin V2 tiny is window 8 at 256 (the paper: "
     "window 7 at 224)"),
    ("XCiT (Nano-12/16)", "timm:xcit_nano_12_p16_224", ""),
    ("XCiT (Tiny-12/16)", "timm:xcit_tiny_12_p16_224", ""),
    # in the paper, not in timm
    ("A-ViT", None, "not in timm (NVlabs code)"),
    ("AFNO", None, "not in timm"),
    ("CvT", None, "not in timm"),
    ("DynamicViT", None, "not in timm (token pruning with a learned keep-mask)"),
    ("EfficientMod", None, "not in timm"),
    ("EViT", None, "not in timm (token reorganisation)"),
    ("FNet", None, "not in timm"),
    ("GFNet", None, "not in timm"),
    ("HiViT", None, "not in timm"),
    ("Hydra Attention", None, "not in timm"),
    ("Informer", None, "not in timm"),
    ("Linear Transformer", None, "not in timm"),
    ("Linformer", None, "not in timm"),
    ("Nystromformer", None, "not in timm"),
    ("Performer", None, "not in timm"),
    ("PolySA", None, "not in timm"),
    ("Reformer", None, "not in timm"),
    ("ResT", None, "not in timm"),
    ("Routing Transformer", None, "not in timm"),
    ("Sinkhorn Transformer", None, "not in timm"),
    ("SLAB", None, "not in timm"),
    ("STViT", None, "not in timm"),
    ("Switch Transformer", None, "not in timm"),
    ("Synthesizer", None, "not in timm"),
    ("TokenLearner", None, "not in timm"),
    ("ToMe", None, "not in timm (a token-merging patch applied to timm's ViT, not a model)"),
    ("Wave-ViT", None, "not in timm"),
)

PRESETS = {
    "seeds": SEEDS,
    "wtf": tuple(name for _arch, name, _note in WTF_ARCHITECTURES if name is not None),
}
# What a preset sweeps when no --target / --quantize / --compress is given: (target, variant) pairs.
PRESET_CELLS = {
    "seeds": (("coreml", "none"), ("executorch", "none"), ("onnx", "none"), ("executorch", "int8")),
    "wtf": (("coreml", "none"), ("executorch", "none"), ("onnx", "none"), ("executorch", "int8")),
}


def wtf_mapping_markdown() -> str:
    """The paper's architectures and what stands for each in the wtf preset (for the README)."""
    lines = ["| architecture (paper) | edgevit / timm name | note |", "|---|---|---|"]
    for arch, name, note in WTF_ARCHITECTURES:
        lines.append(f"| {arch} | {name or 'missing'} | {note or '-'} |")
    return "\n".join(lines) + "\n"
