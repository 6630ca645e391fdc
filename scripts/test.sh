#!/usr/bin/env bash
# Install into .venv and run the fast test suite (pass "-m slow" or "-m ''" for the long checks).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
