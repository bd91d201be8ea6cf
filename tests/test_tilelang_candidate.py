"""The tilelang DSL end to end through akg's own frontend: example problems analysed, planned and
rendered as whole candidates; on the CPU the candidate's ModelNew must agree with Model, for CUDA
every program must lower to CUDA C for an H200 (no GPU here). One `akg optimize` on the CPU (slow)."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("tilelang", reason="tilelang is not installed (pip install 'akg[tilelang]')")

import torch  # noqa: E402

from akg import plugins  # noqa: E402
from akg.agents import analyzer, coder, designer  # noqa: E402
from akg.dsls.tilelang.dsl import cuda_sources  # noqa: E402
from akg.problem import load_problem, seed_everything  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# A pointwise chain, the norms and losses (multi-stage rows, isinf/abs, int64 targets, a bool mask),
# matmuls with epilogues and a batched matmul feeding a softmax.
SLOW = pytest.mark.slow
EXAMPLES = [pytest.param("05_activation_chain", marks=SLOW), pytest.param("09_rms_norm", marks=SLOW), "16_logsumexp",
            "20_cross_entropy", pytest.param("21_smooth_l1_loss", marks=SLOW), "25_linear_bias_gelu", "30_bmm_softmax",
            pytest.param("14_argmax_last_dim", marks=SLOW), pytest.param("15_argmin_middle_dim", marks=SLOW)]


def _first_plan(name: str, hardware):
    problem = load_problem(ROOT / "examples" / "problems" / f"{name}.py")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, plans = analyzer.plans_for(problem)
    options = designer.renderable_plans(plans, plugins.get_dsl("tilelang"), hardware)
    assert options, f"no plan of {name} renders in tilelang"
    return problem, options[0].plan


def _import(source: str, path: Path):
    path.write_text(source)   # TileLang reads a program's source from its file
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_candidate_agrees_with_the_model_on_the_cpu(name, tmp_path):
    problem, plan = _first_plan(name, plugins.get_backend("cpu").detect())
    candidate = coder.make_candidate(plan, plugins.get_dsl("tilelang"), "cpu", problem.source, name)
    module = _import(candidate.source, tmp_path / f"{name}.py")
    model, inputs = problem.build_model(0), problem.example_inputs(0)
    seed_everything(0)
    new = module.ModelNew(*problem.get_init_inputs())
    new.load_state_dict(model.state_dict())
    want, got = model(*inputs), new(*inputs)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["09_rms_norm", "20_cross_entropy", "25_linear_bias_gelu", "30_bmm_softmax"])
def test_example_candidate_lowers_to_cuda_for_an_h200(name):
    h200 = next(h for h in plugins.get_backend("cuda").descriptors() if h.name == "h200")
    problem, plan = _first_plan(name, h200)
    candidate = coder.make_candidate(plan, plugins.get_dsl("tilelang"), "cuda", problem.source, name)
    sources = cuda_sources(candidate.source)
    assert len(sources) >= sum(g.family != "library" for g in plan.groups)
    assert all("__global__" in text for text in sources.values())


@pytest.mark.slow
def test_optimize_on_the_cpu_writes_a_self_contained_best(tmp_path):
    problem = ROOT / "examples" / "problems" / "06_softmax.py"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "tilelang", "--device", "cpu",
                           "--budget", "2", "--no-compile", "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.db"),
                           "--json"], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert any(c["correct"] for c in report["candidates"] if c["origin"] == "template")
    best = tmp_path / "out" / "best.py"
    assert "akg" not in "".join(l for l in best.read_text().splitlines(True) if l.startswith(("import", "from")))
    check = ("import importlib.util, torch; s = importlib.util.spec_from_file_location('best', %r); "
             "m = importlib.util.module_from_spec(s); s.loader.exec_module(m); x = m.get_inputs(); "
             "torch.testing.assert_close(m.ModelNew(*m.get_init_inputs())(*x), m.Model(*m.get_init_inputs())(*x)); print('ok')"
             % str(best))
    ran = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                         env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert ran.stdout.strip().endswith("ok"), ran.stderr[-2000:]
