"""Bad input gets one line on stderr, no traceback, and a distinct exit code."""
import subprocess
import sys
from pathlib import Path

import pytest

GOOD_PROBLEM = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0

def get_inputs():
    return [torch.randn(64, 64)]

def get_init_inputs():
    return []
'''


def akg(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "akg.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def assert_one_line_error(result, code):
    assert result.returncode == code, (result.returncode, result.stderr)
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("akg: error:"), result.stderr
    assert "Traceback" not in result.stderr


@pytest.fixture
def problem(tmp_path):
    p = tmp_path / "relu.py"
    p.write_text(GOOD_PROBLEM)
    return p


@pytest.mark.parametrize("text, needle", [
    ("def broken(:\n", "syntax error"),
    ("import torch\nx = 1\ndef get_inputs(): return []\ndef get_init_inputs(): return []\n", "no class Model"),
    (GOOD_PROBLEM.replace("return [torch.randn(64, 64)]", "raise RuntimeError('boom')"), "get_inputs() raised"),
    (GOOD_PROBLEM.replace("return torch.relu(x) * 2.0", "return 3"), "not a tensor"),
    (GOOD_PROBLEM.replace("return torch.relu(x) * 2.0", "self.n = getattr(self, 'n', 0) + 1; return x + self.n"), "nondeterministic"),
])
def test_malformed_problem_exits_2(tmp_path, text, needle):
    bad = tmp_path / "bad.py"
    bad.write_text(text)
    r = akg("optimize", bad, "--dsl", "cpp", "--device", "cpu", "--out", tmp_path / "o", "--store", tmp_path / "s.db")
    assert_one_line_error(r, 2)
    assert "bad" in r.stderr and needle in r.stderr


def test_unknown_dsl_exits_2(problem, tmp_path):
    r = akg("optimize", problem, "--dsl", "cobol", "--out", tmp_path / "o", "--store", tmp_path / "s.db")
    assert_one_line_error(r, 2)
    assert "cobol" in r.stderr


def test_missing_gpu_exits_5(problem, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    r = akg("optimize", problem, "--dsl", "triton", "--device", "cuda", "--out", tmp_path / "o", "--store", tmp_path / "s.db")
    assert_one_line_error(r, 5)


def test_candidate_syntax_error_exits_3(problem, tmp_path):
    cand = tmp_path / "cand.py"
    cand.write_text("class ModelNew(:\n")
    assert_one_line_error(akg("verify", problem, cand), 3)


def test_missing_candidate_exits_3(problem, tmp_path):
    # The README: 3 for a candidate file that cannot be read, a missing one included.
    assert_one_line_error(akg("verify", problem, tmp_path / "nope.py"), 3)


@pytest.mark.parametrize("text", ["[search\nbudget=1", "[search]\nbugdet = 3\n", "[search]\nbudget = 'x'\n", "[colour]\n"])
def test_bad_config_exits_4(problem, tmp_path, text):
    cfg = tmp_path / "akg.toml"
    cfg.write_text(text)
    r = akg("optimize", problem, "--dsl", "cpp", "--config", cfg, "--out", tmp_path / "o", "--store", tmp_path / "s.db")
    assert_one_line_error(r, 4)


def test_unopenable_store_exits_6(problem, tmp_path):
    store = tmp_path / "store.db"
    store.write_text("this is not a database" * 100)
    r = akg("optimize", problem, "--dsl", "cpp", "--out", tmp_path / "o", "--store", store)
    assert_one_line_error(r, 6)
    assert store.read_text().startswith("this is not a database")  # nothing overwritten
