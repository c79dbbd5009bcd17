"""Progress for the long steps of ``export``, ``quantize`` and ``eval`` (as ``label`` shows its own).

The library reports with ``progress(msg)`` callbacks; ``step_progress`` turns them into a rich
spinner on a terminal (the current step, its elapsed time; each finished step stays as a line)
and into plain timestamped lines elsewhere (a pipe, a CI log). Counting messages
(``"calibration: 64/256 samples"``) only update the spinner, and in plain mode are printed at
most every few seconds, so a log is readable.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator

from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from ._common import err_console

_COUNT = re.compile(r"\b\d+/\d+\b")
PLAIN_EVERY_S = 5.0


@contextlib.contextmanager
def step_progress(title: str, enabled: bool = True) -> Iterator[Callable[[str], None] | None]:
    """A ``progress(msg)`` callback for ``title``'s steps (None when disabled, e.g. with --json)."""
    if not enabled:
        yield None
        return
    t0 = time.perf_counter()
    if not err_console.is_terminal:
        last = {"count": 0.0}

        def plain(msg: str) -> None:
            now = time.perf_counter()
            if _COUNT.search(msg) and now - last["count"] < PLAIN_EVERY_S:
                return
            if _COUNT.search(msg):
                last["count"] = now
            err_console.print(
                f"[{now - t0:7.1f}s] {title}: {msg}", markup=False, highlight=False, soft_wrap=True
            )

        yield plain
        return
    with Progress(
        SpinnerColumn(),
        TextColumn(f"[bold]{title}[/] {{task.description}}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)

        def live(msg: str) -> None:
            if not _COUNT.search(msg):
                bar.console.print(f"[dim]{time.perf_counter() - t0:7.1f}s {escape(msg)}[/]", highlight=False)
            bar.update(task, description=escape(msg))

        yield live
