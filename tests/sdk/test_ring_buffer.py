"""Ring buffer: window order and clamping (offline both edges, online causal), gaps, freeing, flat memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from edgepose.sdk.ring_buffer import RingBuffer, TrackBuffers, capacity_for, delay_for


def feats(t: int) -> dict[str, np.ndarray]:
    """Frame-stage outputs whose values say which frame they came from."""
    return {"feat": np.full((2, 3), t, np.float32), "tokens": np.array([t, -t], np.int64)}


def frames_of(window: dict[str, np.ndarray]) -> list[int]:
    return [int(v) for v in window["feat"][:, 0, 0]]


def test_capacity_and_delay():
    assert capacity_for((-2, -1, 0, 1, 2), "offline") == 5  # 2T+1
    assert capacity_for((-2, -1, 0, 1, 2), "online") == 3
    assert capacity_for((-2, -1, 0), "online") == 3
    assert delay_for((-2, -1, 0, 1, 2), "offline") == 2
    assert delay_for((-2, -1, 0, 1, 2), "online") == 0
    with pytest.raises(ValueError, match="contain 0"):
        capacity_for((-1, 1))
    with pytest.raises(ValueError, match="ascending"):
        capacity_for((1, 0, -1))
    with pytest.raises(ValueError, match="mode"):
        capacity_for((0,), "causal")


def test_offline_windows_clamp_at_both_edges():
    offs = (-2, -1, 0, 1, 2)
    buf = RingBuffer(offs, "offline")
    n, d = 8, delay_for(offs)
    got = {}
    for t in range(n):
        buf.push(t, feats(t))
        if t - d >= 0:  # frame t-d's look-ahead is complete
            got[t - d] = frames_of(buf.window(t - d))
    for t in range(n - d, n):  # end of the clip: flush the delayed frames
        got[t] = frames_of(buf.window(t))
    assert got[0] == [0, 0, 0, 1, 2]
    assert got[1] == [0, 0, 1, 2, 3]
    assert got[4] == [2, 3, 4, 5, 6]
    assert got[6] == [4, 5, 6, 7, 7]
    assert got[7] == [5, 6, 7, 7, 7]
    assert sorted(got) == list(range(n))
    w = buf.window(5)  # the ring now holds frames 3..7 only
    assert w["feat"].shape == (5, 2, 3) and w["feat"].dtype == np.float32
    assert w["tokens"].dtype == np.int64 and w["tokens"][:, 1].tolist() == [-3, -4, -5, -6, -7]
    assert buf.frames() == [3, 4, 5, 6, 7]


def test_online_mode_is_causal_and_repeats_current_frame_for_future_offsets():
    # A model trained with a symmetric 3-frame window, run on a camera.
    buf = RingBuffer((-1, 0, 1), "online")
    assert buf.capacity == 2
    buf.push(0, feats(0))
    assert frames_of(buf.window(0)) == [0, 0, 0]
    buf.push(1, feats(1))
    assert frames_of(buf.window(1)) == [0, 1, 1]  # the current frame stays at T//2
    buf.push(2, feats(2))
    assert frames_of(buf.window(2)) == [1, 2, 2]
    causal = RingBuffer((-2, -1, 0), "online")
    for t in range(5):
        causal.push(t, feats(t))
    assert frames_of(causal.window(4)) == [2, 3, 4]
    assert len(causal) == 3  # nothing older kept


def test_mode_can_be_chosen_per_window():
    buf = RingBuffer((-1, 0, 1), "offline")
    for t in range(3):
        buf.push(t, feats(t))
    assert frames_of(buf.window(1)) == [0, 1, 2]
    assert frames_of(buf.window(1, mode="online")) == [0, 1, 1]
    assert frames_of(buf.window(1, offsets=(-1, 0))) == [0, 1]


def test_gap_in_track_takes_nearest_frame_towards_current():
    buf = RingBuffer((-2, -1, 0, 1, 2), "offline")
    for t in (10, 11, 13, 14):  # missed at 12
        buf.push(t, feats(t))
    assert frames_of(buf.window(11)) == [10, 10, 11, 11, 13]
    assert frames_of(buf.window(13)) == [11, 13, 13, 14, 14]
    with pytest.raises(KeyError, match="current frame 12"):
        buf.window(12)


def test_push_checks_order_names_and_shapes():
    buf = RingBuffer((-1, 0, 1))
    buf.push(3, feats(3))
    with pytest.raises(ValueError, match="must increase"):
        buf.push(3, feats(3))
    with pytest.raises(ValueError, match="outputs"):
        buf.push(4, {"feat": np.zeros((2, 3), np.float32)})
    with pytest.raises(ValueError, match="shape"):
        buf.push(4, {"feat": np.zeros((3, 3), np.float32), "tokens": np.zeros(2, np.int64)})
    with pytest.raises(KeyError, match="no output named"):
        buf.window(3, names=["heatmap"])
    with pytest.raises(KeyError, match="empty"):
        RingBuffer((0,)).window(0)


def test_window_writes_into_given_out_without_allocating():
    buf = RingBuffer((-1, 0, 1))
    for t in range(3):
        buf.push(t, feats(t))
    out = {"feat": np.zeros((3, 2, 3), np.float32)}
    w = buf.window(1, names=["feat"], out=out)
    assert w["feat"] is out["feat"] and frames_of(w) == [0, 1, 2]
    # Scratch windows are reused: the same array object comes back.
    a = buf.window(1)["feat"]
    b = buf.window(2)["feat"]
    assert a is b


def test_track_buffers_free_dead_tracks_and_batch_windows():
    tb = TrackBuffers((-1, 0, 1), "offline", pool_size=2)
    for t in range(4):
        tb.push(1, t, feats(t))
        if t >= 2:
            tb.push(2, t, feats(100 + t))
    batch = tb.window_batch([(1, 2), (2, 3)])
    assert batch["feat"].shape == (2, 3, 2, 3)
    assert [int(v) for v in batch["feat"][0, :, 0, 0]] == [1, 2, 3]
    assert [int(v) for v in batch["feat"][1, :, 0, 0]] == [102, 103, 103]
    assert tb.drop(1) and 1 not in tb and len(tb) == 1
    assert not tb.drop(1)
    with pytest.raises(KeyError, match="no buffer for track 1"):
        tb.window(1, 3)
    # A new track reuses the freed buffer, which starts empty.
    tb.push(3, 10, feats(10))
    assert tb.buffer(3).frames() == [10]
    assert frames_of(tb.window(3, 10)) == [10, 10, 10]
    assert tb.retain([3]) == [2] and tb.track_ids == [3]


def test_memory_is_flat_over_a_long_run_with_track_churn():
    """5000 frames, people entering and leaving: allocations stop growing after warm-up."""
    offs = (-2, -1, 0, 1, 2)
    tb = TrackBuffers(offs, "offline")
    rng = np.random.default_rng(0)
    feat = {"feat": rng.standard_normal((96, 8, 6)).astype(np.float32)}  # ~18 KB per person-frame

    def step(t: int):
        # three overlapping tracks; each lives 40 frames, then a new id replaces it
        alive = {(t + k * 13) // 40 * 3 + k for k in range(3)}
        tb.retain(alive)
        for tid in alive:
            tb.push(tid, t, feat)
        tb.window_batch([(tid, tb.buffer(tid).latest) for tid in sorted(alive)])

    for t in range(200):  # warm-up: buffers, pool, scratch allocated
        step(t)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for t in range(200, 5200):
            step(t)
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # One buffer is 5 x 18 KB; growth must stay far below one buffer per 40 frames (~12 MB).
    assert current - base < 64 * 1024, current - base
    assert peak - base < 512 * 1024, peak - base
    assert len(tb) == 3
