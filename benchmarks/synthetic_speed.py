#!/usr/bin/env python
"""How fast the synthetic labelled video renders, per preset and size (one process, one core's worth).

    python benchmarks/synthetic_speed.py              # 40 frames per row, 3 rounds
    python benchmarks/synthetic_speed.py --frames 100 --rounds 5

Prints a markdown table: frames/s (median of the rounds), ms per frame, persons per frame. This is
the timing that tests/test_synthetic.py used to print without asserting; the test keeps what the
renderer must do (frames of the configured size, with people in them), the speed lives here.
"""

from __future__ import annotations

import argparse
import statistics
import time

from edgepose.data.synthetic import PRESETS, SynthConfig, SyntheticVideo

ROWS = (
    ("default", None, 256, 192),
    ("default", None, 640, 480),
    ("clean", "clean", 256, 192),
    ("easy", "easy", 256, 192),
)


def measure(preset: str | None, width: int, height: int, frames: int, seed: int) -> tuple[float, int, int]:
    base = SynthConfig.preset(preset) if preset else SynthConfig()
    cfg = base.replace(width=width, height=height, frames=frames)
    t0 = time.perf_counter()
    n = persons = 0
    for fr in SyntheticVideo(cfg, seed=seed):
        n += 1
        persons += len(fr.persons)
    return time.perf_counter() - t0, n, persons


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    assert all(p is None or p in PRESETS for _, p, _, _ in ROWS)
    print(f"### Synthetic video rendering speed ({args.frames} frames, median of {args.rounds} rounds)\n")
    print("| preset | size | frames/s | ms/frame | persons/frame |")
    print("|---|---|---|---|---|")
    for label, preset, w, h in ROWS:
        runs = [measure(preset, w, h, args.frames, seed=4 + r) for r in range(args.rounds)]
        secs = statistics.median(dt / n for dt, n, _ in runs)
        per = sum(p for _, _, p in runs) / sum(n for _, n, _ in runs)
        print(f"| {label} | {w}x{h} | {1 / secs:.1f} | {1e3 * secs:.1f} | {per:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
