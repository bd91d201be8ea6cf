#!/usr/bin/env bash
# One call on a CUDA machine: install akg, then the steps asked for, everything landing in OUTDIR.
#   bench/gpu_run.sh OUTDIR [STEPS] [FIRST LAST]
# STEPS: comma-separated from tests (pytest -m gpu), kernels (bench/triton_kernels.py), reuse (stored
#        verdicts replayed, --remeasure, versions and the roofline floor in report.json),
#        suite (akg bench over examples/problems/FIRST..LAST at GPU sizes),
#        compile (examples/torch_compile.py: torch.compile(backend="akg") against eager and Inductor),
#        port (akg migrate of examples/migrate and akg port of examples/library, Triton sources, to
#        each DSL in AKG_PORT_DSLS that is installed). Default: tests,kernels,suite.
#        Also: throughput (bench/throughput.py on memory-bound problems with 1-8 GB inputs from
#        AKG_KB_DIR; AKG_THROUGHPUT_ARGS adds its flags, e.g. "--whole-budget --runs 1"), kernelbench (akg bench over AKG_KB_DIR, resumable, and its table of every
#        problem of the suite, kernelbench-LEVEL.md, by bench/kb_table.py: see below),
#        profile (one optimize of AKG_PROFILE_PROBLEM twice, cold and warm store, under py-spy if installed),
#        gemm (bench/gemm_tiles.py: every matmul-epilogue schedule per GEMM shape vs cuBLAS + epilogue),
#        conv (bench/conv_tiles.py: every conv-epilogue schedule per convolution shape vs cuDNN +
#        epilogue and torch.compile; shapes in AKG_CONV_SHAPES).
# kernelbench step: AKG_KB_DIR (default shared/kernelbench/level1), AKG_KB_PROBLEMS (--problems
# selection, default all), AKG_TIME_LIMIT (seconds per problem, default 60), AKG_BUDGET, AKG_SEEDS
# (inductor: judge torch.compile's own code first, --seed inductor). Its store
# and results live in OUTDIR, so a second call with the same OUTDIR resumes where the first stopped.
# FIRST/LAST: problem number range for the suite step (default 1 99), so a long suite can be
# split over several calls; each call's JSON is merged with bench/merge_results.py. FIRST may
# instead be a comma-separated list of problem numbers (LAST is then ignored).
# AKG_DSL picks the suite's DSL (default triton), e.g. AKG_DSL=cuda_c bench/gpu_run.sh OUT suite;
# AKG_DSL=tilelang needs tilelang: its wheels in .whl/ are installed first (see below).
set -uo pipefail
OUTDIR=${1:?usage: bench/gpu_run.sh OUTDIR [STEPS] [FIRST LAST]}
STEPS=${2:-tests,kernels,suite}
FIRST=${3:-1}
LAST=${4:-99}
mkdir -p "$OUTDIR"
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-/tmp/akg-triton-cache} AKG_CACHE_DIR=${AKG_CACHE_DIR:-/tmp/akg-cache}

python3 -m pip install -q --no-deps --no-build-isolation -e . >"$OUTDIR/install.log" 2>&1 \
    || { echo "akg did not install: see $OUTDIR/install.log"; exit 2; }
# Wheels carried in .whl/ (tilelang and the runtime packages it needs that the machine lacks) go to
# /tmp/site, which this script's processes and akg's workers import from (PYTHONPATH is inherited).
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >"$OUTDIR/wheels.log" 2>&1 || echo "wheels in .whl/ did not install: see $OUTDIR/wheels.log"
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The same packages unpacked and packed as one .whl/*.tar.xz (xz packs tilelang, z3 and the rest
# into 45 MB where their wheels take 83), for a machine that takes a limited upload.
if compgen -G ".whl/*.tar.xz" >/dev/null; then
    mkdir -p /tmp/site && for a in .whl/*.tar.xz; do tar -xJf "$a" -C /tmp/site; done
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# A site-packages without compiled bytecode (a pip install writes it; some images strip it) costs
# every process of a run seconds of import: compile torch and triton once into a cache of our own
# (PYTHONPYCACHEPREFIX, inherited by akg's workers), unless AKG_PYC=0.
if [[ ${AKG_PYC:-1} == 1 ]]; then
    export PYTHONPYCACHEPREFIX=${PYTHONPYCACHEPREFIX:-/tmp/akg-pyc}
    SITE=$(python3 -c "import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))")
    TIMEFORMAT="compiled bytecode of torch and triton: %R s"
    time { python3 -m compileall -q -j 0 "$SITE/torch" "$SITE/triton" "$SITE/sympy" >/dev/null 2>&1; } 2>"$OUTDIR/pyc.txt"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
  python3 -c "import tilelang, tilelang.env as e; print('tilelang', tilelang.__version__, 'CUDA_HOME', e.CUDA_HOME or 'not found')" 2>/dev/null \
      || echo "tilelang not installed"
  # Import times (a host whose site-packages lack compiled bytecode pays them in every process).
  cat "$OUTDIR/pyc.txt" 2>/dev/null && rm -f "$OUTDIR/pyc.txt"
  TIMEFORMAT="import torch._dynamo, triton: %R s"
  for i in 1 2; do time python3 -c "import torch._dynamo, triton"; done
  python3 -c "import sys, torch, pathlib; p = pathlib.Path(sys.pycache_prefix or torch.__file__).parent if not sys.pycache_prefix else pathlib.Path(sys.pycache_prefix); print('pyc files:', len(list(p.glob('**/*.pyc'))))"
} >"$OUTDIR/env.txt" 2>&1
cat "$OUTDIR/env.txt"

if [[ ",$STEPS," == *",tests,"* ]]; then
    # One pytest per file, each under its own timeout, one line per test: a slow or hung file
    # cannot hide which tests of the others failed. AKG_GPU_TESTS picks files (default: all).
    : >"$OUTDIR/pytest-gpu.log"
    for f in ${AKG_GPU_TESTS:-tests/gpu/test_*.py tests/faults/test_gpu_faults.py}; do
        echo "== pytest -m gpu $f"
        timeout "${AKG_GPU_TEST_TIMEOUT:-150}" python3 -m pytest -m gpu "$f" -v -rfE --tb=line \
            -p no:cacheprovider 2>&1 | grep -E "PASSED|FAILED|ERROR|SKIPPED|passed|failed|^E |Error" \
            | tee -a "$OUTDIR/pytest-gpu.log" | grep -vE "PASSED|SKIPPED" | tail -n 12
        [[ ${PIPESTATUS[0]} == 124 ]] && echo "   $f: stopped at ${AKG_GPU_TEST_TIMEOUT:-150} s" | tee -a "$OUTDIR/pytest-gpu.log"
    done
fi

if [[ ",$STEPS," == *",kernels,"* ]]; then
    echo "== bench/triton_kernels.py"
    timeout "${AKG_GPU_BENCH_TIMEOUT:-300}" python3 bench/triton_kernels.py --out "$OUTDIR/triton-kernels.json" 2>&1 \
        | tee "$OUTDIR/triton-kernels.log" | grep -v Warning | tail -n 20
fi

if [[ ",$STEPS," == *",gemm,"* ]]; then
    echo "== bench/gemm_tiles.py"
    timeout "${AKG_GPU_BENCH_TIMEOUT:-420}" python3 bench/gemm_tiles.py --out "$OUTDIR/gemm-tiles.json" \
        ${AKG_GEMM_SHAPES:+--shapes "$AKG_GEMM_SHAPES"} 2>&1 | tee "$OUTDIR/gemm-tiles.log" | grep -v Warning | grep -v "^  " | tail -n 12
fi

if [[ ",$STEPS," == *",conv,"* ]]; then
    echo "== bench/conv_tiles.py"
    timeout "${AKG_GPU_BENCH_TIMEOUT:-420}" python3 bench/conv_tiles.py --compile --out "$OUTDIR/conv-tiles.json" \
        ${AKG_CONV_SHAPES:+--shapes "$AKG_CONV_SHAPES"} 2>&1 | tee "$OUTDIR/conv-tiles.log" | grep -v Warning | grep -v "^  " | tail -n 12
fi

if [[ ",$STEPS," == *",compile,"* ]]; then
    echo "== examples/torch_compile.py (cuda)"
    timeout "${AKG_GPU_COMPILE_TIMEOUT:-420}" python3 examples/torch_compile.py --device cuda --rows 32768 --dim 1024 \
        --budget "${AKG_BUDGET:-4}" --store "$OUTDIR/compile.db" 2>&1 | tee "$OUTDIR/torch-compile.log" | grep -v Warning | tail -n 20
    echo "== the same, a second process (store hits)"
    timeout 300 python3 examples/torch_compile.py --device cuda --rows 32768 --dim 1024 --budget 0 \
        --store "$OUTDIR/compile.db" 2>&1 | tee -a "$OUTDIR/torch-compile.log" | grep -v Warning | tail -n 8
fi

if [[ ",$STEPS," == *",suite,"* ]]; then
    TAG=${AKG_DSL:+$AKG_DSL-}$(echo "$FIRST-$LAST" | tr ',' '_')
    DSL=${AKG_DSL:-triton}
    echo "== akg bench problems $FIRST..$LAST with $DSL"
    SUITE=$(mktemp -d)
    for f in examples/problems/[0-9]*.py; do
        n=$((10#$(basename "$f" | cut -d_ -f1)))
        if [[ "$FIRST" == *,* ]]; then
            [[ ",$FIRST," == *",$n,"* ]] && cp "$f" "$SUITE/"
        elif (( n >= FIRST && n <= LAST )); then cp "$f" "$SUITE/"; fi
    done
    AKG_SIZE=gpu timeout "${AKG_GPU_SUITE_TIMEOUT:-420}" akg bench "$SUITE" --dsl "$DSL" --device cuda \
        --budget "${AKG_BUDGET:-8}" ${AKG_TIME_LIMIT:+--time-limit "$AKG_TIME_LIMIT"} \
        --store "$OUTDIR/suite.db" --results-dir "$OUTDIR/best" \
        --out "$OUTDIR/suite-$TAG.json" 2>"$OUTDIR/suite-$TAG.log" | tail -n 40
    tail -n 5 "$OUTDIR/suite-$TAG.log"
    # Keep OUTDIR to a handful of files: pack each problem's best.py and report.json.
    tar -czf "$OUTDIR/best-$TAG.tar.gz" -C "$OUTDIR" best suite.db 2>/dev/null && rm -rf "$OUTDIR/best" "$OUTDIR/suite.db"*
fi

KB_DIR=${AKG_KB_DIR:-shared/kernelbench/level1}

if [[ ",$STEPS," == *",throughput,"* ]]; then
    echo "== bench/throughput.py over $KB_DIR"
    timeout "${AKG_GPU_THROUGHPUT_TIMEOUT:-540}" python3 bench/throughput.py "$KB_DIR" --dsl triton --device cuda \
        --pick "${AKG_THROUGHPUT_PICK:-3}" ${AKG_THROUGHPUT_PROBLEMS:+--problems "$AKG_THROUGHPUT_PROBLEMS"} ${AKG_THROUGHPUT_ARGS:-} \
        --budget "${AKG_BUDGET:-16}" --time-limit "${AKG_TIME_LIMIT:-60}" --out "$OUTDIR/throughput.json" \
        2>"$OUTDIR/throughput.log" | tail -n 10
    grep '^{' "$OUTDIR/throughput.log" | tail -n 12
fi

if [[ ",$STEPS," == *",kernelbench,"* ]]; then
    TAG=$(basename "$KB_DIR")
    echo "== akg bench $KB_DIR ${AKG_KB_PROBLEMS:+--problems $AKG_KB_PROBLEMS} --time-limit ${AKG_TIME_LIMIT:-60}"
    # Resumable: an earlier call's results, store and best files in OUTDIR are unpacked and kept.
    [[ -f "$OUTDIR/kernelbench-$TAG.tar.gz" ]] && tar -xzf "$OUTDIR/kernelbench-$TAG.tar.gz" -C "$OUTDIR"
    timeout "${AKG_GPU_SUITE_TIMEOUT:-570}" akg bench "$KB_DIR" --dsl triton --device "${AKG_DEVICE:-cuda}" \
        ${AKG_KB_PROBLEMS:+--problems "$AKG_KB_PROBLEMS"} --time-limit "${AKG_TIME_LIMIT:-60}" \
        --budget "${AKG_BUDGET:-16}" --store "$OUTDIR/kb.db" --results-dir "$OUTDIR/kb-best" --resume \
        ${AKG_SEEDS:+--seed "$AKG_SEEDS"} \
        --out "$OUTDIR/kernelbench-$TAG.json" 2>"$OUTDIR/kernelbench-$TAG.log" | tail -n 40
    tail -n 5 "$OUTDIR/kernelbench-$TAG.log"
    # Every problem of the suite with its result, its first note, or "not run yet" (docs/kernelbench.md's format).
    python3 bench/kb_table.py "$OUTDIR/kernelbench-$TAG.json" --suite "$KB_DIR" --out "$OUTDIR/kernelbench-$TAG.md" \
        && grep -m1 '^\*\*' "$OUTDIR/kernelbench-$TAG.md"
    # Keep OUTDIR to a handful of files: the JSON, the log, and one archive with the store and best files.
    (cd "$OUTDIR" && tar -czf "kernelbench-$TAG.tar.gz" kb-best kb.db* 2>/dev/null && rm -rf kb-best kb.db*)
fi

if [[ ",$STEPS," == *",port,"* ]]; then
    INSTALLED=$(akg plugins --json 2>/dev/null | python3 -c "import json, sys; print(' '.join(json.load(sys.stdin)['dsls']))")
    for DSL in ${AKG_PORT_DSLS:-cuda_c tilelang triton}; do
        if [[ " $INSTALLED " != *" $DSL "* ]]; then echo "== port to $DSL: DSL not installed, skipped"; continue; fi
        echo "== akg migrate examples/migrate/swiglu_triton.py --to $DSL"
        AKG_SIZE=gpu timeout "${AKG_GPU_PORT_TIMEOUT:-420}" akg migrate examples/migrate/swiglu_triton.py --to "$DSL" \
            --device cuda --budget "${AKG_BUDGET:-8}" --store "$OUTDIR/port.db" --out "$OUTDIR/migrate-$DSL" \
            2>"$OUTDIR/migrate-$DSL.log" | tail -n 8
        echo "== akg port examples/library --to $DSL"
        AKG_SIZE=gpu timeout "${AKG_GPU_PORT_TIMEOUT:-420}" akg port examples/library --to "$DSL" --device cuda \
            --budget "${AKG_BUDGET:-8}" --store "$OUTDIR/port.db" --out "$OUTDIR/port-$DSL" \
            2>"$OUTDIR/port-$DSL.log" | tail -n 20
        cp "$OUTDIR/port-$DSL/report.json" "$OUTDIR/port-$DSL.json" 2>/dev/null
        cp "$OUTDIR/port-$DSL/report.html" "$OUTDIR/port-$DSL.html" 2>/dev/null
        tar -czf "$OUTDIR/port-$DSL.tar.gz" -C "$OUTDIR" "port-$DSL" "migrate-$DSL" 2>/dev/null \
            && rm -rf "$OUTDIR/port-$DSL" "$OUTDIR/migrate-$DSL"
    done
    rm -f "$OUTDIR/port.db"*
fi

if [[ ",$STEPS," == *",reuse,"* ]]; then
    # Stored verdicts on the GPU: a second run replays them ([stored] lines), --remeasure times them
    # again, report.json names the versions they depend on (torch, triton, device), and no verified
    # time lies below the roofline floor (best.suspect is null).
    for RUN in first second remeasure; do
        echo "== akg optimize 01_pointwise_chain --dsl triton ($RUN run)"
        AKG_SIZE=gpu timeout "${AKG_GPU_REUSE_TIMEOUT:-300}" akg optimize examples/problems/01_pointwise_chain.py \
            --dsl triton --device cuda --budget 4 --store "$OUTDIR/reuse.db" --out "$OUTDIR/reuse-$RUN" \
            $([[ $RUN == remeasure ]] && echo --remeasure) 2>"$OUTDIR/reuse-$RUN.log" | tail -n 6
        grep -c "\[stored\]" "$OUTDIR/reuse-$RUN.log" | sed 's/^/   lines replayed from the store: /'
        tail -n 2 "$OUTDIR/reuse-$RUN.log"
    done
    python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print('versions', r['versions']); \
print('best', {k: r['best'][k] for k in ('time_ms', 'eager_ms', 'speedup_vs_eager', 'roofline_fraction', 'suspect')}); \
print('stopped:', r['stopped'])" "$OUTDIR/reuse-second/report.json"
    rm -rf "$OUTDIR/reuse.db"* "$OUTDIR"/reuse-first "$OUTDIR"/reuse-remeasure
fi

if [[ ",$STEPS," == *",profile,"* ]]; then
    # Where one optimize's wall time goes: the progress log with its clock, report.json's phases, and,
    # where py-spy is installed (a wheel in .whl/), a sampled profile of every process of the run.
    P=${AKG_PROFILE_PROBLEM:-$KB_DIR/20_LeakyReLU.py}
    for RUN in cold warm; do
        echo "== akg optimize $(basename "$P") ($RUN: ${AKG_TIME_LIMIT:-60} s, budget ${AKG_BUDGET:-16})"
        CMD=(akg optimize "$P" --dsl "${AKG_DSL:-triton}" --device cuda --time-limit "${AKG_TIME_LIMIT:-60}"
             --budget "${AKG_BUDGET:-16}" --store "$OUTDIR/profile.db" --out "$OUTDIR/profile-$RUN")
        if command -v py-spy >/dev/null || [[ -x /tmp/site/bin/py-spy ]]; then
            SPY=$(command -v py-spy || echo /tmp/site/bin/py-spy)
            timeout 200 "$SPY" record --subprocesses --idle --rate 50 --format speedscope \
                -o "$OUTDIR/profile-$RUN.speedscope.json" -- "${CMD[@]}" 2>"$OUTDIR/profile-$RUN.log" | tail -n 4
        else
            timeout 200 "${CMD[@]}" 2>"$OUTDIR/profile-$RUN.log" | tail -n 4
        fi
        grep -E "^ *[0-9.]+s" "$OUTDIR/profile-$RUN.log" | head -n 30
        python3 -c "import json, sys; r = json.load(open(sys.argv[1])); print('phases', r.get('phases')); \
print('milestones', r.get('milestones'))" "$OUTDIR/profile-$RUN/report.json" 2>/dev/null
    done
    rm -rf "$OUTDIR/profile.db"*
fi
