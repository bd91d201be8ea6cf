"""The tilelang DSL's templates on this machine (no GPU): every case rendered for the CPU, compiled
by TileLang's C target and compared with torch; every case rendered for CUDA and lowered to CUDA C
by TileLang's own pipeline (layout inference, pipelining, T.gemm's MMA choice) for an H200 —
without running it, which tests/gpu/test_tilelang_gpu.py does."""
from __future__ import annotations

import shutil
import subprocess

import pytest

pytest.importorskip("tilelang", reason="tilelang is not installed (pip install 'akg[tilelang]')")

import torch  # noqa: E402

from akg import plugins  # noqa: E402
from akg.dsls.tilelang import schedules  # noqa: E402
from akg.dsls.tilelang.dsl import TileLangDSL, cuda_sources  # noqa: E402
from akg.ir import FusedGroup, Load, ReductionKernel, Schedule, Stage, StageRef  # noqa: E402
from akg.targets import RenderError  # noqa: E402
from tilelang_cases import CASES, TOLERANCE, dense, load_group, max_error, out, reduced_strides  # noqa: E402

H200 = next(h for h in plugins.get_backend("cuda").descriptors() if h.name == "h200")


def _cpu_run(case, tmp_path, schedule=None, sizes=None):
    torch.manual_seed(0)
    kernel, inputs, want = case.make(sizes or case.cpu, "cpu")
    dsl = TileLangDSL()
    group = case.group(kernel)
    schedule = schedule or dsl.schedules(group, plugins.get_backend("cpu").detect())[0]
    source = dsl.render([(0, case.group(kernel, schedule))], "cpu")
    launch = load_group(source, tmp_path)
    return max_error(list(launch(*inputs)), want), source


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_matches_torch_on_the_cpu(case, tmp_path):
    if case.dtype == "bfloat16":
        pytest.skip("TileLang's C target has no bfloat16: this case is lowered for CUDA below and run by the GPU tests")
    assert _cpu_run(case, tmp_path)[0] < TOLERANCE[case.dtype]


@pytest.mark.parametrize("name, knobs", [
    ("softmax", dict(rows=4, rblock=64, threads=32)),          # looped over 5 tiles, ragged rows
    ("layer_norm", dict(rows=1, rblock=256, threads=128)),     # one tile per row
    ("bias_gelu", dict(block=64, threads=32)),                 # ragged last block
    ("linear_bias_gelu", dict(bm=16, bn=64, bk=16, threads=128, stages=2)),
])
def test_other_schedules_compute_the_same_function(name, knobs, tmp_path):
    case = next(c for c in CASES if c.name == name)
    assert _cpu_run(case, tmp_path, Schedule(tuple(sorted(knobs.items()))))[0] < TOLERANCE[case.dtype]


def _lower_first_gpu_schedule(case):
    kernel, _, _ = case.make(case.cpu, "cpu")
    dsl = TileLangDSL(allow_tf32=True)
    found = dsl.schedules(case.group(kernel), H200)
    assert found, f"no H200 schedule for {case.name}"
    return cuda_sources(dsl.render([(0, case.group(kernel, found[0]))], "cuda"))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_case_lowers_to_cuda_for_an_h200(case):
    sources = _lower_first_gpu_schedule(case)
    assert len(sources) == 1
    text = next(iter(sources.values()))
    assert "__global__" in text
    if case.family == "matmul_epilogue":
        assert "tl::gemm" in text or "wgmma" in text or "mma" in text
    if case.family == "reduction":
        assert "AllReduce" in text   # T.reduce_* across the program's threads


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_every_h200_schedule_lowers_to_cuda(case):
    kernel, _, _ = case.make(case.cpu, "cpu")
    dsl = TileLangDSL(allow_tf32=True)
    for schedule in dsl.schedules(case.group(kernel), H200):
        cuda_sources(dsl.render([(0, case.group(kernel, schedule))], "cuda"))


def _nvcc(source: str, folder) -> subprocess.CompletedProcess:
    """Build TileLang's CUDA C for an H200 (sm_90a) with its own headers, as it does on the GPU."""
    import tilelang.env
    path = folder / "kernel.cu"
    path.write_text(source)
    return subprocess.run(["nvcc", "-std=c++20", "-w", "-arch=sm_90a", "-cubin", "-o", str(folder / "kernel.cubin"),
                           str(path), "-I" + tilelang.env.CUTLASS_INCLUDE_DIR, "-I" + tilelang.env.TILELANG_TEMPLATE_PATH],
                          capture_output=True, text=True, timeout=300)


NVCC_DEFAULT = ("linear_bias_gelu_fp16",)   # T.gemm -> wgmma: the most template code; the rest with -m slow


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("case", [pytest.param(c, marks=() if c.name in NVCC_DEFAULT else pytest.mark.slow) for c in CASES],
                         ids=lambda c: c.name)
def test_lowered_cuda_builds_with_nvcc_for_sm90(case, tmp_path):
    done = _nvcc(next(iter(_lower_first_gpu_schedule(case).values())), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "kernel.cubin").stat().st_size > 0


def test_schedules_are_typed_and_validated():
    assert schedules.ReductionSchedule.from_schedule(Schedule((("rblock", 256), ("rows", 2), ("threads", 64)))) \
        == schedules.ReductionSchedule(2, 256, 64)
    with pytest.raises(ValueError, match="power of two"):
        schedules.PointwiseSchedule(block=1000)
    with pytest.raises(ValueError, match="threads"):
        schedules.ReductionSchedule(rows=1, rblock=32, threads=64)
    with pytest.raises(ValueError, match="has no knob BLOCK"):
        schedules.PointwiseSchedule.from_schedule(Schedule((("BLOCK", 64),)))
    for s in schedules.matmul(CASES[-1].make(CASES[-1].gpu, "meta")[0], H200):
        assert s.stages * (s.bm * s.bk + s.bk * s.bn) * 2 <= H200.shared_mem_per_block


def test_fp32_matmul_is_offered_on_the_gpu_only_when_tf32_is_allowed():
    case = next(c for c in CASES if c.name == "linear_bias_gelu")
    group = case.group(case.make(case.cpu, "cpu")[0])
    assert TileLangDSL(allow_tf32=False).schedules(group, H200) == []
    assert TileLangDSL(allow_tf32=True).schedules(group, H200)
    assert TileLangDSL(allow_tf32=False).schedules(group, plugins.get_backend("cpu").detect())   # exact on the CPU


def test_bfloat16_is_refused_on_the_cpu_and_rendered_for_cuda():
    case = next(c for c in CASES if c.name == "softmax_bf16")
    group = case.group(case.make(case.cpu, "cpu")[0])
    assert TileLangDSL().schedules(group, plugins.get_backend("cpu").detect()) == []
    with pytest.raises(RenderError, match="no bfloat16"):
        TileLangDSL().render([(0, group)], "cpu")
    assert "bfloat16" in TileLangDSL().render([(0, group)], "cuda")


def test_what_has_no_template_is_refused_with_its_reason():
    x = torch.randn(4, 8)
    kernel = ReductionKernel((4, 8), 1, (dense("x", x),), (Stage("prod", Load(0, "float32")),),
                             (out("p", StageRef(0, "float32"), (4,), "float32", reduced_strides((4, 8), 1), True),))
    group = FusedGroup(("n0",), "reduction", kernel)
    dsl = TileLangDSL()
    assert dsl.schedules(group, H200) == []
    with pytest.raises(RenderError, match="group 0 .*prod has no T.reduce_"):
        dsl.render([(0, group)], "cpu")
    with pytest.raises(RenderError, match="runs on cuda or cpu"):
        dsl.render([(0, group)], "mps")


def test_lint_and_findings_see_a_missing_program():
    dsl = TileLangDSL()
    assert dsl.lint("import torch\nclass ModelNew: pass\n") == ["no @T.prim_func program: the work would not run in TileLang"]
    assert dsl.kernel_findings("import torch\n") == ["no TileLang program: no function is decorated with @T.prim_func or @tilelang.jit"]
    case = CASES[0]
    source = dsl.render([(0, case.group(case.make(case.cpu, "cpu")[0]))], "cpu")
    assert dsl.kernel_findings(source) == []
    assert "import akg" not in source and "from akg" not in source   # candidates run without akg


@pytest.mark.parametrize("name, knobs", [
    ("mse_all", dict(rows=1, rblock=64, threads=32, split=7)),
    ("row_max_min", dict(rows=2, rblock=32, threads=32, split=3)),
])
def test_split_rows_compute_the_same_function(name, knobs, tmp_path):
    case = next(c for c in CASES if c.name == name)
    assert _cpu_run(case, tmp_path, Schedule(tuple(sorted(knobs.items()))))[0] < TOLERANCE[case.dtype]


@pytest.mark.parametrize("name, sizes, knobs", [
    ("softmax", (4, 256), dict(rows=2, rblock=128, threads=64)),
    ("mse_all", (4096,), dict(rows=1, rblock=256, threads=64, split=4)),
])
def test_exact_tiles_drop_the_bounds_checks(name, sizes, knobs, tmp_path):
    case = next(c for c in CASES if c.name == name)
    error, source = _cpu_run(case, tmp_path, Schedule(tuple(sorted(knobs.items()))), sizes)
    assert error < TOLERANCE[case.dtype]
    assert f" r < {sizes[-1]}" not in source                                 # no tile overhangs a row
    assert len(sizes) == 1 or "T.if_then_else(row <" not in source           # nor the rows


def test_split_is_offered_for_few_long_rows_and_refused_where_rows_depend_on_stages():
    dsl = TileLangDSL()
    case = next(c for c in CASES if c.name == "row_max_min")
    knobs = Schedule((("rblock", 32), ("rows", 2), ("split", 3), ("threads", 32)))
    source = dsl.render([(0, case.group(case.make(case.cpu, "cpu")[0], knobs))], "cpu")
    assert "_akg_tl0_combine_program" in source and "with T.Kernel(T.ceildiv(9, 2), 2," in source   # 40 = 2 slices of 32
    mse = next(c for c in CASES if c.name == "mse_all")
    first = dsl.schedules(mse.group(mse.make(mse.gpu, "meta")[0]), H200)[0]
    assert dict(first.knobs)["split"] > 1
    softmax = next(c for c in CASES if c.name == "softmax")
    kernel = softmax.make((2, 100000), "meta")[0]
    assert all(dict(s.knobs)["split"] == 1 for s in dsl.schedules(softmax.group(kernel), H200))
    with pytest.raises(RenderError, match="split variant: an output over the full row"):
        dsl.render([(0, softmax.group(kernel, Schedule((("rblock", 64), ("rows", 1), ("split", 4), ("threads", 32)))))], "cpu")


@pytest.mark.parametrize("name, sizes", [("bias_gelu", (1 << 16, 1 << 16)), ("mse_all", (1 << 32,)),
                                         ("linear_bias_gelu_fp16", (1 << 17, 1 << 15, 64))])
def test_indices_past_int32_are_64_bit_in_the_cuda(name, sizes):
    """Tensors of more than 2**31 elements (meta tensors: nothing is allocated) index in int64."""
    case = next(c for c in CASES if c.name == name)
    kernel = case.make(sizes, "meta")[0]
    dsl = TileLangDSL()
    source = dsl.render([(0, case.group(kernel, dsl.schedules(case.group(kernel), H200)[0]))], "cuda")
    assert "'int64')" in source
    assert any("int64_t" in text for text in cuda_sources(source).values())
