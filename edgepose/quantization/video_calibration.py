"""Calibration crops from footage without labels: a person detector's boxes on a video's frames.

PTQ needs real activations, not labels. The int8 build of the shipped weights runs on a user's
machine (``edgepose run``/``demo``/``predict`` default to it where it is measured within 1 AP), where
the labelled set ``edgepose label`` makes (two teachers over the footage, ~26 min) is not there, but
the fetched ``vtest.avi`` is. ``VideoCrops`` is a dataset in ``calibration.collect``'s form: each item a
detected person cropped exactly as ``TopDownDataset`` crops a labelled one at evaluation (box padded
by the papers' 1.25, warped to the model's input, RGB, normalised), with the window's neighbouring
frames cropped by the same box. Only frames before ``stop`` are read: by default the training part
of vtest (the held-out last 30% never calibrates).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..core.transforms import crop_person

# vtest.avi's first held-out frame (cli/demo.py's HELD_OUT: the last 30% of its 795 frames)
VTEST_TRAIN_STOP = 557


class VideoCrops:
    """Detected people of every ``every``-th frame of ``video[first:stop]``, as model inputs.

    ``spec``: the model's ``ModelSpec`` (input size, mean/std, frame offsets); ``detector``: a
    ``KIND[:ARG]`` of ``edgepose.sdk.DETECTORS`` or a callable; ``max_people``: per frame, the most
    confident at or above ``min_score`` (default: every box the detector keeps). Frames are read once
    and kept (uint8), so a few dozen frames cost ~1 MB each. The defaults built the int8 bundle whose
    held-out AP ``edgepose/assets/weights/index.json`` records (every 8th frame with boxes at 0.4 or
    more gave 0.2 AP less: at this margin the calibration set is part of the measurement).
    """

    def __init__(
        self,
        spec,
        video: str | Path,
        first: int = 0,
        stop: int | None = None,
        every: int = 12,
        detector="nanodet",
        max_people: int = 12,
        min_score: float = 0.0,
        threads: int | None = 1,
    ):
        from ..sdk.detectors import make_detector

        self.input_size = tuple(int(v) for v in spec.input_size)
        self.mean, self.std = tuple(spec.mean), tuple(spec.std)
        self.offsets = tuple(spec.frame_offsets)
        self.video = Path(video)
        cap = cv2.VideoCapture(str(self.video))
        if not cap.isOpened():
            raise FileNotFoundError(f"cannot open {str(self.video)!r} for calibration crops")
        total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or 10**9
        stop = min(total, stop if stop is not None else total)
        if stop <= first:
            raise ValueError(f"no frames to calibrate on in {self.video.name}[{first}:{stop}]")
        wanted = set()
        centres = list(range(first, stop, max(1, int(every))))
        for c in centres:
            wanted.update(min(max(c + o, first), stop - 1) for o in self.offsets)
        self.frames: dict[int, np.ndarray] = {}
        cap.set(cv2.CAP_PROP_POS_FRAMES, first)
        for i in range(first, max(wanted) + 1):
            ok, img = cap.read()
            if not ok:
                break
            if i in wanted:
                self.frames[i] = img  # BGR: the detector's input; crops convert their own
        cap.release()
        det = (
            make_detector(detector, **({"threads": threads} if threads else {}))
            if isinstance(detector, str)
            else detector
        )
        self.samples: list[tuple[int, np.ndarray]] = []
        for c in centres:
            if c not in self.frames:
                break
            found = det(self.frames[c], c)
            scores = np.asarray(found.scores)
            order = [k for k in np.argsort(-scores)[:max_people] if scores[k] >= min_score]
            self.samples += [(c, np.asarray(found.boxes[k], np.float64)) for k in order]
        self.first, self.stop, self.every = first, stop, max(1, int(every))
        if not self.samples:
            raise ValueError(f"the detector found nobody in {self.video.name}[{first}:{stop}:{every}]")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> dict:
        import torch  # lazy: parse_video_data runs in the CLI before any heavy import

        c, box = self.samples[index]
        crops = []
        for o in self.offsets:
            rgb = cv2.cvtColor(self.frames[min(max(c + o, self.first), self.stop - 1)], cv2.COLOR_BGR2RGB)
            crops.append(crop_person(rgb, box, self.input_size, self.mean, self.std)[0])
        if len(crops) == 1:
            return {"image": torch.from_numpy(crops[0])}
        return {"frames": torch.from_numpy(np.stack(crops))}

    def describe(self) -> str:
        return (
            f"{len(self)} detected people on every {self.every}th frame of {self.video.name} "
            f"{self.first}-{self.stop - 1}"
        )


PREFIX = "video:"


def parse_video_data(data: str) -> tuple[Path, int, int | None]:
    """``video:PATH`` or ``video:PATH:START-STOP`` (frames START..STOP-1) -> (path, start, stop)."""
    rest = data[len(PREFIX) :]
    path, start, stop = rest, 0, None
    head, sep, span = rest.rpartition(":")
    if sep and "-" in span and all(p.isdigit() for p in span.split("-", 1)):
        path, (a, b) = head, span.split("-", 1)
        start, stop = int(a), int(b)
        if stop <= start:
            raise ValueError(f"--data {data!r}: the frame range {span} is empty (START-STOP, STOP exclusive)")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--data {data!r}: no video file {path!r}")
    return Path(path), start, stop


class VideoSource:
    """``calibration.DataSource``'s calibration side for unlabelled footage (``--data video:PATH``):
    detected people calibrate; there is no labelled split, so nothing is scored (``labelled`` False)."""

    labelled = False

    def __init__(self, data: str, spec, **options):
        self.video, self.start, self.stop = parse_video_data(data)
        self.root = self.video
        self.spec = spec
        self._crops = None
        self._options = options

    @property
    def calibration_set(self) -> VideoCrops:
        if self._crops is None:
            self._crops = VideoCrops(self.spec, self.video, self.start, self.stop, **self._options)
        return self._crops

    def describe(self) -> str:
        return self.calibration_set.describe()
