"""TF.js graph models -> ONNX, verified against TF.js itself on real images.

The registries ship MoveNet, NanoDet and CenterNet only as TF.js graph models. They are converted
once at set-up by the field's converter (tf2onnx, which reads TF.js directly) in a side venv of its
own (TensorFlow's pins would fight edgepose's), then each converted graph is run by ONNX Runtime and
by TF.js's own pure-JS CPU backend in node on the same real frames; the ONNX file is kept only if
every output matches within ``atol``. The result (sha256 of the file, its sources', the tools'
versions, the measured difference) goes into the ONNX metadata and into ``external.json`` beside it,
which ``edgepose.external.check`` reads before the model is allowed to run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..core.atomic import atomic_file
from .check import file_sha256
from .sources import FILES, PACKAGES

# The conversion venv and node modules are caches outside the repository: a fresh clone on the
# same machine reuses them.
CACHE = Path(os.environ.get("EDGEPOSE_CACHE", Path.home() / ".cache" / "edgepose"))
CONVERTER_PINS = ("tensorflow-cpu==2.21.0", "tf2onnx==1.17.0")
TFJS_PINS = (
    "@tensorflow/tfjs-core@4.22.0",
    "@tensorflow/tfjs-converter@4.22.0",
    "@tensorflow/tfjs-backend-cpu@4.22.0",
)
RECORD = "external.json"
OPSET = 17


class ConversionError(RuntimeError):
    """A conversion or its check against the reference failed; the message is one line."""


@dataclass(frozen=True)
class Conversion:
    """One converted model: its ONNX name, its TF.js source and how to feed both on real frames."""

    name: str
    source: str  # the model.json in FILES (its .bin shards travel with it)
    inputs: Callable[[list[np.ndarray]], list[dict[str, tuple[np.ndarray, str]]]]
    outputs: tuple[str, ...]  # TF.js output names
    onnx_outputs: tuple[str, ...] = ()  # the same outputs' ONNX names where tf2onnx renamed them
    atol: float = 1e-3
    extra_sources: tuple[str, ...] = field(default=())


def _square_rgb(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    s = max(h, w)
    canvas = np.zeros((s, s, 3), np.uint8)
    canvas[(s - h) // 2 : (s - h) // 2 + h, (s - w) // 2 : (s - w) // 2 + w] = img
    return cv2.cvtColor(cv2.resize(canvas, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)


def _movenet(size: int):
    def feeds(images):
        return [{"input": (_square_rgb(im, size)[None].astype(np.int32), "int32")} for im in images]

    return feeds


def _multipose(images):
    return [
        {
            "input": (
                cv2.cvtColor(cv2.resize(im, (512, 384)), cv2.COLOR_BGR2RGB)[None].astype(np.int32),
                "int32",
            )
        }
        for im in images
    ]


def _nanodet(images):
    from .nanodet import NanoDet

    return [{"input_1": (NanoDet.blob(_square_rgb(im, 416)[..., ::-1]), "float32")} for im in images]


def _centernet(images):
    return [{"tower_0/images": (_square_rgb(im, 512)[None].astype(np.float32), "float32")} for im in images]


CONVERSIONS: dict[str, Conversion] = {
    c.name: c
    for c in (
        Conversion("movenet-lightning.onnx", "movenet-lightning.json", _movenet(192), ("Identity:0",)),
        Conversion("movenet-thunder.onnx", "movenet-thunder.json", _movenet(256), ("Identity:0",)),
        Conversion(
            "movenet-multipose.onnx", "movenet-multipose.json", _multipose, ("Identity:0",), ("output_0",)
        ),
        Conversion(
            "nanodet.onnx",
            "nanodet.json",
            _nanodet,
            tuple(f"Identity{s}:0" for s in ("", "_1", "_2", "_3", "_4", "_5")),
        ),
        Conversion("centernet.onnx", "centernet.json", _centernet, ("tower_0/detections",)),
    )
}


def sha256_file(path: str | os.PathLike) -> str:
    return file_sha256(Path(path))


def _bins(src_json: Path) -> list[str]:
    model = json.loads(src_json.read_text(encoding="utf-8"))
    return [p for g in model["weightsManifest"] for p in g["paths"]]


# -- the tools ---------------------------------------------------------------------------------------
def converter_python(say=print) -> Path:
    """The side venv's python with TensorFlow + tf2onnx, made on first use."""
    venv = CACHE / "convert-venv"
    py = venv / "bin" / "python"
    stamp = venv / ".edgepose-pins"
    if py.exists() and stamp.exists() and stamp.read_text() == "\n".join(CONVERTER_PINS):
        return py
    say(f"making the conversion venv {venv} ({', '.join(CONVERTER_PINS)}; ~1 min)")
    shutil.rmtree(venv, ignore_errors=True)
    run_tool([sys.executable, "-m", "venv", str(venv)], "python -m venv")
    run_tool(
        [str(py), "-m", "pip", "install", "-q", *CONVERTER_PINS], f"pip install {' '.join(CONVERTER_PINS)}"
    )
    stamp.write_text("\n".join(CONVERTER_PINS))
    return py


def tfjs_modules(say=print) -> Path:
    """A node_modules folder with TF.js's core, converter and pure-JS CPU backend."""
    root = CACHE / "tfjs"
    mods = root / "node_modules"
    stamp = root / ".edgepose-pins"
    if stamp.exists() and stamp.read_text() == "\n".join(TFJS_PINS) and mods.is_dir():
        return mods
    if shutil.which("npm") is None or shutil.which("node") is None:
        raise ConversionError(
            "node and npm are needed to check conversions against TF.js: install nodejs and npm"
        )
    say(f"installing TF.js ({', '.join(TFJS_PINS)}) into {root}")
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text('{"name": "edgepose-tfjs-reference", "private": true}\n')
    run_tool(
        ["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(root), *TFJS_PINS],
        "npm install",
    )
    stamp.write_text("\n".join(TFJS_PINS))
    return mods


def run_tool(
    cmd: list[str],
    what: str,
    error: type[Exception] | None = None,
    env: dict | None = None,
    cwd: Path | None = None,
    timeout: float = 1800,
) -> str:
    """Run a tool quietly; a failure raises ``error`` with one line: what failed and its last words."""
    error = error or ConversionError
    try:
        r = subprocess.run(
            cmd, check=False, capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise error(f"{what} could not run: {e}") from None
    if r.returncode != 0:
        tail = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["(no output)"]
        raise error(f"{what} failed (exit {r.returncode}): {tail[0]}")
    return r.stdout


# -- the reference ------------------------------------------------------------------------------------
def tfjs_reference(model_json: Path, feeds: dict[str, tuple[np.ndarray, str]], outputs, node_modules: Path):
    """Outputs of the TF.js graph model run by TF.js in node on ``feeds``."""
    script = Path(__file__).with_name("tfjs_reference.js")
    with tempfile.TemporaryDirectory(prefix="edgepose-tfjs-ref-") as tmp:
        req = {"inputs": {}, "outputs": list(outputs), "out_dir": tmp}
        for i, (name, (arr, dtype)) in enumerate(feeds.items()):
            f = Path(tmp) / f"in{i}.bin"
            np.ascontiguousarray(arr, dtype=dtype).tofile(f)
            req["inputs"][name] = {"dtype": dtype, "shape": list(arr.shape), "file": str(f)}
        (Path(tmp) / "req.json").write_text(json.dumps(req))
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        run_tool(
            ["node", str(script), str(model_json), str(Path(tmp) / "req.json")], "TF.js reference", env=env
        )
        shapes = json.loads((Path(tmp) / "shapes.json").read_text())
        return [np.fromfile(Path(tmp) / f"{i}.bin", np.float32).reshape(s) for i, s in enumerate(shapes)]


def compare(
    onnx_path: Path, conv: Conversion, assets: Path, images: list[np.ndarray], node_modules: Path
) -> float:
    """Largest |ONNX - TF.js| over every output and image; raises when over ``conv.atol``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    onnx_in = {i.name.split(":")[0]: i.name for i in sess.get_inputs()}
    onnx_names = {o.name for o in sess.get_outputs()}
    wanted = conv.onnx_outputs or conv.outputs
    missing = [n for n in wanted if n not in onnx_names]
    if missing:
        raise ConversionError(
            f"{conv.name}: outputs {missing} not in the converted graph {sorted(onnx_names)}"
        )
    worst = 0.0
    for feeds in conv.inputs(images):
        ref = tfjs_reference(assets / conv.source, feeds, conv.outputs, node_modules)
        got = sess.run(
            list(wanted),
            {onnx_in[k]: v for k, (v, _) in feeds.items()},
        )
        for name, a, b in zip(conv.outputs, got, ref):
            if a.shape != b.shape:
                raise ConversionError(
                    f"{conv.name}: output {name} has shape {a.shape}, TF.js gives {b.shape}"
                )
            worst = max(worst, float(np.abs(a.astype(np.float64) - b).max()))
    if not worst <= conv.atol:
        raise ConversionError(
            f"{conv.name} differs from TF.js by {worst:.3g} (> {conv.atol}): conversion refused"
        )
    return worst


def reference_images(assets: Path) -> list[np.ndarray]:
    """Real frames the conversions are checked on: a street frame and a photo of players."""
    images = []
    cap = cv2.VideoCapture(str(assets / "vtest.avi"))
    ok, frame = cap.read()
    cap.release()
    if ok:
        images.append(frame)
    photo = cv2.imread(str(assets / "messi5.jpg"))
    if photo is not None:
        images.append(photo)
    if not images:
        raise ConversionError(f"no real image to check conversions on in {assets} (vtest.avi, messi5.jpg)")
    return images


def _record(assets: Path) -> dict:
    p = assets / RECORD
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_record(assets: Path, rec: dict) -> None:
    with atomic_file(assets / RECORD, "w") as f:
        json.dump(rec, f, indent=1, sort_keys=True)


def convert(name: str, assets: Path, say=print, force: bool = False) -> Path:
    """Convert ``name`` (a key of CONVERSIONS) from its sources in ``assets``; verify; record it."""
    import onnx

    conv = CONVERSIONS[name]
    out = assets / name
    rec = _record(assets)
    if not force and out.is_file() and rec.get(name, {}).get("sha256") == sha256_file(out):
        return out
    src = assets / conv.source
    sources = [conv.source, *_bins(src), *conv.extra_sources]
    for s in sources:
        if s in FILES and (not (assets / s).is_file() or sha256_file(assets / s) != FILES[s].sha256):
            raise ConversionError(
                f"{s} is missing or not the pinned file: run `bash scripts/fetch_assets.sh`"
            )
    py = converter_python(say)
    mods = tfjs_modules(say)
    script = Path(__file__).with_name("tfjs_to_onnx.py")
    with tempfile.TemporaryDirectory(prefix="edgepose-convert-", dir=assets) as tmp:
        raw = Path(tmp) / name
        run_tool(
            [str(py), str(script), str(src), str(raw), "--opset", str(OPSET)], f"tf2onnx on {conv.source}"
        )
        worst = compare(raw, conv, assets, reference_images(assets), mods)
        model = onnx.load(str(raw))
        first = FILES[conv.source]
        meta = {
            "edgepose.source": f"{PACKAGES[first.package].spec}:{first.member}",
            "edgepose.source_sha256": json.dumps({s: sha256_file(assets / s) for s in sources}),
            "edgepose.licence": first.licence,
            "edgepose.converter": " ".join(CONVERTER_PINS),
            "edgepose.reference": "TF.js " + TFJS_PINS[0].rsplit("@", 1)[1] + " cpu backend (node)",
            "edgepose.max_abs_diff": f"{worst:.3g}",
        }
        for k, v in meta.items():
            model.metadata_props.add(key=k, value=v)
        with atomic_file(out) as f:
            f.write(model.SerializeToString())
    rec = _record(assets)
    rec[name] = {
        "sha256": sha256_file(out),
        "size": out.stat().st_size,
        "source": meta["edgepose.source"],
        "sources_sha256": json.loads(meta["edgepose.source_sha256"]),
        "licence": first.licence,
        "converter": list(CONVERTER_PINS),
        "reference": meta["edgepose.reference"],
        "max_abs_diff": worst,
        "atol": conv.atol,
        "passed": True,
    }
    _write_record(assets, rec)
    say(f"{name}: converted, matches TF.js within {worst:.2g}")
    return out
