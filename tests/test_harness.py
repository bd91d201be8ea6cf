"""The harness's public API, configuration and comparison rules (real workers, real tensors)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from akg.harness import CandidateError, ConfigError, HarnessConfig, WorkerPool, evaluate, load_candidate, load_config
from akg.harness.compare import OutputInfo, compare_case
from akg.harness.sandbox import is_secret_name

PROBLEMS = Path(__file__).parent / "adversarial" / "problems"
SCALE_ADD = PROBLEMS / "scale_add.py"
HONEST = "import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x, y):\n        return x * 2.0 + y\n"
QUICK = HarnessConfig(seeds=(0,), distributions=("problem", "large"), warmup=1, trials=3,
                      measure_compile=False, timeout_s=60.0)


# ---- configuration and bad input --------------------------------------------------------------

def test_config_file_round_trip(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text('[harness]\nseeds = [4, 5]\ntrials = 7\ntime = false\n[harness.tolerances.float32]\nrtol = 1e-3\n')
    config = load_config(path)
    assert config.seeds == (4, 5) and config.trials == 7 and config.time is False
    assert config.tolerance("float32").rtol == 1e-3
    assert config.tolerance("float32").rel_norm == HarnessConfig().tolerance("float32").rel_norm


@pytest.mark.parametrize("text, fragment", [
    ("[harness]\nseeds = [\n", "not valid TOML"),
    ("[harness]\nsedes = [1]\n", "unknown key 'sedes'"),
    ("[harness]\ntrials = 'many'\n", "trials should be like"),
    ("[harness]\ndistributions = ['gaussian']\n", "unknown distribution 'gaussian'"),
    ("[harness]\ntrials = 0\n", "trials must be positive"),
    ("[harness.tolerances.int8]\nrtol = 1\n", "tolerances.int8"),
])
def test_bad_config_is_one_line_error(tmp_path, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == ConfigError.exit_code != CandidateError.exit_code


@pytest.mark.parametrize("source, fragment", [
    ("def broken(:\n", "syntax error at line 1"),
    ("import torch\n", "defines no ModelNew"),
    ("x = '\0'\nModelNew = 1\n", "plain Python text"),
])
def test_bad_candidate_is_candidate_error(tmp_path, source, fragment):
    path = tmp_path / "cand.py"
    path.write_text(source)
    with pytest.raises(CandidateError) as info:
        load_candidate(path)
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_missing_candidate_file(tmp_path):
    with pytest.raises(CandidateError, match="cannot read"):
        load_candidate(tmp_path / "nope.py")


def test_unknown_policy_is_config_error():
    with pytest.raises(ConfigError, match="unknown policy"):
        evaluate(SCALE_ADD, HONEST, "x", policy="lenient", config=QUICK)


def test_secret_names():
    for name in ("OPENAI_API_KEY", "HF_HOME", "GITHUB_TOKEN", "DB_PASSWORD", "MY_AUTH_HEADER", "aws_secret"):
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "AKG_CACHE_DIR", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH"):
        assert not is_secret_name(name), name


# ---- comparison rules -------------------------------------------------------------------------

def _compare(expected, actual):
    info = OutputInfo("Tensor", True, tuple(actual.shape), str(actual.dtype).removeprefix("torch."), "cpu")
    result = compare_case([expected], [info], [actual], "cpu", HarnessConfig(), "case")
    return {c.name: c.passed for c in result.checks}


def test_near_zero_outputs_need_the_relative_norm():
    expected = torch.randn(1000) * 1e-6
    checks = _compare(expected, torch.zeros(1000))
    assert checks["rel_norm"] is False


def test_nan_positions_must_match():
    expected = torch.tensor([1.0, float("nan"), float("inf")])
    assert _compare(expected, expected.clone())["nan_positions"] is True
    assert _compare(expected, torch.tensor([1.0, 0.0, float("inf")]))["nan_positions"] is False
    assert _compare(expected, torch.tensor([1.0, float("nan"), -float("inf")]))["nan_positions"] is False


def test_summation_order_passes_fp16_rounding_fails():
    x = torch.randn(64, 512)
    expected = x.sum(dim=1)
    reordered = x.double().flip(1).cumsum(1)[:, -1].float()
    assert all(_compare(expected, reordered).values())
    assert _compare(expected, expected.half().float())["rel_norm"] is False


def test_integer_outputs_are_exact():
    expected = torch.arange(10)
    assert _compare(expected, expected.clone())["allclose"] is True
    assert _compare(expected, expected + (torch.arange(10) == 3))["allclose"] is False


# ---- the public API on real workers -----------------------------------------------------------

def test_evaluate_accepts_and_times_an_honest_candidate():
    verdict = evaluate(str(SCALE_ADD), HONEST, "honest", policy="standard", config=QUICK)
    assert verdict.accepted, verdict.reason
    assert verdict.stage == "done" and verdict.compiled and verdict.correct
    assert verdict.time_ms > 0 and dict(verdict.baselines)["eager_ms"] > 0
    assert dict(verdict.speedups)["vs_eager"] > 0
    names = {c.name for c in verdict.checks}
    assert {"loads", "allclose", "rel_norm", "fresh_outputs", "input_mutation", "timer_integrity",
            "unwritten_output", "async_work", "timing_outputs"} <= names


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(device="cpu", workers=1, config=QUICK) as p:
        yield p


def test_roofline_floor_flags_impossible_speed(pool):
    verdict = pool.evaluate(SCALE_ADD, HONEST, "too-fast", policy="standard", floor_ms=1e4)
    assert not verdict.accepted
    assert [c.name for c in verdict.checks if not c.passed] == ["roofline_floor"]
    assert verdict.roofline_fraction > 1


def test_correctness_only_mode_does_not_time():
    config = QUICK.replace(time=False)
    verdict = evaluate(SCALE_ADD, HONEST, "no-time", policy="standard", config=config)
    assert verdict.accepted and verdict.time_ms is None


def test_load_failure_is_a_verdict(pool):
    verdict = pool.evaluate(SCALE_ADD, "raise ValueError('nope')\nModelNew = None\n", "bad-load", policy="standard")
    assert not verdict.accepted and verdict.stage == "load" and not verdict.compiled
    assert "ValueError: nope" in verdict.reason


def test_parameters_are_copied_by_name(pool):
    # The candidate's own initialisation is scrambled: only the reference's weights make it pass.
    source = ("import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n"
              "    def __init__(self, i, o):\n        super().__init__()\n        self.linear = nn.Linear(i, o)\n"
              "        torch.nn.init.constant_(self.linear.weight, 3.0)\n"
              "    def forward(self, x):\n        return torch.relu(self.linear(x))\n")
    verdict = pool.evaluate(PROBLEMS / "linear_relu.py", source, "params", policy="standard")
    assert verdict.accepted, verdict.reason


def test_baselines(pool):
    baselines = pool.baselines(SCALE_ADD)
    assert baselines["eager_ms"] > 0 and baselines["compile_ms"] is None


def test_tester_agent():
    from akg.agents.tester import Tester
    from akg.ir import Candidate
    from akg.problem import load_problem
    problem = load_problem(SCALE_ADD)
    with Tester(device="cpu", policy="standard", config=QUICK.replace(time=False)) as tester:
        ok = tester.test(problem, Candidate("c1", None, "cpp", HONEST, None, "user"))
        bad = tester.test(problem, Candidate("c2", None, "cpp", HONEST.replace("2.0", "2.5"), None, "user"))
    assert ok.accepted and not bad.accepted and ok.candidate_id == "c1"


LINEAR_PROBLEM = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 32)

    def forward(self, x):
        return torch.relu(self.lin(x))

def get_inputs():
    return [torch.randn(16, 64)]

def get_init_inputs():
    return []
'''

COMPOSITE_CANDIDATE = '''
import torch
import torch.nn as nn
{problem}
AKG_LIBRARY_OPS = {declared!r}

class ModelNew(Model):
    def forward(self, x):
        return torch.ops.aten.relu.default(torch.ops.aten.linear.default(x, self.lin.weight, self.lin.bias))
'''


def test_strict_attributes_what_a_declared_composite_op_dispatches(tmp_path):
    """aten.linear dispatches aten.t and aten.addmm: declaring linear covers them, not relu."""
    from akg.harness import HarnessConfig, evaluate
    problem = tmp_path / "linear_relu.py"
    problem.write_text(LINEAR_PROBLEM)
    config = HarnessConfig(time=False, measure_compile=False)
    verdicts = {}
    for declared in (("aten.linear.default",), ("aten.linear.default", "aten.relu.default")):
        source = COMPOSITE_CANDIDATE.format(problem=LINEAR_PROBLEM, declared=declared)
        verdicts[declared] = evaluate(problem, source, f"c{len(declared)}", device="cpu", policy="strict", config=config)
    only_linear = verdicts[("aten.linear.default",)]
    assert not only_linear.accepted
    assert "aten.relu.default" in only_linear.reason and "addmm" not in only_linear.reason
    assert verdicts[("aten.linear.default", "aten.relu.default")].accepted


# ---- a reference less exact than the tolerance: the float64 second look -----------------------

CANCELLING_VARIANCE = '''
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        # E[x^2] - E[x]^2 in float32: catastrophic cancellation for data far from zero
        return (x * x).mean(-1) - x.mean(-1) ** 2

def get_inputs():
    return [100.0 + torch.randn(16, 4096)]

def get_init_inputs():
    return []
'''

VARIANCE_CANDIDATE = '''
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def forward(self, x):
        return ((x - x.mean(-1, keepdim=True)) ** 2).mean(-1) * {scale}
'''


@pytest.mark.parametrize("scale, accepted", [(1.0, True), (1.01, False)])
def test_a_candidate_more_exact_than_an_inexact_reference_passes_a_wrong_one_does_not(tmp_path, scale, accepted):
    """The two-pass variance is exact where the reference's cancellation is ~0.2% off: the fixed
    tolerance rejects it, the float64 result shows it is the more exact one. Off by 1% it fails."""
    problem = tmp_path / "variance.py"
    problem.write_text(CANCELLING_VARIANCE)
    # Timed too: the outputs of the timing runs get the same second look as the cases.
    config = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=3, measure_compile=False,
                           timeout_s=60.0)
    verdict = evaluate(problem, VARIANCE_CANDIDATE.format(scale=scale), f"var{scale}", policy="standard", config=config)
    assert verdict.accepted is accepted, verdict.reason
    if not accepted:
        assert "vs float64" in verdict.reason


def test_second_look_keeps_the_first_verdict_when_the_reference_is_exact():
    from akg.harness.accuracy import judged_against_truth
    exact = torch.linspace(1, 2, 1000, dtype=torch.float64)
    assert judged_against_truth(exact.float(), exact.float() * 1.01, exact, "out") is not None
    assert judged_against_truth(exact, exact * 1.01, exact, "out") is None     # reference error 0


MARKING = HONEST + "import torch\ntorch._akg_left_behind = True\n"
READING = ("import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x, y):\n"
           "        return x * 2.0 + y + (1.0 if getattr(torch, '_akg_left_behind', False) else 0.0)\n")


def test_no_worker_judges_a_second_candidate_even_after_an_accepted_one():
    """What an accepted candidate leaves in its process never meets the next candidate."""
    with WorkerPool(device="cpu", workers=1, config=QUICK.replace(time=False)) as pool:
        first = pool.evaluate(SCALE_ADD, MARKING, "marks", policy="standard")
        second = pool.evaluate(SCALE_ADD, READING, "reads", policy="standard")
    assert first.accepted, first.reason
    assert second.accepted, second.reason
