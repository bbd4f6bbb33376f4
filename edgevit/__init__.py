"""edgevit: efficient vision transformers to CoreML and ExecuTorch artifacts, with parity proof.

The Python API mirrors the CLI: ``edgevit.convert``, ``edgevit.validate``, ``edgevit.bench``, ``edgevit.list_models``.
They are imported lazily, so ``edgevit --help`` does not pay for importing torch.
"""

__version__ = "0.1.0"

__all__ = ["EdgevitError", "bench", "convert", "list_models", "validate"]


def __getattr__(name: str):
    if name in ("bench", "convert", "list_models", "validate"):
        from edgevit import api

        return getattr(api, name)
    if name == "EdgevitError":
        from edgevit.errors import EdgevitError

        return EdgevitError
    raise AttributeError(f"module 'edgevit' has no attribute {name!r}")
