"""``edgepose eval``: score weights on a dataset with ground-truth boxes, in the papers' table layout."""

from __future__ import annotations

import io
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ._common import console, err_console, friendly_errors, print_json


def build_for_weights(name: str, weights: str, frames: int | None = None):
    """The model named ``name`` with ``weights`` loaded strictly; an edgepose checkpoint's own
    config (e.g. frames=5) is applied first, and a single-frame stage's checkpoint gives that part."""
    from ..zoo import create_model, get_spec, load_weights
    from ..zoo.checkpoints import FORMAT, check_model_name, read_checkpoint

    spec = get_spec(name)
    obj = read_checkpoint(weights)
    check_model_name(obj, name, f"checkpoint {str(weights)!r}")
    overrides = {}
    if obj.get("format") == FORMAT:
        overrides = {k: v for k, v in (obj.get("config") or {}).items() if k in spec.config and v != spec.config[k]}
    if frames is not None:
        if "frames" not in spec.config:
            raise ValueError(f"{name} is not a temporal model; --frames does not apply")
        overrides["frames"] = frames
    model = create_model(name, **overrides)
    if obj.get("format") == FORMAT and (obj.get("meta") or {}).get("single_frame"):
        model = model.single_frame_model()  # a single-frame stage's run (TAR-ViTPose's ViTPose)
    report = load_weights(model, obj, label=f"checkpoint {str(weights)!r}")
    return model, report


def metrics_table(fmt: str, name: str, metrics: dict) -> Table:
    from ..training.validate import COCO_COLUMNS, POSETRACK_COLUMNS

    columns = [title for _, title in POSETRACK_COLUMNS] if fmt == "posetrack" else list(COCO_COLUMNS)
    table = Table(title=f"{'PoseTrack mAP (PCKh@0.5)' if fmt == 'posetrack' else 'COCO keypoint AP (OKS)'}, GT boxes")
    table.add_column("Method")
    for c in columns:
        table.add_column(c, justify="right")
    values = [metrics["mAP" if c == "Mean" else c] for c in columns]
    table.add_row(name, *("-" if v is None or math.isnan(v) else f"{v:.1f}" for v in values))
    return table


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def eval_(
        model_name: str = typer.Argument(..., metavar="MODEL", help="Zoo model the weights belong to."),
        weights: str = typer.Option(..., "--weights", help="Checkpoint (ours, e.g. OUT/best.pt, or official)."),
        data: Path = typer.Option(..., "--data", help="Dataset directory (PoseTrack and/or COCO form)."),
        split: str = typer.Option("val", "--split", help="train | val."),
        data_format: str = typer.Option("auto", "--format", help="auto | posetrack | coco."),
        flip_test: bool = typer.Option(False, "--flip-test/--no-flip-test", help="Average with the mirrored crop."),
        frames: int = typer.Option(None, "--frames", help="Window length for temporal models (3 or 5)."),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ):
        """Evaluate MODEL with WEIGHTS: PoseTrack (Head Sho Elb Wri Hip Knee Ank Mean) or COCO (AP ... AR)."""
        import dataclasses

        from ..training import datasets as D
        from ..training.trainer import resolve_device
        from ..training.validate import evaluate
        from ..zoo import get_spec

        with friendly_errors():
            if split not in D.SPLITS:
                raise ValueError(f"--split must be one of {D.SPLITS}, got {split!r}")
            dev = resolve_device(device)
            model, report = build_for_weights(model_name, weights, frames)
            spec = get_spec(model_name)
            if tuple(spec.frame_offsets) != tuple(model.frame_offsets):
                spec = dataclasses.replace(spec, frame_offsets=tuple(model.frame_offsets))
            part = D.load_split(data, split, spec, data_format)
            dataset = D.topdown_dataset(spec, part, train=False)
            metrics = evaluate(model, spec, part, dataset, batch_size=batch_size, device=dev, flip=flip_test)
        result = {"model": model_name, "weights": weights, "data": str(data), "split": split, "format": part.format,
                  "crops": len(dataset), "flip_test": flip_test, "metrics": metrics}
        if as_json:
            print_json(result)
            return
        err_console.print(f"[dim]{model_name}: {report.loaded} tensors from {weights} ({report.source}); "
                          f"{len(dataset)} crops of {part.path}[/]")
        console.print(metrics_table(part.format, model_name, metrics))


def table_text(fmt: str, name: str, metrics: dict) -> str:
    """The table as plain text (for reports and tests)."""
    buf = Console(file=io.StringIO(), width=120, color_system=None)
    buf.print(metrics_table(fmt, name, metrics))
    return buf.file.getvalue()
