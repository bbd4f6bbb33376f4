"""Publishing is one transaction: real SIGINTs at several points of a real conversion, and concurrent writers.

After any interrupt the output folder holds either the previous complete triple (artifact, validation inputs,
manifest) byte for byte, or a new complete one, and nothing else: no orphan artifact, no stale manifest, no
staging folder. Two processes publishing into one folder never leave, nor show a reader, a mismatched pair.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from support.cli import ENV, snapshot

from edgevit.base.digest import sha256_of
from edgevit.base.naming import bundle_path, manifest_path
from edgevit.export.publish import reading

ONNX = "swiftformer-xs.onnx.fp32.onnx"


def assert_complete_triple(artifact: Path) -> None:
    """Manifest, artifact and bundle belong together, and nothing half-published is beside them."""
    manifest = json.loads(manifest_path(artifact).read_text())
    assert "publication" not in manifest, "a pending manifest was left behind"
    assert manifest["sha256"] == sha256_of(artifact)
    assert bundle_path(artifact).is_dir()
    leftovers = [p.name for p in artifact.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"left behind: {leftovers}"


# ------------------------------------------------------------------------------------------ the commit itself

WRITER = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    from edgevit.base.digest import sha256_of
    from edgevit.base.naming import bundle_path
    from edgevit.export.publish import publish, staging_area

    out, tag, rounds = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    print("ready", flush=True)
    if sys.argv[4:] == ["--wait-for-go"]:
        sys.stdin.readline()  # every writer starts together, after the slow imports of all of them
    for i in range(rounds):
        with staging_area(out) as stage:
            staged = stage / "m.onnx.fp32.onnx"
            staged.write_bytes(f"{tag} {i} ".encode() * 50000)  # ~0.5 MB: the rename has real data behind it
            bundle_path(staged).mkdir()
            (bundle_path(staged) / "index.json").write_text(json.dumps({"tag": tag, "i": i}))
            publish(staged, out / staged.name, {"artifact": staged.name, "sha256": sha256_of(staged), "tag": tag})
""")


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A suite started in the background of a
    non-interactive shell inherits SIGINT ignored, and Python then never raises KeyboardInterrupt, so the
    interrupts under test would silently not happen (a user's Ctrl-C reaches a foreground process)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _writer(out: Path, tag: str, rounds: int, wait_for_go: bool = False) -> subprocess.Popen:
    """A publishing process, returned once it has imported edgevit. With ``wait_for_go`` it then waits for a
    line on stdin, so several writers overlap even when one's imports take longer than another's whole run."""
    extra = ["--wait-for-go"] if wait_for_go else []
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(out), tag, str(rounds), *extra],
                            stdin=subprocess.PIPE if wait_for_go else None, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV, preexec_fn=_default_sigint)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def test_two_writers_never_interleave_and_a_reader_never_sees_a_mismatched_pair(tmp_path):
    artifact = tmp_path / "m.onnx.fp32.onnx"
    writers = [_writer(tmp_path, tag, 60, wait_for_go=True) for tag in ("alpha", "omega")]
    for w in writers:  # on a loaded host alpha once finished all its rounds while omega was still importing
        w.stdin.write("go\n")
        w.stdin.close()
    seen = set()
    while any(w.poll() is None for w in writers):
        with reading(artifact):
            if manifest_path(artifact).exists():
                manifest = json.loads(manifest_path(artifact).read_text())
                assert "publication" not in manifest, "a reader saw a publication in progress"
                assert manifest["sha256"] == sha256_of(artifact)
                assert json.loads((bundle_path(artifact) / "index.json").read_text())["tag"] == manifest["tag"]
                seen.add(manifest["tag"])
    for w in writers:
        assert w.wait() == 0, w.stderr.read()
    assert seen == {"alpha", "omega"}  # both really published while the reader watched
    assert_complete_triple(artifact)


def test_sigint_at_random_moments_of_repeated_publishing_leaves_a_complete_triple(tmp_path):
    artifact = tmp_path / "m.onnx.fp32.onnx"
    rng = random.Random(11)
    for attempt in range(8):
        proc = _writer(tmp_path, f"run{attempt}", 10_000)
        time.sleep(rng.uniform(0.05, 0.6))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode != 0 and "KeyboardInterrupt" in err  # it really was interrupted mid-loop
        assert_complete_triple(artifact)


# ------------------------------------------------------------------------------------------ a real conversion


def _convert_until(out: Path, trigger, seed: int = 1) -> subprocess.CompletedProcess:
    """Start `edgevit convert swiftformer-xs --target onnx` and SIGINT it the moment ``trigger(line)`` holds
    for a progress line (or ``trigger(None)`` for the folder state, polled)."""
    cmd = [sys.executable, "-m", "edgevit.cli", "convert", "swiftformer-xs", "--target", "onnx", "--out", str(out),
           "--no-mil-report", "--seed", str(seed)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**ENV, "PYTHONUNBUFFERED": "1"}, preexec_fn=_default_sigint)
    lines: list[str] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True),  # progress, line by line
               threading.Thread(target=lambda: errors.extend(proc.stderr), daemon=True)]
    for reader in readers:
        reader.start()
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if any(trigger(line) for line in list(lines)) or trigger(None):
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.02)
    proc.wait(timeout=600)
    for reader in readers:
        reader.join(timeout=10)
    return subprocess.CompletedProcess(cmd, proc.returncode, "".join(lines), "".join(errors))


def _staged(out: Path, name: str) -> bool:
    return any((stage / name).exists() for stage in out.glob(".edgevit-stage-*"))


def test_sigint_while_building_leaves_no_output_folder(tmp_path):
    out = tmp_path / "fresh" / "out"
    proc = _convert_until(out, lambda line: line is not None and "building swiftformer-xs" in line)
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "interrupted: nothing partial was published" in proc.stderr
    assert snapshot(tmp_path) == {}


def test_sigint_just_after_the_artifact_is_exported_keeps_the_previous_triple(readme_run, tmp_path):
    """The issue's case: SIGINT right after X.onnx appears used to leave it beside the old manifest."""
    out = tmp_path / "art"
    shutil.copytree(readme_run[0] / "artifacts", out)
    before = snapshot(out)
    proc = _convert_until(out, lambda line: line is None and _staged(out, ONNX))
    assert proc.returncode == 130 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert snapshot(out) == before
    assert_complete_triple(out / ONNX)


@pytest.mark.slow
def test_sigint_while_publishing_leaves_old_or_new_triple_complete(readme_run, tmp_path):
    out = tmp_path / "art"
    shutil.copytree(readme_run[0] / "artifacts", out)
    old_sha = json.loads(manifest_path(out / ONNX).read_text())["sha256"]
    proc = _convert_until(out, lambda line: line is not None and "publishing" in line)
    assert proc.returncode in (0, 130) and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert_complete_triple(out / ONNX)
    assert json.loads(manifest_path(out / ONNX).read_text())["sha256"] != old_sha  # the commit was completed
