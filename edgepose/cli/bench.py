"""``edgepose bench``: the quick version of the SDK benchmarks (full versions: ``benchmarks/*.py``)."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, err_console, friendly_errors, print_json
from .run import json_stdout


def register(app: typer.Typer) -> None:
    @app.command("bench")
    def bench_cmd(
        tables: str = typer.Option(
            "all", "--tables", help="Comma list of ring, persons, backends, blazepose (or all)."
        ),
        models: str = typer.Option(
            None,
            "--models",
            help="Comma list of zoo models (quick default: dsta_mnv2; --full: the four full-size models).",
        ),
        formats: str = typer.Option(
            None,
            "--formats",
            help="Comma list of bundle formats for the backends and "
            "BlazePose tables (default: onnx,openvino,tflite).",
        ),
        full: bool = typer.Option(False, "--full", help="The full settings of benchmarks/*.py (minutes)."),
        rounds: int = typer.Option(None, "--rounds", help="Interleaved rounds per measurement."),
        threads: int = typer.Option(None, "--threads", help="Runtime threads (default: all CPUs)."),
        out: Path = typer.Option(None, "--out", help="Also write <table>.md/.json/.png here."),
        as_json: bool = typer.Option(False, "--json", help="Print the tables as JSON."),
    ):
        """Quick SDK benchmarks: ring buffer vs recompute, persons, runtimes x precisions, BlazePose peer.

        Ratios are measured within one run (interleaved rounds). Bundles are exported once into the cache
        (~/.cache/edgepose) and reused; the full versions are benchmarks/*.py (or --full).
        """
        with friendly_errors(), json_stdout(as_json):
            from ..bench.settings import full as full_settings
            from ..bench.settings import quick
            from ..bench.tables import parse_names, run_table

            names = parse_names(tables)
            kw: dict = {"progress": None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]"))}
            if models:
                kw["models"] = tuple(m.strip() for m in models.split(",") if m.strip())
                from ..zoo import get_spec

                for m in kw["models"]:
                    get_spec(m)  # unknown names fail here, before anything runs
            if formats:
                kw["formats"] = tuple(f.strip() for f in formats.split(",") if f.strip())
                from ..export.formats import get_format

                for f in kw["formats"]:
                    get_format(f)
            if rounds:
                kw["rounds"] = rounds
            if threads:
                kw["threads"] = threads
            settings = full_settings(**kw) if full else quick(**kw)
            results = []
            for name in names:
                table = run_table(name, settings)
                results.append(table)
                if not as_json:
                    table.print(console)
                if out is not None:
                    table.write(out)
        if as_json:
            print_json([t.to_dict() for t in results])
        elif out is not None:
            console.print(f"[dim]wrote {len(results)} tables to {out}[/]")
