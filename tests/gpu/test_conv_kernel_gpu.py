"""Generated convolutions (family conv_epilogue: an implicit GEMM with the epilogue fused) on a real
NVIDIA GPU at KernelBench-like sizes: the ``fuse-all-conv`` candidate, one Triton kernel and no
library convolution, judged by the strict harness (fp32 under torch's default TF32 convolutions,
and fp16); and the seeded schedule of each precision against a float64 convolution."""
from __future__ import annotations

import sys
import textwrap
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("triton")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

sys.path.insert(0, str(Path(__file__).parent))
from triton_specs import load_group  # noqa: E402

from akg import ir, plugins  # noqa: E402
from akg.agents import coder, designer  # noqa: E402
from akg.agents.analyzer import plans_for  # noqa: E402
from akg.dsls.triton.dsl import TritonDSL  # noqa: E402
from akg.harness import HarnessConfig, evaluate  # noqa: E402
from akg.harness.config import DEFAULT_TOLERANCES  # noqa: E402
from akg.problem import load_problem  # noqa: E402

CHECK = HarnessConfig(seeds=(0,), distributions=("problem", "uniform"), time=False, measure_compile=False,
                      timeout_s=300.0)
PLAN = "fuse-all-conv"

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

CONV3D_HARDSWISH = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 16, 3, padding=1)

    def forward(self, x):
        return torch.nn.functional.hardswish(self.conv(x)) * 0.5

def get_inputs():
    return [torch.rand(32, 3, 16, 32, 32)]

def get_init_inputs():
    return []
'''

CONV1D_STRIDE2_RELU = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(64, 128, 5, stride=2, padding=2)

    def forward(self, x):
        return torch.relu(self.conv(x))

def get_inputs():
    return [torch.randn(32, 64, 4096)]

def get_init_inputs():
    return []
'''

CONV2D_FP16_STRIDE2_DILATION = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(64, 128, 3, stride=2, padding=2, dilation=2).half()

    def forward(self, x):
        return torch.nn.functional.hardswish(self.conv(x))

def get_inputs():
    return [torch.randn(32, 64, 97, 97, dtype=torch.float16)]

def get_init_inputs():
    return []
'''

CASES = {"conv2d-relu-bias": CONV2D_RELU_BIAS, "conv3d-hardswish": CONV3D_HARDSWISH,
         "conv1d-stride2-relu": CONV1D_STRIDE2_RELU, "conv2d-fp16-stride2-dilation": CONV2D_FP16_STRIDE2_DILATION}


def _problem(tmp_path, case: str):
    path = tmp_path / f"{case.replace('-', '_')}.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n" + textwrap.dedent(CASES[case]))
    return load_problem(path)


def _conv_plan(problem):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = plans_for(problem)
    ranked = designer.renderable_plans(plans, plugins.get_dsl("triton"), plugins.get_backend("cuda").detect())
    return next(po for po in ranked if po.plan.name == PLAN)


@pytest.mark.parametrize("case", sorted(CASES))
def test_generated_convolution_passes_the_strict_harness_on_cuda(case, tmp_path):
    """The seeded schedule of each precision the DSL offers, judged by the strict harness: those
    that keep fp32 accuracy (tf32x3, ieee) and half types always pass; a TF32 one passes where cuDNN
    convolved the reference in TF32 too (it may pick an fp32 algorithm: then the harness refuses it)."""
    problem = _problem(tmp_path, case)
    po = _conv_plan(problem)
    assert [g.family for g in po.plan.groups] == ["conv_epilogue"]
    firsts = {}
    for schedule in po.options[0]:
        firsts.setdefault(schedule.get("precision"), schedule)
    verdicts = {}
    for precision, schedule in firsts.items():
        plan = po.plan.with_schedules((schedule,))
        candidate = coder.make_candidate(plan, plugins.get_dsl("triton"), "cuda", problem.source, problem.name)
        assert "AKG_LIBRARY_OPS = ()" in candidate.source
        verdicts[precision] = evaluate(problem, candidate.source, candidate.id, device="cuda", policy="strict",
                                       config=CHECK)
    assert any(v.accepted for v in verdicts.values()), {p: v.reason for p, v in verdicts.items()}
    for precision, verdict in verdicts.items():
        assert verdict.accepted or precision == "tf32", f"{firsts[precision]}: {verdict.reason}"


@pytest.mark.parametrize("precision", ["tf32", "tf32x3", "ieee"])
def test_seeded_schedule_of_each_precision_matches_a_float64_convolution(precision, tmp_path):
    """TF32 within twice cuDNN's own TF32 error; tf32x3 and IEEE within the harness's fp32 bound."""
    problem = _problem(tmp_path, "conv2d-relu-bias")
    (group,) = _conv_plan(problem).plan.groups
    found = TritonDSL(allow_tf32=precision == "tf32").schedules(group, plugins.get_backend("cuda").detect())
    schedule = next((s for s in found if s.get("precision") == precision), None)
    if schedule is None:
        pytest.skip(f"no {precision} schedule on this GPU")
    torch.manual_seed(0)
    x = torch.rand(32, 64, 128, 128, device="cuda")
    w = torch.randn(128, 64, 3, 3, device="cuda") * 0.05
    b, extra = torch.randn(128, device="cuda"), torch.randn(128, 1, 1, device="cuda")
    values = {"x": x, "p:conv.weight": w, "p:conv.bias": b, "p:bias": extra}
    reads = group.read_values()
    launcher = load_group(TritonDSL().render([(0, ir.FusedGroup(group.nodes, group.family, group.kernel, schedule))], "cuda"))
    got = launcher(*[values[v] for v in reads])[0]
    want = torch.relu(torch.nn.functional.conv2d(x.double(), w.double(), b.double())) + extra.double()
    cudnn = torch.relu(torch.nn.functional.conv2d(x, w, b)) + extra   # TF32 by default
    err = float((got.double() - want).norm() / want.norm())
    ref_err = float((cudnn.double() - want).norm() / want.norm())
    bound = 2 * max(ref_err, 1e-6) if precision == "tf32" else DEFAULT_TOLERANCES["float32"].rel_norm
    assert err <= bound, f"{schedule}: relative error {err:.2e} (cuDNN {ref_err:.2e})"
