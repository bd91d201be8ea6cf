"""torch.compile's own code as a seed (akg.seeds): Inductor's output module written out as a
standalone candidate, screened and judged like any other.

The fast tests work on Inductor modules kept as text (one captured from torch's CPU backend, one
shaped like its GPU output); the slow ones compile real problems with Inductor on this CPU, judge
the seed with the real harness and run it in a fresh process without torch.compile."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from akg import plugins, screen, seeds
from akg.problem import load_problem

HERE = Path(__file__).parent
CPU_MODULE = (HERE / "seed_modules" / "cpu_linear_relu_sum.txt").read_text()
GPU_MODULE = (HERE / "seed_modules" / "gpu_mm_relu.txt").read_text()

LINEAR_PROBLEM = '''import torch
import torch.nn as nn

device = "clashes with Inductor's own import of torch.device"


def call(x):
    return x


class Model(nn.Module):
    def __init__(self, features, out):
        super().__init__()
        self.lin = nn.Linear(features, out)
        self.register_buffer("shift", torch.linspace(-1.0, 1.0, out))

    def forward(self, x):
        return torch.nn.functional.gelu(self.lin(x)) + call(self.shift)


def get_inputs():
    return [torch.randn(16, 64)]


def get_init_inputs():
    return [64, 32]
'''

POINTWISE_PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x, y):
        a = torch.sigmoid(x) * 2.0 + torch.tanh(y)
        return a, (a * y).sum(dim=1)


def get_inputs():
    return [torch.randn(64, 128), torch.randn(64, 128)]


def get_init_inputs():
    return []
'''


def _captured(code: str, args: tuple[seeds.ArgRef, ...]) -> seeds.Captured:
    return seeds.Captured(code, args, "tensor", 1)


LINEAR_ARGS = (seeds.ArgRef("state", path="lin.weight"), seeds.ArgRef("state", path="lin.bias"),
               seeds.ArgRef("input", index=0), seeds.ArgRef("input", index=1))


# ---- fast: the text of the candidate ------------------------------------------------------------

def test_standalone_code_renames_clashes_keeps_kernels_and_drops_the_benchmark():
    problem = "import torch\nimport math\ncall = 3\nrunner = None\ndef get_inputs():\n    return []\n"
    text, renames = seeds.standalone_code(CPU_MODULE, problem)
    assert renames == {"call": "_akg_ind_call", "runner": "_akg_ind_runner"}  # torch, math: the same imports
    tree = ast.parse(text)
    top = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert "get_args" not in top and "benchmark_compiled_module" not in top
    assert "__main__" not in text and "globals()" not in text.replace("module globals", "")
    assert "_akg_ind_call = _akg_ind_runner.call" in text
    # The C++ source is not touched by the renaming (it has its own identifiers named like Python ones).
    kernel = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and "extern" in n.value]
    original = [n.value for n in ast.walk(ast.parse(CPU_MODULE)) if isinstance(n, ast.Constant)
                and isinstance(n.value, str) and "extern" in n.value]
    assert kernel == original and kernel
    # The kernels are waited for through a dict, then bound to their names again.
    assert "async_compile.wait(_akg_kernels)" in text
    assert "cpp_fused_add_mul_relu_sum_0 = _akg_kernels['cpp_fused_add_mul_relu_sum_0']" in text


def test_renaming_follows_python_scopes():
    module = ("from torch import device, empty_strided\n"
              "def f(x, out=None):\n"
              "    return g(out=x, y=device, z=out.device)\n"
              "class R:\n"
              "    out = 2\n"
              "    def call(self):\n"
              "        return device, out\n"
              "out = f(1)\n")
    text, renames = seeds.standalone_code(module, "out = 1\ndevice = 2\n")
    assert renames == {"device": "_akg_ind_device", "out": "_akg_ind_out"}
    assert text == ("from torch import device as _akg_ind_device, empty_strided\n"
                    "def f(x, out=None):\n"
                    "    return g(out=x, y=_akg_ind_device, z=out.device)\n"   # a parameter, a keyword, an attribute
                    "class R:\n"
                    "    out = 2\n"
                    "    def call(self):\n"
                    "        return _akg_ind_device, _akg_ind_out\n"            # methods do not see class names
                    "_akg_ind_out = f(1)\n")


def test_assemble_hands_parameters_and_inputs_to_call_in_graph_order():
    source = seeds.assemble(_captured(CPU_MODULE, LINEAR_ARGS), LINEAR_PROBLEM, "lin", "cpp", "cpu", ("aten.addmm.out",))
    compile(source, "<seed>", "exec")
    assert ("out = _akg_ind_call([_akg_state(self, 'lin.weight'), _akg_state(self, 'lin.bias'), args[0], args[1]])"
            in source)
    assert "AKG_LIBRARY_OPS = ('aten.addmm.out',)" in source and "origin=inductor" in source
    assert "torch.compile(" not in source
    tuple_source = seeds.assemble(seeds.Captured(CPU_MODULE, LINEAR_ARGS, "tuple", 2), LINEAR_PROBLEM, "lin", "cpp", "cpu")
    assert "return tuple(out[:2])" in tuple_source


def test_the_static_screen_passes_the_seed_and_refuses_the_raw_module():
    cpp = plugins.get_dsl("cpp")
    source = seeds.assemble(_captured(CPU_MODULE, LINEAR_ARGS), LINEAR_PROBLEM, "lin", "cpp", "cpu", ("aten.addmm.out",))
    checks = {c.name: c for c in screen.findings(source, cpp, "strict")}
    assert all(c.passed for c in checks.values()), checks
    # Inductor's module as written waits on globals(): an interpreter trick the screen refuses.
    raw = LINEAR_PROBLEM + CPU_MODULE + "\nclass ModelNew(Model):\n    pass\n"
    assert not {c.name: c for c in screen.findings(raw, cpp, "strict")}["static_tricks"].passed
    # Without the declaration, addmm is undeclared framework compute under strict.
    bare = seeds.assemble(_captured(CPU_MODULE, LINEAR_ARGS), LINEAR_PROBLEM, "lin", "cpp", "cpu")
    assert not {c.name: c for c in screen.findings(bare, cpp, "strict")}["static_framework_ops"].passed


def test_cpp_findings_need_the_built_kernel_to_be_called():
    cpp = plugins.get_dsl("cpp")
    source = seeds.assemble(_captured(CPU_MODULE, LINEAR_ARGS), LINEAR_PROBLEM, "lin", "cpp", "cpu")
    assert cpp.kernel_findings(source) == []
    never_called = source.replace("cpp_fused_add_mul_relu_sum_0(buf2, arg3_1, buf1)", "pass")
    assert cpp.kernel_findings(never_called)


def test_triton_findings_accept_inductor_launches_and_only_those():
    triton = plugins.get_dsl("triton")
    args = (seeds.ArgRef("state", path="lin.weight"), seeds.ArgRef("state", path="lin.bias"), seeds.ArgRef("input", index=0))
    source = seeds.assemble(_captured(GPU_MODULE, args), LINEAR_PROBLEM, "lin", "triton", "cuda", ("aten.mm.out",))
    checks = {c.name: c for c in screen.findings(source, triton, "strict")}
    assert all(c.passed for c in checks.values()), checks
    assert triton.kernel_findings(source.replace(".run(buf1, arg1_1, 1024, stream=stream0)", "")), "never launched"
    assert triton.kernel_findings(source.replace("@triton.jit", "")), "no jitted function in the string"
    # C++ does not take Triton's module for one of its own, nor the other way round.
    assert plugins.get_dsl("cpp").kernel_findings(source)
    cpu_seed = seeds.assemble(_captured(CPU_MODULE, LINEAR_ARGS), LINEAR_PROBLEM, "lin", "cpp", "cpu")
    assert triton.kernel_findings(cpu_seed)


def test_only_the_dsl_inductor_writes_on_a_device_is_offered_a_seed():
    assert seeds.offers(plugins.get_dsl("cpp"), "cpu")
    assert not seeds.offers(plugins.get_dsl("cpp"), "cuda")
    assert not seeds.offers(plugins.get_dsl("triton"), "cpu")   # Triton's interpreter: Inductor writes C++ there

    class NoSeeds:
        name = "other"

    seed = seeds.inductor_seed(object(), NoSeeds(), "cpu")
    assert seed.source is None and "does not write other kernels on cpu" in seed.reason


def test_the_seed_flag_reaches_the_search_options():
    from akg import cli
    args = cli.build_parser().parse_args(["optimize", "p.py", "--dsl", "cpp", "--seed", "inductor"])
    options, _ = cli._settings(args)
    assert options.seeds == ("inductor",)


def test_an_unknown_seed_kind_is_refused():
    from akg.errors import AkgError
    with pytest.raises(AkgError, match="unknown seed"):
        seeds.Seeder(("eager",), None, plugins.get_dsl("cpp"), "cpu")


# ---- slow: real Inductor on this CPU ----------------------------------------------------------------

@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Both problems' seeds, captured once (Inductor's CPU compile takes tens of seconds here)."""
    root = tmp_path_factory.mktemp("seeds")
    cache = {"TORCHINDUCTOR_CACHE_DIR": str(root / "inductor")}
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCHINDUCTOR_CACHE_DIR", cache["TORCHINDUCTOR_CACHE_DIR"])
        for name, text in (("linear_gelu", LINEAR_PROBLEM), ("pointwise_pair", POINTWISE_PROBLEM)):
            path = root / f"{name}.py"
            path.write_text(text)
            problem = load_problem(path)
            found[name] = (problem, seeds.inductor_seed(problem, plugins.get_dsl("cpp"), "cpu", env=cache))
    return root, cache, found


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear_gelu", "pointwise_pair"])
def test_the_seed_is_verified_by_the_harness(built, name, monkeypatch):
    from akg.harness import HarnessConfig, evaluate
    root, cache, found = built
    problem, seed = found[name]
    assert seed.source is not None, seed.reason
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", cache["TORCHINDUCTOR_CACHE_DIR"])   # the worker loads the built kernels
    assert all(c.passed for c in screen.findings(seed.source, plugins.get_dsl("cpp"), "strict"))
    config = HarnessConfig(seeds=(0,), distributions=("problem", "large"), time=False, measure_compile=False)
    verdict = evaluate(problem, seed.source, "cpu", "strict", config)
    assert verdict.accepted, verdict.reason
    assert dict((c.name, c.passed) for c in verdict.checks)["strict_policy"]


# The worker's own torch.compile baseline (akg.harness.runner), with Inductor's cache counters.
COMPILE_BASELINE = """import json, sys
from pathlib import Path
from torch._dynamo.utils import counters
from akg.harness import messages as m
from akg.harness.runner import WorkerState
WorkerState(sys.argv[3], Path(sys.argv[2])).compile_baseline(m.CompileBaseline(sys.argv[1], 0, 0))
print(json.dumps({**counters["inductor"], **counters["aot_autograd"]}))
"""


@pytest.mark.slow
def test_the_compile_baseline_after_the_capture_is_a_cache_hit(built, tmp_path):
    # --seed inductor compiled the model once already, into the workers' cache: torch.compile's
    # baseline of the same graph loads it instead of compiling a second time.
    root, cache, found = built
    assert found["pointwise_pair"][1].source is not None
    done = subprocess.run([sys.executable, "-c", COMPILE_BASELINE, str(root / "pointwise_pair.py"), str(tmp_path), "cpu"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    counted = json.loads(done.stdout.strip().splitlines()[-1])
    assert counted.get("fxgraph_cache_hit", 0) >= 1 and not counted.get("fxgraph_cache_miss"), counted


@pytest.mark.slow
def test_a_capture_after_the_compile_baseline_still_hands_over_the_module(tmp_path):
    # On a GPU torch.compile's baseline compiles beside the search and may finish first: the
    # capture is then the cache hit, and still gets Inductor's module.
    path = tmp_path / "pointwise_pair.py"
    path.write_text(POINTWISE_PROBLEM)
    cache = {"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")}
    done = subprocess.run([sys.executable, "-c", COMPILE_BASELINE, str(path), str(tmp_path), "cpu"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    seed = seeds.inductor_seed(load_problem(path), plugins.get_dsl("cpp"), "cpu", env=cache)
    assert seed.source is not None, seed.reason
    assert "cpp_pybinding(" in seed.source and all(c.passed for c in screen.findings(seed.source, plugins.get_dsl("cpp"), "strict"))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["linear_gelu", "pointwise_pair"])
def test_best_py_from_the_seed_runs_standalone_without_torch_compile(built, name, tmp_path):
    root, cache, found = built
    problem, seed = found[name]
    assert seed.source is not None, seed.reason
    best = tmp_path / "best.py"
    best.write_text(seed.source)
    script = tmp_path / "run_best.py"
    script.write_text(STANDALONE)
    done = subprocess.run([sys.executable, str(script), str(best)], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "standalone ok" in done.stdout


STANDALONE = '''import importlib.util, sys
import torch
import torch._dynamo


def forbidden(*args, **kwargs):
    raise AssertionError("the seed called torch.compile")


torch.compile = forbidden
torch._dynamo.optimize = forbidden
spec = importlib.util.spec_from_file_location("best", sys.argv[1])
best = importlib.util.module_from_spec(spec)
spec.loader.exec_module(best)
torch.manual_seed(0)
reference = best.Model(*best.get_init_inputs())
candidate = best.ModelNew(*best.get_init_inputs())
candidate.load_state_dict(reference.state_dict())
torch.manual_seed(7)
inputs = best.get_inputs()
with torch.no_grad():
    expected, got = reference(*inputs), candidate(*inputs)
torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
from torch._dynamo.utils import counters
assert not counters["frames"]["total"], dict(counters["frames"])
print("standalone ok")
'''


@pytest.mark.slow
def test_optimize_judges_the_seed_first_and_reports_its_origin(built, tmp_path):
    root, cache, found = built
    out = tmp_path / "out"
    # The problem named by a relative path (the capture runs in a folder of its own).
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", "pointwise_pair.py", "--dsl", "cpp",
                           "--device", "cpu", "--budget", "1", "--no-compile", "--trials", "5", "--seed", "inductor",
                           "--out", str(out), "--store", str(tmp_path / "store.db")],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **cache}, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    seeded = [c for c in report["candidates"] if c["origin"] == "inductor"]
    assert len(seeded) == 1 and seeded[0]["correct"], report["candidates"]
    # The budget of one went to the seed: it was judged before any template candidate.
    assert [c["origin"] for c in report["candidates"]] == ["reference", "inductor"]
    if report["best"]["origin"] == "inductor":
        assert "origin=inductor" in (out / "best.py").read_text()


def test_a_capture_past_its_time_is_stopped_with_a_reason(tmp_path):
    path = tmp_path / "pointwise_pair.py"
    path.write_text(POINTWISE_PROBLEM)
    seed = seeds.inductor_seed(load_problem(path), plugins.get_dsl("cpp"), "cpu", timeout_s=0.5)
    assert seed.source is None and "took longer than 0.5 s" in seed.reason


GRAPH_BREAK_PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    def forward(self, x):
        y = torch.relu(x)
        if float(y.sum()) > 0:   # data-dependent control flow: dynamo breaks the graph here
            return y * 2
        return y


def get_inputs():
    return [torch.randn(8, 8)]


def get_init_inputs():
    return []
'''


@pytest.mark.slow
def test_a_graph_break_means_no_seed_and_says_why(tmp_path):
    path = tmp_path / "graph_break.py"
    path.write_text(GRAPH_BREAK_PROBLEM)
    seed = seeds.inductor_seed(load_problem(path), plugins.get_dsl("cpp"), "cpu",
                               env={"TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor")})
    assert seed.source is None and "could not compile the model as one graph" in seed.reason, seed.reason


@pytest.mark.slow
def test_llm_mode_starts_from_the_seed(built, tmp_path, capsys, monkeypatch):
    """The seed is judged before the evolutionary loop, so the model is shown it (as the parent or
    an inspiration) with its origin."""
    from akg.cli import main
    from llm_server import ScriptedServer, kernel_reply
    root, cache, found = built
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", cache["TORCHINDUCTOR_CACHE_DIR"])
    (tmp_path / "akg.toml").write_text("[llm]\nislands = 1\n")
    with ScriptedServer([kernel_reply("cpp_fast.py")]) as server:
        code = main(["optimize", str(root / "pointwise_pair.py"), "--dsl", "cpp", "--device", "cpu",
                     "--llm", "scripted-model", "--llm-url", server.url, "--mode", "llm", "--agents", "coder",
                     "--llm-budget", "1", "--seed", "inductor", "--no-compile", "--trials", "5",
                     "--store", str(tmp_path / "s.db"), "--out", str(tmp_path / "out"),
                     "--config", str(tmp_path / "akg.toml"), "--json"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(capsys.readouterr().out)
    seeded = [c for c in report["candidates"] if c["origin"] == "inductor"]
    assert len(seeded) == 1 and seeded[0]["correct"]
    assert len(server.requests) == 1
    assert f"{seeded[0]['id']} (inductor: torch.compile's own code" in server.prompt(0)


def test_a_bench_row_carries_the_seed_time_when_it_passed():
    from akg.bench import _row
    best = {"correct": True, "origin": "inductor", "description": "", "time_ms": 2.0, "speedup_vs_eager": 1.5,
            "speedup_vs_compile": 1.0, "roofline_fraction": None, "eager_ms": 3.0, "compile_ms": 2.0}
    report = {"problem": "p", "best": best, "baselines": {"eager_ms": 3.0, "compile_ms": 2.0}, "analysis": {},
              "notes": [], "candidates": [{"origin": "reference", "correct": True, "time_ms": 3.0},
                                          {"origin": "inductor", "correct": True, "time_ms": 2.0}]}
    assert _row(report)["inductor_seed_ms"] == 2.0 and _row(report)["origin"] == "inductor"
    report["candidates"][1]["correct"] = False
    assert _row(report)["inductor_seed_ms"] is None


# ---- when the search judges the seed -------------------------------------------------------------

class _SlowSeeder:
    """Stands in for the capture (a subprocess of many seconds): returns its candidate once let go."""
    kinds = ("inductor",)

    def __init__(self):
        import threading
        self.let_go, self.calls = threading.Event(), 0

    def __call__(self, search):
        self.calls += 1
        assert self.let_go.wait(30)
        return [(types.SimpleNamespace(id="seed"), ())]


def _search_with(seeder, beside: bool, budget: int, monkeypatch):
    from akg.search import Search, SearchOptions
    from akg.targets import HardwareSpec
    dsl = types.SimpleNamespace(name="fake", timing_meaningful_on=("cpu",), versions=lambda: {})
    s = Search(None, dsl, "cpu", HardwareSpec(name="hw", backend="cpu"), None, None,
               SearchOptions(budget=budget))
    s.seeder = seeder
    monkeypatch.setattr(s, "_beside_timing", lambda: beside)
    measured = []

    def measure(candidate, findings=()):
        s.measured += 1
        measured.append(candidate.id)
    monkeypatch.setattr(s, "measure", measure)
    return s, measured


def test_where_work_runs_beside_timing_the_capture_runs_while_plans_are_judged(monkeypatch):
    seeder = _SlowSeeder()
    s, measured = _search_with(seeder, True, 2, monkeypatch)
    seeds = s._start_seeds()          # returns at once: the capture is still waiting
    assert not seeds.done()
    s.measured = 1                    # a plan judged meanwhile; the last slot is kept for the seed
    assert s._out_of_budget()
    seeds = s._judge_seeds(seeds, wait=False)
    assert measured == [] and seeds is not None   # not ready: the search goes on
    seeder.let_go.set()
    seeds = s._judge_seeds(seeds, wait=True)
    assert seeds is None
    s._judge_seeds(seeds, wait=True)  # judged once
    assert measured == ["seed"] and seeder.calls == 1 and s.measured == 2


def test_on_a_device_whose_cores_are_timed_the_seed_is_captured_first(monkeypatch):
    seeder = _SlowSeeder()
    seeder.let_go.set()
    s, measured = _search_with(seeder, False, 1, monkeypatch)
    seeds = s._start_seeds()
    assert seeds.done() and seeder.calls == 1 and not s._out_of_budget()
    assert s._judge_seeds(seeds, wait=False) is None
    assert measured == ["seed"]


def test_a_seed_refused_for_accuracy_alone_is_noted_against_the_compile_baseline(monkeypatch):
    from akg.ir import Check, Verdict
    from akg.search import Scored
    s, _ = _search_with(_SlowSeeder(), False, 4, monkeypatch)
    checks = (Check("runs", True), Check("allclose", False, "max error vs float64 3.6e-4 > 2x the reference's own 5.7e-7"))
    seed = types.SimpleNamespace(id="seed")
    s._note_inaccurate_seed(Scored(seed, Verdict("seed", "correctness", True, False, checks=checks)))
    assert len(s.notes) == 1 and "refused for accuracy" in s.notes[0] and "3.6e-4" in s.notes[0]
    crashed = (Check("runs", False, "RuntimeError"), Check("allclose", False, ""))
    s._note_inaccurate_seed(Scored(seed, Verdict("seed", "correctness", True, False, checks=crashed)))
    s._note_inaccurate_seed(Scored(seed, Verdict("seed", "done", True, True, checks=(Check("runs", True),))))
    assert len(s.notes) == 1
