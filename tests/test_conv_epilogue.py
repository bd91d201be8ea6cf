"""Convolutions followed by epilogues: the library convolution (2-d, 3-d, transposed) without its
bias, then one generated kernel over its output for the bias and everything pointwise after it."""
from __future__ import annotations

import pytest

from akg import ir, plugins
from akg.agents import coder, designer
from akg.harness import evaluate
from rewrite_cases import CORRECTNESS_ONLY, graphs, planeval_matches, plans, write_problem

CONV2D_RELU_BIAS = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bias = nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        return torch.relu(self.conv(x)) + self.bias

def get_inputs():
    return [torch.rand(2, 3, 10, 10)]

def get_init_inputs():
    return []
'''

CONV3D_HARDSWISH_CLAMP = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.conv(x))
        return torch.clamp(x * 1.5, min=-0.5, max=1.0)

def get_inputs():
    return [torch.rand(2, 3, 5, 6, 7)]

def get_init_inputs():
    return []
'''

CONV_TRANSPOSE2D_SUB_TANH = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
        self.shift = nn.Parameter(torch.randn(6, 1, 1))

    def forward(self, x):
        return torch.tanh(self.conv(x) - self.shift)

def get_inputs():
    return [torch.randn(2, 4, 5, 5)]

def get_init_inputs():
    return []
'''

CONV_RETURNED = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y, torch.relu(y)

def get_inputs():
    return [torch.rand(2, 3, 8, 8)]

def get_init_inputs():
    return []
'''

CASES = {"conv2d": CONV2D_RELU_BIAS, "conv3d": CONV3D_HARDSWISH_CLAMP, "conv-transpose2d": CONV_TRANSPOSE2D_SUB_TANH}
CONV_OPS = ("aten.conv2d.default", "aten.conv3d.default", "aten.convolution.default")


def _convs(graph: ir.Graph) -> list[ir.Node]:
    return [n for n in graph.nodes if n.op in CONV_OPS]


def _bias(node: ir.Node):
    args = node.attr("args", ())
    return args[2] if len(args) > 2 else None


def _fuse_all(graph: ir.Graph) -> ir.KernelPlan:
    return next(p for p in plans(graph) if p.name == "fuse-all")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bias_moves_from_the_library_conv_into_the_one_epilogue_kernel(case, tmp_path):
    problem = write_problem(tmp_path, CASES[case])
    before, after = graphs(problem, "conv-bias")
    (conv_before,) = _convs(before)
    (conv,) = _convs(after)
    assert isinstance(_bias(conv_before), ir.ValueRef) and _bias(conv) is None
    plan = _fuse_all(after)
    families = [g.family for g in plan.groups]
    assert families == ["library", "pointwise"], families
    epilogue = plan.groups[1].kernel
    assert "p:conv.bias" in {op.value for op in epilogue.operands}
    planeval_matches(problem, after)


def test_a_conv_returned_as_an_output_keeps_its_bias(tmp_path):
    problem = write_problem(tmp_path, CONV_RETURNED)
    _, after = graphs(problem, "conv-bias")
    (conv,) = _convs(after)
    assert isinstance(_bias(conv), ir.ValueRef)


def _triton_candidate(problem, graph: ir.Graph):
    dsl = plugins.get_dsl("triton")
    options = designer.renderable_plans(plans(graph), dsl, plugins.get_backend("cpu").detect())
    (po,) = [po for po in options if po.plan.name == "fuse-all"]
    return coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)


@pytest.mark.slow   # a harness run with Triton's interpreter: ~20 s on 2 cores
@pytest.mark.parametrize("case", ["conv-transpose2d", "conv3d"])
def test_triton_conv_epilogue_candidate_passes_the_strict_harness(case, tmp_path):
    pytest.importorskip("triton")
    problem = write_problem(tmp_path, CASES[case])
    _, after = graphs(problem, "conv-bias")
    candidate = _triton_candidate(problem, after)
    assert "None" in candidate.source.split("aten.conv")[-1].split("\n")[0]   # the conv is called without its bias
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason
