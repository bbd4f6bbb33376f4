"""Safe checkpoint loading: safetensors or ``torch.load(weights_only=True)``, never arbitrary pickle.

Accepts the official layouts the spec's ``checkpoint_filter`` knows (e.g. SwiftFormer's ``network.N``
keys), timm's layout, and the usual wrappers (``{"model": ...}``, ``{"state_dict": ...}``, ``module.``
prefixes). A checkpoint that does not fit is refused with the exact missing/unexpected keys and shapes.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from edgevit.errors import WeightsError
from edgevit.registry import ModelSpec

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_ema", "net")
MAX_LISTED = 12


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, or of every file of a directory artifact (.mlpackage) in sorted order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint file, unwrapped; refuses pickled code and explains corrupt files."""
    if not path.exists():
        raise WeightsError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise WeightsError(f"checkpoint path is a directory, expected a file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WeightsError(f"{path} is not a readable safetensors file ({exc}); is it truncated?") from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"refused to load {path}: it contains pickled Python objects that are not plain tensors, and "
            f"edgevit only loads checkpoints with torch.load(weights_only=True) ({first}). Re-save it as a "
            "state_dict (torch.save(model.state_dict(), ...)) or as .safetensors from a trusted environment."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); "
                           "is it truncated or corrupt?") from None
    return _unwrap(obj, path)


def _unwrap(obj: object, path: Path) -> dict[str, torch.Tensor]:
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{path} holds no state_dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors; keys: {_listing(list(obj))}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_weights(model: nn.Module, spec: ModelSpec, path: Path) -> str:
    """Load ``path`` into ``model`` strictly (after the spec's key remapping); returns the file's SHA-256."""
    path = Path(path)
    state = read_state_dict(path)
    if spec.checkpoint_filter is not None:
        try:
            state = spec.checkpoint_filter(state, model)
        except Exception as exc:  # noqa: BLE001 - a foreign layout can break the filter in many ways
            raise WeightsError(f"{path} does not look like a {spec.name} checkpoint: key remapping failed "
                               f"({type(exc).__name__}: {exc})") from None
    check_fits(model, state, spec.name, path)
    model.load_state_dict(state, strict=True)
    return sha256_of(path)


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], model_name: str, path: Path) -> None:
    """Raise WeightsError naming every missing/unexpected key and shape mismatch."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    if not (missing or unexpected or shapes):
        return
    parts = [f"{path} does not fit {model_name}:"]
    if missing:
        parts.append(f"  missing keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        parts.append(f"  unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if shapes:
        parts.append(f"  shape mismatches ({len(shapes)}): {_listing(shapes)}")
    parts.append("  Is it a checkpoint of another model or variant? (`edgevit list` shows the variants.)")
    raise WeightsError("\n".join(parts))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")
