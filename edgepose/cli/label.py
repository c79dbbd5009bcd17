"""``edgepose label``: pseudo-label real videos and photos with pretrained teachers (edgepose.external).

The output directory is a dataset ``edgepose train`` and ``edgepose eval`` read as they are.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import console, err_console, friendly_errors, print_json


def _jobs(sources: list[Path], val: list[str], preset: str | None):
    from ..data.pseudo_labels import VideoJob, real_footage_jobs

    if preset is not None:
        if preset != "real":
            raise ValueError(f"unknown --preset {preset!r}: the one preset is 'real'")
        if sources:
            raise ValueError("--preset real chooses its own inputs; give no SOURCES with it")
        return real_footage_jobs()
    if not sources:
        raise ValueError("give one or more videos or images to label (or --preset real)")
    tails = {}
    for v in val:
        name, _, frac = v.partition(":")
        try:
            tails[name] = float(frac) if frac else 1.0
        except ValueError:
            raise ValueError(
                f"--val {v!r}: use NAME (the whole input) or NAME:FRACTION (its last part)"
            ) from None
        if not 0.0 < tails[name] <= 1.0:
            raise ValueError(f"--val {v!r}: the fraction must be in (0, 1]")
    jobs = []
    for p in sources:
        if not p.is_file():
            raise FileNotFoundError(f"input {str(p)!r} does not exist")
        jobs.append(VideoJob(p, p.stem, tails.pop(p.stem, 0.0)))
    if tails:
        raise ValueError(f"--val names {sorted(tails)} match no input (inputs: {[j.name for j in jobs]})")
    return jobs


def register(app: typer.Typer) -> None:
    @app.command("label")
    def label(
        sources: list[Path] = typer.Argument(None, help="Videos or images to label."),
        out: Path = typer.Option(..., "--out", "-o", help="Dataset directory (created; resumed if present)."),
        teacher: str = typer.Option("movenet_thunder", "--teacher", help="Pose teacher (edgepose.external)."),
        agree: str = typer.Option(
            "blazepose_full",
            "--agree",
            help="Second teacher a joint must agree with; 'none' for one teacher.",
        ),
        detector: str = typer.Option("nanodet", "--detector", help="Person detector (edgepose.external)."),
        val: list[str] = typer.Option(
            [], "--val", help="Hold out NAME (a whole input, by file stem) or NAME:FRACTION (its last part)."
        ),
        preset: str = typer.Option(
            None,
            "--preset",
            help="'real': vtest (last 30% held out) + 8 Pose2Sim videos (camera 4 held out).",
        ),
        every: int = typer.Option(1, "--every", min=1, help="Label every N-th frame (all frames are kept)."),
        min_joints: int = typer.Option(
            5, "--min-joints", min=1, max=17, help="Fewer agreed joints: ignore region."
        ),
        max_side: int = typer.Option(1280, "--max-side", min=64, help="Scale frames down to this long side."),
        overwrite: bool = typer.Option(
            False, "--overwrite", help="Start over where --out holds other settings."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    ):
        """Pseudo-label people in real footage: detector boxes, teacher keypoints, agreement, tracks."""
        with friendly_errors():
            from ..data.pseudo_labels import LabelConfig, label_videos
            from ..external.registry import DETECTORS, TEACHERS

            for name, table, what in ((teacher, TEACHERS, "--teacher"), (detector, DETECTORS, "--detector")):
                if name not in table:
                    raise ValueError(f"unknown {what} {name!r}: use one of {sorted(table)}")
            second = None if agree.lower() == "none" else agree
            if second is not None and second not in TEACHERS:
                raise ValueError(f"unknown --agree {agree!r}: use none or one of {sorted(TEACHERS)}")
            jobs = _jobs(list(sources or []), val, preset)
            config = LabelConfig(
                teacher=teacher,
                agree=second,
                detector=detector,
                every=every,
                min_joints=min_joints,
                max_side=max_side,
            )
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            with Progress(
                TextColumn("[bold]label[/] {task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                disable=as_json,
            ) as bar:
                tasks: dict[str, int] = {}

                def progress(name: str, done: int, total: int) -> None:
                    if name not in tasks:
                        tasks[name] = bar.add_task(name, total=total)
                    bar.update(tasks[name], completed=done, total=total)

                stats = label_videos(jobs, out, config, overwrite=overwrite, progress=progress)
            summary = {
                "out": str(out),
                "frames": stats.frames,
                "labelled_frames": stats.labelled_frames,
                "persons": stats.persons,
                "ignored": stats.ignored,
                "joints": stats.joints,
                "videos": stats.per_video,
            }
            if as_json:
                print_json(summary)
                return
            console.print(
                f"labelled {stats.labelled_frames}/{stats.frames} frames: {stats.persons} persons "
                f"({stats.joints} joints), {stats.ignored} ignore regions -> {out}"
            )
            for name, v in stats.per_video.items():
                console.print(
                    f"  {name:<24} {v['split']:<5} {v['frames']:>5} frames {v['persons']:>6} persons"
                )
