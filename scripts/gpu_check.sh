#!/usr/bin/env bash
# The prepared GPU check (issue #14), one command, at most ~8 minutes:
#
#   scripts/gpu_check.sh [OUT_DIR] [extra options for benchmarks/gpu_check.py]
#
# OUT_DIR defaults to $OUT (the device machine's return folder), else runs/gpu_check. It writes
# OUT_DIR/gpu_check.json and gpu_check.md (see benchmarks/gpu_check.py), plus env.txt (which python
# was picked and why, nvidia-smi, missing modules) and gpu_check.log.
#
# The GPU machine may have no network: nothing is downloaded. The script picks the first Python
# whose torch sees CUDA, trying $EDGEPOSE_PYTHON, python3, python, then this checkout's .venv (carried
# or not; the .venv here holds a CPU torch). edgepose runs from this checkout (PYTHONPATH), so it
# needs no install; missing modules it needs (numpy, cv2, rich, typer, onnx, onnxruntime) are installed
# from a local wheel folder if there is one ($WHEELHOUSE, or wheelhouse/ here; pip --no-index), else
# named in the report (the sections that need them are skipped, the rest still run). With no CUDA
# torch anywhere it still writes the report, saying so, after the CPU dry run.
set -u
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT_DIR=${OUT:-runs/gpu_check}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then OUT_DIR=$1; shift; fi
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
LOG=$OUT_DIR/env.txt
: > "$LOG"
say() { echo "$*" | tee -a "$LOG"; }
BUDGET=${GPU_CHECK_SECONDS:-470}  # the whole script's limit; the Python part plans within it

say "gpu_check.sh $(date -u +%Y-%m-%dT%H:%M:%SZ) in $ROOT"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi >> "$LOG" 2>&1 || say "nvidia-smi failed"
else
  say "no nvidia-smi on PATH"
fi

PY=""
NOTE=""
FALLBACK=""
for cand in ${EDGEPOSE_PYTHON:-} python3 python "$ROOT/.venv/bin/python"; do
  command -v "$cand" >/dev/null 2>&1 || [ -x "$cand" ] || continue
  answer=$("$cand" -c "import torch; print(torch.__version__, torch.cuda.is_available(), torch.version.cuda)" 2>/dev/null) || {
    say "python $cand: no torch"; continue; }
  say "python $cand: torch $answer"
  [ -z "$FALLBACK" ] && FALLBACK=$cand
  case "$answer" in
    *" True "*) PY=$cand; break ;;
  esac
done
if [ -z "$PY" ]; then
  if [ -z "$FALLBACK" ]; then
    say "NO python with torch found (tried ${EDGEPOSE_PYTHON:-} python3 python .venv/bin/python): nothing measured"
    printf '{"schema": 1, "finished": false, "error": "no python with torch found", "environment": {"note": "see env.txt"}}\n' \
      > "$OUT_DIR/gpu_check.json"
    printf '# edgepose GPU check\n\nNOT RUN: no Python with torch on this machine (see env.txt).\n' > "$OUT_DIR/gpu_check.md"
    exit 1
  fi
  PY=$FALLBACK
  NOTE="no Python here has a CUDA torch (tried ${EDGEPOSE_PYTHON:-} python3 python .venv); ran $PY on the CPU"
  say "$NOTE"
fi

missing=$("$PY" - <<'EOF'
import importlib.util
print(" ".join(m for m in ("numpy", "cv2", "rich", "typer", "onnx", "onnxruntime")
               if importlib.util.find_spec(m) is None))
EOF
)
if [ -n "$missing" ]; then
  say "missing modules for $PY: $missing"
  WH=${WHEELHOUSE:-$ROOT/wheelhouse}
  if [ -d "$WH" ]; then
    pkgs=$(echo "$missing" | sed 's/\bcv2\b/opencv-python-headless/')
    say "installing from $WH: $pkgs"
    # shellcheck disable=SC2086
    "$PY" -m pip install --no-index --find-links "$WH" $pkgs >> "$LOG" 2>&1 || say "pip --no-index failed (see above)"
  else
    say "no wheel folder (\$WHEELHOUSE or wheelhouse/): the sections needing them are skipped"
  fi
  NOTE="${NOTE:+$NOTE; }missing before the run: $missing"
fi

# GPU_CHECK_PYTHONPATH: extra module folders (e.g. a carried site-packages of pure-Python deps)
export PYTHONPATH="$ROOT${GPU_CHECK_PYTHONPATH:+:$GPU_CHECK_PYTHONPATH}${PYTHONPATH:+:$PYTHONPATH}"
export EDGEPOSE_CACHE="$OUT_DIR/work/cache"
ARGS=(--out "$OUT_DIR" --budget-s $((BUDGET - 40)) --note "python $PY${NOTE:+; $NOTE}")
say "running: $PY benchmarks/gpu_check.py ${ARGS[*]} $*"
timeout --kill-after 10 "$BUDGET" "$PY" benchmarks/gpu_check.py "${ARGS[@]}" "$@" 2>&1 | tee "$OUT_DIR/gpu_check.log"
rc=${PIPESTATUS[0]}
say "exit $rc; report: $OUT_DIR/gpu_check.md"
rm -rf "$OUT_DIR/work"  # bundles, engine caches: large; the timings are in the report
exit "$rc"
