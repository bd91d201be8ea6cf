"""The harness's typed seam: the one ``evaluate`` entry, the worker messages as frozen dataclasses,
and the memory estimate made before any work."""
from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

import pytest
import torch

from akg.harness import HarnessConfig, evaluate, memory, messages as m
from akg.harness.inputs import draw_inputs
from akg.harness.protocol import ProtocolError
from akg.ir import Candidate
from akg.problem import load_problem

SCALE_ADD = Path(__file__).parent / "adversarial" / "problems" / "scale_add.py"
HONEST = "import torch\nimport torch.nn as nn\nclass ModelNew(nn.Module):\n    def forward(self, x, y):\n        return x * 2.0 + y\n"
QUICK = HarnessConfig(seeds=(0,), distributions=("problem",), time=False, measure_compile=False, timeout_s=60.0)

# KernelBench-sized: 4096 x 1048576 fp32 = 16 GiB of input, never allocated by these tests.
HUGE = """
import torch
import torch.nn as nn

class Model(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(n))
    def forward(self, x):
        return torch.relu(x) * self.scale

def get_inputs():
    return [torch.rand(4096, 1 << 20)]

def get_init_inputs():
    return [1 << 20]
"""


@pytest.fixture
def huge(tmp_path):
    path = tmp_path / "huge_relu.py"
    path.write_text(HUGE)
    return load_problem(path)


# ---- the entry ----------------------------------------------------------------------------------

def test_evaluate_takes_a_candidate_and_a_target():
    candidate = Candidate("c-honest", None, "", HONEST, None, "user")
    target = type("Target", (), {"device": "cpu"})()     # anything with .device, like akg.pipeline.Target
    verdict = evaluate(SCALE_ADD, candidate, target, "standard", QUICK)
    assert verdict.accepted and verdict.candidate_id == "c-honest"
    assert dict(verdict.profile)["footprint_bytes"] == 3 * 4096 * 4   # two inputs and one output


def test_evaluate_names_a_bare_source_by_its_digest():
    verdict = evaluate(SCALE_ADD, HONEST, "cpu", "standard", QUICK)
    assert verdict.accepted and verdict.candidate_id.startswith("candidate-")


# ---- messages -----------------------------------------------------------------------------------

def test_messages_round_trip_and_are_frozen():
    case = m.RunCase(3, "large", None, (16, 8), 0.01, 10010)
    assert m.request_from_wire(case.to_wire()) == case
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.seed = 4
    timed = m.Timed((1.0, 2.0), (0.5,), 1000, (torch.ones(2), None), ("x",))
    back = m.reply_from_wire(timed.to_wire(), m.Timed)
    assert back.cand_ms == (0.5,) and torch.equal(back.last_outputs[0], torch.ones(2))


@pytest.mark.parametrize("wire", [
    {"op": "timed", "ref_ms": [1.0], "cand_ms": ["fast"], "last_seed": 1000, "last_outputs": [], "integrity": []},
    {"op": "timed", "ref_ms": [1.0], "cand_ms": [1.0], "last_seed": 1000, "last_outputs": [], "integrity": [], "extra": 1},
    {"op": "timed", "ref_ms": [1.0], "cand_ms": [1.0], "last_seed": 1000, "integrity": []},
    {"op": "timed", "ref_ms": [], "cand_ms": [], "last_seed": 1000, "last_outputs": [], "integrity": []},
    {"op": "timed", "ref_ms": [1.0], "cand_ms": [1.0], "last_seed": "1000", "last_outputs": [], "integrity": []},
    {"op": "timed", "ref_ms": [1.0], "cand_ms": [1.0], "last_seed": 1000, "last_outputs": [[1, 2]], "integrity": []},
    {"op": "loaded", "declared_ops": [], "integrity": []},
    "not a dict",
])
def test_a_malformed_reply_is_a_protocol_error(wire):
    with pytest.raises(ProtocolError):
        m.reply_from_wire(wire, m.Timed)


def test_a_failure_reply_is_typed():
    reply = m.reply_from_wire({"op": "failure", "error": "boom"}, m.Timed)
    assert isinstance(reply, m.Failure) and reply.error == "boom" and reply.integrity == ()


# ---- memory: sized from shapes, before any work ---------------------------------------------------

def test_footprint_of_a_16_gib_problem_is_sized_without_allocating(huge):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    footprint = memory.estimate_footprint(huge)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    n = 4096 * (1 << 20)
    assert footprint.inputs_bytes == 4 * n and footprint.outputs_bytes == 4 * n
    assert footprint.params_bytes == 4 * (1 << 20)
    assert grown_kib < 512 * 1024     # far below the 16 GiB a real draw would take


def test_a_problem_too_big_for_the_free_memory_is_one_line(huge):
    footprint = memory.estimate_footprint(huge)
    with pytest.raises(memory.ProblemTooLarge) as info:
        memory.refuse_if_too_big(huge, "accel:0", footprint, free=139 << 30)
    message = str(info.value)
    assert "\n" not in message and "huge_relu" in message and "139.0 GiB" in message
    assert info.value.exit_code == 5
    fits = int(memory.PEAK_FACTOR * footprint.total_bytes) + memory.COMPARE_SCRATCH_BYTES
    memory.refuse_if_too_big(huge, "accel:0", footprint, free=fits + 1)
    with pytest.raises(memory.ProblemTooLarge):
        memory.refuse_if_too_big(huge, "accel:0", footprint, free=fits - (1 << 20))


def test_on_the_cpu_there_is_no_device_limit(huge):
    assert memory.check_fits(huge, "cpu").total_bytes > 32 << 30


def test_inputs_are_drawn_on_the_target_device(huge):
    # The meta device stands in for an accelerator: get_inputs runs with it as the default
    # device, so the 16 GiB tensor is made there, not on the host and copied.
    (x,) = draw_inputs(huge, 0, "problem", "meta")
    assert x.device.type == "meta" and x.shape == (4096, 1 << 20)


def test_value_checks_in_chunks_agree_with_one_chunk(monkeypatch):
    from akg.harness import compare
    torch.manual_seed(0)
    expected = torch.randn(1000) * 10
    expected[[3, 500]] = float("nan")
    expected[777] = float("inf")
    near = expected + 1e-6 * torch.randn(1000)
    off = expected.clone()
    off[[10, 900]] += 1.0
    config = HarnessConfig()
    whole = [compare._value_checks(expected, a, config, "w") for a in (near, off)]
    monkeypatch.setattr(compare, "CHUNK_ELEMENTS", 7)
    chunked = [compare._value_checks(expected, a, config, "w") for a in (near, off)]
    for (c1, m1, r1), (c2, m2, r2) in zip(whole, chunked):
        assert [(c.name, c.passed, c.detail) for c in c1] == [(c.name, c.passed, c.detail) for c in c2]
        assert m1 == m2 and abs(r1 - r2) <= 1e-12 * max(1.0, r1)
    assert [c.passed for c in whole[0][0]] == [True, True, True] and not whole[1][0][1].passed
    moved_nan = near.clone()
    moved_nan[[3, 4]] = moved_nan[[4, 3]]
    assert not compare._value_checks(expected, moved_nan, config, "w")[0][0].passed


def test_a_case_reply_must_describe_every_output_of_both_passes():
    info = {"type_name": "Tensor", "plain": True, "shape": [2], "dtype": "float32", "device": "cpu"}
    good = {"op": "case", "infos": [info], "outputs": [[torch.ones(2)], [torch.ones(2)]], "mutated": [],
            "aliases_input": [[]], "aliases_earlier": False, "late_writes": False, "new_threads": 0,
            "violations": [], "integrity": []}
    assert m.reply_from_wire(good, m.CaseResult).outputs[1][0].shape == (2,)
    for bad in ({"outputs": [[torch.ones(2)], []]},                     # an output left out of a pass
                {"written": [[True]]},                                   # one pass of flags
                {"aliases_input": []}):
        with pytest.raises(ProtocolError):
            m.reply_from_wire(dict(good, **bad), m.CaseResult)
