"""Where the real test material lives (fetched by ``scripts/fetch_assets.sh``, never committed).

The files are OpenCV's sample data (``vtest.avi``, ``messi5.jpg``,
``basketball1.png``) and MediaPipe's BlazePose models
(``pose_detection.tflite``, ``pose_landmark_full.tflite``). Code that needs one
asks ``asset_path(name)`` and, on ``None``, skips with ``missing_reason(name)``.
"""

from __future__ import annotations

import os
from pathlib import Path

KNOWN_ASSETS = {
    "vtest.avi": "OpenCV sample video (Debian opencv-doc)",
    "messi5.jpg": "OpenCV sample image (Debian opencv-doc)",
    "basketball1.png": "OpenCV sample image (Debian opencv-doc)",
    "pose_detection.tflite": "MediaPipe BlazePose detector (mediapipe 0.10.21 wheel)",
    "pose_landmark_full.tflite": "MediaPipe BlazePose landmark model (mediapipe 0.10.21 wheel)",
}


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
    what = KNOWN_ASSETS.get(name, "test asset")
    where = ", ".join(str(d) for d in asset_dirs())
    return f"{name} ({what}) not found in {where}; run `bash scripts/fetch_assets.sh` to fetch it"
