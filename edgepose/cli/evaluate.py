"""``edgepose eval``: score weights on a dataset with ground-truth boxes, in the papers' table layout."""

from __future__ import annotations

import dataclasses
import io
import math
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from ._common import console, err_console, friendly_errors, new_table, print_json
from ._progress import step_progress


class _Counted:
    """A dataset that reports every ``every`` items read (evaluation reads each item once, in order)."""

    def __init__(self, dataset, say, every: int = 32):
        self._dataset, self._say, self._every = dataset, say, every

    def __len__(self) -> int:
        return len(self._dataset)

    def __getitem__(self, i):
        n = len(self._dataset)
        if self._say is not None and ((i + 1) % self._every == 0 or i + 1 == n):
            self._say(f"{i + 1}/{n} crops")
        return self._dataset[i]

    def __getattr__(self, name):
        return getattr(self._dataset, name)


def build_for_weights(name: str, weights: str, frames: int | None = None):
    """The model named ``name`` with ``weights`` loaded strictly; an edgepose checkpoint's own
    config (e.g. frames=5) is applied first, and a single-frame stage's checkpoint gives that part.
    ``weights="pretrained"``: the shipped weights, at the crop size and window they were trained for."""
    from ..zoo import create_model, get_spec, load_weights  # lazy: torch
    from ..zoo.checkpoints import FORMAT, LoadReport, check_model_name, read_checkpoint

    if str(weights) == "pretrained":
        from ..export.source import adopt_pretrained  # lazy: torch

        model, _ = adopt_pretrained(name, weights, frames)
        return model, LoadReport("edgepose", name, len(model.state_dict()), meta=dict(model.pretrained))
    spec = get_spec(name)
    obj = read_checkpoint(weights)
    check_model_name(obj, name, f"checkpoint {str(weights)!r}")
    overrides = {}
    if obj.get("format") == FORMAT:
        overrides = {
            k: v for k, v in (obj.get("config") or {}).items() if k in spec.config and v != spec.config[k]
        }
    if frames is not None:
        if "frames" not in spec.config:
            raise ValueError(f"{name} is not a temporal model; --frames does not apply")
        overrides["frames"] = frames
    model = create_model(name, **overrides)
    if obj.get("format") == FORMAT and (obj.get("meta") or {}).get("single_frame"):
        model = model.single_frame_model()  # a single-frame stage's run (TAR-ViTPose's ViTPose)
    report = load_weights(model, obj, label=f"checkpoint {str(weights)!r}")
    return model, report


def check_paths(weights: str | None = None, data: Path | str | None = None, video_ok: bool = False) -> None:
    """One line for a missing checkpoint or dataset, before any heavy import (seconds of torch).
    ``video_ok``: ``--data video:PATH[:START-STOP]`` (unlabelled footage) is accepted and checked."""
    if weights is not None and str(weights) != "pretrained" and not Path(weights).is_file():
        raise FileNotFoundError(
            f"--weights {str(weights)!r} does not exist (a checkpoint file, or 'pretrained')"
        )
    if video_ok and data is not None and str(data).startswith("video:"):
        from ..quantization.video_calibration import parse_video_data

        parse_video_data(str(data))
        return
    if data is not None and str(data) != "synthetic" and not Path(data).exists():
        raise FileNotFoundError(f"--data {str(data)!r} does not exist (a dataset directory)")


def metrics_table(fmt: str, name: str, metrics: dict) -> Table:
    from ..training.validate import COCO_COLUMNS, POSETRACK_COLUMNS  # lazy: torch

    columns = [title for _, title in POSETRACK_COLUMNS] if fmt == "posetrack" else list(COCO_COLUMNS)
    what = "PoseTrack mAP (PCKh@0.5)" if fmt == "posetrack" else "COCO keypoint AP (OKS)"
    table = new_table(f"{what}, GT boxes")
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
        weights: str = typer.Option(
            ...,
            "--weights",
            help="Checkpoint (ours, e.g. OUT/best.pt, or official), or 'pretrained' for the shipped weights.",
        ),
        data: Path = typer.Option(..., "--data", help="Dataset directory (PoseTrack and/or COCO form)."),
        split: str = typer.Option("val", "--split", help="train | val."),
        data_format: str = typer.Option("auto", "--format", help="auto | posetrack | coco."),
        flip_test: bool = typer.Option(
            False, "--flip-test/--no-flip-test", help="Average with the mirrored crop."
        ),
        frames: int = typer.Option(None, "--frames", help="Window length for temporal models (3 or 5)."),
        batch_size: int = typer.Option(32, "--batch-size", min=1),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        collapse_window: bool = typer.Option(
            False,
            "--collapse-window/--no-collapse-window",
            help="Every slot of a temporal model's window holds the current frame (a collapsed twin "
            "trained with train --collapse-window, or what a window model loses without its neighbours).",
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON."),
    ):
        """Evaluate MODEL with WEIGHTS: PoseTrack (Head Sho Elb Wri Hip Knee Ank Mean) or COCO (AP ... AR)."""
        with friendly_errors():
            check_paths(weights=weights, data=data)  # before the imports: a typo answers at once
            from ..training import datasets as D  # lazy: torch
            from ..training.trainer import resolve_device
            from ..training.validate import evaluate, metric_format
            from ..zoo import get_spec

            if split not in D.SPLITS:
                raise ValueError(f"--split must be one of {D.SPLITS}, got {split!r}")
            dev = resolve_device(device)
            model, report = build_for_weights(model_name, weights, frames)
            spec = get_spec(model_name)
            # the crops and window the weights were built for (a checkpoint's or the shipped build's config)
            if (tuple(spec.frame_offsets), tuple(spec.input_size)) != (
                tuple(model.frame_offsets),
                tuple(model.input_size),
            ):
                spec = dataclasses.replace(
                    spec, frame_offsets=tuple(model.frame_offsets), input_size=tuple(model.input_size)
                )
            if collapse_window and len(spec.frame_offsets) < 2:
                raise ValueError(f"{model_name} sees one frame; --collapse-window applies to temporal models")
            if spec.input_kind == "frame":  # whole-frame models (PAVE-Net): predicted people, no GT boxes
                if collapse_window:
                    raise ValueError(
                        f"{model_name} is a whole-frame model: benchmarks/pave_train_real.py scores its "
                        "collapsed twin; eval --collapse-window takes crop models"
                    )
                from ..training.validate_whole_frame import eval_command

                return eval_command(
                    model_name,
                    weights,
                    model,
                    report,
                    spec,
                    data,
                    split,
                    data_format,
                    batch_size,
                    dev,
                    as_json,
                )
            part = D.load_split(data, split, spec, data_format)
            dataset = D.topdown_dataset(spec, part, train=False, collapse_window=collapse_window)
            with step_progress("eval", enabled=not as_json) as say:
                metrics = evaluate(
                    model,
                    spec,
                    part,
                    _Counted(dataset, say),
                    batch_size=batch_size,
                    device=dev,
                    flip=flip_test,
                )
        result = {
            "model": model_name,
            "weights": weights,
            "data": str(data),
            "split": split,
            "format": part.format,
            "crops": len(dataset),
            "flip_test": flip_test,
            "collapse_window": collapse_window,
            "metrics": metrics,
        }
        if as_json:
            print_json(result)
            return
        err_console.print(
            f"[dim]{model_name}: {report.loaded} tensors from {weights} ({report.source}); "
            f"{len(dataset)} crops of {part.path}[/]"
        )
        console.print(
            metrics_table(metric_format(part.format, spec.layout, part.records), model_name, metrics)
        )


def table_text(fmt: str, name: str, metrics: dict) -> str:
    """The table as plain text (for reports and tests)."""
    buf = Console(file=io.StringIO(), width=120, color_system=None)
    buf.print(metrics_table(fmt, name, metrics))
    return buf.file.getvalue()
