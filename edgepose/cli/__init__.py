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

# Each module defines ``register(app)``; the table is the CLI.
COMMAND_MODULES = ("models",)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def main() -> None:  # pragma: no cover - console entry
    app()
