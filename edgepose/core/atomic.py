"""Atomic writes: a crash or a failed export never leaves a half-written file or directory."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp/mkdtemp create owner-only (0600/0700) entries; a finished artifact gets the permissions
# a plain open()/mkdir() would have given it, so bundles and checkpoints stay readable by others
FILE_MODE = 0o666 & ~_umask()
DIR_MODE = 0o777 & ~_umask()


# Temporaries carry the writer's PID (``.NAME.<pid>-<random>.tmp|.partial``, ``edgepose-export-<pid>-*``),
# so the next writer can tell a killed run's leftovers (PID gone) from a concurrent run's (PID alive).
STALE_UNOWNED_S = 6 * 3600  # leftovers named before PIDs were recorded: removed once this old
STALE_OWNED_S = 48 * 3600  # a live PID this old is taken to be a reused one


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def _pid_of(rest: str) -> int | None:
    m = re.match(r"(\d+)-", rest)
    return int(m.group(1)) if m else None


def _stale(p: Path, pid: int | None, now: float) -> bool:
    try:
        age = now - p.lstat().st_mtime
    except OSError:
        return False
    if pid is None:
        return age > STALE_UNOWNED_S
    if pid == os.getpid():
        return False
    return not pid_alive(pid) or age > STALE_OWNED_S


def _remove(p: Path) -> bool:
    try:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()
        return True
    except OSError:
        return False


def clean_leftovers(path: str | os.PathLike) -> list[Path]:
    """Remove what killed writers of ``path`` left beside it: ``.NAME.*.tmp`` files, ``.NAME.*.partial``
    staging directories and ``.NAME.old-<pid>`` directories whose writer is gone. Returns them.

    A writer killed between ``atomic_dir``'s two renames leaves no ``path`` and its previous version
    as ``.NAME.old-<pid>``: that one is moved back to ``path`` (the previous artifact survives the
    kill), not removed."""
    path = Path(path)
    parent, head = path.parent, f".{path.name}."
    if not parent.is_dir():
        return []
    now, removed = time.time(), []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return []
    for p in entries:
        n = p.name
        if not n.startswith(head):
            continue
        rest = n[len(head) :]
        if rest.endswith((".tmp", ".partial")) and "." not in rest.rsplit(".", 1)[0]:
            pid = _pid_of(rest)
        elif re.fullmatch(r"old-\d+", rest):
            pid = int(rest[4:])
        else:
            continue
        if not _stale(p, pid, now):
            continue
        if rest.startswith("old-") and not os.path.lexists(path):
            try:
                os.replace(p, path)  # the swap was cut between its renames: restore the previous one
                continue
            except OSError:
                pass
        if _remove(p):
            removed.append(p)
    return removed


def clean_temp_dirs(prefixes: Iterable[str], where: str | os.PathLike | None = None) -> list[Path]:
    """Remove ``<prefix><pid>-*`` directories and files (``edgepose-export-`` work dirs, converter logs)
    in the temp dir whose run is gone."""
    root = Path(where or tempfile.gettempdir())
    now, removed = time.time(), []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for p in entries:
        for prefix in prefixes:
            if p.name.startswith(prefix) and not p.is_symlink() and (p.is_dir() or p.is_file()):
                if _stale(p, _pid_of(p.name[len(prefix) :]), now) and _remove(p):
                    removed.append(p)
                break
    return removed


def make_temp_dir(prefix: str) -> Path:
    """A temp directory named ``<prefix><pid>-<random>`` (see ``clean_temp_dirs``)."""
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-"))


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb") -> Iterator:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds.

    A killed writer's temporary (``.NAME.<pid>-*.tmp``) is removed by the next write of ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty staging directory that becomes ``path`` only if the block succeeds.

    An existing ``path`` is left untouched on failure and replaced on success. A killed run's
    staging directory (``.NAME.<pid>-*.partial``, or ``.NAME.old-<pid>``) is removed by the next one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path)
    stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".partial", dir=path.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    os.chmod(stage, DIR_MODE)
    old = None
    if path.exists():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
    try:
        os.replace(stage, path)
    except BaseException:
        if old is not None:
            os.replace(old, path)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
