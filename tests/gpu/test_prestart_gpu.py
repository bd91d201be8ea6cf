"""On a GPU, `akg optimize --device cuda` hands the zygote it started at its entry to its pool:
nothing the conductor does before the pool (importing torch, probing the device, tracing) may
change the environment the zygote was started with, or the early start is silently lost.

    python -m pytest -m gpu tests/gpu/test_prestart_gpu.py -q
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

PROBLEM = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x)

def get_inputs():
    return [torch.randn(4096, 4096)]

def get_init_inputs():
    return []
"""

# The command as `akg optimize` runs it, with adopt() reporting what it decided.
RUN = """
import sys
from akg.harness import prestart
real = prestart.adopt
def adopt(*args):
    held = real(*args)
    print("ADOPTED", held is not None, flush=True)
    return held
prestart.adopt = adopt
from akg import cli
sys.exit(cli.main(sys.argv[1:]))
"""


def test_the_pool_adopts_the_zygote_started_at_entry_on_cuda(tmp_path):
    problem = tmp_path / "relu.py"
    problem.write_text(PROBLEM)
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", RUN, "optimize", str(problem), "--dsl", "triton", "--device", "cuda",
                           "--budget", "1", "--time-limit", "90", "--no-compile", "--out", str(out),
                           "--store", str(tmp_path / "s.db")], capture_output=True, text=True, timeout=150)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "ADOPTED True" in done.stdout, f"the pool started its own zygote: {done.stdout[-500:]}"
    report = json.loads((out / "report.json").read_text())
    print("phases", report["phases"], "milestones", report["milestones"])
