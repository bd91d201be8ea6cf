"""The cuda_c DSL without a GPU: every kernel the tests render compiles with nvcc for sm_90, the
launchers pick the right kernels, schedules are validated, and candidates are linted."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from akg import plugins
from akg.dsls.cuda_c import schedules as cs
from akg.dsls.cuda_c.render import kernel_source
from akg.targets import RenderError
from cuda_c_cases import CASES

NVCC = shutil.which("nvcc")
needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA toolkit) is not installed; the compile check needs it")


def nvcc_cubin(source: str, folder: Path, arch: str = "sm_90") -> subprocess.CompletedProcess:
    cu = folder / "kernels.cu"
    cu.write_text(source)
    return subprocess.run([NVCC, f"-arch={arch}", "-cubin", "-std=c++17", "-diag-suppress", "177",
                           "-o", str(folder / "kernels.cubin"), str(cu)], capture_output=True, text=True, timeout=600)


def _groups():
    return [(i, case.group(case.make()[0])) for i, case in enumerate(CASES)]


@needs_nvcc
def test_every_test_kernel_compiles_with_nvcc(tmp_path):
    source, launchers = kernel_source(_groups())
    done = nvcc_cubin(source, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    symbols = subprocess.run(["cuobjdump", "-symbols", str(tmp_path / "kernels.cubin")], capture_output=True,
                             text=True).stdout if shutil.which("cuobjdump") else ""
    for i, _ in enumerate(CASES):
        assert f"akg_g{i}" in source
        if symbols:
            assert f"akg_g{i}" in symbols


def test_vector_loads_only_where_the_layout_allows():
    groups = dict(_groups())
    names = [c.name for c in CASES]
    vec, _ = kernel_source([(0, groups[names.index("pointwise_vec4")])])
    assert "akg_vec<float, 4> x0" in vec and "akg_g0_scalar" in vec
    # the bias broadcast over rows is contiguous along the inner dim: read as vectors too
    assert "akg_vec<float, 4> x1" in vec
    transposed, launchers = kernel_source([(0, groups[names.index("pointwise_transposed")])])
    assert "akg_vec<float, 4> x0" not in transposed and "akg_vec<float, 4> y0" in transposed
    assert "akg_aligned([o0], 16)" in launchers[0]


def test_split_reduction_has_a_partial_and_a_fold_kernel():
    groups = dict(_groups())
    i = [c.name for c in CASES].index("mean_split")
    source, launchers = kernel_source([(0, groups[i])])
    assert "akg_g0_partial" in source and "partial = torch.empty(32, dtype=torch.float64" in launchers[0]


def test_split_refuses_multi_stage_kernels():
    groups = dict(_groups())
    softmax = groups[[c.name for c in CASES].index("softmax_row")]
    forced = type(softmax)(softmax.nodes, softmax.family, softmax.kernel,
                           cs.ReductionSchedule("split", 256, 4).to_schedule())
    with pytest.raises(RenderError, match="single-stage"):
        kernel_source([(0, forced)])


@pytest.mark.parametrize("bad", [dict(threads=100), dict(vec=3)])
def test_pointwise_schedule_validates(bad):
    with pytest.raises(ValueError):
        cs.PointwiseSchedule(**bad)


def test_reduction_schedule_validates_and_round_trips():
    with pytest.raises(ValueError, match="split"):
        cs.ReductionSchedule("row", 256, 4)
    with pytest.raises(ValueError, match="variant"):
        cs.ReductionSchedule("diagonal")
    s = cs.ReductionSchedule("split", 512, 16)
    assert cs.ReductionSchedule.from_schedule(s.to_schedule()) == s
    with pytest.raises(ValueError, match="no knob"):
        cs.ScanSchedule.from_schedule(s.to_schedule())


def test_schedules_for_the_h200_are_valid_and_short():
    dsl, h200 = plugins.get_dsl("cuda_c"), plugins.find_hardware("h200")
    for i, group in _groups():
        found = dsl.schedules(group, h200)
        assert 1 <= len(found) <= cs.MAX_SCHEDULES and len(set(found)) == len(found)


def test_render_refuses_other_devices_and_library_groups():
    dsl = plugins.get_dsl("cuda_c")
    with pytest.raises(RenderError, match="runs on cuda"):
        dsl.render(_groups()[:1], "cpu")


def test_rendered_candidate_is_self_contained_python():
    dsl = plugins.get_dsl("cuda_c")
    text = dsl.render(_groups()[:2], "cuda")
    compile(text, "<candidate>", "exec")
    assert "import akg" not in text and "from akg" not in text
    assert "_AKG_CUDA_SOURCE = r'''" in text and "def akg_compile(" in text


def test_lint_flags_foreign_imports_and_missing_kernels():
    dsl = plugins.get_dsl("cuda_c")
    problems = dsl.lint("import triton\nclass ModelNew:\n    pass\n")
    assert any("imports triton" in p for p in problems) and any("__global__" in p for p in problems)


def test_kernel_findings_see_defined_and_launched_kernels():
    dsl = plugins.get_dsl("cuda_c")
    rendered = dsl.render(_groups()[:1], "cuda")
    assert dsl.kernel_findings(rendered) == []
    unlaunched = 'SRC = r"""extern "C" __global__ void k(float* x) { }"""\nclass ModelNew:\n    pass\n'
    assert "never launched" in dsl.kernel_findings(unlaunched)[0]
    assert "no CUDA-C kernel" in dsl.kernel_findings("class ModelNew:\n    pass\n")[0]


def _nvrtc_missing() -> bool:
    from akg.dsls.cuda_c import runtime
    try:
        runtime.akg_nvrtc()
    except runtime.AkgCudaError:
        return True
    return False


needs_nvrtc = pytest.mark.skipif(_nvrtc_missing(), reason="libnvrtc is not installed (pip install nvidia-cuda-nvrtc)")


@needs_nvrtc
def test_nvrtc_builds_every_test_kernel_and_caches_by_hash(tmp_path, monkeypatch):
    # The runtime candidates carry: NVRTC without system headers, as on the GPU machine.
    from akg.dsls.cuda_c import runtime
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))
    source, _ = kernel_source(_groups())
    cubin = runtime.akg_build(source, "sm_90")
    assert cubin[:4] == b"\x7fELF"
    path = Path(runtime.akg_cache_path(source, "sm_90"))
    assert path.read_bytes() == cubin
    path.write_bytes(b"cached")   # a second build reads the cache instead of compiling
    assert runtime.akg_build(source, "sm_90") == b"cached"
    assert runtime.akg_cache_path(source + " ", "sm_90") != str(path)


@needs_nvrtc
def test_nvrtc_errors_reach_the_caller_with_the_log():
    from akg.dsls.cuda_c import runtime
    with pytest.raises(runtime.AkgCudaError, match="NVRTC: .*undefined"):
        runtime.akg_compile('extern "C" __global__ void k() { undefined_name(); }', "sm_90")
    assert plugins.get_dsl("cuda_c").versions()["nvrtc"][0].isdigit()
