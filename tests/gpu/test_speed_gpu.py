"""A short time limit on an NVIDIA GPU is spent on candidates: the eager baseline is timed while akg
traces, torch.compile's baseline compiles in a process of its own beside the search, and a
candidate is judged and fully verified well within the limit; report.json says where the time went."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gpu
if not torch.cuda.is_available():
    pytest.skip("needs an NVIDIA GPU", allow_module_level=True)

# Memory-bound and about 1 GB of input: a Triton kernel beats nothing by much, but is judged.
PROBLEM = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.sigmoid(x) * 2.0 + 1.0

def get_inputs():
    return [torch.rand(4096, 65536)]

def get_init_inputs():
    return []
"""


def _optimize(tmp_path, limit: float, store):
    problem = tmp_path / "sig.py"
    problem.write_text(PROBLEM)
    out = tmp_path / f"out-{time.monotonic_ns()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "triton",
                           "--device", "cuda", "--time-limit", str(limit), "--budget", "16", "--out", str(out),
                           "--store", str(store)], capture_output=True, text=True, timeout=limit + 60,
                          env={**os.environ})
    wall = time.monotonic() - started
    assert done.returncode == 0, done.stderr[-3000:]
    print(done.stderr[-3000:])
    return json.loads((out / "report.json").read_text()), wall


def test_a_thirty_second_limit_judges_candidates_and_reports_phases(tmp_path):
    limit = 30.0
    report, wall = _optimize(tmp_path, limit, tmp_path / "s.db")
    phases = report["phases"]
    print("phases:", json.dumps(phases))
    assert wall <= limit + 10
    judged = [c for c in report["candidates"] if c["origin"] != "reference" and not c["reused"]]
    assert judged, report["notes"]
    assert any(c["correct"] for c in judged), [c["reason"] for c in judged]
    # torch.compile's baseline: measured, or a note that says why not
    assert report["baselines"]["compile_ms"] is not None or any("torch.compile baseline not measured" in n
                                                                for n in report["notes"]), report["notes"]
    # a second run reuses the stored baselines and judges more
    again, _ = _optimize(tmp_path, limit, tmp_path / "s.db")
    print("phases, second run:", json.dumps(again["phases"]))
    assert "eager_baseline" not in again["phases"], again["phases"]
