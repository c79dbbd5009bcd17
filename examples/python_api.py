#!/usr/bin/env python3
"""The Python API end to end: a zoo model -> verified bundle -> poses on one image -> a tracked video.

    python examples/python_api.py --out /tmp/edgepose-api

Uses the shipped demo weights (trained on edgepose's synthetic videos only) when this install
has them, else random weights (the calls are the same; the poses are then meaningless), and a
synthetic labelled video as input, so it runs anywhere with nothing downloaded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

import edgepose
from edgepose.data.synthetic import SynthConfig, SyntheticVideo
from edgepose.sdk import GivenBoxes


def demo_model(name: str):
    from edgepose.zoo.pretrained import list_pretrained, load_pretrained

    if name in list_pretrained():
        return load_pretrained(name)
    print(f"note: no shipped weights for {name}; using random weights")
    return edgepose.create_model(name).eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("edgepose-api"))
    ap.add_argument("--model", default="dsta_mnv2")
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args(argv)

    # 1. export: one graph per stage + manifest.json, checked against PyTorch
    result = edgepose.export(
        demo_model(args.model), out=args.out / "bundle", format="onnx", onnx_exporter="torchscript"
    )
    print(f"bundle {result.out}: verified {result.bundles[0].check.passed}")

    # a labelled synthetic clip (RGB) -> BGR frames and each frame's person boxes (x1, y1, x2, y2)
    video = SyntheticVideo(SynthConfig.preset("easy", width=480, height=360, frames=args.frames), seed=11)
    frames, boxes = [], []
    for f in video:
        frames.append(cv2.cvtColor(f.image, cv2.COLOR_RGB2BGR))
        boxes.append(
            np.array(
                [[x, y, x + w, y + h] for x, y, w, h in (p.bbox for p in f.persons)], np.float32
            ).reshape(-1, 4)
        )

    # 2. one image: PoseEstimator runs the bundle's stages on person crops (a temporal model sees a
    #    one-frame clip); keypoints come back in image pixels
    est = edgepose.PoseEstimator(edgepose.load(args.out / "bundle"))
    poses = est(frames[0], boxes[0])
    for p in poses:
        print(
            f"person box {np.round(p.box).astype(int).tolist()}: "
            f"{int((p.scores > 0.3).sum())}/{len(p.scores)} joints above 0.3"
        )

    # 3. a video: tracker + per-track ring buffers (frame stage once per person-frame) + smoothing
    pipe = edgepose.VideoPipeline(est, detector=GivenBoxes(boxes), mode="offline")
    n = 0
    for res in pipe.run(frames, video_out=args.out / "poses.mp4", jsonl_out=args.out / "poses.jsonl"):
        n += 1
        print(f"frame {res.index}: tracks {[p.track_id for p in res.poses]}")
    print(f"{n} frames -> {args.out / 'poses.mp4'}, {args.out / 'poses.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
