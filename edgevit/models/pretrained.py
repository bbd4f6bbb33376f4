"""Trained weights by name: which weights timm publishes for a model, fetched from the Hugging Face hub.

timm's pretrained configs say which tags a model has (``swiftformer_xs.dist_in1k``), where each lives on the hub
(``timm/swiftformer_xs.dist_in1k``), its license and its source; huggingface_hub downloads the file into its
standard cache (shared with timm and transformers: ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_ENDPOINT``); edgevit's own loader (``checkpoints.load_weights``) loads it. Only ``.safetensors`` files are
fetched: a pickle from the network is code, and edgevit never runs it.

Every use of a cached file checks its content against the hash the hub published for it (the name of its blob in
the cache: the file's sha256 for LFS files), so a file changed on disk is refused rather than loaded. The
environment is read when a call is made, not when huggingface_hub was imported, so the Python API honours an
``os.environ`` change just as the CLI does.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from edgevit.base.digest import sha256_of
from edgevit.base.errors import UsageError, WeightsError

if TYPE_CHECKING:
    from edgevit.models.spec import ModelSpec

SAFE_FILENAME = "model.safetensors"  # what timm publishes beside (or instead of) pytorch_model.bin
IMAGENET_CLASSES = 1000
_TRUE = {"1", "ON", "YES", "TRUE"}  # huggingface_hub's reading of a boolean environment variable
_SHA256 = re.compile(r"[0-9a-f]{64}")
_GIT_SHA1 = re.compile(r"[0-9a-f]{40}")


@dataclass(frozen=True)
class PretrainedTag:
    """One set of trained weights timm publishes for a model, as its pretrained config states it."""

    name: str  # timm's full name, "swiftformer_xs.dist_in1k"
    tag: str  # "dist_in1k"
    default: bool  # timm's default tag for the architecture (what `--pretrained` alone picks)
    hf_hub_id: str | None  # "timm/swiftformer_xs.dist_in1k"; None: timm knows only a URL
    filename: str  # the file edgevit fetches from the repo
    license: str | None
    source: str | None  # origin URL, else paper ids, as timm states them
    num_classes: int
    url: str | None = None  # timm's non-hub URL, if any
    input_size: tuple[int, ...] = (3, 224, 224)  # the resolution the weights were trained/evaluated at

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass(frozen=True)
class HubWeights:
    """A safetensors file in the hub cache, resolved to the commit it came from and checked against its hash."""

    path: Path  # the snapshot path in the cache
    repo: str
    revision: str  # the commit hash the hub resolved the requested revision to
    file: str
    sha256: str
    license: str | None
    tag: str  # timm's full name, "swiftformer_xs.dist_in1k"
    cached: bool  # True: no download was needed


def hub_settings() -> tuple[Path, str, bool]:
    """(cache folder, endpoint, offline) from the environment now, with huggingface_hub's precedence."""
    from huggingface_hub import constants

    env = os.environ
    if env.get("HF_HUB_CACHE"):
        cache = Path(env["HF_HUB_CACHE"])
    elif env.get("HF_HOME"):
        cache = Path(env["HF_HOME"]) / "hub"
    else:
        cache = Path(constants.HF_HUB_CACHE)
    endpoint = (env.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    offline = (env.get("HF_HUB_OFFLINE") or "").upper() in _TRUE
    return cache.expanduser(), endpoint, offline


def pretrained_tags(spec: ModelSpec) -> list[PretrainedTag]:
    """Every set of trained weights timm publishes for the spec's model, timm's default first; [] if none."""
    if spec.timm_name is None:
        return []
    import timm
    from timm.models import get_pretrained_cfg

    default = get_pretrained_cfg(spec.timm_name)
    default_tag = default.tag if default is not None else None
    tags = []
    for name in timm.list_pretrained(f"{spec.timm_name}.*"):
        cfg = get_pretrained_cfg(name)
        if cfg is None or not cfg.has_weights:
            continue
        tag = name.split(".", 1)[1]
        paper = cfg.paper_ids if isinstance(cfg.paper_ids, str) else ", ".join(cfg.paper_ids or ())
        url = cfg.url if isinstance(cfg.url, str) else None
        tags.append(PretrainedTag(
            name=name, tag=tag, default=tag == default_tag, hf_hub_id=cfg.hf_hub_id,
            filename=cfg.hf_hub_filename or SAFE_FILENAME, license=cfg.license,
            source=cfg.origin_url or paper or None, num_classes=cfg.num_classes, url=url or None,
            input_size=tuple(cfg.input_size),
        ))
    return sorted(tags, key=lambda t: not t.default)


def resolve_tag(spec: ModelSpec, tag: str | bool | None = True) -> PretrainedTag:
    """The tag ``--pretrained [TAG]`` asks for (True/None: timm's default); refused when it cannot be loaded."""
    tags = pretrained_tags(spec)
    if not tags:
        why = (f"timm has no pretrained config with weights for {spec.timm_name}" if spec.timm_name
               else "it is edgevit's own model definition, not a timm model, and no official weights exist")
        raise WeightsError(f"{spec.name} has no published trained weights: {why}. Convert it random-init (leave out "
                           "--pretrained) or pass your own checkpoint with --weights FILE.")
    if tag is True or tag is None:
        chosen = tags[0]
    else:
        wanted = str(tag).removeprefix(f"{spec.timm_name}.")
        chosen = next((t for t in tags if t.tag == wanted), None)
        if chosen is None:
            listing = ", ".join(t.tag + (" (default)" if t.default else "") for t in tags)
            raise WeightsError(f"{spec.name} has no pretrained tag {wanted!r}; timm publishes: {listing}. "
                               f"`edgevit weights ls {spec.name}` shows each with its license and source.")
    if chosen.num_classes != IMAGENET_CLASSES:
        usable = ", ".join(t.tag for t in tags if t.num_classes == IMAGENET_CLASSES) or "none"
        kind = "a headless (feature) checkpoint" if not chosen.num_classes else f"a {chosen.num_classes}-class head"
        raise WeightsError(f"{chosen.name} has {kind}, and edgevit converts ImageNet-1k classifiers "
                           f"(1000 classes). Tags with a 1000-class head: {usable}.")
    if tuple(chosen.input_size) != tuple(spec.input_size):
        size = "x".join(map(str, chosen.input_size[1:]))
        usable = ", ".join(t.tag for t in tags if tuple(t.input_size) == tuple(spec.input_size)) or "none"
        raise WeightsError(f"{chosen.name} was trained at {size}, and edgevit converts {spec.name} at "
                           f"{'x'.join(map(str, spec.input_size[1:]))} (its spec's input and preprocessing): its "
                           f"predictions would be at the wrong resolution. Tags at that size: {usable}.")
    if chosen.hf_hub_id is None:
        raise WeightsError(f"timm publishes {chosen.name} only at {chosen.url or 'a URL outside the hub'}, not on the "
                           "Hugging Face hub as safetensors, and edgevit does not download pickled checkpoints. "
                           "Download it yourself and pass it with --weights FILE (loaded with weights_only=True).")
    if not chosen.filename.endswith(".safetensors"):
        raise WeightsError(f"timm's config names {chosen.filename} in {chosen.hf_hub_id}, not a .safetensors file; "
                           "edgevit loads only safetensors from the hub (a pickle from the network is code). "
                           "Download it yourself and pass it with --weights FILE (loaded with weights_only=True).")
    return chosen


def check_timm_options(spec: ModelSpec, options: dict[str, str]) -> None:
    """timm's weights were trained for timm's model: the spec's default options (e.g. SwiftFormer's normalize)."""
    defaults = spec.default_options()
    changed = {k: v for k, v in options.items() if k in defaults and defaults[k] != v}  # unknown: spec.build refuses
    if changed:
        given = ", ".join(f"{k}={v}" for k, v in changed.items())
        default = ", ".join(f"{k}={defaults[k]}" for k in changed)
        raise UsageError(f"--pretrained loads timm's weights, trained for timm's {spec.timm_name} ({default}); "
                         f"{given} is another model. Leave the option out, or pass a checkpoint made for it with "
                         "--weights FILE.")


def fetch_pretrained(spec: ModelSpec, tag: str | bool | None = True, revision: str | None = None, *,
                     progress_bar: bool = False, say=None) -> HubWeights:
    """The tag's safetensors file from the hub cache, downloading it first if needed; checked against its hash."""
    chosen = resolve_tag(spec, tag)
    say = say or (lambda _m: None)
    repo = chosen.hf_hub_id
    cache, endpoint, offline = hub_settings()
    wanted = revision or "main"
    before = _cached_path(repo, chosen.filename, cache, wanted)
    if before is None and offline:
        say(f"HF_HUB_OFFLINE is set: looking for {chosen.filename} of {repo} (revision {wanted}) in {cache} only")
    elif before is None:
        say(f"downloading {chosen.filename} of {repo} (revision {wanted}) from {endpoint} into {cache}")
    path = _download(repo, chosen.filename, wanted, cache, endpoint, offline, progress_bar)
    commit = _commit_of(path)
    cached = before is not None and Path(before) == path
    sha = verify_cached_file(path, repo, cache)
    if cached:
        say(f"using the cached {chosen.filename} of {repo} at revision {commit[:12]} ({path}): no download")
    return HubWeights(path=path, repo=repo, revision=commit, file=chosen.filename, sha256=sha,
                      license=chosen.license, tag=chosen.name, cached=cached)


def cached_pretrained(repo: str, file: str, commit: str) -> Path:
    """The file a manifest records (repo, file, commit): from the cache, with no network if it is there."""
    cache, endpoint, offline = hub_settings()
    path = _download(repo, file, commit, cache, endpoint, offline, progress_bar=False)
    verify_cached_file(path, repo, cache)
    return path


def verify_cached_file(path: Path, repo: str, cache: Path) -> str:
    """The file's sha256, after checking it against the hash the hub published (its blob's name in the cache)."""
    sha = sha256_of(path)
    blob = Path(os.path.realpath(path))
    etag = blob.name if blob.parent.name == "blobs" else None
    if etag is None:
        return sha  # no symlinks on this filesystem: the manifest's sha256 is the check (edgevit validate)
    if _SHA256.fullmatch(etag):
        ok = etag == sha
    elif _GIT_SHA1.fullmatch(etag):  # a file outside LFS: its git blob id
        data = path.read_bytes()
        ok = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() == etag  # noqa: S324 - git's id, not security
    else:
        return sha
    if not ok:
        raise WeightsError(changed_message(path, repo, cache, f"the hub published it with hash {etag[:12]}..., "
                                                              f"the file now has sha256 {sha[:12]}..."))
    return sha


def changed_message(path: Path, repo: str, cache: Path, detail: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    folder = cache / repo_folder_name(repo_id=repo, repo_type="model")
    return (f"the cached {path.name} of {repo} ({path}) changed on disk since it was downloaded ({detail}); edgevit "
            f"does not load it. Delete {folder} and run again to download it afresh (or pass a file you trust "
            "with --weights FILE).")


def cache_status(tag: PretrainedTag, cache: Path) -> str:
    """'yes' if the tag's file at the hub's main revision is in the cache (as last resolved), else 'no'; no network."""
    if tag.hf_hub_id is None or not tag.filename.endswith(".safetensors"):
        return "-"
    return "yes" if _cached_path(tag.hf_hub_id, tag.filename, cache, "main") else "no"


def _cached_path(repo: str, file: str, cache: Path, revision: str) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, file, cache_dir=cache, revision=revision)
    return found if isinstance(found, str) else None


def _download(repo: str, file: str, revision: str, cache: Path, endpoint: str, offline: bool,
              progress_bar: bool) -> Path:
    """huggingface_hub's download into its cache, its errors turned into what a user can act on."""
    import httpx2
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        FileMetadataError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        OfflineModeIsEnabled,
        RemoteEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{file} of {repo} at revision {revision}"
    try:
        return Path(hf_hub_download(repo, file, revision=revision, cache_dir=cache, endpoint=endpoint,
                                    local_files_only=offline, tqdm_class=_bar_class(progress_bar, f"{repo}/{file}"),
                                    library_name="edgevit"))
    except (LocalEntryNotFoundError, OfflineModeIsEnabled) as exc:
        if offline:
            how = "HF_HUB_OFFLINE is set, so the hub was not asked"
        elif isinstance(exc.__cause__, FileMetadataError):  # an answer, but not a hub's (a proxy page, a wrong URL)
            how = f"{endpoint} answered but not as a Hugging Face hub (is HF_ENDPOINT right?)"
        else:
            how = f"the hub at {endpoint} could not be reached"
        raise WeightsError(f"no network and nothing cached: {where} is not in the hub cache {cache}, and {how}. "
                           "Connect to the network (and unset HF_HUB_OFFLINE) to download it once; set HF_HOME or "
                           "HF_HUB_CACHE if the cache is elsewhere; or pass a local checkpoint with --weights FILE."
                           ) from None
    except RevisionNotFoundError:
        raise WeightsError(f"revision {revision!r} does not exist in {repo} on {endpoint}; give a branch, tag or "
                           "commit hash of that repository to --revision, or leave it out for main.") from None
    except RemoteEntryNotFoundError:
        raise WeightsError(f"{repo} has no {file} at revision {revision} on {endpoint}: it may publish only a "
                           "pickled checkpoint (pytorch_model.bin), which edgevit does not load from the network "
                           "(a pickle is code). Convert it to safetensors where you trust it and pass it with "
                           "--weights FILE.") from None
    except (RepositoryNotFoundError, GatedRepoError) as exc:
        raise WeightsError(f"{repo} cannot be read on {endpoint} ({type(exc).__name__}): it does not exist there, "
                           "or it is private or gated (log in with `hf auth login` or set HF_TOKEN).") from None
    except HfHubHTTPError as exc:
        raise WeightsError(f"the hub at {endpoint} refused {where}: {str(exc).splitlines()[0]}") from None
    except (httpx2.HTTPError, ValueError) as exc:
        raise WeightsError(f"downloading {where} from {endpoint} failed ({type(exc).__name__}: {exc}); check the "
                           "network or proxy, or pass a local checkpoint with --weights FILE.") from None
    except OSError as exc:
        raise WeightsError(f"cannot write {where} into the hub cache {cache}: {exc.strerror or exc}. Free space, "
                           "fix its permissions, or set HF_HOME to a writable folder.") from None


def _commit_of(path: Path) -> str:
    """The commit hash of a snapshot path (``.../snapshots/<commit>/<file>``)."""
    parts = path.parts
    commit = parts[parts.index("snapshots") + 1] if "snapshots" in parts[:-1] else ""
    return commit if _GIT_SHA1.fullmatch(commit) else "unknown"


def _bar_class(show: bool, desc: str):
    """A download bar that shows even though edgevit's CLI sets TQDM_DISABLE=1 (for coremltools' per-pass bars)."""
    from tqdm.auto import tqdm

    show = show and (os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS") or "").upper() not in _TRUE

    class DownloadBar(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = not show
            kwargs["desc"] = desc
            kwargs.setdefault("file", sys.stderr)
            super().__init__(*args, **kwargs)

    return DownloadBar
