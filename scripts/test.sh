#!/usr/bin/env bash
# The README's test command: set up (idempotent), then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. "${EDGEPOSE_VENV:-.venv}/bin/activate"
python -m pytest -q -p no:cacheprovider --durations=15 "$@"
