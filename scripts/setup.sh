#!/usr/bin/env bash
# Create .venv (once) with torch pinned first, then akg and its test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import torch" 2>/dev/null; then
    # Install the torch pin before anything else: an unpinned torch would pull GBs of CUDA wheels.
    pip install -q torch==2.13.0
fi
pip install -q -c scripts/constraints.txt -e ".[dev]"
