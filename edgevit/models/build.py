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
from edgevit.models.checkpoints import load_weights, sha256_of
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

    def describe(self) -> str:
        if self.source == "checkpoint":
            return f"weights from {self.path} (sha256 {self.sha256[:12]}...)"
        how = ("every block exercised: layer scales ~U(0.5,1), BatchNorm statistics calibrated on noise"
               if self.init == "exercised" else "the library's training init (layer scales ~1e-5)")
        return f"RANDOM-INIT weights (no --weights given; seed {self.seed}; {how}) - not a trained model"

    def to_json(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}


def build_model(spec: ModelSpec, options: dict[str, str] | None = None, weights: Path | None = None,
                init: str = "exercised", seed: int = 0) -> tuple[nn.Module, WeightsInfo]:
    """The eval-mode original model and a record of where its weights came from."""
    if init not in INITS:
        raise WeightsError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    torch.manual_seed(seed)
    model = spec.build(**(options or {}))
    if weights is not None:
        sha = load_weights(model, spec, Path(weights))
        return model.eval(), WeightsInfo("checkpoint", str(Path(weights).resolve()), sha)
    if init == "exercised":
        exercise_weights(model, seed=seed, input_size=spec.input_size)
    return model.eval(), WeightsInfo("random-init", init=init, seed=seed)


def rebuild_from_manifest(spec: ModelSpec, manifest: dict) -> nn.Module:
    """The original model an artifact was converted from; refuses a checkpoint that changed since."""
    info = manifest["weights"]
    if info["source"] == "checkpoint":
        path = Path(info["path"])
        if not path.exists():
            raise WeightsError(f"the checkpoint this artifact was converted from is gone: {path}")
        if sha256_of(path) != info["sha256"]:
            raise WeightsError(f"{path} changed since conversion (sha256 differs); re-run edgevit convert")
        model, _ = build_model(spec, manifest.get("options"), weights=path)
    else:
        model, _ = build_model(spec, manifest.get("options"), init=info["init"], seed=info["seed"])
    return model
