"""A benchmark table: printed with rich, written as markdown + JSON, plotted with matplotlib.

A ``Table`` is data first (columns, rows of plain values, notes, the settings
and machine it was measured on), so the CLI's ``--json`` and the files under
``benchmarks/results/`` carry the same numbers the console shows.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_file


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def machine() -> dict[str, Any]:
    """Where the numbers were measured (they mean little without it)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu": cpu_name(),
    }
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    for pkg in ("onnxruntime", "openvino", "ai-edge-litert", "numpy", "opencv-python-headless"):
        try:
            info[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return info


def fmt_value(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        a = abs(v)
        return f"{v:.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.3g}"
    return str(v)


@dataclass
class Table:
    """One benchmark table. ``rows`` hold plain values (floats in ms, ratios as floats, text)."""

    name: str  # file stem: ring_buffer, persons, backends, blazepose
    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # raw series for plots and JSON
    plot: Callable[[Table, Path], None] | None = field(default=None, repr=False)
    seconds: float = 0.0
    machine: dict[str, Any] = field(default_factory=machine)
    measured_at: str = field(default_factory=lambda: time.strftime("%Y-%m-%d %H:%M:%S %Z"))

    def add(self, *values: Any) -> None:
        if len(values) != len(self.columns):
            raise ValueError(f"{self.name}: row has {len(values)} values for {len(self.columns)} columns")
        self.rows.append(list(values))

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]

    # -- output ----------------------------------------------------------------------------------
    def to_rich(self):
        from rich.table import Table as RichTable

        t = RichTable(title=self.title, title_justify="left")
        for c in self.columns:
            t.add_column(c, justify="left" if c in self.extra.get("text_columns", ()) else "right")
        for r in self.rows:
            t.add_row(*(fmt_value(v) for v in r))
        return t

    def print(self, console) -> None:
        console.print(self.to_rich())
        for n in self.notes:
            console.print(f"[dim]- {n}[/]")

    def publish(self, console, out_dir: str | os.PathLike) -> list[Path]:
        """What every benchmark script ends with: the table on the console, its files written, and
        where they went."""
        self.print(console)
        paths = self.write(out_dir)
        for path in paths:
            console.print(f"wrote {path}")
        return paths

    def to_markdown(self) -> str:
        lines = [
            f"### {self.title}",
            "",
            "| " + " | ".join(self.columns) + " |",
            "|" + "|".join("---" for _ in self.columns) + "|",
        ]
        lines += ["| " + " | ".join(fmt_value(v) for v in r) + " |" for r in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {n}" for n in self.notes]
        m = self.machine
        lines += [
            "",
            f"Measured {self.measured_at} on {m.get('cpu', '?')} ({m.get('cpus')} CPUs, "
            f"load {m.get('load_avg_1m', '?')}), onnxruntime {m.get('onnxruntime', '-')}, "
            f"openvino {m.get('openvino', '-')}, ai-edge-litert {m.get('ai-edge-litert', '-')}; "
            f"settings {json.dumps(self.settings, default=str)}; {self.seconds:.0f} s.",
        ]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "columns": self.columns,
            "rows": [[_jsonable(v) for v in r] for r in self.rows],
            "notes": self.notes,
            "settings": self.settings,
            "extra": _jsonable(self.extra),
            "machine": self.machine,
            "measured_at": self.measured_at,
            "seconds": round(self.seconds, 1),
        }

    def write(self, out_dir: str | os.PathLike, plot: bool = True) -> list[Path]:
        """``<name>.md``, ``<name>.json`` and (if a plot is defined) ``<name>.png`` under ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        with atomic_file(out / f"{self.name}.md", "w") as f:
            f.write(self.to_markdown())
        written.append(out / f"{self.name}.md")
        with atomic_file(out / f"{self.name}.json", "w") as f:
            json.dump(self.to_dict(), f, indent=1)
        written.append(out / f"{self.name}.json")
        if plot and self.plot is not None and self.rows:
            try:
                import matplotlib  # noqa: F401 - the optional `plot` extra
            except ImportError:
                return written  # tables without plots; pip install 'edgepose[plot]' for the PNGs
            png = out / f"{self.name}.png"
            self.plot(self, png)
            written.append(png)
        return written


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy scalars
        return _jsonable(v.item())
    return v


def new_figure(width: float = 7.0, height: float = 4.2):
    """A matplotlib figure on the Agg backend (headless machines)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=120)
    return fig, ax


def save_figure(fig, path: Path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    with atomic_file(path) as f:
        fig.savefig(f, format="png")
    plt.close(fig)
