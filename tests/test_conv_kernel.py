"""Convolutions as generated implicit-GEMM kernels (family conv_epilogue): planned beside the
library convolution, computing what the model computes (planeval, and the Triton kernel in its
interpreter), with schedules per shape and the TF32 policy of the reference."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from akg import ir, plugins
from akg.agents import analyzer, designer
from akg.dsls.triton import schedules as triton_schedules
from akg.dsls.triton.dsl import TritonDSL
from akg.ir import Schedule
from akg.plugins import find_hardware
from conv_kernel_cases import CASES, PLAN, SMALL_TILES, TILED_CASES, all_plans, candidate_source, conv_plan, write_problem
from rewrite_cases import graphs, plans, planeval_matches, write_problem as write_source

RUNNER = Path(__file__).parent / "conv_kernel_cases.py"


def _conv_groups(plan: ir.KernelPlan) -> list[ir.FusedGroup]:
    return [g for g in plan.groups if g.family == "conv_epilogue"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_case_has_one_conv_kernel_with_its_epilogue_and_keeps_the_library_plan(case, tmp_path):
    problem = write_problem(tmp_path, case)
    found = all_plans(problem)
    plan = next(p for p in found if p.name == PLAN)
    # every pointwise op after the convolution runs in its epilogue: one kernel, no library compute
    assert [g.family for g in plan.groups] == ["conv_epilogue"]
    assert len(plan.groups[0].nodes) >= 2   # the convolution and at least its bias or activation
    library = next(p for p in found if p.name == "fuse-all")   # still measured beside it
    assert any(isinstance(g.kernel, ir.LibraryCall) and "conv" in g.kernel.op for g in library.groups)
    planeval_matches(problem, plan.graph)


def test_kernel_spec_carries_the_convolution_geometry(tmp_path):
    (group,) = _conv_groups(conv_plan(write_problem(tmp_path, "conv2d-stride2-dilation-relu-bias")))
    k = group.kernel
    assert (k.in_shape, k.weight_shape, k.out_shape) == ((2, 3, 11, 9), (10, 3, 3, 3), (2, 10, 6, 5))
    assert (k.stride, k.padding, k.dilation) == ((2, 2), (2, 2), (2, 2))
    assert k.gemm == (2 * 6 * 5, 10, 27)
    assert {op.value for op in k.operands} == {"p:conv.bias", "p:bias"}


def test_same_padding_pads_before_as_torch_does(tmp_path):
    (group,) = _conv_groups(conv_plan(write_problem(tmp_path, "conv2d-same-nobias-scale-clamp")))
    assert group.kernel.padding == (1, 0) and group.kernel.out_shape == (1, 7, 7, 6)


GROUPED = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 8, 3, groups=2)

    def forward(self, x):
        return torch.relu(self.conv(x))

def get_inputs():
    return [torch.randn(2, 4, 6, 6)]

def get_init_inputs():
    return []
'''

TRANSPOSED = GROUPED.replace("nn.Conv2d(4, 8, 3, groups=2)", "nn.ConvTranspose2d(4, 8, 3, stride=2)")


@pytest.mark.parametrize("body", [GROUPED, TRANSPOSED], ids=["grouped", "transposed"])
def test_grouped_and_transposed_convolutions_stay_library_calls(body, tmp_path):
    problem = write_source(tmp_path, body)
    _, graph = graphs(problem, "none")
    found = plans(graph)
    assert not any(_conv_groups(p) for p in found)
    assert PLAN not in [p.name for p in found]   # the same plan as fuse-all, kept once


def test_other_dsls_skip_the_conv_plan(tmp_path):
    plan = conv_plan(write_problem(tmp_path, "conv2d-several-tiles"))
    hw = plugins.get_backend("cpu").detect()
    assert designer.plan_options(plan, plugins.get_dsl("cpp"), hw) is None
    assert designer.plan_options(plan, plugins.get_dsl("triton"), hw) is not None


def test_flops_and_bytes_follow_the_graph_not_the_plan(tmp_path):
    """The analyzer counts the convolution's 2 * out * C_in * taps FLOPs whichever plan runs it."""
    problem = write_problem(tmp_path, "conv2d-several-tiles")
    analysis = analyzer.analyze(problem, [find_hardware("h200")])
    out, weight = (2, 40, 8, 8), (40, 6, 3, 3)
    conv_flops = 2 * 2 * 40 * 8 * 8 * 6 * 9
    assert conv_flops <= analysis.flops <= conv_flops + 2 * 2 * 40 * 64   # + the bias add and relu
    assert analysis.bytes_moved == 4 * (2 * 6 * 8 * 8 + 40 * 6 * 9 + 40 + 2 * 40 * 8 * 8)
    assert out and weight


# -- schedules -----------------------------------------------------------------------------------

KB_LIKE = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3)

    def forward(self, x):
        return torch.relu(self.conv(x))

def get_inputs():
    return [torch.rand(32, 64, 128, 128)]

def get_init_inputs():
    return []
'''


def _kb_group(tmp_path, dtype: str = "float32") -> ir.FusedGroup:
    body = KB_LIKE if dtype == "float32" else KB_LIKE.replace("torch.rand(32, 64, 128, 128)",
                                                             f"torch.rand(32, 64, 128, 128, dtype=torch.{dtype})") \
        .replace("nn.Conv2d(64, 128, 3)", f"nn.Conv2d(64, 128, 3).to(torch.{dtype})")
    problem = write_source(tmp_path, body)
    (group,) = _conv_groups(next(p for p in plans(graphs(problem, "none")[1]) if p.name == PLAN))
    return group


def test_gpu_schedules_rank_tiles_for_the_implicit_gemm_without_split_k(tmp_path):
    group = _kb_group(tmp_path)
    hw = find_hardware("h200")
    found = TritonDSL(allow_tf32=False).schedules(group, hw)
    assert 3 <= len(found) <= triton_schedules.MAX_SCHEDULES and len(set(found)) == len(found)
    assert all(s.get("SPLIT") is None for s in found)
    assert found[0].get("precision") == "tf32x3" and "ieee" in {s.get("precision") for s in found}
    assert all(s.get("BN") <= 128 and s.get("BK") == 32 for s in found)   # C_out = 128; 128 bytes of K
    text = TritonDSL().render([(0, group.with_schedule(found[0]) if hasattr(group, "with_schedule")
                                else ir.FusedGroup(group.nodes, group.family, group.kernel, found[0]))], "cuda")
    assert 'input_precision="tf32x3"' in text and "TRITON_INTERPRET" not in text


def test_fp32_convolutions_use_tf32_when_cudnn_does(tmp_path, monkeypatch):
    group = _kb_group(tmp_path)
    hw = find_hardware("h200")
    monkeypatch.delenv("AKG_TRITON_ALLOW_TF32", raising=False)
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32"
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32x3"
    monkeypatch.setenv("AKG_TRITON_ALLOW_TF32", "1")
    assert TritonDSL().schedules(group, hw)[0].get("precision") == "tf32"


def test_half_precision_convolutions_have_no_precision_knob(tmp_path):
    group = _kb_group(tmp_path, "float16")
    found = TritonDSL().schedules(group, find_hardware("h200"))
    assert found and all(s.get("precision") is None for s in found)
    assert found[0].get("BK") == 64   # 128 bytes of fp16


# -- the Triton kernel in its interpreter ------------------------------------------------------

@pytest.fixture(scope="module")
def interpreter_results(tmp_path_factory):
    pytest.importorskip("triton")
    requests = sorted(CASES) + [f"{name}@small" for name in TILED_CASES] + [TF32_CASE]
    env = dict(os.environ, TRITON_INTERPRET="1", TRITON_CACHE_DIR=str(tmp_path_factory.mktemp("triton")),
               PYTHONWARNINGS="ignore", TMPDIR=str(tmp_path_factory.mktemp("kernels")))
    done = subprocess.run([sys.executable, str(RUNNER)], input=json.dumps(requests), capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("request_id", sorted(CASES) + [f"{name}@small" for name in TILED_CASES])
def test_triton_conv_kernel_matches_torch_in_the_interpreter(request_id, interpreter_results):
    error = interpreter_results[request_id]
    assert isinstance(error, float), error
    assert error < 1e-5


TF32_CASE = "conv2d-stride2-dilation-relu-bias@tf32"


def test_tf32_schedule_rounds_its_operands_to_nearest_as_cudnn_does(interpreter_results):
    """The interpreter's dot keeps fp32, so the kernel's output is the convolution of exactly the
    operands it rounded: against a float64 convolution of TF32-rounded (nearest) input and weights
    it agrees to fp32 accumulation error; unrounded operands would be ~1e-4 away."""
    error = interpreter_results[TF32_CASE]
    assert isinstance(error, float), error
    assert error < 2e-6


def test_rendered_kernel_gathers_the_window_and_fuses_the_epilogue(tmp_path):
    source = candidate_source(write_problem(tmp_path, "conv2d-stride2-dilation-relu-bias"), SMALL_TILES)
    assert source.count("@triton.jit\ndef _akg_g") == 1 and "aten.conv" not in source.split("class ModelNew")[1]
    assert "tl.dot(" in source and "tl.maximum(" in source and "AKG_LIBRARY_OPS = ()" in source


@pytest.mark.slow   # a harness run with Triton's interpreter: ~20 s on 2 cores
def test_generated_convolution_candidate_passes_the_strict_harness(tmp_path):
    pytest.importorskip("triton")
    from akg.harness import evaluate
    from rewrite_cases import CORRECTNESS_ONLY
    problem = write_problem(tmp_path, "conv2d-stride2-dilation-relu-bias")
    source = candidate_source(problem)
    verdict = evaluate(problem, source, "conv-kernel", device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason


def test_offsets_past_int32_are_computed_in_int64(tmp_path):
    """An output of more than 2**31 elements: rows, reduction indices and channels go to int64."""
    (group,) = _conv_groups(conv_plan(write_problem(tmp_path, "conv2d-several-tiles")))
    k = group.kernel
    n, c, h, w = 1 << 14, 6, 128, 128   # 16384 x 40 x 128 x 128 outputs
    out = (n, 40, h, w)
    big = ir.ConvKernel(
        input=ir.Operand("x", ir.TensorType((n, c, h, w), "float32"), ir.contiguous_strides((n, c, h, w))),
        weight=k.weight, in_shape=(n, c, h, w), weight_shape=k.weight_shape, out_shape=out,
        stride=k.stride, padding=k.padding, dilation=k.dilation,
        outputs=tuple(ir.Output(o.value, o.expr, ir.TensorType(out, "float32"), ir.contiguous_strides(out))
                      for o in k.outputs), operands=k.operands)
    big_group = ir.FusedGroup(group.nodes, group.family, big, Schedule().with_(**SMALL_TILES))
    big_group.verify()
    text = TritonDSL().render([(0, big_group)], "cuda")
    assert f"t_m = tl.minimum(rm, {n * h * w - 1}).to(tl.int64)" in text
    assert "kk = k0 + rk.to(tl.int64)" in text and "co_ = rn.to(tl.int64)" in text
    small = TritonDSL().render([(0, ir.FusedGroup(group.nodes, group.family, k, Schedule().with_(**SMALL_TILES)))], "cuda")
    assert "tl.int64" not in small
