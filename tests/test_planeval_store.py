"""planeval's stores: an output written at one location from several points of the kernel's domain
(stride 0 on a dimension of size > 1) must get one value there, and is then written once."""
from __future__ import annotations

import pytest
import torch

from akg import ir
from akg.planeval import _store
from rewrite_cases import graphs, planeval_matches, plans, write_problem

LINEAR_SCALE_RESIDUAL = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.matmul = nn.Linear(64, 64)

    def forward(self, x):
        x = self.matmul(x)
        return x * 0.5 + x.clone().detach()

def get_inputs():
    return [torch.rand(2, 64)]

def get_init_inputs():
    return []
'''


def test_a_bias_scaled_beside_its_weight_is_stored_once_and_every_plan_matches(tmp_path):
    problem = write_problem(tmp_path, LINEAR_SCALE_RESIDUAL)
    _, graph = graphs(problem, "")
    # a square weight: the scaled bias joins the kernel scaling the weight, over its (64, 64)
    # domain, written with stride 0 along the rows
    repeated = [o for p in plans(graph) for g in p.groups for o in getattr(g.kernel, "outputs", ())
                if isinstance(o, ir.Output) and 0 in o.strides and len(o.strides) == 2]
    assert repeated
    planeval_matches(problem, graph)


def _output(strides):
    return ir.Output("y", ir.Load(0, "float32"), ir.TensorType((4,), "float32"), strides)


def test_one_value_per_location_is_written_once():
    value = torch.arange(4.0).expand(3, 4)
    assert torch.equal(_store(_output((0, 1)), value, (3, 4), "cpu"), torch.arange(4.0))
    with_nan = torch.tensor([0.0, float("nan"), 2.0, 3.0]).expand(3, 4)
    assert _store(_output((0, 1)), with_nan, (3, 4), "cpu").isnan().tolist() == [False, True, False, False]


def test_different_values_at_one_location_are_an_error():
    value = torch.arange(12.0).reshape(3, 4)
    with pytest.raises(ValueError, match="written with different values"):
        _store(_output((0, 1)), value, (3, 4), "cpu")
