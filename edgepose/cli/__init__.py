"""The ``edgepose`` command line: one module per command group, registered here.

Heavy imports (torch, converters, runtimes) happen inside the commands so
``edgepose --help`` stays instant.
"""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="edgepose",
    help="Video pose models for edge devices: zoo, training, export, INT8 and on-device inference.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", help="Print the edgepose version and exit.", is_eager=True),
):
    """Video pose models for edge devices."""
    if version:
        from .. import __version__

        typer.echo(f"edgepose {__version__}")
        raise typer.Exit()


# Each module defines ``register(app)``; the table is the CLI.
COMMAND_MODULES = ("models", "data", "label", "train", "evaluate", "export", "quantize", "run", "bench", "demo")

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
