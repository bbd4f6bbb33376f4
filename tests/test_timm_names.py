"""``timm:<name>`` takes the family converter where edgevit converts the family (issue: timm:hiera_tiny_224
failed on CoreML's rank limit through the generic converter, timm:swiftformer_l1 skipped its rewrites)."""

from __future__ import annotations

import pytest

from converters import CONVERTERS, UnknownConverterError, get_converter
from edgevit.models.registry import get_spec, model_names

FAMILY_NAMES = {
    "timm:hiera_tiny_224": ("hiera-t", "hiera"),
    "timm:swiftformer_l1": ("swiftformer-l1", "swiftformer"),
    "timm:fastvit_sa24": ("fastvit-sa24", "fastvit"),
}


@pytest.mark.parametrize("timm_name", sorted(FAMILY_NAMES))
def test_timm_family_name_takes_the_family_spec(timm_name: str) -> None:
    registered, converter = FAMILY_NAMES[timm_name]
    spec, family = get_spec(timm_name), get_spec(registered)
    assert spec.name == timm_name and spec.converter == converter
    assert (spec.input_size, spec.mean, spec.std, spec.crop_pct, spec.interpolation) == (
        family.input_size, family.mean, family.std, family.crop_pct, family.interpolation)
    assert spec.options == family.options and spec.checkpoint_filter is family.checkpoint_filter


def test_unregistered_family_variant_gets_the_family_converter_and_others_the_generic() -> None:
    assert get_spec("timm:hiera_small_224").converter == "hiera"
    assert get_spec("timm:resnet18").converter == "generic"


def test_every_spec_names_a_converter_in_the_table() -> None:
    assert {get_spec(n).converter for n in model_names()} <= set(CONVERTERS)
    with pytest.raises(UnknownConverterError, match="no converter named 'nope'; known: fastvit, generic"):
        get_converter("nope")


@pytest.mark.slow
@pytest.mark.parametrize("timm_name", sorted(FAMILY_NAMES))
def test_timm_family_name_converts_to_coreml_and_executorch(timm_name: str, tmp_path) -> None:
    from edgevit.api import convert

    result = convert(timm_name, ["coreml", "executorch"], tmp_path, precision="fp32")
    assert {a.target for a in result.artifacts} == {"coreml", "executorch"}
    assert not result.failed, [a.parity for a in result.failed]
    assert result.rewrites == get_converter(FAMILY_NAMES[timm_name][1]).prepare(get_spec(timm_name).build()).rewrites
