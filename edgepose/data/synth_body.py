"""Synthetic people for the labelled video benchmark: a 3D articulated body, gaits and behaviour.

Why 3D and not a flat stick figure: left/right and front/back are learnable only if the picture
carries the cues a camera gives (which limb is drawn over which, far limbs in shade, a face that
turns away, a shirt seam that slides as the torso turns). A projected 3D body gives all of them,
and foreshortening makes the 2D poses varied. Motion is a phase-driven gait per action with
smooth cross-fades, so every joint moves smoothly and an occluded joint's position can be
recovered from its neighbours in time, which is what a temporal model must learn to use.

Units are metres and radians. World: X to image right, Y up (ground at Y=0), Z away from the
camera. Body frame: (l, u, f) = the person's left, up, forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..core.keypoints import COCO17, POSETRACK17, KeypointLayout

# The superset of both labelled layouts: COCO-17 in COCO order, then PoseTrack's head joints.
SYNTH19 = KeypointLayout(
    name="synth19",
    names=(*COCO17.names, "head_bottom", "head_top"),
    edges=tuple(dict.fromkeys(COCO17.edges + POSETRACK17.edges)),
    description="edgepose synthetic superset: COCO-17 order, then head_bottom and head_top.",
)

# Points the renderer needs beyond the labelled joints.
EXTRA_POINTS = (
    "pelvis",
    "neck_base",
    "head_center",
    "left_toe",
    "right_toe",
    "left_hand",
    "right_hand",
    "left_heel",
    "right_heel",
)
POINTS = SYNTH19.names + EXTRA_POINTS
P = {n: i for i, n in enumerate(POINTS)}
NUM_JOINTS = len(SYNTH19)

# Pose parameters every action fills; cross-fades mix these vectors.
ANGLE_NAMES = (
    "lean",
    "twist",
    "head_yaw",
    "head_pitch",
    "l_sh_flex",
    "l_sh_abd",
    "l_elbow",
    "l_fore_abd",
    "r_sh_flex",
    "r_sh_abd",
    "r_elbow",
    "r_fore_abd",
    "l_hip_flex",
    "l_hip_abd",
    "l_knee",
    "r_hip_flex",
    "r_hip_abd",
    "r_knee",
    "lift",  # metres of flight above the foot-planted height (jumps, running)
)
A = {n: i for i, n in enumerate(ANGLE_NAMES)}

# Torso cross-sections: (height as a fraction of the spine, half-width, half-depth as fractions of
# body height). The shirt and the pants are drawn as two outlines through these ellipses, so the
# torso keeps its thickness in profile views.
SHIRT_SECTIONS = np.array(
    [
        (0.14, 0.095, 0.066),
        (0.42, 0.086, 0.062),
        (0.70, 0.102, 0.070),
        (0.90, 0.126, 0.058),
        (0.97, 0.094, 0.050),
        (1.00, 0.040, 0.034),
    ]
)
PANTS_SECTIONS = np.array(
    [(-0.10, 0.070, 0.058), (-0.02, 0.098, 0.064), (0.08, 0.100, 0.066), (0.22, 0.092, 0.063)]
)
SHOULDER_LEVEL = 0.93  # shoulder joints sit at this fraction of the spine


@dataclass(frozen=True)
class BodyShape:
    """One person's proportions (metres). Ratios follow adult anthropometry, jittered per person."""

    height: float
    ankle_h: float
    shin: float
    thigh: float
    spine: float
    neck: float
    head_r: float
    shoulder_half: float
    hip_half: float
    upper_arm: float
    forearm: float
    hand: float
    foot: float
    girth: float  # multiplies all thicknesses
    radii: dict = field(default_factory=dict)
    shirt: np.ndarray = field(default_factory=lambda: SHIRT_SECTIONS.copy())
    pants: np.ndarray = field(default_factory=lambda: PANTS_SECTIONS.copy())


def sample_shape(rng: np.random.Generator, child_p: float = 0.1) -> BodyShape:
    child = rng.random() < child_p
    h = rng.uniform(1.0, 1.45) if child else rng.uniform(1.52, 1.95)
    head = 0.063 * rng.uniform(0.93, 1.08) * (1.25 if child else 1.0)
    leg = rng.uniform(0.95, 1.05) * (0.92 if child else 1.0)
    shoulder = rng.uniform(0.88, 1.14)
    hips = rng.uniform(0.9, 1.22)
    girth = rng.uniform(0.85, 1.35)
    # Legs and trunk share what the head leaves of the height (hip joint at ~0.53 H for adults).
    legs = 0.535 * leg
    trunk = 1.0 - 2 * head - legs - 0.035
    radii = {
        "upper_arm": (0.031 * h * girth, 0.024 * h * girth),
        "forearm": (0.024 * h * girth, 0.018 * h * girth),
        "hand": 0.021 * h * girth**0.5,
        "thigh": (0.047 * h * girth, 0.032 * h * girth),
        "shin": (0.032 * h * girth, 0.022 * h * girth),
        "foot": 0.022 * h,
        "neck": 0.030 * h * girth**0.5,
    }
    shirt = SHIRT_SECTIONS.copy()
    pants = PANTS_SECTIONS.copy()
    shirt[:, 1:] *= h * girth
    pants[:, 1:] *= h * girth
    shirt[3:5, 1] *= shoulder  # shoulder width
    pants[:, 1] *= hips
    shirt[0, 1] *= 0.5 + 0.5 * hips
    return BodyShape(
        height=h,
        ankle_h=0.045 * h * leg,
        shin=(legs - 0.045 * leg) / 2 * h,
        thigh=(legs - 0.045 * leg) / 2 * h,
        spine=trunk * h,
        neck=0.035 * h,
        head_r=head * h,
        shoulder_half=0.108 * h * shoulder,
        hip_half=0.055 * h * hips,
        upper_arm=0.172 * h,
        forearm=0.150 * h,
        hand=0.072 * h,
        foot=0.135 * h,
        girth=girth,
        radii=radii,
        shirt=shirt,
        pants=pants,
    )


# ---------------------------------------------------------------------------------------------
# kinematics


def _bone_dir(abd: float, flex: float, side: float) -> tuple[float, float, float]:
    """Unit bone direction in the (l, u, f) frame: hanging down, abducted sideways by ``abd``
    (outwards for ``side`` +1 = left, -1 = right) and flexed forwards by ``flex``."""
    ca = math.cos(abd)
    return (side * math.sin(abd), -ca * math.cos(flex), ca * math.sin(flex))


def _rot_u(t: float) -> np.ndarray:  # about the vertical axis
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_l(t: float) -> np.ndarray:  # about the lateral axis: positive tips the top forwards
    c, s = math.cos(t), math.sin(t)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


@dataclass
class Pose3D:
    """World-space geometry of one person at one instant."""

    points: np.ndarray  # (len(POINTS), 3)
    shirt_centres: np.ndarray  # (n, 3)
    shirt_axes: np.ndarray  # (n, 2, 3): lateral and forward unit vectors
    pants_centres: np.ndarray
    pants_axes: np.ndarray
    head_axes: np.ndarray  # (3, 3): head's left, up, forward in world
    torso_forward: np.ndarray  # (3,)


def pose_body(shape: BodyShape, ang: np.ndarray, root_xz: tuple[float, float], heading: float) -> Pose3D:
    """Place a body with pose parameters ``ang`` at ground position ``root_xz`` facing ``heading``
    (radians; forward = (cos, 0, sin) in X-Z). Feet are planted: the lower foot touches Y=0."""
    s = shape
    pts = np.zeros((len(POINTS), 3))
    # legs in the pelvis frame
    for side, pre in ((1.0, "left"), (-1.0, "right")):
        k = "l" if side > 0 else "r"
        hip = np.array([side * s.hip_half, 0.0, 0.0])
        flex, abd, knee = ang[A[f"{k}_hip_flex"]], ang[A[f"{k}_hip_abd"]], ang[A[f"{k}_knee"]]
        kn = hip + s.thigh * np.array(_bone_dir(abd, flex, side))
        an = kn + s.shin * np.array(_bone_dir(abd, flex - knee, side))
        pts[P[f"{pre}_hip"]] = hip
        pts[P[f"{pre}_knee"]] = kn
        pts[P[f"{pre}_ankle"]] = an
        pts[P[f"{pre}_heel"]] = an + (0.0, -0.7 * s.ankle_h, -0.22 * s.foot)
        pts[P[f"{pre}_toe"]] = an + (side * 0.1 * s.foot, -0.8 * s.ankle_h, 0.78 * s.foot)
    # upper body: lean then twist about the pelvis
    lean, twist = ang[A["lean"]], ang[A["twist"]]
    r_up = _rot_l(lean) @ _rot_u(twist)
    neck_base = r_up @ (0.0, s.spine, 0.0)
    pts[P["neck_base"]] = neck_base
    for side, pre in ((1.0, "left"), (-1.0, "right")):
        k = "l" if side > 0 else "r"
        sh = r_up @ (side * s.shoulder_half, SHOULDER_LEVEL * s.spine, 0.0)
        flex, abd = ang[A[f"{k}_sh_flex"]], ang[A[f"{k}_sh_abd"]]
        el = sh + s.upper_arm * (r_up @ _bone_dir(abd, flex, side))
        fdir = r_up @ _bone_dir(abd + ang[A[f"{k}_fore_abd"]], flex + ang[A[f"{k}_elbow"]], side)
        wr = el + s.forearm * fdir
        pts[P[f"{pre}_shoulder"]] = sh
        pts[P[f"{pre}_elbow"]] = el
        pts[P[f"{pre}_wrist"]] = wr
        pts[P[f"{pre}_hand"]] = wr + s.hand * fdir
    # head: yaw and pitch on top of the torso's orientation
    r_head = r_up @ _rot_u(ang[A["head_yaw"]]) @ _rot_l(-ang[A["head_pitch"]])
    hl, hu, hf = r_head[:, 0], r_head[:, 1], r_head[:, 2]
    r = s.head_r
    centre = neck_base + r_up @ (0.0, s.neck + 0.85 * r, 0.12 * r)
    pts[P["head_center"]] = centre
    pts[P["head_top"]] = centre + 0.96 * r * hu
    pts[P["head_bottom"]] = neck_base + 0.62 * (centre - neck_base) + 0.1 * r * hf
    pts[P["nose"]] = centre + r * _unit(1.0 * hf - 0.16 * hu)
    for side, pre in ((1.0, "left"), (-1.0, "right")):
        pts[P[f"{pre}_eye"]] = centre + 0.94 * r * _unit(0.82 * hf + side * 0.40 * hl + 0.16 * hu)
        pts[P[f"{pre}_ear"]] = centre + 0.93 * r * _unit(side * hl - 0.22 * hf - 0.06 * hu)
    # torso cross-sections
    sc, sa = [], []
    for lvl, _, _ in s.shirt:
        rot = _rot_l(lean) @ _rot_u(twist * min(1.0, max(0.0, lvl)))
        sc.append(rot @ (0.0, lvl * s.spine, 0.0))
        sa.append((rot[:, 0], rot[:, 2]))
    pc, pa = [], []
    for lvl, _, _ in s.pants:
        rot = _rot_l(lean * max(0.0, lvl))
        pc.append(rot @ (0.0, lvl * s.spine, 0.0))
        pa.append((rot[:, 0], rot[:, 2]))
    # plant the lower foot on the ground, then go to world
    low = min(pts[P["left_heel"], 1], pts[P["right_heel"], 1], pts[P["left_toe"], 1], pts[P["right_toe"], 1])
    pelvis_y = -low + ang[A["lift"]]
    c, sn = math.cos(heading), math.sin(heading)
    basis = np.array([[-sn, 0.0, c], [0.0, 1.0, 0.0], [c, 0.0, sn]])  # rows: l, u, f in world
    origin = np.array([root_xz[0], pelvis_y, root_xz[1]])
    return Pose3D(
        points=pts @ basis + origin,
        shirt_centres=np.asarray(sc) @ basis + origin,
        shirt_axes=np.asarray(sa) @ basis,
        pants_centres=np.asarray(pc) @ basis + origin,
        pants_axes=np.asarray(pa) @ basis,
        head_axes=r_head.T @ basis,
        torso_forward=(r_up[:, 2]) @ basis,
    )


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-12)


# ---------------------------------------------------------------------------------------------
# actions: phase-driven pose generators


def _base(style: dict) -> np.ndarray:
    a = np.zeros(len(ANGLE_NAMES))
    a[A["l_sh_abd"]] = a[A["r_sh_abd"]] = style.get("arm_out", 0.12)
    a[A["l_elbow"]] = a[A["r_elbow"]] = style.get("elbow", 0.2)
    a[A["l_hip_abd"]] = a[A["r_hip_abd"]] = 0.03
    a[A["head_yaw"]] = style.get("head_yaw", 0.0)
    a[A["head_pitch"]] = style.get("head_pitch", 0.0)
    return a


def _pos(x: float) -> float:
    return x if x > 0 else 0.0


def act_walk(ph: float, t: float, st: dict) -> np.ndarray:
    a = _base(st)
    amp, arm = st["amp"], st["arm"]
    for k, p in (("l", ph), ("r", ph + math.pi)):
        a[A[f"{k}_hip_flex"]] = amp * math.sin(p) + 0.05
        a[A[f"{k}_knee"]] = 0.08 + 1.1 * _pos(math.cos(p + 0.35)) ** 2.5 + 0.22 * _pos(math.cos(p - 2.3)) ** 2
        a[A[f"{k}_sh_flex"]] = -arm * math.sin(p) + 0.04  # arms counter-swing
        a[A[f"{k}_elbow"]] = 0.2 + 0.35 * _pos(-math.sin(p))
    a[A["twist"]] = 0.1 * math.sin(ph)
    a[A["lean"]] = 0.04
    return a


def act_run(ph: float, t: float, st: dict) -> np.ndarray:
    a = _base(st)
    amp, arm = st["amp"], st["arm"]
    for k, p in (("l", ph), ("r", ph + math.pi)):
        a[A[f"{k}_hip_flex"]] = amp * math.sin(p) + 0.25
        a[A[f"{k}_knee"]] = 0.3 + 1.55 * _pos(math.cos(p + 0.6)) ** 1.5
        a[A[f"{k}_sh_flex"]] = -arm * math.sin(p) + 0.1
        a[A[f"{k}_elbow"]] = 1.45 + 0.2 * math.sin(p)
    a[A["twist"]] = 0.16 * math.sin(ph)
    a[A["lean"]] = 0.16
    a[A["lift"]] = 0.05 * st["height"] * _pos(math.sin(2 * ph - 0.6))
    return a


def act_stand(ph: float, t: float, st: dict) -> np.ndarray:
    a = _base(st)
    sway = math.sin(2 * math.pi * 0.25 * t + st["seed_phase"])
    a[A["lean"]] = 0.02 * sway
    a[A["l_hip_abd"]] = 0.04 + 0.03 * sway
    a[A["r_hip_abd"]] = 0.04 - 0.03 * sway
    a[A["l_knee"]] = st["knee_l"]
    a[A["r_knee"]] = st["knee_r"]
    a[A["l_hip_flex"]] = 0.5 * st["knee_l"]
    a[A["r_hip_flex"]] = 0.5 * st["knee_r"]
    for k in "lr":
        a[A[f"{k}_sh_flex"]] = st[f"{k}_flex"] + 0.04 * sway
        a[A[f"{k}_sh_abd"]] = st[f"{k}_abd"]
        a[A[f"{k}_elbow"]] = st[f"{k}_elbow"]
        a[A[f"{k}_fore_abd"]] = st[f"{k}_fore"]
    a[A["head_yaw"]] = st.get("head_yaw", 0.0) + 0.3 * math.sin(2 * math.pi * 0.11 * t + st["seed_phase"])
    return a


def act_wave(ph: float, t: float, st: dict) -> np.ndarray:
    a = act_stand(ph, t, st)
    for k in st["wave_arms"]:
        a[A[f"{k}_sh_abd"]] = st["wave_abd"]
        a[A[f"{k}_sh_flex"]] = 0.25
        a[A[f"{k}_elbow"]] = 0.1
        a[A[f"{k}_fore_abd"]] = (2.55 - st["wave_abd"]) + 0.45 * math.sin(ph)
    return a


def act_jack(ph: float, t: float, st: dict) -> np.ndarray:
    a = _base(st)
    s = 0.5 - 0.5 * math.cos(ph)
    for k in "lr":
        a[A[f"{k}_sh_abd"]] = 0.15 + 2.55 * s
        a[A[f"{k}_elbow"]] = 0.15
        a[A[f"{k}_hip_abd"]] = 0.04 + 0.3 * s
        a[A[f"{k}_knee"]] = 0.25 * (1 - s) + 0.05
        a[A[f"{k}_hip_flex"]] = 0.12 * (1 - s)
    a[A["lift"]] = 0.06 * st["height"] * abs(math.sin(ph))
    return a


def act_squat(ph: float, t: float, st: dict) -> np.ndarray:
    a = _base(st)
    s = 0.5 - 0.5 * math.cos(ph)
    for k in "lr":
        a[A[f"{k}_hip_flex"]] = 1.45 * s
        a[A[f"{k}_knee"]] = 1.95 * s + 0.05
        a[A[f"{k}_hip_abd"]] = 0.1 + 0.1 * s
        a[A[f"{k}_sh_flex"]] = 1.45 * s * st["arms_fwd"]
        a[A[f"{k}_elbow"]] = 0.15
    a[A["lean"]] = 0.55 * s
    a[A["head_pitch"]] = -0.35 * s
    return a


def act_swing(ph: float, t: float, st: dict) -> np.ndarray:
    a = act_stand(ph, t, st)
    off = 0.0 if st["together"] else math.pi
    a[A["l_sh_flex"]] = 0.45 + 1.25 * math.sin(ph)
    a[A["r_sh_flex"]] = 0.45 + 1.25 * math.sin(ph + off)
    a[A["l_elbow"]] = a[A["r_elbow"]] = 0.15
    a[A["l_fore_abd"]] = a[A["r_fore_abd"]] = 0.0
    a[A["l_sh_abd"]] = a[A["r_sh_abd"]] = 0.2
    a[A["twist"]] = 0.15 * math.sin(ph) * (0.0 if st["together"] else 1.0)
    return a


def act_turn(ph: float, t: float, st: dict) -> np.ndarray:
    a = act_walk(ph, t, {**st, "amp": 0.14, "arm": 0.08})
    return a


@dataclass(frozen=True)
class Action:
    """A behaviour: its pose generator, cycle frequency (Hz), speed and how fast it may turn."""

    pose: object
    freq: tuple[float, float]
    moves: bool
    turn_rate: float  # rad/s towards the target heading
    duration: tuple[float, float]


ACTIONS: dict[str, Action] = {
    "walk": Action(act_walk, (0.8, 1.05), True, 1.2, (2.0, 6.0)),
    "run": Action(act_run, (1.25, 1.55), True, 0.9, (1.5, 4.0)),
    "stand": Action(act_stand, (0.5, 0.5), False, 2.0, (1.0, 3.0)),
    "wave": Action(act_wave, (1.4, 2.4), False, 2.0, (1.5, 3.0)),
    "jack": Action(act_jack, (0.9, 1.3), False, 2.0, (2.0, 4.0)),
    "squat": Action(act_squat, (0.3, 0.5), False, 2.0, (2.5, 5.0)),
    "swing": Action(act_swing, (0.6, 1.0), False, 2.0, (2.0, 4.0)),
    "turn": Action(act_turn, (0.9, 1.1), False, 0.0, (1.0, 2.5)),
}

# What a person does next (relative weights): the behaviour table, not an if-chain.
NEXT_ACTION: dict[str, dict[str, float]] = {
    "walk": {
        "walk": 4.0,
        "run": 0.8,
        "stand": 1.2,
        "wave": 0.8,
        "turn": 0.8,
        "swing": 0.4,
        "jack": 0.3,
        "squat": 0.3,
    },
    "run": {"run": 1.5, "walk": 3.0, "stand": 0.4},
    "stand": {"walk": 3.0, "wave": 1.0, "turn": 1.0, "stand": 0.8, "swing": 0.6, "jack": 0.5, "squat": 0.5},
    "wave": {"walk": 2.0, "stand": 1.0, "turn": 0.6, "wave": 0.4},
    "jack": {"walk": 1.5, "stand": 1.0, "swing": 0.5},
    "squat": {"walk": 1.5, "stand": 1.0, "jack": 0.3},
    "swing": {"walk": 1.5, "stand": 1.0, "wave": 0.4},
    "turn": {"walk": 2.0, "stand": 1.0, "wave": 0.6, "swing": 0.4},
}

BLEND_S = 0.5  # cross-fade between actions (seconds)


def sample_style(name: str, rng: np.random.Generator, shape: BodyShape) -> dict:
    """Per-segment parameters: amplitudes, the arm pose of a standing person, which arm waves."""
    st = {
        "height": shape.height,
        "seed_phase": rng.uniform(0, 2 * math.pi),
        "head_yaw": rng.normal(0, 0.25) if rng.random() < 0.5 else 0.0,
        "head_pitch": rng.normal(0.05, 0.1),
        "arm_out": rng.uniform(0.08, 0.2),
        "elbow": rng.uniform(0.1, 0.35),
    }
    if name in ("walk", "turn"):
        st.update(amp=rng.uniform(0.3, 0.48), arm=rng.uniform(0.2, 0.55))
    elif name == "run":
        st.update(amp=rng.uniform(0.6, 0.85), arm=rng.uniform(0.5, 0.9))
    elif name == "squat":
        st.update(arms_fwd=float(rng.random() < 0.7))
    elif name == "swing":
        st.update(together=bool(rng.random() < 0.4))
    if name in ("stand", "wave", "swing"):
        st.update(knee_l=rng.uniform(0, 0.25), knee_r=rng.uniform(0, 0.25))
        # a few standing arm poses: hanging, phone in front, crossed, hand to face
        kind = rng.choice(["down", "down", "phone", "crossed", "face", "hips"])
        for k in "lr":
            st.update(
                {
                    f"{k}_flex": rng.normal(0.0, 0.1),
                    f"{k}_abd": rng.uniform(0.08, 0.25),
                    f"{k}_elbow": rng.uniform(0.05, 0.35),
                    f"{k}_fore": 0.0,
                }
            )
        if kind == "phone":
            for k in "lr":
                st.update({f"{k}_flex": 0.35, f"{k}_elbow": 1.3, f"{k}_fore": -0.25, f"{k}_abd": 0.15})
            st["head_pitch"] = 0.35
        elif kind == "crossed":
            for k in "lr":
                st.update({f"{k}_flex": 0.2, f"{k}_elbow": 1.45, f"{k}_fore": -1.1, f"{k}_abd": 0.25})
        elif kind == "face":
            k = rng.choice(["l", "r"])
            st.update({f"{k}_flex": 0.5, f"{k}_elbow": 2.3, f"{k}_fore": -0.3})
        elif kind == "hips":
            for k in "lr":
                st.update({f"{k}_flex": -0.3, f"{k}_abd": 0.7, f"{k}_elbow": 0.2, f"{k}_fore": -1.6})
    if name == "wave":
        st.update(
            wave_arms=["l", "r"] if rng.random() < 0.25 else [rng.choice(["l", "r"])],
            wave_abd=rng.uniform(1.2, 1.7),
        )
    return st


@dataclass
class Actor:
    """One person in a scene: body, appearance handle, position, heading and behaviour state."""

    track_id: int
    shape: BodyShape
    appearance: object
    x: float
    z: float
    heading: float
    action: str
    style: dict
    seg_left: float
    target_heading: float
    phase: float = 0.0
    freq: float = 1.0
    seg_t: float = 0.0
    prev: tuple | None = None  # (action, style, freq) while cross-fading
    age: float = 0.0
    seen: bool = False
    entering: bool = False
    turn_speed: float = 0.0

    def pose_params(self, t: float) -> np.ndarray:
        cur = ACTIONS[self.action].pose(self.phase, t, self.style)
        if self.prev is None or self.seg_t >= BLEND_S:
            return cur
        old = ACTIONS[self.prev[0]].pose(self.phase, t, self.prev[1])
        w = _smoothstep(self.seg_t / BLEND_S)
        return old + (cur - old) * w

    def speed(self) -> float:
        """Ground speed consistent with the stride so feet do not skate much (m/s)."""

        def one(action: str, style: dict, freq: float) -> float:
            if not ACTIONS[action].moves:
                return 0.0
            stride = 4.0 * (self.shape.thigh + self.shape.shin) * math.sin(style["amp"]) * 0.85
            return stride * freq

        cur = one(self.action, self.style, self.freq)
        if self.prev is None or self.seg_t >= BLEND_S:
            return cur
        w = _smoothstep(self.seg_t / BLEND_S)
        return one(*self.prev) * (1 - w) + cur * w

    def start(
        self,
        action: str,
        rng: np.random.Generator,
        duration: float | None = None,
        target_heading: float | None = None,
    ) -> None:
        self.prev = (self.action, self.style, self.freq)
        self.action = action
        self.style = sample_style(action, rng, self.shape)
        spec = ACTIONS[action]
        self.freq = rng.uniform(*spec.freq)
        self.seg_left = duration if duration is not None else rng.uniform(*spec.duration)
        self.seg_t = 0.0
        self.turn_speed = rng.choice([-1.0, 1.0]) * rng.uniform(1.2, 2.4) if action == "turn" else 0.0
        if target_heading is not None:
            self.target_heading = target_heading

    def step(self, dt: float, t: float, rng: np.random.Generator, z_range: tuple[float, float]) -> None:
        """Advance time: behaviour switches, phase, heading (rate-limited) and position."""
        self.age += dt
        self.seg_t += dt
        self.seg_left -= dt
        if self.seg_left <= 0:
            table = NEXT_ACTION[self.action]
            names = list(table)
            w = np.array([table[n] for n in names])
            nxt = str(rng.choice(names, p=w / w.sum()))
            th = None
            if ACTIONS[nxt].moves and rng.random() < 0.5:
                th = self.target_heading + rng.normal(0, 0.6)
            elif not ACTIONS[nxt].moves and rng.random() < 0.5:
                th = -math.pi / 2 + rng.normal(0, 0.8)  # stop and look roughly at the camera
            self.start(nxt, rng, target_heading=th)
        self.phase += 2 * math.pi * self.freq * dt
        spec = ACTIONS[self.action]
        if self.action == "turn":
            self.heading += self.turn_speed * dt
            self.target_heading = self.heading
        else:
            # stay inside the depth band: mirror the heading's depth component near its edges
            fz = math.sin(self.target_heading)
            if (self.z < z_range[0] + 0.5 and fz < 0) or (self.z > z_range[1] - 0.5 and fz > 0):
                self.target_heading = math.atan2(-fz, math.cos(self.target_heading))
            d = _wrap(self.target_heading - self.heading)
            rate = max(spec.turn_rate, 0.6)
            self.heading += max(-rate * dt, min(rate * dt, d))
        v = self.speed()
        self.x += v * math.cos(self.heading) * dt
        self.z += v * math.sin(self.heading) * dt
        self.z = min(max(self.z, z_range[0]), z_range[1])


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3 - 2 * x)
