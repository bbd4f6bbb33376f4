"""The base helpers the device drivers share: artifact kinds, the manifest reader, atomic bytes, the clock."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from edgevit.base.atomic import write_bytes_atomic
from edgevit.base.clock import utc_now_iso
from edgevit.base.errors import ArtifactError
from edgevit.base.manifest import load_manifest, read_manifest
from edgevit.base.naming import KINDS, bundle_path, kind_of, manifest_path


def test_kind_of_names_every_artifact_form_and_nothing_else():
    assert [kind_of(Path(f"m.coreml.fp16.{k}")) for k in KINDS] == list(KINDS)
    assert kind_of(Path("m.executorch.xnnpack.fp32.pte")) == "pte"
    assert kind_of(Path("m.coreml.fp32.mlmodelc")) == "mlmodelc"
    for other in ("m.json", "m.validation", "m.mlpackage.fixture", ".pte", "README", "m.pte.tmp"):
        assert kind_of(Path(other)) is None, other
    compiled = Path("d/m.coreml.fp32.mlmodelc")
    assert manifest_path(compiled) == Path("d/m.coreml.fp32.json")
    assert bundle_path(compiled) == Path("d/m.coreml.fp32.validation")


def test_load_manifest_reads_json_without_the_schema(tmp_path):
    artifact = tmp_path / "m.executorch.xnnpack.fp32.pte"
    artifact.write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"has no manifest \(m\.executorch\.xnnpack\.fp32\.json\)"):
        load_manifest(artifact)
    manifest_path(artifact).write_text('{"model": "m"}')
    assert load_manifest(artifact) == {"model": "m"}  # partial, yet readable
    with pytest.raises(ArtifactError, match="version"):
        read_manifest(artifact)  # the full reader still checks it
    manifest_path(artifact).write_text("[1, 2]")
    with pytest.raises(ArtifactError, match="not a JSON object"):
        load_manifest(artifact)
    manifest_path(artifact).write_text("{")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        load_manifest(artifact)
    with pytest.raises(ArtifactError, match="artifact not found"):
        read_manifest(tmp_path / "absent.pte")


def test_write_bytes_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "r.json"
    write_bytes_atomic(path, b"old")
    write_bytes_atomic(path, json.dumps({"a": 1}).encode())
    assert json.loads(path.read_bytes()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_utc_now_iso_is_seconds_with_utc_offset():
    now = utc_now_iso()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", now), now
    assert datetime.fromisoformat(now).utcoffset().total_seconds() == 0
