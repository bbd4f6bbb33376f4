"""Per-model converters: turn a trained model into a plain inference graph for the exporters.

``CONVERTERS`` is the one table of converters by name (a ``ModelSpec.converter``); adding a family is adding
its module and a row here.
"""

from converters.base import Converter, Prepared
from converters.fastvit import FastViTConverter
from converters.generic import GenericConverter
from converters.hiera import HieraConverter
from converters.swiftformer import SwiftFormerConverter
from edgevit.base.errors import EdgevitError

CONVERTERS: dict[str, type[Converter]] = {
    "fastvit": FastViTConverter,
    "generic": GenericConverter,
    "hiera": HieraConverter,
    "swiftformer": SwiftFormerConverter,
}


class UnknownConverterError(EdgevitError):
    """A ModelSpec names a converter edgevit does not have."""


def get_converter(name: str) -> Converter:
    """A fresh converter for ``name``; an unknown name is an EdgevitError listing the known ones."""
    try:
        return CONVERTERS[name]()
    except KeyError:
        raise UnknownConverterError(f"no converter named {name!r}; known: {', '.join(sorted(CONVERTERS))}") from None


__all__ = ["CONVERTERS", "Converter", "Prepared", "UnknownConverterError", "get_converter"]
