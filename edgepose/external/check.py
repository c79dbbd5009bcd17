"""Refuse a third-party model file before it runs unless it is the one on record.

A file taken as it is from a package must have its pinned sha256 (``sources.FILES``); a converted
ONNX must have the sha256 that ``external.json`` recorded when it passed its check against TF.js.
Hashes are cached per (path, size, mtime), so a second load costs a ``stat``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..core.assets import asset_path, missing_reason
from .sources import FILES, PACKAGES

RECORD = "external.json"  # written by convert.py beside the converted files


class ExternalModelError(RuntimeError):
    """A third-party model file is missing, damaged or not the one on record; one line."""


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def conversion_record(path: Path) -> dict | None:
    try:
        return json.loads((path.parent / RECORD).read_text(encoding="utf-8")).get(path.name)
    except (OSError, ValueError, AttributeError):
        return None


def verified_path(name: str) -> Path:
    """The asset ``name``, checked; raises ExternalModelError naming the problem and the fix."""
    path = asset_path(name)
    if path is None:
        raise ExternalModelError(missing_reason(name))
    fix = f"delete {path} and run `bash scripts/fetch_assets.sh`"
    if name in FILES:
        want = FILES[name].sha256
        got = file_sha256(path)
        if got != want:
            pkg = PACKAGES[FILES[name].package].spec
            raise ExternalModelError(
                f"{path} has sha256 {got[:12]}..., not the {pkg} file on record ({want[:12]}...): {fix}"
            )
        return path
    rec = conversion_record(path)
    if not rec or not rec.get("passed"):
        raise ExternalModelError(f"{path} has no passed conversion check in {path.parent / RECORD}: {fix}")
    if file_sha256(path) != rec.get("sha256"):
        raise ExternalModelError(f"{path} changed since it was converted and checked (sha256 differs): {fix}")
    return path


def available(name: str) -> bool:
    """Whether ``name`` is present and passes its check (no exception)."""
    try:
        verified_path(name)
        return True
    except (ExternalModelError, OSError):
        return False


def describe(name: str) -> dict:
    """Source, version, licence and sha256 of an asset, for model cards and ``edgepose teachers``."""
    if name in FILES:
        f = FILES[name]
        pkg = PACKAGES[f.package]
        return {
            "file": name,
            "source": f"{pkg.registry}:{pkg.spec}",
            "member": f.member,
            "sha256": f.sha256,
            "licence": f.licence,
            "package_licence": pkg.licence,
        }
    path = asset_path(name)
    rec = conversion_record(path) if path else None
    return {"file": name, **(rec or {"source": "not converted yet"})}


__all__ = ["ExternalModelError", "available", "describe", "file_sha256", "verified_path"]
