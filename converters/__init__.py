"""Per-model converters: turn a trained model into a plain inference graph for the exporters."""

from converters.base import Converter, Prepared, get_converter

__all__ = ["Converter", "Prepared", "get_converter"]
