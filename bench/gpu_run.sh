#!/usr/bin/env bash
# One call on a CUDA machine: install akg, run the GPU tests, the Triton micro-benchmark and, when the
# CLI has it, `akg bench` over examples/problems. Everything lands in OUTDIR.
#   bench/gpu_run.sh OUTDIR
set -uo pipefail
OUTDIR=${1:?usage: bench/gpu_run.sh OUTDIR}
mkdir -p "$OUTDIR"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$(mktemp -d)} AKG_CACHE_DIR=${AKG_CACHE_DIR:-$(mktemp -d)}

python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUTDIR/install.log" 2>&1 \
    || { echo "akg did not install: see $OUTDIR/install.log"; exit 2; }
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"; } >"$OUTDIR/env.txt" 2>&1

echo "== pytest -m gpu"
timeout "${AKG_GPU_TEST_TIMEOUT:-240}" python3 -m pytest -m gpu tests/gpu -q -p no:cacheprovider -x 2>&1 \
    | tee "$OUTDIR/pytest-gpu.log" | tail -n 15

echo "== bench/triton_kernels.py"
timeout "${AKG_GPU_BENCH_TIMEOUT:-300}" python3 bench/triton_kernels.py --out "$OUTDIR/triton-kernels.json" 2>&1 \
    | tee "$OUTDIR/triton-kernels.log" | grep -v Warning | tail -n 20

if command -v akg >/dev/null && akg bench --help >/dev/null 2>&1; then
    echo "== akg bench"
    AKG_SIZE=gpu timeout "${AKG_GPU_SUITE_TIMEOUT:-120}" akg bench examples/problems --dsl triton --device cuda \
        --out "$OUTDIR/h100-triton.json" 2>&1 | tee "$OUTDIR/akg-bench.log" | tail -n 40
fi
