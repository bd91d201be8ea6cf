"""Convolutions followed by epilogues on a real NVIDIA GPU, at KernelBench-like sizes: the library
convolution (2-d, 3-d, transposed; NCHW and channels-last) without its bias, then the one Triton
kernel after it (group norm and what follows it, or the pool after it, included), judged by the
strict harness. Hoisted parameter-only kernels (a folded bias) are not counted."""
from __future__ import annotations

import textwrap
import warnings

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from akg import ir, plugins  # noqa: E402
from akg.agents import coder, designer  # noqa: E402
from akg.agents.analyzer import plans_for  # noqa: E402
from akg.harness import HarnessConfig, evaluate  # noqa: E402
from akg.hoist import once_nodes  # noqa: E402
from akg.problem import load_problem  # noqa: E402

CHECK = HarnessConfig(seeds=(0,), distributions=("problem", "uniform"), time=False, measure_compile=False,
                      timeout_s=300.0)

CONV2D_RELU_BIAS = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3)
        self.bias = nn.Parameter(torch.randn(128, 1, 1))

    def forward(self, x):
        return torch.relu(self.conv(x)) + self.bias

def get_inputs():
    return [torch.rand(32, 64, 128, 128)]

def get_init_inputs():
    return []
'''

CONV3D_HARDSWISH_GROUP_NORM_MEAN = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 16, 3)
        self.norm = nn.GroupNorm(4, 16)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.conv(x))
        return self.norm(x).mean(dim=[2, 3, 4])

def get_inputs():
    return [torch.rand(64, 3, 16, 32, 32)]

def get_init_inputs():
    return []
'''

CONV_TRANSPOSE2D_SUB_TANH = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1)
        self.shift = nn.Parameter(torch.randn(64, 1, 1))

    def forward(self, x):
        return torch.tanh(self.conv(x) - self.shift)

def get_inputs():
    return [torch.rand(64, 64, 32, 32)]

def get_init_inputs():
    return []
'''

CONV2D_GROUP_NORM_SILU = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3, padding=1)
        self.norm = nn.GroupNorm(8, 128)
        with torch.no_grad():
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-0.5, 0.5)

    def forward(self, x):
        return torch.nn.functional.silu(self.norm(self.conv(x)))

def get_inputs():
    return [torch.randn(32, 64, 64, 64)]

def get_init_inputs():
    return []
'''

CONV2D_SUB_HARDSWISH_MAXPOOL_MISH = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.conv(x) - 0.5)
        return torch.nn.functional.mish(self.pool(x))

def get_inputs():
    return [torch.rand(32, 64, 128, 128)]

def get_init_inputs():
    return []
'''

CONV2D_TANH_AVGPOOL = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 64, 3, padding=1)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x):
        return self.pool(torch.tanh(self.conv(x)) - 0.25)

def get_inputs():
    return [torch.rand(32, 64, 128, 128)]

def get_init_inputs():
    return []
'''

# (problem, plan to judge: None = the one the designer ranks first, and its kernel families)
CASES = {
    "conv2d-relu-bias": (CONV2D_RELU_BIAS, None, ["pointwise"]),
    "conv2d-relu-bias-channels-last": (CONV2D_RELU_BIAS, "fuse-all+channels-last", ["pointwise"]),
    "conv-transpose2d-sub-tanh": (CONV_TRANSPOSE2D_SUB_TANH, None, ["pointwise"]),
    "conv2d-group-norm-silu": (CONV2D_GROUP_NORM_SILU, None, ["reduction_nd"]),
    "conv2d-group-norm-silu-channels-last": (CONV2D_GROUP_NORM_SILU, "fuse-all-nd+channels-last", ["reduction_nd"]),
    "conv3d-hardswish-group-norm-mean": (CONV3D_HARDSWISH_GROUP_NORM_MEAN, None, None),
    "conv2d-hardswish-maxpool-mish": (CONV2D_SUB_HARDSWISH_MAXPOOL_MISH, None, ["pool_prologue"]),
    "conv2d-tanh-avgpool-channels-last": (CONV2D_TANH_AVGPOOL, "fuse-all-nd+channels-last", ["pool_prologue"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_conv_epilogue_candidate_passes_the_strict_harness_on_cuda(case, tmp_path):
    body, plan_name, families = CASES[case]
    path = tmp_path / f"{case.replace('-', '_')}.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n" + textwrap.dedent(body))
    problem = load_problem(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = plans_for(problem)
    dsl = plugins.get_dsl("triton")
    ranked = designer.renderable_plans(plans, dsl, plugins.get_backend("cuda").detect())
    po = ranked[0] if plan_name is None else next(po for po in ranked if po.plan.name == plan_name)
    once = set(once_nodes(po.plan.graph))
    kernels = [g.family for g in po.plan.groups if not isinstance(g.kernel, ir.LibraryCall) and not set(g.nodes) <= once]
    if families is not None:
        assert kernels == families, (po.plan.name, kernels)
    candidate = coder.make_candidate(po.plan, dsl, "cuda", problem.source, problem.name)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cuda", policy="strict", config=CHECK)
    assert verdict.accepted, f"{po.plan.name}: {verdict.reason}"
