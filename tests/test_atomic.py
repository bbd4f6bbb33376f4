"""edgevit.base.atomic.write_bytes_atomic: whole files only, the umask's mode, an OutputError on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgevit.base.atomic import write_bytes_atomic
from edgevit.base.errors import OutputError


def test_writes_and_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "out.bin"
    write_bytes_atomic(path, b"first")
    write_bytes_atomic(path, b"second")
    assert path.read_bytes() == b"second"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no temporary file left


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_mode_follows_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_bytes_atomic(tmp_path / "a", b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o640


def test_failure_is_an_output_error_with_advice_and_no_temp_file(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OutputError, match=r"cannot write .*a\.bin: Permission denied; choose another folder\.$"):
        write_bytes_atomic(tmp_path / "a.bin", b"x", advice="choose another folder")
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        write_bytes_atomic(tmp_path / "no" / "a.bin", b"x")
