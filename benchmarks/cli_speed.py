#!/usr/bin/env python
"""How fast the CLI answers what a newcomer types first: --help, --version, models, argument errors.

    python benchmarks/cli_speed.py            # -> benchmarks/results/cli_speed.{md,json}
    python benchmarks/cli_speed.py --cold     # also `models` with an empty cache (measures the zoo, ~30 s)

Each command runs in a fresh process (``python -m edgepose.cli``), ``--repeat`` times, wall clock
from spawn to exit, so the numbers include Python start-up and every import the command pays for.
A benchmark, not a test: a shared machine's load moves these numbers, so nothing here asserts them.
The target (issue 18) is well under 1 s for each row but the cold ``models``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from edgepose.bench.report import Table

RESULTS = Path(__file__).resolve().parent / "results"

# label -> arguments after `edgepose`, and the exit code that answer should have
COMMANDS: dict[str, tuple[list[str], int]] = {
    "--help": (["--help"], 0),
    "--version": (["--version"], 0),
    "predict --help": (["predict", "--help"], 0),
    "models (cached)": (["models"], 0),
    "models --json (cached)": (["models", "--json"], 0),
    "models with an unknown name": (["models", "dsta"], 2),
    "export: missing checkpoint": (["export", "dsta_mnv2", "--weights", "nope.pt", "--out", "x"], 2),
    "eval: missing checkpoint": (["eval", "dsta_mnv2", "--weights", "nope.pt", "--data", "."], 2),
    "predict: missing image": (["predict", "nope.jpg"], 2),
    "run: bad --mode": (["run", "nope.mp4", "--bundle", "b", "--mode", "sideways"], 2),
}


def time_once(args: list[str], env: dict) -> tuple[float, int]:
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "edgepose.cli", *args], env=env, capture_output=True, text=True)
    return time.perf_counter() - t, p.returncode


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cold", action="store_true", help="also time `models` with an empty cache")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    env = {**os.environ, "COLUMNS": "80"}
    t0 = time.perf_counter()
    table = Table(
        "cli_speed",
        "edgepose CLI: seconds from spawn to exit (fresh process each run)",
        ["command", "median s", "min s", "max s", "exit", "expected exit"],
        settings={"repeat": args.repeat, "python": sys.version.split()[0]},
        extra={"text_columns": ["command"]},
    )
    with tempfile.TemporaryDirectory() as cold_cache:
        if args.cold:
            cold = {**env, "EDGEPOSE_CACHE": cold_cache}
            s, rc = time_once(["models"], cold)
            table.add("models (empty cache: measures the zoo)", s, s, s, rc, 0)
        subprocess.run([sys.executable, "-m", "edgepose.cli", "models"], env=env, capture_output=True)  # warm
        for label, (cmd, expected) in COMMANDS.items():
            times, codes = [], set()
            for _ in range(args.repeat):
                s, rc = time_once(cmd, env)
                times.append(s)
                codes.add(rc)
            table.add(
                label,
                statistics.median(times),
                min(times),
                max(times),
                ",".join(map(str, sorted(codes))),
                expected,
            )
    table.seconds = time.perf_counter() - t0
    table.notes.append(
        "Before issue 18 on the same machine: --help 1.15 s, --version failed ('Missing "
        "command'), models 27.4 s (every call measured the zoo with torch), a missing checkpoint "
        "~1-11 s."
    )
    if any(r[4] != str(r[5]) for r in table.rows):
        table.notes.append("An exit code differs from the expected one: see the rows.")
    from rich.console import Console

    table.print(Console())
    for p in table.write(args.out, plot=False):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
