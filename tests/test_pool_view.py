"""A pool that reads a view: a group norm's epilogue runs over the grouped shape (N, G, C/G, H*W) and
its result is viewed back to NCHW before a max pool. The pool kernel reads the view's base through
the view's strides and pools over the view's shape (before, it took the base's shape and every plan
fusing the pool failed planeval on KernelBench's Conv2d_GroupNorm_Scale_MaxPool_Clamp)."""
from __future__ import annotations

import pytest

from akg import ir, plugins
from akg.agents import coder, designer
from akg.harness import evaluate
from rewrite_cases import CORRECTNESS_ONLY, graphs, harness_accepts, planeval_matches, plans, write_problem

GROUP_NORM_POOL = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.group_norm = nn.GroupNorm(4, 8)
        self.scale = nn.Parameter(torch.randn(8, 1, 1))
        self.pool = nn.MaxPool2d(4)

    def forward(self, x):
        x = self.group_norm(self.conv(x)) * self.scale
        return torch.clamp(self.pool(x), 0.0, 1.0)

def get_inputs():
    return [torch.rand(2, 3, 18, 18)]

def get_init_inputs():
    return []
'''


@pytest.fixture
def problem(tmp_path):
    return write_problem(tmp_path, GROUP_NORM_POOL)


def _pool_of(plan: ir.KernelPlan) -> ir.PoolKernel:
    (kernel,) = [g.kernel for g in plan.groups if isinstance(g.kernel, ir.PoolKernel)]
    return kernel


def test_the_pool_reads_the_view_with_its_shape_and_strides(problem):
    _, graph = graphs(problem, "")
    fused = next(p for p in plans(graph) if p.name == "fuse-all")
    pool = _pool_of(fused)
    assert pool.input_shape == (2, 8, 16, 16)
    assert tuple(pool.input.type.shape) != pool.input_shape   # the buffer is the grouped base
    assert pool.input.strides == (2048, 256, 16, 1)


def test_every_plan_computes_what_the_model_computes(problem):
    _, graph = graphs(problem, "")
    planeval_matches(problem, graph)


def test_the_cpp_candidate_passes_the_strict_harness(problem):
    _, graph = graphs(problem, "")
    harness_accepts(problem, graph, "fuse-all")


def test_the_triton_candidate_passes_the_strict_harness_in_the_interpreter(problem):
    pytest.importorskip("triton")
    _, graph = graphs(problem, "")
    dsl = plugins.get_dsl("triton")
    options = designer.renderable_plans(plans(graph), dsl, plugins.get_backend("cpu").detect())
    (po,) = [po for po in options if po.plan.name == "fuse-all"]
    assert any(g.family == "pool" for g in po.plan.groups)
    candidate = coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason
