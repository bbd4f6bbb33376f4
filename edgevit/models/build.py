"""Build the original model of a spec: from a checkpoint, from timm's trained weights on the hub
(``pretrained.py``), or from a seeded random init (and say which).

Conversion and later re-validation must see the same function, so the random init is deterministic in
(model, options, init, seed) and all four are recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from edgevit.base.errors import WeightsError
from edgevit.models.checkpoints import CHECKPOINT_LIMIT, load_weights, read_checkpoint, sha256_hex
from edgevit.models.random_init import exercise_weights
from edgevit.models.registry import ModelSpec

if TYPE_CHECKING:
    from edgevit.models.pretrained import HubWeights

INITS = ("exercised", "library")


@dataclass
class WeightsInfo:
    source: str  # "checkpoint", "pretrained" (a hub file: repo, revision, file, license) or "random-init"
    path: str | None = None
    sha256: str | None = None
    init: str | None = None
    seed: int | None = None
    repo: str | None = None  # pretrained only, like the four below
    revision: str | None = None  # the commit hash the hub resolved
    file: str | None = None
    license: str | None = None
    tag: str | None = None  # timm's name of the weights, "swiftformer_xs.dist_in1k"
    size: int | None = None  # bytes of the checkpoint file; a re-validation reads no more than this

    def describe(self) -> str:
        if self.source == "checkpoint":
            return f"weights from {self.path} (sha256 {self.sha256[:12]}...)"
        if self.source == "pretrained":
            return (f"trained weights {self.tag} from {self.repo} at revision {self.revision[:12]} ({self.file}, "
                    f"sha256 {self.sha256[:12]}..., license {self.license or 'not stated'})")
        how = ("every block exercised: layer scales ~U(0.5,1), BatchNorm statistics calibrated on noise"
               if self.init == "exercised" else "the library's training init (layer scales ~1e-5)")
        return f"RANDOM-INIT weights (no --weights given; seed {self.seed}; {how}) - not a trained model"

    def to_json(self) -> dict:
        hub_only = ("repo", "revision", "file", "license", "tag")
        return {k: v for k, v in self.__dict__.items() if self.source == "pretrained" or k not in hub_only}


def build_model(spec: ModelSpec, options: dict[str, str] | None = None, weights: Path | None = None,
                init: str = "exercised", seed: int = 0, pretrained: HubWeights | None = None, *,
                data: bytes | None = None) -> tuple[nn.Module, WeightsInfo]:
    """The eval-mode original model and a record of where its weights came from (``data``: the checkpoint's
    bytes when the caller has read and hashed them already, so what is parsed is what was hashed)."""
    if init not in INITS:
        raise WeightsError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    torch.manual_seed(seed)
    model = spec.build(**(options or {}))
    if pretrained is not None:
        sha = load_weights(model, spec, pretrained.path, data)
        if sha != pretrained.sha256:  # changed between the hash check and the load: refuse, as validate would
            raise WeightsError(f"{pretrained.path} changed while it was being loaded; run again")
        return model.eval(), WeightsInfo("pretrained", str(pretrained.path), sha, repo=pretrained.repo,
                                         revision=pretrained.revision, file=pretrained.file,
                                         license=pretrained.license, tag=pretrained.tag)
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
    if info["source"] == "pretrained":
        if weights is not None:
            raise WeightsError(f"{manifest.get('artifact', 'this artifact')} was converted from the hub's weights "
                               f"({info.get('repo')}): --weights does not apply; drop it (edgevit finds the file in "
                               "the hub cache).")
        return _rebuild_pretrained(spec, manifest)
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


def _rebuild_pretrained(spec: ModelSpec, manifest: dict) -> nn.Module:
    """The hub file the manifest names, at the commit it records, from the cache (no network if it is there)."""
    from edgevit.models.pretrained import HubWeights, cached_pretrained, changed_message, hub_settings

    info = manifest["weights"]
    path = cached_pretrained(info["repo"], info["file"], info["revision"])
    data = read_checkpoint(path)  # a regular file within the limit, hashed before it is parsed
    sha = sha256_hex(data)
    if sha != info["sha256"]:
        raise WeightsError(changed_message(path, info["repo"], hub_settings()[0],
                                           f"the manifest records sha256 {info['sha256'][:12]}..., the file has "
                                           f"{sha[:12]}..."))
    hub = HubWeights(path, info["repo"], info["revision"], info["file"], sha, info.get("license"), info.get("tag"),
                     cached=True)
    model, _ = build_model(spec, manifest.get("options"), pretrained=hub, data=data)
    return model
