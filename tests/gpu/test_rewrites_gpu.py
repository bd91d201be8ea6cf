"""Proven graph rewrites on an NVIDIA GPU: a GEMM followed by a scale and a sum over its features
becomes one Triton row reduction (a GEMV with the summed weight row computed once), and a
convolution followed by eval batch norm, a division and relu becomes one convolution with folded
weights; both candidates pass the strict harness on the device, and the GEMV beats eager.

    python -m pytest -m gpu tests/gpu/test_rewrites_gpu.py -q -s
"""
from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)
pytest.importorskip("triton")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from akg import plugins  # noqa: E402
from akg.agents import analyzer, coder, designer  # noqa: E402
from akg.harness import HarnessConfig, evaluate  # noqa: E402
from akg.problem import load_problem  # noqa: E402
from rewrite_cases import plans  # noqa: E402

GEMM_SUM = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(8192, 8192)

    def forward(self, x):
        return torch.sum(self.linear(x) * 0.5, dim=1, keepdim=True)

def get_inputs():
    return [torch.rand(1024, 8192)]

def get_init_inputs():
    return []
'''

CONV_BN = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(16, 64, 3, padding=1)
        self.bn = nn.BatchNorm2d(64)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
        self.eval()

    def forward(self, x):
        return torch.relu(self.bn(self.conv(x)) / 2.0)

def get_inputs():
    return [torch.randn(32, 16, 64, 64)]

def get_init_inputs():
    return []
'''


def _verdict(tmp_path, body, name):
    path = tmp_path / f"{name}.py"
    path.write_text("import torch\nimport torch.nn as nn\n" + textwrap.dedent(body))
    problem = load_problem(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = analyzer.decomposed(analyzer.trace(problem))
    dsl = plugins.get_dsl("triton")
    hardware = plugins.get_backend("cuda").detect()
    (po, *_) = designer.renderable_plans(plans(graph), dsl, hardware)
    candidate = coder.make_candidate(po.plan, dsl, "cuda", problem.source, problem.name)
    config = HarnessConfig(seeds=(0, 1), distributions=("problem", "uniform"), time=True, measure_compile=False)
    return graph, evaluate(problem, candidate.source, candidate.id, device="cuda", policy="strict", config=config)


def test_gemm_then_sum_runs_as_a_gemv_and_beats_eager(tmp_path):
    graph, verdict = _verdict(tmp_path, GEMM_SUM, "gemm_sum")
    assert "aten.linear.default" not in [n.op for n in graph.nodes]
    assert verdict.accepted, verdict.reason
    print("gemm+sum:", verdict.time_ms, "ms", dict(verdict.speedups))
    assert dict(verdict.speedups)["vs_eager"] > 5.0


def test_conv_batch_norm_folds_into_one_convolution(tmp_path):
    graph, verdict = _verdict(tmp_path, CONV_BN, "conv_bn")
    assert not [n for n in graph.nodes if "batch_norm" in n.op]
    assert verdict.accepted, verdict.reason
    print("conv+bn:", verdict.time_ms, "ms", dict(verdict.speedups))
