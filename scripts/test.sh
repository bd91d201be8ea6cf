#!/usr/bin/env bash
# Set up, then run the test suite (CPU only; GPU tests are selected with -m gpu on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export AKG_CACHE_DIR=${AKG_CACHE_DIR:-$PWD/.akg/test-cache}
python -m pytest -q "$@"
