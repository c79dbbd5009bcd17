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


def _print_version(value: bool) -> None:
    # an eager option's own callback: the group's callback runs only before a command, so a flag read
    # there made ``edgepose --version`` fail with "Missing command"
    if value:
        from .. import __version__

        typer.echo(f"edgepose {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        help="Print the edgepose version and exit.",
        is_eager=True,
        callback=_print_version,
    ),
):
    """Video pose models for edge devices."""


# Each module defines ``register(app)``; the table is the CLI.
COMMAND_MODULES = (
    "predict",
    "models",
    "data",
    "label",
    "train",
    "evaluate",
    "export",
    "quantize",
    "run",
    "bench",
    "demo",
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
