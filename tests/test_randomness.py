"""Models that draw random numbers are judged, not refused: bit for bit under the same seed where
the candidate keeps the framework's random op, statistically (plus the exact support check) where
it draws its own."""
from __future__ import annotations

import pytest
import torch

from akg.harness import HarnessConfig, WorkerPool
from akg.harness.randomness import RandomDraws, statistical_check

DROPOUT_SOFTMAX = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.dropout = nn.Dropout(0.5)          # training mode, as the problem is built
    def forward(self, x):
        return torch.softmax(self.dropout(x), dim=-1)

def get_inputs():
    return [torch.randn(64, 128)]

def get_init_inputs():
    return []
"""
RAND_MASK = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def forward(self, x):
        return x * (torch.rand_like(x) < 0.7) / 0.7

def get_inputs():
    return [torch.randn(256, 64)]

def get_init_inputs():
    return []
"""
KEEPS_TORCH_DROPOUT = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class ModelNew(nn.Module):
    def forward(self, x):
        return torch.softmax(F.dropout(x, 0.5, training=True), dim=-1)
"""
# Its own generator, seeded from torch's (so the harness's seed reproduces it); {keep} and {scale}
# vary below; {rate} may depend on the input.
OWN_RNG = """
import torch
import torch.nn as nn

class ModelNew(nn.Module):
    def forward(self, x):
        g = torch.Generator(device=x.device).manual_seed(int(torch.randint(0, 2**62, (1,))))
        u = torch.rand(x.shape, generator=g, device=x.device)
        keep = u < {rate}
        return {body}
"""
OWN_RNG_SOFTMAX = OWN_RNG.format(rate="0.5", body="torch.softmax(x * keep / 0.5, dim=-1)")
DETERMINISTIC = "import torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x):\n        return x.clone()\n"

CONFIG = HarnessConfig(seeds=(0,), distributions=("problem", "large"), time=False, measure_compile=False,
                       timeout_s=60.0, warmup=0, trials=2)


@pytest.fixture(scope="module")
def problems(tmp_path_factory):
    root = tmp_path_factory.mktemp("random-problems")
    paths = {}
    for name, text in (("dropout_softmax", DROPOUT_SOFTMAX), ("rand_mask", RAND_MASK)):
        paths[name] = root / f"{name}.py"
        paths[name].write_text(text)
    return paths


@pytest.fixture(scope="module")
def pool():
    with WorkerPool(device="cpu", workers=1, config=CONFIG) as p:
        yield p


def checks(verdict) -> dict[str, bool]:
    return {c.name: c.passed for c in verdict.checks}


def test_candidate_keeping_torch_dropout_is_judged_bit_exact_under_the_seed(pool, problems):
    verdict = pool.evaluate(problems["dropout_softmax"], KEEPS_TORCH_DROPOUT, "keeps-dropout", policy="standard")
    assert verdict.accepted, verdict.reason
    assert checks(verdict).get("random_seeded") is True and "random_statistical" not in checks(verdict)
    assert verdict.max_abs_err == 0.0     # same draws, same ops: the same bits


def test_candidate_keeping_torch_dropout_is_timed_with_the_same_draws(problems):
    config = CONFIG.replace(time=True, trials=3)
    with WorkerPool(device="cpu", workers=1, config=config, standby=False) as p:
        verdict = p.evaluate(problems["dropout_softmax"], KEEPS_TORCH_DROPOUT, "keeps-dropout-timed", policy="standard")
    assert verdict.accepted, verdict.reason
    assert checks(verdict)["timing_outputs"] and verdict.time_ms > 0


def test_own_rng_with_the_right_keep_rate_passes_the_statistical_check(pool, problems):
    source = OWN_RNG.format(rate="0.7", body="x * keep / 0.7")
    verdict = pool.evaluate(problems["rand_mask"], source, "own-rng", policy="standard")
    assert verdict.accepted, verdict.reason
    found = checks(verdict)
    assert found["random_statistical"] and found["random_support"] and "random_seeded" not in found


def test_own_rng_after_which_softmax_runs_passes_without_a_support_check(pool, problems):
    verdict = pool.evaluate(problems["dropout_softmax"], OWN_RNG_SOFTMAX, "own-rng-softmax", policy="standard")
    assert verdict.accepted, verdict.reason
    assert checks(verdict)["random_statistical"] and "random_support" not in checks(verdict)


@pytest.mark.parametrize("name, rate, body, caught_by", [
    ("wrong-keep-rate", "0.55", "x * keep / 0.55", "random_statistical"),
    ("wrong-scale", "0.7", "x * keep / 0.5", "random_support"),
    ("input-dependent", "torch.where(x > 0, 0.9, 0.5)", "x * keep / 0.7", "random_statistical"),
])
def test_wrong_random_candidates_are_rejected(pool, problems, name, rate, body, caught_by):
    verdict = pool.evaluate(problems["rand_mask"], OWN_RNG.format(rate=rate, body=body), name, policy="standard")
    assert not verdict.accepted
    assert checks(verdict).get(caught_by) is False, verdict.reason


def test_a_candidate_that_draws_nothing_is_rejected(pool, problems):
    verdict = pool.evaluate(problems["rand_mask"], DETERMINISTIC, "draws-nothing", policy="standard")
    assert not verdict.accepted and checks(verdict).get("random_statistical") is False, verdict.reason


def test_random_ops_are_recorded_with_digests_of_their_draws():
    recorder = RandomDraws()
    with recorder:
        torch.manual_seed(3)
        torch.nn.functional.dropout(torch.ones(100), 0.5, training=True)
    with RandomDraws() as again:
        torch.manual_seed(3)
        torch.nn.functional.dropout(torch.ones(100), 0.5, training=True)
    with RandomDraws() as other:
        torch.manual_seed(4)
        torch.nn.functional.dropout(torch.ones(100), 0.5, training=True)
    assert recorder.ops and recorder.draws == again.draws != other.draws


def test_statistical_check_separates_keep_rates():
    x = torch.randn(4096, dtype=torch.float64)

    def samples(keep: float, base: int) -> list[torch.Tensor]:
        out = []
        for k in range(16):
            u = torch.rand(x.shape, generator=torch.Generator().manual_seed(base + k), dtype=torch.float64)
            out.append(x * (u < keep) / keep)
        return out

    reference = samples(0.5, 0)
    assert statistical_check(reference, samples(0.5, 100), "w").passed
    assert not statistical_check(reference, samples(0.6, 100), "w").passed
