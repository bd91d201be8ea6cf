"""fold-batchnorm: batch norm on running statistics becomes a per-channel scale and shift, which
fold-affine then moves into the preceding convolution or linear."""
from __future__ import annotations

import pytest

import dataclasses

from akg import ir
from akg.passes.fold_batchnorm import FoldBatchNormPass
from rewrite_cases import graphs, harness_accepts, ops, planeval_matches, write_problem

CONV_BN = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        with torch.no_grad():   # statistics as a trained model has them
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)
            self.bn.bias.uniform_(-1, 1)
        self.eval()             # an inference model: batch norm uses the running statistics

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)))

def get_inputs():
    return [torch.rand(2, 3, 12, 12)]

def get_init_inputs():
    return []
'''

BN_ALONE = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm1d(16, affine=False)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
        self.eval()

    def forward(self, x):
        return self.bn(x) * 3.0

def get_inputs():
    return [torch.randn(32, 16)]

def get_init_inputs():
    return []
'''


def _batch_norms(graph):
    return [n for n in graph.nodes if "batch_norm" in n.op]


@pytest.mark.slow   # a harness run: ~20 s on 2 cores
def test_conv_then_batch_norm_is_one_convolution(tmp_path):
    problem = write_problem(tmp_path, CONV_BN)
    before, after = graphs(problem, "fold-batchnorm")
    assert _batch_norms(before) and not _batch_norms(after)
    (conv,) = [n for n in after.nodes if n.op == "aten.conv2d.default"]
    (user,) = [n for n in after.nodes if conv.outputs[0] in n.inputs]
    (relu,) = [n for n in after.nodes if user.outputs[0] in n.inputs]
    # the relu reads the convolution plus its (folded) bias, which conv-bias moved into the epilogue
    assert (user.op, relu.op) == ("add", "max")
    planeval_matches(problem, after)
    harness_accepts(problem, after)


def test_batch_norm_without_affine_or_a_producer_to_fold_into(tmp_path):
    problem = write_problem(tmp_path, BN_ALONE)
    _, after = graphs(problem, "fold-batchnorm")
    assert not _batch_norms(after)
    assert ops(after)[-2:] == ["add", "mul"]  # x * A + B, then the model's own scale
    planeval_matches(problem, after)


def test_batch_norm_on_batch_statistics_is_left_alone(tmp_path):
    problem = write_problem(tmp_path, BN_ALONE)
    before, _ = graphs(problem, "fold-batchnorm")
    (bn,) = _batch_norms(before)
    assert bn.op == "aten._native_batch_norm_legit.default"
    args = list(bn.attr("args"))
    args[5] = True                           # training: normalise by the batch's statistics
    attrs = tuple((k, tuple(args) if k == "args" else v) for k, v in bn.attrs)
    training = dataclasses.replace(before, nodes=tuple(dataclasses.replace(n, attrs=attrs) if n is bn else n
                                                        for n in before.nodes))
    assert list(FoldBatchNormPass().find(training)) == []
    assert len(list(FoldBatchNormPass().find(before))) == 1
    assert isinstance(training, ir.Graph)
