"""Every Triton template family, rendered and run under Triton's interpreter on the CPU.

Triton decides at import time whether its own library functions are interpreted, so the kernels
run in one fresh process with TRITON_INTERPRET=1 (as the harness worker runs a candidate); each
test then checks its own result from that run.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("triton")

SPECS = Path(__file__).parent / "gpu" / "triton_specs.py"
sys.path.insert(0, str(SPECS.parent))
from triton_specs import CASES, CPU_SIZES  # noqa: E402

from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.ir import Schedule  # noqa: E402

TOLERANCE = 1e-4
CASE_NAMES = sorted(c.name for c in CASES)


def knobs(**values) -> dict:
    return dict(num_warps=4, **values)


VARIANTS = {
    "softmax-online": ("softmax_lse", knobs(variant="looped", ROWS=2, RBLOCK=64, online=True)),
    "softmax-three-pass": ("softmax_lse", knobs(variant="looped", ROWS=1, RBLOCK=128, online=False)),
    "layer-norm-looped": ("layer_norm", knobs(variant="looped", ROWS=2, RBLOCK=64)),
    "sum-middle-columns": ("sum_middle", knobs(variant="looped", ROWS=16, RBLOCK=4)),
    "argmax-looped": ("argmax_last", knobs(variant="looped", ROWS=4, RBLOCK=16)),
    "argmax-ties-looped": ("argmax_ties", knobs(variant="looped", ROWS=2, RBLOCK=8)),
    "argmin-persistent": ("argmin_first", knobs(variant="persistent", ROWS=4, RBLOCK=64)),
    "cumsum-looped": ("cumsum", knobs(variant="looped", ROWS=2, RBLOCK=16)),
    "mse-split": ("mse_all", knobs(variant="split", ROWS=1, RBLOCK=128, SPLIT=7)),
    "logsumexp-split-online": ("logsumexp", knobs(variant="split", ROWS=2, RBLOCK=64, SPLIT=4, online=True)),
    "sum-middle-split": ("sum_middle", knobs(variant="split", ROWS=8, RBLOCK=4, SPLIT=3)),
    "argmax-split": ("argmax_last", knobs(variant="split", ROWS=1, RBLOCK=8, SPLIT=4)),
    "argmax-ties-split": ("argmax_ties", knobs(variant="split", ROWS=2, RBLOCK=8, SPLIT=3)),
    "argmin-first-split": ("argmin_first", knobs(variant="split", ROWS=4, RBLOCK=8, SPLIT=3)),
    "nhwc-tiled": ("nhwc_bias_relu", knobs(variant="tiled", YBLOCK=4, XBLOCK=8)),
    "nhwc-tiled-ragged": ("nhwc_bias_relu", knobs(variant="tiled", YBLOCK=2, XBLOCK=16)),
    "gelu-small-block": ("bias_gelu", knobs(BLOCK=32)),
    "matmul-small-tiles": ("linear_bias_relu", knobs(BM=16, BN=32, BK=16, GROUP_M=2, num_stages=1, precision="ieee")),
    # The split-TF32 product (precision only matters on a GPU) with ragged K and rows.
    # Split-K: slices of K summed into a workspace, then the epilogue kernel (even and ragged K).
    "matmul-split-k": ("linear_bias_relu", knobs(BM=16, BN=16, BK=16, GROUP_M=2, num_stages=1, SPLIT=3, precision="tf32x3")),
    "matmul-split-k-ragged": ("linear_bias_relu", knobs(BM=32, BN=32, BK=32, GROUP_M=1, num_stages=2, SPLIT=2, precision="ieee")),
    "bmm-split-k": ("bmm_scale", knobs(BM=16, BN=16, BK=16, GROUP_M=2, num_stages=1, SPLIT=2, precision="tf32x3")),
    "matmul-tf32x3-ragged": ("linear_bias_relu", knobs(BM=32, BN=16, BK=32, GROUP_M=3, num_stages=2, precision="tf32x3")),
}


@pytest.fixture(scope="module")
def interpreter_results(tmp_path_factory):
    requests = [{"id": name, "case": name} for name in CASE_NAMES]
    requests += [{"id": vid, "case": case, "knobs": k} for vid, (case, k) in VARIANTS.items()]
    # TMPDIR: the kernel files the specs write (akg-triton-*) stay inside pytest's own temp folder.
    env = dict(os.environ, TRITON_INTERPRET="1", TRITON_CACHE_DIR=str(tmp_path_factory.mktemp("triton")),
               PYTHONWARNINGS="ignore", TMPDIR=str(tmp_path_factory.mktemp("kernels")))
    done = subprocess.run([sys.executable, str(SPECS)], input=json.dumps(requests), capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", CASE_NAMES)
def test_family_matches_torch_with_interpreter_schedule(name, interpreter_results):
    error = interpreter_results[name]
    assert isinstance(error, float), error
    assert error < TOLERANCE


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_schedule_variants_compute_the_same_function(variant, interpreter_results):
    error = interpreter_results[variant]
    assert isinstance(error, float), error
    assert error < TOLERANCE


def test_interpreter_header_is_set_only_for_cpu():
    case = next(c for c in CASES if c.name == "bias_gelu")
    group = case.group(CPU_SIZES["bias_gelu"], Schedule().with_(BLOCK=64, num_warps=4))
    cpu_text = TritonDSL().render([(0, group)], "cpu")
    gpu_text = TritonDSL().render([(0, group)], "cuda")
    assert cpu_text.index('TRITON_INTERPRET"] = "1"') < cpu_text.index("import triton")
    assert "TRITON_INTERPRET" not in gpu_text and "libdevice.tanh" in gpu_text
    assert "_akg_g0_kernel[grid]" in gpu_text and "BLOCK=64" in gpu_text
