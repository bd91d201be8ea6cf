"""The cpp DSL end to end: plan -> candidate file -> build -> ModelNew agrees with Model."""
from __future__ import annotations

import glob
import os
import re
import warnings
from pathlib import Path

import pytest
import torch

from akg import plugins
from akg.agents import coder
from akg.ir import FusedGroup, Graph, KernelPlan, LibraryCall, Node, TensorType, ValueRef
from akg.targets import BuildError
from test_cpp_support import softmax_kernel

ROOT = Path(__file__).resolve().parents[1]
SOFTMAX_PROBLEM = '''
class Model(nn.Module):
    def forward(self, x):
        return torch.softmax(x, dim=1)

def get_inputs():
    return [torch.randn(32, 300)]

def get_init_inputs():
    return []
'''


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path))


def _softmax_plan() -> KernelPlan:
    x = torch.randn(32, 300)
    t = TensorType((32, 300), "float32")
    graph = Graph(("x",), (), (Node("n0", "softmax", "reduction", ("x",), ("y",)),), ("y",), (("x", t), ("y", t)))
    return KernelPlan(graph, (FusedGroup(("n0",), "reduction", softmax_kernel(x, 1)),), "hand-written")


def _exec(source: str) -> dict:
    namespace: dict = {}
    exec(compile(source, "<candidate>", "exec"), namespace)
    return namespace


def test_candidate_from_hand_written_plan_matches_model_and_prebuilds(tmp_path):
    dsl = plugins.get_dsl("cpp")
    candidate = coder.make_candidate(_softmax_plan(), dsl, "cpu", SOFTMAX_PROBLEM, "softmax")
    assert dsl.lint(candidate.source) == []
    dsl.prebuild(candidate.source, "cpu")
    assert len(glob.glob(str(tmp_path / "cpp" / "*.so"))) == 1
    namespace = _exec(candidate.source)
    x = torch.randn(32, 300)
    torch.testing.assert_close(namespace["ModelNew"]()(x), namespace["Model"]()(x))
    with pytest.raises(ValueError, match="expected torch.float32"):
        namespace["ModelNew"]()(x.double())


def test_candidate_with_library_matmul_and_generated_epilogue():
    problem = '''
class Model(nn.Module):
    def forward(self, x, w):
        return torch.relu(x @ w)
'''
    from test_cpp_support import call, dense, f32, output
    from akg.ir import Load, PointwiseKernel
    h = torch.empty(16, 24)
    types = (("x", TensorType((16, 8), "float32")), ("w", TensorType((8, 24), "float32")),
             ("h", TensorType((16, 24), "float32")), ("y", TensorType((16, 24), "float32")))
    graph = Graph(("x", "w"), (), (Node("n0", "aten.mm.default", "library", ("x", "w"), ("h",)),
                                    Node("n1", "relu", "pointwise", ("h",), ("y",))), ("y",), types)
    relu = PointwiseKernel((16, 24), (dense("h", h),), (output("y", call("max", Load(0, "float32"), f32(0.0)), (16, 24)),))
    plan = KernelPlan(graph, (
        FusedGroup(("n0",), "library", LibraryCall("aten.mm.default", (ValueRef("x"), ValueRef("w")), (), ("h",))),
        FusedGroup(("n1",), "pointwise", relu)), "library-matmul")
    namespace = _exec(coder.make_candidate(plan, plugins.get_dsl("cpp"), "cpu", problem, "mm_relu").source)
    x, w = torch.randn(16, 8), torch.randn(8, 24)
    torch.testing.assert_close(namespace["ModelNew"]()(x, w), torch.relu(x @ w))


def test_prebuild_reports_compiler_errors():
    dsl = plugins.get_dsl("cpp")
    source = coder.make_candidate(_softmax_plan(), dsl, "cpu", SOFTMAX_PROBLEM, "softmax").source
    broken = re.sub(r"(extern \"C\" void akg_g0\()", r"this is not C++; \1", source)
    with pytest.raises(BuildError, match="error"):
        dsl.prebuild(broken, "cpu")


def test_lint_flags_missing_model_and_foreign_imports():
    problems = plugins.get_dsl("cpp").lint("import triton\nclass Model: pass\n")
    assert any("ModelNew" in p for p in problems) and any("triton" in p for p in problems)


EXAMPLES = ["06_softmax", "08_layer_norm", "14_argmax_last_dim", "15_argmin_middle_dim", "17_cumsum",
            "22_kl_div", "25_linear_bias_gelu"]


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_problems_through_the_frontend(name):
    analyzer = pytest.importorskip("akg.agents.analyzer")
    designer = pytest.importorskip("akg.agents.designer")
    from akg.problem import load_problem
    path = ROOT / "examples" / "problems" / f"{name}.py"
    if not path.exists():
        pytest.skip(f"{path.name} is not in this checkout")
    problem = load_problem(path)
    dsl, backend = plugins.get_dsl("cpp"), plugins.get_backend("cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = analyzer.plans_for(problem)
    options = designer.renderable_plans(plans, dsl, backend.detect())
    assert options, f"no plan of {name} renders in cpp"
    model, inputs = problem.build_model(0), problem.example_inputs(0)
    expected = model(*inputs)
    candidate = coder.make_candidate(options[0].plan, dsl, "cpu", problem.source, name)
    new = _exec(candidate.source)["ModelNew"](*problem.get_init_inputs())
    new.load_state_dict(model.state_dict())
    torch.testing.assert_close(new(*inputs), expected, rtol=1e-4, atol=1e-5)
