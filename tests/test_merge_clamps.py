"""merge-clamps: chains of max/min against constants become one clamp, proven by planeval."""
from __future__ import annotations

import math

import pytest

from akg.passes import rewrite
from akg.passes.merge_clamps import compose
from akg.passes.rewrite import Builder, RewritePass, rewrite_graph
from akg import ir
from rewrite_cases import graphs, harness_accepts, ops, planeval_matches, write_problem

CHAINS = '''
class Model(nn.Module):
    def forward(self, x):
        y = torch.clamp(torch.relu(x), min=0.0, max=6.0)
        return torch.clamp(torch.clamp(y * 2, -1.0, 3.0), 0.5, 10.0)

def get_inputs():
    return [torch.randn(64, 96) * 4]

def get_init_inputs():
    return []
'''


def test_relu_then_clamp_and_clamp_of_clamp_merge(tmp_path):
    problem = write_problem(tmp_path, CHAINS)
    before, after = graphs(problem, "merge-clamps")
    assert ops(before) == ["max", "max", "min", "mul", "max", "min", "max", "min"]
    assert ops(after) == ["mul", "max", "min"]   # (clamp(relu(x), 0, 6) * 2) clamped twice: one clamp of 2x
    assert [n.attr("args")[1] for n in after.nodes] == [2.0, 0.5, 3.0]
    planeval_matches(problem, after)


@pytest.mark.slow   # a harness run: ~20 s on 2 cores
def test_merged_program_passes_the_harness(tmp_path):
    problem = write_problem(tmp_path, CHAINS)
    _, after = graphs(problem, "merge-clamps")
    harness_accepts(problem, after)


def test_a_chain_read_in_the_middle_is_left_alone(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        return torch.clamp(y, 0.0, 1.0) + y

def get_inputs():
    return [torch.randn(8, 16)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "merge-clamps")
    assert ops(before) == ops(after)


@pytest.mark.parametrize("chain,expected", [
    ([("max", 0.0), ("max", 0.0), ("min", 6.0)], (1.0, 0.0, 6.0)),
    ([("max", -1.0), ("min", 3.0), ("max", 0.5), ("min", 10.0)], (1.0, 0.5, 3.0)),
    ([("max", 0.0), ("min", 1.0), ("max", 2.0), ("min", 3.0)], (1.0, 2.0, 2.0)),    # disjoint: always 2
    ([("min", 1.0), ("max", 5.0)], (1.0, 5.0, 5.0)),
    ([("max", 0.0), ("div", 2.0)], (0.5, 0.0, 0.5 * math.inf)),
    ([("min", 4.0), ("mul", 0.5), ("max", 1.0)], (0.5, 1.0, 2.0)),
])
def test_compose(chain, expected):
    assert compose(chain) == expected
    for x in (-10.0, -0.7, 0.3, 1.5, 2.5, 7.0):
        want = x
        for op, c in chain:
            want = {"max": max, "min": min, "mul": lambda a, b: a * b, "div": lambda a, b: a / b}[op](want, c)
        scale, lo, hi = compose(chain)
        assert min(max(x * scale, lo), hi) == want


def test_relu_then_divide_after_a_linear_ends_in_its_weights(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(32, 16)

    def forward(self, x):
        return torch.relu(self.linear(x)) / 4.0

def get_inputs():
    return [torch.randn(8, 32)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "merge-clamps")
    assert ops(before)[-2:] == ["max", "div"]
    (linear,) = [n for n in after.nodes if n.op == "aten.linear.default"]
    assert [n.op for n in after.nodes if linear.outputs[0] in n.inputs] == ["max"]
    assert linear.attr("args")[1].name.startswith("fold-affine/")   # the weights carry the 1/4
    planeval_matches(problem, after)


class _NaiveClamps(RewritePass):
    """clamp(clamp(x, a, b), c, d) -> clamp(x, max(a, c), min(b, d)): wrong when the ranges are disjoint."""
    name = "naive-clamps"

    def find(self, graph):
        nodes = graph.nodes
        for i in range(len(nodes) - 3):
            chain = nodes[i:i + 4]
            if [n.op for n in chain] == ["max", "min", "max", "min"]:
                a, b, c, d = (n.attr("args")[1] for n in chain)
                b_ = Builder(self.name, chain[0].id)
                t = graph.type_of(chain[-1].outputs[0])
                lo = b_.pointwise("max", (ir.ValueRef(chain[0].inputs[0]), max(a, c)), t)
                b_.pointwise("min", (ir.ValueRef(lo), min(b, d)), t, out=chain[-1].outputs[0])
                yield b_.rewrite(n.id for n in chain)


def test_the_proof_refuses_a_wrong_merge(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def forward(self, x):
        return torch.clamp(torch.clamp(x, 0.0, 1.0), 2.0, 3.0)

def get_inputs():
    return [torch.randn(8, 16)]

def get_init_inputs():
    return []
''')
    before, _ = graphs(problem, "merge-clamps")
    rewrite.LOG.clear()
    assert rewrite_graph(before, _NaiveClamps().find) == before
    assert rewrite.LOG and rewrite.LOG[0][1].startswith("refused")
