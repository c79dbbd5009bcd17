"""Backgrounds for the synthetic videos: a wide stage canvas (street, indoor, park, abstract clutter)
drawn once per video in the scene's own perspective, so ground lines, façades and trees sit where
the people walk. The camera then views a window of it each frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .synth_render import SHIFT, TEXTURES, TILE, _col, _fx, capsule, random_colour


def _smooth_noise(rng, h, w, cell, channels=1) -> np.ndarray:
    small = rng.random((max(h // cell, 2) + 2, max(w // cell, 2) + 2, channels)).astype(np.float32)
    big = cv2.resize(small, (w + 2 * cell, h + 2 * cell), interpolation=cv2.INTER_CUBIC)
    big = big.reshape(big.shape[0], big.shape[1], channels)
    return big[cell : cell + h, cell : cell + w] - 0.5


def _vgradient(img, y0, y1, c0, c1) -> None:
    y0, y1 = int(max(y0, 0)), int(min(y1, img.shape[0]))
    if y1 <= y0:
        return
    t = np.linspace(0, 1, y1 - y0, dtype=np.float32)[:, None, None]
    img[y0:y1] = np.asarray(c0, np.float32) * (1 - t) + np.asarray(c1, np.float32) * t


@dataclass
class StageGeometry:
    """Where the world lands on the background canvas (canvas pixel = stage pixel - offset)."""

    f: float
    cx: float
    horizon: float
    cam_h: float
    offset: np.ndarray
    size: tuple[int, int]  # (w, h)
    z_far: float

    def ground_y(self, z: float) -> float:
        return self.horizon + self.f * self.cam_h / z - self.offset[1]

    def x_of(self, x_world: float, z: float) -> float:
        return self.cx + self.f * x_world / z - self.offset[0]


def _sky(img, g, rng):
    hy = g.ground_y(1e9)
    top = random_colour(rng, sat=(0.2, 0.6), val=(0.6, 1.0)) if rng.random() < 0.8 else random_colour(rng)
    _vgradient(img, 0, hy + 1, top * 0.8, top * 0.5 + 110)
    return hy


def _ground(img, g, rng, y_top, colour=None):
    colour = colour if colour is not None else random_colour(rng, sat=(0.0, 0.35), val=(0.3, 0.75))
    _vgradient(img, y_top, img.shape[0], colour * 0.85, colour * 1.15)
    h, w = img.shape[:2]
    y0 = int(max(y_top, 0))
    if y0 < h:
        n = _smooth_noise(rng, h - y0, w, 24) * rng.uniform(30, 70)
        img[y0:] = np.clip(img[y0:] + n, 0, 255)
    return colour


def _perspective_lines(img, g, rng, colour, n=None, z_end=None):
    """Lines on the ground: along Z towards the vanishing point (stopping at depth ``z_end``) and across."""
    h, w = img.shape[:2]
    z_end = z_end or g.z_far * 4
    n = n or int(rng.integers(3, 9))
    for x in rng.uniform(-40, 40, n):
        p0 = (g.x_of(x, 1.5), g.ground_y(1.5))
        p1 = (g.x_of(x, z_end), g.ground_y(z_end))
        cv2.line(
            img,
            (int(p0[0]), int(p0[1])),
            (int(p1[0]), int(p1[1])),
            _col(colour),
            int(rng.integers(1, 3)),
            cv2.LINE_AA,
        )
    for z in np.geomspace(2.0, z_end, int(rng.integers(3, 12))):
        y = int(g.ground_y(z))
        if 0 <= y < h:
            cv2.line(img, (0, y), (w, y), _col(colour), 1, cv2.LINE_AA)


def _facades(img, g, rng):
    h, w = img.shape[:2]
    x = -rng.uniform(0, 80)
    while x < w:
        bw = rng.uniform(60, 220)
        z = g.z_far * rng.uniform(1.3, 3.0)
        base = g.ground_y(z)
        top = base - g.f * rng.uniform(6, 30) / z
        col = random_colour(rng, sat=(0.05, 0.4), val=(0.3, 0.85))
        x0, x1 = int(x), int(x + bw)
        cv2.rectangle(img, (x0, int(top)), (x1, int(base) + 2), _col(col), -1)
        win = col * rng.uniform(0.4, 0.7) if rng.random() < 0.7 else col * 1.3 + 30
        ww, wh = rng.uniform(6, 16), rng.uniform(8, 20)
        for wy in np.arange(top + 10, base - wh - 4, wh * rng.uniform(1.6, 2.4)):
            for wx in np.arange(x0 + 6, x1 - ww - 4, ww * rng.uniform(1.6, 2.5)):
                cv2.rectangle(
                    img, (int(wx), int(wy)), (int(wx + ww), int(wy + wh)), _col(np.clip(win, 0, 255)), -1
                )
        if rng.random() < 0.5:  # door / shop front
            dw = bw * rng.uniform(0.2, 0.5)
            dx = x0 + rng.uniform(0, bw - dw)
            cv2.rectangle(
                img,
                (int(dx), int(base - g.f * 2.4 / z)),
                (int(dx + dw), int(base)),
                _col(random_colour(rng, val=(0.1, 0.6))),
                -1,
            )
        x += bw + rng.uniform(-10, 30)


def _trees(img, g, rng, n):
    h, w = img.shape[:2]
    for _ in range(n):
        z = g.z_far * rng.uniform(1.1, 3.0)
        base = g.ground_y(z)
        x = rng.uniform(0, w)
        trunk_h = g.f * rng.uniform(1.5, 3.0) / z
        tw = max(g.f * 0.25 / z, 2)
        cv2.rectangle(
            img,
            (int(x - tw / 2), int(base - trunk_h)),
            (int(x + tw / 2), int(base)),
            _col(np.array([80.0, 60.0, 40.0]) * rng.uniform(0.6, 1.2)),
            -1,
        )
        crown = g.f * rng.uniform(1.2, 2.8) / z
        green = np.array([50.0, 105.0, 45.0]) * rng.uniform(0.5, 1.4)
        for _ in range(6):
            c = (
                int(x + rng.normal(0, crown * 0.4)),
                int(base - trunk_h - rng.normal(crown * 0.4, crown * 0.3)),
            )
            cv2.circle(
                img,
                c,
                int(crown * rng.uniform(0.4, 0.7)),
                _col(np.clip(green * rng.uniform(0.8, 1.2), 0, 255)),
                -1,
                cv2.LINE_AA,
            )


def _clutter(img, rng, n_lines, n_blobs, n_limbs):
    h, w = img.shape[:2]
    for _ in range(n_lines):  # wires, poles far away, edges
        p0 = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ang = rng.uniform(0, np.pi) if rng.random() < 0.5 else np.pi / 2 + rng.normal(0, 0.05)
        ln = rng.uniform(20, max(w, h))
        p1 = (int(p0[0] + ln * math.cos(ang)), int(p0[1] + ln * math.sin(ang)))
        cv2.line(img, p0, p1, _col(random_colour(rng)), int(rng.integers(1, 4)), cv2.LINE_AA)
    for _ in range(n_blobs):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        ax = (int(rng.uniform(5, 60)), int(rng.uniform(5, 60)))
        cv2.ellipse(img, c, ax, rng.uniform(0, 180), 0, 360, _col(random_colour(rng)), -1, cv2.LINE_AA)
    for _ in range(n_limbs):  # limb-like capsules: hard negatives for the keypoint heads
        p0 = np.array([rng.uniform(0, w), rng.uniform(0, h)])
        p1 = p0 + rng.normal(0, 25, 2)
        r = rng.uniform(2, 7)
        cv2.fillPoly(img, [_fx(capsule(p0, p1, r, r * 0.8))], _col(random_colour(rng)), cv2.LINE_AA, SHIFT)


def bg_street(img, g, rng):
    hy = _sky(img, g, rng)
    col = _ground(img, g, rng, hy)
    _facades(img, g, rng)
    _perspective_lines(img, g, rng, col * rng.uniform(0.5, 1.4), z_end=g.z_far * 1.3)
    _trees(img, g, rng, int(rng.integers(0, 4)))
    _clutter(img, rng, int(rng.integers(2, 8)), int(rng.integers(0, 5)), int(rng.integers(0, 4)))


def bg_indoor(img, g, rng):
    h, w = img.shape[:2]
    wall = random_colour(rng, sat=(0.0, 0.4), val=(0.4, 0.95))
    z_wall = g.z_far * rng.uniform(1.1, 1.6)
    y_floor = g.ground_y(z_wall)
    _vgradient(img, 0, y_floor + 1, wall * 1.05, wall * 0.85)
    if rng.random() < 0.4:  # wallpaper stripes
        p = int(rng.integers(8, 30))
        stripe = _col(wall * rng.uniform(0.8, 0.95))
        for x in range(0, w, 2 * p):
            cv2.rectangle(img, (x, 0), (x + p, int(y_floor)), stripe, -1)
    for _ in range(int(rng.integers(1, 6))):  # posters, doors, windows
        rw, rh = rng.uniform(20, 120), rng.uniform(30, 160)
        x0, y0 = rng.uniform(0, w), rng.uniform(0, max(y_floor - rh, 1))
        cv2.rectangle(
            img, (int(x0), int(y0)), (int(x0 + rw), int(min(y0 + rh, y_floor))), _col(random_colour(rng)), -1
        )
        cv2.rectangle(
            img,
            (int(x0), int(y0)),
            (int(x0 + rw), int(min(y0 + rh, y_floor))),
            _col(random_colour(rng, val=(0, 0.4))),
            2,
        )
    col = _ground(img, g, rng, y_floor, random_colour(rng, sat=(0.1, 0.6), val=(0.25, 0.7)))
    cv2.line(img, (0, int(y_floor)), (w, int(y_floor)), _col(col * 0.5), 3)
    _perspective_lines(img, g, rng, col * 0.7, n=int(rng.integers(6, 20)), z_end=z_wall)
    _clutter(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 4)), int(rng.integers(0, 3)))


def bg_park(img, g, rng):
    hy = _sky(img, g, rng)
    _ground(img, g, rng, hy, np.array([70.0, 120.0, 50.0]) * rng.uniform(0.6, 1.3))
    _trees(img, g, rng, int(rng.integers(6, 18)))
    if rng.random() < 0.7:  # a path through the grass
        vx, vy = g.cx - g.offset[0], g.ground_y(1e9)
        wpath = rng.uniform(1.5, 4)
        x = rng.uniform(-3, 3)
        p = np.array(
            [[g.x_of(x - wpath, 1.2), g.ground_y(1.2)], [g.x_of(x + wpath, 1.2), g.ground_y(1.2)], [vx, vy]]
        )
        cv2.fillPoly(
            img, [_fx(p)], _col(np.array([160.0, 140.0, 100.0]) * rng.uniform(0.7, 1.2)), cv2.LINE_AA, SHIFT
        )
    _clutter(img, rng, int(rng.integers(0, 4)), int(rng.integers(0, 6)), int(rng.integers(0, 3)))


def bg_abstract(img, g, rng):
    h, w = img.shape[:2]
    _vgradient(img, 0, h, random_colour(rng), random_colour(rng))
    n = _smooth_noise(rng, h, w, int(rng.integers(16, 64)), 3) * rng.uniform(60, 160)
    img[:] = np.clip(img + n, 0, 255)
    for _ in range(int(rng.integers(2, 8))):  # textured patches
        tile = TEXTURES[str(rng.choice(list(TEXTURES)))][0](rng, random_colour(rng)).astype(np.float32)
        pw, ph = int(rng.uniform(30, 200)), int(rng.uniform(30, 200))
        x0, y0 = int(rng.uniform(0, max(w - pw, 1))), int(rng.uniform(0, max(h - ph, 1)))
        dst = img[y0 : y0 + ph, x0 : x0 + pw]
        dst[:] = np.tile(tile, (ph // TILE + 1, pw // TILE + 1, 1))[: dst.shape[0], : dst.shape[1]]
    _clutter(img, rng, int(rng.integers(4, 15)), int(rng.integers(4, 15)), int(rng.integers(2, 8)))


BACKGROUNDS = {
    "street": (bg_street, 3.0),
    "indoor": (bg_indoor, 2.0),
    "park": (bg_park, 2.0),
    "abstract": (bg_abstract, 1.0),
}


def make_background(
    g: StageGeometry, rng: np.random.Generator, style: str | None = None
) -> tuple[np.ndarray, str]:
    """A background canvas (RGB uint8) covering every view the camera takes in the video."""
    names = list(BACKGROUNDS)
    if style is None:
        w = np.array([BACKGROUNDS[n][1] for n in names])
        style = str(rng.choice(names, p=w / w.sum()))
    if style not in BACKGROUNDS:
        raise KeyError(f"unknown background style {style!r}; known: {names}")
    img = np.zeros((g.size[1], g.size[0], 3), np.float32)
    BACKGROUNDS[style][0](img, g, rng)
    fine = rng.normal(0, rng.uniform(2, 7), img.shape[:2]).astype(np.float32)[..., None]
    img = np.clip(img + fine, 0, 255).astype(np.uint8)
    sigma = rng.uniform(0.6, 1.6)  # backgrounds sit a little out of focus
    return cv2.GaussianBlur(img, (0, 0), sigma), style


__all__ = ["BACKGROUNDS", "StageGeometry", "make_background"]
