"""The papers' per-joint-group table (Head Sho Elb Wri Hip Knee Ank Mean), printed with rich."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from edgepose.core.keypoints import JOINT_GROUPS

# (group key, column title) in the papers' order; "total" is the mean over joints.
COLUMNS = (
    ("head", "Head"),
    ("shoulder", "Sho"),
    ("elbow", "Elb"),
    ("wrist", "Wri"),
    ("hip", "Hip"),
    ("knee", "Knee"),
    ("ankle", "Ank"),
    ("total", "Mean"),
)


def group_values(per_joint: Mapping[str, float]) -> dict[str, float]:
    """Per-joint values (by joint name) -> per-group means plus ``total``.

    A group is the plain mean of its joints present in ``per_joint`` (NaN
    propagates, as in poseval's table); ``total`` is the mean over all joints,
    skipping NaN (poseval's "Total"). Groups with no joint present are NaN.
    """
    out = {}
    for group, names in JOINT_GROUPS.items():
        vals = [per_joint[n] for n in names if n in per_joint]
        out[group] = float(sum(vals) / len(vals)) if vals else math.nan
    finite = [v for v in per_joint.values() if not math.isnan(v)]
    out["total"] = float(sum(finite) / len(finite)) if finite else math.nan
    return out


def joint_table(rows: Mapping[str, Mapping[str, float]], title: str | None = None, digits: int = 1) -> Table:
    """A rich Table with one row per entry of ``rows`` (name -> group values, e.g. ``group_values``)."""
    table = Table(title=title)
    table.add_column("Method")
    for _, col in COLUMNS:
        table.add_column(col, justify="right")
    for name, vals in rows.items():
        cells = []
        for key, _ in COLUMNS:
            v = vals.get(key, math.nan)
            cells.append("-" if v is None or math.isnan(v) else f"{v:.{digits}f}")
        table.add_row(name, *cells)
    return table


def print_joint_table(
    rows: Mapping[str, Mapping[str, float]], title: str | None = None, console: Console | None = None
) -> str:
    """Print the table (to ``console`` or stdout) and return it as plain text."""
    table = joint_table(rows, title)
    buf = Console(file=io.StringIO(), width=120, color_system=None)
    buf.print(table)
    (console or Console()).print(table)
    return buf.file.getvalue()
