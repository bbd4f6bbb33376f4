"""Profiles beside a results file: found by name and batch, absent ones said so, a broken one refused by name."""

from __future__ import annotations

import json

import pytest

from edgevit.base.errors import ArtifactError
from edgevit.bench.profile_files import MAX_PROFILE_BYTES, PROFILE_KIND, profile_file, profiles_beside
from edgevit.bench.results import SOURCE_KEY
from edgevit.report.versus import slowest_op_type


def _result(tmp_path, batch: int) -> dict:
    return {"artifact": "m.pte", "batch": batch, SOURCE_KEY: {"file": str(tmp_path / "run.json")}}


def test_the_profile_of_each_batch_is_found_and_named_in_the_report(tmp_path):
    by_type = [{"op_type": "Fully Connected", "kernel": "xnnpack (NC, F32) GEMM", "ops": 27, "ms": 5.3,
                "percent": 61.0}, {"op_type": "Add", "kernel": "xnnpack", "ops": 9, "ms": 0.2, "percent": 2.0}]
    path = profile_file(tmp_path / "run.json", "m.pte", 32)
    assert path.name == "run.m.pte.b32.profile.json"
    path.write_text(json.dumps({"kind": PROFILE_KIND, "by_type": by_type}))
    found = profiles_beside([_result(tmp_path, 1), _result(tmp_path, 32)])
    assert list(found) == [(str(tmp_path / "run.json"), "m.pte", 32)]
    expected = "Fully Connected (xnnpack (NC, F32) GEMM): 5.30 ms, 61%, 27 ops"
    assert slowest_op_type(_result(tmp_path, 32), found) == expected
    assert slowest_op_type(_result(tmp_path, 1), found) == "not profiled (bench --profile)"


@pytest.mark.parametrize("content, says", [
    ("{not json", "not a readable profile"),
    (json.dumps({"kind": "something-else", "by_type": []}), "not an edgevit profile"),
    (json.dumps([1, 2]), "not an edgevit profile"),
    (json.dumps({"kind": PROFILE_KIND, "by_type": [{"op_type": "Conv", "ms": "slow"}]}), "not an edgevit profile"),
])
def test_a_broken_profile_is_refused_by_name(tmp_path, content, says):
    path = profile_file(tmp_path / "run.json", "m.pte", 1)
    path.write_text(content)
    with pytest.raises(ArtifactError, match=says) as err:
        profiles_beside([_result(tmp_path, 1)])
    assert path.name in str(err.value)


def test_an_oversized_profile_is_refused_unread(tmp_path):
    path = profile_file(tmp_path / "run.json", "m.pte", 1)
    with path.open("wb") as f:
        f.truncate(MAX_PROFILE_BYTES + 1)
    with pytest.raises(ArtifactError, match="is not a profile bench --profile wrote"):
        profiles_beside([_result(tmp_path, 1)])
