"""Ops that used to stop the tracer or the planner: tuple-returning ATen ops (max/min over a dim,
batch norm, pooling with indices, cummax), 0-d tensors made in forward, elementwise min/max with a
tensor, batch norm in training and eval mode. Each tiny problem is traced, planned and rendered in
the cpp DSL; the generated candidate runs against the model as built (one also through the
harness, in a worker, under the strict policy), and every plan is checked against the model with
the IR's reference semantics."""
from __future__ import annotations

import warnings

import pytest
import torch

from akg import plugins
from akg.agents import coder, designer
from akg.agents.analyzer import plans_for
from akg.harness import HarnessConfig, evaluate
from akg.ir import LibraryCall
from akg.planeval import model_state, run_plan
from akg.problem import flatten_outputs, load_problem

QUICK = HarnessConfig(seeds=(0,), distributions=("problem",), time=False, measure_compile=False, timeout_s=120.0)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AKG_CACHE_DIR", str(tmp_path / "cache"))


def _problem(tmp_path, name: str, body: str, inputs: str, init: str = "[]"):
    path = tmp_path / f"{name}.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n" + body
                    + f"\n\ndef get_inputs():\n    return {inputs}\n\ndef get_init_inputs():\n    return {init}\n")
    return load_problem(path)


def _plans(problem):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return plans_for(problem)


def _check_plans_match_model(problem, plans):
    """Every plan, run with the IR's semantics, equals the model as built (training mode)."""
    model = problem.build_model(0)
    inputs = problem.example_inputs(3)
    with torch.no_grad():
        expected = flatten_outputs(model(*[x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]))
    for plan in plans:
        got = run_plan(plan, inputs, model_state(model))
        assert len(got) == len(expected), plan.name
        for g, e in zip(got, expected):
            assert g.shape == e.shape and g.dtype == e.dtype, f"{plan.name}: {g.shape}/{g.dtype} vs {e.shape}/{e.dtype}"
            torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4, msg=lambda m: f"plan {plan.name}: {m}")


def _run_candidate(problem, source: str, seeds=(0, 5)) -> None:
    """The candidate file executed here, against the model as built, on fresh inputs."""
    namespace: dict = {}
    exec(compile(source, f"<candidate {problem.name}>", "exec"), namespace)
    for seed in seeds:
        model = problem.build_model(0)
        new = namespace["ModelNew"](*problem.get_init_inputs())
        new.load_state_dict(model.state_dict())
        inputs = problem.example_inputs(seed)
        with torch.no_grad():
            expected = flatten_outputs(model(*[x.clone() for x in inputs]))
            got = flatten_outputs(new(*[x.clone() for x in inputs]))
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert g.dtype == e.dtype
            torch.testing.assert_close(g, e, atol=1e-4, rtol=1e-4)


def _verified_cpp_candidate(problem, plans, no_library: tuple[str, ...] = (), harness: bool = False):
    """The first cpp plan that generates a kernel, rendered and run against the model; with
    ``harness`` also judged by the harness (a worker process, the strict policy)."""
    dsl = plugins.get_dsl("cpp")
    # a descriptor, not detect(): detection measures this machine's bandwidth
    options = designer.renderable_plans(plans, dsl, plugins.find_hardware("x86-64-generic"))
    generating = [po.plan for po in options if designer.generated_group_count(po.plan)]
    assert generating, f"no cpp plan of {problem.name} generates a kernel"
    plan = generating[0]
    library = [g.kernel.op for g in plan.groups if isinstance(g.kernel, LibraryCall)]
    for word in no_library:
        assert not any(word in op for op in library), f"{word} stayed a framework call: {library}"
    candidate = coder.make_candidate(plan, dsl, "cpu", problem.source, problem.name)
    _run_candidate(problem, candidate.source)
    if harness:
        verdict = evaluate(problem, candidate, "cpu", "strict", QUICK)
        assert verdict.accepted, verdict.reason
    return plan


def test_max_over_a_dim_with_keepdim_feeds_later_ops(tmp_path):
    problem = _problem(tmp_path, "rowmax", """
class Model(nn.Module):
    def forward(self, x):
        v = torch.max(x, dim=1, keepdim=True)[0]
        return torch.mean(v, dim=2) + 1.0
""", "[torch.randn(4, 6, 10)]")
    graph, plans = _plans(problem)
    assert {"max"} <= {n.op for n in graph.nodes if n.kind == "reduction"}
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("max",))


def test_min_values_and_indices_are_both_outputs(tmp_path):
    problem = _problem(tmp_path, "rowmin", """
class Model(nn.Module):
    def forward(self, x):
        values, indices = torch.min(x, 1)
        return values * 2.0, indices
""", "[torch.randn(5, 7)]")
    graph, plans = _plans(problem)
    assert {"min", "argmin"} <= {n.op for n in graph.nodes}
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("min",))


def test_elementwise_min_with_a_parameter_and_with_a_scalar_tensor(tmp_path):
    problem = _problem(tmp_path, "clampish", """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.limit = nn.Parameter(torch.tensor(0.3))
    def forward(self, x):
        y = torch.min(x, self.limit)
        return torch.max(y, torch.tensor(-0.5)) - self.limit
""", "[torch.randn(8, 16)]")
    graph, plans = _plans(problem)
    assert not [n for n in graph.nodes if n.kind == "library"]
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_batch_norm_is_a_reduction_in_both_modes(tmp_path, mode):
    problem = _problem(tmp_path, f"bn_{mode}", f"""
class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.bn = nn.BatchNorm2d(c)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 1.5)
        {'self.eval()' if mode == 'eval' else 'pass'}
    def forward(self, x):
        return torch.relu(self.bn(x * 2.0))
""", "[torch.randn(4, 3, 5, 6)]", "[3]")
    graph, plans = _plans(problem)
    assert not [n for n in graph.nodes if "batch_norm" in n.op], [n.op for n in graph.nodes]
    if mode == "train":   # batch statistics: the sums run over (N, H, W)
        assert any(n.kind == "reduction" for n in graph.nodes)
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("batch_norm",))


LINEAR_BN = """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(12, 8)
        self.bn = nn.BatchNorm1d(8)
    def forward(self, x):
        return self.bn(self.linear(x)) * 0.5
"""


def test_batch_norm_of_a_linear_output_in_training_mode(tmp_path):
    problem = _problem(tmp_path, "linear_bn", LINEAR_BN, "[torch.randn(16, 12)]")
    graph, plans = _plans(problem)
    # forward's output only: the running statistics training mode updates are no graph output
    assert len(graph.outputs) == 1
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("batch_norm",))


@pytest.mark.slow
def test_training_mode_batch_norm_candidate_passes_the_harness(tmp_path):
    problem = _problem(tmp_path, "linear_bn", LINEAR_BN, "[torch.randn(16, 12)]")
    _verified_cpp_candidate(problem, _plans(problem)[1], no_library=("batch_norm",), harness=True)


def test_pooling_with_unused_indices_plans(tmp_path):
    problem = _problem(tmp_path, "pool3d", """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.pool = nn.MaxPool3d(2)
    def forward(self, x):
        return torch.tanh(self.pool(x)) + 1.0
""", "[torch.randn(2, 3, 4, 6, 6)]")
    graph, plans = _plans(problem)
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans)


def test_cummax_values_are_a_scan(tmp_path):
    problem = _problem(tmp_path, "cummax", """
class Model(nn.Module):
    def forward(self, x):
        return torch.cummax(x * 2.0, 1).values + torch.cummin(x, 0)[0]
""", "[torch.randn(6, 9)]")
    graph, plans = _plans(problem)
    assert {"cummax", "cummin"} <= {n.op for n in graph.nodes if n.kind == "scan"}
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("cummax", "cummin"))


def test_cummax_indices_stay_a_framework_call(tmp_path):
    problem = _problem(tmp_path, "cummax_idx", """
class Model(nn.Module):
    def forward(self, x):
        values, indices = torch.cummax(x, 0)
        return values * 3.0, indices
""", "[torch.randn(6, 9)]")
    graph, plans = _plans(problem)
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans)


def test_vector_norms_open_into_reductions(tmp_path):
    problem = _problem(tmp_path, "norms", """
class Model(nn.Module):
    def forward(self, x):
        frobenius = torch.norm(x, p="fro")
        rows = torch.linalg.vector_norm(x, ord=2, dim=1, keepdim=True)
        return x / frobenius + x / rows
""", "[torch.randn(6, 9)]")
    graph, plans = _plans(problem)
    assert not [n.op for n in graph.nodes if n.kind == "library"]
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans, no_library=("norm",))


def test_fake_tensor_trace_of_a_constructor_that_reads_values_and_a_device_move(tmp_path):
    problem = _problem(tmp_path, "reads_values", """
class Model(nn.Module):
    def __init__(self):
        super().__init__()
        # values read while building: fake tensors have none, so the parameters are built for real
        self.scales = [float(v.item()) for v in torch.linspace(0.5, 1.5, 3)]
        self.linear = nn.Linear(8, 8)
    def forward(self, x, h):
        h = h.to(x.device)          # export records a metadata check here; it computes nothing
        return torch.tanh(self.linear(x)) * self.scales[2] + h
""", "[torch.randn(4, 8), torch.randn(4, 8)]")
    from akg.agents.analyzer import trace_once
    graph = trace_once(problem, fake=True)
    assert not any("assert" in n.op for n in graph.nodes)
    graph, plans = _plans(problem)
    _check_plans_match_model(problem, plans)
    _verified_cpp_candidate(problem, plans)
