"""``edgepose models``: the zoo with measured costs beside the papers' numbers.

The rows come from ``_catalog`` (measured once per zoo code and cached), so a warm call answers in
a fraction of a second without torch. The table fits 80 columns; a terminal of 120 or more also
gets the per-stage GFLOPs and the papers' accuracy (``--json`` always has everything).
"""

from __future__ import annotations

import typer

from ._common import console, err_console, friendly_errors, new_table, print_json

WIDE = 120  # columns from which the per-stage table is shown


def _pct(ours: float, paper: float | None) -> str:
    if not paper:
        return ""
    return f" ({(ours - paper) / paper * 100:+.0f}%)"


def _shipped(r: dict) -> str:
    p = r.get("pretrained")
    if not p:
        return "-"
    size = "x".join(map(str, p.get("input_size") or []))
    # trained_on names the data first ("real footage pseudo-labelled ...", "edgepose synthetic benchmark
    # only ..."); later clauses name commands, whose recipes (--recipe dsta_synthetic) say nothing of it
    data = (p.get("trained_on") or "").split(";")[0].split("(")[0].lower()
    return size + (" synthetic" if "synthetic" in data else " real" if "real" in data else "")


def _params(r: dict) -> str:
    p = r["paper"]["params_m"]
    return f"{r['params_m']:.2f}" + (f" [{p}]" if p else "")


def _per_frame(r: dict, pct: bool) -> str:
    total = r["paper"]["gflops"].get("total")
    return f"{r['gflops_per_frame_mmcv']:.3f}" + (
        f" [{total}]" + (_pct(r["gflops_per_frame_mmcv"], total) if pct else "") if total else ""
    )


def narrow_table(rows: list[dict]):
    table = new_table("edgepose zoo at batch 1 (GFLOPs = GMACs, the papers' mmcv count) [paper]")
    for col in ("model", "params M", "GFLOPs", "input", "T", "shipped weights"):
        table.add_column(col, no_wrap=True)
    for r in rows:
        table.add_row(
            r["name"],
            _params(r),
            _per_frame(r, pct=False),
            "x".join(map(str, r["input_size"])),
            str(r["frames"]),
            _shipped(r),
        )
    return table


def wide_table(rows: list[dict]):
    table = new_table(
        "edgepose zoo: measured at batch 1 (GFLOPs = GMACs). torch = every conv/linear/matmul; "
        "mmcv = the papers' counter convention. [paper]"
    )
    for col in (
        "model",
        "params M [paper]",
        "GFLOPs per stage: torch / mmcv [paper]",
        "GFLOPs/frame torch / mmcv [paper]",
        "input",
        "kpts",
        "frames",
        "shipped weights",
        "paper accuracy",
    ):
        table.add_column(col)
    for r in rows:
        p = r["paper"]
        stage_txt = "\n".join(
            f"{k}: {v:.3f} / {r['gflops_mmcv'][k]:.3f}"
            + (f" [{p['gflops'][k]}]{_pct(r['gflops_mmcv'][k], p['gflops'][k])}" if k in p["gflops"] else "")
            for k, v in r["gflops"].items()
        )
        per_frame = f"{r['gflops_per_frame']:.3f} / {_per_frame(r, pct=True)}"
        params = _params(r) + (_pct(r["params_m"], p["params_m"]) if p["params_m"] else "")
        table.add_row(
            r["name"],
            params,
            stage_txt,
            per_frame,
            "x".join(map(str, r["input_size"])),
            r["keypoints"],
            str(r["frames"]),
            _shipped(r),
            p["accuracy"],
        )
    return table


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models(
        names: list[str] = typer.Argument(None, help="Models to show (default: all)."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON (every field, per-stage costs too)."),
        variants: bool = typer.Option(False, "--variants", help="Include the *_tiny test variants."),
        refresh: bool = typer.Option(False, "--refresh", help="Measure again instead of using the cache."),
    ):
        """List the zoo: params, GFLOPs per stage and per steady-state frame, measured vs paper."""
        from ._catalog import model_rows

        say = None if as_json else (lambda m: err_console.print(f"[dim]{m}[/]"))
        with friendly_errors():
            rows = model_rows(names or None, variants=variants, refresh=refresh, progress=say)
        if as_json:
            print_json(rows)
            return
        wide = console.width >= WIDE
        console.print(wide_table(rows) if wide else narrow_table(rows))
        for r in rows if wide else ():
            if r["paper"]["note"]:
                console.print(f"[dim]{r['name']}: {r['paper']['note']}[/]")
        if any(r.get("pretrained") for r in rows):
            console.print(
                "[dim]shipped weights: `--weights pretrained` (edgepose.load_pretrained) builds the model at "
                "that crop size[/]"
            )
        if not wide:
            console.print(
                f"[dim]GFLOPs per steady-state frame (the ring buffer's), T frames per window; per "
                f"stage, keypoint layouts, the papers' accuracy and notes: a terminal of {WIDE}+ "
                "columns, or --json[/]"
            )
