"""dead-code: nodes whose results reach no output are removed; random draws stay."""
from __future__ import annotations

import pytest

from akg import ir
from akg.hoist import is_random
from akg.passes.dead_code import DeadCodePass, eliminate_dead_nodes
from rewrite_cases import graphs, harness_accepts, ops, planeval_matches, write_problem

T = ir.TensorType((4, 8), "float32")


def _graph(nodes, outputs=("y",)) -> ir.Graph:
    values = {"x"} | {v for n in nodes for v in n.outputs}
    return ir.Graph(("x",), (), tuple(nodes), outputs, tuple((v, T) for v in sorted(values)))


def _pw(i, op, inputs, out, *extra):
    return ir.Node(f"n{i}", op, "pointwise", tuple(inputs), (out,), (("args", tuple(ir.ValueRef(v) for v in inputs) + extra),))


def test_unread_nodes_go_and_their_types_with_them():
    g = _graph([_pw(0, "exp", ["x"], "a"), _pw(1, "neg", ["a"], "b"), _pw(2, "mul", ["x"], "y", 2.0)])
    out = DeadCodePass().run(g, None)
    assert [n.id for n in out.nodes] == ["n2"]
    assert {k for k, _ in out.types} == {"x", "y"}
    out.verify()


def test_a_random_draw_stays_even_when_unread():
    draw = ir.Node("n0", "aten.rand_like.default", "library", ("x",), ("r",), (("args", (ir.ValueRef("x"),)), ("kwargs", ())))
    assert is_random(draw)
    g = _graph([draw, _pw(1, "mul", ["x"], "y", 2.0)])
    assert [n.id for n in eliminate_dead_nodes(g).nodes] == ["n0", "n1"]


@pytest.mark.slow   # a harness run: ~20 s on 2 cores
def test_a_program_with_unread_work_passes_the_harness(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 8)

    def forward(self, x):
        unused = torch.exp(x)
        return torch.sum(self.linear(x), dim=1)

def get_inputs():
    return [torch.rand(4, 16)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "dead-code")
    assert "exp" not in ops(after)
    assert "sum" in ops(after)                 # the summed weight row of the fold
    planeval_matches(problem, after)
    harness_accepts(problem, after)
