"""Shared helpers for the rewrite-pass tests: a problem written to a temp file, its graph before and
after one pass, and the rewritten program's candidate judged by the harness (cpp DSL, CPU)."""
from __future__ import annotations

import textwrap
import warnings

import torch

from akg import ir, plugins
from akg.agents import analyzer, coder, designer
from akg.harness import HarnessConfig, evaluate
from akg.planeval import model_state, run_plan
from akg.problem import load_problem
from akg.targets import PassContext, run_graph_passes, run_plan_passes

CORRECTNESS_ONLY = HarnessConfig(seeds=(0,), distributions=("problem", "uniform"), time=False,
                                 measure_compile=False, timeout_s=300.0)


def write_problem(tmp_path, body: str, name: str = "problem"):
    path = tmp_path / f"{name}.py"
    path.write_text("import torch\nimport torch.nn as nn\n\n" + textwrap.dedent(body))
    return load_problem(path)


def graphs(problem, pass_name: str) -> tuple[ir.Graph, ir.Graph]:
    """(graph before the pass, graph after it): every other graph pass runs as installed."""
    passes = plugins.passes()
    without = [p for p in passes if p.name != pass_name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = analyzer.trace(problem)
        return run_graph_passes(traced, without, PassContext()), run_graph_passes(traced, passes, PassContext())


def ops(graph: ir.Graph) -> list[str]:
    return [n.op for n in graph.nodes]


def plans(graph: ir.Graph) -> list[ir.KernelPlan]:
    return run_plan_passes(graph, plugins.passes(), PassContext())


def planeval_matches(problem, graph: ir.Graph, atol=1e-4, rtol=1e-4) -> None:
    """Every plan of ``graph`` computes what the model computes (planeval, seed-5 inputs)."""
    model = problem.build_model(0).eval()
    inputs = problem.example_inputs(5)
    with torch.no_grad():
        expected = model(*inputs)
    expected = list(expected) if isinstance(expected, (tuple, list)) else [expected]
    for plan in plans(graph):
        got = run_plan(plan, inputs, model_state(model))
        for e, g in zip(expected, got):
            torch.testing.assert_close(g, e, atol=atol, rtol=rtol, msg=lambda m: f"plan {plan.name}: {m}")


def harness_accepts(problem, graph: ir.Graph, plan_name: str | None = None):
    """The candidate of ``graph``'s plan ``plan_name`` (default: the one the designer ranks first)
    in the cpp DSL, judged by the strict harness."""
    dsl = plugins.get_dsl("cpp")
    options = designer.renderable_plans(plans(graph), dsl, plugins.get_backend("cpu").detect())
    (po,) = [po for po in options if po.plan.name == plan_name] if plan_name else options[:1]
    candidate = coder.make_candidate(po.plan, dsl, "cpu", problem.source, problem.name)
    verdict = evaluate(problem, candidate.source, candidate.id, device="cpu", policy="strict", config=CORRECTNESS_ONLY)
    assert verdict.accepted, verdict.reason
    return candidate, verdict
