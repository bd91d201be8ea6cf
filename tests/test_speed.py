"""Where the time of a run goes, and the work taken off its critical path: phase times, and
torch.compile's baseline compiled in a process of its own and timed later."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from akg.harness import HarnessConfig, WorkerPool, messages as m
from akg.phases import Phases
from akg.problem import load_problem

SCALE_ADD = Path(__file__).parent / "adversarial" / "problems" / "scale_add.py"


def test_phases_add_up_and_keep_their_order():
    phases = Phases(time.monotonic() - 1.0)
    phases.since_start("startup")
    with phases.span("trace"):
        time.sleep(0.01)
    phases.add("builds", 0.5)
    phases.add("builds", 0.25)
    phases.add("custom", 0.1)
    record = phases.as_dict()
    assert list(record) == ["startup", "trace", "builds", "custom", "wall"]
    assert record["startup"] >= 1.0 and record["trace"] >= 0.01 and record["builds"] == 0.75
    assert record["wall"] >= record["startup"] + record["trace"]
    phases.mark("first_verified_s")
    phases.mark("first_verified_s")   # the first time counts
    assert phases.milestones()["first_verified_s"] <= phases.as_dict()["wall"]


def test_compile_baseline_messages_round_trip():
    request = m.CompileBaseline("/p.py", 0, 1000)
    assert m.request_from_wire(request.to_wire()) == request
    assert m.request_from_wire(m.TimeCompiled(1, 3).to_wire()) == m.TimeCompiled(1, 3)
    reply = m.Compiled(1.5, 0.25)
    assert m.reply_from_wire(reply.to_wire(), m.Compiled) == reply


def test_compile_beside_the_search_only_where_one_more_process_fits(monkeypatch):
    from akg.harness import memory
    config = HarnessConfig(seeds=(0,), distributions=("problem",), time=False, measure_compile=False)
    footprint = 3 * 4096 * 4   # two inputs and one output
    with WorkerPool("cpu", 1, config, standby=False) as pool:
        assert pool.fits_beside(SCALE_ADD)   # no device limit on the CPU
        # room for the conductor and one worker (7 x), not for one more process (10 x)
        scratch = getattr(memory, "COMPARE_SCRATCH_BYTES", 0)   # the comparisons' own room
        monkeypatch.setattr(memory, "free_bytes", lambda device: 8 * footprint + scratch)
        assert pool.footprint(SCALE_ADD).total_bytes == footprint
        assert not pool.fits_beside(SCALE_ADD)
        monkeypatch.setattr(memory, "free_bytes", lambda device: 11 * footprint + scratch)
        assert pool.fits_beside(SCALE_ADD)


@pytest.mark.slow
def test_compile_baseline_compiles_apart_and_is_timed_later():
    config = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=3, timeout_s=300.0)
    with WorkerPool("cpu", 1, config, standby=False) as pool:
        job = pool.compile_baseline(load_problem(SCALE_ADD))
        eager = pool.baselines(SCALE_ADD, compile=False)   # measured while the compile goes on
        assert eager["eager_ms"] > 0 and eager["compile_ms"] is None
        compile_ms = job.time(wait_s=300)
        assert compile_ms is not None and compile_ms > 0, job.error
        assert job.compile_s is not None and job.compile_s > 0


def test_a_killed_compile_baseline_reports_why_and_no_time():
    config = HarnessConfig(seeds=(0,), distributions=("problem",), warmup=1, trials=3, timeout_s=60.0)
    with WorkerPool("cpu", 1, config, standby=False) as pool:
        job = pool.compile_baseline(load_problem(SCALE_ADD))
        assert job.time(wait_s=0) is None and "had not finished" in job.error
        pool.cancel()   # the time limit: the compile's process goes too
        assert job.time(wait_s=60) is None and job.error


@pytest.mark.slow
def test_work_beside_the_measurements_as_on_an_accelerator(tmp_path, monkeypatch):
    """The accelerator's order of work, run on the CPU: the eager baseline in another thread while
    the problem is traced, torch.compile compiled beside the search, candidates built early; the
    report has every baseline, its phases, and a fully verified result."""
    from akg.harness import HarnessConfig
    from akg.pipeline import optimize_problem, resolve_target
    from akg.search import Search, SearchOptions
    from akg.store import Store
    monkeypatch.setattr(Search, "_beside_timing", lambda self: True)
    events = []
    target = resolve_target("cpp", "cpu")
    config = HarnessConfig(warmup=1, trials=5, timeout_s=300.0)
    with Store(tmp_path / "s.db") as store:
        report = optimize_problem(load_problem(SCALE_ADD), target, tmp_path / "out", store,
                                  SearchOptions(budget=2), config, lambda message, scored: events.append(message))
        again = optimize_problem(load_problem(SCALE_ADD), target, None, store, SearchOptions(budget=1), config)
    assert report["baselines"]["eager_ms"] > 0 and report["baselines"]["compile_ms"] > 0, report["notes"]
    phases = report["phases"]
    for name in ("startup", "trace", "eager_baseline", "compile_baseline_compile", "compile_baseline_timing", "judging"):
        assert name in phases, phases
    assert any(m.startswith("measuring the eager baseline; torch.compile's compiles beside") for m in events), events
    milestones = report["milestones"]
    assert 0 < milestones["first_judged_s"] <= phases["wall"]
    if report["best"]["origin"] != "reference":
        assert milestones["first_judged_s"] <= milestones["first_verified_s"] <= phases["wall"]
    judged = [c for c in report["candidates"] if c["origin"] != "reference"]
    assert judged and report["best"]["correct"]
    # a screen runs one correctness case, a full verification every one; the result is fully verified
    assert {c["cases_run"] for c in judged} <= {None, 1, len(config.cases())}, judged
    assert report["best"]["origin"] == "reference" or report["best"]["cases_run"] == len(config.cases())
    # the second run measures no baseline: both come from the store
    assert again["baselines"] == {**report["baselines"]} and "eager_baseline" not in again["phases"]
