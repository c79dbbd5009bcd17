"""The export view of the format table (``edgepose.core.formats``): formats ``export`` writes.

The rows live in ``edgepose.core.formats`` (torch-free, shared with the manifest, the bundle
loader, the int8 hook and the benchmarks); this module keeps the exportable ones (``FORMATS``,
live, so a registered row shows up) and the checks the CLI and ``export`` run before building
anything. Adding a format is one row there and one ``to_<format>.py`` module exposing
``convert(job) -> Artifact`` and ``read_metadata(path) -> dict``. Precisions are a second
table: a precision a converter does not list is refused before anything is built, naming the
formats that have it. INT8 is the row with ``needs_hook=True``: its quantiser is handed to the
converters as ``StageJob.hook`` (see ``stages.QuantizationHook``), so the format rows and
converters need no new arguments for it.

Torch-free: the CLI reads this table for its help text without importing torch.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..core import formats as _table
from ..core.formats import PRECISIONS, ConverterUnavailable, ExportError, Format, Precision, Tolerance


class _Exportable(Mapping):
    """{name: Format} of the rows with a converter, read live from ``edgepose.core.formats.FORMATS``."""

    def __getitem__(self, key: str) -> Format:
        f = _table.FORMATS[key]
        if not f.exportable:
            raise KeyError(key)
        return f

    def __iter__(self):
        return (n for n, f in _table.FORMATS.items() if f.exportable)

    def __len__(self) -> int:
        return sum(1 for f in _table.FORMATS.values() if f.exportable)

    def __repr__(self) -> str:
        return f"FORMATS({list(self)})"


FORMATS: Mapping[str, Format] = _Exportable()

ALL = "all"


def get_format(name: str) -> Format:
    if name not in FORMATS:
        raise ExportError(f"unknown format {name!r}; formats: {', '.join(FORMATS)} (or '{ALL}')")
    return FORMATS[name]


def resolve_formats(names: str | list[str] | tuple[str, ...]) -> list[Format]:
    """``"all"``, a name, a comma list or a list of names -> Format rows (order kept, duplicates dropped)."""
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    out: list[Format] = []
    for n in names:
        for f in FORMATS.values() if n == ALL else (get_format(n),):
            if f not in out:
                out.append(f)
    if not out:
        raise ExportError(f"no format given; formats: {', '.join(FORMATS)} (or '{ALL}')")
    return out


def check_combination(fmt: Format, precision: str, batch: int | None) -> None:
    """Refuse precision/batch choices a format cannot make, before any model is built."""
    if precision not in PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}; precisions: {', '.join(PRECISIONS)}")
    if precision not in fmt.precisions:
        have = [f.name for f in FORMATS.values() if precision in f.precisions]
        raise ExportError(
            f"format {fmt.name} does not support precision {precision}; formats that do: {have}"
        )
    if batch is None and not fmt.dynamic_batch:
        raise ExportError(
            f"format {fmt.name} has no dynamic batch here (its converter fixes the batch axis): "
            "pass --batch N (the runtime runs larger batches as N-sized pieces)"
        )
    if batch is not None and batch < 1:
        raise ExportError(f"--batch must be >= 1 or 'dynamic', got {batch}")


MAX_STATIC_BATCH = 256  # export traces an example batch of this size: memory grows with it


def parse_batch(value: str | int | None) -> int | None:
    """'dynamic' / None -> None (symbolic), '4' / 4 -> 4 (at most ``MAX_STATIC_BATCH``)."""
    if value is None or value == "dynamic":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}") from None
    if n < 1:
        raise ExportError(f"--batch must be a positive integer or 'dynamic', got {value!r}")
    if n > MAX_STATIC_BATCH:
        raise ExportError(
            f"--batch {n} is above {MAX_STATIC_BATCH}: the export builds and runs an example batch of that "
            "size (its memory grows with it: --batch 100000 grew to 18 GB and was killed). A static batch is "
            "for NPUs and fixed-shape runtimes (1-64 is usual); use --batch dynamic for a batch chosen at "
            "run time"
        )
    return n


def default_batch(fmt: Format, batch: int | None | str) -> int | None:
    """The batch a format gets when the caller asked for none ('auto'): dynamic where it can be."""
    if batch == "auto":
        return None if fmt.dynamic_batch else 1
    return batch  # type: ignore[return-value]


__all__ = [
    "ALL",
    "FORMATS",
    "MAX_STATIC_BATCH",
    "PRECISIONS",
    "ConverterUnavailable",
    "ExportError",
    "Format",
    "Precision",
    "Tolerance",
    "check_combination",
    "default_batch",
    "get_format",
    "parse_batch",
    "resolve_formats",
]
