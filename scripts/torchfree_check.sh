#!/usr/bin/env bash
# CI job: the device side runs where torch is not installed.
#
#   bash scripts/torchfree_check.sh BUNDLE               # an ONNX bundle exported earlier
#   bash scripts/torchfree_check.sh --export MODEL DIR   # export MODEL to DIR with the main venv first
#                                                        # (its shipped weights where there are some)
#
# Makes a venv WITHOUT torch: numpy, opencv-python-headless and onnxruntime (versions under
# constraints.txt) and edgepose installed with --no-deps. In it: `import torch` must fail; every module
# of edgepose.core, edgepose.runtimes and edgepose.sdk must import (a torch import names its chain);
# edgepose.PoseEstimator and edgepose.VideoPipeline run the bundle on real frames (.assets/vtest.avi,
# else synthetic ones) with given boxes (a GivenBoxes detector, so no detector model is needed). The
# same check then runs in the main venv (torch installed) and the poses must agree.
#
# Environment: EDGEPOSE_VENV (main venv, default .venv), EDGEPOSE_TORCHFREE_VENV (where the torch-free
# venv goes, default $TMPDIR/edgepose-torchfree-venv; reused when it is already torch-free),
# EDGEPOSE_TORCHFREE_FRAMES (frames to run, default 24).
set -euo pipefail
cd "$(dirname "$0")/.."
MAIN=$(cd "${EDGEPOSE_VENV:-.venv}" && pwd)
TFV=${EDGEPOSE_TORCHFREE_VENV:-${TMPDIR:-/tmp}/edgepose-torchfree-venv}
FRAMES=${EDGEPOSE_TORCHFREE_FRAMES:-24}
PY=${PYTHON:-python3}
T0=$(date +%s)

usage() { sed -n '2,6p' "$0" >&2; exit 2; }
if [ "${1:-}" = "--export" ]; then
  [ $# -eq 3 ] || usage
  MODEL=$2 BUNDLE=$3
  WEIGHTS=()
  if "$MAIN/bin/python" -c "import sys; from edgepose.zoo.pretrained import list_pretrained; sys.exit('$MODEL' not in list_pretrained())"; then
    WEIGHTS=(--weights pretrained)
  fi
  echo "torchfree: exporting $MODEL ${WEIGHTS[*]:-(random weights)} to $BUNDLE with $MAIN"
  "$MAIN/bin/edgepose" export "$MODEL" --format onnx --out "$BUNDLE" "${WEIGHTS[@]}" >/dev/null
else
  [ $# -eq 1 ] || usage
  BUNDLE=$1
fi
[ -f "$BUNDLE/manifest.json" ] || { echo "torchfree: no bundle at $BUNDLE (manifest.json missing)" >&2; exit 2; }
BUNDLE=$(cd "$BUNDLE" && pwd)

# -- the torch-free venv ---------------------------------------------------------------------------
if [ ! -x "$TFV/bin/python" ] || "$TFV/bin/python" -c "import torch" 2>/dev/null; then
  rm -rf "$TFV"
  "$PY" -m venv "$TFV"
fi
"$TFV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt \
  numpy opencv-python-headless onnxruntime
"$TFV/bin/python" -m pip install -q --disable-pip-version-check --no-deps -e .
if "$TFV/bin/python" -c "import torch" 2>/dev/null; then
  echo "torchfree: FAIL: torch is importable in $TFV" >&2
  exit 1
fi
echo "torchfree: venv $TFV: $("$TFV/bin/python" -m pip list --format=freeze 2>/dev/null | grep -iE '^(numpy|opencv|onnxruntime|edgepose)' | tr '\n' ' ')"

# -- the check, once without torch and once with it ------------------------------------------------
CHECK=$(mktemp -d)
trap 'rm -rf "$CHECK"' EXIT
cat >"$CHECK/check.py" <<'PY'
"""check.py BUNDLE OUT.json FRAMES [--torch-free] [--boxes FROM.json]: run the device side on real
frames, write the poses and the boxes they were given (FROM.json: another run's, so both pose the
same boxes: the detector runs in each venv, and a box that moves by a pixel moves its pose)."""

import importlib
import json
import pkgutil
import sys
import time
import traceback

BUNDLE, OUT, N = sys.argv[1], sys.argv[2], int(sys.argv[3])
TORCH_FREE = "--torch-free" in sys.argv
GIVEN = sys.argv[sys.argv.index("--boxes") + 1] if "--boxes" in sys.argv else None


class NoTorch:
    """Any import of torch fails, naming the edgepose files that asked for it."""

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            chain = [f"{f.filename.rsplit('/edgepose/', 1)[-1]}:{f.lineno}" for f in traceback.extract_stack()
                     if "/edgepose/" in f.filename]
            raise ModuleNotFoundError(f"torch imported by edgepose/{' -> edgepose/'.join(chain)}", name=name)
        return None


if TORCH_FREE:
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        sys.exit("FAIL: import torch works in the torch-free venv")
    sys.meta_path.insert(0, NoTorch())
    import edgepose

    bad = []
    for pkg in ("edgepose.core", "edgepose.runtimes", "edgepose.sdk"):
        for m in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
            try:
                importlib.import_module(m.name)
            except Exception as e:  # noqa: BLE001 - every failure is reported
                bad.append(f"{m.name}: {type(e).__name__}: {e}")
    if bad:
        sys.exit("FAIL: device-side modules do not import without torch:\n  " + "\n  ".join(bad))
    print(f"torch-free: import torch fails; every module of edgepose.core/runtimes/sdk imports")

import cv2
import numpy as np

import edgepose
from edgepose.core.assets import asset_path
from edgepose.sdk import GivenBoxes, IterableSource
from edgepose.sdk.detectors import make_detector

video = asset_path("vtest.avi")
frames, boxes = [], {}
if video is not None:
    cap = cv2.VideoCapture(str(video))
    while len(frames) < N:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    # Boxes from the device side's own detector (NanoDet ONNX where fetched, else OpenCV HOG: no torch),
    # found once and then given to both the estimator and the pipeline.
    if GIVEN:
        boxes = {int(i): np.array(b, np.float32).reshape(-1, 5) for i, b in json.load(open(GIVEN))["boxes"].items()}
    else:
        det = make_detector("auto")
        for i, img in enumerate(frames):
            d = det(img, i)
            boxes[i] = np.concatenate([d.boxes, d.scores[:, None]], 1)[d.scores >= 0.3][:4]
    where = f"{video.name}, frames 0-{len(frames) - 1}"
else:
    from edgepose.data.synthetic import SynthConfig, SyntheticVideo

    for fr in SyntheticVideo(SynthConfig.preset("easy", width=480, height=360, frames=N), seed=0):
        frames.append(np.ascontiguousarray(fr.image[..., ::-1]))  # RGB -> BGR as a camera gives it
        xywh = np.array([p.bbox for p in fr.persons], np.float32).reshape(-1, 4)
        boxes[fr.index] = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:], np.ones((len(xywh), 1))], 1)
    where = "synthetic frames (no .assets/vtest.avi)"
assert frames and sum(len(b) for b in boxes.values()) > 0, f"no people found in {where}"

t = time.perf_counter()
est = edgepose.PoseEstimator(BUNDLE, device="cpu")
single = []
for i in range(0, len(frames), max(1, len(frames) // 4)):
    res = est(frames[i], boxes=boxes[i][:, :4])
    assert len(res) == len(boxes[i])
    for pose in res:
        k, s = np.asarray(pose.keypoints), np.asarray(pose.scores)
        assert np.isfinite(k).all() and ((s >= 0) & (s <= 1)).all()
        h, w = frames[i].shape[:2]
        inside = (k[:, 0] >= -0.1 * w) & (k[:, 0] <= 1.1 * w) & (k[:, 1] >= -0.1 * h) & (k[:, 1] <= 1.1 * h)
        assert inside.mean() > 0.8, f"frame {i}: keypoints far outside the frame"
        single.append({"frame": i, "keypoints": k.tolist(), "scores": s.tolist()})
pipe = edgepose.VideoPipeline(est, detector=GivenBoxes(boxes), smoothing=False)
results = list(pipe.run(IterableSource(frames, fps=25), draw=False))
assert [r.index for r in results] == list(range(len(frames))), [r.index for r in results]
video_poses = [
    {"frame": r.index, "track": p.track_id, "keypoints": np.asarray(p.keypoints).tolist()}
    for r in results
    for p in r.poses
]
assert video_poses and all(np.isfinite(p["keypoints"]).all() for p in video_poses)
assert len({p["track"] for p in video_poses}) >= 1
est.close()
seconds = time.perf_counter() - t
json.dump({"single": single, "video": video_poses, "boxes": {i: b.tolist() for i, b in boxes.items()}}, open(OUT, "w"))
print(
    f"{'torch-free' if TORCH_FREE else 'with torch'}: {est.manifest.model} bundle on {where}: "
    f"PoseEstimator {len(single)} poses on {len(range(0, len(frames), max(1, len(frames) // 4)))} frames, "
    f"VideoPipeline {len(results)} frames, {len(video_poses)} poses, "
    f"{len({p['track'] for p in video_poses})} tracks, {seconds:.1f} s"
    + ("; torch was never imported" if TORCH_FREE and "torch" not in sys.modules else "")
)
if TORCH_FREE:
    assert "torch" not in sys.modules
PY
(cd "$CHECK" && "$TFV/bin/python" check.py "$BUNDLE" "$CHECK/free.json" "$FRAMES" --torch-free)
(cd "$CHECK" && "$MAIN/bin/python" check.py "$BUNDLE" "$CHECK/torch.json" "$FRAMES" --boxes "$CHECK/free.json")
"$TFV/bin/python" - "$CHECK/free.json" "$CHECK/torch.json" <<'PY'
import json
import sys

import numpy as np

a, b = (json.load(open(p)) for p in sys.argv[1:3])
for part in ("single", "video"):
    assert len(a[part]) == len(b[part]), f"{part}: {len(a[part])} poses without torch, {len(b[part])} with it"
    for x, y in zip(a[part], b[part]):
        assert x["frame"] == y["frame"]
        d = np.abs(np.asarray(x["keypoints"]) - np.asarray(y["keypoints"])).max()
        assert d < 1e-2, f"{part} frame {x['frame']}: poses differ by {d:.3g} px with and without torch"
print("torch-free and torch venvs give the same poses")
PY
echo "torchfree: OK in $(( $(date +%s) - T0 )) s"
