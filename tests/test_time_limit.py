"""``--time-limit S``: the whole command ends within S + 10 s with best.py and report.json written,
however slow the reference, the baselines or the candidates are."""
import json
import os
import subprocess
import sys
import time

import pytest

SLACK_S = 10.0

# forward sleeps from its ``after``-th call in a process on: the conductor's few calls (checking
# and tracing the reference) stay fast, a worker's many timed calls are slow; tracing does not see
# the sleep, so akg still plans and renders kernels for it.
SLOW_PROBLEM = '''
import time
import torch
import torch.nn as nn

_calls = [0]

class Model(nn.Module):
    def forward(self, x, y):
        _calls[0] += 1
        if _calls[0] > {after}:
            time.sleep({sleep})
        return (x * 2 + y).tanh()

def get_inputs():
    return [torch.randn(64, 256), torch.randn(64, 256)]

def get_init_inputs():
    return []
'''


def _optimize(tmp_path, sleep: float, after: int, limit: float, *extra):
    problem = tmp_path / "slow.py"
    problem.write_text(SLOW_PROBLEM.format(sleep=sleep, after=after))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", str(problem), "--dsl", "cpp", "--device", "cpu",
                           "--time-limit", str(limit), "--out", str(tmp_path / "out"), "--store", str(tmp_path / "s.db"),
                           *extra], capture_output=True, text=True, timeout=limit + 120,
                          env={**os.environ, "TMPDIR": str(tmp)})
    wall = time.monotonic() - started
    return done, wall, tmp


def _check_written(tmp_path, done, wall, limit, tmp):
    assert done.returncode == 0, done.stderr[-2000:]
    assert wall <= limit + SLACK_S, f"took {wall:.1f}s for a {limit}s limit"
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert "class ModelNew" in (tmp_path / "out" / "best.py").read_text()
    assert not [p for p in tmp.iterdir() if p.name.startswith("akg-")], "workers' folders left behind"
    return report


def test_baselines_longer_than_the_limit_are_reported_not_measured(tmp_path):
    # The worker's 33 timed calls of 2 s need far more than the limit: it is killed at the limit.
    from akg import plugins
    plugins.get_backend("cpu").detect()  # the host's bandwidth is measured once per cache, not in the limit
    limit = 30.0
    done, wall, tmp = _optimize(tmp_path, 2.0, 6, limit, "--no-compile")
    report = _check_written(tmp_path, done, wall, limit, tmp)
    assert report["best"]["origin"] == "reference"
    assert report["baselines"]["eager_ms"] is None
    assert any("baselines not measured" in n and "time limit" in n for n in report["notes"]), report["notes"]
    # where the limit went: start-up and tracing before, the eager baseline until the limit
    phases = report["phases"]
    assert phases["startup"] > 0 and "trace" in phases and phases["wall"] <= limit + SLACK_S


@pytest.mark.slow
def test_conductor_busy_past_the_limit_still_writes_results(tmp_path):
    # The conductor runs the reference itself to check it: 2 x 30 s, far past the limit.
    limit = 8.0
    done, wall, tmp = _optimize(tmp_path, 30, 0, limit)
    report = _check_written(tmp_path, done, wall, limit, tmp)
    assert report["best"]["origin"] == "reference" and report["best"]["correct"]
    assert any("time limit" in n for n in report["notes"])
    assert "time limit" in done.stderr


def test_time_limit_must_be_positive(tmp_path):
    done = subprocess.run([sys.executable, "-m", "akg.cli", "optimize", "nothing.py", "--dsl", "cpp",
                           "--time-limit", "0"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2 and "--time-limit" in done.stderr and "Traceback" not in done.stderr
