"""Triton kernels compiled ahead by a build process (meta-tensor warmup) are what the worker's first
launch loads: that launch adds no kernel to the cache. And the time limit holds on the GPU."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

PROBLEM = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x) * 2

def get_inputs():
    return [torch.rand(4096, 8192)]

def get_init_inputs():
    return []
'''

FIRST_RUN = '''
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("cand", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
x = torch.rand(4096, 8192, device="cuda")
y = m.ModelNew()(x)
torch.cuda.synchronize()
assert torch.allclose(y, torch.sigmoid(x) * 2)
'''


def _kernel_dirs(cache: Path) -> set[str]:
    return {p.parent.name for p in cache.rglob("*.cubin")}


def test_prebuilt_kernels_are_the_ones_the_first_launch_uses(tmp_path, monkeypatch):
    from akg.agents import analyzer, coder, designer
    from akg.build import Builders
    from akg import plugins
    from akg.problem import load_problem
    (tmp_path / "sig.py").write_text(PROBLEM)
    problem = load_problem(tmp_path / "sig.py")
    dsl, hardware = plugins.get_dsl("triton"), plugins.get_backend("cuda").detect()
    _, plans = analyzer.plans_for(problem)
    plan = designer.renderable_plans(plans, dsl, hardware)[0].plan
    candidate = coder.make_candidate(plan, dsl, "cuda", problem.source, problem.name, None)
    cache = tmp_path / "triton-cache"
    monkeypatch.setenv("TRITON_CACHE_DIR", str(cache))   # the build processes inherit it, as workers do
    builders = Builders("triton", "cuda", 1)
    try:
        assert builders.build(candidate.source) is None
    finally:
        builders.close()
    built = _kernel_dirs(cache)
    assert built, "the build process compiled nothing"
    path = tmp_path / "cand.py"
    path.write_text(candidate.source)
    subprocess.run([sys.executable, "-c", FIRST_RUN, str(path)], check=True, timeout=300,
                   env={**os.environ, "TRITON_CACHE_DIR": str(cache)})
    assert _kernel_dirs(cache) == built   # the launch compiled nothing new


def test_time_limit_holds_on_the_gpu(tmp_path):
    problem = tmp_path / "sig.py"
    problem.write_text(PROBLEM.replace("torch.rand(4096, 8192)", "torch.rand(4096, 393216)"))
    limit = 30
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "triton", "--device",
                           "cuda", "--time-limit", str(limit), "--out", str(tmp_path / "out"),
                           "--store", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=limit + 60)
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-2000:]
    assert wall <= limit + 10
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["best"]["correct"] and (tmp_path / "out" / "best.py").exists()
