"""A minimal Hugging Face hub on localhost, for tests that run huggingface_hub's real download and cache code.

It answers what ``hf_hub_download`` asks (huggingface_hub 2.x, file_download.py): ``HEAD`` and ``GET`` on
``/{repo_id}/resolve/{revision}/{filename}``, with the headers it reads — ``X-Repo-Commit`` (the commit a revision
resolves to), ``ETag`` (for an LFS file the hub sends its sha256, and the cache names the blob after it),
``Content-Length`` — ``Range`` requests for resumed downloads, and the hub's ``X-Error-Code`` on a 404/401 so the
client raises the same errors as against huggingface.co (RevisionNotFound, EntryNotFound, RepoNotFound).
Point ``HF_ENDPOINT`` at ``Hub.url``.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote


@dataclass
class Repo:
    """A repository's history: each commit's files, and the names (``main``, tags) that point at commits."""

    commits: dict[str, dict[str, bytes]]  # 40-hex commit -> {filename: content}
    refs: dict[str, str] = field(default_factory=dict)  # "main", tags -> commit

    @classmethod
    def at(cls, commit: str, files: dict[str, bytes]) -> Repo:
        """One commit, which ``main`` points at."""
        return cls({commit: files}, {"main": commit})


class Hub:
    """``with Hub({"timm/x": Repo(...)}) as hub:`` serves at ``hub.url``; ``hub.requests`` logs what was asked."""

    def __init__(self, repos: dict[str, Repo], port: int = 0):
        self.repos = repos
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_HEAD(self):  # noqa: N802 - http.server's naming
                hub._answer(self, body=False)

            def do_GET(self):  # noqa: N802
                hub._answer(self, body=True)

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Hub:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _answer(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.requests.append((handler.command, handler.path))
        parts = unquote(handler.path.split("?", 1)[0]).lstrip("/").split("/")
        if len(parts) < 5 or parts[2] != "resolve":
            return _send(handler, 404, {"X-Error-Code": "EntryNotFound"}, b"not a resolve url", body)
        repo_id, revision, filename = "/".join(parts[:2]), parts[3], "/".join(parts[4:])
        repo = self.repos.get(repo_id)
        if repo is None:  # what the hub answers for a missing (or private) repository
            return _send(handler, 401, {"X-Error-Code": "RepoNotFound"}, b"Repository not found", body)
        commit = revision if revision in repo.commits else repo.refs.get(revision)
        if commit is None:
            return _send(handler, 404, {"X-Error-Code": "RevisionNotFound"}, b"Invalid rev id", body)
        data = repo.commits[commit].get(filename)
        if data is None:
            return _send(handler, 404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                         b"Entry not found", body)
        headers = {"X-Repo-Commit": commit, "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                   "Accept-Ranges": "bytes", "Content-Type": "application/octet-stream"}
        start = _range_start(handler.headers.get("Range"))
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            return _send(handler, 206, headers, data[start:], body)
        return _send(handler, 200, headers, data, body)


def _range_start(header: str | None) -> int:
    if not header or not header.startswith("bytes="):
        return 0
    first = header[len("bytes="):].split("-", 1)[0]
    return int(first) if first.isdigit() else 0


def _send(handler: BaseHTTPRequestHandler, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
    handler.send_response(status)
    for key, value in headers.items():
        handler.send_header(key, value)
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    if body:
        handler.wfile.write(data)


def main(argv: list[str] | None = None) -> None:
    """Serve a registered model's default hub repository with stand-in weights, for trying --pretrained offline:

        python tests/support/hub_server.py swiftformer-xs --port 8765
        HF_ENDPOINT=http://127.0.0.1:8765 HF_HOME=/tmp/hf edgevit convert swiftformer-xs --pretrained --target onnx

    The served file is edgevit's random init of the model saved as safetensors (or --file), NOT trained weights.
    """
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a registered model with published weights, e.g. swiftformer-xs")
    parser.add_argument("--file", help="serve this .safetensors instead of a random-init stand-in")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    from edgevit.models.pretrained import resolve_tag
    from edgevit.models.registry import get_spec

    spec = get_spec(args.model)
    tag = resolve_tag(spec)
    if args.file:
        with open(args.file, "rb") as fh:
            data = fh.read()
    else:
        from safetensors.torch import save

        from edgevit.models.build import build_model

        model, _ = build_model(spec)
        data = save({k: v.contiguous() for k, v in model.state_dict().items()})
    commit = hashlib.sha1(b"edgevit local hub\0" + data).hexdigest()  # noqa: S324 - a commit-like id, not security
    with Hub({tag.hf_hub_id: Repo.at(commit, {tag.filename: data})}, port=args.port) as hub:
        kind = "the given file" if args.file else "stand-in weights: edgevit's random init, not trained"
        print(f"serving {tag.hf_hub_id}/{tag.filename} ({kind}) at {hub.url}; Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
