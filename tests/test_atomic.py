"""Atomic writes: the old file or directory survives a failed write; finished ones get normal permissions."""

import os
import stat

import pytest

from edgepose.core.atomic import atomic_dir, atomic_file


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_file_replaced_only_on_success_with_plain_permissions(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_file(path) as f:
            f.write(b"half")
            raise RuntimeError("crash")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["a.bin"]
    with atomic_file(path) as f:
        f.write(b"new")
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert path.read_bytes() == b"new" and _mode(path) == _mode(plain)


def test_dir_replaced_only_on_success(tmp_path):
    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as stage:
            (stage / "x").write_text("half")
            raise RuntimeError("crash")
    assert sorted(os.listdir(out)) == ["keep"] and len(os.listdir(tmp_path)) == 1
    with atomic_dir(out) as stage:
        (stage / "x").write_text("new")
    plain = tmp_path / "plain"
    plain.mkdir()
    assert sorted(os.listdir(out)) == ["x"] and _mode(out) == _mode(plain)
