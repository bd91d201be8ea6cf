"""The hip DSL without an AMD GPU or hipcc: every test kernel renders in the HIP dialect and
compiles with nvcc through tests/hip_shim.h (a syntax and type check; it has not run on AMD GPUs)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from akg import plugins
from akg.dsls.hip.render import kernel_source
from akg.ir import FusedGroup
from cuda_c_cases import CASES

HERE = Path(__file__).parent
NVCC = shutil.which("nvcc")


def _groups():
    return [(i, case.group(case.make()[0])) for i, case in enumerate(CASES)]


@pytest.mark.skipif(NVCC is None, reason="nvcc is needed for the HIP syntax check (no hipcc here)")
def test_every_test_kernel_compiles_in_the_hip_dialect(tmp_path):
    source, _ = kernel_source(_groups())
    assert "__shfl_xor(v, offset, AKG_WARP)" in source and "#define AKG_WARP 64" in source
    (tmp_path / "k.cu").write_text(source)
    done = subprocess.run([NVCC, "-arch=sm_90", "-cubin", "-std=c++17", "-diag-suppress", "177", "-include",
                           str(HERE / "hip_shim.h"), "-o", str(tmp_path / "k.cubin"), str(tmp_path / "k.cu")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_hip_schedules_use_whole_wavefronts():
    dsl, mi300x = plugins.get_dsl("hip"), plugins.find_hardware("mi300x")
    assert mi300x.warp_size == 64 and mi300x.backend == "rocm"
    for _, group in _groups():
        for schedule in dsl.schedules(group, mi300x):
            assert dict(schedule.knobs)["threads"] % 64 == 0


def test_hip_candidate_uses_the_hip_runtime():
    group = _groups()[0]
    text = plugins.get_dsl("hip").render([group], "rocm")
    compile(text, "<candidate>", "exec")
    assert "hipModuleLaunchKernel" in text and "cuLaunchKernel" not in text


def test_rocm_backend_is_not_available_without_an_amd_gpu():
    assert plugins.get_backend("rocm").available() is False
