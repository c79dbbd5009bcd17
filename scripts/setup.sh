#!/usr/bin/env bash
# Set up edgepose on a fresh machine: a venv with the CPU torch wheel, every
# export/runtime stack from one constraints file, and the real test material.
#   bash scripts/setup.sh            # everything (export stacks, dev tools, assets)
#   EDGEPOSE_EXTRAS=onnx bash scripts/setup.sh   # a lighter install
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${EDGEPOSE_VENV:-.venv}
EXTRAS=${EDGEPOSE_EXTRAS:-all,dev}
PY=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
. "$VENV/bin/activate"
python -m pip install -q --upgrade pip
# CPU torch first: a bare 'torch' requirement on a machine without torch pulls
# several GB of CUDA packages. TORCH_INDEX lets other machines name the CPU index
# (e.g. https://download.pytorch.org/whl/cpu); this machine finds the wheel locally.
if ! python -c "import torch" 2>/dev/null; then
  python -m pip install -q "torch==2.13.0" ${TORCH_INDEX:+--index-url "$TORCH_INDEX" --extra-index-url https://pypi.org/simple}
fi
python -m pip install -q -c constraints.txt -e ".[${EXTRAS}]"
if [ "${EDGEPOSE_SKIP_ASSETS:-0}" != 1 ] && [ -x scripts/fetch_assets.sh ]; then
  bash scripts/fetch_assets.sh || echo "warning: real test material could not be fetched; tests that need it will skip"
fi
echo "edgepose set up in $VENV ($(python -c 'import edgepose, torch; print("edgepose", edgepose.__version__, "torch", torch.__version__)'))"
