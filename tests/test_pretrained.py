"""--pretrained: timm's weights by name through huggingface_hub's real download, cache and revision code.

A hub is served from localhost (tests/support/hub_server.py) through HF_ENDPOINT, into a temporary HF_HOME, so
nothing touches the network or the user's cache. The served file is a real safetensors state_dict of
swiftformer-xs; huggingface_hub is not mocked anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import save
from support.cli import ENV, assert_refused, snapshot
from support.hub_server import Hub, Repo

from edgevit.base.errors import UsageError, WeightsError
from edgevit.models.build import build_model, rebuild_from_manifest
from edgevit.models.pretrained import fetch_pretrained, pretrained_tags, resolve_tag
from edgevit.models.registry import get_spec, model_names

COMMIT = hashlib.sha1(b"edgevit test hub, main").hexdigest()
OLD_COMMIT = hashlib.sha1(b"edgevit test hub, v0").hexdigest()
XS_REPO = "timm/swiftformer_xs.dist_in1k"
ONNX = "swiftformer-xs.onnx.fp32.onnx"


def _safetensors(model) -> bytes:
    return save({k: v.contiguous() for k, v in model.state_dict().items()})


@pytest.fixture(scope="module")
def weights() -> dict[str, bytes]:
    """Stand-ins for trained swiftformer-xs weights (timm's random init, seed 3) and an older release (seed 4)."""
    spec = get_spec("swiftformer-xs")
    return {f"{name}": _safetensors(build_model(spec, init="library", seed=seed)[0])
            for name, seed in (("main", 3), ("v0", 4))}


@pytest.fixture(scope="module")
def hub(weights):
    repos = {
        XS_REPO: Repo({COMMIT: {"model.safetensors": weights["main"]},
                       OLD_COMMIT: {"model.safetensors": weights["v0"]}}, refs={"main": COMMIT, "v0": OLD_COMMIT}),
        # swiftformer-s's repo serving swiftformer-xs's file: a hub file that does not fit the model
        "timm/swiftformer_s.dist_in1k": Repo.at(COMMIT, {"model.safetensors": weights["main"]}),
        # a repository with only a pickled checkpoint
        "timm/efficientformer_l1.snap_dist_in1k": Repo.at(COMMIT, {"pytorch_model.bin": b"\x80\x02pickle"}),
    }
    with Hub(repos) as server:
        yield server


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch) -> Path:
    """HF_ENDPOINT at the local hub, an empty HF_HOME of this test's own; returns the hub cache folder."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return tmp_path / "hf" / "hub"


def _tamper(blob: Path, original: bytes) -> None:
    """Change one byte of a cached blob (idempotent): still a readable safetensors file, another sha256."""
    data = bytearray(blob.read_bytes())
    data[-1] = original[-1] ^ 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------- tags (no network)

def test_tags_come_from_timms_pretrained_config():
    fastvit = pretrained_tags(get_spec("fastvit-t8"))
    assert [t.tag for t in fastvit] == ["apple_in1k", "apple_dist_in1k"]  # timm's default first
    assert fastvit[0].default and not fastvit[1].default
    assert fastvit[0].hf_hub_id == "timm/fastvit_t8.apple_in1k" and fastvit[0].filename == "model.safetensors"
    xs = resolve_tag(get_spec("swiftformer-xs"))
    assert (xs.name, xs.license, xs.source) == ("swiftformer_xs.dist_in1k", "apache-2.0",
                                                "https://github.com/Amshaker/SwiftFormer")
    assert resolve_tag(get_spec("fastvit-t8"), "fastvit_t8.apple_dist_in1k").tag == "apple_dist_in1k"


def test_every_registered_model_but_turbovit_has_a_loadable_default_tag():
    for name in model_names():
        if name == "turbovit":
            continue
        tag = resolve_tag(get_spec(name))
        assert tag.default and tag.hf_hub_id == f"timm/{tag.name}" and tag.filename == "model.safetensors", name
        assert tag.num_classes == 1000 and tag.license, name


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in model_names() if n != "turbovit"])
def test_timm_layout_weights_pass_each_models_checkpoint_filter(name):
    """The hub files are timm state_dicts (timm's save_for_hf): the spec's key remapping must leave them fitting."""
    from edgevit.models.checkpoints import check_fits

    spec = get_spec(name)
    model = spec.build()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if spec.checkpoint_filter is not None:
        state = spec.checkpoint_filter(state, model)
    check_fits(model, state, name, Path(f"{name}.safetensors"))


def test_list_details_weights_table_names_tags_licenses_and_sources():
    from rich.console import Console

    from edgevit.commands.models import weights_table

    console = Console(width=120, record=True)
    console.print(weights_table([get_spec(n) for n in ("fastvit-t8", "hiera-t", "swiftformer-l1", "turbovit")]))
    rows = [" ".join(line.split()) for line in console.export_text().splitlines()]
    assert "│ fastvit-t8 │ apple_in1k, apple_dist_in1k │ fastvit-license │ not stated │" in rows
    assert "│ hiera-t │ mae_in1k_ft_in1k, mae (headless*) │ cc-by-nc-4.0 │ not stated │" in rows
    assert any(r.startswith("│ swiftformer-l1 │ dist_in1k │ apache-2.0 │ https://github.com/Amshaker/SwiftFormer")
               for r in rows)
    assert "│ turbovit │ none published │ - │ - │" in rows


def test_unknown_tag_lists_the_real_ones():
    with pytest.raises(WeightsError, match=r"no pretrained tag 'in22k'; timm publishes: apple_in1k \(default\), "
                                           r"apple_dist_in1k"):
        resolve_tag(get_spec("fastvit-t8"), "in22k")


def test_model_with_no_published_weights_is_refused():
    with pytest.raises(WeightsError, match="turbovit has no published trained weights: it is edgevit's own"):
        resolve_tag(get_spec("turbovit"))
    with pytest.raises(WeightsError, match="timm has no pretrained config with weights for regnetz_b16_evos"):
        resolve_tag(get_spec("timm:regnetz_b16_evos"))


def test_tag_at_another_resolution_is_refused():
    with pytest.raises(WeightsError, match=r"mobilevitv2_200.cvnets_in22k_ft_in1k_384 was trained at 384x384, and "
                                           r"edgevit converts mobilevitv2-200 at 256x256 .* Tags at that size: "
                                           r"cvnets_in1k, cvnets_in22k_ft_in1k"):
        resolve_tag(get_spec("mobilevitv2-200"), "cvnets_in22k_ft_in1k_384")


def test_headless_tag_is_refused_before_any_download():
    with pytest.raises(WeightsError, match=r"hiera_tiny_224.mae has a headless .* Tags with a 1000-class head: "
                                           r"mae_in1k_ft_in1k"):
        resolve_tag(get_spec("hiera-t"), "mae")


@pytest.mark.parametrize("kwargs, message", [
    ({"pretrained": True, "weights": "x.safetensors"}, "--pretrained and --weights both give the weights"),
    ({"revision": "main"}, "--revision main pins the hub revision of --pretrained weights; it needs"),
    ({"pretrained": 3}, "pretrained must be True (timm's default tag) or a tag name"),
    ({"pretrained": True, "revision": "a b"}, "revision must be a branch, tag or commit hash"),
    ({"pretrained": True, "options": {"attention_form": "softmax"}}, "attention_form=softmax is another model"),
])
def test_bad_pretrained_arguments_are_refused_before_any_work(tmp_path, kwargs, message):
    from edgevit.api import convert

    with pytest.raises(UsageError) as err:
        convert("swiftformer-xs", "onnx", tmp_path / "out", **kwargs)
    assert message in str(err.value)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- the real download, cache and revision

def test_download_then_cache_then_offline(hub, hub_env, weights, monkeypatch):
    spec = get_spec("swiftformer-xs")
    said: list[str] = []
    first = fetch_pretrained(spec, say=said.append)
    assert not first.cached and said[0].startswith(f"downloading model.safetensors of {XS_REPO} (revision main)")
    assert first.revision == COMMIT and first.sha256 == hashlib.sha256(weights["main"]).hexdigest()
    assert first.path == hub_env / "models--timm--swiftformer_xs.dist_in1k" / "snapshots" / COMMIT / \
        "model.safetensors"
    assert first.license == "apache-2.0" and first.tag == "swiftformer_xs.dist_in1k"
    gets = [r for r in hub.requests if r[0] == "GET"]

    said.clear()
    second = fetch_pretrained(spec, say=said.append)  # online: the hub is asked which commit main is; no download
    assert second.cached and second.path == first.path
    assert [r for r in hub.requests if r[0] == "GET"] == gets
    assert said == [f"using the cached model.safetensors of {XS_REPO} at revision {COMMIT[:12]} ({first.path}): "
                    "no download"]

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    third = fetch_pretrained(spec)
    assert third.cached and third.sha256 == first.sha256 and len(hub.requests) == asked  # not one request


def test_revision_pin_resolves_to_its_commit(hub, hub_env, weights):
    pinned = fetch_pretrained(get_spec("swiftformer-xs"), revision="v0")
    assert pinned.revision == OLD_COMMIT
    assert pinned.sha256 == hashlib.sha256(weights["v0"]).hexdigest()
    with pytest.raises(WeightsError, match=f"revision 'nope' does not exist in {XS_REPO}"):
        fetch_pretrained(get_spec("swiftformer-xs"), revision="nope")


def test_unreachable_hub_falls_back_to_the_cache(hub_env, monkeypatch):
    spec = get_spec("swiftformer-xs")
    first = fetch_pretrained(spec)
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_unused_port()}")  # no HF_HUB_OFFLINE: a network failure
    said: list[str] = []
    again = fetch_pretrained(spec, say=said.append)
    assert again.cached and again.path == first.path and said[0].startswith("using the cached model.safetensors")


@pytest.mark.slow
def test_unreachable_hub_and_nothing_cached_says_what_to_do(hub_env, monkeypatch):
    """huggingface_hub retries a refused connection five times (about 23 s) before giving up."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{_unused_port()}")
    with pytest.raises(WeightsError) as err:
        fetch_pretrained(get_spec("swiftformer-xs"))
    text = str(err.value)
    for needle in ("no network and nothing cached", str(hub_env), "could not be reached", "--weights FILE"):
        assert needle in text


def test_a_plain_web_server_at_hf_endpoint_is_named(hub_env, tmp_path, monkeypatch):
    """A server that has the file but is no hub (no X-Repo-Commit): say so, not 'unreachable'."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    site = tmp_path / "site" / XS_REPO / "resolve" / "main"
    site.mkdir(parents=True)
    (site / "model.safetensors").write_bytes(b"not served by a hub")
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(tmp_path / "site"))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}")
        with pytest.raises(WeightsError, match="answered but not as a Hugging Face hub \\(is HF_ENDPOINT right\\?\\)"):
            fetch_pretrained(get_spec("swiftformer-xs"))
    finally:
        server.shutdown()
        server.server_close()


def test_offline_and_nothing_cached_says_what_to_do(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    said: list[str] = []
    with pytest.raises(WeightsError) as err:
        fetch_pretrained(get_spec("swiftformer-xs"), say=said.append)
    text = str(err.value)
    for needle in ("no network and nothing cached", str(hub_env), "HF_HUB_OFFLINE", "--weights FILE"):
        assert needle in text
    assert said == [f"HF_HUB_OFFLINE is set: looking for model.safetensors of {XS_REPO} (revision main) in "
                    f"{hub_env} only"]


def test_pickle_only_repository_is_refused(hub_env):
    with pytest.raises(WeightsError, match=r"timm/efficientformer_l1.snap_dist_in1k has no model.safetensors .* "
                                           r"does not load from the network \(a pickle is code\)"):
        fetch_pretrained(get_spec("efficientformer-l1"))


def test_hub_file_that_does_not_fit_gets_the_exact_key_report(hub_env):
    spec = get_spec("swiftformer-s")
    hubfile = fetch_pretrained(spec)
    with pytest.raises(WeightsError) as err:
        build_model(spec, pretrained=hubfile)
    text = str(err.value)
    assert f"{hubfile.path} does not fit swiftformer-s:" in text and "missing keys (" in text
    assert "shape mismatches (" in text


def test_changed_cached_file_is_refused_with_how_to_clear_it(hub_env, weights, monkeypatch):
    spec = get_spec("swiftformer-xs")
    hubfile = fetch_pretrained(spec)
    _tamper(Path(os.path.realpath(hubfile.path)), weights["main"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = hub_env / "models--timm--swiftformer_xs.dist_in1k"
    with pytest.raises(WeightsError, match=f"changed on disk since it was downloaded .* Delete {folder} and run "
                                           "again"):
        fetch_pretrained(spec)


# ------------------------------------------------------------------------- the CLI, as a user runs it (subprocess)

@pytest.fixture(scope="module")
def converted(hub, tmp_path_factory):
    """`edgevit convert swiftformer-xs --pretrained --target onnx` against the local hub, in a fresh HF_HOME."""
    root = tmp_path_factory.mktemp("pretrained_cli")
    env = {**ENV, "HF_ENDPOINT": hub.url, "HF_HOME": str(root / "hf")}
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_HUB_CACHE", None)
    proc = _edgevit(env, "convert", "swiftformer-xs", "--pretrained", "--target", "onnx", "--no-validate",
                    "--no-mil-report", "--out", str(root / "out"))  # the offline `edgevit validate` checks parity
    return root, env, proc


def _edgevit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgevit.cli", *args], capture_output=True, text=True, env=env,
                          timeout=900)


def test_cli_convert_pretrained_records_the_hub_file(converted, weights):
    root, _env, proc = converted
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"downloading model.safetensors of {XS_REPO} (revision main)" in " ".join(proc.stdout.split())
    assert "model.safetensors: 100%" in proc.stderr  # the download bar shows despite TQDM_DISABLE=1
    assert f"trained weights swiftformer_xs.dist_in1k from {XS_REPO} at revision {COMMIT[:12]}" in \
        " ".join(proc.stdout.split())
    manifest = json.loads((root / "out" / "swiftformer-xs.onnx.fp32.json").read_text())
    record = manifest["weights"]
    assert record["source"] == "pretrained" and record["repo"] == XS_REPO and record["revision"] == COMMIT
    assert record["file"] == "model.safetensors" and record["license"] == "apache-2.0"
    assert record["sha256"] == hashlib.sha256(weights["main"]).hexdigest()
    assert manifest["parity"] is None  # --no-validate: test_cli_validate_offline_uses_the_cache runs it
    from edgevit.base.errors import ArtifactError
    from edgevit.base.manifest import check_manifest

    check_manifest(manifest, Path("m.json"))  # conforms; without the commit or with a pickle file it does not
    for broken in ({k: v for k, v in record.items() if k != "revision"}, dict(record, file="pytorch_model.bin")):
        with pytest.raises(ArtifactError, match="does not conform to edgevit/base/manifest_schema.json"):
            check_manifest(dict(manifest, weights=broken), Path("m.json"))


def test_cli_validate_offline_uses_the_cache(converted, hub):
    root, env, _proc = converted
    offline = {**env, "HF_HUB_OFFLINE": "1", "HF_ENDPOINT": f"http://127.0.0.1:{_unused_port()}"}
    asked = len(hub.requests)
    proc = _edgevit(offline, "validate", str(root / "out" / ONNX))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "│ pass " in proc.stdout and len(hub.requests) == asked


def test_changed_cached_file_is_refused_by_validate_and_convert(converted, weights, monkeypatch):
    """Runs after the CLI validate above: it changes the cached file that conversion used."""
    from edgevit.api import convert, validate

    root, env, _proc = converted
    folder = Path(env["HF_HOME"]) / "hub" / "models--timm--swiftformer_xs.dist_in1k"
    _tamper(next((folder / "blobs").iterdir()), weights["main"])
    monkeypatch.setenv("HF_HOME", env["HF_HOME"])
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsError, match=f"changed on disk since it was downloaded .* Delete {folder} and run "
                                           "again"):
        validate(root / "out" / ONNX)
    before = snapshot(root / "out")
    with pytest.raises(WeightsError, match="changed on disk since it was downloaded"):
        convert("swiftformer-xs", "onnx", root / "out", pretrained=True)
    with pytest.raises(WeightsError, match="changed on disk since it was downloaded"):
        convert("swiftformer-xs", "onnx", root / "fresh", pretrained="dist_in1k")
    assert snapshot(root / "out") == before and not (root / "fresh").exists()


def test_cli_unknown_tag_is_refused_and_writes_nothing(tmp_path):
    proc = _edgevit({**ENV, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}, "convert", "fastvit-t8",
                    "--pretrained", "in22k", "--target", "onnx", "--out", str(tmp_path / "out"))
    assert_refused(proc, "fastvit-t8 has no pretrained tag 'in22k'; timm publishes: apple_in1k (default), "
                         "apple_dist_in1k")
    assert not (tmp_path / "out").exists() and not (tmp_path / "hf").exists()


def test_rebuild_from_manifest_finds_the_cached_file_offline(hub, hub_env, weights, monkeypatch):
    import torch
    from safetensors.torch import load

    spec = get_spec("swiftformer-xs")
    hubfile = fetch_pretrained(spec)
    _model, winfo = build_model(spec, pretrained=hubfile)
    manifest = {"weights": winfo.to_json(), "options": spec.default_options()}
    from edgevit.export.coreml import coreml_metadata

    assert coreml_metadata(spec, winfo, "0")["license"].startswith(f"weights: apache-2.0 (swiftformer_xs.dist_in1k, "
                                                                   f"{XS_REPO})")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    asked = len(hub.requests)
    rebuilt = rebuild_from_manifest(spec, manifest).state_dict()
    served = load(weights["main"])
    assert all(torch.equal(rebuilt[k], served[k]) for k in served) and len(hub.requests) == asked
    other = dict(manifest, weights=dict(manifest["weights"], sha256="0" * 64))  # a manifest naming another file
    with pytest.raises(WeightsError, match="the manifest records sha256 000000000000"):
        rebuild_from_manifest(spec, other)


def test_weights_ls_lists_tags_and_what_is_cached(hub_env, capsys):
    from edgevit.cli import main

    assert main(["weights", "ls", "swiftformer-xs"]) == 0
    before = " ".join(capsys.readouterr().out.split())
    assert "dist_in1k (default)" in before and "timm/swiftformer_xs.<tag>" in before and "apache-2.0" in before
    assert "│ no │" in before
    fetch_pretrained(get_spec("swiftformer-xs"))
    assert main(["weights", "ls", "swiftformer-xs"]) == 0
    after = " ".join(capsys.readouterr().out.split())
    assert "│ yes │" in after and "│ yes │" not in before and str(hub_env) in after
