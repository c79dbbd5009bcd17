"""One-Euro smoothing: jitter removed at rest, little lag in motion, per-joint independence, scale
invariance, per-track state and joints that reappear."""

from __future__ import annotations

import numpy as np
import pytest

from edgepose.sdk.smoothing import OneEuroFilter, PoseSmoother

FPS = 30.0


def _track(signal: np.ndarray, noise_sd: float, smoother, seed=0, box_diag=250.0):
    """Feed (T, J, 2) signal + noise to a PoseSmoother; RMS error after warm-up, raw and smoothed."""
    rng = np.random.default_rng(seed)
    noisy = signal + rng.normal(0, noise_sd, signal.shape)
    side = box_diag / np.sqrt(2)
    out = np.stack([smoother(1, noisy[i], i / FPS, box=[0, 0, side, side]) for i in range(len(signal))])
    rms = lambda x: float(np.sqrt(((x - signal)[30:] ** 2).mean()))
    return rms(noisy), rms(out)


def test_jitter_is_removed_at_rest_and_lag_stays_small_in_motion():
    t = np.arange(300) / FPS
    still = np.zeros((300, 17, 2)) + 100.0
    raw, smooth = _track(still, 3.0, PoseSmoother())
    assert smooth < 0.65 * raw  # documented: ~0.55x
    swing = still.copy()
    swing[..., 0] += 60 * np.sin(2 * np.pi * t)[:, None]
    raw, fast = _track(swing, 3.0, PoseSmoother())
    _, plain_lowpass = _track(swing, 3.0, PoseSmoother(beta=0.0))
    assert fast < 1.7 * raw  # documented: ~1.5x the noise level
    assert fast < 0.5 * plain_lowpass  # the speed-adaptive cutoff is what removes the lag


def test_joints_are_filtered_independently():
    f = OneEuroFilter(min_cutoff=1.0, beta=20.0)
    rng = np.random.default_rng(0)
    for i in range(60):
        x = np.array([[0.0, 0.0], [10.0 * i, 0.0]]) + rng.normal(0, 0.01, (2, 2))
        y = f(x, i / FPS, scale=100.0)
    # the moving joint tracks closely; the still one is unaffected by its neighbour's speed
    assert abs(y[1, 0] - 590.0) < 25.0
    assert abs(y[0, 0]) < 0.05


def test_output_scales_with_the_person():
    t = np.arange(100) / FPS
    sig = np.stack([np.sin(2 * np.pi * t) * 30, np.cos(2 * np.pi * t) * 20], -1)[:, None, :] + 50
    a, b = PoseSmoother(), PoseSmoother()
    for i in range(100):
        ya = a(1, sig[i], t[i], box=[0, 0, 100, 200])
        yb = b(1, 2 * sig[i], t[i], box=[0, 0, 200, 400])
    np.testing.assert_allclose(yb, 2 * ya, rtol=1e-9)


def test_first_sample_passes_through_and_time_must_increase():
    f = OneEuroFilter()
    x = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(f(x, 0.0), x)
    with pytest.raises(ValueError, match="time must increase"):
        f(x, 0.0)
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0)


def test_tracks_have_separate_state_and_are_dropped():
    s = PoseSmoother()
    a = s(1, np.zeros((17, 2)), 0.0)
    b = s(2, np.full((17, 2), 500.0), 0.0)
    np.testing.assert_array_equal(a, 0.0)
    np.testing.assert_array_equal(b, 500.0)
    y = s(1, np.ones((17, 2)), 1 / FPS)
    assert (y > 0).all() and (y < 1).all()  # smoothed towards the new value, not jumped from track 2
    assert len(s) == 2 and s.retain([2]) == [1] and 1 not in s
    np.testing.assert_array_equal(s(1, np.ones((17, 2)), 2 / FPS), 1.0)  # new track: passes through
    assert s(1, np.ones((17, 2), np.float32), 3 / FPS).dtype == np.float32


def test_reappearing_joint_restarts_instead_of_gliding():
    s = PoseSmoother(min_score=0.3)
    kp = np.zeros((3, 2))
    scores = np.array([0.9, 0.9, 0.9])
    s(1, kp, 0.0, scores=scores)
    s(1, kp, 1 / FPS, scores=np.array([0.9, 0.9, 0.1]))  # joint 2 lost
    moved = kp.copy()
    moved[:, 0] = 100.0
    y = s(1, moved, 2 / FPS, scores=scores)  # joint 2 back, far away; joints 0, 1 jump too
    assert y[2, 0] == 100.0  # restarted at its new position
    assert y[0, 0] < 100.0  # the tracked joints are still filtered


def test_smoother_restarts_when_the_clock_steps_back():
    s = PoseSmoother()
    s(1, np.zeros((2, 2)), 5.0)
    np.testing.assert_array_equal(s(1, np.ones((2, 2)), 1.0), 1.0)  # restarted, no error
