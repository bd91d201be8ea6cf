"""The "+channels-last" plans: 2-d convolutions run on NHWC copies of their inputs, and the fused
epilogue reads the NHWC result through the strides the layout replay found."""
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
    (epilogue,) = [g.kernel for g in _channels_last_plan().groups if g.family == "pointwise"]
    conv_out = next(op for op in epilogue.operands if op.value.startswith("conv2d"))
    shape = conv_out.type.shape
    assert conv_out.type.strides == _nhwc_strides(shape)
    n, c, h, w = _nhwc_strides(shape)
    # domain (N, C, H*W) after collapsing: channels are adjacent in memory, pixels C apart
    assert epilogue.domain == (shape[0], shape[1], shape[2] * shape[3])
    assert conv_out.strides == (n, c, w)
    (out,) = epilogue.outputs
    assert out.type.layout() == ir.contiguous_strides(shape) and out.strides == (shape[1] * shape[2] * shape[3], shape[2] * shape[3], 1)


def test_the_nhwc_strides_are_what_makes_the_plan_right():
    problem, _, _ = _plans(CONV_RELU)
    plan = _channels_last_plan()
    model = problem.build_model(0).eval()
    inputs = problem.example_inputs(3)
    with torch.no_grad():
        expected = model(*inputs)
    (got,) = run_plan(plan, inputs, model_state(model))
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)
    assumed = _with_conv_operand_strides(plan, (32 * 32 * 32, 32 * 32, 1))   # as if NCHW
    (wrong,) = run_plan(assumed, inputs, model_state(model))
    assert not torch.allclose(wrong, expected, atol=1e-3)


def _with_conv_operand_strides(plan: ir.KernelPlan, strides) -> ir.KernelPlan:
    *head, last = plan.groups
    k = last.kernel
    operands = tuple(dataclasses.replace(op, strides=strides) if op.value.startswith("conv2d") else op for op in k.operands)
    return ir.KernelPlan(plan.graph, (*head, dataclasses.replace(last, kernel=dataclasses.replace(k, operands=operands))), plan.name)


def _has_conv(graph: ir.Graph) -> bool:
    return any(n.kind == "conv" for n in graph.nodes)


@pytest.mark.parametrize("stem", ["02_gelu", "23_max_pool2d", "25_linear_bias_gelu", "28_conv_group_norm_silu"])
def test_no_channels_last_plan_without_a_conv_feeding_pointwise_ops(stem):
    """28 has a conv, but group norm reads it through views that need the NCHW layout."""
    _, graph, plans = _plans(next(p for p in EXAMPLE_PROBLEMS if p.stem == stem))
    assert _has_conv(graph) == (stem == "28_conv_group_norm_silu")
    assert not [p.name for p in plans if p.name.endswith("+channels-last")]


def test_channels_last_plan_is_not_ranked_behind_plans_for_its_conversions():
    _, _, plans = _plans(CONV_RELU)
    names = [po.plan.name for po in designer.renderable_plans(plans, plugins.get_dsl("cpp"), plugins.get_backend("cpu").detect())]
    assert names.index(PLAN) < names.index("unfused")


@pytest.mark.parametrize("dsl_name", ["cpp", "triton"])
def test_channels_last_candidate_passes_the_strict_harness(dsl_name):
    if dsl_name == "triton":
        pytest.importorskip("triton")
    problem, _, plans = _plans(CONV_RELU)
    dsl = plugins.get_dsl(dsl_name)
    (po,) = [po for po in designer.renderable_plans(plans, dsl, plugins.get_backend("cpu").detect()) if po.plan.name == PLAN]
    candidate = coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)
    assert "memory_format=torch.channels_last" in candidate.source
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason
    assert any(c.name == "strict_policy" and c.passed for c in verdict.checks)
