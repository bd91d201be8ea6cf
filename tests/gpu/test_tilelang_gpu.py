"""The tilelang DSL on a real NVIDIA GPU: every test case (fp32, fp16, bf16; pointwise, row
reductions, matmul + epilogue) rendered for CUDA at GPU sizes, compiled by tilelang, launched and
compared with torch; every schedule the search would try (slow); one optimize end to end.

Needs tilelang and a CUDA toolkit it finds (nvcc and headers: /usr/local/cuda, or the
nvidia-cuda-nvcc and nvidia-cuda-cccl wheels). The programs of all cases are compiled at once in
threads (tilelang.par_compile) before the first test: about 15 nvcc builds."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)
tilelang = pytest.importorskip("tilelang", reason="tilelang is not installed (bench/gpu_run.sh installs .whl/*.whl)")

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))
from tilelang_cases import CASES, load_group, max_error  # noqa: E402

from akg import plugins  # noqa: E402
from akg.dsls.tilelang.dsl import TileLangDSL  # noqa: E402

# fp32 matmuls run on TF32 tensor cores (about 1e-3 relative); everything else as on the CPU.
TOLERANCE = {"float32": 1e-4, "float16": 1e-2, "bfloat16": 2e-2}
TF32_TOLERANCE = 5e-3


def _tolerance(case) -> float:
    return TF32_TOLERANCE if case.family == "matmul_epilogue" and case.dtype == "float32" else TOLERANCE[case.dtype]


@pytest.fixture(scope="module")
def launchers(tmp_path_factory):
    """Each case's launcher, its programs compiled beforehand all at once (tilelang.par_compile
    fills tilelang's disk cache, from which each launcher's first call loads them)."""
    folder = tmp_path_factory.mktemp("tilelang-gpu")
    dsl, hardware = TileLangDSL(allow_tf32=True), plugins.get_backend("cuda").detect()
    found, programs = {}, []
    for case in CASES:
        kernel, _, _ = case.make(case.gpu, "meta")
        schedule = dsl.schedules(case.group(kernel), hardware)[0]
        launch = load_group(dsl.render([(0, case.group(kernel, schedule))], "cuda"), folder)
        found[case.name] = launch
        programs += [build() for name, build in launch.__globals__.items()
                     if name.startswith("_akg_tl") and name.endswith("_program")]
    tilelang.par_compile(programs, target="cuda", ignore_error=True)   # failures resurface per test
    return found


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_matches_torch(case, launchers):
    torch.manual_seed(0)
    _, inputs, want = case.make(case.gpu, "cuda")
    got = launchers[case.name](*inputs)
    torch.cuda.synchronize()
    assert max_error(list(got), want) < _tolerance(case)


def test_misaligned_view_is_copied_before_the_program_reads_it(launchers):
    case = next(c for c in CASES if c.name == "bias_gelu")
    torch.manual_seed(0)
    _, inputs, want = case.make(case.gpu, "cuda")
    rows, cols = case.gpu
    shifted = torch.empty(rows * cols + 1, device="cuda")[1:].view(rows, cols)   # 4 bytes past a boundary
    shifted.copy_(inputs[0])
    assert max_error(list(launchers[case.name](shifted, inputs[1])), want) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_schedule_the_search_would_try(case, tmp_path):
    torch.manual_seed(0)
    kernel, inputs, want = case.make(case.gpu, "cuda")
    dsl, hardware = TileLangDSL(allow_tf32=True), plugins.get_backend("cuda").detect()
    for schedule in dsl.schedules(case.group(kernel), hardware):
        launch = load_group(dsl.render([(0, case.group(kernel, schedule))], "cuda"), tmp_path)
        assert max_error(list(launch(*inputs)), want) < _tolerance(case), dict(schedule.knobs)


def test_optimize_end_to_end(tmp_path):
    problem = TESTS.parent / "examples" / "problems" / "06_softmax.py"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "tilelang",
                           "--device", "cuda", "--budget", "3", "--out", str(tmp_path / "out"),
                           "--store", str(tmp_path / "s.db"), "--json"],
                          capture_output=True, text=True, timeout=900, env=dict(os.environ, AKG_SIZE="gpu"))
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    generated = [c for c in report["candidates"] if c["origin"] == "template"]
    assert any(c["correct"] for c in generated), [c["reason"] for c in generated]
