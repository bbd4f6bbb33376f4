"""Build the original model of a spec: from a checkpoint, or from a seeded random init (and say which).

Conversion and later re-validation must see the same function, so the random init is deterministic in
(model, options, init, seed) and all four are recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from edgevit.base.errors import WeightsError
from edgevit.models.checkpoints import CHECKPOINT_LIMIT, load_weights, read_checkpoint, sha256_hex
from edgevit.models.random_init import exercise_weights
from edgevit.models.registry import ModelSpec

INITS = ("exercised", "library")


@dataclass
class WeightsInfo:
    source: str  # "checkpoint" or "random-init"
    path: str | None = None
    sha256: str | None = None
    init: str | None = None
    seed: int | None = None
    size: int | None = None  # bytes of the checkpoint file; a re-validation reads no more than this

    def describe(self) -> str:
        if self.source == "checkpoint":
            return f"weights from {self.path} (sha256 {self.sha256[:12]}...)"
        how = ("every block exercised: layer scales ~U(0.5,1), BatchNorm statistics calibrated on noise"
               if self.init == "exercised" else "the library's training init (layer scales ~1e-5)")
        return f"RANDOM-INIT weights (no --weights given; seed {self.seed}; {how}) - not a trained model"

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def build_model(spec: ModelSpec, options: dict[str, str] | None = None, weights: Path | None = None,
                init: str = "exercised", seed: int = 0, *, data: bytes | None = None) -> tuple[nn.Module, WeightsInfo]:
    """The eval-mode original model and a record of where its weights came from (``data``: the checkpoint's
    bytes when the caller has read and hashed them already, so what is parsed is what was hashed)."""
    if init not in INITS:
        raise WeightsError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    torch.manual_seed(seed)
    model = spec.build(**(options or {}))
    if weights is not None:
        if data is None:
            data = read_checkpoint(Path(weights))
        sha = load_weights(model, spec, Path(weights), data)
        return model.eval(), WeightsInfo("checkpoint", str(Path(weights).resolve()), sha, size=len(data))
    if init == "exercised":
        exercise_weights(model, seed=seed, input_size=spec.input_size)
    return model.eval(), WeightsInfo("random-init", init=init, seed=seed)


def rebuild_from_manifest(spec: ModelSpec, manifest: dict, weights: Path | None = None) -> nn.Module:
    """The original model an artifact was converted from; refuses a checkpoint that changed since.

    The checkpoint path a manifest records lies outside the artifact by nature, and the manifest may come from
    anyone: it is opened only as a regular file within the recorded size (at most CHECKPOINT_LIMIT), hashed before
    it is parsed, and a missing, unreadable or different file gets one and the same message, so the message tells
    nothing about what exists at that path. ``weights`` (``validate --weights FILE``) replaces the recorded path.
    """
    info = manifest["weights"]
    if info["source"] != "checkpoint":
        if weights is not None:
            raise WeightsError(f"{manifest.get('artifact', 'this artifact')} was converted from random-init weights "
                               f"(seed {info['seed']}), not a checkpoint: --weights does not apply; drop it.")
        model, _ = build_model(spec, manifest.get("options"), init=info["init"], seed=info["seed"])
        return model
    size = info.get("size")
    limit = min(size, CHECKPOINT_LIMIT) if isinstance(size, int) and size > 0 else CHECKPOINT_LIMIT
    if weights is not None:
        path = Path(weights)
        data = read_checkpoint(path)  # the user's own file: the recorded size is compared through the hash
        if sha256_hex(data) != info["sha256"]:
            raise WeightsError(f"--weights {path} is not the checkpoint this artifact was converted from (its sha256 "
                               f"differs from the manifest's {info['sha256'][:12]}...): pass that very file.")
    else:
        path = Path(info["path"])
        try:
            data = read_checkpoint(path, limit)
        except WeightsError:
            data = None
        if data is None or sha256_hex(data) != info["sha256"]:
            raise WeightsError(
                f"the checkpoint recorded in the manifest (weights.path {path}) is not available as the file this "
                f"artifact was converted from (sha256 {info['sha256'][:12]}...): it is missing, unreadable, not a "
                "regular file, too large or different. Pass the original checkpoint with "
                "`edgevit validate ARTIFACT --weights FILE`.")
    model, _ = build_model(spec, manifest.get("options"), weights=path, data=data)
    return model
