#!/usr/bin/env bash
# Create .venv (if missing) and install scdiff into it, with the test and docs tools and the
# table metrics (sdmetrics), which the tests and the tabular tutorial use, and RDKit (SMILES).
# torch is pinned to the CPU build first so pip never pulls a multi-GB CUDA build on a laptop/CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "torch==2.13.0"
fi
.venv/bin/python -m pip install -q -e ".[dev,docs,tabular,chem]"
