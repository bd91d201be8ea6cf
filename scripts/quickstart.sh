#!/usr/bin/env bash
# Set up, then optimize one example problem with the C++ DSL on the CPU (no GPU, no LLM).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
akg optimize examples/problems/${1:-01_pointwise_chain.py} --dsl cpp --device cpu --out out/quickstart --budget ${BUDGET:-12}
