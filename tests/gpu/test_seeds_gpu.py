"""torch.compile's own code as a seed on an NVIDIA GPU: Inductor writes Triton kernels there, the
seed is a Triton candidate that passes the static screen and the harness under strict, runs in a
fresh process without torch.compile, and `akg optimize --seed inductor` judges it (as soon as it is captured).

    python -m pytest -m gpu tests/gpu/test_seeds_gpu.py -q -s
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

from akg import plugins, screen, seeds  # noqa: E402
from akg.problem import load_problem  # noqa: E402

PROBLEM = '''import torch
import torch.nn as nn


class Model(nn.Module):
    """A GEMM with a bias, GELU, a scale and a residual: Inductor's extern mm plus one Triton epilogue."""
    def __init__(self, features, out):
        super().__init__()
        self.lin = nn.Linear(features, out)
        self.register_buffer("scale", torch.linspace(0.5, 1.5, out))

    def forward(self, x, r):
        return torch.nn.functional.gelu(self.lin(x)) * self.scale + r


def get_inputs():
    return [torch.randn(4096, 1024), torch.randn(4096, 1024)]


def get_init_inputs():
    return [1024, 1024]
'''

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
reference = best.Model(*best.get_init_inputs()).cuda()
candidate = best.ModelNew(*best.get_init_inputs()).cuda()
candidate.load_state_dict(reference.state_dict())
torch.manual_seed(7)
inputs = [x.cuda() for x in best.get_inputs()]
with torch.no_grad():
    expected, got = reference(*inputs), candidate(*inputs)
torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
from torch._dynamo.utils import counters
assert not counters["frames"]["total"], dict(counters["frames"])
print("standalone ok")
'''


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    root = tmp_path_factory.mktemp("seeds")
    path = root / "gemm_gelu.py"
    path.write_text(PROBLEM)
    cache = {"TORCHINDUCTOR_CACHE_DIR": str(root / "inductor")}
    problem = load_problem(path)
    return root, cache, problem, seeds.inductor_seed(problem, plugins.get_dsl("triton"), "cuda", env=cache)


def test_the_triton_seed_passes_the_screen_and_the_harness(seeded, monkeypatch):
    from akg.harness import HarnessConfig, evaluate
    root, cache, problem, seed = seeded
    assert seed.source is not None, seed.reason
    assert "async_compile.triton(" in seed.source and "torch.compile(" not in seed.source
    checks = screen.findings(seed.source, plugins.get_dsl("triton"), "strict")
    assert all(c.passed for c in checks), checks
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", cache["TORCHINDUCTOR_CACHE_DIR"])
    verdict = evaluate(problem, seed.source, "cuda", "strict",
                       HarnessConfig(seeds=(0,), distributions=("problem", "large"), measure_compile=False))
    assert verdict.accepted, verdict.reason
    print(f"inductor seed: {verdict.time_ms:.4g} ms, {dict(verdict.speedups).get('vs_eager', 0):.3f}x eager")


def test_the_triton_seed_runs_standalone_without_torch_compile(seeded, tmp_path):
    root, cache, problem, seed = seeded
    assert seed.source is not None, seed.reason
    (tmp_path / "best.py").write_text(seed.source)
    (tmp_path / "run_best.py").write_text(STANDALONE)
    done = subprocess.run([sys.executable, str(tmp_path / "run_best.py"), str(tmp_path / "best.py")],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "standalone ok" in done.stdout


def test_optimize_with_the_inductor_seed_reports_its_origin(seeded, tmp_path):
    root, cache, problem, seed = seeded
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(root / "gemm_gelu.py"), "--dsl", "triton",
                           "--device", "cuda", "--budget", "2", "--time-limit", "300", "--seed", "inductor", "--out", str(out),
                           "--store", str(tmp_path / "store.db")],
                          capture_output=True, text=True, timeout=900, env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    seeded_rows = [c for c in report["candidates"] if c["origin"] == "inductor"]
    assert len(seeded_rows) == 1 and seeded_rows[0]["correct"], report["candidates"]
    best = report["best"]
    print(f"best: {best['origin']} {best['time_ms']} ms, {best['speedup_vs_eager']}x eager, "
          f"{best['speedup_vs_compile']}x torch.compile; seed {seeded_rows[0]['time_ms']} ms")


def test_the_compile_baseline_after_the_capture_is_a_cache_hit(seeded, tmp_path):
    # The capture compiled into the workers' Inductor cache: torch.compile's baseline (the
    # worker's own code) loads it instead of compiling the same graph a second time.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from test_seeds import COMPILE_BASELINE
    root, cache, problem, seed = seeded
    assert seed.source is not None, seed.reason
    done = subprocess.run([sys.executable, "-c", COMPILE_BASELINE, str(root / "gemm_gelu.py"), str(tmp_path), "cuda"],
                          capture_output=True, text=True, timeout=600, env={**os.environ, **cache}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    counted = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"torch.compile baseline after the capture: {counted}")
    assert counted.get("fxgraph_cache_hit", 0) >= 1 and not counted.get("fxgraph_cache_miss"), counted
