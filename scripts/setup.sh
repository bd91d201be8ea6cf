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
# Headless Chromium for the tests that open akg's HTML reports; only as root with apt (CI), never
# fatal: without it those tests skip and say why. AKG_NO_BROWSER=1 leaves it out.
if [ -z "${AKG_NO_BROWSER:-}" ] && ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] \
        && command -v apt-get >/dev/null 2>&1; then
    { apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; }; } \
      || echo "setup: could not install chromium; the HTML report browser tests will skip"
fi
# NVRTC (a 60 MB wheel, no GPU needed) lets the tests build every cuda_c kernel the way candidates do.
python -c "import nvidia.cu13" 2>/dev/null || pip install -q nvidia-cuda-nvrtc \
    || echo "nvidia-cuda-nvrtc not installed: the cuda_c NVRTC tests will be skipped"
# TileLang (a 50 MB wheel plus z3): the tilelang tests compile its programs for the CPU (C target) and
# lower them to CUDA C without a GPU. The constraints keep the CPU torch.
python -c "import tilelang" 2>/dev/null || pip install -q -c scripts/constraints.txt "tilelang==0.1.15" \
    || echo "tilelang not installed: the tilelang tests will be skipped"
