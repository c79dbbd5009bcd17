"""Where the real material lives (fetched by ``scripts/fetch_assets.sh``, never committed).

The files (OpenCV's sample video and photos, Pose2Sim's demo videos, MediaPipe's BlazePose models,
MoveNet / NanoDet / CenterNet converted to ONNX) and their sources are listed in
``edgepose.external.sources``. Code that needs one asks ``asset_path(name)`` and, on ``None``,
skips with ``missing_reason(name)``.
"""

from __future__ import annotations

import os
from pathlib import Path


def asset_dirs() -> list[Path]:
    """Search order: $EDGEPOSE_ASSETS, ./.assets, the repository's .assets, ~/.cache/edgepose/assets."""
    dirs = []
    if os.environ.get("EDGEPOSE_ASSETS"):
        dirs.append(Path(os.environ["EDGEPOSE_ASSETS"]).expanduser())
    dirs.append(Path.cwd() / ".assets")
    dirs.append(Path(__file__).resolve().parents[2] / ".assets")  # a source checkout run from elsewhere
    dirs.append(Path.home() / ".cache" / "edgepose" / "assets")
    seen, out = set(), []
    for d in dirs:
        key = os.path.abspath(d)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def asset_path(name: str) -> Path | None:
    """The first non-empty file called ``name`` in the asset directories, or None."""
    for d in asset_dirs():
        p = d / name
        if p.is_file() and p.stat().st_size > 0:
            return p
    return None


def missing_reason(name: str) -> str:
    from ..external.sources import FILES  # a data table; nothing heavy

    what = FILES[name].about if name in FILES else "converted model" if name.endswith(".onnx") else "asset"
    where = ", ".join(str(d) for d in asset_dirs())
    return f"{name} ({what}) not found in {where}; run `bash scripts/fetch_assets.sh` to fetch it"
