#!/usr/bin/env bash
# Fetch the real test material into .assets/ (or $EDGEPOSE_ASSETS). Nothing here is committed.
#   vtest.avi, messi5.jpg, basketball1.png  <- Debian package opencv-doc (OpenCV's sample data)
#   pose_detection.tflite, pose_landmark_full.tflite  <- MediaPipe 0.10.21 wheel (BlazePose)
# Idempotent (present files are kept), quiet, and tolerant: a piece that cannot be had prints a
# warning and the script still exits 0, so tests that need it skip with a reason.
set -uo pipefail
cd "$(dirname "$0")/.."
DEST=${EDGEPOSE_ASSETS:-.assets}
MEDIAPIPE_VERSION=${EDGEPOSE_MEDIAPIPE_VERSION:-0.10.21}
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && PY=.venv/bin/python
mkdir -p "$DEST" || { echo "warning: cannot create $DEST; no assets fetched" >&2; exit 0; }
DEST=$(cd "$DEST" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

warn() { echo "warning: $*" >&2; }
have_all() { for f in "$@"; do [ -s "$DEST/$f" ] || return 1; done; }

# --- OpenCV sample data (Debian opencv-doc) ---
OPENCV_FILES=(vtest.avi messi5.jpg basketball1.png)
if ! have_all "${OPENCV_FILES[@]}"; then
  if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
    warn "apt-get/dpkg not found: cannot fetch ${OPENCV_FILES[*]} (Debian/Ubuntu package opencv-doc)"
  elif ! (cd "$WORK" && apt-get download -qq opencv-doc >/dev/null 2>&1); then
    warn "apt-get download opencv-doc failed (run 'apt-get update' first?): ${OPENCV_FILES[*]} unavailable"
  elif ! dpkg -x "$WORK"/opencv-doc_*.deb "$WORK/opencv-doc" 2>/dev/null; then
    warn "could not unpack opencv-doc .deb: ${OPENCV_FILES[*]} unavailable"
  else
    for f in "${OPENCV_FILES[@]}"; do
      src=$(find "$WORK/opencv-doc" -name "$f" -type f | head -n 1)
      if [ -n "$src" ]; then
        cp "$src" "$DEST/.$f.tmp" && mv "$DEST/.$f.tmp" "$DEST/$f"
      else
        warn "$f not found in opencv-doc"
      fi
    done
  fi
  rm -rf "$WORK"/opencv-doc*
fi

# --- BlazePose models from the MediaPipe wheel ---
MP_FILES=(pose_detection.tflite pose_landmark_full.tflite)
if ! have_all "${MP_FILES[@]}"; then
  if ! "$PY" -m pip download -q --no-deps --only-binary=:all: "mediapipe==$MEDIAPIPE_VERSION" \
      -d "$WORK/mp" >/dev/null 2>&1; then
    # The wheel is platform-specific; any platform's wheel holds the same .tflite files.
    "$PY" -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
      --python-version 3.11 "mediapipe==$MEDIAPIPE_VERSION" -d "$WORK/mp" >/dev/null 2>&1
  fi
  whl=$(ls "$WORK"/mp/mediapipe-*.whl 2>/dev/null | head -n 1)
  if [ -z "$whl" ]; then
    warn "pip download mediapipe==$MEDIAPIPE_VERSION failed: ${MP_FILES[*]} unavailable"
  else
    "$PY" - "$whl" "$DEST" "${MP_FILES[@]}" <<'EOF' || warn "could not extract BlazePose models from $whl"
import os, sys, zipfile
whl, dest, names = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(whl) as z:
    members = {os.path.basename(n): n for n in z.namelist() if n.startswith("mediapipe/modules/pose_")}
    for name in names:
        if name not in members:
            print(f"warning: {name} not in {os.path.basename(whl)}", file=sys.stderr)
            continue
        tmp = os.path.join(dest, f".{name}.tmp")
        with z.open(members[name]) as src, open(tmp, "wb") as out:
            out.write(src.read())
        os.replace(tmp, os.path.join(dest, name))
EOF
  fi
fi

missing=()
for f in "${OPENCV_FILES[@]}" "${MP_FILES[@]}"; do [ -s "$DEST/$f" ] || missing+=("$f"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "assets ready in $DEST"
else
  warn "assets in $DEST; missing: ${missing[*]} (tests that need them will skip)"
fi
exit 0
