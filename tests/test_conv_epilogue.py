"""Convolutions followed by epilogues: the library convolution (2-d, 3-d, transposed) without its
bias, then one generated kernel over its output for the bias and everything pointwise after it."""
from __future__ import annotations

import pytest

from akg import ir, plugins
from akg.agents import coder, designer
from akg.harness import evaluate
from rewrite_cases import CORRECTNESS_ONLY, graphs, planeval_matches, plans, write_problem

CONV2D_RELU_BIAS = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bias = nn.Parameter(torch.randn(8, 1, 1))

    def forward(self, x):
        return torch.relu(self.conv(x)) + self.bias

def get_inputs():
    return [torch.rand(2, 3, 10, 10)]

def get_init_inputs():
    return []
'''

CONV3D_HARDSWISH_CLAMP = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv3d(3, 6, 3, padding=1)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.conv(x))
        return torch.clamp(x * 1.5, min=-0.5, max=1.0)

def get_inputs():
    return [torch.rand(2, 3, 5, 6, 7)]

def get_init_inputs():
    return []
'''

CONV_TRANSPOSE2D_SUB_TANH = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)
        self.shift = nn.Parameter(torch.randn(6, 1, 1))

    def forward(self, x):
        return torch.tanh(self.conv(x) - self.shift)

def get_inputs():
    return [torch.randn(2, 4, 5, 5)]

def get_init_inputs():
    return []
'''

CONV_RETURNED = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        y = self.conv(x)
        return y, torch.relu(y)

def get_inputs():
    return [torch.rand(2, 3, 8, 8)]

def get_init_inputs():
    return []
'''

CASES = {"conv2d": CONV2D_RELU_BIAS, "conv3d": CONV3D_HARDSWISH_CLAMP, "conv-transpose2d": CONV_TRANSPOSE2D_SUB_TANH}
CONV_OPS = ("aten.conv2d.default", "aten.conv3d.default", "aten.convolution.default")


def _convs(graph: ir.Graph) -> list[ir.Node]:
    return [n for n in graph.nodes if n.op in CONV_OPS]


def _bias(node: ir.Node):
    args = node.attr("args", ())
    return args[2] if len(args) > 2 else None


def _fuse_all(graph: ir.Graph) -> ir.KernelPlan:
    return next(p for p in plans(graph) if p.name == "fuse-all")


@pytest.mark.parametrize("case", sorted(CASES))
def test_bias_moves_from_the_library_conv_into_the_one_epilogue_kernel(case, tmp_path):
    problem = write_problem(tmp_path, CASES[case])
    before, after = graphs(problem, "conv-bias")
    (conv_before,) = _convs(before)
    (conv,) = _convs(after)
    assert isinstance(_bias(conv_before), ir.ValueRef) and _bias(conv) is None
    plan = _fuse_all(after)
    families = [g.family for g in plan.groups]
    assert families == ["library", "pointwise"], families
    epilogue = plan.groups[1].kernel
    assert "p:conv.bias" in {op.value for op in epilogue.operands}
    planeval_matches(problem, after)


def test_a_conv_returned_as_an_output_keeps_its_bias(tmp_path):
    problem = write_problem(tmp_path, CONV_RETURNED)
    _, after = graphs(problem, "conv-bias")
    (conv,) = _convs(after)
    assert isinstance(_bias(conv), ir.ValueRef)


def _triton_candidate(problem, graph: ir.Graph):
    dsl = plugins.get_dsl("triton")
    options = designer.renderable_plans(plans(graph), dsl, plugins.get_backend("cpu").detect())
    (po,) = [po for po in options if po.plan.name == "fuse-all"]
    return coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)


@pytest.mark.slow   # a harness run with Triton's interpreter: ~20 s on 2 cores
@pytest.mark.parametrize("case", ["conv-transpose2d", "conv3d"])
def test_triton_conv_epilogue_candidate_passes_the_strict_harness(case, tmp_path):
    pytest.importorskip("triton")
    problem = write_problem(tmp_path, CASES[case])
    _, after = graphs(problem, "conv-bias")
    candidate = _triton_candidate(problem, after)
    assert "None" in candidate.source.split("aten.conv")[-1].split("\n")[0]   # the conv is called without its bias
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason


CONV_GROUP_NORM_SILU = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(4, 8)
        with torch.no_grad():   # an affine that is not the identity, so the per-channel reads matter
            self.norm.weight.uniform_(0.5, 1.5)
            self.norm.bias.uniform_(-1, 1)

    def forward(self, x):
        return torch.nn.functional.silu(self.norm(self.conv(x))) * 2.0

def get_inputs():
    return [torch.randn(2, 3, 6, 10)]

def get_init_inputs():
    return []
'''


def test_group_norm_and_what_follows_it_are_one_kernel_over_two_reduce_dims(tmp_path):
    problem = write_problem(tmp_path, CONV_GROUP_NORM_SILU)
    before, after = graphs(problem, "reshape-epilogue")
    moved = [n for n in after.nodes if n.id.startswith("reshape-epilogue:") and n.kind == "pointwise"]
    assert {n.op for n in moved} >= {"mul", "add", "sigmoid"}
    nd = next(p for p in plans(after) if p.name == "fuse-all-nd")
    kernels = [g for g in nd.groups if not isinstance(g.kernel, ir.LibraryCall)]
    assert [g.family for g in kernels] == ["reduction_nd"]
    (k,) = [g.kernel for g in kernels]
    assert k.reduce_rank == 2 and k.reduce_size == 2 * 60                 # (C/G, H*W) = (2, 60)
    weight = next(op for op in k.operands if op.value == "p:norm.weight")
    assert [weight.strides[d] for d in k.reduce_dims] == [1, 0]          # walks channels only
    # the plans without several reduce dims still fuse the moved ops, in more kernels
    assert len([g for g in _fuse_all(after).groups if not isinstance(g.kernel, ir.LibraryCall)]) > 1
    planeval_matches(problem, after)
    ranked = designer.renderable_plans(plans(after), plugins.get_dsl("triton"), plugins.get_backend("cpu").detect())
    library_conv = [po.plan.name for po in ranked if po.plan.name != "fuse-all-conv"]   # (that one generates the conv)
    assert library_conv[0] == "fuse-all-nd"                                # tried first


def test_other_dsls_never_see_a_reduction_over_several_dims(tmp_path):
    problem = write_problem(tmp_path, CONV_GROUP_NORM_SILU)
    _, after = graphs(problem, "reshape-epilogue")
    names = [po.plan.name for po in designer.renderable_plans(plans(after), plugins.get_dsl("cpp"), plugins.get_backend("cpu").detect())]
    assert "fuse-all-nd" not in names and "fuse-all" in names


@pytest.mark.slow   # a harness run with Triton's interpreter: ~20 s on 2 cores
def test_triton_group_norm_kernel_passes_the_strict_harness(tmp_path):
    pytest.importorskip("triton")
    problem = write_problem(tmp_path, CONV_GROUP_NORM_SILU)
    _, after = graphs(problem, "reshape-epilogue")
    dsl = plugins.get_dsl("triton")
    (po,) = [po for po in designer.renderable_plans(plans(after), dsl, plugins.get_backend("cpu").detect())
             if po.plan.name == "fuse-all-nd"]
    candidate = coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason


CONV_BATCH_STATISTICS = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)   # training mode: statistics over (N, H, W)

    def forward(self, x):
        return self.bn(self.conv(x)) - 0.5

def get_inputs():
    return [torch.rand(2, 3, 10, 10)]

def get_init_inputs():
    return []
'''


def test_a_conv_whose_output_is_reduced_over_scattered_dims_keeps_its_bias(tmp_path):
    # the add could not join a reduction over (N, H, W): it would be one more pass over the output
    problem = write_problem(tmp_path, CONV_BATCH_STATISTICS)
    _, after = graphs(problem, "conv-bias")
    (conv,) = _convs(after)
    assert isinstance(_bias(conv), ir.ValueRef)


CONV_HARDSWISH_MAXPOOL_MISH = '''
class Model(nn.Module):
    def __init__(self, pool):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.shift = nn.Parameter(torch.randn(8, 1, 1))
        self.pool = nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(3, stride=2, padding=1)

    def forward(self, x):
        x = torch.nn.functional.hardswish(self.conv(x) * self.shift)
        return torch.nn.functional.mish(self.pool(x))

def get_inputs():
    return [torch.randn(2, 3, 11, 12)]

def get_init_inputs():
    return [POOL]
'''


def _per_call_kernels(plan: ir.KernelPlan) -> list[str]:
    from akg.hoist import once_nodes
    once = set(once_nodes(plan.graph))
    return [g.family for g in plan.groups if not isinstance(g.kernel, ir.LibraryCall) and not set(g.nodes) <= once]


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_the_epilogue_before_a_pool_is_the_pool_kernels_prologue(pool, tmp_path):
    problem = write_problem(tmp_path, CONV_HARDSWISH_MAXPOOL_MISH.replace("POOL", repr(pool)))
    _, after = graphs(problem, "conv-bias")
    nd = next(p for p in plans(after) if p.name == "fuse-all-nd")
    assert _per_call_kernels(nd) == ["pool_prologue"]            # conv, then one kernel
    assert _per_call_kernels(_fuse_all(after)) == ["pointwise", "pool"]
    planeval_matches(problem, after)
    cpp = [po.plan.name for po in designer.renderable_plans(plans(after), plugins.get_dsl("cpp"), plugins.get_backend("cpu").detect())]
    assert cpp and "fuse-all-nd" not in cpp                       # a DSL without the family keeps its plans


@pytest.mark.slow   # a harness run with Triton's interpreter: ~20 s on 2 cores
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_triton_pool_prologue_candidate_passes_the_strict_harness(pool, tmp_path):
    pytest.importorskip("triton")
    problem = write_problem(tmp_path, CONV_HARDSWISH_MAXPOOL_MISH.replace("POOL", repr(pool)))
    _, after = graphs(problem, "conv-bias")
    dsl = plugins.get_dsl("triton")
    ranked = designer.renderable_plans(plans(after), dsl, plugins.get_backend("cpu").detect())
    assert ranked[0].plan.name == "fuse-all-nd"
    candidate = coder.make_candidate(ranked[0].plan, dsl, "cpu", problem.source, problem.name)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason


CONV_GROUP_NORM_RESIDUAL_LOGSUMEXP = '''
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.norm = nn.GroupNorm(2, 8)

    def forward(self, x):
        y = self.conv(x)
        z = torch.tanh(self.norm(y)) + y
        return torch.logsumexp(z, dim=1, keepdim=True)

def get_inputs():
    return [torch.randn(2, 3, 6, 7)]

def get_init_inputs():
    return []
'''


def test_a_reduction_over_other_dims_after_the_norm_stays_in_the_models_shape(tmp_path):
    # the residual add moves into the norm's kernel; the logsumexp over channels (its max, the
    # subtraction of it) stays one row reduction of its own instead of being split across shapes
    problem = write_problem(tmp_path, CONV_GROUP_NORM_RESIDUAL_LOGSUMEXP)
    _, after = graphs(problem, "reshape-epilogue")
    nd = next(p for p in plans(after) if p.name == "fuse-all-nd")
    assert _per_call_kernels(nd) == ["reduction_nd", "reduction"]
    planeval_matches(problem, after)
