"""edgevit: efficient vision transformers to CoreML and ExecuTorch artifacts, with parity proof.

The Python API mirrors the CLI: ``edgevit.convert``, ``edgevit.validate``, ``edgevit.bench``, ``edgevit.list_models``.
They are imported lazily, so ``edgevit --help`` does not pay for importing torch.

Two of those names are also submodules (``edgevit/validate/parity.py``, ``edgevit/bench/``). Python's import system
binds every submodule it loads as an attribute of its package, which would replace the function with the module
after the first ``import edgevit.validate`` anywhere (``edgevit.api`` does it). The package object therefore
refuses that binding for the API names: ``edgevit.validate`` is always the function. Import the submodules by
name (``from edgevit.validate.parity import compare``, ``from edgevit.bench import results``), not as attribute chains.
"""

import sys
import types

from edgevit.base.version import VERSION as __version__  # noqa: F401 - the package version, as Python expects

API = ("bench", "convert", "list_models", "validate")
__all__ = ["EdgevitError", *API]


class _Package(types.ModuleType):
    """The ``edgevit`` module object: an API name can never be rebound to a submodule."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in API and isinstance(value, types.ModuleType):
            return  # the submodule stays reachable through sys.modules and ``from edgevit.<name> import ...``
        super().__setattr__(name, value)


def __getattr__(name: str):
    if name in API:
        from edgevit import api

        return getattr(api, name)
    if name == "EdgevitError":
        from edgevit.base.errors import EdgevitError

        return EdgevitError
    raise AttributeError(f"module 'edgevit' has no attribute {name!r}")


sys.modules[__name__].__class__ = _Package
