"""Model name -> ModelSpec (``spec.py``: how to build it, which converter prepares it, its input and
preprocessing). The registry is the lookup; its rows are SwiftFormer and Hiera/TurboViT here and ``catalog.py``'s.

Names are lower-case with hyphens (``swiftformer-l1``); any timm model is also accepted as ``timm:<name>``:
the family converter where edgevit converts its family, the generic converter for the rest.
"""

from __future__ import annotations

import dataclasses
import difflib

from edgevit.base.errors import UnknownModelError
from edgevit.models.catalog import HIERA_T_TOP1, SWIFTFORMER_LATENCY, SWIFTFORMER_LATENCY_MS, SWIFTFORMER_TOP1
from edgevit.models.spec import ModelSpec, timm_spec

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    _REGISTRY[spec.name] = spec
    return spec


def unregister(name: str) -> None:
    """Drop a spec registered at run time (a plug-in's, a test's); unknown names are ignored."""
    _REGISTRY.pop(name, None)


def _swiftformer_specs() -> None:
    from timm.models.swiftformer import checkpoint_filter_fn

    from edgevit.models.swiftformer import ATTENTION_FORMS, build_swiftformer

    paper = "Shaker et al., SwiftFormer, ICCV 2023 (arXiv:2303.15446)"
    # Published ImageNet-1k top-1, SwiftFormer paper Table 2 (distilled, 224x224).
    for variant, top1 in SWIFTFORMER_TOP1.items():
        timm_name = f"swiftformer_{variant}"
        register(
            ModelSpec(
                name=f"swiftformer-{variant}",
                builder=lambda attention_form, _t=timm_name: build_swiftformer(_t, attention_form),
                converter="swiftformer",
                family="swiftformer",
                timm_name=timm_name,
                crop_pct=0.95,
                paper=paper,
                published_top1=top1,
                top1_source="SwiftFormer paper, Table 2",
                published_latency={"ms": SWIFTFORMER_LATENCY_MS[variant], **SWIFTFORMER_LATENCY},
                options={"attention_form": ATTENTION_FORMS},
                checkpoint_filter=checkpoint_filter_fn,
            )
        )


def _hiera_specs() -> None:
    import timm

    register(
        ModelSpec(
            name="turbovit",
            builder=lambda: _turbovit(),
            converter="hiera",
            family="turbovit",
            crop_pct=0.9,
            paper="Wong et al., TurboViT, arXiv:2308.11421 (configuration ours: no official code or weights)",
            top1_source="none: our configuration of TurboViT has no trained weights, so no accuracy is claimed",
        )
    )
    register(
        ModelSpec(
            name="hiera-t",
            builder=lambda: timm.create_model("hiera_tiny_224", pretrained=False),
            converter="hiera",
            family="hiera",
            timm_name="hiera_tiny_224",
            crop_pct=0.9,
            paper="Ryali et al., Hiera, ICML 2023 (arXiv:2306.00989)",
            published_top1=HIERA_T_TOP1,
            top1_source="Hiera paper, ImageNet-1k system-level comparison (Hiera-T)",
        )
    )


def _turbovit():
    from edgevit.models.turbovit import turbovit

    return turbovit()


def _catalog_specs() -> None:
    from edgevit.models.catalog import fastvit_specs, zoo_specs

    for spec in fastvit_specs() + zoo_specs():
        register(spec)


_swiftformer_specs()
_hiera_specs()
_catalog_specs()


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """The spec for a registry name or ``timm:<name>``; unknown names get the closest suggestions."""
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name.startswith("timm:"):
        return timm_family_spec(name[len("timm:") :])
    normalized = name.lower().replace("_", "-")
    if normalized in _REGISTRY:
        return _REGISTRY[normalized]
    close = difflib.get_close_matches(normalized, model_names(), n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownModelError(
        f"unknown model {name!r}.{hint} `edgevit list` shows the registry; any timm model works as timm:<name>."
    )


# timm.models submodule (a spec's family for timm: names) -> the converter for that family.
FAMILY_CONVERTERS = {"fastvit": "fastvit", "swiftformer": "swiftformer", "hiera": "hiera"}


def timm_family_spec(timm_name: str) -> ModelSpec:
    """``timm:<name>`` -> the registered spec built from that timm model (its family converter, input size,
    preprocessing and options) under the ``timm:`` name; otherwise timm's own spec, with the family converter
    when edgevit converts that family (``FAMILY_CONVERTERS``) and the generic converter for the rest.
    """
    for spec in _REGISTRY.values():
        if spec.timm_name == timm_name:
            return dataclasses.replace(spec, name=f"timm:{timm_name}")
    spec = timm_spec(timm_name)
    converter = FAMILY_CONVERTERS.get(spec.family)
    return dataclasses.replace(spec, converter=converter) if converter else spec
