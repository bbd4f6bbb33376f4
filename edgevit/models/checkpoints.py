"""Safe checkpoint loading: safetensors or ``torch.load(weights_only=True)``, never arbitrary pickle.

Accepts the official layouts the spec's ``checkpoint_filter`` knows (e.g. SwiftFormer's ``network.N``
keys), timm's layout, and the usual wrappers (``{"model": ...}``, ``{"state_dict": ...}``, ``module.``
prefixes). A checkpoint that does not fit is refused with the exact missing/unexpected keys, shapes and dtypes
(integer tensors for float parameters); one holding NaN or infinity is refused naming the tensors.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgevit.base.artifact_folder import MiB, read_regular_file
from edgevit.base.digest import sha256_of  # noqa: F401 - re-exported for edgevit.models.build's readers
from edgevit.base.errors import WeightsError

if TYPE_CHECKING:  # the registry's FastViT filter uses unwrap_state_dict: no import cycle at run time
    from edgevit.models.spec import ModelSpec

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict", "model_ema", "net")
MAX_LISTED = 12
CHECKPOINT_LIMIT = 4096 * MiB  # the largest zoo checkpoints are under 1 GiB; a file over this is refused unread


ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format since PyTorch 1.6
PICKLE_PROTOCOL_2_PLUS = 0x80  # the legacy torch.save format is a pickle stream (protocol 2 or later)


def read_checkpoint(path: Path, limit: int = CHECKPOINT_LIMIT) -> bytes:
    """The bytes of a checkpoint file: a regular file (a FIFO or device is refused, never read) within ``limit``."""
    path = Path(path)
    if not path.exists():
        raise WeightsError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise WeightsError(f"checkpoint path is a directory, expected a file: {path}")
    return read_regular_file(path, "checkpoint", limit, error=WeightsError)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_state_dict(path: Path, data: bytes | None = None) -> dict[str, torch.Tensor]:
    """Finite tensors of a checkpoint, unwrapped; refuses pickled code and explains corrupt files.

    ``data`` is the file's content when the caller has read (and hashed) it already: what is parsed is then
    exactly what was hashed.
    """
    path = Path(path)
    if data is None:
        data = read_checkpoint(path)
    tensors = _read_safetensors(path, data) if path.suffix == ".safetensors" else _read_torch(path, data)
    check_finite(tensors, path)
    return tensors


def _read_safetensors(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        return load(data)
    except (SafetensorError, OSError, ValueError, TypeError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file ({exc}); is it truncated?") from None


def _read_torch(path: Path, data: bytes) -> dict[str, torch.Tensor]:
    head = data[:4]
    if not (head.startswith(ZIP_MAGIC) or head[:1] == bytes([PICKLE_PROTOCOL_2_PLUS])):
        raise WeightsError(f"{path} is not a PyTorch checkpoint: it is neither a torch.save zip archive nor a "
                           "legacy torch.save pickle (is it the right file, or truncated?). edgevit reads "
                           ".pth/.pt/.bin files written by torch.save and .safetensors files.")
    try:
        obj = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc).strip()
        first = text.splitlines()[0] if text else type(exc).__name__
        if "weights only" not in text.lower() and "unsupported global" not in text.lower():
            raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({first}); is it truncated or "
                               "corrupt?") from None
        raise WeightsError(
            f"refused to load {path}: it contains pickled Python objects that are not plain tensors, and "
            f"edgevit only loads checkpoints with torch.load(weights_only=True) ({first}). Re-save it as a "
            "state_dict (torch.save(model.state_dict(), ...)) or as .safetensors from a trusted environment."
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, TypeError, AttributeError,
            MemoryError) as exc:
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {exc}); "
                           "is it truncated or corrupt?") from None
    return unwrap_state_dict(obj, path)


def check_finite(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """A NaN or infinity in a checkpoint is an error naming the tensor, not a model that outputs NaN later."""
    bad = []
    for key, tensor in tensors.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                nan = int(torch.isnan(tensor).sum())
                bad.append(f"{key} ({nan} NaN, {int((~finite).sum()) - nan} infinite of {tensor.numel()})")
    if bad:
        raise WeightsError(f"{path} holds non-finite values in {len(bad)} tensor(s): {_listing(bad)}. A checkpoint "
                           "must hold finite numbers: is it corrupt, or saved from a diverged training run?")


def unwrap_state_dict(obj: object, source: object = "the checkpoint") -> dict[str, torch.Tensor]:
    """The tensors of a checkpoint object: the usual wrappers (``WRAPPER_KEYS``, ``module.``) removed."""
    for _ in range(3):
        if isinstance(obj, dict):
            inner = next((obj[k] for k in WRAPPER_KEYS if isinstance(obj.get(k), dict)), None)
            if inner is not None and not any(isinstance(v, torch.Tensor) for v in obj.values()):
                obj = inner
                continue
        break
    if not isinstance(obj, dict) or not obj:
        raise WeightsError(f"{source} holds no state_dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{source} holds no tensors; keys: {_listing(list(obj))}")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def load_weights(model: nn.Module, spec: ModelSpec, path: Path, data: bytes | None = None) -> str:
    """Load ``path`` (or its already read bytes ``data``) into ``model`` strictly (after the spec's key remapping);
    returns the SHA-256 of the bytes that were parsed."""
    path = Path(path)
    if data is None:
        data = read_checkpoint(path)
    state = read_state_dict(path, data)
    if spec.checkpoint_filter is not None:
        try:
            state = spec.checkpoint_filter(state, model)
        except Exception as exc:  # noqa: BLE001 - a foreign layout can break the filter in many ways
            raise WeightsError(f"{path} does not look like a {spec.name} checkpoint: key remapping failed "
                               f"({type(exc).__name__}: {exc})") from None
    check_fits(model, state, spec.name, path)
    model.load_state_dict(state, strict=True)
    return sha256_hex(data)


def check_fits(model: nn.Module, state: dict[str, torch.Tensor], model_name: str, path: Path) -> None:
    """Raise WeightsError naming every missing/unexpected key, shape mismatch and non-float tensor."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in expected
        if k in state and state[k].shape != expected[k].shape
    ]
    # load_state_dict would silently cast an int32 tensor into a float parameter: refuse it instead.
    dtypes = [
        f"{k}: checkpoint {str(state[k].dtype).removeprefix('torch.')} vs model "
        f"{str(expected[k].dtype).removeprefix('torch.')}"
        for k in expected
        if k in state and expected[k].is_floating_point() and not state[k].is_floating_point()
    ]
    if not (missing or unexpected or shapes or dtypes):
        return
    parts = [f"{path} does not fit {model_name}:"]
    if missing:
        parts.append(f"  missing keys ({len(missing)}): {_listing(missing)}")
    if unexpected:
        parts.append(f"  unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
    if shapes:
        parts.append(f"  shape mismatches ({len(shapes)}): {_listing(shapes)}")
    if dtypes:
        parts.append(f"  non-float tensors for float parameters ({len(dtypes)}): {_listing(dtypes)}")
    if missing or unexpected or shapes:
        parts.append("  Is it a checkpoint of another model or variant? (`edgevit list` shows the variants.)")
    else:
        parts.append("  Float parameters need float tensors: re-save the checkpoint from the trained model.")
    raise WeightsError("\n".join(parts))


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:MAX_LISTED])
    return shown + (f", ... (+{len(items) - MAX_LISTED} more)" if len(items) > MAX_LISTED else "")
