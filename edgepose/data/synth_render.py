"""Drawing for the synthetic benchmark: camera, clothed figures and occluders (backgrounds and
capture effects live in ``synth_backgrounds`` and ``synth_effects``).

Everything is drawn twice in painter's order (far to near): colour into the RGB frame and a part
id into a uint16 *id map*. The id map is what makes the labels honest: a joint is visible exactly
when the pixel under it belongs to its own limb, occluded when another person or an occluder
covers it, self-occluded when its own torso or other limb does.

Id map codes: 0 background, 1..31 occluders, 32*(slot+1) + part for the person drawn in
``slot`` (``PART_IDS`` names the parts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .synth_body import P, Pose3D

SHIFT = 4  # fixed-point bits for sub-pixel polygon drawing
_ONE = 1 << SHIFT

PART_IDS = {
    "shirt": 0,
    "pants": 1,
    "neck": 2,
    "head": 3,
    "left_upper_arm": 4,
    "left_forearm": 5,
    "left_hand": 6,
    "right_upper_arm": 7,
    "right_forearm": 8,
    "right_hand": 9,
    "left_thigh": 10,
    "left_shin": 11,
    "left_foot": 12,
    "right_thigh": 13,
    "right_shin": 14,
    "right_foot": 15,
    "hair": 16,
    "skirt": 17,
}
OCCLUDER_IDS = range(1, 32)


def _bits(*names: str) -> int:
    return sum(1 << PART_IDS[n] for n in names)


# Which of the person's own parts may lie on top of a joint for it to count as visible.
JOINT_PARTS = {
    "nose": _bits("head"),
    "left_eye": _bits("head"),
    "right_eye": _bits("head"),
    "left_ear": _bits("head"),
    "right_ear": _bits("head"),
    "head_top": _bits("head", "hair"),
    "head_bottom": _bits("neck", "head", "hair"),
    **{f"{s}_shoulder": _bits("shirt", f"{s}_upper_arm", "hair") for s in ("left", "right")},
    **{f"{s}_elbow": _bits(f"{s}_upper_arm", f"{s}_forearm") for s in ("left", "right")},
    **{f"{s}_wrist": _bits(f"{s}_forearm", f"{s}_hand") for s in ("left", "right")},
    **{f"{s}_hip": _bits("shirt", "pants", "skirt", f"{s}_thigh") for s in ("left", "right")},
    **{f"{s}_knee": _bits(f"{s}_thigh", f"{s}_shin", "skirt") for s in ("left", "right")},
    **{f"{s}_ankle": _bits(f"{s}_shin", f"{s}_foot") for s in ("left", "right")},
}
# A joint on the far side of the torso is hidden by it even though the torso is "its" part.
TORSO_BITS = _bits("shirt", "pants", "skirt")
# Face joints are on the head sphere: visible when their surface normal faces the camera enough.
FACE_MIN_DOT = {"nose": -0.05, "left_eye": 0.1, "right_eye": 0.1, "left_ear": -0.35, "right_ear": -0.35}


# ---------------------------------------------------------------------------------------------
# camera


@dataclass
class Camera:
    """A level pinhole camera in *stage* pixels plus this frame's 2D view (pan, zoom, roll, shake).

    A pan is modelled as a shift of the view over a wide stage, which is what a small camera
    rotation looks like; depth effects (sizes, occlusion order) come from the pinhole."""

    f: float
    cx: float
    horizon: float
    height: float
    view: np.ndarray  # 2x3: stage -> image
    zoom: float

    def to_stage(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        z = np.maximum(pts[..., 2], 0.3)
        u = self.cx + self.f * pts[..., 0] / z
        v = self.horizon + self.f * (self.height - pts[..., 1]) / z
        return np.stack([u, v], -1), self.f / z

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """World (N, 3) -> image (N, 2) and pixels per metre at each point."""
        st, ppm = self.to_stage(pts)
        return st @ self.view[:, :2].T + self.view[:, 2], ppm * self.zoom

    @property
    def position(self) -> np.ndarray:
        return np.array([0.0, self.height, 0.0])


def view_matrix(zoom: float, roll: float, centre, size_wh) -> np.ndarray:
    c, s = math.cos(roll), math.sin(roll)
    lin = zoom * np.array([[c, -s], [s, c]])
    t = np.array([size_wh[0] / 2.0, size_wh[1] / 2.0]) - lin @ np.asarray(centre, dtype=np.float64)
    return np.hstack([lin, t[:, None]])


# ---------------------------------------------------------------------------------------------
# colours and textures

SKIN = np.array(
    [
        (255, 224, 196),
        (241, 194, 160),
        (224, 172, 130),
        (198, 134, 96),
        (161, 102, 70),
        (120, 78, 52),
        (88, 58, 40),
    ],
    dtype=np.float64,
)
HAIR = np.array(
    [
        (20, 16, 14),
        (45, 30, 20),
        (90, 60, 35),
        (150, 110, 60),
        (200, 170, 110),
        (130, 45, 25),
        (150, 150, 150),
        (225, 225, 220),
    ],
    dtype=np.float64,
)
HAIR_P = np.array([4, 4, 3, 2, 1.2, 0.6, 0.8, 0.4])
TILE = 64  # texture tile size (pixels); stripe periods divide it so tiles wrap seamlessly
TILE_PER_M = TILE / 0.4


def random_colour(rng: np.random.Generator, sat=(0.0, 1.0), val=(0.15, 1.0)) -> np.ndarray:
    h, s, v = rng.uniform(0, 1), rng.uniform(*sat), rng.uniform(*val)
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def _grid():
    y, x = np.mgrid[0:TILE, 0:TILE].astype(np.float32)
    return x, y


def _two(rng):
    a = random_colour(rng)
    b = (
        random_colour(rng)
        if rng.random() < 0.6
        else np.clip(a * rng.uniform(0.3, 0.6) + rng.uniform(0, 90), 0, 255)
    )
    return a, b


def _tex_solid(rng, base):
    return np.broadcast_to(base, (TILE, TILE, 3)).copy()


def _tex_stripes(rng, base, axis=None):
    x, y = _grid()
    period = rng.choice([8, 16, 32])
    duty = rng.uniform(0.3, 0.7)
    coord = {"h": y, "v": x, "d": (x + y)}[axis or rng.choice(["h", "h", "v", "d"])]
    m = ((coord % period) / period) < duty
    other = random_colour(rng)
    return np.where(m[..., None], base, other)


def _tex_checks(rng, base):
    x, y = _grid()
    period = rng.choice([16, 32])
    m = ((x // (period / 2) + y // (period / 2)) % 2) == 0
    return np.where(m[..., None], base, random_colour(rng))


def _tex_plaid(rng, base):
    x, y = _grid()
    other = random_colour(rng)
    p = rng.choice([16, 32])
    a = ((x % p) < p * 0.35).astype(np.float32) * 0.5 + ((y % p) < p * 0.35).astype(np.float32) * 0.5
    return base * (1 - a[..., None]) + other * a[..., None]


def _periodic_noise(rng, n_waves=7, max_k=6):
    x, y = _grid()
    acc = np.zeros((TILE, TILE), np.float32)
    for _ in range(n_waves):
        kx, ky = rng.integers(-max_k, max_k + 1, size=2)
        acc += np.cos(2 * np.pi * (kx * x + ky * y) / TILE + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    return acc / max(np.abs(acc).max(), 1e-6)


def _tex_noise(rng, base):
    n = _periodic_noise(rng)
    return np.clip(base * (1 + 0.35 * n[..., None]), 0, 255)


def _tex_camo(rng, base):
    n = _periodic_noise(rng, 9, 4)
    c2, c3 = random_colour(rng, val=(0.2, 0.7)), random_colour(rng, val=(0.2, 0.7))
    out = np.where((n > 0.2)[..., None], c2, base)
    return np.where((n < -0.35)[..., None], c3, out)


def _tex_dots(rng, base):
    x, y = _grid()
    p = rng.choice([8, 16])
    d = np.hypot((x % p) - p / 2, (y % p) - p / 2)
    return np.where((d < p * rng.uniform(0.18, 0.35))[..., None], random_colour(rng), base)


def _tex_twotone(rng, base):
    _, y = _grid()
    return np.where((y < TILE / 2)[..., None], base, random_colour(rng))


TEXTURES = {  # name: (maker, weight)
    "solid": (_tex_solid, 3.0),
    "stripes": (_tex_stripes, 2.5),
    "checks": (_tex_checks, 0.8),
    "plaid": (_tex_plaid, 0.8),
    "noise": (_tex_noise, 1.0),
    "camo": (_tex_camo, 0.4),
    "dots": (_tex_dots, 0.6),
    "twotone": (_tex_twotone, 0.6),
}


@dataclass
class Appearance:
    skin: np.ndarray
    hair: np.ndarray
    hair_style: str  # short | long | bald
    shirt: np.ndarray
    shirt_tile: np.ndarray  # (TILE, TILE, 3) float32
    texture: str
    sleeves: str  # long | short | none
    lower: str  # pants | shorts | skirt
    pants: np.ndarray
    shoes: np.ndarray
    front_mark: str  # none | seam | logo
    mark_colour: np.ndarray
    outline: float  # outline darkness


def sample_appearance(rng: np.random.Generator) -> Appearance:
    skin = SKIN[rng.integers(len(SKIN))] * rng.uniform(0.92, 1.06) + rng.normal(0, 5, 3)
    hair = HAIR[rng.choice(len(HAIR), p=HAIR_P / HAIR_P.sum())] * rng.uniform(0.85, 1.15)
    shirt = random_colour(rng)
    names = list(TEXTURES)
    w = np.array([TEXTURES[n][1] for n in names])
    tex = str(rng.choice(names, p=w / w.sum()))
    tile = TEXTURES[tex][0](rng, shirt).astype(np.float32)
    lower = str(rng.choice(["pants", "pants", "pants", "shorts", "skirt"]))
    pants = (
        random_colour(rng, sat=(0.0, 0.7), val=(0.1, 0.8))
        if rng.random() < 0.6
        else np.array([40, 60, 110]) * rng.uniform(0.6, 1.4)
    )  # denim
    return Appearance(
        skin=np.clip(skin, 0, 255),
        hair=np.clip(hair, 0, 255),
        hair_style=str(rng.choice(["short", "short", "long", "bald"], p=[0.45, 0.2, 0.28, 0.07])),
        shirt=shirt,
        shirt_tile=tile,
        texture=tex,
        sleeves=str(rng.choice(["long", "short", "none"], p=[0.45, 0.4, 0.15])),
        lower=lower,
        pants=np.clip(pants, 0, 255),
        shoes=random_colour(rng, val=(0.05, 0.95), sat=(0.0, 0.6)),
        front_mark=str(rng.choice(["none", "seam", "logo"], p=[0.3, 0.35, 0.35])),
        mark_colour=random_colour(rng),
        outline=rng.uniform(0.45, 0.75),
    )


# ---------------------------------------------------------------------------------------------
# primitives

_T = np.linspace(-np.pi / 2, np.pi / 2, 7)
_CAP = np.stack([np.cos(_T), np.sin(_T)], 1)


def capsules(p0: np.ndarray, p1: np.ndarray, r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """(N, 14, 2) polygons of N tapered capsules (two half discs joined by straight sides)."""
    d = p1 - p0
    n = np.hypot(d[:, 0], d[:, 1])[:, None]
    d = np.where(n > 1e-6, d / np.maximum(n, 1e-6), np.array([1.0, 0.0]))
    nrm = np.stack([-d[:, 1], d[:, 0]], 1)
    cap = _CAP[None, :, 0:1] * d[:, None, :] + _CAP[None, :, 1:2] * nrm[:, None, :]
    end1 = p1[:, None] + np.asarray(r1, np.float64)[:, None, None] * cap
    end0 = p0[:, None] - np.asarray(r0, np.float64)[:, None, None] * cap
    return np.concatenate([end1, end0], 1)


def capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """Polygon of one tapered capsule."""
    return capsules(np.asarray(p0, np.float64)[None], np.asarray(p1, np.float64)[None], [r0], [r1])[0]


def _shade(c, s: float) -> tuple:
    return (min(c[0] * s, 255.0), min(c[1] * s, 255.0), min(c[2] * s, 255.0))


def _fx(pts: np.ndarray) -> np.ndarray:
    return np.round(pts * _ONE).astype(np.int32)


def _col(c) -> tuple:
    return (float(c[0]), float(c[1]), float(c[2]))


class Canvas:
    """The frame being drawn, its id map and a running bbox of what each figure covered."""

    def __init__(self, image: np.ndarray, detail: bool = True):
        self.image = image
        self.ids = np.zeros(image.shape[:2], np.uint16)
        self.h, self.w = image.shape[:2]
        self.detail = detail
        self.box = [np.inf, np.inf, -np.inf, -np.inf]

    def reset_box(self) -> None:
        self.box = [np.inf, np.inf, -np.inf, -np.inf]

    def grow_box(self, x0: float, y0: float, x1: float, y1: float) -> None:
        b = self.box
        b[0], b[1], b[2], b[3] = min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)

    def _grow(self, pts: np.ndarray) -> None:
        lo, hi = pts.min(0), pts.max(0)
        self.grow_box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))

    def poly(
        self,
        pts: np.ndarray | None,
        colour,
        pid: int,
        outline: float | None = None,
        grow: bool = True,
        q: np.ndarray | None = None,
    ) -> None:
        """Fill a polygon (float points, or ``q`` already in fixed point) in colour and id."""
        q = _fx(pts) if q is None else q
        colour = _col(colour)
        cv2.fillPoly(self.image, [q], colour, cv2.LINE_AA, SHIFT)
        cv2.fillPoly(self.ids, [q], int(pid), cv2.LINE_8, SHIFT)
        if outline is not None and self.detail:
            cv2.polylines(self.image, [q], True, _shade(colour, outline), 1, cv2.LINE_AA, SHIFT)
        if grow and pts is not None:
            self._grow(pts)

    def circle(self, c: np.ndarray, r: float, colour, pid: int | None, grow: bool = True) -> None:
        cc = (int(round(c[0] * _ONE)), int(round(c[1] * _ONE)))
        rr = max(int(round(r * _ONE)), 1)
        cv2.circle(self.image, cc, rr, _col(colour), -1, cv2.LINE_AA, SHIFT)
        if pid is not None:
            cv2.circle(self.ids, cc, rr, int(pid), -1, cv2.LINE_8, SHIFT)
        if grow:
            self._grow(np.array([[c[0] - r, c[1] - r], [c[0] + r, c[1] + r]]))

    def ellipse(self, c, axes, angle_deg, colour, pid: int | None) -> None:
        cc = (int(round(c[0] * _ONE)), int(round(c[1] * _ONE)))
        ax = (max(int(round(axes[0] * _ONE)), 1), max(int(round(axes[1] * _ONE)), 1))
        cv2.ellipse(self.image, cc, ax, angle_deg, 0, 360, _col(colour), -1, cv2.LINE_AA, SHIFT)
        if pid is not None:
            cv2.ellipse(self.ids, cc, ax, angle_deg, 0, 360, int(pid), -1, cv2.LINE_8, SHIFT)

    def textured_poly(
        self,
        pts: np.ndarray,
        tile: np.ndarray,
        inv_map: np.ndarray,
        shade: float,
        pid: int,
        outline_colour=None,
    ) -> None:
        """Fill a polygon with a texture tile mapped by ``inv_map`` (image pixel -> tile pixel)."""
        q = _fx(pts)
        cv2.fillPoly(self.ids, [q], int(pid), cv2.LINE_8, SHIFT)
        self._grow(pts)
        x0 = max(int(math.floor(pts[:, 0].min())) - 1, 0)
        y0 = max(int(math.floor(pts[:, 1].min())) - 1, 0)
        x1 = min(int(math.ceil(pts[:, 0].max())) + 2, self.w)
        y1 = min(int(math.ceil(pts[:, 1].max())) + 2, self.h)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [q - np.array([x0 * _ONE, y0 * _ONE], np.int32)], 255, cv2.LINE_AA, SHIFT)
        m = inv_map.copy()
        m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # ROI pixel -> image pixel -> tile
        tex = cv2.warpAffine(
            tile,
            m,
            (x1 - x0, y1 - y0),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_WRAP,
        )
        roi = self.image[y0:y1, x0:x1]
        a = mask.astype(np.float32)[..., None] * (1.0 / 255.0)
        roi[:] = (roi * (1.0 - a) + np.clip(tex * shade, 0, 255) * a).astype(np.uint8)
        if outline_colour is not None and self.detail:
            cv2.polylines(self.image, [q], True, _col(outline_colour), 1, cv2.LINE_AA, SHIFT)


# ---------------------------------------------------------------------------------------------
# figures


@dataclass
class Figure2D:
    """One person projected for this frame."""

    pts: np.ndarray  # (len(POINTS), 2) image pixels
    ppm: np.ndarray  # pixels per metre at each point
    z: np.ndarray  # depth of each point
    shirt: np.ndarray  # outline polygon
    pants: np.ndarray
    shirt_front: np.ndarray  # (n, 2) the torso's front centre line
    torso_facing: float  # torso forward . direction to camera
    head_facing: float
    head_fwd2: np.ndarray  # image vector of the head's forward axis (length head radius)
    head_up2: np.ndarray
    face_dot: dict  # face joint -> surface normal . direction to camera
    far_side: dict  # "left"/"right" -> True if that side of the torso faces away
    chest: tuple  # (centre 2D, spine unit 2D, perpendicular 2D, ppm) for texture mapping
    pelvis_z: float
    height_px: float


def _outline(centres2, ext_pts2, spine_n) -> np.ndarray:
    """Left and right edges through cross-section ellipses whose projected half-axes are given."""
    c = centres2
    pl = ext_pts2[0] - c
    pf = ext_pts2[1] - c
    e = np.sqrt((pl @ spine_n) ** 2 + (pf @ spine_n) ** 2)[:, None]
    return np.concatenate([c + e * spine_n, (c - e * spine_n)[::-1]])


def project_figure(pose: Pose3D, shape, cam: Camera) -> Figure2D:
    n_pts = len(pose.points)
    ns, npn = len(pose.shirt_centres), len(pose.pants_centres)
    sh_a = shape.shirt[:, 1:2]
    sh_b = shape.shirt[:, 2:3]
    pa_a = shape.pants[:, 1:2]
    pa_b = shape.pants[:, 2:3]
    world = np.concatenate(
        [
            pose.points,
            pose.shirt_centres,
            pose.shirt_centres + sh_a * pose.shirt_axes[:, 0],
            pose.shirt_centres + sh_b * pose.shirt_axes[:, 1],
            pose.pants_centres,
            pose.pants_centres + pa_a * pose.pants_axes[:, 0],
            pose.pants_centres + pa_b * pose.pants_axes[:, 1],
            pose.points[P["head_center"]] + shape.head_r * pose.head_axes[[2, 1]],
        ]
    )
    uv, ppm = cam.project(world)
    pts, o = uv[:n_pts], n_pts
    sc, sl, sf = uv[o : o + ns], uv[o + ns : o + 2 * ns], uv[o + 2 * ns : o + 3 * ns]
    o += 3 * ns
    pc, pl, pf = uv[o : o + npn], uv[o + npn : o + 2 * npn], uv[o + 2 * npn : o + 3 * npn]
    o += 3 * npn
    hf, hu = uv[o], uv[o + 1]
    spine = sc[-1] - pc[0]
    spine = spine / (np.linalg.norm(spine) + 1e-9)
    perp = np.array([-spine[1], spine[0]])
    shirt = _outline(sc, (sl, sf), perp)
    pants = _outline(pc, (pl, pf), perp)

    cam_pos = cam.position
    hc = pose.points[P["head_center"]]
    to_cam_h = _unit(cam_pos - hc)
    face_dot = {}
    for name in FACE_MIN_DOT:
        p = pose.points[P[name]]
        face_dot[name] = float(_unit(p - hc) @ _unit(cam_pos - p))
    to_cam_t = _unit(cam_pos - pose.shirt_centres[2])
    lat = pose.shirt_axes[3, 0]  # shoulder-level lateral axis (person's left)
    side = float(lat @ to_cam_t)
    far = {"left": side < -0.45, "right": side > 0.45}
    facing = float(pose.torso_forward @ to_cam_t)
    front = sc + (sf - sc) * 1.0  # front centre of each shirt section
    c2 = pts[P["head_center"]]
    return Figure2D(
        pts=pts,
        ppm=ppm[:n_pts],
        z=world[:n_pts, 2],
        shirt=shirt,
        pants=pants,
        shirt_front=front,
        torso_facing=facing,
        head_facing=float(pose.head_axes[2] @ to_cam_h),
        head_fwd2=hf - c2,
        head_up2=hu - c2,
        face_dot=face_dot,
        far_side=far,
        chest=(sc[2], -spine, perp, float(ppm[n_pts + 2])),
        pelvis_z=float(pose.points[P["pelvis"], 2]),
        height_px=float(shape.height * ppm[P["pelvis"]]),
    )


def _unit(v):
    return v / (np.linalg.norm(v) + 1e-12)


LIMBS = (  # part, from point, to point, radius key, material
    ("left_upper_arm", "left_shoulder", "left_elbow", "upper_arm", "sleeve"),
    ("left_forearm", "left_elbow", "left_wrist", "forearm", "forearm"),
    ("left_hand", "left_wrist", "left_hand", "hand", "skin"),
    ("right_upper_arm", "right_shoulder", "right_elbow", "upper_arm", "sleeve"),
    ("right_forearm", "right_elbow", "right_wrist", "forearm", "forearm"),
    ("right_hand", "right_wrist", "right_hand", "hand", "skin"),
    ("left_thigh", "left_hip", "left_knee", "thigh", "thigh"),
    ("left_shin", "left_knee", "left_ankle", "shin", "shin"),
    ("left_foot", "left_heel", "left_toe", "foot", "shoes"),
    ("right_thigh", "right_hip", "right_knee", "thigh", "thigh"),
    ("right_shin", "right_knee", "right_ankle", "shin", "shin"),
    ("right_foot", "right_heel", "right_toe", "foot", "shoes"),
    ("neck", "neck_base", "head_bottom", "neck", "skin"),
)
_LIMB_IDX = [(name, P[a], P[b], rk, mat) for name, a, b, rk, mat in LIMBS]


_LIMB_A = np.array([e[1] for e in _LIMB_IDX])
_LIMB_B = np.array([e[2] for e in _LIMB_IDX])
_LIMB_PID = [PART_IDS[e[0]] for e in _LIMB_IDX]


def _limb_radii(shape) -> tuple[np.ndarray, np.ndarray]:
    r0, r1 = [], []
    for _, _, _, rk, _ in _LIMB_IDX:
        r = shape.radii[rk]
        a, b = (
            r
            if isinstance(r, tuple)
            else ((0.8 * r, r) if rk == "hand" else (r, 0.8 * r) if rk == "foot" else (r, r))
        )
        r0.append(a)
        r1.append(b)
    return np.array(r0), np.array(r1)


def _materials(app: Appearance) -> dict:
    t = {k: tuple(float(x) for x in getattr(app, k)) for k in ("skin", "shoes", "shirt", "pants")}
    return {
        "skin": t["skin"],
        "shoes": t["shoes"],
        "sleeve": t["shirt"] if app.sleeves != "none" else t["skin"],
        "forearm": t["shirt"] if app.sleeves == "long" else t["skin"],
        "thigh": t["pants"] if app.lower != "skirt" else t["skin"],
        "shin": t["pants"] if app.lower == "pants" else t["skin"],
        "pants": t["pants"],
    }


def draw_figure(
    cv: Canvas, fig: Figure2D, shape, app: Appearance, slot: int, light: float, heading: float
) -> None:
    """Draw one person (limbs, torso, head) far-to-near into the canvas."""
    base = 32 * (slot + 1)
    mats = _materials(app)
    pts, z, ppm = fig.pts, fig.z, fig.ppm
    z_ref = fig.pelvis_z
    outline = app.outline if fig.height_px > 60 else None
    r0, r1 = _limb_radii(shape)
    polys = capsules(pts[_LIMB_A], pts[_LIMB_B], r0 * ppm[_LIMB_A], r1 * ppm[_LIMB_B])
    fixed = np.round(polys * _ONE).astype(np.int32)
    lo, hi = polys.min((0, 1)), polys.max((0, 1))
    cv.grow_box(float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
    depth = ((z[_LIMB_A] + z[_LIMB_B]) * 0.5).tolist()
    items = [(depth[i], 1, "limb", i) for i in range(len(_LIMB_IDX))]  # (depth, order, kind, payload)
    chest_z = float(z[P["left_shoulder"]] + z[P["right_shoulder"]] + z[P["left_hip"]] + z[P["right_hip"]]) / 4
    items.append((chest_z + 0.015, 0, "pants", None))
    items.append((chest_z, 0, "shirt", None))
    if app.lower == "skirt":
        items.append((chest_z - 0.02 - 0.5 * abs(z[P["left_knee"]] - z[P["right_knee"]]), 2, "skirt", None))
    hz = z[P["head_center"]]
    items.append((hz - 0.05, 3, "head", None))
    if app.hair_style == "long":
        items.append((hz + 0.12 * fig.head_facing + 0.005, 0, "long_hair", None))
    items.sort(key=lambda it: (-it[0], it[1]))

    for depth, _, kind, payload in items:
        shade = light * min(max(1.0 - 1.4 * (depth - z_ref), 0.62), 1.12)
        if kind == "limb":
            cv.poly(
                None,
                _shade(mats[_LIMB_IDX[payload][4]], shade),
                base + _LIMB_PID[payload],
                outline,
                q=fixed[payload],
            )
        elif kind == "pants":
            cv.poly(fig.pants, _shade(mats["pants"], shade), base + PART_IDS["pants"], outline)
        elif kind == "shirt":
            _draw_shirt(cv, fig, app, base, shade, heading)
        elif kind == "skirt":
            _draw_skirt(cv, fig, app, shape, base, shade)
        elif kind == "head":
            _draw_head(cv, fig, shape, app, base, light)
        elif kind == "long_hair":
            c = pts[P["head_center"]]
            r = shape.head_r * ppm[P["head_center"]]
            back = c - 0.35 * fig.head_fwd2
            down = pts[P["neck_base"]] - c
            tip = back + down * 1.25
            cv.poly(
                capsule(back, tip, 0.98 * r, 0.8 * r),
                _shade(app.hair, light * 0.9),
                base + PART_IDS["hair"],
                None,
            )


def _draw_shirt(cv: Canvas, fig: Figure2D, app: Appearance, base: int, shade: float, heading: float) -> None:
    centre, spine_up, perp, ppm = fig.chest
    k = TILE_PER_M / max(ppm, 1e-3)
    down = -spine_up
    # image pixel -> tile pixel; the texture slides sideways as the torso turns
    lin = k * np.stack([perp, down])
    off = np.array([TILE * 0.5 + heading * TILE / math.pi, TILE * 0.5])
    inv = np.hstack([lin, (off - lin @ centre)[:, None]])
    oc = app.shirt * shade * app.outline if fig.height_px > 60 else None
    if app.texture == "solid":
        cv.poly(
            fig.shirt,
            _shade(app.shirt, shade),
            base + PART_IDS["shirt"],
            app.outline if oc is not None else None,
        )
    else:
        cv.textured_poly(fig.shirt, app.shirt_tile, inv, shade, base + PART_IDS["shirt"], oc)
    if fig.torso_facing > 0.25 and fig.height_px > 40:
        f = fig.shirt_front
        if app.front_mark == "seam":
            w = max(1, int(round(fig.height_px / 120)))
            cv2.polylines(
                cv.image, [_fx(f[:-1])], False, _col(app.mark_colour * shade), w, cv2.LINE_AA, SHIFT
            )
        elif app.front_mark == "logo":
            c = 0.5 * (f[2] + f[3])
            r = 0.045 * fig.height_px
            cv.circle(c, r, app.mark_colour * shade, None, grow=False)
        # neckline: skin triangle at the collar
        tri = np.array(
            [
                f[-1] + perp * 0.03 * fig.height_px,
                f[-1] - perp * 0.03 * fig.height_px,
                f[-1] + (f[-2] - f[-1]) * 0.45,
            ]
        )
        cv.poly(tri, _shade(app.skin, shade), base + PART_IDS["shirt"], None, grow=False)


def _draw_skirt(cv: Canvas, fig: Figure2D, app: Appearance, shape, base: int, shade: float) -> None:
    pts = fig.pts
    top_l, top_r = fig.pants[1], fig.pants[-2]
    kl, kr = pts[P["left_knee"]], pts[P["right_knee"]]
    hl, hr = pts[P["left_hip"]], pts[P["right_hip"]]
    bl = hl + 0.85 * (kl - hl)
    br = hr + 0.85 * (kr - hr)
    bm = 0.5 * (bl + br)
    d = _unit(top_l - top_r)
    flare = shape.radii["thigh"][0] * 1.6 * fig.ppm[P["left_knee"]]
    span = max(abs(float((bl - br) @ d)) / 2 + flare, 0.55 * float(np.linalg.norm(top_l - top_r)))
    poly = np.array([top_l, top_r, bm - d * span, bm + d * span])
    cv.poly(
        poly, _shade(app.pants, shade), base + PART_IDS["skirt"], app.outline if fig.height_px > 60 else None
    )


def _draw_head(cv: Canvas, fig: Figure2D, shape, app: Appearance, base: int, light: float) -> None:
    pts = fig.pts
    hc = P["head_center"]
    c = pts[hc]
    r = shape.head_r * fig.ppm[hc]
    pid = base + PART_IDS["head"]
    skin = _shade(app.skin, light)
    hair = _shade(app.hair, light)
    up = fig.head_up2 / (np.linalg.norm(fig.head_up2) + 1e-9)
    fwd = fig.head_fwd2
    tilt = math.degrees(math.atan2(up[0], -up[1]))
    cv.circle(c, r, skin, pid)
    if app.hair_style != "bald":
        if fig.head_facing < -0.3:
            cv.circle(c + up * 0.04 * r, 1.04 * r, hair, pid)
        else:
            cv.circle(c + up * 0.16 * r - 0.3 * fwd, 1.02 * r, hair, pid)
    if fig.head_facing > -0.3 and app.hair_style != "bald":
        cv.ellipse(c + 0.3 * fwd - up * 0.16 * r, (0.7 * r, 0.76 * r), tilt, skin, pid)
    for ear in ("left_ear", "right_ear"):
        if fig.face_dot[ear] > FACE_MIN_DOT[ear]:
            cv.circle(pts[P[ear]], 0.26 * r, _shade(skin, 0.9), pid, grow=False)
    if r < 2.5:
        return
    dark = (25.0, 20.0, 20.0)
    for eye in ("left_eye", "right_eye"):
        if fig.face_dot[eye] > FACE_MIN_DOT[eye]:
            cv.circle(pts[P[eye]], max(0.11 * r, 0.6), dark, pid, grow=False)
    if fig.face_dot["nose"] > FACE_MIN_DOT["nose"]:
        cv.circle(pts[P["nose"]], 0.17 * r, _shade(skin, 0.85), pid, grow=False)
    if fig.head_facing > 0.35 and r > 5:
        m = pts[P["nose"]] + (pts[P["nose"]] - c) * 0.05 - up * 0.38 * r
        cv.ellipse(m, (0.22 * r, 0.07 * r), tilt, (150.0, 60.0, 60.0), None)


# ---------------------------------------------------------------------------------------------
# occluders


@dataclass
class Occluder:
    """A rigid prop standing on the ground (or a car driving along X)."""

    kind: str
    x: float
    z: float
    size: tuple  # (width, height, depth) metres
    colour: np.ndarray
    colour2: np.ndarray
    vx: float = 0.0  # m/s (cars)
    seed: int = 0

    def position(self, t: float) -> float:
        return self.x + self.vx * t

    def draw(self, cv: Canvas, cam: Camera, oid: int, t: float, light: float) -> None:
        OCCLUDER_DRAW[self.kind](self, cv, cam, oid, self.position(t), light)

    def extent_x(self, t: float) -> tuple[float, float]:
        x = self.position(t)
        return x - self.size[0] / 2, x + self.size[0] / 2


def _rect_world(x0, x1, y0, y1, z) -> np.ndarray:
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], np.float64)


def _draw_pole(o: Occluder, cv: Canvas, cam: Camera, oid: int, x: float, light: float) -> None:
    w, h, _ = o.size
    q, _ = cam.project(_rect_world(x - w / 2, x + w / 2, 0.0, h, o.z))
    cv.poly(q, _shade(o.colour, light), oid, None, grow=False)
    hl, _ = cam.project(_rect_world(x - w / 6, x + w / 20, 0.0, h, o.z))
    cv.poly(hl, _shade(o.colour, light * 1.3), oid, None, grow=False)
    if o.seed % 3 == 0:  # a sign board on the pole
        b, _ = cam.project(_rect_world(x - 0.35, x + 0.35, 1.7, 2.3, o.z - 0.02))
        cv.poly(b, _shade(o.colour2, light), oid, 0.5, grow=False)


def _draw_box(o: Occluder, cv: Canvas, cam: Camera, oid: int, x: float, light: float) -> None:
    w, h, d = o.size
    z0 = o.z - d / 2
    top = np.array([[x - w / 2, h, z0], [x + w / 2, h, z0], [x + w / 2, h, z0 + d], [x - w / 2, h, z0 + d]])
    tq, _ = cam.project(top)
    cv.poly(tq, _shade(o.colour, light * 1.2), oid, None, grow=False)
    q, _ = cam.project(_rect_world(x - w / 2, x + w / 2, 0.0, h, z0))
    cv.poly(q, _shade(o.colour, light), oid, 0.55, grow=False)
    band, _ = cam.project(_rect_world(x - w / 2, x + w / 2, h * 0.55, h * 0.7, z0 - 0.01))
    cv.poly(band, _shade(o.colour2, light), oid, None, grow=False)


def _draw_bush(o: Occluder, cv: Canvas, cam: Camera, oid: int, x: float, light: float) -> None:
    w, h, _ = o.size
    rng = np.random.default_rng(o.seed)
    n = 7
    cx = x + rng.uniform(-0.5, 0.5, n) * w * 0.7
    cy = rng.uniform(0.35, 0.7, n) * h
    rr = rng.uniform(0.25, 0.4, n) * min(w, h * 1.5)
    c, ppm = cam.project(np.stack([cx, cy, np.full(n, o.z)], 1))
    for i in range(n):
        col = o.colour * (0.8 + 0.4 * (i % 3) / 2) * light
        cv.circle(c[i], rr[i] * ppm[i], np.clip(col, 0, 255), oid, grow=False)


def _draw_car(o: Occluder, cv: Canvas, cam: Camera, oid: int, x: float, light: float) -> None:
    length, h, _ = o.size
    s = 1.0 if o.vx >= 0 else -1.0
    x0, x1 = x - length / 2, x + length / 2
    body = np.array([[x0, 0.3], [x1, 0.3], [x1, 0.78], [x1 - 0.15, 0.95], [x0 + 0.1, 0.95], [x0, 0.8]])
    cab_lo, cab_hi = (0.18, 0.7) if s > 0 else (0.3, 0.82)
    cab = np.array(
        [
            [x0 + cab_lo * length, 0.95],
            [x0 + cab_hi * length, 0.95],
            [x0 + (cab_hi - 0.12) * length, h],
            [x0 + (cab_lo + 0.1) * length, h],
        ]
    )
    zc = np.full((len(body), 1), o.z)
    q, _ = cam.project(np.hstack([body[:, :1], body[:, 1:], zc]))
    cv.poly(q, _shade(o.colour, light), oid, 0.5, grow=False)
    q, _ = cam.project(np.hstack([cab[:, :1], cab[:, 1:], zc[:4]]))
    cv.poly(q, _shade(o.colour, light * 0.95), oid, 0.5, grow=False)
    glass = cab.copy()
    glass[:, 0] = glass[:, 0] * 0.92 + glass[:, 0].mean() * 0.08
    glass[:2, 1] += 0.05
    glass[2:, 1] -= 0.05
    q, _ = cam.project(np.hstack([glass[:, :1], glass[:, 1:], zc[:4] - 0.01]))
    cv.poly(q, np.clip(np.array([60.0, 75.0, 95.0]) * light, 0, 255), oid, None, grow=False)
    for wx in (x0 + 0.2 * length, x0 + 0.8 * length):
        c, ppm = cam.project(np.array([[wx, 0.32, o.z - 0.02]]))
        cv.circle(c[0], 0.33 * ppm[0], (25.0, 25.0, 25.0), oid, grow=False)
        cv.circle(
            c[0], 0.16 * ppm[0], np.clip(np.array([150.0, 150.0, 150.0]) * light, 0, 255), oid, grow=False
        )


def _draw_sign(o: Occluder, cv: Canvas, cam: Camera, oid: int, x: float, light: float) -> None:
    w, h, _ = o.size
    post, _ = cam.project(_rect_world(x - 0.04, x + 0.04, 0.0, h, o.z + 0.01))
    cv.poly(post, np.clip(np.array([90.0, 90.0, 95.0]) * light, 0, 255), oid, None, grow=False)
    board, _ = cam.project(_rect_world(x - w / 2, x + w / 2, h - 0.9, h, o.z))
    cv.poly(board, _shade(o.colour, light), oid, 0.5, grow=False)
    for k in range(3):
        y = h - 0.2 - 0.22 * k
        line, _ = cam.project(_rect_world(x - w * 0.35, x + w * (0.35 - 0.1 * k), y - 0.05, y, o.z - 0.01))
        cv.poly(line, _shade(o.colour2, light), oid, None, grow=False)


OCCLUDER_DRAW = {
    "pole": _draw_pole,
    "box": _draw_box,
    "bush": _draw_bush,
    "car": _draw_car,
    "sign": _draw_sign,
}

# kind: (weight among static props, (width range), (height range), (depth range))
STATIC_PROPS = {
    "pole": (3.0, (0.12, 0.35), (3.5, 7.0), (0.1, 0.1)),
    "box": (2.0, (0.5, 1.6), (0.5, 1.3), (0.4, 1.0)),
    "bush": (1.5, (0.8, 2.0), (0.6, 1.3), (0.5, 0.5)),
    "sign": (1.0, (0.6, 1.2), (2.0, 2.6), (0.1, 0.1)),
}


def sample_prop(kind: str, x: float, z: float, rng: np.random.Generator) -> Occluder:
    _, wr, hr, dr = STATIC_PROPS[kind]
    palettes = {
        "pole": lambda: (
            np.array([110.0, 110.0, 115.0]) * rng.uniform(0.4, 1.3)
            if rng.random() < 0.6
            else np.array([95.0, 70.0, 45.0]) * rng.uniform(0.7, 1.3)
        ),
        "box": lambda: random_colour(rng, sat=(0.2, 0.8), val=(0.3, 0.85)),
        "bush": lambda: np.array([50.0, 110.0, 45.0]) * rng.uniform(0.6, 1.3),
        "sign": lambda: random_colour(rng, sat=(0.5, 1.0), val=(0.5, 1.0)),
    }
    return Occluder(
        kind,
        x,
        z,
        (rng.uniform(*wr), rng.uniform(*hr), rng.uniform(*dr)),
        palettes[kind](),
        random_colour(rng),
        0.0,
        int(rng.integers(1 << 30)),
    )


def sample_car(x: float, z: float, vx: float, rng: np.random.Generator) -> Occluder:
    return Occluder(
        "car",
        x,
        z,
        (rng.uniform(3.8, 4.8), rng.uniform(1.35, 1.6), 1.8),
        random_colour(rng, sat=(0.0, 0.9), val=(0.2, 0.95)),
        random_colour(rng),
        vx,
        int(rng.integers(1 << 30)),
    )


__all__ = [
    "Appearance",
    "Camera",
    "Canvas",
    "Figure2D",
    "JOINT_PARTS",
    "OCCLUDER_DRAW",
    "Occluder",
    "PART_IDS",
    "STATIC_PROPS",
    "capsule",
    "capsules",
    "draw_figure",
    "project_figure",
    "random_colour",
    "sample_appearance",
    "sample_car",
    "sample_prop",
    "view_matrix",
]
