"""The curated models beyond SwiftFormer/Hiera: the FastViT family and the efficient-ViT zoo, as ModelSpecs.

Curated from the families compared in Nauen et al., "Which Transformer to Favor" (hybrid attention,
non-attention token mixing, window attention, sequence reduction, plain ViT baselines). Names are lower-case
with hyphens; builders are timm's; input size and preprocessing come from timm's pretrained config.

Published top-1 values: a number is given only where we are sure of it; otherwise ``published_top1`` is None
and ``top1_source`` says so. No value comes from timm's model cards.

The registry imports this module to register these specs; this module never imports the registry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing torch is not needed to read the published accuracies (edgevit report)
    from torch import nn

# Published ImageNet-1k top-1 of the models registry.py registers itself (sources there).
SWIFTFORMER_TOP1 = {"xs": 75.7, "s": 78.5, "l1": 80.9, "l3": 83.0}  # SwiftFormer paper, Table 2 (distilled, 224)
HIERA_T_TOP1 = 82.8  # Hiera paper, ImageNet-1k system-level comparison (Hiera-T)

FASTVIT_VARIANTS = ("t8", "t12", "s12", "sa12", "sa24", "sa36", "ma36")
FASTVIT_PAPER = ("Vasu et al., FastViT: A Fast Hybrid Vision Transformer using Structural Reparameterization, "
                 "ICCV 2023 (arXiv:2303.14189)")
# ImageNet-1k top-1 of the released (non-distilled) checkpoints, timm's ``fastvit_*.apple_in1k`` weights.
FASTVIT_TOP1 = {"t8": 76.2, "t12": 79.3, "s12": 79.9, "sa12": 80.9, "sa24": 82.7, "sa36": 83.6, "ma36": 83.9}
# The paper's ImageNet table reports the same models to within a few tenths (e.g. SA24 82.6).
FASTVIT_TOP1_SOURCE = "apple/ml-fastvit README, table 'Models trained on ImageNet-1K' (256x256, no distillation)"

# Latency each paper published on a phone (batch 1, CoreML): device figures, never comparable with this host's.
# TurboViT and Hiera-T are left out: neither paper publishes a phone latency (TurboViT reports GPU throughput,
# Hiera A100 images/s).
SWIFTFORMER_LATENCY_MS = {"xs": 0.7, "s": 0.8, "l1": 1.1, "l3": 1.9}
SWIFTFORMER_LATENCY = {"device": "iPhone 14", "compute_unit": "Neural Engine",
                       "source": "SwiftFormer paper (arXiv:2303.15446), Table 2, CoreML on iPhone 14"}
FASTVIT_LATENCY_MS = {"t8": 0.8, "t12": 1.2, "s12": 1.4, "sa12": 1.6, "sa24": 2.6, "sa36": 3.5, "ma36": 4.6}
FASTVIT_LATENCY = {"device": "iPhone 12 Pro", "compute_unit": "CoreML",
                   "source": "FastViT paper (arXiv:2303.14189) as its authors' apple/ml-fastvit README tabulates it, "
                             "iPhone 12 Pro, ModelBench app"}


def _spec(name: str, timm_name: str, family: str, paper: str, top1: float | None, source: str,
          converter: str = "generic", checkpoint_filter: Callable[[dict, nn.Module], dict] | None = None,
          latency: dict | None = None):
    """The registry's timm spec of ``timm_name`` (preprocessing from timm's config) under a curated name."""
    import dataclasses

    from edgevit.models.spec import timm_spec

    base = timm_spec(timm_name)
    return dataclasses.replace(base, name=name, converter=converter, family=family, paper=paper,
                               published_top1=top1, top1_source=source,
                               checkpoint_filter=checkpoint_filter or base.checkpoint_filter, published_latency=latency)


def fastvit_specs() -> list:
    """fastvit-t8 ... fastvit-ma36: timm builders, the ``fastvit`` converter, every FastViT checkpoint layout."""
    from edgevit.models.fastvit import fastvit_checkpoint_filter

    return [
        _spec(f"fastvit-{v}", f"fastvit_{v}", "fastvit", FASTVIT_PAPER, FASTVIT_TOP1[v], FASTVIT_TOP1_SOURCE,
              converter="fastvit", checkpoint_filter=fastvit_checkpoint_filter,
              latency={"ms": FASTVIT_LATENCY_MS[v], **FASTVIT_LATENCY})
        for v in FASTVIT_VARIANTS
    ]


# name, timm name, family (kind of token mixing), paper, published top-1 (None: not sure), where it is published
_ZOO: tuple[tuple[str, str, str, str, float | None, str], ...] = (
    # hybrid attention (convolutions + global attention in late stages)
    ("efficientformer-l1", "efficientformer_l1", "hybrid-attention",
     "Li et al., EfficientFormer: Vision Transformers at MobileNet Speed, NeurIPS 2022 (arXiv:2206.01191)",
     79.2, "EfficientFormer paper, Table 1 (ImageNet-1k, 224, with distillation)"),
    ("efficientformerv2-s0", "efficientformerv2_s0", "hybrid-attention",
     "Li et al., Rethinking Vision Transformers for MobileNet Size and Speed, ICCV 2023 (arXiv:2212.08059)",
     75.7, "EfficientFormerV2 paper, Table 1 (ImageNet-1k, 224, 300 epochs, with distillation)"),
    ("mobilevitv2-100", "mobilevitv2_100", "hybrid-attention",
     "Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, TMLR 2023 (arXiv:2206.02680)",
     78.1, "MobileViTv2 paper, ImageNet-1k results table, width 1.0 at 256x256"),
    ("mobilevitv2-200", "mobilevitv2_200", "hybrid-attention",
     "Mehta & Rastegari, Separable Self-attention for Mobile Vision Transformers, TMLR 2023 (arXiv:2206.02680)",
     81.2, "MobileViTv2 paper, ImageNet-1k results table, width 2.0 at 256x256"),
    ("mobilevit-xs", "mobilevit_xs", "hybrid-attention",
     "Mehta & Rastegari, MobileViT: Light-weight, General-purpose, and Mobile-friendly Vision Transformer, "
     "ICLR 2022 (arXiv:2110.02178)",
     74.8, "MobileViT paper, ImageNet-1k classification results (MobileViT-XS)"),
    ("levit-128s", "levit_128s", "hybrid-attention",
     "Graham et al., LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference, ICCV 2021 "
     "(arXiv:2104.01136)",
     76.6, "LeViT paper, main ImageNet-1k comparison table (LeViT-128S, 1000 epochs, distilled)"),
    # non-attention token mixing
    ("poolformer-s12", "poolformer_s12", "pooling-mixer",
     "Yu et al., MetaFormer Is Actually What You Need for Vision, CVPR 2022 (arXiv:2111.11418)",
     77.2, "MetaFormer paper, Table 1 (ImageNet-1k, 224)"),
    ("repvit-m0-9", "repvit_m0_9", "reparameterized-cnn",
     "Wang et al., RepViT: Revisiting Mobile CNN From ViT Perspective, CVPR 2024 (arXiv:2307.09283)",
     78.7, "RepViT paper, ImageNet-1k comparison table (M0.9, 300 epochs, distilled)"),
    ("mobileone-s0", "mobileone_s0", "cnn-baseline",
     "Vasu et al., MobileOne: An Improved One millisecond Mobile Backbone, CVPR 2023 (arXiv:2206.04040)",
     71.4, "MobileOne paper, ImageNet-1k comparison table (S0)"),
    ("edgenext-xx-small", "edgenext_xx_small", "hybrid-attention",
     "Maaz et al., EdgeNeXt: Efficiently Amalgamated CNN-Transformer Architecture for Mobile Vision "
     "Applications, ECCV Workshops 2022 (arXiv:2206.10589)",
     None, "not given: the value timm's in1k weights correspond to (with or without the USI recipe) is not certain"),
    # sparse / window attention
    ("swin-t", "swin_tiny_patch4_window7_224", "window-attention",
     "Liu et al., Swin Transformer: Hierarchical Vision Transformer using Shifted Windows, ICCV 2021 "
     "(arXiv:2103.14030)",
     81.3, "Swin paper, Table 1(a) (ImageNet-1k trained, 224)"),
    # sequence reduction / linear attention
    ("efficientvit-m0", "efficientvit_m0", "sequence-reduction",
     "Liu et al., EfficientViT: Memory Efficient Vision Transformer with Cascaded Group Attention, CVPR 2023 "
     "(arXiv:2305.07027)",
     63.2, "EfficientViT (MSRA) paper, ImageNet-1k comparison table (M0)"),
    ("efficientvit-b0", "efficientvit_b0", "linear-attention",
     "Cai et al., EfficientViT: Lightweight Multi-Scale Attention for High-Resolution Dense Prediction, "
     "ICCV 2023 (arXiv:2205.14756)",
     None, "not given: B0's ImageNet top-1 is not in the paper's main table as far as we can verify"),
    # plain ViT baselines
    ("vit-ti", "vit_tiny_patch16_224", "plain-vit",
     "Steiner et al., How to train your ViT? Data, Augmentation, and Regularization in Vision Transformers, "
     "TMLR 2022 (arXiv:2106.10270)",
     None, "not given: timm's ViT-Ti weights are the AugReg in21k->in1k ones; their exact top-1 is not certain"),
    ("deit-t", "deit_tiny_patch16_224", "plain-vit",
     "Touvron et al., Training data-efficient image transformers & distillation through attention, ICML 2021 "
     "(arXiv:2012.12877)",
     72.2, "DeiT paper, ImageNet-1k results (DeiT-Ti, no distillation)"),
)

# the FastViT members of the zoo (dedicated converter); the rest of the family is in fastvit_specs()
ZOO_FASTVIT = ("fastvit-t8", "fastvit-sa12")
# registered elsewhere (registry.py) and part of the sweep
ZOO_EXTRA = ("swiftformer-xs",)


def zoo_specs() -> list:
    """The curated zoo: 15 timm models on the generic converter plus FastViT-T8/SA12 on the fastvit converter."""
    generic = [_spec(n, t, fam, paper, top1, src) for n, t, fam, paper, top1, src in _ZOO]
    fastvit = [s for s in fastvit_specs() if s.name in ZOO_FASTVIT]
    return generic + fastvit


def zoo_names() -> list[str]:
    """Every model the default zoo sweep converts, in table order."""
    return [s.name for s in zoo_specs()] + list(ZOO_EXTRA)


def published_top1() -> dict[str, float]:
    """Registry name -> published ImageNet-1k top-1 (%) of every registered model that has one.

    The same numbers the registry's specs carry (a test checks that), read without importing torch or timm, so
    ``edgevit report`` stays fast and small.
    """
    table = {f"swiftformer-{v}": top1 for v, top1 in SWIFTFORMER_TOP1.items()}
    table |= {f"fastvit-{v}": top1 for v, top1 in FASTVIT_TOP1.items()}
    table |= {name: top1 for name, _t, _f, _p, top1, _s in _ZOO if top1 is not None}
    return table | {"hiera-t": HIERA_T_TOP1}


def published_latency() -> dict[str, dict]:
    """Registry name -> the phone latency its paper published ({"ms", "device", "compute_unit", "source"}), read
    without importing torch or timm (as published_top1); the registry's specs carry the same (a test checks)."""
    table = {f"swiftformer-{v}": {"ms": ms, **SWIFTFORMER_LATENCY} for v, ms in SWIFTFORMER_LATENCY_MS.items()}
    return table | {f"fastvit-{v}": {"ms": ms, **FASTVIT_LATENCY} for v, ms in FASTVIT_LATENCY_MS.items()}
