"""The "+channels-last" plans: 2-d convolutions run on NHWC copies of their inputs, and the fused
epilogue reads the NHWC result through the strides the layout replay found; a conv with other
consumers (group norm) or returned directly has its result converted back to NCHW."""
from __future__ import annotations

import dataclasses
import functools
import warnings

import pytest
import torch

from akg import ir, plugins
from akg.agents import coder, designer
from akg.agents.analyzer import plans_for
from akg.harness import HarnessConfig, evaluate
from akg.planeval import model_state, run_plan
from akg.problem import load_problem
from example_paths import EXAMPLE_PROBLEMS

CONV_RELU = next(p for p in EXAMPLE_PROBLEMS if p.stem == "27_conv2d_bias_relu")
PLAN = "fuse-all+channels-last"
CORRECTNESS_ONLY = HarnessConfig(seeds=(0,), distributions=("problem", "uniform"), time=False,
                                 measure_compile=False, timeout_s=300.0)


@functools.lru_cache(maxsize=None)
def _plans(path):
    problem = load_problem(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph, plans = plans_for(problem)
    return problem, graph, plans


def _channels_last_plan() -> ir.KernelPlan:
    _, _, plans = _plans(CONV_RELU)
    return next(p for p in plans if p.name == PLAN)


def _nhwc_strides(shape) -> tuple[int, ...]:
    return torch.empty(shape, device="meta").contiguous(memory_format=torch.channels_last).stride()


def test_conv_plan_converts_inputs_and_pins_the_conv_output_to_nhwc():
    plan = _channels_last_plan()
    library = [g.kernel.op for g in plan.groups if isinstance(g.kernel, ir.LibraryCall)]
    assert library == ["aten.clone.default", "aten.clone.default", "aten.conv2d.default", "aten.contiguous.default"]
    assert [g.family for g in plan.groups][-1] == "pointwise"
    conv = next(g.kernel for g in plan.groups if isinstance(g.kernel, ir.LibraryCall) and g.kernel.op == "aten.conv2d.default")
    x_nhwc, w_nhwc = conv.args[0].name, conv.args[1].name
    types = plan.graph.type_map()
    assert types[x_nhwc].strides == _nhwc_strides(types["x"].shape)
    assert types[w_nhwc].strides == _nhwc_strides(types["p:conv.weight"].shape)


def test_epilogue_reads_the_conv_output_with_nhwc_strides_and_writes_nchw():
    plan = _channels_last_plan()
    epilogue = plan.groups[-1].kernel
    conv_out = next(op for op in epilogue.operands if op.value == _pinned_conv_result(plan))
    shape = conv_out.type.shape
    assert conv_out.type.strides == _nhwc_strides(shape)
    n, c, h, w = _nhwc_strides(shape)
    # domain (N, C, H*W) after collapsing: channels are adjacent in memory, pixels C apart
    assert epilogue.domain == (shape[0], shape[1], shape[2] * shape[3])
    assert conv_out.strides == (n, c, w)
    (out,) = epilogue.outputs
    assert out.type.layout() == ir.contiguous_strides(shape) and out.strides == (shape[1] * shape[2] * shape[3], shape[2] * shape[3], 1)


def _expected_and_runner(problem):
    """The reference's output on seed-3 inputs, and a function running a plan on the same inputs."""
    model = problem.build_model(0).eval()
    inputs = problem.example_inputs(3)
    with torch.no_grad():
        expected = model(*inputs)
    return expected, lambda plan: run_plan(plan, inputs, model_state(model))[0]


def test_the_nhwc_strides_are_what_makes_the_plan_right():
    problem, _, _ = _plans(CONV_RELU)
    plan = _channels_last_plan()
    expected, run = _expected_and_runner(problem)
    torch.testing.assert_close(run(plan), expected, atol=1e-4, rtol=1e-4)
    wrong = run(_with_conv_operand_strides(plan, (32 * 32 * 32, 32 * 32, 1)))   # as if NCHW
    assert not torch.allclose(wrong, expected, atol=1e-3)


def _with_conv_operand_strides(plan: ir.KernelPlan, strides) -> ir.KernelPlan:
    *head, last = plan.groups
    k = last.kernel
    conv_out = _pinned_conv_result(plan)
    operands = tuple(dataclasses.replace(op, strides=strides) if op.value == conv_out else op for op in k.operands)
    return ir.KernelPlan(plan.graph, (*head, dataclasses.replace(last, kernel=dataclasses.replace(k, operands=operands))), plan.name)


def _pinned_conv_result(plan: ir.KernelPlan) -> str:
    """The conv's result as the epilogue reads it: what the last library call (the layout pin) wrote."""
    return [g.kernel for g in plan.groups if isinstance(g.kernel, ir.LibraryCall)][-1].outputs[0]


def _has_conv(graph: ir.Graph) -> bool:
    return any(n.kind == "conv" for n in graph.nodes)


@pytest.mark.parametrize("stem", ["02_gelu", "23_max_pool2d", "25_linear_bias_gelu"])
def test_no_channels_last_plan_without_a_conv(stem):
    _, graph, plans = _plans(next(p for p in EXAMPLE_PROBLEMS if p.stem == stem))
    assert not _has_conv(graph)
    assert not [p.name for p in plans if p.name.endswith("+channels-last")]


# -- a conv read by something other than a pointwise epilogue: the NHWC result is converted back to
#    NCHW, so every downstream kernel reads exactly what it reads in the NCHW plan.

CONV_GN = next(p for p in EXAMPLE_PROBLEMS if p.stem == "28_conv_group_norm_silu")
_CHANNELS_LAST_KWARGS = (("memory_format", torch.channels_last),)


def _library_calls(plan: ir.KernelPlan) -> list[ir.LibraryCall]:
    return [g.kernel for g in plan.groups if isinstance(g.kernel, ir.LibraryCall)]


def _plan(path, name) -> ir.KernelPlan:
    _, _, plans = _plans(path)
    return next(p for p in plans if p.name == name)


def test_conv_feeding_group_norm_gets_a_channels_last_plan_that_converts_back():
    _, _, plans = _plans(CONV_GN)
    names = [p.name for p in plans]
    assert PLAN in names and "fuse-all" in names
    calls = _library_calls(_plan(CONV_GN, PLAN))
    assert [c.op for c in calls] == ["aten.clone.default", "aten.clone.default", "aten.conv2d.default", "aten.contiguous.default"]
    assert all(c.converts_layout for c in calls if c.op != "aten.conv2d.default")
    back = calls[-1]
    assert dict(back.kwargs) == {"memory_format": torch.contiguous_format}
    assert back.args[0].name == calls[2].outputs[0]                     # reads the NHWC conv's result
    (t,) = back.output_types
    assert t.strides == ir.contiguous_strides(t.shape)


def test_group_norm_reads_the_converted_conv_output_with_the_nchw_strides_of_the_traced_plan():
    def conv_reads(plan):
        conv_out = _library_calls(plan)[-1].outputs[0]
        return [(g.family, op.strides, op.type.strides) for g in plan.groups if not isinstance(g.kernel, ir.LibraryCall)
                for op in g.kernel.operands if op.value == conv_out]
    nchw, nhwc = _plan(CONV_GN, "fuse-all"), _plan(CONV_GN, PLAN)
    reads = conv_reads(nhwc)
    assert [f for f, _, _ in reads] == ["reduction", "pointwise"]
    assert reads == conv_reads(nchw)
    _, _, types = reads[0]
    assert types == ir.contiguous_strides(nhwc.graph.type_map()[_library_calls(nhwc)[-1].outputs[0]].shape)
    # the kernels after the conversion are the NCHW plan's kernels
    tail = lambda p: [g.kernel for g in p.groups if not isinstance(g.kernel, ir.LibraryCall)]
    rename = {_library_calls(nhwc)[-1].outputs[0]: _library_calls(nchw)[-1].outputs[0]}
    assert [[(rename.get(o.value, o.value), o.strides) for o in k.operands] for k in tail(nhwc)] == \
           [[(o.value, o.strides) for o in k.operands] for k in tail(nchw)]


def _without_conversion_back(plan: ir.KernelPlan) -> ir.KernelPlan:
    """The plan with its conversion back asking for channels-last instead: the kernels then read an
    NHWC buffer through NCHW strides."""
    groups = [dataclasses.replace(g, kernel=dataclasses.replace(g.kernel, kwargs=_CHANNELS_LAST_KWARGS))
              if isinstance(g.kernel, ir.LibraryCall) and dict(g.kernel.kwargs).get("memory_format") == torch.contiguous_format
              else g for g in plan.groups]
    return ir.KernelPlan(plan.graph, tuple(groups), plan.name)



def test_the_conversion_back_is_what_makes_the_group_norm_plan_right():
    problem, _, _ = _plans(CONV_GN)
    plan = _plan(CONV_GN, PLAN)
    expected, run = _expected_and_runner(problem)
    torch.testing.assert_close(run(plan), expected, atol=1e-4, rtol=1e-4)
    wrong = run(_without_conversion_back(plan))
    assert not torch.allclose(wrong, expected, atol=1e-3)


CONV_ONLY = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, kernel_size=3, padding=1)

    def forward(self, x):
        return self.conv(x)

def get_inputs():
    return [torch.randn(2, 8, 12, 12)]

def get_init_inputs():
    return []
"""


def test_conv_returned_directly_gets_a_channels_last_plan_returning_nchw(tmp_path):
    path = tmp_path / "conv_only.py"
    path.write_text(CONV_ONLY)
    problem, _, plans = _plans(path)
    plan = next(p for p in plans if p.name.endswith("+channels-last"))
    calls = _library_calls(plan)
    assert [c.op for c in calls][-2:] == ["aten.conv2d.default", "aten.contiguous.default"]
    assert plan.graph.outputs == calls[-1].outputs
    expected, run = _expected_and_runner(problem)
    got = run(plan)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assert got.is_contiguous()


def test_channels_last_plan_is_not_ranked_behind_plans_for_its_conversions():
    _, _, plans = _plans(CONV_RELU)
    names = [po.plan.name for po in designer.renderable_plans(plans, plugins.get_dsl("cpp"), plugins.get_backend("cpu").detect())]
    assert names.index(PLAN) < names.index("unfused")


@pytest.mark.parametrize("dsl_name,path", [("cpp", CONV_RELU), ("triton", CONV_RELU), ("cpp", CONV_GN)],
                         ids=["cpp-conv-relu", "triton-conv-relu", "cpp-conv-group-norm"])
def test_channels_last_candidate_passes_the_strict_harness(dsl_name, path):
    if dsl_name == "triton":
        pytest.importorskip("triton")
    problem, _, plans = _plans(path)
    dsl = plugins.get_dsl(dsl_name)
    (po,) = [po for po in designer.renderable_plans(plans, dsl, plugins.get_backend("cpu").detect()) if po.plan.name == PLAN]
    candidate = coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)
    assert "memory_format=torch.channels_last" in candidate.source
    assert ("memory_format=torch.contiguous_format" in candidate.source) == (path == CONV_GN)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason
    assert any(c.name == "strict_policy" and c.passed for c in verdict.checks)
