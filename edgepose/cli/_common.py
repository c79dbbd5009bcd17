"""Helpers shared by the CLI commands: JSON output and clean error exits."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def friendly_errors():
    """Turn the library's expected errors into one red line and exit code 2 (EDGEPOSE_DEBUG=1: traceback)."""
    try:
        yield
    except (KeyError, ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        if os.environ.get("EDGEPOSE_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        err_console.print(f"[bold red]error:[/] {msg}", soft_wrap=True)  # one line, however long
        raise typer.Exit(2) from None


@contextlib.contextmanager
def import_errors():
    """A runtime or converter package that fails to import is a one-line error (exit 2) too."""
    try:
        yield
    except ImportError as e:
        raise RuntimeError(str(e)) from None
