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


def _dead_pid() -> int:
    import subprocess
    import sys

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid  # reaped: no process has it (until the system reuses it, which takes a while)


def test_killed_writers_leftovers_are_cleaned_by_the_next_write(tmp_path):
    import time

    from edgepose.core.atomic import clean_temp_dirs, make_temp_dir

    dead, alive = _dead_pid(), os.getppid()  # the parent (pytest's launcher) is alive and not us
    (tmp_path / f".last.pt.{dead}-abc123.tmp").write_bytes(b"")  # a SIGKILLed training's 0-byte tmp
    (tmp_path / f".last.pt.{alive}-def456.tmp").write_bytes(b"")  # a concurrent writer's: kept
    old_style = tmp_path / ".last.pt.zz9x_1.tmp"  # named before PIDs were recorded
    old_style.write_bytes(b"")
    week_ago = time.time() - 7 * 24 * 3600
    os.utime(old_style, (week_ago, week_ago))
    (tmp_path / ".last.pt.fresh1.tmp").write_bytes(b"")  # unnamed but recent: kept
    with atomic_file(tmp_path / "last.pt") as f:
        f.write(b"x")
    assert sorted(os.listdir(tmp_path)) == sorted(
        ["last.pt", f".last.pt.{alive}-def456.tmp", ".last.pt.fresh1.tmp"]
    )

    (tmp_path / f".bundle.{dead}-q1w2.partial").mkdir()  # a killed export's staging dir
    (tmp_path / f".bundle.{dead}-q1w2.partial" / "frame.onnx").write_bytes(b"1" * 100)
    (tmp_path / f".bundle.old-{dead}").mkdir()
    (tmp_path / f".bundle.{alive}-r4t5.partial").mkdir()  # a concurrent export's
    with atomic_dir(tmp_path / "bundle") as stage:
        (stage / "x").write_text("new")
    left = sorted(p for p in os.listdir(tmp_path) if "bundle" in p)
    assert left == sorted(["bundle", f".bundle.{alive}-r4t5.partial"])

    work = tmp_path / "tmp"
    work.mkdir()
    (work / f"edgepose-export-{dead}-abc").mkdir()
    (work / f"edgepose-export-{dead}-x1.log").write_text("a killed conversion's log")  # stages.quiet()
    (work / f"edgepose-export-{alive}-abc").mkdir()
    (work / "edgepose-export-nopid").mkdir()  # recent and unowned: kept
    (work / "unrelated").mkdir()
    removed = clean_temp_dirs(("edgepose-export-",), where=work)
    assert sorted(p.name for p in removed) == [
        f"edgepose-export-{dead}-abc",
        f"edgepose-export-{dead}-x1.log",
    ]
    assert sorted(os.listdir(work)) == sorted(
        [f"edgepose-export-{alive}-abc", "edgepose-export-nopid", "unrelated"]
    )
    mine = make_temp_dir("edgepose-export-")
    try:
        assert mine.name.startswith(f"edgepose-export-{os.getpid()}-")
        assert mine not in clean_temp_dirs(("edgepose-export-",), where=mine.parent)  # our own is never stale
        assert mine.is_dir()
    finally:
        mine.rmdir()
