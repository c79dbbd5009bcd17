"""The benchmark tables by name, and the one entry point the CLI and ``benchmarks/`` scripts share."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from .settings import Settings, full, quick

# name -> module with run(settings) -> Table (imported lazily: they pull in the runtimes)
TABLES: dict[str, str] = {
    "ring": "edgepose.bench.ring",
    "persons": "edgepose.bench.persons",
    "backends": "edgepose.bench.backends",
    "blazepose": "edgepose.bench.blazepose",
}

RESULTS_DIR = Path("benchmarks") / "results"


def parse_names(names: str | Sequence[str]) -> list[str]:
    items = [n.strip() for n in (names.split(",") if isinstance(names, str) else names) if n.strip()]
    if not items or items == ["all"]:
        return list(TABLES)
    bad = [n for n in items if n not in TABLES]
    if bad:
        raise ValueError(f"unknown benchmark table(s) {bad}; tables: {', '.join(TABLES)} (or 'all')")
    return items


def run_table(name: str, settings: Settings):
    return importlib.import_module(TABLES[name]).run(settings)


def script_main(name: str, argv: Sequence[str] | None = None) -> int:
    """``python benchmarks/<table>.py``: the full version of one table, printed and written to results/."""
    from rich.console import Console

    p = argparse.ArgumentParser(description=importlib.import_module(TABLES[name]).__doc__.splitlines()[0])
    p.add_argument("--models", help="comma list of zoo models (default: the four full-size models)")
    p.add_argument("--persons", help="comma list of persons per frame (persons table)")
    p.add_argument("--rounds", type=int, help="interleaved rounds per measurement")
    p.add_argument("--clip-frames", type=int, help="frames per timed clip")
    p.add_argument("--threads", type=int, help="runtime threads (default: all CPUs)")
    p.add_argument("--quick", action="store_true", help="the quick settings of `edgepose bench`")
    p.add_argument("--out", default=str(RESULTS_DIR), help="where to write <table>.md/.json/.png")
    args = p.parse_args(argv)
    console = Console(width=None if sys.stdout.isatty() else 200)  # logs keep the tables' width
    kw: dict = {"progress": lambda m: console.print(f"[dim]{m}[/]")}
    if args.models:
        kw["models"] = tuple(m.strip() for m in args.models.split(",") if m.strip())
    if args.persons:
        kw["persons"] = tuple(int(v) for v in args.persons.split(","))
    if args.rounds:
        kw["rounds"] = args.rounds
    if args.clip_frames:
        kw["clip_frames"] = args.clip_frames
    if args.threads:
        kw["threads"] = args.threads
    settings = quick(**kw) if args.quick else full(**kw)
    table = run_table(name, settings)
    table.print(console)
    for path in table.write(args.out):
        console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(script_main(sys.argv[1]))
