"""fold-affine: scales, divisions and per-channel shifts after a linear or convolution move into its
weight and bias, computed once per parameter version."""
from __future__ import annotations

import pytest
import torch

from akg.agents import coder
from rewrite_cases import graphs, harness_accepts, ops, planeval_matches, write_problem

LINEAR_SCALE = '''
class Model(nn.Module):
    def __init__(self, divisor):
        super().__init__()
        self.linear = nn.Linear(64, 48)
        self.scale = nn.Parameter(torch.randn(48))
        self.divisor = divisor

    def forward(self, x):
        return torch.relu((self.linear(x) * self.scale) / self.divisor)

def get_inputs():
    return [torch.rand(32, 64)]

def get_init_inputs():
    return [2.0]
'''

CONV_SHIFT = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.shift = nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        return torch.tanh(0.5 - (self.conv(x) - self.shift) * 2.0)

def get_inputs():
    return [torch.rand(2, 3, 12, 12)]

def get_init_inputs():
    return []
'''


def _head(graph, op):
    (node,) = [n for n in graph.nodes if n.op == op]
    return node


def test_scale_vector_and_divisor_fold_into_the_linear(tmp_path):
    problem = write_problem(tmp_path, LINEAR_SCALE)
    before, after = graphs(problem, "fold-affine")
    assert ops(before)[:3] == ["aten.linear.default", "mul", "mul"]   # merge-clamps made "/ 2" a "* 0.5" ahead of the relu
    linear = _head(after, "aten.linear.default")
    assert linear.attr("args")[1].name.startswith("fold-affine/")       # the folded weight
    assert [n.op for n in after.nodes if "p:linear.weight" not in n.inputs and n.inputs and n.inputs[0] == linear.outputs[0]] == ["max"]
    assert "div" not in [n.op for n in after.nodes if not n.id.startswith("fold-affine")]
    planeval_matches(problem, after)


@pytest.mark.slow   # a harness run: ~20 s on 2 cores
def test_conv_shift_and_reversed_subtraction_fold(tmp_path):
    problem = write_problem(tmp_path, CONV_SHIFT)
    before, after = graphs(problem, "fold-affine")
    conv = _head(after, "aten.conv2d.default")
    (user,) = [n for n in after.nodes if conv.outputs[0] in n.inputs]
    assert user.op == "tanh"
    planeval_matches(problem, after)
    harness_accepts(problem, after)


@pytest.mark.slow   # a harness run: ~20 s on 2 cores
def test_folded_weights_are_computed_once_and_again_after_an_in_place_change(tmp_path):
    problem = write_problem(tmp_path, LINEAR_SCALE)
    _, after = graphs(problem, "fold-affine")
    candidate, _ = harness_accepts(problem, after)
    namespace: dict = {}
    exec(compile(candidate.source, "<candidate>", "exec"), namespace)
    model, new = problem.build_model(0), namespace["ModelNew"](2.0)
    new.load_state_dict(model.state_dict())
    x = torch.rand(32, 64)
    with torch.no_grad():
        torch.testing.assert_close(new(x), model(x))
        held = new.__dict__["_akg_once"]
        new(x)
        assert new.__dict__["_akg_once"] is held                       # not recomputed
        for m in (model, new):
            m.linear.weight.mul_(-3.0)
            m.scale.add_(1.0)
        torch.testing.assert_close(new(x), model(x))
        assert new.__dict__["_akg_once"] is not held


def test_no_fold_when_the_output_is_read_twice_or_the_scale_is_not_per_channel(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(16, 8)
        self.full = nn.Parameter(torch.randn(4, 8))

    def forward(self, x, s):
        y = self.linear(x)
        return y * 2.0 + torch.sigmoid(y), self.linear(x) * self.full, self.linear(x) * s

def get_inputs():
    return [torch.rand(4, 16), torch.rand(8)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "fold-affine")
    assert ops(before) == ops(after)
    assert not any(n.id.startswith("fold-affine") for n in after.nodes)


def test_candidate_source_keeps_only_what_calls_read(tmp_path):
    problem = write_problem(tmp_path, LINEAR_SCALE)
    _, after = graphs(problem, "fold-affine")
    from akg import plugins
    from rewrite_cases import plans
    plan = next(p for p in plans(after) if p.name == "library-matmul")
    kept = [line for line in coder._once_block(plan, coder._once_groups(plan)) if "_akg_once'] = " in line]
    assert len(kept) == 1 and kept[0].count("v_fold_affine") == 2      # folded weight and bias only
    assert plugins.get_dsl("cpp")


def test_a_residual_of_a_copy_and_a_doubling_fold_as_one_affine_region(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(32, 24)

    def forward(self, x):
        y = self.linear(x)
        residual = y.clone().detach()
        z = y * 0.5 + residual
        return torch.sigmoid(z + z)

def get_inputs():
    return [torch.rand(16, 32)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "fold-affine")
    assert ops(before)[:5] == ["aten.linear.default", "cast", "aten.detach.default", "mul", "add"]
    linear = _head(after, "aten.linear.default")
    assert [n.op for n in after.nodes if linear.outputs[0] in n.inputs] == ["sigmoid"]
    scale = [n for n in after.nodes if n.inputs == ("p:linear.weight",)]
    assert [n.attr("args")[1] for n in scale] == [3.0]                 # (0.5 + 1) * 2
    planeval_matches(problem, after)


def test_no_region_fold_when_an_inner_value_is_also_read_outside(tmp_path):
    problem = write_problem(tmp_path, '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(32, 24)

    def forward(self, x):
        y = self.linear(x)
        z = y * 2.0
        return z + y, torch.sigmoid(z)

def get_inputs():
    return [torch.rand(16, 32)]

def get_init_inputs():
    return []
''')
    before, after = graphs(problem, "fold-affine")
    assert ops(before) == ops(after)
