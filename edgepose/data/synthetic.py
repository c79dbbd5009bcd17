"""Labelled synthetic pose videos: the project's benchmark where no annotated real video can be had.

A video is a seeded scene: a wide background stage, a pinhole camera that pans, zooms and shakes,
people (``synth_body``) who walk, run, wave, turn, squat, enter and leave, props and cars that pass
in front of them, and capture effects (motion and defocus blur, noise, tone, JPEG). Each frame
comes with per-person labels in a 19-joint superset (``SYNTH19``: COCO-17 plus PoseTrack's
head_bottom/head_top) that converts to ``coco17`` and ``posetrack17``:

- ``visibility`` in COCO/PoseTrack terms: 2 visible, 1 labelled but hidden (by an occluder,
  another person or the person's own body), 0 outside the image;
- ``occluded``: hidden by an occluder or another person (not by the person's own body);
- ``blurred``: the frame or this person was blurred.

Motion is smooth and occlusions last several frames, so a joint hidden now is recoverable from
neighbouring frames: the property a temporal model should exploit and the benchmark measures.

Streaming use::

    for frame in SyntheticVideo(SynthConfig(), seed=0):
        frame.image          # (H, W, 3) uint8 RGB
        for p in frame.persons:
            p.track_id, p.bbox, p.keypoints_in("posetrack17")   # (17, 3): x, y, v

``write_dataset`` (``synth_dataset``) writes the same videos as PoseTrack18 / COCO JSON.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..core.keypoints import KeypointLayout, convert, get_layout
from .synth_backgrounds import BACKGROUNDS, StageGeometry, make_background
from .synth_body import ACTIONS, NUM_JOINTS, SYNTH19, Actor, P, pose_body, sample_shape, sample_style
from .synth_effects import blur_region, disk_kernel, jpeg_roundtrip, line_kernel, tone_lut
from .synth_render import (
    FACE_MIN_DOT,
    JOINT_PARTS,
    STATIC_PROPS,
    TORSO_BITS,
    Camera,
    Canvas,
    draw_figure,
    project_figure,
    sample_appearance,
    sample_car,
    sample_prop,
    view_matrix,
)

GENERATOR_VERSION = "1.0"


@dataclass(frozen=True)
class SynthConfig:
    """Everything that shapes a video. Ranges are sampled per video (or per episode) from the seed."""

    width: int = 512
    height: int = 384
    frames: int = 100
    fps: float = 25.0
    # people
    min_people: int = 1
    max_people: int = 6
    spawn_per_s: float = 0.4  # arrivals from the frame edges (Poisson)
    child_p: float = 0.08
    near_height: tuple[float, float] = (0.55, 0.95)  # person height at the nearest depth / frame height
    depth_ratio: tuple[float, float] = (2.0, 3.5)  # farthest / nearest depth
    min_joints: int = 3  # a person is labelled when at least this many joints are inside the image
    # scene
    props: tuple[int, int] = (1, 5)  # static occluders (poles, boxes, bushes, signs)
    cars_per_s: float = 0.08
    backgrounds: tuple[str, ...] = ("street", "indoor", "park", "abstract")
    # camera
    camera_static_p: float = 0.3
    pan_px_s: float = 60.0
    zoom_amp: float = 0.15
    shake_px: float = 3.0
    # capture effects
    motion_blur_p: float = 0.02  # chance per frame that a camera-blur episode starts
    blur_frames: tuple[int, int] = (2, 6)  # a camera-blur episode lasts this many frames (inclusive)
    defocus_p: float = 0.008
    person_blur_p: float = 0.5  # chance a fast-moving person is motion-blurred (per episode)
    noise_sigma: tuple[float, float] = (0.0, 7.0)
    jpeg_p: float = 0.35  # share of videos stored at low JPEG quality
    jpeg_quality: tuple[int, int] = (25, 60)
    tone: bool = True

    def replace(self, **kw) -> SynthConfig:
        return dataclasses.replace(self, **kw)

    @classmethod
    def preset(cls, name: str, **overrides) -> SynthConfig:
        try:
            base = PRESETS[name]
        except KeyError:
            raise KeyError(f"unknown synthetic preset {name!r}; known: {sorted(PRESETS)}") from None
        return cls(**{**base, **overrides})

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> SynthConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise KeyError(f"unknown SynthConfig fields {sorted(unknown)}; known: {sorted(names)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


PRESETS: dict[str, dict] = {
    # no capture effects and a fixed camera: for pixel-exact tests and debugging labels
    "clean": dict(
        camera_static_p=1.0,
        shake_px=0.0,
        motion_blur_p=0.0,
        defocus_p=0.0,
        person_blur_p=0.0,
        noise_sigma=(0.0, 0.0),
        jpeg_p=0.0,
        tone=False,
    ),
    "easy": dict(
        max_people=3,
        props=(0, 2),
        cars_per_s=0.0,
        motion_blur_p=0.0,
        defocus_p=0.0,
        person_blur_p=0.0,
        noise_sigma=(0.0, 3.0),
        jpeg_p=0.0,
        shake_px=1.0,
    ),
    # easy's scenes plus the capture effects a frame window can undo: camera jerks that blur one or
    # two frames, defocus pulses, motion-blurred fast movers, and props to walk behind
    "moderate": dict(
        max_people=3,
        props=(1, 4),
        cars_per_s=0.0,
        motion_blur_p=0.12,
        blur_frames=(1, 2),
        defocus_p=0.03,
        person_blur_p=0.6,
        noise_sigma=(0.0, 3.0),
        jpeg_p=0.0,
        shake_px=1.0,
    ),
    "default": {},
    "hard": dict(
        max_people=8,
        spawn_per_s=0.6,
        props=(3, 8),
        cars_per_s=0.15,
        motion_blur_p=0.05,
        defocus_p=0.025,
        person_blur_p=0.8,
        noise_sigma=(2.0, 12.0),
        jpeg_p=0.6,
        shake_px=5.0,
        depth_ratio=(2.5, 4.5),
    ),
}


@dataclass
class SynthPerson:
    """One labelled person in one frame (image pixel coordinates, pixel centres at integers)."""

    track_id: int
    bbox: np.ndarray  # (4,) x, y, w, h of the whole figure, clipped to the image
    bbox_head: np.ndarray  # (4,) x, y, w, h
    keypoints: np.ndarray  # (19, 2) SYNTH19 true positions, also for joints outside the image
    visibility: np.ndarray  # (19,) uint8: 2 visible, 1 hidden but labelled, 0 outside the image
    occluded: np.ndarray  # (19,) bool: hidden by an occluder or another person
    blurred: np.ndarray  # (19,) bool: the frame or the person is blurred
    area: float  # silhouette pixels inside the image, ignoring occluders (COCO "area")
    visible_fraction: float  # share of that silhouette not covered by anything in front
    action: str
    depth: float  # metres from the camera
    layer_id: int = 0  # its parts in layers["id_map"] are layer_id .. layer_id + 31

    def keypoints_in(
        self, layout: str | KeypointLayout = "posetrack17", zero_unlabelled: bool = True
    ) -> np.ndarray:
        """(J, 3) array of x, y, v in ``layout``; empty slots and v=0 joints are zeros (COCO style)."""
        lay = get_layout(layout) if isinstance(layout, str) else layout
        full = np.concatenate([self.keypoints, self.visibility[:, None].astype(np.float32)], 1)
        out = convert(full, SYNTH19, lay)
        out[~lay.valid_mask] = 0
        if zero_unlabelled:
            out[out[:, 2] == 0] = 0
        return out

    def flags_in(self, layout: str | KeypointLayout = "posetrack17") -> dict[str, np.ndarray]:
        """``occluded`` and ``blurred`` per joint of ``layout`` (0 where not labelled)."""
        lay = get_layout(layout) if isinstance(layout, str) else layout
        lab = self.visibility > 0
        f = np.stack([self.occluded & lab, self.blurred & lab], 1).astype(np.uint8)
        out = convert(f, SYNTH19, lay)
        out[~lay.valid_mask] = 0
        return {"occluded": out[:, 0], "blurred": out[:, 1]}


@dataclass
class SynthFrame:
    video: str
    index: int
    image: np.ndarray  # (H, W, 3) uint8 RGB, with all effects
    persons: list[SynthPerson]
    blurred: bool  # a frame-wide blur (camera motion or defocus) was applied
    camera: np.ndarray  # 2x3 stage -> image matrix of this frame
    jpeg: bytes | None = None  # encoded bytes when the video is JPEG-degraded (written as is)
    layers: dict = field(default_factory=dict)  # with keep_layers: background, id_map, clean


# ---------------------------------------------------------------------------------------------


def _camera_path(cfg: SynthConfig, rng: np.random.Generator, n: int):
    """Per-frame zoom, roll and view centre (stage pixels): static, panning, zooming, handheld."""
    t = np.arange(n) / cfg.fps
    w, h = cfg.width, cfg.height
    cx = np.full(n, w / 2.0)
    cy = np.full(n, h / 2.0)
    zoom = np.ones(n)
    roll = np.zeros(n)
    if rng.random() >= cfg.camera_static_p:
        if rng.random() < 0.6 and cfg.pan_px_s > 0:  # pan
            v = rng.uniform(0.2, 1.0) * cfg.pan_px_s * rng.choice([-1, 1])
            cx += v * t + rng.uniform(0, 0.3) * cfg.pan_px_s * np.sin(2 * np.pi * t / rng.uniform(3, 8))
            cy += rng.uniform(-0.1, 0.1) * cfg.pan_px_s * t
        if rng.random() < 0.4 and cfg.zoom_amp > 0:  # zoom
            zoom *= 1 + rng.uniform(0.3, 1.0) * cfg.zoom_amp * np.sin(
                2 * np.pi * t / rng.uniform(4, 10) + rng.uniform(0, 6.3)
            )
        if rng.random() < 0.5 and cfg.shake_px > 0:  # handheld shake
            amp = rng.uniform(0.3, 1.0) * cfg.shake_px
            for _ in range(3):
                fx, fy = rng.uniform(0.5, 3.5, 2)
                cx += amp / 3 * np.sin(2 * np.pi * fx * t + rng.uniform(0, 6.3))
                cy += amp / 3 * np.sin(2 * np.pi * fy * t + rng.uniform(0, 6.3))
            roll += math.radians(rng.uniform(0, 1.2)) * np.sin(
                2 * np.pi * rng.uniform(0.2, 1.0) * t + rng.uniform(0, 6.3)
            )
    return zoom, roll, np.stack([cx, cy], 1)


def _view_bounds(view: np.ndarray, w: int, h: int) -> np.ndarray:
    """Stage-space bounding box (x0, y0, x1, y1) of what the camera sees."""
    inv = cv2.invertAffineTransform(view)
    corners = np.array([[0, 0], [w, 0], [0, h], [w, h]], np.float64) @ inv[:, :2].T + inv[:, 2]
    return np.array([*corners.min(0), *corners.max(0)])


class SyntheticVideo:
    """One seeded video; iterate it (again and again: it replays identically) to get ``SynthFrame``s.

    ``seed`` and ``index`` pick the video: (seed, index) always gives the same frames whatever
    else is generated. ``keep_layers`` adds the background, the id map and the pre-effect image to
    each frame (for tests and debugging); ``keep_jpeg`` keeps the encoded bytes of JPEG-degraded
    videos so writers need not re-encode.
    """

    def __init__(
        self,
        config: SynthConfig | None = None,
        seed: int = 0,
        index: int = 0,
        keep_layers: bool = False,
        keep_jpeg: bool = False,
        name: str | None = None,
    ):
        self.config = config or SynthConfig()
        c = self.config
        if c.width < 32 or c.height < 32 or c.frames < 1:
            raise ValueError(
                f"synthetic video needs width, height >= 32 and frames >= 1, got "
                f"{c.width}x{c.height}, {c.frames} frames"
            )
        if not 0 <= c.min_people <= c.max_people:
            raise ValueError(f"need 0 <= min_people <= max_people, got {c.min_people}, {c.max_people}")
        bad = set(c.backgrounds) - set(BACKGROUNDS)
        if bad or not c.backgrounds:
            raise ValueError(f"unknown background styles {sorted(bad)}; use some of {sorted(BACKGROUNDS)}")
        self.seed, self.index = int(seed), int(index)
        self.keep_layers, self.keep_jpeg = keep_layers, keep_jpeg
        self.name = name or f"{self.index:06d}_synth"
        self.info: dict = {}

    def __len__(self) -> int:
        return self.config.frames

    def __iter__(self) -> Iterator[SynthFrame]:
        return _Scene(self).run()


class _Scene:
    """The state of one video while it plays."""

    def __init__(self, video: SyntheticVideo):
        self.v = video
        cfg = self.cfg = video.config
        self.rng = rng = np.random.default_rng(np.random.SeedSequence([video.seed, video.index, 0x5EED]))
        W, H, n = cfg.width, cfg.height, cfg.frames
        # world pinhole: a 1.75 m person at the nearest depth fills near_height of the frame
        self.z_near = 4.0
        self.z_far = self.z_near * rng.uniform(*cfg.depth_ratio)
        near = rng.uniform(*cfg.near_height)
        self.f = near * H * self.z_near / 1.75
        feet_near = H * rng.uniform(0.9, 1.08)
        # camera height: keep the far people's feet well inside the frame
        k = self.f / self.z_near * (1 - self.z_near / self.z_far)
        cam_h = min(rng.uniform(1.2, 3.0), (feet_near - 0.42 * H) / k)
        cam_h = max(cam_h, 0.6)
        self.cam_h = cam_h
        self.horizon = feet_near - self.f * cam_h / self.z_near
        self.zoom, self.roll, self.centre = _camera_path(cfg, rng, n)
        self.views = [view_matrix(self.zoom[t], self.roll[t], self.centre[t], (W, H)) for t in range(n)]
        b = np.array([_view_bounds(v, W, H) for v in self.views])
        x0, y0 = np.floor(b[:, :2].min(0)) - 8
        x1, y1 = np.ceil(b[:, 2:].max(0)) + 8
        self.stage_box = (x0, y0, x1, y1)
        geo = StageGeometry(
            self.f, W / 2.0, self.horizon, cam_h, np.array([x0, y0]), (int(x1 - x0), int(y1 - y0)), self.z_far
        )
        styles = list(cfg.backgrounds)
        w = np.array([BACKGROUNDS[s][1] for s in styles])
        style = str(rng.choice(styles, p=w / w.sum()))
        self.background, self.style = make_background(geo, rng, style)
        self.bg_offset = np.array([x0, y0])
        # capture settings for the whole video
        self.light = rng.uniform(0.8, 1.1)
        self.noise_sigma = rng.uniform(*cfg.noise_sigma)
        self.noise = [self._noise_field() for _ in range(3)] if self.noise_sigma > 0.5 else []
        self.jpeg_q = (
            int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
            if rng.random() < cfg.jpeg_p
            else None
        )
        self.tone = (
            (
                rng.uniform(0.8, 1.25),
                rng.uniform(0.8, 1.2),
                rng.uniform(0.9, 1.1, 3),
                rng.uniform(-0.06, 0.06),
            )
            if cfg.tone
            else None
        )
        self.flicker = rng.uniform(0, 0.03) if cfg.tone else 0.0
        self.next_track = 0
        self.actors: list[Actor] = []
        self.occluders = []
        self.blur_ep = None  # camera blur episode: (frames left, length, angle)
        self.defocus_ep = None  # (frame, duration, peak radius)
        self.person_blur: dict[int, tuple[int, float]] = {}  # track -> (frames left, exposure)
        self.prev_pelvis: dict[int, np.ndarray] = {}
        self._place_props()
        video.info = {
            "background": self.style,
            "jpeg_quality": self.jpeg_q,
            "noise_sigma": round(self.noise_sigma, 2),
            "z_range": [self.z_near, round(self.z_far, 2)],
            "camera_height": round(cam_h, 2),
        }

    # -- set-up ----------------------------------------------------------------------------
    def _noise_field(self) -> tuple[np.ndarray, np.ndarray]:
        n = self.rng.normal(0, self.noise_sigma, (self.cfg.height, self.cfg.width, 3)).astype(np.float32)
        return np.clip(n, 0, 255).astype(np.uint8), np.clip(-n, 0, 255).astype(np.uint8)

    def _x_range(self, z: float) -> tuple[float, float]:
        """World X range of the whole stage at depth z."""
        x0, _, x1, _ = self.stage_box
        cx = self.cfg.width / 2.0
        return (x0 - cx) * z / self.f, (x1 - cx) * z / self.f

    def _place_props(self) -> None:
        rng, cfg = self.rng, self.cfg
        names = list(STATIC_PROPS)
        w = np.array([STATIC_PROPS[n][0] for n in names])
        for _ in range(int(rng.integers(cfg.props[0], cfg.props[1] + 1))):
            kind = str(rng.choice(names, p=w / w.sum()))
            z = rng.uniform(self.z_near * 0.8, self.z_far)
            xa, xb = self._x_range(z)
            self.occluders.append(sample_prop(kind, rng.uniform(xa, xb), z, rng))

    def _new_actor(self, x: float, z: float, heading: float, action: str, entering: bool) -> Actor:
        rng = self.rng
        shape = sample_shape(rng, self.cfg.child_p)
        a = Actor(
            track_id=self.next_track,
            shape=shape,
            appearance=sample_appearance(rng),
            x=x,
            z=z,
            heading=heading,
            action=action,
            style=sample_style(action, rng, shape),
            seg_left=rng.uniform(*ACTIONS[action].duration),
            target_heading=heading,
            phase=rng.uniform(0, 2 * math.pi),
            freq=rng.uniform(*ACTIONS[action].freq),
            entering=entering,
        )
        if entering:
            a.seg_left = rng.uniform(3.0, 7.0)
        self.next_track += 1
        self.actors.append(a)
        return a

    def _spawn_initial(self, view_box) -> None:
        rng, cfg = self.rng, self.cfg
        n0 = int(rng.integers(cfg.min_people, cfg.max_people + 1)) if cfg.max_people > 0 else 0
        for _ in range(n0):
            z = rng.uniform(self.z_near, self.z_far)
            x0, x1 = self._view_x(view_box, z)
            x = rng.uniform(x0 + 0.3, x1 - 0.3) if x1 - x0 > 0.6 else (x0 + x1) / 2
            action = str(rng.choice(list(ACTIONS), p=_initial_p()))
            heading = (
                rng.choice([0.0, math.pi]) + rng.normal(0, 0.5)
                if ACTIONS[action].moves
                else -math.pi / 2 + rng.normal(0, 1.0)
            )
            self._new_actor(x, z, heading, action, entering=False)

    def _view_x(self, view_box, z) -> tuple[float, float]:
        cx = self.cfg.width / 2.0
        return (view_box[0] - cx) * z / self.f, (view_box[2] - cx) * z / self.f

    def _spawn_edge(self, view_box) -> None:
        rng = self.rng
        z = rng.uniform(self.z_near, self.z_far)
        x0, x1 = self._view_x(view_box, z)
        from_left = rng.random() < 0.5
        x = x0 - 0.6 if from_left else x1 + 0.6
        heading = (0.0 if from_left else math.pi) + rng.normal(0, 0.35)
        action = "run" if rng.random() < 0.2 else "walk"
        self._new_actor(x, z, heading, action, entering=True)

    def _spawn_car(self, view_box) -> None:
        rng = self.rng
        z = rng.uniform(self.z_near * 0.9, self.z_far)
        x0, x1 = self._view_x(view_box, z)
        right = rng.random() < 0.5
        v = rng.uniform(3.0, 10.0) * (1 if right else -1)
        x = x0 - 3.0 if right else x1 + 3.0
        self.occluders.append(sample_car(x - v * self.t / self.cfg.fps, z, v, rng))

    # -- per frame ---------------------------------------------------------------------------
    def run(self) -> Iterator[SynthFrame]:
        cfg, rng = self.cfg, self.rng
        W, H = cfg.width, cfg.height
        dt = 1.0 / cfg.fps
        for t in range(cfg.frames):
            self.t = t
            view = self.views[t]
            vb = _view_bounds(view, W, H)
            if t == 0:
                self._spawn_initial(vb)
            else:
                for a in self.actors:
                    a.step(dt, t * dt, rng, (self.z_near * 0.95, self.z_far))
                if len(self.actors) < cfg.max_people and rng.random() < cfg.spawn_per_s * dt:
                    self._spawn_edge(vb)
                if len(self.actors) < cfg.min_people:
                    self._spawn_edge(vb)
            if rng.random() < cfg.cars_per_s * dt:
                self._spawn_car(vb)
            yield self._render(t, view, vb)
            self._retire(t, vb)

    def _retire(self, t: int, vb) -> None:
        keep = []
        for a in self.actors:
            x0, x1 = self._view_x(vb, a.z)
            margin = 0.8 + 0.1 * (x1 - x0)
            outside = a.x < x0 - margin or a.x > x1 + margin
            if outside and (a.seen or a.age > 8.0):
                self.person_blur.pop(a.track_id, None)
                self.prev_pelvis.pop(a.track_id, None)
                continue
            keep.append(a)
        self.actors = keep
        time = t / self.cfg.fps
        self.occluders = [
            o for o in self.occluders if o.vx == 0.0 or _car_in_play(o, time, self._view_x(vb, o.z))
        ]

    def _camera(self, t: int) -> Camera:
        return Camera(
            self.f, self.cfg.width / 2.0, self.horizon, self.cam_h, self.views[t], float(self.zoom[t])
        )

    def _render(self, t: int, view: np.ndarray, vb) -> SynthFrame:
        cfg, rng = self.cfg, self.rng
        W, H = cfg.width, cfg.height
        time = t / cfg.fps
        cam = self._camera(t)
        m = view.copy()
        m[:, 2] += m[:, :2] @ self.bg_offset  # canvas pixel -> stage -> image
        tx, ty = -m[0, 2], -m[1, 2]
        if np.allclose(m[:, :2], np.eye(2)) and tx == int(tx) and ty == int(ty):  # still camera: a crop
            bg = self.background[int(ty) : int(ty) + H, int(tx) : int(tx) + W].copy()
        else:
            bg = cv2.warpAffine(
                self.background, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
            )
        cv = Canvas(bg.copy() if self.v.keep_layers else bg)
        # far to near: people and props interleaved by depth
        order = [(a.z, 0, i) for i, a in enumerate(self.actors)] + [
            (o.z - 0.01, 1, i) for i, o in enumerate(self.occluders)
        ]
        order.sort(key=lambda e: -e[0])
        drawn = []  # (slot, actor, figure, bbox, amodal area)
        oid = 0
        for _, kind, i in order:
            if kind == 1:
                oid = min(oid + 1, 31)
                self.occluders[i].draw(cv, cam, oid, time, self.light)
                continue
            a = self.actors[i]
            pose = pose_body(a.shape, a.pose_params(time), (a.x, a.z), a.heading)
            fig = project_figure(pose, a.shape, cam)
            lo, hi = fig.pts.min(0), fig.pts.max(0)
            pad = 0.3 * fig.height_px + 4
            if hi[0] < -pad or lo[0] > W + pad or hi[1] < -pad or lo[1] > H + pad:
                continue  # entering or leaving, entirely off screen
            slot = len(drawn)
            cv.reset_box()
            draw_figure(cv, fig, a.shape, a.appearance, slot, self.light, a.heading)
            box = list(cv.box)
            area = _count_slot(cv.ids, box, slot)
            drawn.append((slot, a, fig, box, area))
        ids = cv.ids
        persons = [p for p in (self._label(d, ids, W, H) for d in drawn) if p is not None]
        clean = cv.image.copy() if self.v.keep_layers else None
        img = cv.image
        # person motion blur (fast movers), then frame-wide blur
        blurred_tracks = set()
        for slot, a, fig, box, _ in drawn:
            k = self._person_blur_kernel(a, fig)
            if k is not None:
                blur_region(img, (ids // 32) == slot + 1, box, k)
                blurred_tracks.add(a.track_id)
        frame_blur = self._frame_blur(img, t)
        for p in persons:
            if frame_blur or p.track_id in blurred_tracks:
                p.blurred[:] = p.visibility > 0
        # tone, noise, compression
        if self.tone is not None:
            g, c, gains, br = self.tone
            img = cv2.LUT(img, tone_lut(g, c, gains, br + self.flicker * math.sin(2 * math.pi * 0.7 * time)))
        if self.noise:
            pos, neg = self.noise[int(rng.integers(len(self.noise)))]
            img = cv2.subtract(cv2.add(img, pos), neg)
        jpeg = None
        if self.jpeg_q is not None:
            img, data = jpeg_roundtrip(img, self.jpeg_q)
            jpeg = data if self.v.keep_jpeg else None
        layers = {"background": bg, "id_map": ids, "clean": clean} if self.v.keep_layers else {}
        return SynthFrame(self.v.name, t, img, persons, frame_blur, view, jpeg, layers)

    def _person_blur_kernel(self, a: Actor, fig) -> np.ndarray | None:
        pel = fig.pts[P["pelvis"]].copy()
        prev = self.prev_pelvis.get(a.track_id)
        self.prev_pelvis[a.track_id] = pel
        if prev is None or self.cfg.person_blur_p <= 0:
            return None
        vel = pel - prev
        speed = float(np.hypot(*vel))
        ep = self.person_blur.get(a.track_id)
        if ep is None or ep[0] <= 0:
            ep = None
            # fast movers get blur episodes; a walker's limbs move about twice as fast as its pelvis
            if speed > 0.012 * fig.height_px and self.rng.random() < self.cfg.person_blur_p * 0.05:
                # exposure as a share of the frame interval; limbs move faster than the pelvis
                ep = (int(self.rng.integers(3, 10)), self.rng.uniform(0.6, 1.5))
        if ep is None:
            self.person_blur.pop(a.track_id, None)
            return None
        self.person_blur[a.track_id] = (ep[0] - 1, ep[1])
        length = min(speed * ep[1], 31.0)
        if length < 3.0:
            return None
        return line_kernel(length, math.atan2(vel[1], vel[0]))

    def _frame_blur(self, img: np.ndarray, t: int) -> bool:
        cfg, rng = self.cfg, self.rng
        blurred = False
        if self.blur_ep is None and rng.random() < cfg.motion_blur_p:
            lo, hi = cfg.blur_frames
            self.blur_ep = [int(rng.integers(lo, hi + 1)), rng.uniform(4, 16), rng.uniform(0, math.pi)]
        if self.blur_ep is not None:
            left, length, ang = self.blur_ep
            ker = line_kernel(length * rng.uniform(0.7, 1.1), ang + rng.normal(0, 0.1))
            cv2.filter2D(img, -1, ker, dst=img, borderType=cv2.BORDER_REFLECT)
            blurred = True
            self.blur_ep = None if left <= 1 else [left - 1, length, ang]
        if self.defocus_ep is None and rng.random() < cfg.defocus_p:
            self.defocus_ep = [0, int(rng.integers(3, 10)), rng.uniform(1.8, 4.5)]
        if self.defocus_ep is not None:
            i, dur, peak = self.defocus_ep
            r = peak * math.sin(math.pi * (i + 0.5) / dur)
            if r >= 1.0:
                cv2.filter2D(img, -1, disk_kernel(r), dst=img, borderType=cv2.BORDER_REFLECT)
                blurred = True
            self.defocus_ep = None if i + 1 >= dur else [i + 1, dur, peak]
        return blurred

    def _label(self, d, ids: np.ndarray, W: int, H: int) -> SynthPerson | None:
        slot, a, fig, box, area = d
        p = label_figure(
            fig, a.shape.head_r, ids, slot, box, area, self.cfg.min_joints, a.track_id, a.action, a.z
        )
        if p is not None:
            a.seen = True
        return p


def label_figure(
    fig,
    head_r: float,
    ids: np.ndarray,
    slot: int,
    box,
    area: float,
    min_joints: int = 3,
    track_id: int = 0,
    action: str = "",
    depth: float = 0.0,
) -> SynthPerson | None:
    """Labels of a figure drawn in ``slot`` from the final id map: a joint is visible when its own
    limb is on top, occluded when an occluder or another person is, self-occluded when its own
    torso or another of its limbs is (or, for face joints, when the head turns it away).
    None when fewer than ``min_joints`` joints are inside the image."""
    H, W = ids.shape
    kp = fig.pts[:NUM_JOINTS]
    inside = (kp[:, 0] >= 0) & (kp[:, 0] <= W - 1) & (kp[:, 1] >= 0) & (kp[:, 1] <= H - 1)
    if inside.sum() < min_joints:
        return None
    x0, y0 = max(box[0], 0.0), max(box[1], 0.0)
    x1, y1 = min(box[2], W - 1.0), min(box[3], H - 1.0)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    xi = np.clip(np.round(kp[:, 0]).astype(int), 0, W - 1)
    yi = np.clip(np.round(kp[:, 1]).astype(int), 0, H - 1)
    under = ids[yi, xi].astype(np.int64)
    own = (under // 32) == slot + 1
    part_bit = np.left_shift(1, under % 32)
    occluded = np.zeros(NUM_JOINTS, bool)
    self_hidden = np.zeros(NUM_JOINTS, bool)
    for j, name in enumerate(SYNTH19.names):
        if not inside[j]:
            continue
        allowed = JOINT_PARTS[name]
        side = name.split("_")[0]
        if name.endswith(("_shoulder", "_hip")) and fig.far_side.get(side, False):
            allowed &= ~TORSO_BITS
        if under[j] == 0:
            # rasterisation edge: the joint sits on its own outline; look around it
            nb = ids[max(yi[j] - 1, 0) : yi[j] + 2, max(xi[j] - 1, 0) : xi[j] + 2].astype(np.int64)
            mine = nb[(nb // 32) == slot + 1]
            if mine.size and not np.any(np.left_shift(1, mine % 32) & allowed):
                self_hidden[j] = True
        elif not own[j]:
            occluded[j] = True
        elif not (part_bit[j] & allowed):
            self_hidden[j] = True
        if name in FACE_MIN_DOT and fig.face_dot[name] <= FACE_MIN_DOT[name]:
            self_hidden[j] = True
    vis = np.where(inside, np.where(occluded | self_hidden, 1, 2), 0).astype(np.uint8)
    head = fig.pts[P["head_center"]]
    r = head_r * fig.ppm[P["head_center"]] * 1.15
    hb = np.array(
        [max(head[0] - r, 0), max(head[1] - r, 0), min(head[0] + r, W - 1), min(head[1] + r, H - 1)]
    )
    hb[2:] = np.maximum(hb[2:] - hb[:2], 0)
    visible_px = _count_slot(ids, box, slot)
    return SynthPerson(
        track_id=int(track_id),
        bbox=np.array([x0, y0, x1 - x0, y1 - y0], np.float32),
        bbox_head=hb.astype(np.float32),
        keypoints=kp.astype(np.float32),
        visibility=vis,
        occluded=occluded & inside,
        blurred=np.zeros(NUM_JOINTS, bool),
        area=float(area),
        visible_fraction=float(visible_px / area) if area > 0 else 0.0,
        action=action,
        depth=float(depth),
        layer_id=32 * (slot + 1),
    )


def _initial_p() -> np.ndarray:
    w = {
        "walk": 3.0,
        "run": 0.6,
        "stand": 1.5,
        "wave": 1.0,
        "jack": 0.5,
        "squat": 0.5,
        "swing": 0.6,
        "turn": 0.6,
    }
    p = np.array([w[n] for n in ACTIONS])
    return p / p.sum()


def _count_slot(ids: np.ndarray, box, slot: int) -> int:
    h, w = ids.shape
    x0, y0 = max(int(math.floor(box[0])), 0), max(int(math.floor(box[1])), 0)
    x1, y1 = min(int(math.ceil(box[2])) + 1, w), min(int(math.ceil(box[3])) + 1, h)
    if x1 <= x0 or y1 <= y0:
        return 0
    roi = ids[y0:y1, x0:x1]
    return int(np.count_nonzero((roi >= 32 * (slot + 1)) & (roi < 32 * (slot + 2))))


def _car_in_play(o, time: float, x_range) -> bool:
    a, b = o.extent_x(time)
    if o.vx > 0:
        return a < x_range[1] + 1.0
    return b > x_range[0] - 1.0


def synthetic_videos(
    config: SynthConfig | None = None, seed: int = 0, count: int = 1, start: int = 0, **kw
) -> Iterator[SyntheticVideo]:
    """Videos ``start .. start+count-1`` of the seed's sequence."""
    for i in range(start, start + count):
        yield SyntheticVideo(config, seed=seed, index=i, **kw)


def draw_labels(frame: SynthFrame, layout: str = "coco17") -> np.ndarray:
    """The frame with boxes, skeletons and joints drawn (visible: filled, hidden: ring, red: occluded)."""
    lay = get_layout(layout)
    img = np.ascontiguousarray(frame.image).copy()
    for p in frame.persons:
        kp = p.keypoints_in(lay)
        fl = p.flags_in(lay)
        x, y, w, h = p.bbox
        col = _track_colour(p.track_id)
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), col, 1)
        cv2.putText(
            img, f"{p.track_id}", (int(x), max(int(y) - 3, 8)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, col, 1
        )
        for a, b in lay.skeleton:
            if kp[a, 2] > 0 and kp[b, 2] > 0:
                cv2.line(
                    img, (int(kp[a, 0]), int(kp[a, 1])), (int(kp[b, 0]), int(kp[b, 1])), col, 1, cv2.LINE_AA
                )
        for j in range(len(lay)):
            if kp[j, 2] == 0:
                continue
            c = (int(round(kp[j, 0])), int(round(kp[j, 1])))
            if "left" in lay.names[j]:
                jc = (255, 160, 0)
            elif "right" in lay.names[j]:
                jc = (0, 170, 255)
            else:
                jc = (255, 255, 255)
            if fl["occluded"][j]:
                jc = (255, 0, 0)
            cv2.circle(img, c, 3, jc, -1 if kp[j, 2] == 2 else 1, cv2.LINE_AA)
    return img


def _track_colour(tid: int) -> tuple[int, int, int]:
    h = (tid * 0.618034) % 1.0
    hsv = np.uint8([[[int(h * 179), 200, 255]]])
    return tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


__all__ = [
    "GENERATOR_VERSION",
    "PRESETS",
    "SYNTH19",
    "SynthConfig",
    "SynthFrame",
    "SynthPerson",
    "SyntheticVideo",
    "draw_labels",
    "label_figure",
    "synthetic_videos",
]
