#!/usr/bin/env python3
"""Poses for every person in a video file: an exported bundle, a detector, the temporal pipeline.

    edgepose export dsta_mnv2 --weights ckpt.pt --out bundles/dsta      # once, on a workstation
    python examples/video_file.py street.mp4 --bundle bundles/dsta --out street_poses.mp4 --json poses.jsonl

Offline mode: a file can look ahead, so each frame uses its full window (-T..+T) and comes out
T frames later; the last frames come out when the file ends. Needs numpy, OpenCV and the
bundle's runtime only (no torch).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from edgepose.sdk import GivenBoxes, VideoPipeline


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("video", help="input video file")
    ap.add_argument("--bundle", type=Path, required=True, help="bundle directory (edgepose export --out)")
    ap.add_argument("--out", type=Path, help="annotated video (.mp4 or .avi)")
    ap.add_argument("--json", type=Path, help="poses as JSON lines")
    ap.add_argument("--boxes", type=Path, help="person boxes as JSON lines (frame, box) instead of HOG")
    ap.add_argument("--detect-every", type=int, default=1, help="HOG every N frames, follow poses in between")
    ap.add_argument("--max-frames", type=int)
    args = ap.parse_args(argv)

    detector = GivenBoxes.from_jsonl(args.boxes) if args.boxes else "hog"
    pipe = VideoPipeline(str(args.bundle), detector=detector, mode="offline", detect_every=args.detect_every)
    frames, seen = 0, Counter()
    for res in pipe.run(
        args.video,
        video_out=args.out,
        jsonl_out=args.json,
        draw=args.out is not None,
        max_frames=args.max_frames,
    ):
        frames += 1
        seen.update(p.track_id for p in res.poses)
    print(
        f"{frames} frames, {sum(seen.values())} poses, {len(seen)} tracks "
        f"(longest: {seen.most_common(1)[0][1] if seen else 0} frames), {pipe.fps.fps:.1f} fps"
    )
    for stage, ms in pipe.timer.ms.items():
        print(f"  {stage:15s} {ms:7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
