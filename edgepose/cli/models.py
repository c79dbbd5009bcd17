"""``edgepose models``: the zoo with measured costs beside the papers' numbers."""

from __future__ import annotations

import typer
from rich.table import Table

from ._common import console, friendly_errors, print_json


def _pct(ours: float, paper: float | None) -> str:
    if not paper:
        return ""
    return f" ({(ours - paper) / paper * 100:+.0f}%)"


def register(app: typer.Typer) -> None:
    @app.command("models")
    def models(
        names: list[str] = typer.Argument(None, help="Models to show (default: all)."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        variants: bool = typer.Option(False, "--variants", help="Include the *_tiny test variants."),
    ):
        """List the zoo: params, GFLOPs per stage and per steady-state frame, measured vs paper."""
        from ..zoo import create_model, get_spec, list_models
        from ..zoo.costs import measure

        with friendly_errors():
            names = names or list_models(include_variants=variants)
            rows = []
            for name in names:
                spec = get_spec(name)
                cost = measure(create_model(name), name)
                rows.append(
                    {
                        "name": name,
                        "family": spec.family,
                        "params_m": round(cost.params / 1e6, 3),
                        "gflops": {k: round(v.gflops, 4) for k, v in cost.stages.items()},
                        "gflops_mmcv": {k: round(v.gflops_mmcv, 4) for k, v in cost.stages.items()},
                        "stage_params_m": {k: round(v.params / 1e6, 3) for k, v in cost.stages.items()},
                        "gflops_per_frame": round(cost.steady_state_gflops, 4),
                        "gflops_per_frame_mmcv": round(cost.steady_state_gflops_mmcv, 4),
                        "input_size": list(spec.input_size),
                        "keypoints": spec.layout,
                        "frames": len(spec.frame_offsets),
                        "frame_offsets": list(spec.frame_offsets),
                        "stages": list(spec.stages),
                        "codec": spec.codec,
                        "paper": {
                            "params_m": spec.paper.params_m,
                            "gflops": spec.paper.gflops,
                            "accuracy": spec.paper.accuracy,
                            "note": spec.paper.note,
                        },
                    }
                )
        if as_json:
            print_json(rows)
            return
        table = Table(
            title="edgepose zoo: measured at batch 1 (GFLOPs = GMACs). torch = every conv/linear/matmul; "
            "mmcv = the papers' counter convention. [paper]"
        )
        for col in ("model", "params M [paper]", "GFLOPs per stage: torch / mmcv [paper]",
                    "GFLOPs/frame torch / mmcv [paper]", "input", "kpts", "frames", "paper accuracy"):
            table.add_column(col)
        for r in rows:
            p = r["paper"]
            stage_txt = "\n".join(
                f"{k}: {v:.3f} / {r['gflops_mmcv'][k]:.3f}"
                + (f" [{p['gflops'][k]}]{_pct(r['gflops_mmcv'][k], p['gflops'][k])}" if k in p["gflops"] else "")
                for k, v in r["gflops"].items()
            )
            total_paper = p["gflops"].get("total")
            per_frame = f"{r['gflops_per_frame']:.3f} / {r['gflops_per_frame_mmcv']:.3f}" + (
                f" [{total_paper}]{_pct(r['gflops_per_frame_mmcv'], total_paper)}" if total_paper else ""
            )
            params = f"{r['params_m']:.2f}" + (
                f" [{p['params_m']}]{_pct(r['params_m'], p['params_m'])}" if p["params_m"] else ""
            )
            table.add_row(
                r["name"], params, stage_txt, per_frame, "x".join(map(str, r["input_size"])), r["keypoints"],
                str(r["frames"]), p["accuracy"],
            )
        console.print(table)
        notes = [f"{r['name']}: {r['paper']['note']}" for r in rows if r["paper"]["note"]]
        for n in notes:
            console.print(f"[dim]{n}[/]")
