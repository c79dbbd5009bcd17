"""``edgepose data``: datasets; ``data synth`` writes the labelled synthetic video benchmark."""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, err_console, friendly_errors, print_json


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"size must look like 512x384 (width x height), got {text!r}") from None
    if w < 32 or h < 32:
        raise typer.BadParameter(f"size must be at least 32x32, got {text!r}")
    return w, h


def register(app: typer.Typer) -> None:
    data = typer.Typer(help="Datasets: write the synthetic labelled video benchmark.", no_args_is_help=True)
    app.add_typer(data, name="data")

    @data.command("synth")
    def synth(
        out: Path = typer.Option(..., "--out", "-o", help="Dataset directory to create."),
        videos: int = typer.Option(8, "--videos", "-n", min=1, help="Number of videos."),
        frames: int = typer.Option(100, "--frames", "-f", min=1, max=10000, help="Frames per video."),
        size: str = typer.Option("512x384", "--size", help="Frame size WxH."),
        seed: int = typer.Option(0, "--seed", help="Seed: the same seed writes the same dataset."),
        split_val: float = typer.Option(
            0.25, "--split-val", min=0.0, max=0.99, help="Share of videos in val."
        ),
        layout: str = typer.Option(
            "both", "--layout", help="posetrack17 | coco17 | both (annotation files written)."
        ),
        preset: str = typer.Option("default", "--preset", help="clean | easy | moderate | default | hard."),
        fps: float = typer.Option(25.0, "--fps", min=1.0, help="Frame rate the motion is simulated at."),
        max_people: int = typer.Option(
            None, "--max-people", min=0, help="Most people on screen (preset's default)."
        ),
        jpeg_quality: int = typer.Option(
            92, "--jpeg-quality", min=1, max=100, help="JPEG quality of clean videos."
        ),
        label_every: int = typer.Option(
            1, "--label-every", min=1, help="Label every k-th frame (PoseTrack-style sparse labels)."
        ),
        workers: int = typer.Option(1, "--workers", "-j", min=1, help="Parallel processes (same output)."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Replace an existing synthetic dataset at --out."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ):
        """Render labelled multi-person videos as PoseTrack18 JSON (+ COCO JSON) with images."""
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        from ..data.synth_dataset import write_dataset
        from ..data.synthetic import SynthConfig

        with friendly_errors():
            w, h = _size(size)
            extra = {"width": w, "height": h, "frames": frames, "fps": fps}
            if max_people is not None:
                extra["max_people"] = max_people
                extra["min_people"] = min(1, max_people)
            cfg = SynthConfig.preset(preset, **extra)
            try:
                with Progress(
                    TextColumn("[bold]synth[/]"),
                    BarColumn(),
                    MofNCompleteColumn(),
                    TextColumn("frames"),
                    TimeElapsedColumn(),
                    TimeRemainingColumn(),
                    console=err_console,
                    disable=as_json,
                ) as bar:
                    task = bar.add_task("frames", total=videos * frames)
                    meta = write_dataset(
                        out,
                        cfg,
                        videos=videos,
                        seed=seed,
                        split_val=split_val,
                        layout=layout,
                        jpeg_quality=jpeg_quality,
                        label_every=label_every,
                        overwrite=overwrite,
                        workers=workers,
                        progress=lambda n: bar.advance(task, n),
                    )
            except FileExistsError as e:
                err_console.print(f"[bold red]error:[/] {e}")
                raise typer.Exit(2) from None
        s = meta["stats"]
        if as_json:
            print_json({"out": str(out), **s, "splits": {k: len(v) for k, v in meta["splits"].items()}})
            return
        console.print(
            f"[bold green]wrote[/] {out}: {videos} videos ({len(meta['splits']['train'])} train, "
            f"{len(meta['splits']['val'])} val), {s['frames']} frames at {w}x{h}, {s['persons']} persons "
            f"({s['tracks']} tracks, {s['persons_per_frame']} per frame)"
        )
        console.print(
            f"joints: {s['occluded_joint_pct']}% occluded by others, {s['self_occluded_joint_pct']}% self-occluded, "
            f"{s['blurred_joint_pct']}% blurred; frames blurred: {s['blurred_frame_pct']}%; "
            f"tracks entering/leaving: {s['track_births_after_first_frame']}/{s['track_deaths_before_last_frame']}"
        )
        console.print(f"{s['seconds']} s ({s['frames_per_s']} frames/s)")
