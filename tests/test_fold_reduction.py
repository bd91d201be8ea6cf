"""fold-reduction: a sum (or mean) over a linear's output features becomes a product with one
summed weight row, and the analyzer's floor follows the rewritten program."""
from __future__ import annotations

import warnings

from akg import plugins
from akg.agents import analyzer
from rewrite_cases import graphs, harness_accepts, ops, planeval_matches, write_problem

GEMM_SUM = '''
class Model(nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.linear = nn.Linear(64, 96)
        self.scale = scale

    def forward(self, x):
        y = self.linear(x) * self.scale
        return torch.sum(y, dim=1, keepdim=True), torch.mean(self.linear(x + 1.0), dim=-1)

def get_inputs():
    return [torch.rand(32, 64)]

def get_init_inputs():
    return [0.5]
'''


def test_gemm_then_sum_and_mean_become_row_reductions_with_a_summed_weight_row(tmp_path):
    problem = write_problem(tmp_path, GEMM_SUM)
    before, after = graphs(problem, "fold-reduction")
    assert ops(before).count("aten.linear.default") == 2
    assert "aten.linear.default" not in ops(after)
    types = after.type_map()
    row_sums = [n for n in after.nodes if n.op == "sum" and types[n.inputs[0]].shape == (32, 64)]
    assert len(row_sums) == 2 and all(n.attr("dims") == (1,) for n in row_sums)
    planeval_matches(problem, after)
    _, verdict = harness_accepts(problem, after)
    # the GEMV is one generated reduction kernel, not a library call
    assert not [c for c in verdict.checks if c.name == "strict_policy" and not c.passed]


def test_the_gemv_is_one_reduction_kernel_reading_x_once(tmp_path):
    problem = write_problem(tmp_path, GEMM_SUM)
    _, after = graphs(problem, "fold-reduction")
    from akg.agents import coder
    from rewrite_cases import plans
    plan = next(p for p in plans(after) if p.name == "fuse-all")
    once = coder._once_groups(plan)
    per_call = [g for i, g in enumerate(plan.groups) if i not in once]
    assert all(g.family != "library" for g in per_call)
    types = after.type_map()
    row_sums = {n.id for n in after.nodes if n.op == "sum" and types[n.inputs[0]].shape == (32, 64)}
    groups = [g for g in per_call if row_sums & set(g.nodes)]
    assert [g.family for g in groups] == ["reduction", "reduction"]
    assert "x" in groups[0].read_values()                   # the first reads x itself: one pass over it


def test_floor_is_that_of_the_rewritten_program(tmp_path):
    problem = write_problem(tmp_path, GEMM_SUM)
    before, after = graphs(problem, "fold-reduction")
    hw = [plugins.get_backend("cpu").detect()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a_before, a_after = analyzer.analyze(problem, hw, before), analyzer.analyze(problem, hw, after)
    assert a_before.flops >= 2 * 2 * 32 * 64 * 96                      # two GEMMs
    assert a_after.flops < 2 * 2 * 32 * 64 * 2 + 32 * 64 * 4           # two GEMVs and pointwise work
    # per call: x, the two summed rows and biases, the outputs; the 96x64 weight is read once, not per call
    assert a_after.bytes_moved < 32 * 64 * 4 + 96 * 64 * 4
    assert a_after.roofline_ms[0][1] < a_before.roofline_ms[0][1]


def test_no_fold_for_a_sum_over_the_batch_or_after_a_nonlinearity(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 8)

    def forward(self, x):
        return torch.sum(self.linear(x), dim=0), torch.sum(torch.sigmoid(self.linear(x)), dim=1)

def get_inputs():
    return [torch.rand(4, 16)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "fold-reduction")
    assert ops(before) == ops(after)
