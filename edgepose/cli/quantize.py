"""``edgepose quantize``: a trained model -> int8 bundles (PTQ or QAT) with a size/accuracy/latency report."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.formats import format_names
from ._common import err_console, friendly_errors, import_errors, print_json
from ._progress import step_progress
from .evaluate import check_paths

FORMAT_CHOICES = " | ".join([*format_names(exportable=True), "all"])


def register(app: typer.Typer) -> None:
    @app.command("quantize")
    def quantize_cmd(
        model: str = typer.Argument(..., metavar="MODEL", help="Zoo model name (see `edgepose models`)."),
        out: Path = typer.Option(..., "--out", help="Bundle directory (several formats: OUT/<format>/)."),
        weights: str = typer.Option(
            None,
            "--weights",
            help="Trained checkpoint (edgepose or official layout), or 'pretrained' for the shipped weights.",
        ),
        method: str = typer.Option("ptq", "--method", help="ptq | qat."),
        data: str = typer.Option(
            ...,
            "--data",
            help="Dataset directory (train split calibrates/trains, val split evaluates), 'synthetic', or "
            "video:PATH[:START-STOP] (unlabelled footage: its detected people calibrate PTQ; nothing is scored).",
        ),
        calib: int = typer.Option(256, "--calib", min=1, help="Calibration samples (spread over the split)."),
        epochs: float = typer.Option(1.0, "--epochs", min=0.0, help="QAT fine-tuning epochs."),
        qat_steps: int = typer.Option(None, "--qat-steps", min=1, help="Cap on QAT steps."),
        fmt: str = typer.Option("all", "--format", help=f"{FORMAT_CHOICES} (or a comma list)."),
        float_scopes: str = typer.Option(
            None,
            "--float-scopes",
            help="Comma list of the family's candidate "
            "scopes to keep in float (default: the measured choice; '' for none).",
        ),
        coreml_mode: str = typer.Option("w8", "--coreml-mode", help="w8 (int8 weights) | w8a8 (PT2E)."),
        eval_limit: int = typer.Option(1000, "--eval-limit", min=1, help="Persons evaluated (whole videos)."),
        latency: bool = typer.Option(True, "--latency/--no-latency", help="Time int8 against fp32."),
        threads: int = typer.Option(
            1, "--threads", min=1, help="Intra-op threads for evaluation and timing."
        ),
        device: str = typer.Option("auto", "--device", help="QAT training device: auto | cpu | cuda."),
        strict: bool = typer.Option(
            True, "--strict/--no-strict", help="Fail (write nothing) if an int8 stage fails its check."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    ):
        """Quantise MODEL to int8 for each format; report size, accuracy and latency against fp32.

        With several formats, each one that succeeds is written; the ones that fail are listed in a
        final table and the exit code is 1.
        """
        with friendly_errors(), import_errors():
            check_paths(weights=weights, data=data, video_ok=True)
            from ..quantization import quantize  # lazy: torch

            scopes = (
                None if float_scopes is None else [s.strip() for s in float_scopes.split(",") if s.strip()]
            )
            with step_progress("quantize", enabled=not as_json) as say:
                result = quantize(
                    model,
                    out=out,
                    weights=weights,
                    method=method,
                    data=data,
                    calib=calib,
                    epochs=epochs,
                    format=fmt,
                    float_scopes=scopes,
                    eval_limit=eval_limit,
                    latency=latency,
                    threads=threads,
                    qat_steps=qat_steps,
                    device=device,
                    options={"coreml_mode": coreml_mode},
                    strict=strict,
                    progress=say,
                )
        if as_json:
            print_json(result.to_dict())
        else:
            result.print()
        if result.failures:  # the others were written; the table above says what failed and why
            if as_json:
                err_console.print(
                    f"{len(result.failures)} format(s) failed: {', '.join(result.failures)}",
                    markup=False,
                    highlight=False,
                )
            raise typer.Exit(1)
