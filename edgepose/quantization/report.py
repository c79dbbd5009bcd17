"""The int8 report: one row per artifact (model x method x format), printed, in the manifest, as JSON.

A row holds the artifact's size against the fp32 bundle of the same format, its accuracy
on the evaluation set against the fp32 model (the format metric, PCKh@0.5, PCK@0.2, and
how far its keypoints moved from fp32's), and its latency against the fp32 bundle in the
same run at each batch size (ms per call, summed over stages). ``accuracy_source`` says
whether the accuracy was measured in the artifact's runtime or simulated in PyTorch (Core
ML off macOS).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

REPORT_KEY = "int8_report"


@dataclass
class ArtifactReport:
    model: str
    method: str  # ptq | qat
    format: str
    path: str
    size_bytes: int
    fp32_size_bytes: int
    accuracy: dict[str, Any]  # metric_name, metric, pckh@0.5, pck@0.2
    fp32_accuracy: dict[str, Any]
    deviation: dict[str, float]  # keypoints vs fp32: mean_px, p90_px, max_px
    accuracy_source: str
    latency_ms: dict[str, Any] = field(
        default_factory=dict
    )  # {"int8": {batch: ms}, "fp32": {...}, "stages": ...}
    float_scopes: list[str] = field(default_factory=list)
    calibration: str = ""
    verified: bool | None = None
    notes: list[str] = field(default_factory=list)
    qat: dict[str, Any] | None = None

    @property
    def size_ratio(self) -> float:
        return self.size_bytes / max(self.fp32_size_bytes, 1)

    @property
    def metric_drop(self) -> float | None:
        a, b = self.accuracy.get("metric"), self.fp32_accuracy.get("metric")
        return None if a is None or b is None else round(b - a, 3)

    def speedup(self, batch) -> float | None:
        lat = self.latency_ms
        i8, f32 = lat.get("int8", {}).get(batch), lat.get("fp32", {}).get(batch)
        return None if not i8 or not f32 else round(f32 / i8, 3)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["size_ratio"] = round(self.size_ratio, 4)
        d["metric_drop"] = self.metric_drop
        d["speedup"] = {str(b): self.speedup(b) for b in self.latency_ms.get("int8", {})}
        d["latency_ms"] = _str_keys(self.latency_ms)
        return d


def _str_keys(v):
    if isinstance(v, dict):
        return {str(k): _str_keys(x) for k, x in v.items()}
    return v


def _fmt(v, spec=".1f") -> str:
    return "-" if v is None else format(v, spec)


def table(rows: list[ArtifactReport], title: str = "INT8 report"):
    from rich.table import Table  # lazy: rich

    t = Table(title=title)
    batches = sorted({b for r in rows for b in r.latency_ms.get("int8", {})}, key=int)
    for c in ("artifact", "MB (% fp32)", "metric fp32 > int8", "PCKh", "kp p90"):
        t.add_column(c, no_wrap=True)
    for b in batches:
        t.add_column(f"ms b{b} fp32 > int8", no_wrap=True)
    t.add_column("accuracy")
    for r in rows:
        drop = r.metric_drop
        d = "-" if drop is None else (f"[red]{-drop:+.2f}[/]" if drop > 1 else f"{-drop:+.2f}")
        cells = [
            f"{r.model} {r.method} {r.format}",
            f"{r.size_bytes / 1e6:.2f} ({100 * r.size_ratio:.0f}%)",
            f"{_fmt(r.fp32_accuracy.get('metric'))} > {_fmt(r.accuracy.get('metric'))} ({d})",
            f"{_fmt(r.fp32_accuracy.get('pckh@0.5'))} > {_fmt(r.accuracy.get('pckh@0.5'))}",
            _fmt(r.deviation.get("p90_px"), ".2f"),
        ]
        for b in batches:
            f32 = r.latency_ms.get("fp32", {}).get(b)
            i8 = r.latency_ms.get("int8", {}).get(b)
            sp = r.speedup(b)
            x = "" if sp is None else (f" ([green]{sp:.2f}x[/])" if sp > 1 else f" ([red]{sp:.2f}x[/])")
            cells.append(f"{_fmt(f32, '.2f')} > {_fmt(i8, '.2f')}{x}")
        cells.append(r.accuracy_source.split(":")[0])
        t.add_row(*cells)
    return t


def markdown(rows: list[ArtifactReport]) -> str:
    batches = sorted({b for r in rows for b in r.latency_ms.get("int8", {})}, key=int)
    head = [
        "model",
        "method",
        "format",
        "size MB (int8 / fp32)",
        "metric fp32",
        "metric int8",
        "drop",
        "PCKh@0.5 fp32 / int8",
        "kp p90 px",
    ]
    head += [f"ms b{b} fp32 / int8 (x)" for b in batches] + ["accuracy measured"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [
            r.model,
            r.method,
            r.format,
            f"{r.size_bytes / 1e6:.2f} / {r.fp32_size_bytes / 1e6:.2f} ({100 * r.size_ratio:.0f}%)",
            f"{r.accuracy.get('metric_name', '')} {_fmt(r.fp32_accuracy.get('metric'))}",
            _fmt(r.accuracy.get("metric")),
            _fmt(r.metric_drop, ".2f"),
            f"{_fmt(r.fp32_accuracy.get('pckh@0.5'))} / {_fmt(r.accuracy.get('pckh@0.5'))}",
            _fmt(r.deviation.get("p90_px"), ".2f"),
        ]
        for b in batches:
            f32 = r.latency_ms.get("fp32", {}).get(b)
            i8 = r.latency_ms.get("int8", {}).get(b)
            cells.append(f"{_fmt(f32, '.2f')} / {_fmt(i8, '.2f')} ({_fmt(r.speedup(b), '.2f')})")
        cells.append(r.accuracy_source)
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
