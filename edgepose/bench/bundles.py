"""Export a zoo model once and reuse the verified bundle: ``cached_bundle(model, ...) -> Path``.

``edgepose run --model NAME`` and the benchmarks need bundles of models that
the user has not exported. Exporting takes seconds to minutes, so each one is
written once under the cache directory (``$EDGEPOSE_CACHE``, else
``$XDG_CACHE_HOME/edgepose`` or ``~/.cache/edgepose``) in ``bundles/<key>``,
where the key holds everything the graph depends on: model, window, format,
precision, batch, the weights (file sha256, a model instance's state hash, or the
random-init seed) and the edgepose version. A cached bundle is reused only if
its manifest reads and its verification passed; anything else is exported again
(``export`` swaps the directory atomically, so an interrupted export leaves
nothing half-written behind). An export that fails is remembered beside it
(``<key>.failed.json``) and not retried until a file of ``edgepose.export``
changes, so a benchmark does not re-run a known failure every time.

Torch is imported only when an export is needed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.atomic import atomic_file
from ..core.manifest import ManifestError, read_manifest

# The ONNX exporter for cached bundles: TorchScript is ~10x faster to export than dynamo here and
# every bundle is verified against PyTorch either way (DESIGN.md §4).
DEFAULT_ONNX_EXPORTER = "torchscript"


def cache_dir() -> Path:
    if os.environ.get("EDGEPOSE_CACHE"):
        return Path(os.environ["EDGEPOSE_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "edgepose"


def _safe(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", s).strip("-")


def weights_tag(model: str | Any, weights: str | os.PathLike | None, init_seed: int = 0) -> str:
    """What the weights are, for the cache key: sha256 of the file, state hash of an instance, or the seed."""
    if not isinstance(model, str):
        from ..export.source import state_sha256

        return "state-" + state_sha256(model)[:16]
    if weights is None:
        return f"seed{init_seed}"
    from ..zoo.checkpoints import file_sha256

    return "w-" + file_sha256(weights)[:16]


def judge_tag(model) -> str:
    """The measured person threshold that shipped weights write into their bundle's manifest, for the
    key: re-measured, they get a new bundle rather than the stale number."""
    from ..zoo.pretrained import person_score

    judge = None if isinstance(model, str) else person_score(getattr(model, "pretrained", None))
    return "" if judge is None else f"j{judge:.3f}"


def bundle_key(
    model: str | Any,
    weights=None,
    frames: int | None = None,
    format: str = "onnx",
    precision: str = "fp32",
    batch: int | str | None = "auto",
    init_seed: int = 0,
) -> str:
    from .. import __version__

    name = model if isinstance(model, str) else getattr(model, "spec_name", type(model).__name__)
    if not isinstance(model, str):
        frames = None  # an instance carries its own window
    elif frames is None:  # the spec's default window, so frames=None and frames=3 share one bundle
        from ..zoo import get_spec

        frames = get_spec(model).config.get("frames")
    parts = [
        name,
        f"{frames}f" if frames else "",
        format,
        precision,
        f"b{batch}",
        weights_tag(model, weights, init_seed),
        judge_tag(model),
        f"v{__version__}",
    ]
    return _safe("-".join(p for p in parts if p))


def _usable(path: Path) -> bool:
    """A cached bundle whose manifest reads and whose stages all verified (passed or structural)."""
    try:
        m = read_manifest(path)
    except (ManifestError, OSError, ValueError):
        return False
    if not m.verification:
        return False
    return all(v.passed is not False for v in m.verification) and all(
        (path / f).exists() for s in m.stages for f in s.files
    )


def cached_bundle(
    model: str | Any,
    weights: str | os.PathLike | None = None,
    frames: int | None = None,
    format: str = "onnx",
    precision: str = "fp32",
    batch: int | str | None = "auto",
    init_seed: int = 0,
    onnx_exporter: str = DEFAULT_ONNX_EXPORTER,
    root: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
    refresh: bool = False,
) -> Path:
    """The verified bundle directory of ``model`` (a zoo name or a model instance), exporting it if needed."""
    say = progress or (lambda msg: None)
    from ..export.source import adopt_pretrained

    model, weights = adopt_pretrained(model, weights, frames)  # "pretrained": the shipped weights
    calibration = None
    if precision == "int8":
        calibration = default_calibration()
        from ..zoo.pretrained import int8_settings  # re-measured defaults: a new build, not the stale one

        key = bundle_key(model, weights, frames, format, precision, batch, init_seed)
        key += f"-q{int8_settings(model)}-cal-vtest"
    else:
        key = bundle_key(model, weights, frames, format, precision, batch, init_seed)
    path = Path(root) if root is not None else cache_dir() / "bundles" / key
    if not refresh and _usable(path):
        say(f"using the cached bundle {path}")
        return path
    if calibration is not None:
        return _int8_bundle(model, weights, frames, format, calibration, path, say)
    failed = path.with_name(path.name + ".failed.json")
    code = _export_code_stamp()
    if not refresh and failed.is_file():
        try:
            rec = json.loads(failed.read_text())
        except (OSError, ValueError):
            rec = {}
        if rec.get("export_code") == code:
            from ..export.formats import ExportError

            raise ExportError(
                f"{rec.get('error', 'export failed')} [cached failure from {rec.get('when')}: the "
                "export code has not changed since; refresh=True retries]"
            )
    from ..export import export
    from ..export.formats import ExportError

    say(f"exporting {key} to {path} (once; later runs reuse it)")
    try:
        export(
            model,
            out=path,
            format=format,
            precision=precision,
            batch=batch,
            frames=frames if isinstance(model, str) else None,
            weights=weights,
            init_seed=init_seed,
            onnx_exporter=onnx_exporter,
            progress=say,
            verify=True,
        )
    except ExportError as e:
        with atomic_file(failed, "w") as f:
            json.dump({"error": str(e), "export_code": code, "when": time.strftime("%Y-%m-%d %H:%M")}, f)
        raise
    failed.unlink(missing_ok=True)
    return path


def default_calibration() -> str:
    """The calibration data of a cached int8 bundle: the fetched vtest.avi's training part (the frames
    before its held-out last 30%), people found by the detector; no labels needed."""
    from ..core.assets import asset_path, missing_reason
    from ..quantization.video_calibration import PREFIX, VTEST_TRAIN_STOP

    video = asset_path("vtest.avi")
    if video is None:
        raise FileNotFoundError(f"an int8 bundle calibrates on vtest.avi: {missing_reason('vtest.avi')}")
    return f"{PREFIX}{video}:0-{VTEST_TRAIN_STOP}"


def _int8_bundle(model, weights, frames, format: str, calibration: str, path: Path, say) -> Path:
    """PTQ with the model family's measured settings (``edgepose quantize``), calibrated on
    ``calibration``; the int8 stages are checked against PyTorch on the calibration crops and refused
    (nothing cached) when they fail."""
    from ..quantization import quantize

    if frames is not None and isinstance(model, str):
        raise ValueError("a cached int8 bundle takes the model's own window: leave frames unset")
    say(f"quantising to int8 ({format}) into {path} (once; later runs reuse it) ...")
    quantize(model, out=path, weights=weights, data=calibration, format=format, latency=False, progress=say)
    return path


def _export_code_stamp() -> str:
    """Changes whenever a file of edgepose.export changes: a cached failure is retried after a fix."""
    root = Path(__file__).resolve().parents[1] / "export"
    stamp = [(p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in sorted(root.glob("*.py"))]
    return hashlib.sha256(repr(stamp).encode()).hexdigest()[:16]


def digest(*parts: Any) -> str:
    """A short stable hash of ``parts`` (for result file names that depend on settings)."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:10]
