"""The rows of ``edgepose models``: each model's spec, measured costs and shipped weights, cached.

Measuring costs builds every model and runs its stages under torch's FLOP counter (about 25 s
for the four models on two shared cores), yet the numbers change only when the zoo's code (or the
shipped weights' index) changes. So the rows are kept in the user cache directory
(``$EDGEPOSE_CACHE`` or ``~/.cache/edgepose``) in a file named by the edgepose version and a digest
of those files' contents, written atomically: a warm ``edgepose models`` imports neither torch nor
any model. Rows missing from the file are measured and added; an unreadable file is measured again.

It lives with the CLI, not in ``edgepose.zoo``, whose package import loads torch: a cache hit must not.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from pathlib import Path
from typing import Any

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"
WEIGHTS_INDEX = ZOO_DIR.parent / "assets" / "weights" / "index.json"


def zoo_stamp() -> str:
    """A digest of every zoo source file and the shipped weights' index (contents, not mtimes: a
    checkout that touches files without changing them keeps the cache)."""
    h = hashlib.sha256()
    for p in sorted([*ZOO_DIR.rglob("*.py"), WEIGHTS_INDEX]):
        if p.is_file():
            h.update(str(p.relative_to(ZOO_DIR.parent)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def cache_path() -> Path:
    from .. import __version__
    from ..bench.bundles import cache_dir

    return cache_dir() / "models" / f"zoo-{__version__}-{zoo_stamp()}.json"


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) and isinstance(data.get("rows"), dict) else {"rows": {}}
    except (OSError, ValueError):
        return {"rows": {}}


def _write(path: Path, data: dict) -> None:
    from ..core.atomic import atomic_file

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(path, "w") as f:
            json.dump(data, f, indent=1)
    except OSError:  # a read-only home: the table still prints, measured again next time
        pass


def _pretrained(name: str) -> dict[str, Any] | None:
    from ..zoo.pretrained import list_pretrained, pretrained_info

    if name not in list_pretrained():
        return None
    info = pretrained_info(name)
    return {k: info.get(k) for k in ("file", "input_size", "frame_offsets", "trained_on", "params")}


def measure_row(name: str) -> dict[str, Any]:
    """One model's row: built and measured now (needs torch)."""
    from ..zoo.costs import measure
    from ..zoo.registry import create_model, get_spec

    spec = get_spec(name)
    cost = measure(create_model(name), name)
    return {
        "name": name,
        "family": spec.family,
        "params_m": round(cost.params / 1e6, 3),
        "gflops": {k: round(v.gflops, 4) for k, v in cost.stages.items()},
        "gflops_mmcv": {k: round(v.gflops_mmcv, 4) for k, v in cost.stages.items()},
        "stage_params_m": {k: round(v.params / 1e6, 3) for k, v in cost.stages.items()},
        "gflops_per_frame": round(cost.steady_state_gflops, 4),
        "gflops_per_frame_mmcv": round(cost.steady_state_gflops_mmcv, 4),
        "input_size": list(spec.input_size),
        "keypoints": spec.layout,
        "frames": len(spec.frame_offsets),
        "frame_offsets": list(spec.frame_offsets),
        "stages": list(spec.stages),
        "codec": spec.codec,
        "paper": {
            "params_m": spec.paper.params_m,
            "gflops": spec.paper.gflops,
            "accuracy": spec.paper.accuracy,
            "note": spec.paper.note,
        },
        "pretrained": _pretrained(name),
    }


def model_rows(
    names: list[str] | None = None, variants: bool = False, refresh: bool = False, progress=None
) -> list[dict[str, Any]]:
    """Rows for ``names`` (default: the zoo, ``variants`` adds the ``*_tiny`` builds), from the cache
    where present; ``progress(msg)`` hears about each model measured. Unknown names raise KeyError
    with the known ones (and close matches), also on a cache hit."""
    path = cache_path()
    data = {"rows": {}} if refresh else _read(path)
    if "all" not in data:
        from ..zoo.registry import list_models

        data["all"] = list_models(include_variants=True)
        data["main"] = list_models()
    wanted = list(names) if names else list(data["all"] if variants else data["main"])
    for n in wanted:
        if n not in data["all"]:
            close = difflib.get_close_matches(n, data["all"], n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"unknown model {n!r}{hint} Known models: {', '.join(data['all'])}")
    missing = [n for n in wanted if n not in data["rows"]]
    for n in missing:
        if progress:
            progress(f"measuring {n} (once per edgepose version; cached in {path.parent})")
        data["rows"][n] = measure_row(n)
    if missing or not path.is_file():
        _write(path, data)
    return [data["rows"][n] for n in wanted]


__all__ = ["cache_path", "measure_row", "model_rows", "zoo_stamp"]
