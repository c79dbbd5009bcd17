"""Keypoint layouts: joint names, skeletons, flip pairs and OKS sigmas.

Torch-free so the device side (runtimes, sdk) can use it. Every model, dataset
reader and evaluator names its layout by key; conversion between layouts goes
through joint *names*, so an empty slot (DCPose's ear slots) is simply a name
absent from the other layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# COCO OKS per-joint sigmas (from the COCO keypoint evaluation), keyed by name.
# PoseTrack's head joints have no COCO sigma; we use the nose/ear scale for
# head_bottom/head_top, which is what PoseTrack-on-COCO-AP tools commonly do.
_SIGMAS = {
    "nose": 0.026,
    "left_eye": 0.025,
    "right_eye": 0.025,
    "left_ear": 0.035,
    "right_ear": 0.035,
    "left_shoulder": 0.079,
    "right_shoulder": 0.079,
    "left_elbow": 0.072,
    "right_elbow": 0.072,
    "left_wrist": 0.062,
    "right_wrist": 0.062,
    "left_hip": 0.107,
    "right_hip": 0.107,
    "left_knee": 0.087,
    "right_knee": 0.087,
    "left_ankle": 0.089,
    "right_ankle": 0.089,
    "head_bottom": 0.079,
    "head_top": 0.035,
}

_BODY12 = (
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

_BODY_EDGES = (
    ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"),
    ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"),
    ("left_hip", "left_knee"),
    ("left_knee", "left_ankle"),
    ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
)


@dataclass(frozen=True)
class KeypointLayout:
    """An ordered set of joints. ``empty`` names slots that exist but are never labelled."""

    name: str
    names: tuple[str, ...]
    edges: tuple[tuple[str, str], ...]
    empty: frozenset[str] = field(default_factory=frozenset)
    # PoseTrack-style joint groups used by the mAP table (head, shoulder, ...).
    description: str = ""

    def __len__(self) -> int:
        return len(self.names)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(
                f"joint {name!r} is not in layout {self.name!r}; it has {list(self.names)}"
            ) from None

    @property
    def skeleton(self) -> list[tuple[int, int]]:
        """Edges as index pairs, skipping edges that touch an empty slot."""
        return [
            (self.index(a), self.index(b))
            for a, b in self.edges
            if a in self.names and b in self.names and a not in self.empty and b not in self.empty
        ]

    @property
    def flip_pairs(self) -> list[tuple[int, int]]:
        pairs = []
        for i, n in enumerate(self.names):
            if n.startswith("left_"):
                other = "right_" + n[len("left_") :]
                if other in self.names:
                    pairs.append((i, self.index(other)))
        return pairs

    @property
    def flip_index(self) -> list[int]:
        """Permutation that maps joint i of a mirrored image to its label."""
        perm = list(range(len(self.names)))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    @property
    def sigmas(self) -> np.ndarray:
        return np.array([_SIGMAS.get(n, 0.05) for n in self.names], dtype=np.float64)

    @property
    def valid_mask(self) -> np.ndarray:
        """True for joints that can carry labels (False for empty slots)."""
        return np.array([n not in self.empty for n in self.names], dtype=bool)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "names": list(self.names),
            "skeleton": [list(e) for e in self.skeleton],
            "flip_pairs": [list(p) for p in self.flip_pairs],
            "empty": sorted(self.empty),
        }


COCO17 = KeypointLayout(
    name="coco17",
    names=(
        "nose",
        "left_eye",
        "right_eye",
        "left_ear",
        "right_ear",
        *_BODY12,
    ),
    edges=(
        ("nose", "left_eye"),
        ("nose", "right_eye"),
        ("left_eye", "left_ear"),
        ("right_eye", "right_ear"),
        ("left_ear", "left_shoulder"),
        ("right_ear", "right_shoulder"),
        *_BODY_EDGES,
    ),
    description="MS-COCO 17 keypoints (DistilPose, SHaRPose).",
)

# DCPose / PoseTrack18 JSON order: the ear slots exist but are never annotated.
POSETRACK17 = KeypointLayout(
    name="posetrack17",
    names=("nose", "head_bottom", "head_top", "left_ear", "right_ear", *_BODY12),
    edges=(
        ("nose", "head_bottom"),
        ("nose", "head_top"),
        ("head_bottom", "left_shoulder"),
        ("head_bottom", "right_shoulder"),
        *_BODY_EDGES,
    ),
    empty=frozenset({"left_ear", "right_ear"}),
    description="DCPose's 17-slot PoseTrack layout (DSTA, TAR-ViTPose); ear slots empty.",
)

POSETRACK15 = KeypointLayout(
    name="posetrack15",
    names=("nose", "head_bottom", "head_top", *_BODY12),
    edges=POSETRACK17.edges,
    description="PoseTrack's 15 labelled joints in DCPose order (PAVE-Net).",
)

# The PoseTrack 2017 evaluation toolkit's own joint order (poseval), used at I/O edges.
POSETRACK_OFFICIAL15 = KeypointLayout(
    name="posetrack_official15",
    names=(
        "right_ankle",
        "right_knee",
        "right_hip",
        "left_hip",
        "left_knee",
        "left_ankle",
        "right_wrist",
        "right_elbow",
        "right_shoulder",
        "left_shoulder",
        "left_elbow",
        "left_wrist",
        "head_bottom",
        "nose",
        "head_top",
    ),
    edges=POSETRACK17.edges,
    description="poseval's 15-joint order (PoseTrack 2017 MPII-style).",
)

LAYOUTS: dict[str, KeypointLayout] = {
    lay.name: lay for lay in (COCO17, POSETRACK17, POSETRACK15, POSETRACK_OFFICIAL15)
}

# PoseTrack's mAP table groups joints like this (both sides pooled).
JOINT_GROUPS: dict[str, tuple[str, ...]] = {
    "head": ("nose", "head_bottom", "head_top", "left_eye", "right_eye", "left_ear", "right_ear"),
    "shoulder": ("left_shoulder", "right_shoulder"),
    "elbow": ("left_elbow", "right_elbow"),
    "wrist": ("left_wrist", "right_wrist"),
    "hip": ("left_hip", "right_hip"),
    "knee": ("left_knee", "right_knee"),
    "ankle": ("left_ankle", "right_ankle"),
}


def get_layout(name: str) -> KeypointLayout:
    try:
        return LAYOUTS[name]
    except KeyError:
        raise KeyError(f"unknown keypoint layout {name!r}; known: {sorted(LAYOUTS)}") from None


def convert(
    keypoints: np.ndarray,
    src: KeypointLayout | str,
    dst: KeypointLayout | str,
    fill: float = 0.0,
) -> np.ndarray:
    """Re-order the joint axis (-2 for (..., J, D) arrays) from ``src`` to ``dst`` by name.

    Joints absent from ``src`` (or empty there) are filled with ``fill``.
    """
    src = get_layout(src) if isinstance(src, str) else src
    dst = get_layout(dst) if isinstance(dst, str) else dst
    kp = np.asarray(keypoints)
    if kp.shape[-2] != len(src):
        raise ValueError(f"expected {len(src)} joints for layout {src.name!r}, got array of shape {kp.shape}")
    out = np.full(kp.shape[:-2] + (len(dst), kp.shape[-1]), fill, dtype=kp.dtype)
    for j, n in enumerate(dst.names):
        if n in src.names and n not in src.empty:
            out[..., j, :] = kp[..., src.index(n), :]
    return out
