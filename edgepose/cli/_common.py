"""Helpers shared by the CLI commands: JSON output and clean error exits."""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click
import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def new_table(title: str | None = None, **kw):
    """A rich ``Table`` for command output: boxed on a terminal; plain where stdout is not one (a pipe,
    a CI log), with no box-drawing lines, so the columns survive ``grep``/``cut`` and log viewers."""
    from rich.table import Table

    if not console.is_terminal:
        kw.setdefault("box", None)
        kw.setdefault("pad_edge", False)
    kw.setdefault("title_justify", "left")
    return Table(title=title, **kw)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@contextlib.contextmanager
def friendly_errors():
    """Turn errors into one red line and exit code 2 (EDGEPOSE_DEBUG=1: traceback).

    The library's expected errors (bad input, damaged files, missing packages, permissions) print
    their message; anything else prints its type too and asks for a report: never a traceback.
    """
    try:
        yield
    except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
        raise
    except (KeyError, ValueError, TypeError, OSError, RuntimeError, ArithmeticError) as e:
        if os.environ.get("EDGEPOSE_DEBUG"):
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, OSError) and e.filename is not None and str(e.filename) not in msg:
            msg = f"{msg}: {e.filename}"
        if isinstance(e, (PermissionError, ArithmeticError)) or not msg:
            msg = f"{type(e).__name__}: {msg}"
        err_console.print(f"[bold red]error:[/] {_escape(msg)}", soft_wrap=True)  # one line, however long
        raise typer.Exit(2) from None
    except Exception as e:  # noqa: BLE001 - a bug: still one line, with what to do
        if os.environ.get("EDGEPOSE_DEBUG"):
            raise
        first = (str(e).strip().splitlines() or [""])[0][:500]
        err_console.print(
            f"[bold red]error:[/] unexpected {type(e).__name__}: {_escape(first)} (an edgepose bug: rerun with "
            "EDGEPOSE_DEBUG=1 for the traceback and report it)",
            soft_wrap=True,
        )
        raise typer.Exit(2) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Handle SIGTERM (``kill``, ``timeout``, a service manager) as Ctrl-C: the same KeyboardInterrupt
    unwinds the loop, so the sinks finalise what was written and no ``.partial`` file is left behind
    (an unhandled SIGTERM ends the process before any ``finally`` runs)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():  # signals go to the main thread only
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def import_errors():
    """A runtime or converter package that fails to import is a one-line error (exit 2) too."""
    try:
        yield
    except ImportError as e:
        raise RuntimeError(str(e)) from None
