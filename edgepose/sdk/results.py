"""``Results``: the poses of one image, as a list that can draw, save and describe itself.

What a newcomer expects from the field's favourite tools: ``est(image)`` gives something that
prints readably, ``.plot()`` returns an annotated copy, ``.save("out.jpg")`` writes it and
``.to_dict()`` is JSON-ready. It is a ``list`` of ``Pose`` so every caller that treated the
estimator's answer as a list keeps working. Torch-free.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np

from ..core.atomic import atomic_file
from ..core.keypoints import KeypointLayout
from .types import Pose

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class Results(list):
    """The poses found in one image (a ``list[Pose]``), with the image they were found in.

    ``image``: the BGR frame (kept by reference, never drawn on); ``path``: where it was read from,
    if anywhere; ``layout``: the keypoint layout (names and skeleton).
    """

    def __init__(
        self,
        poses: Iterable[Pose] = (),
        image: np.ndarray | None = None,
        path: str | os.PathLike | None = None,
        layout: KeypointLayout | None = None,
    ):
        super().__init__(poses)
        self.image = image
        self.path = None if path is None else str(path)
        self.layout = layout if layout is not None else next((p.layout for p in self if p.layout), None)

    @property
    def poses(self) -> list[Pose]:
        return list(self)

    def __repr__(self) -> str:
        where = f" of {Path(self.path).name}" if self.path else ""
        size = f" ({self.image.shape[1]}x{self.image.shape[0]})" if self.image is not None else ""
        body = "".join(f"\n  {p!r}" for p in self)
        return f"Results{where}{size}: {len(self)} {'person' if len(self) == 1 else 'people'}{body}"

    def plot(self, image: np.ndarray | None = None, min_score: float = 0.3, boxes: bool = True) -> np.ndarray:
        """A copy of the image (or of ``image``) with every pose drawn, each person in their own colour."""
        from .drawing import draw_poses

        base = self.image if image is None else image
        if base is None:
            raise ValueError("these results hold no image: pass one, results.plot(image)")
        if self.layout is None and len(self):
            raise ValueError("these poses have no keypoint layout to draw their skeletons with")
        return draw_poses(
            np.array(base, copy=True), self, self.layout, min_score=min_score, boxes=boxes, by_order=True
        )

    def to_dict(self) -> dict:
        """``{"image", "width", "height", "keypoint_names", "poses": [Pose.to_dict(), ...]}``."""
        rec: dict = {"image": self.path}
        if self.image is not None:
            rec["width"], rec["height"] = int(self.image.shape[1]), int(self.image.shape[0])
        rec["keypoint_names"] = list(self.layout.names) if self.layout is not None else None
        rec["poses"] = [p.to_dict() for p in self]
        return rec

    def save(self, path: str | os.PathLike, image: np.ndarray | None = None) -> Path:
        """Write the annotated image (``.jpg``, ``.png``, ...) or, for ``.json``, the poses; atomically."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_file(path, "w") as f:
                json.dump(self.to_dict(), f, indent=1)
            return path
        if suffix not in IMAGE_SUFFIXES:
            raise ValueError(
                f"cannot save results as {str(path)!r}: use an image ({', '.join(IMAGE_SUFFIXES)}) or .json"
            )
        return write_image(path, self.plot(image))


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode ``image`` by the file's suffix and write it atomically (no half-written picture)."""
    path = Path(path)
    ok, buf = cv2.imencode(path.suffix.lower(), image)
    if not ok:
        raise ValueError(f"OpenCV cannot encode an image as {path.suffix!r} ({path})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        f.write(buf.tobytes())
    return path


def read_image(path: str | os.PathLike) -> np.ndarray:
    """A BGR image from a file, or one clear error (``cv2.imread`` silently returns None)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image {str(p)!r} does not exist")
    image = cv2.imread(str(p), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot decode {str(p)!r} as an image (damaged, or a format OpenCV cannot read)")
    return image


def image_files(folder: str | os.PathLike) -> list[Path]:
    """The images directly in ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def save_all(results: Iterable[Results], folder: str | os.PathLike, suffix: str | None = None) -> list[Path]:
    """Annotated images for a list of ``Results`` in ``folder`` (named after each source image, else
    ``image_<n>``), plus ``predictions.json`` with all poses; returns the written paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written, records = [], []
    for n, r in enumerate(results):
        name = Path(r.path).name if r.path else f"image_{n:04d}.jpg"
        if suffix:
            name = Path(name).stem + suffix
        elif Path(name).suffix.lower() not in IMAGE_SUFFIXES:
            name += ".jpg"
        written.append(r.save(folder / name))
        records.append(r.to_dict())
    with atomic_file(folder / "predictions.json", "w") as f:
        json.dump(records, f, indent=1)
    return [*written, folder / "predictions.json"]


__all__ = ["IMAGE_SUFFIXES", "Results", "image_files", "read_image", "save_all", "write_image"]
