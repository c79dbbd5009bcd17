"""Per-stage totals for the end-of-run timing table of ``edgepose run`` and ``edgepose demo``.

The SDK's ``StageTimer`` keeps smoothed values for live overlays; a summary
needs totals and call counts, so ``TotalsTimer`` (shared with the benchmarks)
adds them and replaces the pipeline's timer for the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from ..bench.workload import TotalsTimer

__all__ = ["RunStats", "TotalsTimer", "timing_rows", "timing_table"]


def __getattr__(name: str):
    # TotalsTimer lives with the benchmarks, whose import pulls in the SDK and OpenCV: load it when a run
    # needs it, not for every ``edgepose --help``
    if name == "TotalsTimer":
        from ..bench.workload import TotalsTimer

        return TotalsTimer
    raise AttributeError(name)


@dataclass
class RunStats:
    frames: int
    wall_s: float
    poses: int
    tracks: int

    @property
    def fps(self) -> float:
        return self.frames / self.wall_s if self.wall_s > 0 else 0.0


def timing_rows(timer: TotalsTimer, stats: RunStats) -> list[dict]:
    """Stages in loop order, then the rest of the wall time (decoding, drawing, writing, overlay)."""
    frames = max(stats.frames, 1)
    wall_ms = stats.wall_s * 1e3
    rows = []
    for name, total in timer.total_ms.items():
        calls = timer.calls[name]
        rows.append(
            {
                "stage": name,
                "calls": calls,
                "ms_per_call": total / calls,
                "ms_per_frame": total / frames,
                "share": total / wall_ms if wall_ms else 0.0,
            }
        )
    rest = wall_ms - sum(timer.total_ms.values())
    rows.append(
        {
            "stage": "video I/O, drawing, sinks",
            "calls": stats.frames,
            "ms_per_call": rest / frames,
            "ms_per_frame": rest / frames,
            "share": rest / wall_ms if wall_ms else 0.0,
        }
    )
    rows.append(
        {
            "stage": "total",
            "calls": stats.frames,
            "ms_per_call": wall_ms / frames,
            "ms_per_frame": wall_ms / frames,
            "share": 1.0,
        }
    )
    return rows


def timing_table(timer: TotalsTimer, stats: RunStats, title: str = "Per-stage timing") -> Table:
    from ._common import new_table

    t = new_table(
        f"{title}: {stats.frames} frames in {stats.wall_s:.1f} s = {stats.fps:.1f} fps, "
        f"{stats.poses} poses, {stats.tracks} tracks"
    )
    for col in ("stage", "calls", "ms/call", "ms/frame", "share"):
        t.add_column(col, justify="left" if col == "stage" else "right")
    for r in timing_rows(timer, stats):
        style = "bold" if r["stage"] == "total" else None
        t.add_row(
            r["stage"],
            str(r["calls"]),
            f"{r['ms_per_call']:.1f}",
            f"{r['ms_per_frame']:.1f}",
            f"{100 * r['share']:.0f}%",
            style=style,
        )
    return t
