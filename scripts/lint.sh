#!/usr/bin/env bash
# Lint as CI does: ruff's formatter and linter (rules in pyproject.toml; ruff pinned in constraints.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
RUFF="${EDGEPOSE_VENV:-.venv}/bin/ruff"
"$RUFF" format --check .
"$RUFF" check .
