"""File integrity of a bundle: the sha256 and size of every file, recorded at export, checked on load.

A bundle's manifest lists every file of the bundle directory except itself
(graph files and their companions: OpenVINO's ``.bin``, the inside of a Core ML
``.mlpackage``) under ``files`` with its size and sha256, and carries a
``digest``: the sha256 of its own canonical JSON without the digest. Loading
checks both before any runtime parses a graph, so a truncated or bit-flipped
file, a missing one, or a manifest edited by hand is refused with one line
naming it, instead of running. Hashes are cached per process by (path, inode,
size, mtime), so a bundle opened again costs a ``stat`` per file. A weight file
that several stage graphs share (SHaRPose's ViT) is one file here, recorded and
checked once; each graph's own metadata also names it with its sha256
(``check_shared_file``), so a graph opened without its manifest checks it too.

Torch-free (device side).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# (resolved path, inode, size, mtime_ns) -> sha256 hex
_CACHE: dict[tuple[str, int, int, int], str] = {}
_CACHE_MAX = 4096


class IntegrityError(ValueError):
    """A bundle file that is missing, unreadable, or not the file the export wrote."""


def _key(path: Path, st: os.stat_result) -> tuple[str, int, int, int]:
    return (str(path.resolve()), st.st_ino, st.st_size, st.st_mtime_ns)


def file_sha256(path: str | os.PathLike, use_cache: bool = True) -> str:
    """The sha256 of a file, from the cache when its path, inode, size and mtime are unchanged."""
    p = Path(path)
    st = p.stat()
    key = _key(p, st)
    if use_cache and key in _CACHE:
        return _CACHE[key]
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = digest
    return digest


def clear_cache() -> None:
    _CACHE.clear()


def bundle_files(bundle_dir: str | os.PathLike, exclude: tuple[str, ...] = ("manifest.json",)) -> list[str]:
    """Every regular file under ``bundle_dir`` (relative POSIX paths, sorted), hidden files and
    ``exclude`` left out."""
    root = Path(bundle_dir)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            rel = Path(dirpath, name).relative_to(root).as_posix()
            if rel not in exclude:
                out.append(rel)
    return sorted(out)


def record_files(bundle_dir: str | os.PathLike, exclude: tuple[str, ...] = ("manifest.json",)) -> dict:
    """{relative path: {"sha256", "size"}} for every file of the bundle (see ``bundle_files``)."""
    root = Path(bundle_dir)
    return {
        rel: {"sha256": file_sha256(root / rel), "size": (root / rel).stat().st_size}
        for rel in bundle_files(root, exclude)
    }


def canonical_digest(data: Mapping[str, Any]) -> str:
    """sha256 of a manifest's JSON without its ``digest`` field (sorted keys, no spaces)."""
    body = {k: v for k, v in data.items() if k != "digest"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


_REEXPORT = "re-export it (`edgepose export ...`) or copy the bundle again"


def check_files(bundle_dir: str | os.PathLike, files: Mapping[str, Mapping[str, Any]]) -> None:
    """Raise IntegrityError naming the first file that is missing, unreadable, or changed."""
    root = Path(bundle_dir)
    for rel, rec in sorted(files.items()):
        p = root / rel
        try:
            st = p.stat()
        except FileNotFoundError:
            raise IntegrityError(
                f"bundle {str(root)!r} is missing {rel!r} (recorded at export); {_REEXPORT}"
            ) from None
        except PermissionError:
            raise IntegrityError(
                f"cannot reach {str(p)!r}: permission denied; give read access to the bundle "
                f"(chmod -R u+rX {str(root)!r})"
            ) from None
        if not p.is_file():
            raise IntegrityError(f"{str(p)!r} should be a file but is not; {_REEXPORT}")
        if st.st_size != rec["size"]:
            raise IntegrityError(
                f"{str(p)!r} has {st.st_size} bytes, the export wrote {rec['size']}: the file is truncated "
                f"or was replaced; {_REEXPORT}"
            )
        try:
            got = file_sha256(p)
        except PermissionError:
            raise IntegrityError(
                f"cannot read {str(p)!r}: permission denied; give read access (chmod u+r {str(p)!r})"
            ) from None
        except OSError as e:
            raise IntegrityError(f"cannot read {str(p)!r}: {e.strerror or e}; {_REEXPORT}") from None
        if got != rec["sha256"]:
            raise IntegrityError(
                f"{str(p)!r} is damaged: its sha256 {got[:12]}... differs from the one recorded at export "
                f"({rec['sha256'][:12]}...); {_REEXPORT}"
            )


def check_shared_file(graph: str | os.PathLike, record: Mapping[str, Any]) -> Path:
    """The weight file several stage graphs share (``record``: its ``file``, ``size``, ``sha256``, as
    the graph's own metadata names it), checked before a runtime maps it; returns its path.

    The manifest already checks it once per bundle; this covers a graph opened on its own, where a
    changed shared file would otherwise run with wrong weights silently.
    """
    g = Path(graph)
    name = str(record.get("file", ""))
    if not name or Path(name).name != name or name in (".", ".."):
        raise IntegrityError(f"{str(g)!r} names a shared weight file outside its directory ({name!r})")
    check_files(g.parent, {name: {"size": int(record["size"]), "sha256": str(record["sha256"])}})
    return g.parent / name


__all__ = [
    "IntegrityError",
    "bundle_files",
    "canonical_digest",
    "check_files",
    "check_shared_file",
    "clear_cache",
    "file_sha256",
    "record_files",
]
