"""``edgepose export`` and ``edgepose verify``: zoo models -> verified stage bundles, and re-checking them."""

from __future__ import annotations

from pathlib import Path

import typer

from ..core.formats import DEFAULT_FORMAT, PRECISIONS, format_names
from ._common import console, friendly_errors, import_errors, new_table, print_json
from ._progress import step_progress
from .evaluate import check_paths

FORMAT_CHOICES = " | ".join([*format_names(exportable=True), "all"])

_FRAMES = (3, 5)


def _mb(n: int) -> str:
    return f"{n / 1e6:.2f}"


def _status(v) -> str:
    if v.passed is None:
        return "[yellow]structural[/]" if "Structure OK" in (v.reason or "") else "[yellow]skipped[/]"
    return "[green]ok[/]" if v.passed else "[bold red]FAILED[/]"


def _err(v) -> str:
    return "" if v.max_abs_error is None else f"{v.max_abs_error:.2g}"


def _px(v) -> str:
    return "" if v.keypoint_error_px is None else f"{v.keypoint_error_px:.3g}"


def _print_export(result) -> None:
    table = new_table(f"edgepose export {result.model} -> {result.out}")
    for col in (
        "format",
        "stage",
        "file",
        "MB",
        "batch",
        "I/O",
        "export s",
        "max err (tol)",
        "kp px",
        "check",
    ):
        table.add_column(col)
    for b in result.bundles:
        for entry in b.manifest.stages:
            v = b.manifest.verification_for(entry.name)
            io = ", ".join(f"{t.name}{list(t.shape)}" for t in entry.inputs)
            tol = f" ({v.tolerance:.2g})" if v and v.tolerance is not None else ""
            table.add_row(
                b.format,
                entry.name,
                str(Path(b.path.name) / entry.file),
                _mb(b.manifest.extra.get("size_bytes", {}).get(entry.name, 0)),
                str(entry.inputs[0].shape[0]),
                io,
                f"{b.stage_seconds.get(entry.name, 0):.1f}",
                (_err(v) + tol) if v else "",
                _px(v) if v else "",
                _status(v) if v else "",
            )
    console.print(table)
    console.print(f"[dim]source: {result.source}[/]")
    for b in result.bundles:
        for note in b.notes:
            console.print(f"[yellow]note[/] {b.format}: {note}")
        for v in b.manifest.verification:
            if v.passed is None and v.reason:
                console.print(f"[dim]{b.format}/{v.stage}: {v.reason}[/]")


def _print_checks(checks) -> None:
    table = new_table("edgepose verify")
    for col in ("bundle", "format", "stage", "backend/device", "max err (tol)", "kp px", "check", "why"):
        table.add_column(col)
    for c in checks:
        for v in c.verifications:
            tol = f" ({v.tolerance:.2g})" if v.tolerance is not None else ""
            table.add_row(
                str(c.path),
                c.format,
                v.stage,
                f"{v.backend}/{v.device or '-'}",
                _err(v) + tol,
                _px(v),
                _status(v),
                v.reason if v.passed is False else "",
            )
    console.print(table)
    for c in checks:
        console.print(f"[dim]{c.path}: PyTorch reference from {c.source}[/]")
        for v in c.verifications:
            if v.passed is None and v.reason:
                console.print(f"[dim]{c.format}/{v.stage}: {v.reason}[/]")


def register(app: typer.Typer) -> None:
    @app.command("export")
    def export_cmd(
        model: str = typer.Argument(..., help="Zoo model name (see `edgepose models`)."),
        out: Path = typer.Option(
            ...,
            "--out",
            help="Bundle directory (with several formats: one bundle per format in OUT/<format>/).",
        ),
        fmt: str = typer.Option(DEFAULT_FORMAT, "--format", help=f"{FORMAT_CHOICES} (or a comma list)."),
        precision: str = typer.Option(
            "fp32",
            "--precision",
            help=" | ".join(p for p, row in PRECISIONS.items() if not row.needs_hook)
            + " (int8: `edgepose quantize`).",
        ),
        batch: str = typer.Option(
            "auto",
            "--batch",
            help="N (static shape, e.g. for NPUs) | dynamic | auto "
            "(dynamic where the format allows, else 1).",
        ),
        frames: int = typer.Option(None, "--frames", help="Window of a temporal model: 3 or 5."),
        weights: str = typer.Option(
            None,
            "--weights",
            help="Checkpoint (edgepose or official layout), or 'pretrained' for the shipped weights; "
            "without it the model is randomly initialised (for testing the path).",
        ),
        no_verify: bool = typer.Option(False, "--no-verify", help="Skip the parity check against PyTorch."),
        onnx_exporter: str = typer.Option(
            "auto", "--onnx-exporter", help="auto (dynamo, TorchScript as fallback) | dynamo | torchscript."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ):
        """Export MODEL to verified stage bundles (graph files + manifest.json), atomically."""
        with friendly_errors(), import_errors():
            if frames is not None and frames not in _FRAMES:
                raise ValueError(f"--frames must be 3 or 5, got {frames}")
            check_paths(weights=weights)
            from ..export import export  # lazy: torch

            with step_progress("export", enabled=not as_json) as say:
                result = export(
                    model,
                    out=out,
                    format=fmt,
                    precision=precision,
                    batch=batch,
                    frames=frames,
                    weights=weights,
                    verify=not no_verify,
                    onnx_exporter=onnx_exporter,
                    progress=say,
                )
        if as_json:
            print_json(result.to_dict())
        else:
            _print_export(result)

    @app.command("verify")
    def verify_cmd(
        bundle: Path = typer.Argument(
            ..., help="A bundle directory, or an export root holding one per format."
        ),
        weights: Path = typer.Option(
            None,
            "--weights",
            help="Checkpoint to compare with (default: the source recorded in the manifest).",
        ),
        device: str = typer.Option("cpu", "--device", help="auto | cpu | gpu | npu."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    ):
        """Re-run a bundle's parity check against PyTorch in its runtime.

        Exit 0: every check passed (Core ML off macOS: its structure).

        Exit 1: parity failed (the bundle runs, its outputs differ from PyTorch's).

        Exit 2: damaged or cannot check (a file missing, truncated or changed since export; the manifest edited or not matching its graphs; no source weights; a runtime not installed).
        """
        with friendly_errors(), import_errors():
            from ..export import verify_bundle  # lazy: torch

            checks = verify_bundle(bundle, weights=weights, device=device)
        if as_json:
            print_json([c.to_dict() for c in checks])
        else:
            _print_checks(checks)
        if any(c.passed is False for c in checks):
            raise typer.Exit(1)  # parity failed; damaged / cannot check exits 2 (friendly_errors)
