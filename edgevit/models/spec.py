"""``ModelSpec``: everything the pipeline needs to know about one model, as data; ``timm_spec`` makes one for a
timm name (preprocessing from timm's pretrained config). The registry (``registry.py``) looks specs up by name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from edgevit.base.errors import UnknownModelError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    """Everything the pipeline needs to know about one model, independent of any artifact."""

    name: str
    builder: Callable[..., nn.Module]  # builder(**options) -> eval-mode model with random init
    converter: str
    family: str
    timm_name: str | None = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bicubic"
    crop_pct: float = 0.875
    labels: str = "imagenet-1k"
    paper: str = ""
    published_top1: float | None = None
    top1_source: str = ""
    # the phone latency the paper published: {"ms", "device", "compute_unit", "source"} (catalog.py); None if none
    published_latency: dict | None = None
    options: dict[str, tuple[str, ...]] = field(default_factory=dict)  # option -> allowed values (first: default)
    checkpoint_filter: Callable[[dict, nn.Module], dict] | None = None

    def build(self, **options: str) -> nn.Module:
        for key, value in options.items():
            allowed = self.options.get(key)
            if allowed is None:
                raise UnknownModelError(f"{self.name} has no option {key!r}; it has {sorted(self.options) or 'none'}")
            if value not in allowed:
                raise UnknownModelError(f"{self.name}: {key} must be one of {', '.join(allowed)}, got {value!r}")
        return self.build_defaults(**options)

    def build_defaults(self, **options: str) -> nn.Module:
        merged = {k: v[0] for k, v in self.options.items()} | options
        return self.builder(**merged).eval()

    def default_options(self) -> dict[str, str]:
        return {k: v[0] for k, v in self.options.items()}


def timm_spec(timm_name: str) -> ModelSpec:
    """A generic-converter spec for any timm model, preprocessing from timm's pretrained config."""
    import timm

    if timm_name not in timm.list_models():
        close = difflib.get_close_matches(timm_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean: {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UnknownModelError(f"timm has no model named {timm_name!r}.{hint}")
    cfg = timm.models.get_pretrained_cfg(timm_name)
    input_size = tuple(cfg.input_size) if cfg else (3, 224, 224)
    module_name = _timm_module_name(timm_name)
    module = importlib.import_module(f"timm.models.{module_name}") if module_name else None
    filter_fn = getattr(module, "checkpoint_filter_fn", None)
    return ModelSpec(
        name=f"timm:{timm_name}",
        builder=lambda _n=timm_name: timm.create_model(_n, pretrained=False),
        converter="generic",
        family=module_name or "timm",
        timm_name=timm_name,
        input_size=input_size,  # type: ignore[arg-type]
        mean=tuple(cfg.mean) if cfg else IMAGENET_MEAN,  # type: ignore[arg-type]
        std=tuple(cfg.std) if cfg else IMAGENET_STD,  # type: ignore[arg-type]
        interpolation=(cfg.interpolation if cfg else "bicubic") or "bicubic",
        crop_pct=(cfg.crop_pct if cfg else 0.875) or 0.875,
        checkpoint_filter=filter_fn,
    )


def _timm_module_name(timm_name: str) -> str | None:
    """The timm.models submodule that defines a model (where its checkpoint_filter_fn lives)."""
    from timm.models import _registry

    return _registry._model_to_module.get(_registry.get_arch_name(timm_name))


def imagenet_labels() -> list[str]:
    """Unique ImageNet-1k class names from timm's bundled class info (no download).

    Two classes (134 and 517) are both "crane": a classifier's {label: probability} output would merge them,
    so duplicates get their class index appended.
    """
    from collections import Counter

    from timm.data import ImageNetInfo

    info = ImageNetInfo("imagenet-1k")
    names = [info.index_to_description(i) for i in range(1000)]
    counts = Counter(names)
    return [f"{name} (class {i})" if counts[name] > 1 else name for i, name in enumerate(names)]
