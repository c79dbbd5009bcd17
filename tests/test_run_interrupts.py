"""Leftovers of issue 13 in ``edgepose run``: SIGTERM is handled like Ctrl-C (the video is finalised
with the frames written, no ``.partial`` file stays), lost frames are named in the human summary, and
``export --batch`` has an upper bound with a clear message."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import cv2
import pytest

pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")

from typer.testing import CliRunner

from edgepose.bench.workload import make_clip
from edgepose.cli import app
from edgepose.export.formats import MAX_STATIC_BATCH, ExportError, parse_batch


def test_sigterm_finalises_the_video_like_ctrl_c(tiny_bundle, tmp_path):
    clip = make_clip(1, 4, size=(240, 320))
    src = tmp_path / "long.avi"  # long enough that the run is still going when the signal comes
    w = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"MJPG"), 25, (320, 240))
    for i in range(3000):
        w.write(clip.frames[i % len(clip.frames)])
    w.release()
    boxes = tmp_path / "boxes.jsonl"
    rows = (f'{{"frame": {i}, "box": {clip.boxes[i % 4][0].tolist()}}}\n' for i in range(3000))
    boxes.write_text("".join(rows))
    out = tmp_path / "o.mp4"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgepose.cli",
            "run",
            str(src),
            "--bundle",
            str(tiny_bundle),
            "--detector",
            f"boxes:{boxes}",
            "--out",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    partial = tmp_path / ".o.partial.mp4"
    deadline = time.monotonic() + 120
    while not partial.exists() and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert p.poll() is None, p.communicate()
    time.sleep(1.0)  # a few more frames
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode != 0 and p.returncode != -signal.SIGTERM, err  # unwound, not killed
    assert not partial.exists()
    cap = cv2.VideoCapture(str(out))
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    assert 0 < n < 3000


def test_lost_frames_are_in_the_human_summary(tiny_bundle, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    clip = make_clip(1, 4, size=(120, 160))
    for i, f in enumerate(clip.frames):
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), f)
    (folder / "002.jpg").write_bytes(b"not a jpeg")  # an undecodable frame
    res = CliRunner().invoke(app, ["run", str(folder), "--bundle", str(tiny_bundle), "--detector", "hog"])
    assert res.exit_code == 0, res.output
    assert "lost frames: 1 frames" in " ".join(res.stdout.split())


def test_export_batch_has_an_upper_bound():
    assert parse_batch(str(MAX_STATIC_BATCH)) == MAX_STATIC_BATCH
    with pytest.raises(ExportError, match="--batch 100000 is above 256.*--batch dynamic"):
        parse_batch("100000")
    res = CliRunner().invoke(app, ["export", "dsta_mnv2_tiny", "--batch", "100000", "--out", "never"])
    assert res.exit_code == 2 and "above 256" in res.output
    assert not os.path.exists("never")
